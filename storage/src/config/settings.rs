//! Storage settings: command-line flags, then environment, then a config source (the
//! user's ConfigMap), then defaults. [`StorageArgs`] is flattened into every program's
//! command line; [`StorageArgs::resolve`] turns it into a validated [`StorageConfig`].
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

use clap::Args;

use super::{
    AzureAuth, AzureConfig, Backend, DEFAULT_CONTAINER, GcsConfig, S3Config, StorageConfig,
    StorageKind,
};
use crate::error::ConfigError;
use crate::redact::Secret;

/// Default config source (a mounted ConfigMap directory, or a `config.yaml` in it), used when
/// present and `--config` is not given.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/ray-history";
/// Storage settings as given on the command line or in the environment. Every field is
/// optional here; [`StorageArgs::resolve`] fills gaps from the config file and validates.
#[derive(Clone, Default, Args)]
pub struct StorageArgs {
    /// Backend: azureblob, s3, gcs, local or memory.
    #[arg(long, env = "STORAGE")]
    pub storage: Option<String>,
    /// Storage as a URL: az://container/prefix, s3://bucket/prefix, gs://bucket/prefix,
    /// file:///path or memory://.
    #[arg(long, env = "STORAGE_URL")]
    pub storage_url: Option<String>,
    /// Config source: a YAML file, or a mounted ConfigMap directory with one file per key
    /// [default: /etc/ray-history if present].
    #[arg(long, env = "RAY_HISTORY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Key prefix inside the container or bucket.
    #[arg(long, env = "STORAGE_PREFIX")]
    pub storage_prefix: Option<String>,
    /// Create the container or bucket when missing (Azure) [default: true].
    #[arg(long, env = "STORAGE_CREATE_CONTAINER")]
    pub create_container: Option<bool>,

    /// Azure connection string (account key or SAS; `UseDevelopmentStorage=true` for Azurite).
    #[arg(long, env = "AZURE_STORAGE_CONNECTION_STRING", hide_env_values = true)]
    pub azure_connection_string: Option<String>,
    /// Azure container [default: ray-historyserver].
    #[arg(long, env = "AZURE_STORAGE_CONTAINER")]
    pub azure_container: Option<String>,
    /// Azure blob endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1 for Azurite.
    #[arg(long, env = "AZURE_STORAGE_ENDPOINT")]
    pub azure_endpoint: Option<String>,
    /// Azure storage account name.
    #[arg(long, env = "AZURE_STORAGE_ACCOUNT_NAME")]
    pub azure_account_name: Option<String>,
    /// Azure storage account key.
    #[arg(long, env = "AZURE_STORAGE_ACCOUNT_KEY", hide_env_values = true)]
    pub azure_account_key: Option<String>,
    /// Azure SAS token (with or without the leading `?`).
    #[arg(long, env = "AZURE_STORAGE_SAS_TOKEN", hide_env_values = true)]
    pub azure_sas_token: Option<String>,
    /// Azure AD tenant (service principal, workload identity).
    #[arg(long, env = "AZURE_TENANT_ID")]
    pub azure_tenant_id: Option<String>,
    /// Azure AD client id (service principal, workload identity, user-assigned identity).
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub azure_client_id: Option<String>,
    /// Azure AD client secret (service principal).
    #[arg(long, env = "AZURE_CLIENT_SECRET", hide_env_values = true)]
    pub azure_client_secret: Option<String>,
    /// Federated token file (AKS workload identity).
    #[arg(long, env = "AZURE_FEDERATED_TOKEN_FILE")]
    pub azure_federated_token_file: Option<PathBuf>,
    /// Azure AD authority for service principal and workload identity tokens
    /// [default: login.microsoftonline.com].
    #[arg(long, env = "AZURE_AUTHORITY_HOST")]
    pub azure_authority_host: Option<String>,
    /// Managed identity token endpoint [default: the instance metadata service].
    #[arg(long, env = "AZURE_MSI_ENDPOINT")]
    pub azure_msi_endpoint: Option<String>,
    /// Force one Azure auth mode: connection_string, account_key, sas, service_principal,
    /// workload_identity or managed_identity.
    #[arg(long, env = "AZURE_STORAGE_AUTH_MODE")]
    pub azure_auth_mode: Option<String>,

    /// S3 bucket.
    #[arg(long, env = "S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 endpoint for S3-compatible stores (MinIO); enables path-style requests.
    #[arg(long, env = "S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// AWS region.
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: Option<String>,
    /// AWS access key id.
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    pub aws_access_key_id: Option<String>,
    /// AWS secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub aws_secret_access_key: Option<String>,

    /// GCS bucket.
    #[arg(long, env = "GCS_BUCKET")]
    pub gcs_bucket: Option<String>,
    /// GCS service account JSON file.
    #[arg(long, env = "GOOGLE_APPLICATION_CREDENTIALS")]
    pub google_application_credentials: Option<PathBuf>,

    /// Directory for the local backend.
    #[arg(long, env = "LOCAL_STORAGE_PATH")]
    pub local_storage_path: Option<PathBuf>,
}

/// Prints every setting that is set, with secret values as `***`.
impl fmt::Debug for StorageArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("StorageArgs");
        out.field("config", &self.config);
        for (name, value) in self.pairs() {
            if let Some(value) = value {
                let shown = if SECRET_SETTINGS.contains(&name)
                    || (name == "STORAGE_URL" && value.contains(['@', '?']))
                {
                    "***".to_string()
                } else {
                    value
                };
                out.field(name, &shown);
            }
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

impl StorageArgs {
    /// Merges flags and environment (already combined by clap) with the config file and
    /// validates the result. Errors are one line naming the setting.
    pub fn resolve(&self) -> Result<StorageConfig, ConfigError> {
        self.resolve_with_env(|name| std::env::var(name).ok())
    }

    /// [`StorageArgs::resolve`] with `env` as the process environment, which is consulted for
    /// the lowercase names that `envFrom` of a ConfigMap gives (`storage=azureblob`); clap has
    /// already read the uppercase ones.
    pub fn resolve_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<StorageConfig, ConfigError> {
        let file = self.load_config_source()?;
        let mut values = BTreeMap::new();
        for (name, value) in self.pairs() {
            let lower = name.to_ascii_lowercase();
            let from_env = || env(&lower).filter(|v| !v.trim().is_empty());
            let from_file = || file.get(&lower).cloned();
            if let Some(v) = value.or_else(from_env).or_else(from_file) {
                values.insert(name, v);
            }
        }
        for key in file.keys() {
            if !self
                .pairs()
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(key))
            {
                let source = self.config_file_name();
                return Err(ConfigError::new(
                    key.clone(),
                    format!("unknown setting in config {source}"),
                ));
            }
        }
        resolve_merged(&Merged { values })
    }

    /// Every setting by its environment name, with the flag/env value if given.
    fn pairs(&self) -> Vec<(&'static str, Option<String>)> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        vec![
            ("STORAGE", self.storage.clone()),
            ("STORAGE_URL", self.storage_url.clone()),
            ("STORAGE_PREFIX", self.storage_prefix.clone()),
            (
                "STORAGE_CREATE_CONTAINER",
                self.create_container.map(|b| b.to_string()),
            ),
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                self.azure_connection_string.clone(),
            ),
            ("AZURE_STORAGE_CONTAINER", self.azure_container.clone()),
            ("AZURE_STORAGE_ENDPOINT", self.azure_endpoint.clone()),
            (
                "AZURE_STORAGE_ACCOUNT_NAME",
                self.azure_account_name.clone(),
            ),
            ("AZURE_STORAGE_ACCOUNT_KEY", self.azure_account_key.clone()),
            ("AZURE_STORAGE_SAS_TOKEN", self.azure_sas_token.clone()),
            ("AZURE_TENANT_ID", self.azure_tenant_id.clone()),
            ("AZURE_CLIENT_ID", self.azure_client_id.clone()),
            ("AZURE_CLIENT_SECRET", self.azure_client_secret.clone()),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                path(&self.azure_federated_token_file),
            ),
            ("AZURE_AUTHORITY_HOST", self.azure_authority_host.clone()),
            ("AZURE_MSI_ENDPOINT", self.azure_msi_endpoint.clone()),
            ("AZURE_STORAGE_AUTH_MODE", self.azure_auth_mode.clone()),
            ("S3_BUCKET", self.s3_bucket.clone()),
            ("S3_ENDPOINT", self.s3_endpoint.clone()),
            ("AWS_REGION", self.aws_region.clone()),
            ("AWS_ACCESS_KEY_ID", self.aws_access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.aws_secret_access_key.clone()),
            ("GCS_BUCKET", self.gcs_bucket.clone()),
            (
                "GOOGLE_APPLICATION_CREDENTIALS",
                path(&self.google_application_credentials),
            ),
            ("LOCAL_STORAGE_PATH", path(&self.local_storage_path)),
        ]
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
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let map = match value {
        serde_yaml::Value::Null => return Ok(BTreeMap::new()),
        serde_yaml::Value::Mapping(map) => map,
        _ => return Err("must be a map of settings".to_string()),
    };
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let key = key
            .as_str()
            .ok_or("keys must be strings")?
            .to_ascii_lowercase();
        let value = match value {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Bool(b) => b.to_string(),
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::Null => continue,
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
