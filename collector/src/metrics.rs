//! Prometheus metrics: bytes and files uploaded, storage retries and errors, how much is
//! waiting (queue depth) and how far storage lags the disk.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

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
    /// RayEvents dropped because an event with their id was stored lately (a re-sent batch).
    pub events_repeated: Counter,
    /// Snapshots of the head's state stored.
    pub snapshots: Counter,
    /// Snapshots that failed (dashboard or storage).
    pub snapshot_errors: Counter,
    registry: Arc<Registry>,
}

impl Metrics {
    /// Registers every metric under the `ray_history_collector` prefix.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("ray_history_collector");
        Metrics {
            uploaded_bytes: register(&mut r, "uploaded_bytes", "Bytes confirmed by storage"),
            uploads: register(&mut r, "uploads", "Appends and whole-file uploads"),
            retries: register(&mut r, "storage_retries", "Storage calls retried"),
            errors: register(
                &mut r,
                "storage_errors",
                "Storage operations failed after retries",
            ),
            tracked_files: register(&mut r, "tracked_files", "Files being followed"),
            pending_files: register(
                &mut r,
                "pending_files",
                "Files with bytes not yet in storage",
            ),
            pending_bytes: register(&mut r, "pending_bytes", "Bytes on disk not yet in storage"),
            lag_seconds: register(
                &mut r,
                "lag_seconds",
                "Longest time a file has waited for upload",
            ),
            events_received: register(&mut r, "events_received", "RayEvents received over HTTP"),
            events_rejected: register(&mut r, "events_rejected", "Refused /v1/events requests"),
            events_repeated: register(
                &mut r,
                "events_repeated",
                "RayEvents dropped as repeats of ones stored lately",
            ),
            snapshots: register(&mut r, "snapshots", "Snapshots of the head's state stored"),
            snapshot_errors: register(&mut r, "snapshot_errors", "Snapshots that failed"),
            registry: Arc::new(r),
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// A new metric registered as `name`; the returned handle shares its value with the registry.
fn register<M: Metric + Clone + Default>(registry: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
