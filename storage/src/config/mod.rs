//! Storage configuration as plain data: which backend, its settings, the key prefix.
//! [`settings`] fills it in from flags, environment and a config source, and validates;
//! [`crate::backend`] opens what it describes.

pub mod azure;
pub(crate) mod azure_auth;
mod connection_string;
pub mod settings;

use std::fmt;
use std::path::PathBuf;

use object_store::path::Path;

pub use azure::AzureConfig;
pub use azure_auth::{AUTH_MODES, AzureAuth};
pub use connection_string::{
    ConnectionCredential, ConnectionString, EMULATOR_ACCOUNT, EMULATOR_ENDPOINT, EMULATOR_KEY,
};
pub use settings::{DEFAULT_CONFIG_DIR, Settings};

use crate::error::ConfigError;
use crate::redact::Secret;

/// Default Azure container.
pub const DEFAULT_CONTAINER: &str = "ray-historyserver";

/// Which backend to use (`storage:` in the config file, `STORAGE` in the environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageKind {
    /// Azure Blob Storage (or Azurite).
    AzureBlob,
    /// Amazon S3 or an S3-compatible store such as MinIO.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// A local directory.
    Local,
    /// In-process memory (tests and demos).
    Memory,
}

impl StorageKind {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::AzureBlob => "azureblob",
            StorageKind::S3 => "s3",
            StorageKind::Gcs => "gcs",
            StorageKind::Local => "local",
            StorageKind::Memory => "memory",
        }
    }

    pub(crate) fn parse(setting: &str, value: &str) -> Result<Self, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "azureblob" | "azure" => Ok(StorageKind::AzureBlob),
            "s3" => Ok(StorageKind::S3),
            "gcs" => Ok(StorageKind::Gcs),
            "local" => Ok(StorageKind::Local),
            "memory" => Ok(StorageKind::Memory),
            other => Err(ConfigError::new(
                setting,
                format!("unknown storage {other:?} (expected azureblob, s3, gcs, local or memory)"),
            )),
        }
    }
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated storage configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// The backend and its settings.
    pub backend: Backend,
    /// Optional key prefix inside the container or bucket (no leading or trailing `/`).
    pub prefix: Option<String>,
}

/// A backend and its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// Azure Blob Storage.
    Azure(AzureConfig),
    /// S3 or S3-compatible.
    S3(S3Config),
    /// Google Cloud Storage.
    Gcs(GcsConfig),
    /// A local directory.
    Local {
        /// Root directory.
        path: PathBuf,
    },
    /// In-process memory.
    Memory,
}

/// S3 settings.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Custom endpoint (MinIO); path-style requests are used when set.
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Static credentials, if given (otherwise the AWS default chain).
    pub access_key_id: Option<String>,
    /// Static secret key.
    pub secret_access_key: Option<Secret>,
}

/// GCS settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GcsConfig {
    /// Bucket name.
    pub bucket: String,
    /// Service account file, if given (otherwise application default credentials).
    pub credentials_file: Option<PathBuf>,
}

impl StorageConfig {
    /// An in-memory configuration (tests, demos).
    pub fn memory() -> Self {
        Self {
            backend: Backend::Memory,
            prefix: None,
        }
    }

    /// A local-directory configuration.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        Self {
            backend: Backend::Local { path: path.into() },
            prefix: None,
        }
    }

    /// Which backend this is.
    pub fn kind(&self) -> StorageKind {
        match &self.backend {
            Backend::Azure(_) => StorageKind::AzureBlob,
            Backend::S3(_) => StorageKind::S3,
            Backend::Gcs(_) => StorageKind::Gcs,
            Backend::Local { .. } => StorageKind::Local,
            Backend::Memory => StorageKind::Memory,
        }
    }

    /// One line for logs, without secrets.
    pub fn describe(&self) -> String {
        let location = match &self.backend {
            Backend::Azure(azure) => azure.describe(),
            Backend::S3(s3) => match &s3.endpoint {
                Some(endpoint) => format!("s3 bucket {} at {endpoint}", s3.bucket),
                None => format!("s3 bucket {}", s3.bucket),
            },
            Backend::Gcs(gcs) => format!("gcs bucket {}", gcs.bucket),
            Backend::Local { path } => format!("local directory {}", path.display()),
            Backend::Memory => "memory".to_string(),
        };
        match &self.prefix {
            Some(prefix) => format!("{location}, prefix {prefix}"),
            None => location,
        }
    }

    /// The endpoint URL requests go to, when it is not fixed by the backend: Azure's blob
    /// endpoint (public or custom) and a custom S3 endpoint. `None` for AWS's own S3, GCS,
    /// local disk and memory.
    pub fn endpoint(&self) -> Option<&str> {
        match &self.backend {
            Backend::Azure(azure) => Some(&azure.endpoint),
            Backend::S3(s3) => s3.endpoint.as_deref(),
            Backend::Gcs(_) | Backend::Local { .. } | Backend::Memory => None,
        }
    }

    pub(crate) fn prefix_path(&self) -> Option<Path> {
        self.prefix.as_deref().map(Path::from)
    }
}
