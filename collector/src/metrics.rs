//! Prometheus metrics: bytes and files uploaded, storage retries and errors, how much is
//! waiting (queue depth) and how far storage lags the disk.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The collector's metrics. Cheap to clone (handles share their values).
#[derive(Clone)]
pub struct Metrics {
    /// Bytes confirmed by storage.
    pub uploaded_bytes: Counter,
    /// Successful appends and whole-file uploads.
    pub uploads: Counter,
    /// Storage calls retried after a transient failure.
    pub retries: Counter,
    /// Storage operations that failed after retries.
    pub errors: Counter,
    /// Files being followed.
    pub tracked_files: Gauge,
    /// Files with bytes not yet in storage (the upload queue).
    pub pending_files: Gauge,
    /// Bytes on disk not yet in storage.
    pub pending_bytes: Gauge,
    /// How long the longest-waiting file has had bytes not yet in storage.
    pub lag_seconds: Gauge<f64, AtomicU64>,
    /// RayEvents received over HTTP.
    pub events_received: Counter,
    /// `/v1/events` requests refused (malformed, too large, no session).
    pub events_rejected: Counter,
    registry: Arc<Registry>,
}

impl Metrics {
    /// Registers every metric under the `ray_history_collector` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ray_history_collector");
        let metrics = Metrics {
            uploaded_bytes: Counter::default(),
            uploads: Counter::default(),
            retries: Counter::default(),
            errors: Counter::default(),
            tracked_files: Gauge::default(),
            pending_files: Gauge::default(),
            pending_bytes: Gauge::default(),
            lag_seconds: Gauge::default(),
            events_received: Counter::default(),
            events_rejected: Counter::default(),
            registry: Arc::new(Registry::default()),
        };
        registry.register(
            "uploaded_bytes",
            "Bytes confirmed by storage",
            metrics.uploaded_bytes.clone(),
        );
        registry.register(
            "uploads",
            "Appends and whole-file uploads",
            metrics.uploads.clone(),
        );
        registry.register(
            "storage_retries",
            "Storage calls retried",
            metrics.retries.clone(),
        );
        registry.register(
            "storage_errors",
            "Storage operations failed after retries",
            metrics.errors.clone(),
        );
        registry.register(
            "tracked_files",
            "Files being followed",
            metrics.tracked_files.clone(),
        );
        registry.register(
            "pending_files",
            "Files with bytes not yet in storage",
            metrics.pending_files.clone(),
        );
        registry.register(
            "pending_bytes",
            "Bytes on disk not yet in storage",
            metrics.pending_bytes.clone(),
        );
        registry.register(
            "lag_seconds",
            "Longest time a file has waited for upload",
            metrics.lag_seconds.clone(),
        );
        registry.register(
            "events_received",
            "RayEvents received over HTTP",
            metrics.events_received.clone(),
        );
        registry.register(
            "events_rejected",
            "Refused /v1/events requests",
            metrics.events_rejected.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            ..metrics
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
