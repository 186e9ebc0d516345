//! `HistoryServer`: a Deployment of `ray-history-server` reading one `HistoryStorage`, with a
//! Service and optionally Ray's own dashboard UI copied from a Ray image.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::storage::PullPolicy;

/// Default history server image (the chart passes its own).
pub const DEFAULT_SERVER_IMAGE: &str = "ghcr.io/ray-history/ray-history-server:0.1.0";

/// A history server deployment.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "rayhistory.io",
    version = "v1alpha1",
    kind = "HistoryServer",
    namespaced,
    status = "HistoryServerStatus",
    shortname = "hsv",
    category = "rayhistory",
    doc = "A Ray History server reading one HistoryStorage.",
    printcolumn = r#"{"name":"Storage","type":"string","jsonPath":".spec.storageRef.name"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct HistoryServerSpec {
    /// The `HistoryStorage` (same namespace) to read.
    pub storage_ref: StorageRef,
    /// Replicas (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 20))]
    pub replicas: Option<i32>,
    /// Server image (default: the operator's --server-image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image pull policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// The Service in front of the server.
    #[serde(default)]
    pub service: ServiceSpec,
    /// Server resources (default 100m/256Mi requests, 1Gi limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Byte budget of the loaded-session cache, e.g. 536870912.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1048576))]
    pub cache_max_bytes: Option<i64>,
    /// Serve Ray's dashboard UI, copied from a Ray image by an init container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ray_dashboard: Option<RayDashboardSpec>,
    /// Who may see which namespace's sessions (default: everyone sees all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// Which stored sessions the server deletes (default: none). One replica sweeps: the
    /// replicas elect it with a Lease (the chart's server-retention ClusterRole is bound to
    /// the server's ServiceAccount for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
}

/// What a retention policy keeps: a limit left out is no limit.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetentionLimits {
    /// Delete sessions that started longer ago than this, e.g. 30d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^([0-9]+(s|m|h|d))+$"), length(max = 32))]
    pub max_age: Option<String>,
    /// Keep at most this many sessions per cluster (the newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_sessions_per_cluster: Option<i64>,
    /// Keep at most this many bytes of sessions per namespace (the newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_bytes_per_namespace: Option<i64>,
}

/// Retention of a history server's sessions.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// The limits of sessions no rule matches.
    #[serde(flatten)]
    pub limits: RetentionLimits,
    /// Never delete a session that ended within this time (default 1h); durations are whole
    /// numbers of s, m, h or d, e.g. 1h30m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^([0-9]+(s|m|h|d))+$"), length(max = 32))]
    pub grace: Option<String>,
    /// How often the sweeper runs (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^([0-9]+(s|m|h|d))+$"), length(max = 32))]
    pub interval: Option<String>,
    /// Limits of particular namespaces or clusters; the first rule that matches a session
    /// applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub rules: Vec<RetentionRule>,
}

/// Limits for one namespace, one cluster name, or one cluster of one namespace.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.__namespace__) || has(self.cluster)").message("a retention rule names a namespace or a cluster"))]
pub struct RetentionRule {
    /// The namespace it applies to (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// The cluster name it applies to (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub cluster: Option<String>,
    /// Its limits.
    #[serde(flatten)]
    pub limits: RetentionLimits,
}

/// The server's `--auth` settings.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'header' || (has(self.trustedProxies) && size(self.trustedProxies) > 0 && has(self.aclConfigMap))").message("header mode needs trustedProxies and aclConfigMap"))]
pub struct AuthSpec {
    /// none, header (a trusted proxy's user and groups) or kubernetes (TokenReview and
    /// SubjectAccessReview; the server's ServiceAccount needs the chart's server-auth
    /// ClusterRole).
    #[serde(default)]
    pub mode: AuthMode,
    /// kubernetes: audiences the token must be valid for (default: the API server's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_audiences: Vec<String>,
    /// kubernetes: the access a user needs in a namespace to see its sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_review: Option<AccessReviewSpec>,
    /// kubernetes: how long review answers are reused, e.g. 30s (at most 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(ms|s|m)$')").message("cacheTTL is a duration such as 500ms, 30s or 1m"))]
    #[x_kube(validation = Rule::new("!self.matches('^[0-9]+(ms|s|m)$') || duration(self) <= duration('1h')").message("cacheTTL is at most 1h"))]
    #[serde(rename = "cacheTTL")]
    pub cache_ttl: Option<String>,
    /// header: addresses or networks of the proxies whose forwarded identity is believed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// header: the ConfigMap (same namespace) with the ACL file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl_config_map: Option<AclConfigMapRef>,
}

/// Authentication modes of the server.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Everyone sees every namespace.
    #[default]
    None,
    /// The user and groups a trusted proxy forwards, mapped to namespaces by an ACL.
    Header,
    /// Bearer tokens reviewed by the Kubernetes API server.
    Kubernetes,
}

impl AuthMode {
    /// The server's `--auth` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Header => "header",
            Self::Kubernetes => "kubernetes",
        }
    }
}

/// The SubjectAccessReview a user must pass in a namespace (default `get` on
/// `rayclusters.ray.io`).
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccessReviewSpec {
    /// Verb, e.g. get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    /// API group, e.g. ray.io (empty for the core group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Resource, e.g. rayclusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// A key of a ConfigMap holding the ACL file.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AclConfigMapRef {
    /// ConfigMap name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the ACL YAML (default acl.yaml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Reference to a `HistoryStorage`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StorageRef {
    /// Name of the `HistoryStorage`.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Service settings.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type (default ClusterIP).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,
    /// Service port (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Extra Service annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Service types.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    /// Cluster-internal.
    ClusterIP,
    /// A port on every node.
    NodePort,
    /// A cloud load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}

/// Where to copy Ray's dashboard build from.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RayDashboardSpec {
    /// A Ray image with `ray[default]`, e.g. rayproject/ray:2.60.0.
    #[schemars(length(min = 1))]
    pub image: String,
}

/// Observed state of a `HistoryServer`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryServerStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready pods of the Deployment.
    #[serde(default)]
    pub ready_replicas: i32,
    /// In-cluster URL of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `StorageResolved` and `Ready`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}
