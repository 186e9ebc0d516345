//! The controllers: shared [`Context`], server-side apply of objects and statuses, error
//! policy, and [`run`], which drives both reconcilers until the process stops.
//!
//! Every object the reconcilers create is namespaced and carries a controller owner reference,
//! so Kubernetes' garbage collector removes it with its owner; nothing lives outside the
//! cluster, so no finalizer is needed (one would only block deletion when the operator is down).

pub mod policy;
pub mod server;
pub mod storage;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::crd::MANAGER;
use crate::crd::server::HistoryServer;
use crate::crd::storage::HistoryStorage;
use crate::metrics::Metrics;
use crate::{Error, Result};
pub use policy::ProbePolicy;

/// Settings of the reconcilers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Re-probe healthy storage this often.
    pub probe_interval: Duration,
    /// Retry unhealthy objects this often.
    pub retry_interval: Duration,
    /// Give up a storage probe after this long.
    pub probe_timeout: Duration,
    /// Server image when a `HistoryServer` names none.
    pub server_image: String,
    /// Which storage may be probed.
    pub probe_policy: ProbePolicy,
    /// The chart's ClusterRole for a history server's retention Lease, bound in its namespace
    /// when it has `spec.retention`.
    pub retention_cluster_role: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(300),
            retry_interval: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(20),
            server_image: crate::crd::server::DEFAULT_SERVER_IMAGE.to_string(),
            probe_policy: ProbePolicy::default(),
            retention_cluster_role: "ray-history-server-retention".to_string(),
        }
    }
}

/// What every reconcile gets.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Settings.
    pub settings: Settings,
}

impl Context {
    /// A context reporting Events as `ray-history-operator` from `instance`.
    pub fn new(
        client: Client,
        instance: Option<String>,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        let reporter = Reporter {
            controller: crate::crd::MANAGER.to_string(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            settings,
        }
    }

    /// Publishes an Event about `obj`; failures are logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }
}

/// Server-side applies `obj` with the operator's field manager and returns the live object.
async fn apply<K>(ctx: &Context, ns: &str, obj: &K) -> Result<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let name = obj.meta().name.clone().unwrap_or_default();
    Ok(api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?)
}

/// Server-side applies `status` to `obj`'s status subresource with the operator's field manager.
async fn apply_status<K>(ctx: &Context, ns: &str, obj: &K, status: &impl Serialize) -> Result<()>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// Requeue policy on errors (API failures; condition problems are not errors).
fn error_policy<K>(_obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %error, "reconcile failed");
    Action::requeue(ctx.settings.retry_interval)
}

/// Runs both controllers until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = ctx.client.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    // Only children carry this label, so the owned-object watches stay small.
    let owned = watcher::Config::default().labels(&format!(
        "app.kubernetes.io/managed-by={}",
        crate::crd::MANAGER
    ));
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let storages = Controller::new(
        Api::<HistoryStorage>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<ConfigMap>::all(client.clone()), owned.clone())
    .graceful_shutdown_on(stopped(stop_rx.clone()))
    .run(storage::reconcile, error_policy, ctx.clone())
    .for_each(|res| async move {
        if let Err(e) = res {
            tracing::debug!(error = %e, "HistoryStorage controller");
        }
    });

    let servers_ctl = Controller::new(
        Api::<HistoryServer>::all(client.clone()),
        watcher::Config::default(),
    );
    let servers_store = servers_ctl.store();
    let servers = servers_ctl
        .owns(Api::<Deployment>::all(client.clone()), owned.clone())
        .owns(Api::<Service>::all(client.clone()), owned.clone())
        .owns(Api::<ServiceAccount>::all(client.clone()), owned.clone())
        // A server follows its storage: re-reconcile when the HistoryStorage changes.
        .watches(
            Api::<HistoryStorage>::all(client.clone()),
            watcher::Config::default(),
            move |storage| server::referencing(&servers_store, &storage),
        )
        .graceful_shutdown_on(stopped(stop_rx))
        .run(server::reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "HistoryServer controller");
            }
        });
    tokio::join!(storages, servers);
}
