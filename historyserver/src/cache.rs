//! Cache of loaded sessions with a byte budget. Concurrent requests for a session that is not
//! loaded yet share one load (moka's `try_get_with`). Running sessions are reloaded when
//! their copy is older than the refresh interval, so live sessions stay current; meanwhile
//! requests get the copy already loaded, so a reload never makes anyone wait. At most
//! `--max-concurrent-loads` sessions load at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::future::Cache;
use ray_history_storage::Storage;
use ray_history_storage::layout::{MetaRef, SessionName};
use ray_history_storage::metadata::SessionState;
use tokio::sync::Semaphore;

use crate::Error;
use crate::catalog::SessionEntry;
use crate::loader::{self, IndexDir, SharedSession};
use crate::metrics::Metrics;

type CacheKey = (MetaRef, SessionName);

/// Loaded sessions, weighed by their approximate heap size.
#[derive(Clone)]
pub struct SessionCache {
    cache: Cache<CacheKey, SharedSession>,
    storage: Storage,
    refresh: Duration,
    /// Permits for cold loads: each parses a whole session, so a few at a time.
    loads: Arc<Semaphore>,
    /// Sessions being reloaded in the background (one reload each).
    reloading: Arc<Mutex<HashSet<CacheKey>>>,
    metrics: Arc<Metrics>,
    /// Where local copies of session indexes go; `None`: sessions are not indexed.
    index_dir: Option<IndexDir>,
}

impl SessionCache {
    /// A cache holding at most `max_bytes` of loaded sessions, loading at most `max_loads` at
    /// a time, keeping local copies of session indexes in `index_dir`.
    pub fn new(
        storage: Storage,
        max_bytes: u64,
        refresh: Duration,
        max_loads: usize,
        metrics: Arc<Metrics>,
        index_dir: Option<std::path::PathBuf>,
    ) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_k: &CacheKey, v: &SharedSession| {
                u32::try_from(v.approx_bytes()).unwrap_or(u32::MAX)
            })
            .build();
        Self {
            cache,
            storage,
            refresh,
            loads: Arc::new(Semaphore::new(max_loads)),
            reloading: Arc::new(Mutex::new(HashSet::new())),
            metrics,
            index_dir: index_dir.map(IndexDir::new),
        }
    }

    /// The loaded session, loading it (once, however many callers wait) when needed.
    pub async fn get(&self, entry: &SessionEntry) -> Result<SharedSession, Arc<Error>> {
        let key = (entry.meta_ref.clone(), entry.meta.session_name.clone());
        if let Some(found) = self.cache.get(&key).await {
            let stale = (entry.meta.state == SessionState::Running
                || found.meta.last_heartbeat != entry.meta.last_heartbeat)
                && found.loaded_at.elapsed() > self.refresh;
            self.metrics.cache_hits.inc();
            if stale {
                self.reload(key, entry);
            }
            return Ok(found);
        }
        let storage = self.storage.clone();
        let meta = entry.meta.clone();
        let nodes = entry.nodes.clone();
        let metrics = self.metrics.clone();
        let loads = self.loads.clone();
        let index_dir = self.index_dir.clone();
        let loaded = self
            .cache
            .try_get_with(key, async move {
                // The semaphore is never closed, so acquiring fails only in theory.
                let _permit = loads.acquire().await.map_err(|_| Error::Worker)?;
                metrics.cache_misses.inc();
                let started = std::time::Instant::now();
                let loaded = loader::load(&storage, meta, nodes, index_dir.as_ref()).await?;
                metrics
                    .load_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics
                    .corrupt_lines
                    .inc_by(loaded.state.stats.corrupt_lines);
                Ok::<_, Error>(Arc::new(loaded))
            })
            .await?;
        self.metrics
            .cache_bytes
            .set(self.cache.weighted_size() as i64);
        Ok(loaded)
    }

    /// Waits until the session indexes being stored are stored, at most `timeout`; `false` if
    /// some were not.
    pub async fn index_uploads_ended(&self, timeout: Duration) -> bool {
        match &self.index_dir {
            Some(dir) => dir.uploads_ended(timeout).await,
            None => true,
        }
    }

    /// Loads a fresh copy of a session in the background and swaps it in when ready.
    fn reload(&self, key: CacheKey, entry: &SessionEntry) {
        if !self
            .reloading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone())
        {
            return;
        }
        let this = self.clone();
        let (meta, nodes) = (entry.meta.clone(), entry.nodes.clone());
        tokio::spawn(async move {
            let loaded = match this.loads.acquire().await {
                Ok(_permit) => {
                    let started = std::time::Instant::now();
                    let loaded =
                        loader::load(&this.storage, meta, nodes, this.index_dir.as_ref()).await;
                    this.metrics
                        .load_seconds
                        .observe(started.elapsed().as_secs_f64());
                    loaded
                }
                Err(_) => Err(Error::Worker),
            };
            match loaded {
                Ok(session) => {
                    this.metrics
                        .corrupt_lines
                        .inc_by(session.state.stats.corrupt_lines);
                    this.cache.insert(key.clone(), Arc::new(session)).await;
                }
                Err(e) => {
                    tracing::warn!(session = %key.1, error = %e, "cannot reload a live session; serving the copy loaded before")
                }
            }
            this.reloading
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        });
    }
}
