//! `HistoryStorage`: where a namespace's Ray history goes, which Secret holds the credentials,
//! and whether Ray pods in the namespace get the collector injected.
//!
//! The non-secret settings become ConfigMap `<name>-storage` whose keys are the environment
//! names the storage crate reads (`STORAGE: azureblob`, `AZURE_STORAGE_CONTAINER`, …), so pods
//! consume it with `envFrom`; secret values reach pods as `env[].valueFrom.secretKeyRef`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ResourceRequirements, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use ray_history_storage::config::AUTH_MODES;
use ray_history_storage::config::Settings;
use ray_history_storage::{ConfigError, StorageConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Name of the injected collector container.
pub const COLLECTOR_CONTAINER: &str = "ray-history-collector";
/// Default collector image (the chart passes its own).
pub const DEFAULT_COLLECTOR_IMAGE: &str = "ghcr.io/ray-history/ray-history-collector:0.1.0";

/// Where Ray history is stored and how Ray pods in this namespace send it there.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "rayhistory.io",
    version = "v1alpha1",
    kind = "HistoryStorage",
    namespaced,
    status = "HistoryStorageStatus",
    shortname = "hst",
    category = "rayhistory",
    doc = "Storage for Ray history and collector injection settings for one namespace.",
    printcolumn = r#"{"name":"Storage","type":"string","jsonPath":".spec.storage"}"#,
    printcolumn = r#"{"name":"Container","type":"string","jsonPath":".status.location"}"#,
    printcolumn = r#"{"name":"Inject","type":"boolean","jsonPath":".spec.collector.inject"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("self.spec.storage != 's3' || has(self.spec.s3)").message("spec.s3 is required when storage is s3"),
    validation = Rule::new("self.spec.storage != 'gcs' || has(self.spec.gcs)").message("spec.gcs is required when storage is gcs")
)]
#[serde(rename_all = "camelCase")]
pub struct HistoryStorageSpec {
    /// Backend: azureblob, s3 or gcs.
    pub storage: StorageBackend,
    /// Azure Blob Storage settings (storage: azureblob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azureblob: Option<AzureBlobSpec>,
    /// S3 settings (storage: s3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,
    /// Google Cloud Storage settings (storage: gcs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsSpec>,
    /// Key prefix inside the container or bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!self.startsWith('/') && !self.contains('..')").message("prefix must not start with / or contain .."))]
    pub prefix: Option<String>,
    /// Secret with the credentials; omit for workload or managed identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,
    /// Collector injection into Ray pods of this namespace.
    #[serde(default)]
    pub collector: CollectorSpec,
}

/// Storage backends the operator wires up.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Azure Blob Storage (or Azurite).
    Azureblob,
    /// S3 or S3-compatible (MinIO).
    S3,
    /// Google Cloud Storage.
    Gcs,
}

/// Azure auth modes (`AZURE_STORAGE_AUTH_MODE`).
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AzureAuthMode {
    /// A full connection string from the Secret.
    ConnectionString,
    /// Account name plus account key from the Secret.
    AccountKey,
    /// Account name plus SAS token from the Secret.
    Sas,
    /// Tenant and client id plus client secret from the Secret.
    ServicePrincipal,
    /// AKS workload identity (federated token file).
    WorkloadIdentity,
    /// Azure managed identity.
    ManagedIdentity,
}

// As many variants as the storage crate has names (`as_str` indexes its list).
const _: () = assert!(AzureAuthMode::ManagedIdentity as usize + 1 == AUTH_MODES.len());

impl AzureAuthMode {
    /// The name, from the storage crate's list (the variants are declared in its order).
    fn as_str(self) -> &'static str {
        AUTH_MODES[self as usize]
    }
}

/// Azure Blob Storage settings.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AzureBlobSpec {
    /// Container (default ray-historyserver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 63))]
    pub container: Option<String>,
    /// Blob endpoint, e.g. http://azurite.ray-history:10000/devstoreaccount1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("endpoint must be an http(s) URL"))]
    pub endpoint: Option<String>,
    /// Storage account name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    /// Force one auth mode (otherwise chosen from the credentials given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<AzureAuthMode>,
    /// Tenant id (service principal, workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Client id (service principal, workload identity, user-assigned identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Create the container when missing (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_container: Option<bool>,
}

/// S3 settings.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct S3Spec {
    /// Bucket.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Endpoint for S3-compatible stores such as MinIO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Google Cloud Storage settings (credentials from workload identity).
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GcsSpec {
    /// Bucket.
    #[schemars(length(min = 3, max = 222))]
    pub bucket: String,
}

/// The Secret holding credentials and which of its keys holds what.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Secret name (same namespace).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Secret key names per credential.
    pub keys: SecretKeys,
}

/// Secret key names; each one given must exist in the Secret.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.connectionString) || has(self.accountKey) || has(self.sasToken) || has(self.clientSecret) || has(self.awsAccessKeyId)").message("name at least one secret key"))]
pub struct SecretKeys {
    /// Key holding AZURE_STORAGE_CONNECTION_STRING.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    /// Key holding AZURE_STORAGE_ACCOUNT_KEY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key: Option<String>,
    /// Key holding AZURE_STORAGE_SAS_TOKEN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas_token: Option<String>,
    /// Key holding AZURE_CLIENT_SECRET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Key holding AWS_ACCESS_KEY_ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_access_key_id: Option<String>,
    /// Key holding AWS_SECRET_ACCESS_KEY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_secret_access_key: Option<String>,
}

/// How Ray's events reach the collector.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EventsMode {
    /// Ray writes export-event files (`RAY_enable_export_api_write=1`).
    #[default]
    Files,
    /// Ray pushes events over HTTP to the collector (`/v1/events`).
    Http,
}

/// Collector injection settings.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CollectorSpec {
    /// Inject the collector into Ray pods of this namespace.
    #[serde(default)]
    pub inject: bool,
    /// Only pods matching this selector (in addition to KubeRay's labels) get the collector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Collector image (default: the operator's --collector-image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image pull policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Collector resources (default 50m/64Mi requests, 256Mi limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Upload interval, e.g. 2s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(ms|s|m)$')").message("flushInterval is a duration such as 500ms, 2s or 1m"))]
    pub flush_interval: Option<String>,
    /// How Ray's events reach the collector: files (default) or http.
    #[serde(default)]
    pub events: EventsMode,
    /// Minimum pod grace period so the final flush completes (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 3600))]
    pub termination_grace_period_seconds: Option<i64>,
}

/// Image pull policy.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Always pull.
    Always,
    /// Pull when missing.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Observed state of a `HistoryStorage`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryStorageStatus {
    /// The generation these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `SecretResolved`, `StorageReachable` and `Ready`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// ConfigMap holding the non-secret settings; set once written, so the webhook only
    /// injects pods that can start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    /// Where history goes, without secrets (e.g. "azure container x at http://…").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// A credential: the environment name the storage crate reads and the Secret key holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEnv {
    /// Environment variable, e.g. `AZURE_STORAGE_CONNECTION_STRING`.
    pub env: &'static str,
    /// Key in the Secret.
    pub key: String,
}

impl HistoryStorage {
    /// Name of the ConfigMap with the non-secret settings.
    pub fn config_map_name(&self) -> String {
        format!("{}-storage", kube::ResourceExt::name_any(self))
    }
}

impl HistoryStorageSpec {
    /// The non-secret settings keyed by their environment names (the ConfigMap's data).
    pub fn settings(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                out.insert(k.to_string(), v);
            }
        };
        match self.storage {
            StorageBackend::Azureblob => {
                put("STORAGE", Some("azureblob".into()));
                let az = self.azureblob.clone().unwrap_or_default();
                put("AZURE_STORAGE_CONTAINER", az.container);
                put("AZURE_STORAGE_ENDPOINT", az.endpoint);
                put("AZURE_STORAGE_ACCOUNT_NAME", az.account_name);
                put(
                    "AZURE_STORAGE_AUTH_MODE",
                    az.auth_mode.map(|m| m.as_str().into()),
                );
                put("AZURE_TENANT_ID", az.tenant_id);
                put("AZURE_CLIENT_ID", az.client_id);
                put(
                    "STORAGE_CREATE_CONTAINER",
                    az.create_container.map(|b| b.to_string()),
                );
            }
            StorageBackend::S3 => {
                put("STORAGE", Some("s3".into()));
                if let Some(s3) = self.s3.clone() {
                    put("S3_BUCKET", Some(s3.bucket));
                    put("S3_ENDPOINT", s3.endpoint);
                    put("AWS_REGION", s3.region);
                }
            }
            StorageBackend::Gcs => {
                put("STORAGE", Some("gcs".into()));
                put("GCS_BUCKET", self.gcs.clone().map(|g| g.bucket));
            }
        }
        put("STORAGE_PREFIX", self.prefix.clone());
        out
    }

    /// The credentials this spec takes from its Secret.
    pub fn secret_env(&self) -> Vec<SecretEnv> {
        let Some(r) = &self.credentials_secret_ref else {
            return Vec::new();
        };
        let k = &r.keys;
        [
            ("AZURE_STORAGE_CONNECTION_STRING", &k.connection_string),
            ("AZURE_STORAGE_ACCOUNT_KEY", &k.account_key),
            ("AZURE_STORAGE_SAS_TOKEN", &k.sas_token),
            ("AZURE_CLIENT_SECRET", &k.client_secret),
            ("AWS_ACCESS_KEY_ID", &k.aws_access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &k.aws_secret_access_key),
        ]
        .into_iter()
        .filter_map(|(env, key)| key.clone().map(|key| SecretEnv { env, key }))
        .collect()
    }

    /// Pod env entries reading the credentials from the Secret. Optional, so a Secret deleted
    /// later never blocks a Ray pod from starting (the collector then reports the missing setting).
    pub fn secret_env_vars(&self) -> Vec<EnvVar> {
        let Some(r) = &self.credentials_secret_ref else {
            return Vec::new();
        };
        self.secret_env()
            .into_iter()
            .map(|s| EnvVar {
                name: s.env.to_string(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: r.name.clone(),
                        key: s.key,
                        optional: Some(true),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect()
    }

    /// Validates the settings plus the resolved secret values with the storage crate's own
    /// rules, giving the configuration the collector and server will end up with.
    pub fn storage_config(
        &self,
        secrets: &BTreeMap<&'static str, String>,
    ) -> Result<StorageConfig, ConfigError> {
        let plain = self.settings().into_iter().map(|(k, v)| (k, Some(v)));
        let secret = secrets
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.clone())));
        // Never merge a config file the operator's own pod might have.
        Settings::new(Some(PathBuf::from("/dev/null")), plain.chain(secret)).resolve()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HistoryStorage {
        let path = ray_history_testkit::workspace_root().join("config/samples/historystorage.yaml");
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    const CONNECTION: &str = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://azurite.ray.svc:10000/devstoreaccount1;";

    /// The CRD's enum (there for its schema) spells each mode as the storage crate does.
    #[test]
    fn auth_modes_are_the_storage_crates() {
        for name in AUTH_MODES {
            let mode: AzureAuthMode = serde_json::from_value(name.into()).unwrap();
            assert_eq!(mode.as_str(), name);
        }
    }

    #[test]
    fn settings_use_the_environment_names_the_storage_crate_reads() {
        let hs = sample();
        let expected = [
            ("AZURE_STORAGE_CONTAINER", "ray-historyserver"),
            (
                "AZURE_STORAGE_ENDPOINT",
                "http://azurite.ray.svc:10000/devstoreaccount1",
            ),
            ("STORAGE", "azureblob"),
            ("STORAGE_CREATE_CONTAINER", "true"),
            ("STORAGE_PREFIX", "kind"),
        ];
        let expected: BTreeMap<String, String> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(hs.spec.settings(), expected);
        assert_eq!(hs.config_map_name(), "history-storage");
        assert_eq!(
            hs.spec.secret_env(),
            vec![SecretEnv {
                env: "AZURE_STORAGE_CONNECTION_STRING",
                key: "connectionString".into()
            }]
        );
    }

    #[test]
    fn sample_resolves_to_the_configuration_the_collector_gets() {
        let secrets = BTreeMap::from([("AZURE_STORAGE_CONNECTION_STRING", CONNECTION.to_string())]);
        let config = sample().spec.storage_config(&secrets).expect("valid");
        assert_eq!(config.kind(), ray_history_storage::StorageKind::AzureBlob);
        assert_eq!(config.prefix.as_deref(), Some("kind"));
        assert!(
            config.describe().contains("ray-historyserver"),
            "{}",
            config.describe()
        );
        assert!(
            !format!("{config:?}").contains("Eby8vdM02"),
            "secrets redacted in Debug"
        );
    }

    #[test]
    fn invalid_settings_name_the_setting() {
        let mut hs = sample();
        hs.spec.azureblob.as_mut().unwrap().auth_mode = Some(AzureAuthMode::AccountKey);
        hs.spec.azureblob.as_mut().unwrap().account_name = None;
        let err = hs
            .spec
            .storage_config(&BTreeMap::new())
            .expect_err("no key");
        assert!(err.to_string().contains("AZURE_STORAGE_ACCOUNT"), "{err}");

        let mut s3 = sample();
        s3.spec.storage = StorageBackend::S3;
        let err = s3
            .spec
            .storage_config(&BTreeMap::new())
            .expect_err("no bucket");
        assert!(err.to_string().contains("S3_BUCKET"), "{err}");
        assert_eq!(s3.spec.settings()["STORAGE"], "s3");
    }
}
