//! The storage settings every program's command line takes (`--storage`, `STORAGE`, …),
//! flattened into each program's own arguments.

use std::fmt;
use std::path::PathBuf;

use clap::Args;
use ray_history_storage::config::settings::Settings;
use ray_history_storage::{ConfigError, StorageConfig};

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
        self.settings().fmt(f)
    }
}

impl StorageArgs {
    /// The settings given, for the storage crate to resolve.
    pub fn settings(&self) -> Settings {
        Settings::new(self.config.clone(), self.pairs())
    }

    /// Merges flags and environment (already combined by clap) with the config file and
    /// validates the result. Errors are one line naming the setting.
    pub fn resolve(&self) -> Result<StorageConfig, ConfigError> {
        self.settings().resolve()
    }

    /// [`StorageArgs::resolve`] with `env` as the process environment (see
    /// [`Settings::resolve_with_env`]).
    pub fn resolve_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<StorageConfig, ConfigError> {
        self.settings().resolve_with_env(env)
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
}
