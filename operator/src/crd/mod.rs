//! The custom resources: [`HistoryStorage`](storage::HistoryStorage) and
//! [`HistoryServer`](server::HistoryServer) in `rayhistory.io/v1alpha1`, generated from these
//! Rust types, plus the status conditions both share and the defaults of the containers the
//! operator adds (resources, security context).

pub mod server;
pub mod storage;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, EnvVar, EnvVarSource, ObjectFieldSelector, ResourceRequirements, SeccompProfile,
    SecurityContext,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResourceExt;

/// API group of the custom resources.
pub const GROUP: &str = "rayhistory.io";
/// Field manager for server-side apply.
pub const MANAGER: &str = "ray-history-operator";

/// Every CRD this operator serves.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![storage::HistoryStorage::crd(), server::HistoryServer::crd()]
}

/// The CRDs as one multi-document YAML stream (what `ray-history-operator crd` prints and
/// what the chart's `crds/` folder holds).
pub fn to_yaml() -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}

/// Builds a condition, keeping `lastTransitionTime` from `previous` when the status is
/// unchanged so that re-reconciles do not look like transitions.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(jiff::Timestamp::now()));
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time,
    }
}

/// An `Unknown` condition (e.g. storage not probed because the Secret is missing).
pub fn unknown(
    previous: &[Condition],
    type_: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    let mut c = condition(previous, type_, false, reason, message, generation);
    c.status = "Unknown".to_string();
    if let Some(p) = previous
        .iter()
        .find(|p| p.type_ == type_ && p.status == "Unknown")
    {
        c.last_transition_time = p.last_transition_time.clone();
    }
    c
}

/// An environment variable from the pod's own fields (the Downward API), e.g.
/// `metadata.namespace`.
pub fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Container resources: requests `cpu` and `memory`, limits memory to `memory_limit`.
pub fn resources(cpu: &str, memory: &str, memory_limit: &str) -> ResourceRequirements {
    let q = |s: &str| Quantity(s.to_string());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), q(cpu)),
            ("memory".into(), q(memory)),
        ])),
        limits: Some(BTreeMap::from([("memory".into(), q(memory_limit))])),
        ..Default::default()
    }
}

/// Security context of the containers the operator adds, passing Pod Security `restricted`: no
/// privilege escalation, non-root, the runtime's default seccomp profile, a read-only root
/// filesystem and no capabilities. (Every image of ours runs as a numeric non-root user.)
pub fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..Default::default()
        }),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
