//! The collector's loop. Every `--flush-interval`: rescan when the watcher saw a change (or
//! the rescan timer fired), mirror renames, upload new bytes with bounded concurrency, refresh
//! metadata, save the checkpoint. On stop: seal the event spool, flush until everything is in
//! storage (or the final-flush timeout passes), finalise the live session, save, return.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use ray_history_storage::layout::{NodeId, SessionName};
use ray_history_storage::metadata::NodeType;
use ray_history_storage::retry::Backoff;
use ray_history_storage::{Storage, StorageConfig};
use tokio_util::sync::CancellationToken;

use crate::checkpoint::CheckpointWriter;
use crate::config::{Node, RunArgs};
use crate::discovery::{self, Watcher};
use crate::events::{Known, SharedKnown};
use crate::files::{Entry, Files, Source};
use crate::gauges;
use crate::metadata::{Publisher, SessionRecord};
use crate::metrics::Metrics;
use crate::rotation::{self, Rename};
use crate::spool::Spool;
use crate::spool_files;
use crate::tracker::{FileId, FileStat};
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

struct Session {
    record: SessionRecord,
    dir: PathBuf,
    announced: bool,
}

/// The collector's state and loop.
pub struct Engine {
    root: PathBuf,
    settings: Settings,
    node: Node,
    uploader: Uploader,
    publisher: Publisher,
    checkpoint: CheckpointWriter,
    finished: BTreeSet<String>,
    entries: Files,
    sessions: BTreeMap<SessionName, Session>,
    spool: Arc<Spool>,
    known: SharedKnown,
    metrics: Metrics,
    watcher: Option<Watcher>,
    ready: Arc<AtomicBool>,
    last_rescan: Option<Instant>,
    last_reupload: Option<Instant>,
    last_heartbeat: Instant,
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
        let publisher = Publisher::new(uploader.clone(), node.clone());
        Ok(Engine {
            root,
            settings,
            node,
            publisher,
            uploader,
            finished: checkpoint.finished_sessions().clone(),
            checkpoint,
            entries,
            sessions: BTreeMap::new(),
            spool,
            known,
            metrics,
            watcher: None,
            ready,
            last_rescan: None,
            last_reupload: None,
            last_heartbeat: Instant::now(),
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
            if Instant::now() >= deadline {
                tracing::error!(
                    pending_files = self.metrics.pending_files.get(),
                    "final flush timed out; some bytes are not in storage"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.finish().await;
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
            if let Err(e) = self.discover().await {
                tracing::warn!(error = %e, "cannot list sessions");
            }
            self.reconcile().await;
        }
        // The spool lives in the state dir, which the watcher ignores: look at it every round.
        self.spool.roll(false);
        let segments = spool_files::reconcile(&mut self.entries, &self.spool, &self.node.cluster);
        let clean = self.upload(closing).await;
        spool_files::drop_sent(&mut self.entries, &self.spool, &segments);
        let clean = clean & self.heartbeat().await;
        self.save();
        gauges::update(&mut self.entries, &self.metrics);
        clean && self.entries.values().all(|e| !e.needs_work())
    }

    async fn discover(&mut self) -> Result<()> {
        let root = self.root.clone();
        let found = tokio::task::spawn_blocking(move || discovery::sessions(&root))
            .await
            .expect("listing does not panic")?;
        let latest = discovery::latest(&self.root);
        let mut new = Vec::new();
        for dir in found {
            let Some(node) = dir.node.clone() else {
                continue;
            };
            if self.sessions.contains_key(&dir.name) {
                continue;
            }
            let version = discovery::ray_version(&dir.dir);
            match self.publisher.first_sight(&dir.name, &node, version).await {
                Ok(record) => {
                    tracing::info!(session = %dir.name, node = %node, "found session");
                    new.push((dir.name.clone(), node));
                    self.sessions.insert(
                        dir.name.clone(),
                        Session {
                            record,
                            dir: dir.dir,
                            announced: false,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(session = %dir.name, error = %e, "cannot read session metadata; retrying")
                }
            }
        }
        let known = Known {
            live: latest.and_then(|l| self.sessions.get(&l).map(|s| (l, s.record.node.clone()))),
            nodes: self
                .sessions
                .iter()
                .map(|(name, s)| (name.clone(), s.record.node.clone()))
                .collect(),
        };
        *self.known.write().expect("known sessions lock") = known;
        // After the receiver learnt of the sessions: it answers 503 until then.
        for (session, node) in new {
            self.clear_staging(&session, &node).await;
        }
        Ok(())
    }

    /// Deletes the staging objects an earlier run of this node left in a session (it crashed
    /// in a rewrite; none of this run's rewrites has started there yet).
    async fn clear_staging(&self, session: &SessionName, node: &NodeId) {
        let prefix = self.node.cluster.node_staging_prefix(session, node);
        let storage = self.uploader.storage();
        let listed: std::result::Result<Vec<_>, _> =
            storage.list(Some(&prefix)).try_collect().await;
        let objects = match listed {
            Ok(objects) => objects,
            Err(e) => {
                tracing::warn!(session = %session, error = %e, "cannot list staging objects");
                return;
            }
        };
        for object in objects {
            match self
                .uploader
                .call("delete", || storage.delete(&object.location))
                .await
            {
                Ok(()) => {
                    tracing::info!(key = %object.location, "deleted a staging object left by a crash")
                }
                Err(e) => {
                    tracing::warn!(key = %object.location, error = %e, "cannot delete a staging object")
                }
            }
        }
    }

    fn live(&self) -> Option<SessionName> {
        self.known
            .read()
            .expect("known sessions lock")
            .live
            .as_ref()
            .map(|(s, _)| s.clone())
    }

    async fn reconcile(&mut self) {
        // Files of sessions no longer on disk (Ray's temp dir was cleaned) are forgotten.
        let sessions = &self.sessions;
        self.entries.retain(|path, e| {
            e.source != Source::Log || sessions.contains_key(&e.session) || path.exists()
        });
        let names: Vec<SessionName> = self.sessions.keys().cloned().collect();
        for name in names {
            if let Err(e) = self.reconcile_session(&name).await {
                tracing::warn!(session = %name, error = %e, "cannot mirror renames yet");
            }
        }
    }

    async fn reconcile_session(&mut self, name: &SessionName) -> Result<()> {
        let session = &self.sessions[name];
        let logs = session.dir.join("logs");
        let node = session.record.node.clone();
        let scan_dir = logs.clone();
        let files = tokio::task::spawn_blocking(move || discovery::log_files(&scan_dir))
            .await
            .expect("scanning does not panic");
        let disk: BTreeMap<PathBuf, FileId> =
            files.iter().map(|f| (f.path.clone(), f.stat.id)).collect();
        let tracked: BTreeMap<PathBuf, FileId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.source == Source::Log && &e.session == name)
            .map(|(p, e)| (p.clone(), e.tracked.id))
            .collect();
        let plan = rotation::plan(&tracked, &disk, |from, to| {
            let Some(entry) = self.entries.get(from) else {
                return false;
            };
            std::fs::File::open(to)
                .and_then(|file| entry.tracked.read_next(&file, 0))
                .is_ok_and(|chunk| chunk.is_some())
        });
        let mut targets = BTreeSet::new();
        for rename in &plan.renames {
            self.rename(name, &node, &logs, rename).await?;
            targets.insert(rename.to.clone());
        }
        for path in plan.vanished.iter().filter(|p| !targets.contains(*p)) {
            tracing::debug!(path = %path.display(), "file vanished");
            self.entries.remove(path);
        }
        for file in &files {
            if !self.entries.contains_key(&file.path) {
                let key = self.node.cluster.log_file(name, &node, &file.relative)?;
                self.entries.insert(
                    file.path.clone(),
                    Entry::new(name.clone(), key, Source::Log, file.stat.id),
                );
            }
            if let Some(entry) = self.entries.get_mut(&file.path) {
                if entry.tracked.id == file.stat.id {
                    entry.seen = Some(file.stat);
                } else {
                    // Replaced between the rename and now: start over on the new file.
                    *entry = Entry::new(name.clone(), entry.key.clone(), Source::Log, file.stat.id);
                    entry.seen = Some(file.stat);
                }
            }
        }
        Ok(())
    }

    /// Mirrors a rename in storage (see [`rotation::Target::mirror`]) and checkpoints it at
    /// once: a crash later in the round must not make the next run mirror it again from a
    /// state that no longer matches storage.
    async fn rename(
        &mut self,
        session: &SessionName,
        node: &NodeId,
        logs: &Path,
        rename: &Rename,
    ) -> Result<()> {
        let Some(mut entry) = self.entries.remove(&rename.from) else {
            return Ok(());
        };
        let relative = rename
            .to
            .strip_prefix(logs)
            .ok()
            .and_then(|r| r.to_str())
            .map(str::to_string)
            .unwrap_or_default();
        let target = rotation::Target {
            uploader: &self.uploader,
            cluster: &self.node.cluster,
            session,
            node,
        };
        // A file at the old name (Ray's new `raylet.out`, or the next generation) replaces
        // the object there; deleting it first would show readers a missing file.
        let reused = FileStat::of(&rename.from).is_ok_and(|stat| stat.is_some());
        let result = target
            .mirror(&entry.key, &relative, &rename.to, entry.tracked.id, reused)
            .await;
        match result {
            Ok(new_key) => {
                tracing::info!(from = %rename.from.display(), to = %rename.to.display(), "mirrored a rename");
                entry.key = new_key;
                self.entries.insert(rename.to.clone(), entry);
                crash_point!("rename-mirrored");
                self.save();
                Ok(())
            }
            Err(e) => {
                self.entries.insert(rename.from.clone(), entry);
                Err(e)
            }
        }
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

    /// Announces new sessions, refreshes the live one on the heartbeat, and finalises
    /// sessions left over from earlier Ray runs once their files are all in storage.
    async fn heartbeat(&mut self) -> bool {
        let live = self.live();
        let beat = self.last_heartbeat.elapsed() >= self.settings.heartbeat_interval;
        if beat {
            self.last_heartbeat = Instant::now();
        }
        let mut ok = true;
        let names: Vec<SessionName> = self.sessions.keys().cloned().collect();
        for name in names {
            let is_live = live.as_ref() == Some(&name);
            let done = self.finished.contains(name.as_str());
            let caught_up = self
                .entries
                .values()
                .filter(|e| e.session == name)
                .all(|e| e.verified && !e.needs_work());
            let session = self.sessions.get_mut(&name).expect("listed");
            if session.record.ray_version.is_none() && (beat || !session.announced) {
                session.record.ray_version = discovery::ray_version(&session.dir);
            }
            let write = if is_live {
                (beat || !session.announced).then_some(None)
            } else if !done && caught_up {
                Some(Some(self.last_write(&name)))
            } else {
                None
            };
            let Some(end) = write else { continue };
            let session = &self.sessions[&name];
            match self.publisher.write(&session.record, end).await {
                Ok(()) => {
                    self.sessions.get_mut(&name).expect("listed").announced = true;
                    if end.is_some() {
                        tracing::info!(session = %name, "finalised a session left from an earlier run");
                        self.finished.insert(name.to_string());
                    }
                }
                Err(e) => {
                    ok = false;
                    tracing::warn!(session = %name, error = %e, "cannot write session metadata");
                }
            }
        }
        ok
    }

    /// The newest modification time among a session's files (its end, for a dead session).
    fn last_write(&self, name: &SessionName) -> DateTime<Utc> {
        self.entries
            .values()
            .filter(|e| &e.session == name)
            .map(|e| e.tracked.mtime_ns)
            .max()
            .filter(|ns| *ns > 0)
            .map(DateTime::from_timestamp_nanos)
            .unwrap_or_else(Utc::now)
    }

    /// Finalises the live session (this node is stopping).
    async fn finish(&mut self) {
        let Some(live) = self.live() else { return };
        let Some(session) = self.sessions.get(&live) else {
            return;
        };
        match self
            .publisher
            .write(&session.record, Some(Utc::now()))
            .await
        {
            Ok(()) => {
                tracing::info!(session = %live, "session finalised");
                self.finished.insert(live.to_string());
            }
            Err(e) => {
                tracing::error!(session = %live, error = %e, "cannot finalise session metadata")
            }
        }
    }

    fn save(&mut self) {
        self.checkpoint.save(&self.entries, &self.finished);
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
        let router = crate::events::router(
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
