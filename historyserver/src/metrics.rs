//! Prometheus metrics served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route template, e.g. `/sessions/{ns}/{cluster}/{session}/api/v0/tasks`.
    pub route: String,
    /// HTTP status code.
    pub status: u16,
}

/// All metrics of the server.
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency.
    pub request_seconds: Histogram,
    /// Session loads served from the cache.
    pub cache_hits: Counter,
    /// Session loads that went to storage.
    pub cache_misses: Counter,
    /// Weighted size of the session cache.
    pub cache_bytes: Gauge,
    /// Time to load a session from storage.
    pub load_seconds: Histogram,
    /// Event lines skipped as corrupt.
    pub corrupt_lines: Counter,
    /// Sessions deleted by the retention sweeper.
    pub sessions_deleted: Counter,
    /// Bytes of the objects the retention sweeper deleted.
    pub bytes_deleted: Counter,
    /// Retention sweeps that ran to the end.
    pub retention_sweeps: Counter,
    /// Retention sweeps that failed.
    pub retention_sweep_failures: Counter,
    /// Sessions loaded (and so indexed) in the background before anyone asked for them.
    pub sessions_indexed_ahead: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ray_history_server");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        let cache_bytes = Gauge::default();
        let load_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        let corrupt_lines = Counter::default();
        let sessions_deleted = Counter::default();
        let bytes_deleted = Counter::default();
        let retention_sweeps = Counter::default();
        let retention_sweep_failures = Counter::default();
        let sessions_indexed_ahead = Counter::default();
        registry.register(
            "sessions_deleted",
            "Sessions deleted by the retention sweeper",
            sessions_deleted.clone(),
        );
        registry.register(
            "bytes_deleted",
            "Bytes of objects deleted by the retention sweeper",
            bytes_deleted.clone(),
        );
        registry.register(
            "retention_sweeps",
            "Retention sweeps that ran to the end",
            retention_sweeps.clone(),
        );
        registry.register(
            "retention_sweep_failures",
            "Retention sweeps that failed",
            retention_sweep_failures.clone(),
        );
        registry.register(
            "sessions_indexed_ahead",
            "Finished sessions loaded and indexed in the background before their first view",
            sessions_indexed_ahead.clone(),
        );
        registry.register("http_requests", "HTTP requests", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            request_seconds.clone(),
        );
        registry.register(
            "session_cache_hits",
            "Session cache hits",
            cache_hits.clone(),
        );
        registry.register(
            "session_cache_misses",
            "Session loads from storage",
            cache_misses.clone(),
        );
        registry.register(
            "session_cache_bytes",
            "Approximate bytes of cached sessions",
            cache_bytes.clone(),
        );
        registry.register(
            "session_load_duration_seconds",
            "Time to load a session from storage",
            load_seconds.clone(),
        );
        registry.register(
            "corrupt_event_lines",
            "Event lines skipped because they were corrupt",
            corrupt_lines.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            cache_hits,
            cache_misses,
            cache_bytes,
            load_seconds,
            corrupt_lines,
            sessions_deleted,
            bytes_deleted,
            retention_sweeps,
            retention_sweep_failures,
            sessions_indexed_ahead,
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
