//! The collector's loop. Every `--flush-interval`: rescan when the watcher saw a change (or
//! the rescan timer fired), mirror renames, upload new bytes with bounded concurrency, refresh
//! metadata, save the checkpoint. On stop: seal the event spool, flush until everything is in
//! storage (or the final-flush timeout passes), finalise the live session, save, return.
//!
//! The engine schedules and runs the uploads; the rest has its own owner: `sessions` (finding
//! sessions, their metadata), `renames` (rename mirroring), `spool_files` (the spool's
//! segments), `checkpoint` (saving) and `gauges`. They share the followed files (`files`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use ray_history_storage::layout::ClusterRef;
use ray_history_storage::metadata::NodeType;
use ray_history_storage::retry::Backoff;
use ray_history_storage::{Storage, StorageConfig};
use tokio_util::sync::CancellationToken;

use crate::checkpoint::CheckpointWriter;
use crate::config::{Node, RunArgs};
use crate::discovery::Watcher;
use crate::event_receiver::{Known, SharedKnown};
use crate::files::Files;
use crate::gauges;
use crate::metrics::Metrics;
use crate::renames::RenameMirror;
use crate::sessions::Sessions;
use crate::spool::Spool;
use crate::spool_files;
use crate::uploader::{Job, Mode, Uploader};
use crate::{Error, Result};

/// Timings and limits of the loop.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Time between upload rounds.
    pub flush_interval: Duration,
    /// In reupload mode, time between whole-file uploads of a changed file.
    pub reupload_interval: Duration,
    /// Time between metadata refreshes.
    pub heartbeat_interval: Duration,
    /// Time between full rescans when the watcher reports nothing.
    pub rescan_interval: Duration,
    /// Files uploaded at the same time.
    pub concurrency: usize,
    /// How long the final flush keeps retrying when storage fails.
    pub final_flush_timeout: Duration,
}

/// The collector's state and loop.
pub struct Engine {
    settings: Settings,
    cluster: ClusterRef,
    uploader: Uploader,
    checkpoint: CheckpointWriter,
    entries: Files,
    sessions: Sessions,
    renames: RenameMirror,
    spool: Arc<Spool>,
    metrics: Metrics,
    watcher: Option<Watcher>,
    ready: Arc<AtomicBool>,
    last_rescan: Option<Instant>,
    last_reupload: Option<Instant>,
}

impl Engine {
    /// An engine resuming from the checkpoint in `state_dir`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        root: PathBuf,
        state_dir: &Path,
        settings: Settings,
        node: Node,
        storage: Storage,
        spool: Arc<Spool>,
        known: SharedKnown,
        metrics: Metrics,
        ready: Arc<AtomicBool>,
    ) -> Result<Engine> {
        let uploader = Uploader::new(
            storage,
            retry_policy(settings.flush_interval),
            metrics.clone(),
        );
        let checkpoint = CheckpointWriter::open(state_dir)?;
        let entries = checkpoint.trusted_files(&root, spool.dir(), &node);
        tracing::info!(files = entries.len(), mode = ?uploader.mode(), "resuming");
        let sessions = Sessions::new(
            root,
            node.clone(),
            uploader.clone(),
            known,
            checkpoint.finished_sessions().clone(),
            settings.heartbeat_interval,
        );
        Ok(Engine {
            settings,
            renames: RenameMirror::new(uploader.clone(), node.cluster.clone()),
            cluster: node.cluster,
            uploader,
            checkpoint,
            entries,
            sessions,
            spool,
            metrics,
            watcher: None,
            ready,
            last_rescan: None,
            last_reupload: None,
        })
    }

    /// Uses a file watcher to rescan as soon as something changes.
    pub fn with_watcher(mut self, watcher: Watcher) -> Engine {
        self.watcher = Some(watcher);
        self
    }

    /// Runs until `stop` is cancelled, then flushes and finalises.
    pub async fn run(mut self, stop: CancellationToken) -> Result<()> {
        loop {
            self.tick(false).await;
            tokio::select! {
                _ = tokio::time::sleep(self.settings.flush_interval) => {}
                _ = stop.cancelled() => break,
            }
        }
        self.spool.roll(true);
        let deadline = Instant::now() + self.settings.final_flush_timeout;
        loop {
            if self.tick(true).await {
                break;
            }
            // Which files keep the flush going, and why (a file that never settles shows here).
            for (path, entry) in self.entries.iter().filter(|(_, e)| e.needs_work()).take(3) {
                tracing::debug!(
                    path = %path.display(),
                    verified = entry.verified,
                    uploaded = entry.tracked.uploaded,
                    seen_len = entry.seen.map(|s| s.len),
                    mtime_differs = entry.seen.is_some_and(|s| s.mtime_ns != entry.tracked.mtime_ns),
                    "still to flush"
                );
            }
            if Instant::now() >= deadline {
                tracing::error!(
                    pending_files = self.metrics.pending_files.get(),
                    "final flush timed out; some bytes are not in storage"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.sessions.finish().await;
        self.save();
        Ok(())
    }

    /// One round; returns whether everything known is in storage.
    pub async fn tick(&mut self, closing: bool) -> bool {
        let dirty = self.watcher.as_ref().is_some_and(Watcher::take_dirty);
        let due = self
            .last_rescan
            .is_none_or(|t| t.elapsed() >= self.settings.rescan_interval);
        if closing || dirty || due {
            self.last_rescan = Some(Instant::now());
            if let Err(e) = self.sessions.discover().await {
                tracing::warn!(error = %e, "cannot list sessions");
            }
            let (checkpoint, finished) = (&mut self.checkpoint, self.sessions.finished());
            self.renames
                .reconcile(&mut self.entries, &self.sessions, |entries| {
                    checkpoint.save(entries, finished)
                })
                .await;
        }
        // The spool lives in the state dir, which the watcher ignores: look at it every round.
        self.spool.roll(false);
        let segments = spool_files::reconcile(&mut self.entries, &self.spool, &self.cluster);
        let clean = self.upload(closing).await;
        spool_files::drop_sent(&mut self.entries, &self.spool, &segments);
        let clean = clean & self.sessions.heartbeat(&self.entries).await;
        self.save();
        gauges::update(&mut self.entries, &self.metrics);
        clean && self.entries.values().all(|e| !e.needs_work())
    }

    /// Uploads every file with new bytes; returns whether all succeeded.
    async fn upload(&mut self, closing: bool) -> bool {
        let reupload_due = self
            .last_reupload
            .is_none_or(|t| t.elapsed() >= self.settings.reupload_interval);
        let due = closing || self.uploader.mode() == Mode::Append || reupload_due;
        if self.uploader.mode() == Mode::Reupload && due {
            self.last_reupload = Some(Instant::now());
        }
        let jobs: Vec<Job> = self
            .entries
            .iter()
            .filter(|(_, e)| e.needs_work())
            .map(|(path, e)| Job {
                path: path.clone(),
                key: e.key.clone(),
                tracked: e.tracked.clone(),
                verified: e.verified,
                limit: e.limit,
                due,
                closing,
            })
            .collect();
        if jobs.is_empty() {
            return true;
        }
        tracing::debug!(files = jobs.len(), closing, "upload round");
        // After one failure in a round, the rest wait for the next round instead of each
        // retrying against a storage that is down.
        let down = Arc::new(AtomicBool::new(false));
        let uploader = self.uploader.clone();
        let results: Vec<(PathBuf, Option<crate::uploader::Outcome>)> = futures::stream::iter(jobs)
            .map(|job| {
                let uploader = uploader.clone();
                let down = Arc::clone(&down);
                async move {
                    if down.load(Ordering::Relaxed) {
                        return (job.path, None);
                    }
                    let path = job.path.clone();
                    let outcome = uploader.run(job).await;
                    if outcome.error.is_some() {
                        down.store(true, Ordering::Relaxed);
                    }
                    (path, Some(outcome))
                }
            })
            .buffer_unordered(self.settings.concurrency)
            .collect()
            .await;
        let mut errors = 0;
        let mut first_error = None;
        for (path, outcome) in results {
            let Some(outcome) = outcome else {
                errors += 1;
                continue;
            };
            let Some(entry) = self.entries.get_mut(&path) else {
                continue;
            };
            if outcome.tracked.id == entry.tracked.id {
                entry.tracked = outcome.tracked;
                entry.verified = outcome.verified;
            }
            if let Some(e) = outcome.error {
                errors += 1;
                first_error.get_or_insert(format!("{}: {e}", path.display()));
            }
        }
        if let Some(e) = first_error {
            tracing::warn!(failed_files = errors, first = %e, "upload round incomplete; retrying next round");
        }
        self.ready.store(errors == 0, Ordering::Relaxed);
        errors == 0
    }

    fn save(&mut self) {
        self.checkpoint
            .save(&self.entries, self.sessions.finished());
    }
}

/// Retries for one storage call: short enough that a round during an outage ends soon and
/// the next round tries again, long enough to ride out a blip.
pub fn retry_policy(flush_interval: Duration) -> Backoff {
    Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(2),
        max_elapsed: Some(flush_interval.max(Duration::from_secs(5))),
        multiplier: 2.0,
    }
}

/// Opens storage, retrying while it is unreachable (a bad configuration fails at once).
pub async fn open_storage(config: &StorageConfig) -> Result<Storage> {
    let policy = Backoff {
        max_elapsed: Some(Duration::from_secs(120)),
        ..Backoff::default()
    };
    Ok(
        ray_history_storage::retry::retry(&policy, "open storage", || Storage::open(config))
            .await?,
    )
}

/// `ray-history-collector run`: serves health, metrics and events, and runs the engine until
/// `stop` is cancelled.
pub async fn run(args: RunArgs, stop: CancellationToken) -> Result<()> {
    args.validate()?;
    let node = args.identity.resolve()?;
    let config = args
        .storage
        .resolve()
        .map_err(ray_history_storage::Error::from)?;
    let state_dir = args.state_dir();
    std::fs::create_dir_all(&state_dir).map_err(Error::io(&state_dir))?;
    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let servers = CancellationToken::new();
    if let Some(addr) = args.metrics_listen.0 {
        let router = crate::server::router(Arc::clone(&ready), metrics.clone());
        crate::server::serve(addr, router, servers.clone(), "METRICS_LISTEN").await?;
    }
    let storage = open_storage(&config).await?;
    ready.store(true, Ordering::Relaxed);
    tracing::info!(storage = storage.describe(), root = %args.ray_tmp_root.display(), "collector starting");
    let spool = Arc::new(Spool::new(
        state_dir.join("events"),
        args.events_roll_bytes,
        args.events_roll_interval,
    )?);
    let known: SharedKnown = Arc::new(RwLock::new(Known::default()));
    if let Some(addr) = args.events_listen.0 {
        let router = crate::event_receiver::router(
            Arc::clone(&spool),
            Arc::clone(&known),
            metrics.clone(),
            args.events_max_body,
        );
        crate::server::serve(addr, router, servers.clone(), "EVENTS_LISTEN").await?;
    }
    let settings = Settings {
        flush_interval: args.flush_interval,
        reupload_interval: args.reupload_interval,
        heartbeat_interval: args.heartbeat_interval,
        rescan_interval: args.rescan_interval,
        concurrency: usize::from(args.concurrency),
        final_flush_timeout: args.final_flush_timeout,
    };
    // Cancelled with the engine, so the last snapshot runs beside the final flush.
    let snapshots = stop.child_token();
    let snapshot_task = match (&args.ray_dashboard_url, node.node_type) {
        (Some(url), NodeType::Head) => Some(tokio::spawn(crate::snapshot::run(
            crate::snapshot::Settings {
                dashboard: url.clone(),
                interval: args.snapshot_interval,
                limit: args.snapshot_limit as usize,
            },
            storage.clone(),
            node.cluster.clone(),
            metrics.clone(),
            snapshots.clone(),
        ))),
        _ => None,
    };
    let watcher = Watcher::start(&args.ray_tmp_root, &state_dir)?;
    let engine = Engine::new(
        args.ray_tmp_root.clone(),
        &state_dir,
        settings,
        node,
        storage,
        spool,
        known,
        metrics,
        ready,
    )?
    .with_watcher(watcher);
    let result = engine.run(stop).await;
    if let Some(task) = snapshot_task {
        let _ = task.await;
    }
    servers.cancel();
    result
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
