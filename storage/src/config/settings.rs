//! Storage settings: command-line flags, then environment, then a config source (the
//! user's ConfigMap), then defaults. [`Settings`] holds what flags and the environment gave,
//! by environment name; [`Settings::resolve`] fills the gaps from the config source and
//! validates, into a [`StorageConfig`]. A program's command line only fills a `Settings`
//! (`ray-history-cli`'s `StorageArgs`), so this crate needs no CLI parser.
//!
//! Every form in which Kubernetes hands a ConfigMap `storage: azureblob` to a container works:
//! - environment variables in either case (`STORAGE`, or `storage` from `envFrom`);
//! - a mounted ConfigMap directory, one file per key (`storage` containing `azureblob`);
//! - a flat YAML file whose keys are the environment names in any case (`storage: azureblob`,
//!   `AZURE_STORAGE_CONTAINER: history`), also when it is a key of a mounted directory.
//!
//! Secrets belong in the environment (a Kubernetes Secret), but are accepted from the config
//! source too.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path as FsPath, PathBuf};

use super::{
    AzureAuth, AzureConfig, Backend, DEFAULT_CONTAINER, GcsConfig, S3Config, StorageConfig,
    StorageKind,
};
use crate::error::ConfigError;
use crate::redact::Secret;

/// Default config source (a mounted ConfigMap directory, or a `config.yaml` in it), used when
/// present and `--config` is not given.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/ray-history";
/// Every storage setting, by its environment name.
pub const NAMES: [&str; 25] = [
    "STORAGE",
    "STORAGE_URL",
    "STORAGE_PREFIX",
    "STORAGE_CREATE_CONTAINER",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_CONTAINER",
    "AZURE_STORAGE_ENDPOINT",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_MSI_ENDPOINT",
    "AZURE_STORAGE_AUTH_MODE",
    "S3_BUCKET",
    "S3_ENDPOINT",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "GCS_BUCKET",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "LOCAL_STORAGE_PATH",
];

/// Storage settings as given by flags or the environment, by environment name, and the config
/// source that fills the gaps.
#[derive(Clone, Default)]
pub struct Settings {
    given: BTreeMap<&'static str, String>,
    /// A name given that is not a setting, reported by [`Settings::resolve`].
    unknown: Option<String>,
    /// The config source: a YAML file, or a mounted ConfigMap directory with one file per key
    /// (`None`: [`DEFAULT_CONFIG_DIR`] if present).
    pub config: Option<PathBuf>,
}

/// Prints every setting that is set, with secret values as `***`.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Settings");
        out.field("config", &self.config);
        for (name, value) in &self.given {
            let shown = if SECRET_SETTINGS.contains(name)
                || (*name == "STORAGE_URL" && value.contains(['@', '?']))
            {
                "***"
            } else {
                value
            };
            out.field(name, &shown);
        }
        out.finish_non_exhaustive()
    }
}

/// Settings whose values are credentials.
const SECRET_SETTINGS: &[&str] = &[
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "AWS_SECRET_ACCESS_KEY",
];

/// Settings after merging flags/environment with the config file: env name → value.
struct Merged {
    values: BTreeMap<&'static str, String>,
}

impl Merged {
    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    fn secret(&self, name: &str) -> Option<Secret> {
        self.get(name).map(Secret::new)
    }
}

impl Settings {
    /// Settings from `(environment name, value)` pairs; pairs without a value are left out.
    pub fn new(
        config: Option<PathBuf>,
        given: impl IntoIterator<Item = (impl AsRef<str>, Option<String>)>,
    ) -> Self {
        let mut settings = Settings {
            config,
            ..Settings::default()
        };
        for (name, value) in given {
            let Some(value) = value else { continue };
            match NAMES.iter().find(|known| **known == name.as_ref()) {
                Some(known) => {
                    settings.given.insert(known, value);
                }
                None => settings.unknown = Some(name.as_ref().to_string()),
            }
        }
        settings
    }

    /// Merges flags and environment (already combined by clap) with the config file and
    /// validates the result. Errors are one line naming the setting.
    pub fn resolve(&self) -> Result<StorageConfig, ConfigError> {
        self.resolve_with_env(|name| std::env::var(name).ok())
    }

    /// [`Settings::resolve`] with `env` as the process environment, which is consulted for
    /// the lowercase names that `envFrom` of a ConfigMap gives (`storage=azureblob`); the
    /// command line has already read the uppercase ones.
    pub fn resolve_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<StorageConfig, ConfigError> {
        if let Some(name) = &self.unknown {
            return Err(ConfigError::new(name.clone(), "not a storage setting"));
        }
        let file = self.load_config_source()?;
        let mut values = BTreeMap::new();
        for name in NAMES {
            let lower = name.to_ascii_lowercase();
            let from_env = || env(&lower).filter(|v| !v.trim().is_empty());
            let from_file = || file.get(&lower).cloned();
            let given = self.given.get(name).cloned();
            if let Some(v) = given.or_else(from_env).or_else(from_file) {
                values.insert(name, v);
            }
        }
        for key in file.keys() {
            if !NAMES.iter().any(|name| name.eq_ignore_ascii_case(key)) {
                let source = self.config_file_name();
                return Err(ConfigError::new(
                    key.clone(),
                    format!("unknown setting in config {source}"),
                ));
            }
        }
        resolve_merged(&Merged { values })
    }

    fn config_file_name(&self) -> String {
        self.config
            .as_deref()
            .unwrap_or(FsPath::new(DEFAULT_CONFIG_DIR))
            .display()
            .to_string()
    }

    /// Reads the config source: the explicit one must exist, the default one may be absent.
    fn load_config_source(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        let (path, required) = match &self.config {
            Some(path) => (path.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_DIR), false),
        };
        let unreadable = |e: std::io::Error| {
            ConfigError::new(
                "RAY_HISTORY_CONFIG",
                format!("cannot read {}: {e}", path.display()),
            )
        };
        match std::fs::metadata(&path) {
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(unreadable(e)),
            Ok(meta) if meta.is_dir() => read_config_dir(&path),
            Ok(_) => {
                let text = std::fs::read_to_string(&path).map_err(unreadable)?;
                parse_config_file(&text).map_err(|problem| {
                    ConfigError::new(
                        "RAY_HISTORY_CONFIG",
                        format!("{}: {problem}", path.display()),
                    )
                })
            }
        }
    }
}

/// Reads a mounted ConfigMap directory: each file is one setting named like the file, except
/// `*.yaml` / `*.yml` files, which are config files themselves. Kubernetes' own entries
/// (`..data`, `..2026_…`) and other dot files are skipped.
fn read_config_dir(dir: &FsPath) -> Result<BTreeMap<String, String>, ConfigError> {
    let problem = |what: &FsPath, e: &dyn fmt::Display| {
        ConfigError::new(
            "RAY_HISTORY_CONFIG",
            format!("cannot read {}: {e}", what.display()),
        )
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| problem(dir, &e))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
        .collect();
    entries.sort_by_key(|entry| entry.file_name());
    let mut out = BTreeMap::new();
    for entry in entries {
        let path = entry.path();
        // Mounted keys are symlinks into `..data`; follow them, but only to regular files.
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
        let text = std::fs::read_to_string(&path).map_err(|e| problem(&path, &e))?;
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            let settings = parse_config_file(&text).map_err(|p| {
                ConfigError::new("RAY_HISTORY_CONFIG", format!("{}: {p}", path.display()))
            })?;
            out.extend(settings);
        } else {
            out.insert(name, text.trim_end_matches(['\n', '\r']).to_string());
        }
    }
    Ok(out)
}

/// Parses the YAML config file into lower-cased keys and string values.
fn parse_config_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let map = match value {
        serde_yaml_ng::Value::Null => return Ok(BTreeMap::new()),
        serde_yaml_ng::Value::Mapping(map) => map,
        _ => return Err("must be a map of settings".to_string()),
    };
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let key = key
            .as_str()
            .ok_or("keys must be strings")?
            .to_ascii_lowercase();
        let value = match value {
            serde_yaml_ng::Value::String(s) => s,
            serde_yaml_ng::Value::Bool(b) => b.to_string(),
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            serde_yaml_ng::Value::Null => continue,
            _ => return Err(format!("{key} must be a plain value")),
        };
        out.insert(key, value);
    }
    Ok(out)
}

fn parse_bool(setting: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::new(setting, "must be true or false")),
    }
}

/// Parses `STORAGE_URL` into a kind and the container/bucket/path plus prefix.
fn parse_url(raw: &str) -> Result<(StorageKind, String, Option<String>), ConfigError> {
    let bad = |problem: &str| ConfigError::new("STORAGE_URL", problem.to_string());
    if raw == "memory://" || raw == "memory:" {
        return Ok((StorageKind::Memory, String::new(), None));
    }
    let url = url::Url::parse(raw).map_err(|_| bad("is not a URL"))?;
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err(bad(
            "must not carry credentials or a query; use the credential settings",
        ));
    }
    let kind = match url.scheme() {
        "az" | "azure" | "abfs" => StorageKind::AzureBlob,
        "s3" => StorageKind::S3,
        "gs" | "gcs" => StorageKind::Gcs,
        "file" => StorageKind::Local,
        "memory" => StorageKind::Memory,
        other => {
            return Err(bad(&format!(
                "unknown scheme {other:?} (expected az, s3, gs, file or memory)"
            )));
        }
    };
    if kind == StorageKind::Local {
        return Ok((kind, url.path().to_string(), None));
    }
    let container = url.host_str().unwrap_or_default().to_string();
    if container.is_empty() && kind != StorageKind::Memory {
        return Err(bad("has no container or bucket"));
    }
    let prefix = url.path().trim_matches('/');
    Ok((
        kind,
        container,
        (!prefix.is_empty()).then(|| prefix.to_string()),
    ))
}

fn resolve_merged(m: &Merged) -> Result<StorageConfig, ConfigError> {
    let url = m.get("STORAGE_URL").map(parse_url).transpose()?;
    let explicit = m
        .get("STORAGE")
        .map(|v| StorageKind::parse("STORAGE", v))
        .transpose()?;
    let kind = match (&url, explicit) {
        (Some((from_url, ..)), Some(kind)) if *from_url != kind => {
            return Err(ConfigError::new(
                "STORAGE",
                format!("is {kind} but STORAGE_URL is a {from_url} URL"),
            ));
        }
        (Some((from_url, ..)), _) => *from_url,
        (None, Some(kind)) => kind,
        (None, None) => {
            return Err(ConfigError::new(
                "STORAGE",
                "not set (choose azureblob, s3, gcs, local or memory, or set STORAGE_URL)",
            ));
        }
    };
    let (url_location, url_prefix) = match url {
        Some((_, location, prefix)) => (Some(location), prefix),
        None => (None, None),
    };
    let prefix = m
        .get("STORAGE_PREFIX")
        .map(|p| p.trim_matches('/').to_string())
        .or(url_prefix)
        .filter(|p| !p.is_empty());
    if let Some(p) = &prefix
        && p.split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(ConfigError::new(
            "STORAGE_PREFIX",
            "has an empty, '.' or '..' segment",
        ));
    }
    let backend = match kind {
        StorageKind::AzureBlob => {
            let container = url_location
                .or_else(|| m.get("AZURE_STORAGE_CONTAINER").map(str::to_string))
                .unwrap_or_else(|| DEFAULT_CONTAINER.to_string());
            let create_container = m
                .get("STORAGE_CREATE_CONTAINER")
                .map(|v| parse_bool("STORAGE_CREATE_CONTAINER", v))
                .transpose()?
                .unwrap_or(true);
            let auth = AzureAuth::resolve(
                m.get("AZURE_STORAGE_AUTH_MODE"),
                &|name| m.get(name).map(str::to_string),
                &|name| m.secret(name),
            )?;
            Backend::Azure(AzureConfig::new(
                container,
                m.get("AZURE_STORAGE_ENDPOINT").map(str::to_string),
                m.get("AZURE_STORAGE_ACCOUNT_NAME").map(str::to_string),
                auth,
                create_container,
            )?)
        }
        StorageKind::S3 => {
            let bucket = url_location
                .or_else(|| m.get("S3_BUCKET").map(str::to_string))
                .ok_or_else(|| ConfigError::new("S3_BUCKET", "not set"))?;
            let access_key_id = m.get("AWS_ACCESS_KEY_ID").map(str::to_string);
            let secret_access_key = m.secret("AWS_SECRET_ACCESS_KEY");
            if access_key_id.is_some() != secret_access_key.is_some() {
                return Err(ConfigError::new(
                    "AWS_ACCESS_KEY_ID",
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together",
                ));
            }
            Backend::S3(S3Config {
                bucket,
                endpoint: m.get("S3_ENDPOINT").map(str::to_string),
                region: m.get("AWS_REGION").map(str::to_string),
                access_key_id,
                secret_access_key,
            })
        }
        StorageKind::Gcs => Backend::Gcs(GcsConfig {
            bucket: url_location
                .or_else(|| m.get("GCS_BUCKET").map(str::to_string))
                .ok_or_else(|| ConfigError::new("GCS_BUCKET", "not set"))?,
            credentials_file: m.get("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from),
        }),
        StorageKind::Local => Backend::Local {
            path: url_location
                .or_else(|| m.get("LOCAL_STORAGE_PATH").map(str::to_string))
                .map(PathBuf::from)
                .ok_or_else(|| ConfigError::new("LOCAL_STORAGE_PATH", "not set"))?,
        },
        StorageKind::Memory => Backend::Memory,
    };
    Ok(StorageConfig { backend, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_is_no_setting_is_refused_by_name() {
        let settings = Settings::new(None, [("STORAGE_BUKET", Some("b".to_string()))]);
        let err = settings.resolve().unwrap_err();
        assert_eq!(err.setting, "STORAGE_BUKET");
        let memory = Settings::new(
            Some("/dev/null".into()),
            [("STORAGE", Some("memory".into()))],
        );
        assert_eq!(memory.resolve().unwrap(), StorageConfig::memory());
    }
}
