//! Prometheus metrics and the operator's plain-HTTP endpoints (`/metrics`, `/healthz`,
//! `/readyz`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of reconcile metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `HistoryStorage` or `HistoryServer`.
    pub kind: &'static str,
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Labels of admission metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    /// `injected`, a skip reason, or `malformed`.
    pub outcome: &'static str,
}

/// Labels of the storage probe metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    /// `reachable` or `unreachable`.
    pub result: &'static str,
}

/// All operator metrics.
pub struct Metrics {
    registry: Registry,
    /// Reconciles by kind and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile duration in seconds.
    pub reconcile_seconds: Family<ReconcileLabels, Histogram>,
    /// Admission reviews by outcome.
    pub admissions: Family<AdmissionLabels, Counter>,
    /// Storage probes by result.
    pub probes: Family<ProbeLabels, Counter>,
    /// 1 while this replica holds the leader lease.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ray_history_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_seconds = Family::<ReconcileLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.01, 2.0, 12))) as fn() -> Histogram,
        );
        let admissions = Family::<AdmissionLabels, Counter>::default();
        let probes = Family::<ProbeLabels, Counter>::default();
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "Reconciles by kind and result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            reconcile_seconds.clone(),
        );
        registry.register(
            "admissions",
            "Admission reviews by outcome",
            admissions.clone(),
        );
        registry.register("storage_probes", "Storage probes by result", probes.clone());
        registry.register(
            "leader",
            "1 while this replica is the leader",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_seconds,
            admissions,
            probes,
            leader,
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Records one reconcile.
    pub fn reconciled(&self, kind: &'static str, ok: bool, took: Duration) {
        let labels = ReconcileLabels {
            kind,
            result: if ok { "ok" } else { "error" },
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Whether the replica can serve (e.g. the webhook has its certificate).
pub type Readiness = Arc<dyn Fn() -> bool + Send + Sync>;

/// `/metrics`, `/healthz`, and `/readyz` (503 until `ready` says yes, so the webhook
/// Service only routes to replicas that can complete a TLS handshake).
pub fn router(metrics: Arc<Metrics>, ready: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(serve_ready))
        .with_state((metrics, ready))
}

async fn serve_ready(State((_, ready)): State<(Arc<Metrics>, Readiness)>) -> impl IntoResponse {
    if ready() {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "webhook certificate not loaded yet",
        )
    }
}

async fn serve_metrics(State((metrics, _)): State<(Arc<Metrics>, Readiness)>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn readyz_follows_readiness_and_metrics_are_exposed() {
        let metrics = Arc::new(Metrics::default());
        metrics.reconciled("HistoryStorage", true, Duration::from_millis(20));
        let flag = Arc::new(AtomicBool::new(false));
        let ready = flag.clone();
        let app = router(metrics, Arc::new(move || ready.load(Ordering::SeqCst)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let get = |path: &str| reqwest::get(format!("{base}{path}"));

        assert_eq!(get("/readyz").await.unwrap().status(), 503);
        flag.store(true, Ordering::SeqCst);
        assert_eq!(get("/readyz").await.unwrap().status(), 200);
        assert_eq!(get("/healthz").await.unwrap().status(), 200);
        let text = get("/metrics").await.unwrap().text().await.unwrap();
        assert!(
            text.contains(
                r#"ray_history_operator_reconciles_total{kind="HistoryStorage",result="ok"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("ray_history_operator_leader 0"), "{text}");
    }
}
