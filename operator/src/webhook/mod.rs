//! The mutating admission webhook: `POST /mutate` takes an `AdmissionReview` for a Pod and
//! answers with a JSON patch that injects the collector, or with no patch.
//!
//! The webhook never blocks a pod: anything it cannot read is allowed unchanged with a
//! warning (the chart also sets `failurePolicy: Ignore`).

pub mod certs;
pub mod inject;
pub mod tls;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::runtime::reflector::Store;

use crate::crd::storage::HistoryStorage;
use crate::metrics::{AdmissionLabels, Metrics};

/// Path the webhook configuration points at.
pub const MUTATE_PATH: &str = "/mutate";

/// What the webhook needs to decide.
#[derive(Clone)]
pub struct WebhookState {
    /// Every `HistoryStorage`, kept current by a reflector.
    pub storages: Store<HistoryStorage>,
    /// Reads a pod's RayCluster for KubeRay's origin labels (a RayJob's pods do not carry
    /// them); `None` records every cluster as its own owner.
    pub client: Option<kube::Client>,
    /// Collector image when the `HistoryStorage` names none.
    pub collector_image: String,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// The webhook's routes.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route(MUTATE_PATH, post(mutate))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .with_state(state)
}

async fn mutate(
    State(state): State<WebhookState>,
    body: Bytes,
) -> Json<AdmissionReview<DynamicObject>> {
    let (response, outcome) = review(&state, &body).await;
    state
        .metrics
        .admissions
        .get_or_create(&AdmissionLabels { outcome })
        .inc();
    Json(response.into_review())
}

/// Decides one review; returns the response and the outcome for metrics and logs.
async fn review(state: &WebhookState, body: &[u8]) -> (AdmissionResponse, &'static str) {
    let request: AdmissionRequest<Pod> = match serde_json::from_slice::<AdmissionReview<Pod>>(body)
        .map_err(|e| e.to_string())
        .and_then(|r| {
            r.try_into()
                .map_err(|e: kube::core::admission::ConvertAdmissionReviewError| e.to_string())
        }) {
        Ok(request) => request,
        Err(reason) => return (malformed(body, &reason), "malformed"),
    };
    let response = AdmissionResponse::from(&request);
    if request.operation != Operation::Create {
        return (response, "not_create");
    }
    let Some(pod) = request.object.as_ref() else {
        return (response, "no_object");
    };
    let namespace = request
        .namespace
        .clone()
        .or_else(|| pod.namespace())
        .unwrap_or_default();
    let storages: Vec<HistoryStorage> = state
        .storages
        .state()
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(namespace.as_str()))
        .map(|s| (**s).clone())
        .collect();
    let storage = match inject::select(pod, &storages) {
        Ok(storage) => storage,
        Err(skip) => return (response, skip.as_str()),
    };
    let cluster_labels = cluster_labels(state, &namespace, pod).await;
    let owner = inject::Owner::of(pod, cluster_labels.as_ref());
    let patched = inject::inject(pod, storage, &owner, &state.collector_image);
    let patch = match (serde_json::to_value(pod), serde_json::to_value(&patched)) {
        (Ok(before), Ok(after)) => json_patch::diff(&before, &after),
        _ => {
            return (
                with_warning(response, "could not serialise the pod; not injected"),
                "error",
            );
        }
    };
    match response.clone().with_patch(patch) {
        Ok(response) => {
            tracing::info!(namespace, pod = %pod.name_any(), storage = %storage.name_any(), "injected collector");
            (response, "injected")
        }
        Err(_) => (
            with_warning(response, "could not serialise the patch; not injected"),
            "error",
        ),
    }
}

/// KubeRay's RayCluster API (`ray.io/v1`), read as metadata only.
fn ray_clusters(client: kube::Client, namespace: &str) -> kube::Api<DynamicObject> {
    let resource = kube::core::ApiResource {
        group: "ray.io".into(),
        version: "v1".into(),
        api_version: "ray.io/v1".into(),
        kind: "RayCluster".into(),
        plural: "rayclusters".into(),
    };
    kube::Api::namespaced_with(client, namespace, &resource)
}

/// The labels of the pod's RayCluster, or `None` when it has none or it cannot be read in time
/// (then the pod's own labels decide; the pod is never held up for long).
async fn cluster_labels(
    state: &WebhookState,
    namespace: &str,
    pod: &Pod,
) -> Option<std::collections::BTreeMap<String, String>> {
    let client = state.client.clone()?;
    let name = inject::ray_cluster_owner(pod)?;
    let api = ray_clusters(client, namespace);
    match tokio::time::timeout(CLUSTER_LOOKUP_TIMEOUT, api.get_metadata(name)).await {
        Ok(Ok(cluster)) => Some(cluster.metadata.labels.unwrap_or_default()),
        Ok(Err(e)) => {
            tracing::warn!(namespace, cluster = name, error = %e, "cannot read the RayCluster; owner taken from the pod");
            None
        }
        Err(_) => {
            tracing::warn!(
                namespace,
                cluster = name,
                "RayCluster read timed out; owner taken from the pod"
            );
            None
        }
    }
}

/// Longest wait for a pod's RayCluster (the API server gives the whole webhook 5 s or so).
const CLUSTER_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// An allowed, unpatched answer to a review that could not be read, with the uid when the
/// body has one (the API server matches responses by uid).
fn malformed(body: &[u8], reason: &str) -> AdmissionResponse {
    let uid = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/request/uid")
                .and_then(|u| u.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let mut response = AdmissionResponse::invalid(reason);
    response.allowed = true;
    response.result = Default::default();
    response.uid = uid;
    tracing::warn!(reason, "malformed admission review; allowed unchanged");
    with_warning(
        response,
        &format!("ray-history: malformed admission review ({reason}); pod not changed"),
    )
}

fn with_warning(mut response: AdmissionResponse, warning: &str) -> AdmissionResponse {
    let mut text = warning.to_string();
    // Warnings over 256 characters may be cut by the API server.
    if text.len() > 250 {
        let mut end = 250;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    response.warnings.get_or_insert_with(Vec::new).push(text);
    response
}
