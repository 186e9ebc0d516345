//! The upload queue's gauges: files followed, files and bytes not yet in storage, and how long
//! the longest-waiting file has waited.

use std::time::{Duration, Instant};

use crate::files::Files;
use crate::metrics::Metrics;

/// Sets the queue gauges from the followed files, and starts or stops each file's wait.
pub(crate) fn update(entries: &mut Files, metrics: &Metrics) {
    let now = Instant::now();
    let mut pending_files = 0;
    let mut pending_bytes = 0;
    let mut lag = Duration::ZERO;
    for entry in entries.values_mut() {
        let pending = entry.pending();
        if pending > 0 {
            pending_files += 1;
            pending_bytes += pending;
            let since = *entry.behind_since.get_or_insert(now);
            lag = lag.max(now - since);
        } else {
            entry.behind_since = None;
        }
    }
    metrics.tracked_files.set(entries.len() as i64);
    metrics.pending_files.set(pending_files);
    metrics.pending_bytes.set(pending_bytes as i64);
    metrics.lag_seconds.set(lag.as_secs_f64());
}
