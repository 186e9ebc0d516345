//! The pod mutation itself, free of HTTP and Kubernetes clients: choose the `HistoryStorage`
//! that covers a KubeRay pod and add the collector as a native sidecar.
//!
//! KubeRay puts the Ray container first (`containers[0]`); the collector shares its `/tmp/ray`
//! (reusing the volume already mounted there, else an `emptyDir`) and starts before it, so it
//! sees every file and outlives it on shutdown for the final flush.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, EnvVar, Pod,
    ResourceRequirements, Volume, VolumeMount,
};
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use crate::crd::storage::{COLLECTOR_CONTAINER, EventsMode, HistoryStorage};

/// KubeRay's node-type label (`head` or `worker`).
pub const NODE_TYPE_LABEL: &str = "ray.io/node-type";
/// KubeRay's cluster-name label.
pub const CLUSTER_LABEL: &str = "ray.io/cluster";
/// KubeRay's label naming the kind of the custom resource that created the cluster.
pub const ORIGIN_KIND_LABEL: &str = "ray.io/originated-from-crd";
/// KubeRay's label naming the custom resource that created the cluster.
pub const ORIGIN_NAME_LABEL: &str = "ray.io/originated-from-cr-name";
/// Annotation recording the injection (value: the `HistoryStorage` name).
pub const INJECTED_ANNOTATION: &str = "rayhistory.io/injected";
/// Pod annotation to opt out (`"false"`).
pub const INJECT_ANNOTATION: &str = "rayhistory.io/inject";
/// Where Ray keeps its sessions.
pub const RAY_TMP: &str = "/tmp/ray";
/// Volume added when the Ray container has none at `/tmp/ray`.
pub const TMP_VOLUME: &str = "ray-history-tmp";
/// The collector's own volume for its checkpoint and event spool: Ray's user code shares
/// `/tmp/ray` and must not be able to rewrite them.
pub const STATE_VOLUME: &str = "ray-history-state";
/// Where the collector mounts [`STATE_VOLUME`].
pub const STATE_DIR: &str = "/var/lib/ray-history";
/// Collector metrics port.
pub const METRICS_PORT: i32 = 9091;
/// Default grace period: long enough for the collector's final flush.
pub const DEFAULT_GRACE_SECONDS: i64 = 60;

/// Why a pod was left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not a KubeRay head or worker pod.
    NotRay,
    /// The pod opted out with `rayhistory.io/inject: "false"`.
    OptedOut,
    /// Already carries the collector.
    AlreadyInjected,
    /// No `HistoryStorage` with `collector.inject: true` and a written ConfigMap matches.
    NoStorage,
}

impl Skip {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NotRay => "not_ray",
            Skip::OptedOut => "opted_out",
            Skip::AlreadyInjected => "already_injected",
            Skip::NoStorage => "no_storage",
        }
    }
}

/// Picks the `HistoryStorage` for `pod` among `storages` of the pod's namespace, or why none.
/// Several matches resolve to the first by name, so the choice is stable.
pub fn select<'a>(pod: &Pod, storages: &'a [HistoryStorage]) -> Result<&'a HistoryStorage, Skip> {
    let labels = pod.labels();
    let node_type = labels.get(NODE_TYPE_LABEL).map(String::as_str);
    if !matches!(node_type, Some("head" | "worker")) || !labels.contains_key(CLUSTER_LABEL) {
        return Err(Skip::NotRay);
    }
    if pod.annotations().get(INJECT_ANNOTATION).map(String::as_str) == Some("false") {
        return Err(Skip::OptedOut);
    }
    if is_injected(pod) {
        return Err(Skip::AlreadyInjected);
    }
    let mut candidates: Vec<&HistoryStorage> = storages
        .iter()
        .filter(|s| s.spec.collector.inject)
        .filter(|s| s.status.as_ref().is_some_and(|st| st.config_map.is_some()))
        .filter(|s| selector_matches(s, labels))
        .collect();
    candidates.sort_by_key(|s| s.name_any());
    candidates.first().copied().ok_or(Skip::NoStorage)
}

fn selector_matches(storage: &HistoryStorage, labels: &BTreeMap<String, String>) -> bool {
    match &storage.spec.collector.pod_selector {
        None => true,
        // An unparseable selector selects nothing rather than everything.
        Some(sel) => Selector::try_from(sel.clone()).is_ok_and(|s| s.matches(labels)),
    }
}

/// Whether the collector is already in the pod.
pub fn is_injected(pod: &Pod) -> bool {
    let named = |cs: &[Container]| cs.iter().any(|c| c.name == COLLECTOR_CONTAINER);
    pod.annotations().contains_key(INJECTED_ANNOTATION)
        || pod.spec.as_ref().is_some_and(|s| {
            named(&s.containers) || s.init_containers.as_deref().is_some_and(named)
        })
}

/// The custom resource a Ray cluster belongs to (`RayJob`, `RayService`, or the `RayCluster`
/// itself), as the collector records it in `metadata.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Kind, e.g. `RayJob`.
    pub kind: String,
    /// Name of the object.
    pub name: String,
}

impl Owner {
    /// From KubeRay's origin labels, which it puts on the RayCluster (not on its pods): `cluster`
    /// is the RayCluster's labels when known, else the pod's own are tried, else the
    /// RayCluster is its own owner.
    pub fn of(pod: &Pod, cluster: Option<&BTreeMap<String, String>>) -> Owner {
        let labels = pod.labels();
        let origin = |key: &str| {
            cluster
                .and_then(|c| c.get(key))
                .or_else(|| labels.get(key))
                .cloned()
        };
        match (origin(ORIGIN_KIND_LABEL), origin(ORIGIN_NAME_LABEL)) {
            (Some(kind), Some(name)) => Owner { kind, name },
            _ => Owner {
                kind: "RayCluster".to_string(),
                name: labels.get(CLUSTER_LABEL).cloned().unwrap_or_default(),
            },
        }
    }
}

/// The name of the pod's `RayCluster` owner, if it has one.
pub fn ray_cluster_owner(pod: &Pod) -> Option<&str> {
    pod.owner_references()
        .iter()
        .find(|o| o.kind == "RayCluster")
        .map(|o| o.name.as_str())
}

/// Returns `pod` with the collector injected for `storage`.
pub fn inject(pod: &Pod, storage: &HistoryStorage, owner: &Owner, default_image: &str) -> Pod {
    let mut pod = pod.clone();
    let labels = pod.labels().clone();
    let cluster_id = pod
        .owner_references()
        .iter()
        .find(|o| o.kind == "RayCluster")
        .map(|o| o.uid.clone());
    let collector_spec = &storage.spec.collector;
    pod.annotations_mut()
        .insert(INJECTED_ANNOTATION.to_string(), storage.name_any());
    let spec = pod.spec.get_or_insert_with(Default::default);

    // Share /tmp/ray with the Ray container, reusing its volume when it has one there.
    let ray = spec.containers.first_mut();
    let existing = ray.as_ref().and_then(|c| {
        c.volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path.trim_end_matches('/') == RAY_TMP)
            .map(|m| m.name.clone())
    });
    let volume = match existing {
        Some(name) => name,
        None => {
            spec.volumes.get_or_insert_with(Vec::new).push(Volume {
                name: TMP_VOLUME.to_string(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            });
            if let Some(ray) = spec.containers.first_mut() {
                ray.volume_mounts
                    .get_or_insert_with(Vec::new)
                    .push(VolumeMount {
                        name: TMP_VOLUME.to_string(),
                        mount_path: RAY_TMP.to_string(),
                        ..Default::default()
                    });
            }
            TMP_VOLUME.to_string()
        }
    };
    if let Some(ray) = spec.containers.first_mut() {
        add_env_if_absent(ray, ray_event_env(collector_spec.events));
    }

    let mut env = vec![
        plain("RAY_TMP_ROOT", RAY_TMP),
        plain("RAY_CLUSTER_NAME", &labels[CLUSTER_LABEL]),
        crate::crd::field_env("RAY_CLUSTER_NAMESPACE", "metadata.namespace"),
        plain("RAY_NODE_TYPE", &labels[NODE_TYPE_LABEL]),
        crate::crd::field_env("POD_NAME", "metadata.name"),
        crate::crd::field_env("POD_IP", "status.podIP"),
    ];
    if let Some(id) = cluster_id {
        env.push(plain("RAY_CLUSTER_ID", &id));
    }
    // The head's collector snapshots the State API the dashboard serves in the same pod.
    if labels[NODE_TYPE_LABEL] == "head" {
        let port = dashboard_port(spec.containers.first());
        env.push(plain(
            "RAY_DASHBOARD_URL",
            &format!("http://127.0.0.1:{port}"),
        ));
    }
    env.push(plain("OWNER_KIND", &owner.kind));
    env.push(plain("OWNER_NAME", &owner.name));
    env.extend(storage.spec.secret_env_vars());

    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: STATE_VOLUME.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    let mut args = vec![
        "run".to_string(),
        "--state-dir".to_string(),
        STATE_DIR.to_string(),
    ];
    if let Some(interval) = &collector_spec.flush_interval {
        args.extend(["--flush-interval".to_string(), interval.clone()]);
    }
    args.extend([
        "--metrics-listen".to_string(),
        format!("0.0.0.0:{METRICS_PORT}"),
    ]);

    let collector = Container {
        name: COLLECTOR_CONTAINER.to_string(),
        image: Some(
            collector_spec
                .image
                .clone()
                .unwrap_or(default_image.to_string()),
        ),
        image_pull_policy: collector_spec
            .image_pull_policy
            .map(|p| p.as_str().to_string()),
        args: Some(args),
        env: Some(env),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: storage.config_map_name(),
                optional: Some(true),
            }),
            ..Default::default()
        }]),
        // A native sidecar: starts before the Ray container and stops after it.
        restart_policy: Some("Always".to_string()),
        ports: Some(vec![ContainerPort {
            name: Some("history-metrics".to_string()),
            container_port: METRICS_PORT,
            protocol: Some("TCP".to_string()),
            ..Default::default()
        }]),
        resources: Some(
            collector_spec
                .resources
                .clone()
                .unwrap_or_else(default_resources),
        ),
        security_context: Some(crate::crd::restricted()),
        volume_mounts: Some(vec![
            VolumeMount {
                name: volume,
                mount_path: RAY_TMP.to_string(),
                ..Default::default()
            },
            VolumeMount {
                name: STATE_VOLUME.to_string(),
                mount_path: STATE_DIR.to_string(),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    spec.init_containers
        .get_or_insert_with(Vec::new)
        .insert(0, collector);

    let grace = collector_spec
        .termination_grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    let current = spec.termination_grace_period_seconds.unwrap_or(30);
    spec.termination_grace_period_seconds = Some(current.max(grace));
    pod
}

/// The Ray container's dashboard port (KubeRay names it `dashboard`; Ray's default 8265).
fn dashboard_port(ray: Option<&Container>) -> i32 {
    ray.and_then(|c| c.ports.as_ref())
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| p.name.as_deref() == Some("dashboard"))
        })
        .map_or(8265, |p| p.container_port)
}

/// The environment that makes Ray emit the events the collector stores.
pub fn ray_event_env(mode: EventsMode) -> Vec<EnvVar> {
    match mode {
        EventsMode::Files => vec![plain("RAY_enable_export_api_write", "1")],
        EventsMode::Http => vec![
            plain("RAY_enable_ray_event", "1"),
            plain("RAY_enable_core_worker_ray_event_to_aggregator", "1"),
            plain(
                "RAY_DASHBOARD_AGGREGATOR_AGENT_EVENTS_EXPORT_ADDR",
                "http://127.0.0.1:8084/v1/events",
            ),
        ],
    }
}

/// Adds env vars the user has not set themselves (their values win).
fn add_env_if_absent(container: &mut Container, vars: Vec<EnvVar>) {
    let env = container.env.get_or_insert_with(Vec::new);
    for var in vars {
        if !env.iter().any(|e| e.name == var.name) {
            env.push(var);
        }
    }
}

fn default_resources() -> ResourceRequirements {
    crate::crd::resources("50m", "64Mi", "256Mi")
}

fn plain(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::api::ObjectMeta;

    use super::*;

    fn ray_pod(node_type: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("c-head-1".into()),
                namespace: Some("ray".into()),
                labels: Some(BTreeMap::from([
                    (NODE_TYPE_LABEL.to_string(), node_type.to_string()),
                    (CLUSTER_LABEL.to_string(), "c".to_string()),
                ])),
                owner_references: Some(vec![OwnerReference {
                    api_version: "ray.io/v1".into(),
                    kind: "RayCluster".into(),
                    name: "c".into(),
                    uid: "uid-1".into(),
                    controller: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                containers: vec![Container {
                    name: "ray-head".into(),
                    image: Some("rayproject/ray:2.60.0".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        }
    }

    fn env<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value.as_deref())
    }

    #[test]
    fn the_owner_comes_from_the_ray_cluster_labels() {
        let pod = ray_pod("head");
        let cluster = pod.labels()[CLUSTER_LABEL].clone();
        assert_eq!(
            Owner::of(&pod, None),
            Owner {
                kind: "RayCluster".into(),
                name: cluster.clone()
            }
        );
        // KubeRay labels the RayJob's RayCluster, not its pods.
        let labels = BTreeMap::from([
            (ORIGIN_KIND_LABEL.to_string(), "RayJob".to_string()),
            (ORIGIN_NAME_LABEL.to_string(), "squares".to_string()),
        ]);
        assert_eq!(
            Owner::of(&pod, Some(&labels)),
            Owner {
                kind: "RayJob".into(),
                name: "squares".into()
            }
        );
        let storage: HistoryStorage = serde_json::from_value(serde_json::json!({
            "apiVersion": "rayhistory.io/v1alpha1", "kind": "HistoryStorage",
            "metadata": {"name": "h", "namespace": "ray"},
            "spec": {"storage": "azureblob", "collector": {"inject": true}}
        }))
        .unwrap();
        let injected = inject(&pod, &storage, &Owner::of(&pod, Some(&labels)), "c:1");
        let collector = &injected.spec.unwrap().init_containers.unwrap()[0];
        assert_eq!(env(collector, "OWNER_KIND"), Some("RayJob"));
        assert_eq!(env(collector, "OWNER_NAME"), Some("squares"));
    }

    #[test]
    fn http_events_point_ray_at_the_collector() {
        let mut storage = HistoryStorage::test().configured();
        storage.spec.collector.events = EventsMode::Http;
        let head = ray_pod("head");
        let pod = inject(&head, &storage, &Owner::of(&head, None), "collector:1");
        let ray = &pod.spec.as_ref().unwrap().containers[0];
        assert_eq!(env(ray, "RAY_enable_ray_event"), Some("1"));
        assert_eq!(
            env(ray, "RAY_enable_core_worker_ray_event_to_aggregator"),
            Some("1")
        );
        assert_eq!(
            env(ray, "RAY_DASHBOARD_AGGREGATOR_AGENT_EVENTS_EXPORT_ADDR"),
            Some("http://127.0.0.1:8084/v1/events")
        );
        assert_eq!(
            env(ray, "RAY_enable_export_api_write"),
            None,
            "the two modes exclude each other"
        );
        let collector = &pod.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
        assert_eq!(env(collector, "RAY_CLUSTER_ID"), Some("uid-1"));
        assert_eq!(
            env(collector, "RAY_DASHBOARD_URL"),
            Some("http://127.0.0.1:8265")
        );
        let worker = ray_pod("worker");
        let worker = inject(&worker, &storage, &Owner::of(&worker, None), "collector:1");
        let worker_collector = &worker.spec.unwrap().init_containers.unwrap()[0];
        assert_eq!(env(worker_collector, "RAY_DASHBOARD_URL"), None);
        assert_eq!(collector.image.as_deref(), Some("collector:1"));
        // Checkpoint and spool on a volume only the collector mounts.
        let args = collector.args.clone().unwrap();
        assert!(
            args.windows(2).any(|w| w == ["--state-dir", STATE_DIR]),
            "{args:?}"
        );
        let mounts = |c: &Container| -> Vec<String> {
            c.volume_mounts
                .iter()
                .flatten()
                .map(|m| m.name.clone())
                .collect()
        };
        assert!(mounts(collector).contains(&STATE_VOLUME.to_string()));
        assert!(!mounts(ray).contains(&STATE_VOLUME.to_string()));
    }

    #[test]
    fn selection_is_stable_and_respects_selectors() {
        let mut b = HistoryStorage::test().configured();
        b.metadata.name = Some("b".into());
        let mut a = HistoryStorage::test().configured();
        a.metadata.name = Some("a".into());
        let pod = ray_pod("worker");
        assert_eq!(
            select(&pod, &[b.clone(), a.clone()]).unwrap().name_any(),
            "a"
        );

        a.spec.collector.pod_selector = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                match_labels: Some(BTreeMap::from([("team".to_string(), "ml".to_string())])),
                ..Default::default()
            },
        );
        assert_eq!(
            select(&pod, &[b.clone(), a]).unwrap().name_any(),
            "b",
            "a's selector does not match"
        );
        assert_eq!(select(&ray_pod("redis"), &[b]).unwrap_err(), Skip::NotRay);
    }
}
