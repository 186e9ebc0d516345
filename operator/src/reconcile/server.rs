//! `HistoryServer` reconcile: ServiceAccount, Deployment and Service for `ray-history-server`,
//! reading the storage of the referenced `HistoryStorage` (its ConfigMap and Secret keys);
//! `spec.auth` becomes the server's `--auth*` flags (in `kubernetes` mode the pod mounts its
//! ServiceAccount token; the chart's `server-auth` ClusterRole is bound to that account, and
//! the `ReviewsAllowed` condition says whether it is); `spec.retention` becomes its
//! `--retention*` flags, with a RoleBinding of the chart's server-retention ClusterRole for the
//! sweeper's Lease; status reports ready replicas, the in-cluster URL and conditions.
//!
//! Over 600 lines: every object a history server needs is built here side by side, so that their
//! names, labels and flags agree; its unit tests follow them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, HTTPGetAction, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, Service, ServiceAccount, ServicePort, ServiceSpec,
    Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};

use super::{Context, apply, apply_status};
use crate::Result;
use crate::crd::server::{AuthMode, AuthSpec, HistoryServer, HistoryServerStatus, RetentionSpec};
use crate::crd::storage::HistoryStorage;
use crate::crd::{self, MANAGER};

/// Condition: the referenced `HistoryStorage` exists and has written its ConfigMap.
pub const STORAGE_RESOLVED: &str = "StorageResolved";
/// Condition: every replica is ready.
pub const READY: &str = "Ready";
/// Condition (auth mode kubernetes): the server's ServiceAccount may create the TokenReviews
/// and SubjectAccessReviews it answers with.
pub const REVIEWS_ALLOWED: &str = "ReviewsAllowed";
/// Port the server listens on.
pub const HTTP_PORT: i32 = 8080;
/// Where the init container puts Ray's dashboard build.
pub const DASHBOARD_DIR: &str = "/ray-dashboard";
/// Where `header` mode's ACL ConfigMap is mounted.
pub const ACL_DIR: &str = "/etc/ray-history-auth";

/// Reconciles one `HistoryServer`.
pub async fn reconcile(hs: Arc<HistoryServer>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = hs.reconcile(&ctx).await;
    ctx.metrics
        .reconciled("HistoryServer", result.is_ok(), started.elapsed());
    result
}

/// The servers in `store` that read `storage` (to re-reconcile them when it changes).
pub fn referencing(
    store: &Store<HistoryServer>,
    storage: &HistoryStorage,
) -> Vec<ObjectRef<HistoryServer>> {
    store
        .state()
        .iter()
        .filter(|s| {
            s.namespace() == storage.namespace() && s.spec.storage_ref.name == storage.name_any()
        })
        .map(|s| ObjectRef::from(s.as_ref()))
        .collect()
}

impl HistoryServer {
    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        let ns = self.namespace().unwrap_or_default();
        let generation = self.metadata.generation;
        let previous = self.status.clone().unwrap_or_default();
        let prev = previous.conditions.as_slice();
        let mut status = HistoryServerStatus {
            observed_generation: generation,
            ..Default::default()
        };
        let storage_name = &self.spec.storage_ref.name;
        let storages: Api<HistoryStorage> = Api::namespaced(ctx.client.clone(), &ns);
        let storage = storages.get_opt(storage_name).await?;
        let usable =
            storage.filter(|s| s.status.as_ref().is_some_and(|st| st.config_map.is_some()));
        let Some(storage) = usable else {
            let message = format!("HistoryStorage {storage_name} not found or not configured yet");
            status.conditions.push(crd::condition(
                prev,
                STORAGE_RESOLVED,
                false,
                "StorageNotReady",
                message.clone(),
                generation,
            ));
            status.conditions.push(crd::condition(
                prev,
                READY,
                false,
                "StorageNotReady",
                message.clone(),
                generation,
            ));
            self.finish(ctx, &ns, &previous, status, false).await?;
            return Ok(Action::requeue(ctx.settings.retry_interval));
        };
        status.conditions.push(crd::condition(
            prev,
            STORAGE_RESOLVED,
            true,
            "Resolved",
            format!("reading HistoryStorage {storage_name}"),
            generation,
        ));

        let owner = self.controller_owner_ref(&()).map(|o| vec![o]);
        apply(ctx, &ns, &self.service_account(owner.clone())).await?;
        if self.spec.retention.is_some() {
            apply(ctx, &ns, &self.retention_role_binding(ctx, owner.clone())).await?;
        }
        let deployment = apply(ctx, &ns, &self.deployment(&storage, ctx, owner.clone())).await?;
        apply(ctx, &ns, &self.service(owner)).await?;

        // Without the rights, every request to the server would answer 503: say why here.
        let mut reviews_allowed = true;
        if self.spec.auth.as_ref().map(|a| a.mode) == Some(AuthMode::Kubernetes) {
            let missing = self.missing_review_rights(ctx, &ns).await?;
            reviews_allowed = missing.is_empty();
            let (reason, message) = if reviews_allowed {
                (
                    "Allowed",
                    "the ServiceAccount may create tokenreviews and subjectaccessreviews"
                        .to_string(),
                )
            } else {
                (
                    "NotBound",
                    format!(
                        "ServiceAccount {ns}/{} may not create {}: bind the chart's server-auth \
                         ClusterRole to it (Helm value serverAuth.serviceAccounts)",
                        self.name_any(),
                        missing.join(" or ")
                    ),
                )
            };
            status.conditions.push(crd::condition(
                prev,
                REVIEWS_ALLOWED,
                reviews_allowed,
                reason,
                message,
                generation,
            ));
        }

        let wanted = self.spec.replicas.unwrap_or(1);
        let ready = deployment
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        let port = self.spec.service.port.unwrap_or(80);
        status.ready_replicas = ready;
        status.url = Some(format!("http://{}.{ns}.svc:{port}", self.name_any()));
        let all_ready = ready >= wanted && wanted > 0 && reviews_allowed;
        let (reason, message) = if !reviews_allowed {
            (
                "ReviewsNotAllowed",
                "the server cannot review tokens (see ReviewsAllowed)".to_string(),
            )
        } else if all_ready {
            ("Available", format!("{ready}/{wanted} replicas ready"))
        } else {
            ("Progressing", format!("{ready}/{wanted} replicas ready"))
        };
        status.conditions.push(crd::condition(
            prev, READY, all_ready, reason, message, generation,
        ));
        self.finish(ctx, &ns, &previous, status, all_ready).await?;
        Ok(Action::requeue(if all_ready {
            ctx.settings.probe_interval
        } else {
            ctx.settings.retry_interval
        }))
    }

    /// Which of `tokenreviews` and `subjectaccessreviews` the server's ServiceAccount may not
    /// create, by asking the API server's authorizer.
    async fn missing_review_rights(&self, ctx: &Context, ns: &str) -> Result<Vec<&'static str>> {
        let user = format!("system:serviceaccount:{ns}:{}", self.name_any());
        let reviews: Api<SubjectAccessReview> = Api::all(ctx.client.clone());
        let mut missing = Vec::new();
        for (group, resource) in [
            ("authentication.k8s.io", "tokenreviews"),
            ("authorization.k8s.io", "subjectaccessreviews"),
        ] {
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(user.clone()),
                    // A ServiceAccount's groups, as the API server gives them to its tokens.
                    groups: Some(vec![
                        "system:serviceaccounts".to_string(),
                        format!("system:serviceaccounts:{ns}"),
                        "system:authenticated".to_string(),
                    ]),
                    resource_attributes: Some(ResourceAttributes {
                        group: Some(group.to_string()),
                        resource: Some(resource.to_string()),
                        verb: Some("create".to_string()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let answer = reviews.create(&PostParams::default(), &review).await?;
            if !answer.status.is_some_and(|s| s.allowed) {
                missing.push(resource);
            }
        }
        Ok(missing)
    }

    /// Patches the status and publishes an Event when `Ready` changed.
    async fn finish(
        &self,
        ctx: &Context,
        ns: &str,
        previous: &HistoryServerStatus,
        status: HistoryServerStatus,
        ready: bool,
    ) -> Result<()> {
        let key = |s: &HistoryServerStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == READY)
                .map(|c| (c.status.clone(), c.reason.clone()))
        };
        let changed = key(previous) != key(&status);
        let note = status
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .map(|c| (c.reason.clone(), c.message.clone()));
        apply_status(ctx, ns, self, &status).await?;
        if let (true, Some((reason, message))) = (changed, note) {
            ctx.event(self, !ready, &reason, message).await;
        }
        Ok(())
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "app.kubernetes.io/name".to_string(),
                "ray-history-server".to_string(),
            ),
            ("app.kubernetes.io/instance".to_string(), self.name_any()),
        ])
    }

    fn meta(
        &self,
        owner: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
    ) -> ObjectMeta {
        let mut labels = self.labels();
        labels.insert(
            "app.kubernetes.io/managed-by".to_string(),
            MANAGER.to_string(),
        );
        ObjectMeta {
            name: Some(self.name_any()),
            namespace: self.namespace(),
            labels: Some(labels),
            owner_references: owner,
            ..Default::default()
        }
    }

    fn service_account(
        &self,
        owner: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
    ) -> ServiceAccount {
        ServiceAccount {
            metadata: self.meta(owner),
            // Mounted by the pod only when it reviews tokens (`auth.mode: kubernetes`).
            automount_service_account_token: Some(false),
            ..Default::default()
        }
    }

    /// Binds the chart's server-retention ClusterRole (Leases) to the server's account in its
    /// namespace, for the sweeper's election.
    fn retention_role_binding(
        &self,
        ctx: &Context,
        owner: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
    ) -> RoleBinding {
        let mut metadata = self.meta(owner);
        metadata.name = Some(format!("{}-retention", self.name_any()));
        RoleBinding {
            metadata,
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".to_string()),
                kind: "ClusterRole".to_string(),
                name: ctx.settings.retention_cluster_role.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".to_string(),
                name: self.name_any(),
                namespace: self.namespace(),
                ..Default::default()
            }]),
        }
    }

    fn service(
        &self,
        owner: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
    ) -> Service {
        let spec = &self.spec.service;
        let mut metadata = self.meta(owner);
        if !spec.annotations.is_empty() {
            metadata.annotations = Some(spec.annotations.clone());
        }
        Service {
            metadata,
            spec: Some(ServiceSpec {
                type_: spec.type_.map(|t| t.as_str().to_string()),
                selector: Some(self.labels()),
                ports: Some(vec![ServicePort {
                    name: Some("http".to_string()),
                    port: spec.port.unwrap_or(80),
                    target_port: Some(IntOrString::String("http".to_string())),
                    protocol: Some("TCP".to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn deployment(
        &self,
        storage: &HistoryStorage,
        ctx: &Context,
        owner: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
    ) -> Deployment {
        let spec = &self.spec;
        let mut args = vec![
            "serve".to_string(),
            "--listen".to_string(),
            format!("0.0.0.0:{HTTP_PORT}"),
        ];
        let resources = spec.resources.clone().unwrap_or_else(default_resources);
        if let Some(bytes) = spec.cache_max_bytes.or_else(|| cache_budget(&resources)) {
            args.extend(["--cache-max-bytes".to_string(), bytes.to_string()]);
        }
        let mut volumes = vec![empty_dir("tmp")];
        let mut mounts = vec![mount("tmp", "/tmp")];
        let auth = spec.auth.clone().unwrap_or_default();
        args.extend(auth_args(&auth));
        let mut env = storage.spec.secret_env_vars();
        if let Some(retention) = &spec.retention {
            args.extend(retention_args(retention, &self.name_any()));
            env.extend([
                crd::field_env("POD_NAMESPACE", "metadata.namespace"),
                crd::field_env("POD_NAME", "metadata.name"),
            ]);
        }
        // The API server is called for token reviews and for the sweeper's Lease.
        let talks_to_api = auth.mode == AuthMode::Kubernetes || spec.retention.is_some();
        if let Some(acl) = auth
            .acl_config_map
            .as_ref()
            .filter(|_| auth.mode == AuthMode::Header)
        {
            volumes.push(Volume {
                name: "auth-acl".to_string(),
                config_map: Some(ConfigMapVolumeSource {
                    name: acl.name.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            });
            mounts.push(mount("auth-acl", ACL_DIR));
        }
        let mut init_containers = Vec::new();
        if let Some(dashboard) = &spec.ray_dashboard {
            args.extend(["--ray-dashboard-dir".to_string(), DASHBOARD_DIR.to_string()]);
            volumes.push(empty_dir("ray-dashboard"));
            mounts.push(mount("ray-dashboard", DASHBOARD_DIR));
            init_containers.push(Container {
                name: "copy-ray-dashboard".to_string(),
                image: Some(dashboard.image.clone()),
                command: Some(vec![
                    "sh".to_string(),
                    "-c".to_string(),
                    COPY_DASHBOARD.to_string(),
                ]),
                volume_mounts: Some(vec![mount("ray-dashboard", DASHBOARD_DIR)]),
                security_context: Some(crd::restricted()),
                ..Default::default()
            });
        }
        let probe = |path: &str, delay| Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.to_string()),
                port: IntOrString::String("http".to_string()),
                ..Default::default()
            }),
            initial_delay_seconds: Some(delay),
            period_seconds: Some(10),
            ..Default::default()
        };
        let container = Container {
            name: "history-server".to_string(),
            image: Some(
                spec.image
                    .clone()
                    .unwrap_or_else(|| ctx.settings.server_image.clone()),
            ),
            image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
            args: Some(args),
            env: Some(env),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: storage.config_map_name(),
                    optional: Some(false),
                }),
                ..Default::default()
            }]),
            ports: Some(vec![ContainerPort {
                name: Some("http".to_string()),
                container_port: HTTP_PORT,
                protocol: Some("TCP".to_string()),
                ..Default::default()
            }]),
            readiness_probe: Some(probe("/readyz", 2)),
            liveness_probe: Some(probe("/healthz", 10)),
            resources: Some(resources),
            security_context: Some(crd::restricted()),
            volume_mounts: Some(mounts),
            ..Default::default()
        };
        Deployment {
            metadata: self.meta(owner),
            spec: DeploymentSpec {
                replicas: Some(spec.replicas.unwrap_or(1)),
                selector: LabelSelector {
                    match_labels: Some(self.labels()),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(self.labels()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        service_account_name: Some(self.name_any()),
                        // Only token reviews and the sweeper's Lease need the API server.
                        automount_service_account_token: Some(talks_to_api),
                        security_context: Some(PodSecurityContext {
                            run_as_non_root: Some(true),
                            run_as_user: Some(65532),
                            run_as_group: Some(65532),
                            fs_group: Some(65532),
                            seccomp_profile: Some(SeccompProfile {
                                type_: "RuntimeDefault".to_string(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        init_containers: (!init_containers.is_empty()).then_some(init_containers),
                        containers: vec![container],
                        volumes: Some(volumes),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

/// The server's `--retention*` flags for `retention`; the Lease is named after the server.
fn retention_args(retention: &RetentionSpec, server: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut flag = |name: &str, value: String| args.extend([format!("--{name}"), value]);
    let limits = &retention.limits;
    if let Some(age) = &limits.max_age {
        flag("retention-max-age", age.clone());
    }
    if let Some(n) = limits.max_sessions_per_cluster {
        flag("retention-max-sessions-per-cluster", n.to_string());
    }
    if let Some(n) = limits.max_bytes_per_namespace {
        flag("retention-max-bytes-per-namespace", n.to_string());
    }
    if let Some(grace) = &retention.grace {
        flag("retention-grace", grace.clone());
    }
    if let Some(interval) = &retention.interval {
        flag("retention-interval", interval.clone());
    }
    if !retention.rules.is_empty() {
        // The server reads the rules as YAML, of which JSON is a part.
        flag(
            "retention-rules",
            serde_json::to_string(&retention.rules).unwrap_or_default(),
        );
    }
    flag("retention-lease", format!("{server}-retention"));
    args
}

/// The server's `--auth*` flags for `auth`.
fn auth_args(auth: &AuthSpec) -> Vec<String> {
    let mut args = Vec::new();
    let mut flag = |name: &str, value: String| args.extend([format!("--{name}"), value]);
    match auth.mode {
        AuthMode::None => {}
        AuthMode::Header => {
            flag("auth", "header".to_string());
            flag("auth-trusted-proxies", auth.trusted_proxies.join(","));
            if let Some(acl) = &auth.acl_config_map {
                let key = acl.key.as_deref().unwrap_or("acl.yaml");
                flag("auth-acl", format!("{ACL_DIR}/{key}"));
            }
        }
        AuthMode::Kubernetes => {
            flag("auth", "kubernetes".to_string());
            if !auth.token_audiences.is_empty() {
                flag("auth-token-audiences", auth.token_audiences.join(","));
            }
            let review = auth.access_review.clone().unwrap_or_default();
            for (name, value) in [
                ("auth-sar-verb", review.verb),
                ("auth-sar-group", review.group),
                ("auth-sar-resource", review.resource),
                ("auth-cache-ttl", auth.cache_ttl.clone()),
            ] {
                if let Some(value) = value {
                    flag(name, value);
                }
            }
        }
    }
    args
}

/// Copies Ray's dashboard build (shipped in every `ray[default]` install) to the shared volume.
const COPY_DASHBOARD: &str = "set -e; src=$(python -c 'import os, ray.dashboard as d; print(os.path.dirname(d.__file__))')/client/build; cp -R \"$src/.\" /ray-dashboard/";

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        ..Default::default()
    }
}

fn default_resources() -> ResourceRequirements {
    crd::resources("100m", "256Mi", "1Gi")
}

/// A cache budget that fits the container's memory limit: half of it, leaving the other half
/// for requests in flight and session loads (bounded, see the README's Security section).
/// `None` without a limit, or with one this cannot read.
fn cache_budget(resources: &ResourceRequirements) -> Option<i64> {
    let limit = resources.limits.as_ref()?.get("memory")?;
    quantity_bytes(&limit.0).map(|bytes| bytes / 2)
}

/// Bytes of a Kubernetes memory quantity (`1Gi`, `512Mi`, `1G`, `1500000000`); written here
/// because k8s-openapi keeps quantities as strings and this is all the operator needs.
fn quantity_bytes(text: &str) -> Option<i64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let scale: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        _ => return None,
    };
    let bytes = number.parse::<f64>().ok()? * scale;
    (bytes.is_finite() && bytes >= 1.0).then_some(bytes as i64)
}

#[cfg(test)]
mod tests {
    use http::{Method, StatusCode};
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn the_default_cache_fits_the_memory_limit() {
        assert_eq!(cache_budget(&default_resources()), Some(512 * 1024 * 1024));
        for (text, bytes) in [
            ("1Gi", Some(1 << 30)),
            ("512Mi", Some(512 << 20)),
            ("1.5G", Some(1_500_000_000)),
            ("2000000", Some(2_000_000)),
            ("1Zi", None),
            ("", None),
            ("Mi", None),
        ] {
            assert_eq!(quantity_bytes(text), bytes, "{text}");
        }
        let no_limit = ResourceRequirements::default();
        assert_eq!(cache_budget(&no_limit), None);
    }
    use crate::crd::server::RayDashboardSpec;
    use crate::fixtures::{self, ApiServerVerifier, condition};
    use crate::reconcile::Settings;

    const STORAGE_PATH: &str =
        "/apis/rayhistory.io/v1alpha1/namespaces/ray/historystorages/history";
    const STATUS_PATH: &str =
        "/apis/rayhistory.io/v1alpha1/namespaces/ray/historyservers/history/status";
    const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/ray/events";

    fn with_status(status: &Value) -> Value {
        let mut obj = serde_json::to_value(HistoryServer::test()).unwrap();
        obj["status"] = status.clone();
        obj
    }

    /// The Deployment `server` renders, as JSON, for the default test storage.
    fn deployment_json(server: &HistoryServer) -> Value {
        let (ctx, _api) = fixtures::context(Settings::default());
        serde_json::to_value(server.deployment(&HistoryStorage::test().configured(), &ctx, None))
            .unwrap()
    }

    async fn status_and_event(
        mut api: ApiServerVerifier,
        warning: bool,
    ) -> (Value, ApiServerVerifier) {
        let patch = api.next().await.expect(Method::PATCH, STATUS_PATH);
        let status = patch.body["status"].clone();
        patch.reply(StatusCode::OK, &with_status(&status));
        let event = api.next().await.expect(Method::POST, EVENTS_PATH);
        assert_eq!(
            event.body["type"],
            if warning { "Warning" } else { "Normal" }
        );
        event.echo();
        (status, api)
    }

    async fn run<Fut>(
        hs: HistoryServer,
        script: impl FnOnce(ApiServerVerifier) -> Fut,
    ) -> (Action, Value)
    where
        Fut: std::future::Future<Output = (Value, ApiServerVerifier)> + Send + 'static,
    {
        let (ctx, verifier) = fixtures::context(Settings::default());
        let server = tokio::spawn(script(verifier));
        let action = reconcile(Arc::new(hs), ctx)
            .await
            .expect("reconcile succeeds");
        let (out, verifier) = server.await.expect("script");
        verifier.done().await;
        (action, out)
    }

    #[tokio::test]
    async fn missing_storage_is_reported() {
        let (action, status) = run(HistoryServer::test(), |mut api| async move {
            api.next()
                .await
                .expect(Method::GET, STORAGE_PATH)
                .not_found();
            status_and_event(api, true).await
        })
        .await;
        let c = condition(&status, STORAGE_RESOLVED);
        assert_eq!(
            (c["status"].as_str(), c["reason"].as_str()),
            (Some("False"), Some("StorageNotReady"))
        );
        assert_eq!(condition(&status, READY)["status"], "False");
        assert_eq!(action, Action::requeue(Settings::default().retry_interval));
    }

    #[tokio::test]
    async fn applies_service_account_deployment_and_service() {
        let mut server = HistoryServer::test();
        server.spec.ray_dashboard = Some(RayDashboardSpec {
            image: "rayproject/ray:2.60.0".into(),
        });
        server.spec.cache_max_bytes = Some(536_870_912);
        let (action, objects) = run(server, |mut api| async move {
            let storage = serde_json::to_value(HistoryStorage::test().configured()).unwrap();
            api.next()
                .await
                .expect(Method::GET, STORAGE_PATH)
                .reply(StatusCode::OK, &storage);
            let mut applied = Vec::new();
            for path in [
                "/api/v1/namespaces/ray/serviceaccounts/history",
                "/apis/apps/v1/namespaces/ray/deployments/history",
                "/api/v1/namespaces/ray/services/history",
            ] {
                let ex = api.next().await.expect(Method::PATCH, path);
                assert!(
                    ex.uri.contains("fieldManager=ray-history-operator"),
                    "{}",
                    ex.uri
                );
                let mut body = ex.body.clone();
                applied.push(body.clone());
                if body["kind"] == "Deployment" {
                    body["status"] = json!({"readyReplicas": 2, "replicas": 2});
                }
                ex.reply(StatusCode::OK, &body);
            }
            let (status, api) = status_and_event(api, false).await;
            applied.push(status);
            (Value::Array(applied), api)
        })
        .await;
        let objects = objects.as_array().unwrap();
        let (sa, deployment, service, status) =
            (&objects[0], &objects[1], &objects[2], &objects[3]);
        fixtures::kubernetes_validate(&[sa.clone(), deployment.clone(), service.clone()]);
        for obj in [sa, deployment, service] {
            assert_eq!(
                obj["metadata"]["ownerReferences"][0]["kind"],
                "HistoryServer"
            );
        }
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(deployment["spec"]["replicas"], 2);
        assert_eq!(container["image"], crate::crd::server::DEFAULT_SERVER_IMAGE);
        assert_eq!(
            container["args"],
            json!([
                "serve",
                "--listen",
                "0.0.0.0:8080",
                "--cache-max-bytes",
                "536870912",
                "--ray-dashboard-dir",
                "/ray-dashboard"
            ])
        );
        assert_eq!(
            container["envFrom"][0]["configMapRef"]["name"],
            "history-storage"
        );
        assert_eq!(
            container["env"][0]["name"],
            "AZURE_STORAGE_CONNECTION_STRING"
        );
        assert_eq!(
            container["env"][0]["valueFrom"]["secretKeyRef"]["name"],
            "azure-credentials"
        );
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(pod["initContainers"][0]["image"], "rayproject/ray:2.60.0");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(service["spec"]["ports"][0]["port"], 80);
        assert_eq!(status["readyReplicas"], 2);
        assert_eq!(status["url"], "http://history.ray.svc:80");
        assert_eq!(condition(status, READY)["status"], "True");
        assert_eq!(condition(status, STORAGE_RESOLVED)["status"], "True");
        assert_eq!(action, Action::requeue(Settings::default().probe_interval));
    }

    #[tokio::test]
    async fn kubernetes_auth_passes_its_flags_and_mounts_the_account_token() {
        let mut server = HistoryServer::test();
        server.spec.auth = Some(AuthSpec {
            mode: AuthMode::Kubernetes,
            token_audiences: vec!["ray-history".into()],
            access_review: Some(crate::crd::server::AccessReviewSpec {
                verb: Some("list".into()),
                ..Default::default()
            }),
            cache_ttl: Some("10s".into()),
            ..Default::default()
        });
        let deployment = deployment_json(&server);
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["args"],
            json!([
                "serve",
                "--listen",
                "0.0.0.0:8080",
                "--cache-max-bytes",
                "536870912",
                "--auth",
                "kubernetes",
                "--auth-token-audiences",
                "ray-history",
                "--auth-sar-verb",
                "list",
                "--auth-cache-ttl",
                "10s"
            ])
        );
        assert_eq!(pod["automountServiceAccountToken"], true);
        assert_eq!(
            deployment_json(&HistoryServer::test())["spec"]["template"]["spec"]["automountServiceAccountToken"],
            false,
            "no token without kubernetes mode"
        );
    }

    #[tokio::test]
    async fn retention_passes_its_flags_the_pod_identity_and_a_lease_role_binding() {
        use crate::crd::server::{RetentionLimits, RetentionRule, RetentionSpec};
        let mut server = HistoryServer::test();
        server.spec.retention = Some(RetentionSpec {
            limits: RetentionLimits {
                max_age: Some("30d".into()),
                max_sessions_per_cluster: Some(50),
                ..Default::default()
            },
            interval: Some("15m".into()),
            rules: vec![RetentionRule {
                namespace: Some("team-a".into()),
                cluster: None,
                limits: RetentionLimits {
                    max_age: Some("7d".into()),
                    ..Default::default()
                },
            }],
            ..Default::default()
        });
        let deployment = deployment_json(&server);
        let pod = &deployment["spec"]["template"]["spec"];
        let args: Vec<&str> = pod["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            args[5..],
            [
                "--retention-max-age",
                "30d",
                "--retention-max-sessions-per-cluster",
                "50",
                "--retention-interval",
                "15m",
                "--retention-rules",
                r#"[{"namespace":"team-a","maxAge":"7d"}]"#,
                "--retention-lease",
                "history-retention",
            ]
        );
        let env = pod["containers"][0]["env"].as_array().unwrap();
        for (name, path) in [
            ("POD_NAMESPACE", "metadata.namespace"),
            ("POD_NAME", "metadata.name"),
        ] {
            let var = env.iter().find(|e| e["name"] == name).expect(name);
            assert_eq!(var["valueFrom"]["fieldRef"]["fieldPath"], path);
        }
        assert_eq!(
            pod["automountServiceAccountToken"], true,
            "the Lease needs the API"
        );
        let (ctx, _api) = fixtures::context(Settings::default());
        let binding = serde_json::to_value(server.retention_role_binding(&ctx, None)).unwrap();
        assert_eq!(binding["metadata"]["name"], "history-retention");
        assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
        assert_eq!(binding["roleRef"]["name"], "ray-history-server-retention");
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": "history", "namespace": "ray"}])
        );
        fixtures::kubernetes_validate(&[deployment, binding]);
    }

    #[tokio::test]
    async fn kubernetes_auth_reports_an_account_without_review_rights() {
        let mut server = HistoryServer::test();
        server.spec.auth = Some(AuthSpec {
            mode: AuthMode::Kubernetes,
            ..Default::default()
        });
        let (_, status) = run(server, |mut api| async move {
            let storage = serde_json::to_value(HistoryStorage::test().configured()).unwrap();
            api.next()
                .await
                .expect(Method::GET, STORAGE_PATH)
                .reply(StatusCode::OK, &storage);
            // The ServiceAccount, Deployment and Service, applied as usual.
            for _ in 0..3 {
                let ex = api.next().await;
                assert_eq!(ex.method, Method::PATCH, "{}", ex.uri);
                let mut body = ex.body.clone();
                if body["kind"] == "Deployment" {
                    body["status"] = json!({"readyReplicas": 2, "replicas": 2});
                }
                ex.reply(StatusCode::OK, &body);
            }
            for allowed in [true, false] {
                let ex = api.next().await.expect(
                    Method::POST,
                    "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                );
                assert_eq!(ex.body["spec"]["user"], "system:serviceaccount:ray:history");
                let mut answer = ex.body.clone();
                answer["status"] = json!({"allowed": allowed});
                ex.reply(StatusCode::CREATED, &answer);
            }
            status_and_event(api, true).await
        })
        .await;
        let reviews = condition(&status, REVIEWS_ALLOWED);
        assert_eq!(reviews["status"], "False");
        assert!(
            reviews["message"]
                .as_str()
                .unwrap()
                .contains("may not create subjectaccessreviews: bind"),
            "{reviews}"
        );
        assert_eq!(condition(&status, READY)["reason"], "ReviewsNotAllowed");
    }

    #[tokio::test]
    async fn header_auth_mounts_its_acl() {
        let mut server = HistoryServer::test();
        server.spec.auth = Some(AuthSpec {
            mode: AuthMode::Header,
            trusted_proxies: vec!["10.0.0.0/8".into(), "127.0.0.1".into()],
            acl_config_map: Some(crate::crd::server::AclConfigMapRef {
                name: "history-acl".into(),
                key: None,
            }),
            ..Default::default()
        });
        let deployment = deployment_json(&server);
        let pod = &deployment["spec"]["template"]["spec"];
        let args = pod["containers"][0]["args"].as_array().unwrap();
        assert_eq!(
            args[5..],
            [
                json!("--auth"),
                json!("header"),
                json!("--auth-trusted-proxies"),
                json!("10.0.0.0/8,127.0.0.1"),
                json!("--auth-acl"),
                json!("/etc/ray-history-auth/acl.yaml")
            ]
        );
        assert_eq!(pod["volumes"][1]["configMap"]["name"], "history-acl");
        assert_eq!(pod["automountServiceAccountToken"], false);
    }

    #[tokio::test]
    async fn referencing_finds_servers_of_a_storage() {
        let (store, mut writer) = kube::runtime::reflector::store();
        let mut other = HistoryServer::test();
        other.metadata.name = Some("other".into());
        other.spec.storage_ref.name = "elsewhere".into();
        for hs in [HistoryServer::test(), other] {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(hs));
        }
        let refs = referencing(&store, &HistoryStorage::test());
        assert_eq!(
            refs.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
            vec!["history"]
        );
        assert!(referencing(&store, &HistoryStorage::test().in_namespace("elsewhere")).is_empty());
    }
}
