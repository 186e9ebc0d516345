//! Configuration: sources and their precedence (flag > environment > config file), URLs,
//! and a table of bad configurations that must each give one clear line without secrets.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use ray_history_cli::StorageArgs;
use ray_history_storage::config::Backend;
use ray_history_storage::{StorageConfig, StorageKind};

/// Secret values used below; no error may contain them.
const KEY: &str = "U0VDUkVUS0VZU0VDUkVUS0VZ";
const SIG: &str = "SIGSIGSIG";

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    storage: StorageArgs,
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn with_file(file: &tempfile::NamedTempFile) -> StorageArgs {
    StorageArgs {
        config: Some(file.path().to_path_buf()),
        ..Default::default()
    }
}

#[test]
fn bad_configurations_give_one_line_naming_the_setting() {
    let empty_file = config_file("");
    let args = |f: fn(&mut StorageArgs)| {
        let mut a = with_file(&empty_file);
        f(&mut a);
        a
    };
    let azure = |f: fn(&mut StorageArgs)| {
        let mut a = with_file(&empty_file);
        a.storage = Some("azureblob".into());
        a.azure_account_name = Some("acct".into());
        f(&mut a);
        a
    };
    let cases: Vec<(&str, StorageArgs, &str, &str)> = vec![
        ("nothing set", args(|_| {}), "STORAGE", "not set"),
        (
            "unknown storage",
            args(|a| a.storage = Some("dropbox".into())),
            "STORAGE",
            "unknown storage \"dropbox\"",
        ),
        (
            "unknown URL scheme",
            args(|a| a.storage_url = Some("ftp://bucket/x".into())),
            "STORAGE_URL",
            "unknown scheme \"ftp\"",
        ),
        (
            "URL with credentials",
            args(|a| a.storage_url = Some(format!("az://acct:{KEY}@box/x"))),
            "STORAGE_URL",
            "credentials",
        ),
        (
            "URL with a SAS query",
            args(|a| a.storage_url = Some(format!("az://box/x?sig={SIG}"))),
            "STORAGE_URL",
            "credentials or a query",
        ),
        (
            "URL without container",
            args(|a| a.storage_url = Some("az:///prefix".into())),
            "STORAGE_URL",
            "no container",
        ),
        (
            "STORAGE contradicts URL",
            args(|a| {
                a.storage = Some("s3".into());
                a.storage_url = Some("gs://bucket".into());
            }),
            "STORAGE",
            "STORAGE_URL",
        ),
        (
            "S3 without bucket",
            args(|a| a.storage = Some("s3".into())),
            "S3_BUCKET",
            "not set",
        ),
        (
            "S3 key id without secret",
            args(|a| {
                a.storage = Some("s3".into());
                a.s3_bucket = Some("b".into());
                a.aws_access_key_id = Some("AKIA".into());
            }),
            "AWS_ACCESS_KEY_ID",
            "together",
        ),
        (
            "GCS without bucket",
            args(|a| a.storage = Some("gcs".into())),
            "GCS_BUCKET",
            "not set",
        ),
        (
            "local without path",
            args(|a| a.storage = Some("local".into())),
            "LOCAL_STORAGE_PATH",
            "not set",
        ),
        (
            "bad prefix",
            args(|a| {
                a.storage = Some("memory".into());
                a.storage_prefix = Some("a/../b".into());
            }),
            "STORAGE_PREFIX",
            "'..'",
        ),
        (
            "bad container name",
            azure(|a| {
                a.azure_container = Some("Bad_Name".into());
                a.azure_account_key = Some(KEY.into());
            }),
            "AZURE_STORAGE_CONTAINER",
            "lower-case",
        ),
        (
            "malformed connection string",
            azure(|a| {
                a.azure_account_name = None;
                a.azure_connection_string = Some(format!("AccountName=acct;AccountKey={KEY};Oops"));
            }),
            "AZURE_STORAGE_CONNECTION_STRING",
            "without '='",
        ),
        (
            "connection string without AccountName",
            azure(|a| {
                a.azure_account_name = None;
                a.azure_connection_string = Some(format!("AccountKey={KEY}"));
            }),
            "AZURE_STORAGE_CONNECTION_STRING",
            "no AccountName",
        ),
        (
            "connection string with a bad key",
            azure(|a| {
                a.azure_account_name = None;
                a.azure_connection_string = Some("AccountName=acct;AccountKey=hunter2!!".into());
            }),
            "AZURE_STORAGE_CONNECTION_STRING",
            "not valid base64",
        ),
        (
            "conflicting auth settings",
            azure(|a| {
                a.azure_connection_string = Some(format!("AccountName=acct;AccountKey={KEY}"));
                a.azure_sas_token = Some(format!("sv=1&sig={SIG}"));
            }),
            "AZURE_STORAGE_SAS_TOKEN",
            "conflicts with AZURE_STORAGE_CONNECTION_STRING",
        ),
        (
            "key and client secret",
            azure(|a| {
                a.azure_account_key = Some(KEY.into());
                a.azure_client_secret = Some(SIG.into());
            }),
            "AZURE_CLIENT_SECRET",
            "conflicts with AZURE_STORAGE_ACCOUNT_KEY",
        ),
        (
            "account name contradicts connection string",
            azure(|a| {
                a.azure_account_name = Some("other".into());
                a.azure_connection_string = Some(format!("AccountName=acct;AccountKey={KEY}"));
            }),
            "AZURE_STORAGE_ACCOUNT_NAME",
            "differs",
        ),
        (
            "unknown auth mode",
            azure(|a| a.azure_auth_mode = Some("password".into())),
            "AZURE_STORAGE_AUTH_MODE",
            "unknown mode",
        ),
        (
            "forced mode missing its setting",
            azure(|a| {
                a.azure_auth_mode = Some("sas".into());
                a.azure_account_key = Some(KEY.into());
            }),
            "AZURE_STORAGE_SAS_TOKEN",
            "not set (needed for sas)",
        ),
        (
            "service principal without tenant",
            azure(|a| {
                a.azure_client_id = Some("c".into());
                a.azure_client_secret = Some(SIG.into());
            }),
            "AZURE_TENANT_ID",
            "not set",
        ),
        (
            "SAS without signature",
            azure(|a| a.azure_sas_token = Some("sv=2020&se=2030".into())),
            "AZURE_STORAGE_SAS_TOKEN",
            "no sig=",
        ),
        (
            "account key not base64",
            azure(|a| a.azure_account_key = Some("hunter2-not-base64!".into())),
            "AZURE_STORAGE_ACCOUNT_KEY",
            "base64",
        ),
        (
            "endpoint not http",
            azure(|a| {
                a.azure_account_key = Some(KEY.into());
                a.azure_endpoint = Some("ftp://h/acct".into());
            }),
            "AZURE_STORAGE_ENDPOINT",
            "http(s) URL",
        ),
        (
            "control: a valid Azure URL",
            azure(|a| {
                a.storage_url = Some("az://box".into());
                a.storage = None;
            }),
            "",
            "",
        ),
    ];
    for (name, args, setting, problem) in cases {
        if setting.is_empty() {
            // A control case: the same helpers produce valid settings.
            args.resolve().unwrap_or_else(|e| panic!("{name}: {e}"));
            continue;
        }
        let err = args.resolve().expect_err(name);
        let text = err.to_string();
        assert_eq!(err.setting, setting, "{name}: {text}");
        assert!(text.starts_with(&format!("{setting}: ")), "{name}: {text}");
        assert!(text.contains(problem), "{name}: {text:?} lacks {problem:?}");
        assert!(!text.contains('\n'), "{name}: {text:?}");
        for secret in [KEY, SIG, "hunter2"] {
            assert!(!text.contains(secret), "{name} leaks a secret: {text}");
        }
    }
}

#[test]
fn config_file_problems_name_the_file() {
    let cases = [
        ("storage: [azureblob]\n", "must be a plain value"),
        ("- storage\n", "must be a map"),
        ("storage: memory\nbogus_setting: 1\n", "unknown setting"),
        ("storage: 'x\n", "not valid YAML"),
    ];
    for (text, problem) in cases {
        let file = config_file(text);
        let err = with_file(&file).resolve().unwrap_err().to_string();
        assert!(err.contains(problem), "{text:?}: {err}");
        assert!(!err.contains('\n'), "{err:?}");
    }
    let missing = StorageArgs {
        config: Some(PathBuf::from("/nonexistent/config.yaml")),
        ..Default::default()
    };
    let err = missing.resolve().unwrap_err();
    assert_eq!(err.setting, "RAY_HISTORY_CONFIG");
    assert!(err.problem.contains("/nonexistent/config.yaml"));
}

#[test]
fn the_config_file_is_the_mounted_configmap() {
    let file = config_file(
        "storage: azureblob\nAZURE_STORAGE_CONTAINER: history\nazure_storage_endpoint: http://127.0.0.1:10000/devstoreaccount1\n\
         azure_storage_account_name: devstoreaccount1\nSTORAGE_PREFIX: /team-a/\nSTORAGE_CREATE_CONTAINER: false\n",
    );
    // The secret comes from the environment (here: a flag), the rest from the file.
    let args = StorageArgs {
        azure_account_key: Some(KEY.into()),
        ..with_file(&file)
    };
    let config = args.resolve().unwrap();
    assert_eq!(config.prefix.as_deref(), Some("team-a"));
    let Backend::Azure(azure) = &config.backend else {
        panic!("{config:?}")
    };
    assert_eq!(azure.container, "history");
    assert_eq!(azure.account_name, "devstoreaccount1");
    assert!(!azure.create_container);
    assert_eq!(
        config.describe(),
        "azureblob container history at http://127.0.0.1:10000/devstoreaccount1 (account_key), prefix team-a"
    );
    assert!(!format!("{config:?}").contains(KEY));
}

#[test]
fn flags_override_the_config_file() {
    let file = config_file(
        "storage: memory\nlocal_storage_path: /from/file\nSTORAGE_PREFIX: file-prefix\n",
    );
    let args = StorageArgs {
        storage: Some("local".into()),
        storage_prefix: Some("flag-prefix".into()),
        ..with_file(&file)
    };
    let config = args.resolve().unwrap();
    assert_eq!(config.kind(), StorageKind::Local);
    assert_eq!(config.prefix.as_deref(), Some("flag-prefix"));
    assert_eq!(config.backend, StorageConfig::local("/from/file").backend);
}

#[test]
fn storage_urls() {
    let empty = config_file("");
    let url = |u: &str| {
        StorageArgs {
            storage_url: Some(u.into()),
            azure_account_name: Some("acct".into()),
            azure_account_key: Some(KEY.into()),
            s3_bucket: Some("ignored".into()),
            ..with_file(&empty)
        }
        .resolve()
        .unwrap()
    };
    let az = url("az://box/a/b/");
    assert_eq!(az.prefix.as_deref(), Some("a/b"));
    assert!(matches!(&az.backend, Backend::Azure(c) if c.container == "box"));
    let s3 = url("s3://bucket/p");
    assert!(matches!(&s3.backend, Backend::S3(c) if c.bucket == "bucket"));
    assert_eq!(s3.prefix.as_deref(), Some("p"));
    assert!(matches!(&url("gs://g").backend, Backend::Gcs(c) if c.bucket == "g"));
    assert_eq!(
        url("file:///var/lib/h").backend,
        StorageConfig::local("/var/lib/h").backend
    );
    assert_eq!(url("memory://").kind(), StorageKind::Memory);
}

/// Environment variable and flag precedence, checked in a child process (this test binary
/// run again) because clap reads the real environment and tests must not change their own.
#[test]
fn flags_override_environment_which_overrides_the_file() {
    let file =
        config_file("storage: memory\nLOCAL_STORAGE_PATH: /from/file\nSTORAGE_PREFIX: file\n");
    let run = |args: &[&str], env: &[(&str, &str)]| -> String {
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "resolve_in_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env_clear()
            .env("RH_CHILD_ARGS", args.join("\u{1f}"))
            .env("RAY_HISTORY_CONFIG", file.path())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        stdout
            .lines()
            .find_map(|l| l.split_once("RESOLVED ").map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("child said: {stdout}"))
            .to_string()
    };
    // File alone.
    assert_eq!(run(&[], &[]), "memory, prefix file");
    // Environment beats the file.
    assert_eq!(
        run(&[], &[("STORAGE", "local"), ("STORAGE_PREFIX", "env")]),
        "local directory /from/file, prefix env"
    );
    // Flags beat the environment.
    assert_eq!(
        run(
            &["--storage", "local", "--local-storage-path", "/from/flag"],
            &[("STORAGE", "memory"), ("LOCAL_STORAGE_PATH", "/from/env")]
        ),
        "local directory /from/flag, prefix file"
    );
    // A bad value in the environment is reported by its name.
    assert_eq!(
        run(
            &[],
            &[
                ("STORAGE", "azureblob"),
                ("AZURE_STORAGE_AUTH_MODE", "magic")
            ]
        ),
        "ERROR AZURE_STORAGE_AUTH_MODE"
    );
}

/// The child half of the test above: resolves the arguments in `RH_CHILD_ARGS` against the
/// real environment. Run directly (no `RH_CHILD_ARGS`), it checks flag parsing alone.
#[test]
fn resolve_in_child() {
    let child_args = std::env::var("RH_CHILD_ARGS").ok();
    let mut argv = vec!["prog".to_string()];
    match &child_args {
        Some(args) => argv.extend(
            args.split('\u{1f}')
                .filter(|a| !a.is_empty())
                .map(String::from),
        ),
        None => {
            argv.extend(["--storage-url", "memory://", "--storage-prefix", "p"].map(String::from))
        }
    }
    let cli = Cli::try_parse_from(&argv).unwrap();
    let line = match cli.storage.resolve() {
        Ok(config) => config.describe(),
        Err(e) => format!("ERROR {}", e.setting),
    };
    if child_args.is_some() {
        println!("RESOLVED {line}");
    } else {
        assert_eq!(line, "memory, prefix p");
    }
}

#[test]
fn debug_output_hides_secrets() {
    let args = StorageArgs {
        storage: Some("azureblob".into()),
        azure_connection_string: Some(format!("AccountName=a;AccountKey={KEY}")),
        azure_account_key: Some(KEY.into()),
        azure_sas_token: Some(format!("sig={SIG}")),
        azure_client_secret: Some(SIG.into()),
        aws_secret_access_key: Some(SIG.into()),
        storage_url: Some(format!("az://a:{KEY}@box")),
        ..Default::default()
    };
    let text = format!("{args:?}");
    assert!(!text.contains(KEY) && !text.contains(SIG), "{text}");
    assert!(text.contains("STORAGE: \"azureblob\""), "{text}");
    let cli = Cli::try_parse_from(["prog", "--azure-account-key", KEY]).unwrap();
    assert!(!format!("{cli:?}").contains(KEY));
}

/// A ConfigMap volume as the kubelet lays it out: the keys are symlinks into `..data`, which
/// points at a timestamped directory holding the files.
fn mounted_configmap(keys: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("..2026_12_01_10_00_00.123456789");
    std::fs::create_dir(&data).unwrap();
    for (key, value) in keys {
        std::fs::write(data.join(key), value).unwrap();
    }
    std::os::unix::fs::symlink(data.file_name().unwrap(), dir.path().join("..data")).unwrap();
    for (key, _) in keys {
        std::os::unix::fs::symlink(format!("..data/{key}"), dir.path().join(key)).unwrap();
    }
    dir
}

#[test]
fn a_configmap_from_env_from_has_lowercase_names() {
    // `kubectl create configmap c --from-literal=storage=local …` then `envFrom: c`.
    let env = |name: &str| match name {
        "storage" => Some("local".to_string()),
        "local_storage_path" => Some("/data/history".to_string()),
        "storage_prefix" => Some("from-env".to_string()),
        _ => None,
    };
    let empty = config_file("");
    let config = StorageArgs {
        storage_prefix: Some("from-flag".into()),
        ..with_file(&empty)
    }
    .resolve_with_env(env)
    .unwrap();
    assert_eq!(config.kind(), StorageKind::Local);
    assert_eq!(
        config.backend,
        StorageConfig::local("/data/history").backend
    );
    // Uppercase variables and flags (clap's side) still win over the lowercase ones.
    assert_eq!(config.prefix.as_deref(), Some("from-flag"));
}

#[test]
fn a_mounted_configmap_directory_is_one_file_per_key() {
    // `kubectl create configmap c --from-literal=storage=azureblob …` mounted as a volume.
    let dir = mounted_configmap(&[
        ("storage", "azureblob"),
        ("AZURE_STORAGE_CONTAINER", "history\n"),
        ("azure_storage_account_name", "devstoreaccount1"),
    ]);
    let config = StorageArgs {
        config: Some(dir.path().to_path_buf()),
        azure_account_key: Some(KEY.into()),
        ..Default::default()
    }
    .resolve_with_env(|_| None)
    .unwrap();
    let Backend::Azure(azure) = &config.backend else {
        panic!("{config:?}")
    };
    assert_eq!(azure.container, "history");
    assert_eq!(azure.account_name, "devstoreaccount1");
}

#[test]
fn a_mounted_configmap_may_hold_a_config_yaml() {
    let dir = mounted_configmap(&[(
        "config.yaml",
        "storage: local\nlocal_storage_path: /from/yaml\n",
    )]);
    let config = StorageArgs {
        config: Some(dir.path().to_path_buf()),
        ..Default::default()
    }
    .resolve_with_env(|_| None)
    .unwrap();
    assert_eq!(config.backend, StorageConfig::local("/from/yaml").backend);
}

#[test]
fn an_unknown_key_in_a_mounted_configmap_is_named() {
    let dir = mounted_configmap(&[("storage", "memory"), ("storag_prefix", "typo")]);
    let err = StorageArgs {
        config: Some(dir.path().to_path_buf()),
        ..Default::default()
    }
    .resolve_with_env(|_| None)
    .unwrap_err();
    assert_eq!(err.setting, "storag_prefix");
    assert!(err.problem.contains("unknown setting"), "{err}");
    assert!(!err.to_string().contains('\n'));
}
