//! Indexing ahead: a session that has just finished is loaded in the background, which builds
//! and stores its session index, so the first person to open it is answered from the index
//! (well under a second) instead of waiting while every event file is parsed (seconds per
//! million tasks). The load goes through the session cache, so a request that comes while it
//! runs shares it, and the session is then warm.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use ray_history_storage::Storage;
use ray_history_storage::layout::{INDEX_DIR, Key, MetaRef, SessionName};
use ray_history_storage::metadata::SessionState;

use crate::cache::SessionCache;
use crate::catalog::{Catalog, SessionEntry};
use crate::metrics::Metrics;
use crate::session_index::FORMAT_VERSION;

/// Every `interval`, loads each finished session that ended within `window` and has no index
/// of this server's format, newest first and one at a time (a load holds one of the cache's
/// `--max-concurrent-loads` permits, so requests always have the others). Each session is
/// looked at once per process.
pub async fn run(
    catalog: Arc<Catalog>,
    cache: SessionCache,
    storage: Storage,
    window: Duration,
    interval: Duration,
    metrics: Arc<Metrics>,
) {
    let mut looked_at: HashSet<(MetaRef, SessionName)> = HashSet::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let snapshot = catalog.snapshot();
        let now = Utc::now();
        for entry in snapshot.sessions.iter().filter(|e| due(e, now, window)) {
            let key = (entry.meta_ref.clone(), entry.meta.session_name.clone());
            if looked_at.insert(key) && index(&storage, &cache, entry).await {
                metrics.sessions_indexed_ahead.inc();
            }
        }
    }
}

/// Whether a session is finished and ended within `window` of `now`.
fn due(entry: &SessionEntry, now: DateTime<Utc>, window: Duration) -> bool {
    let ended = entry.meta.end_time.unwrap_or(entry.meta.last_heartbeat);
    // An end after `now` (a clock ahead of ours) counts as just now.
    let too_old = now
        .signed_duration_since(ended)
        .to_std()
        .is_ok_and(|age| age > window);
    entry.meta.state == SessionState::Finished && !too_old
}

/// Loads a session unless it has an index of this format already; `true` if it was loaded.
async fn index(storage: &Storage, cache: &SessionCache, entry: &SessionEntry) -> bool {
    let session = &entry.meta.session_name;
    match has_index(storage, entry).await {
        Ok(true) => return false,
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(%session, error = %e, "cannot list the session's index; it is indexed on its first view");
            return false;
        }
    }
    let started = Instant::now();
    match cache.get(entry).await {
        Ok(loaded) => {
            tracing::info!(
                %session,
                tasks = loaded.state.tasks.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "session indexed ahead of its first view"
            );
            true
        }
        Err(e) => {
            tracing::warn!(%session, error = %e, "cannot index the session ahead; it is loaded on its first view");
            false
        }
    }
}

/// Whether the session's `index/` folder holds an index of this server's format (of any
/// event files: one built before late events arrived is replaced on the first view).
async fn has_index(storage: &Storage, entry: &SessionEntry) -> Result<bool, crate::Error> {
    let prefix = entry.meta.log_prefix().join(INDEX_DIR);
    let objects: Vec<_> = storage.list(Some(&prefix)).try_collect().await?;
    Ok(objects.iter().any(|o| {
        matches!(Key::parse(&o.location), Ok(Key::SessionIndex { version, .. }) if version == FORMAT_VERSION)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ray_history_storage::layout::ClusterRef;
    use ray_history_storage::metadata::{LAYOUT_VERSION, SessionMetadata};

    fn entry(
        state: SessionState,
        end: Option<DateTime<Utc>>,
        heartbeat: DateTime<Utc>,
    ) -> SessionEntry {
        let cluster = ClusterRef::new("c", "id").unwrap();
        let meta_ref = MetaRef::new("ns", "c").unwrap();
        SessionEntry {
            meta: SessionMetadata {
                layout_version: LAYOUT_VERSION,
                cluster_name: cluster.name.clone(),
                cluster_id: cluster.id.clone(),
                namespace: meta_ref.namespace.clone(),
                session_name: SessionName::new("session_2026-12-04_10-00-00_000000_1").unwrap(),
                owner: None,
                ray_version: None,
                head_node_id: None,
                start_time: heartbeat,
                last_heartbeat: heartbeat,
                end_time: end,
                state,
                collector_version: "test".into(),
            },
            meta_ref,
            nodes: Vec::new(),
        }
    }

    #[test]
    fn only_sessions_finished_within_the_window_are_due() {
        let now = Utc::now();
        let hour = chrono::Duration::hours(1);
        let window = Duration::from_secs(24 * 3600);
        let finished = |end| entry(SessionState::Finished, Some(end), end);
        assert!(due(&finished(now - hour), now, window));
        assert!(
            due(&finished(now + hour), now, window),
            "a clock ahead of ours"
        );
        assert!(!due(&finished(now - hour * 25), now, window));
        assert!(!due(&entry(SessionState::Running, None, now), now, window));
        // Finished without an end time: its last heartbeat counts.
        assert!(due(
            &entry(SessionState::Finished, None, now - hour),
            now,
            window
        ));
        assert!(!due(
            &entry(SessionState::Finished, None, now - hour * 48),
            now,
            window
        ));
    }
}
