//! Loads one session from storage: a single listing of its `log/` prefix finds the event
//! files and the log files; event files are fetched concurrently and parsed in parallel on
//! the rayon pool, each into its own [`Builder`], and the builders are merged (the merge is
//! order-independent, so completion order does not matter).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use ray_history_storage::Storage;
use ray_history_storage::layout::{ClusterRef, Key, NodeId, SessionName};
use ray_history_storage::metadata::{NodeMetadata, SessionMetadata, SessionState};
use rayon::prelude::*;
use tokio_util::task::TaskTracker;

use crate::Error;
use crate::events::{self, FileKind};
use crate::model::spill::{TaskSpill, hold_rows_for, release_freed_memory};
use crate::model::{Builder, Session};
use crate::session_index::{self, FORMAT_VERSION};

/// How many event files are downloaded at once.
const FETCH_CONCURRENCY: usize = 8;
/// Size of the blocks of lines parsed at a time while a file streams in.
const PARSE_BLOCK: usize = 8 * 1024 * 1024;

/// One log file of a node, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// Path relative to the node's `logs/` dir.
    pub relative: String,
    /// Size in bytes.
    pub size: u64,
}

/// A loaded session: its metadata, the merged event state and the index of its log files.
#[derive(Debug)]
pub struct LoadedSession {
    /// `metadata.json`.
    pub meta: SessionMetadata,
    /// `nodes/*.json`.
    pub nodes: Vec<NodeMetadata>,
    /// Where its logs are.
    pub cluster: ClusterRef,
    /// Merged events.
    pub state: Session,
    /// Log files per node, sorted by path.
    pub logs: BTreeMap<NodeId, Vec<LogFile>>,
    /// When it was loaded.
    pub loaded_at: Instant,
}

impl LoadedSession {
    /// Rough heap size, for the cache's byte budget.
    pub fn approx_bytes(&self) -> usize {
        let logs: usize = self
            .logs
            .values()
            .flatten()
            .map(|f| f.relative.len() + 48)
            .sum();
        self.state.approx_bytes() + logs + 4096
    }

    /// The session name.
    pub fn name(&self) -> &SessionName {
        &self.meta.session_name
    }

    /// The stored log files of a node.
    pub fn node_logs(&self, node: crate::ids::NodeId) -> Option<&[LogFile]> {
        NodeId::new(&node.hex())
            .ok()
            .and_then(|id| self.logs.get(&id))
            .map(Vec::as_slice)
    }

    /// The stored worker log (`out` or `err`) of a task's executing worker, as a path
    /// relative to its node's `logs/` dir.
    pub fn task_log_file(&self, task: &crate::model::Task, suffix: &str) -> Option<String> {
        let files = self.node_logs(task.node_id?)?;
        worker_file(files, &format!("worker-{}-", task.worker_id?.hex()), suffix)
    }
}

/// The first of `files` named `<prefix>….<suffix>`.
pub fn worker_file(files: &[LogFile], prefix: &str, suffix: &str) -> Option<String> {
    let ending = format!(".{suffix}");
    files
        .iter()
        .find(|f| f.relative.starts_with(prefix) && f.relative.ends_with(&ending))
        .map(|f| f.relative.clone())
}

/// Where a server keeps the local copies of session indexes, and the uploads of new ones
/// still in flight: a shutdown waits for those, so that an index built just before it is kept.
#[derive(Debug, Clone)]
pub struct IndexDir {
    path: Arc<std::path::Path>,
    uploads: TaskTracker,
}

impl IndexDir {
    /// Local copies kept in `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        IndexDir {
            path: Arc::from(path.into()),
            uploads: TaskTracker::new(),
        }
    }

    /// Waits until the uploads started so far have ended, at most `timeout`; `false` if some
    /// were still running.
    pub async fn uploads_ended(&self, timeout: Duration) -> bool {
        self.uploads.close();
        let ended = tokio::time::timeout(timeout, self.uploads.wait())
            .await
            .is_ok();
        self.uploads.reopen();
        ended
    }
}

/// Loads a session: from its stored index when it is finished and has a valid one, else by
/// merging every event file (and then, when finished, storing its index in the background,
/// so that a restart or another replica finds it). `index_dir` is
/// where local copies of indexes go; `None` turns indexes off.
pub async fn load(
    storage: &Storage,
    meta: SessionMetadata,
    nodes: Vec<NodeMetadata>,
    index_dir: Option<&IndexDir>,
) -> Result<LoadedSession, Error> {
    let started = Instant::now();
    let cluster = meta.cluster();
    let prefix = meta.log_prefix();
    let objects: Vec<_> = storage.list(Some(&prefix)).try_collect().await?;
    let mut logs: BTreeMap<NodeId, Vec<LogFile>> = BTreeMap::new();
    let mut event_files: Vec<(Path, FileKind, u64)> = Vec::new();
    let mut indexes: Vec<(Path, u64)> = Vec::new();
    for object in objects {
        match Key::parse(&object.location) {
            Ok(Key::LogFile { node, relative, .. }) => {
                if let Some(kind) = FileKind::of_log_path(&relative) {
                    event_files.push((object.location.clone(), kind, object.size));
                }
                logs.entry(node).or_default().push(LogFile {
                    relative,
                    size: object.size,
                });
            }
            Ok(Key::NodeEvents { .. }) => {
                event_files.push((object.location.clone(), FileKind::RayEvents, object.size));
            }
            Ok(Key::Snapshot { .. }) => {
                event_files.push((object.location.clone(), FileKind::Snapshot, object.size));
            }
            Ok(Key::SessionIndex { .. }) => indexes.push((object.location, object.size)),
            _ => {}
        }
    }
    let fingerprint = session_index::fingerprint(
        event_files
            .iter()
            .map(|(key, _, size)| (key.as_ref(), *size)),
    );
    // Only a finalised session is indexed: a live one still grows.
    let index_dir = index_dir.filter(|_| meta.state == SessionState::Finished);
    let index_key = cluster.session_index(&meta.session_name, FORMAT_VERSION, fingerprint);
    let mut damaged = false;
    let stored_index = indexes.iter().find(|(key, _)| *key == index_key);
    if let Some(dir) = index_dir
        && let Some((_, size)) = stored_index
    {
        match session_index::fetch(storage, &index_key, *size, fingerprint, &dir.path).await {
            Ok(state) => {
                tracing::info!(
                    session = %meta.session_name,
                    tasks = state.tasks.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "session loaded from its index"
                );
                return Ok(LoadedSession {
                    meta,
                    nodes,
                    cluster,
                    state,
                    logs: sorted(logs),
                    loaded_at: Instant::now(),
                });
            }
            Err(e) => {
                tracing::warn!(key = %index_key, error = %e, "ignoring a session index that cannot be used; rebuilding it");
                damaged = true;
            }
        }
    }
    let logs = sorted(logs);
    // A finalised session is over: whatever was still alive is shown as ended.
    let ended_ns = (meta.state == SessionState::Finished)
        .then(|| meta.end_time.unwrap_or(meta.last_heartbeat))
        .and_then(|t| t.timestamp_nanos_opt())
        .and_then(|t| u64::try_from(t).ok());
    let built = match index_dir {
        Some(dir) => {
            match build_index(
                storage,
                event_files.clone(),
                ended_ns,
                fingerprint,
                &dir.path,
            )
            .await?
            {
                Ok((state, file)) => {
                    // The session answers from the local file already; storing the index
                    // can take seconds on a remote store, so the first answer does not wait
                    // for it (if the server stops first, the next load builds it again).
                    let storage = storage.clone();
                    let stale: Vec<Path> = indexes.into_iter().map(|(key, _)| key).collect();
                    dir.uploads.spawn(async move {
                        store_index(&storage, file, &index_key, damaged, &stale).await
                    });
                    Some(state)
                }
                Err(e) => {
                    tracing::warn!(session = %meta.session_name, error = %e, "cannot build the session index on local disk; loading the session into memory");
                    None
                }
            }
        }
        None => None,
    };
    let indexed = built.is_some();
    let state = match built {
        Some(state) => state,
        None => {
            let merged = merge_events(storage, event_files, None).await?;
            on_pool(move || merged.finish_at(ended_ns)).await?
        }
    };
    tracing::info!(
        session = %meta.session_name,
        tasks = state.tasks.len(),
        actors = state.actors.len(),
        files = state.stats.files,
        corrupt_lines = state.stats.corrupt_lines,
        indexed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "session loaded"
    );
    Ok(LoadedSession {
        meta,
        nodes,
        cluster,
        state,
        logs,
        loaded_at: Instant::now(),
    })
}

/// Fetches and parses every event file (concurrently, biggest first) into one builder; with
/// a spill, the builders keep their task rows on local disk.
async fn merge_events(
    storage: &Storage,
    mut event_files: Vec<(Path, FileKind, u64)>,
    spill: Option<Arc<TaskSpill>>,
) -> Result<Builder, Error> {
    event_files.sort_by_key(|(_, _, size)| std::cmp::Reverse(*size));
    let mut parsed = futures::stream::iter(event_files)
        .filter(|(_, _, size)| futures::future::ready(*size > 0))
        .map(|(key, kind, _)| {
            let storage = storage.clone();
            let builder = spill.clone().map(Builder::spilling).unwrap_or_default();
            async move { parse_streamed(&storage, &key, kind, builder).await }
        })
        .buffer_unordered(FETCH_CONCURRENCY);
    // Fold each file's builder in as it completes, so at most a few partial states and
    // downloads are alive at once.
    let mut merged = spill.clone().map(Builder::spilling).unwrap_or_default();
    while let Some(builder) = parsed.try_next().await? {
        merged = on_pool(move || {
            let mut merged = merged;
            merged.merge(builder);
            merged
        })
        .await?;
    }
    Ok(merged)
}

/// Parses the events into a session index in a new unlinked file in `dir`, holding no more
/// than a partition of the task rows in memory. The inner error is one of the local disk,
/// after which the session can still be loaded into memory.
async fn build_index(
    storage: &Storage,
    event_files: Vec<(Path, FileKind, u64)>,
    ended_ns: Option<u64>,
    fingerprint: u64,
    dir: &std::path::Path,
) -> Result<std::io::Result<(Session, std::fs::File)>, Error> {
    let event_bytes = event_files.iter().map(|(_, _, size)| size).sum();
    let spill = match TaskSpill::new(dir, hold_rows_for(event_bytes)) {
        Ok(spill) => Arc::new(spill),
        Err(e) => return Ok(Err(e)),
    };
    let started = Instant::now();
    let files = event_files.len();
    let merged = merge_events(storage, event_files, Some(spill)).await?;
    tracing::info!(
        files,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "session index: event files parsed"
    );
    let dir = dir.to_path_buf();
    on_pool(move || {
        let built = session_index::build(merged, ended_ns, fingerprint, &dir);
        release_freed_memory();
        built
    })
    .await
}

fn sorted(mut logs: BTreeMap<NodeId, Vec<LogFile>>) -> BTreeMap<NodeId, Vec<LogFile>> {
    for files in logs.values_mut() {
        files.sort_by(|a, b| a.relative.cmp(&b.relative));
    }
    logs
}

/// Stores a freshly built index (create-only; a damaged one is replaced, those of other event
/// files or versions are deleted). A failure is logged: the index is built again next time.
async fn store_index(
    storage: &Storage,
    file: std::fs::File,
    key: &Path,
    damaged: bool,
    stale: &[Path],
) {
    let stored = async {
        let len = file
            .metadata()
            .map_err(|source| ray_history_storage::Error::Io {
                path: "(session index)".into(),
                source,
            })?
            .len();
        if damaged {
            storage.delete(key).await?;
        }
        let created = storage.put_file_if_absent(key, file, len).await?;
        for old in stale.iter().filter(|old| *old != key) {
            storage.delete(old).await?;
        }
        Ok::<_, ray_history_storage::Error>(created)
    };
    match stored.await {
        Ok(created) => tracing::info!(key = %key, created, "session index stored"),
        Err(e) => {
            tracing::warn!(key = %key, error = %e, "cannot store the session index; it is built again on the next load")
        }
    }
}

/// Downloads a file as a stream and parses it in blocks of whole lines, so a big file never
/// sits in memory whole. Two buffers take turns (one filling while the other is parsed), so
/// a file costs two allocations, not one per block: fresh pages for every block were a
/// large part of the parse's system time.
async fn parse_streamed(
    storage: &Storage,
    key: &Path,
    kind: FileKind,
    mut builder: Builder,
) -> Result<Builder, Error> {
    let (_, mut stream) = storage.get_stream(key, None).await?;
    builder.stats.files = 1;
    let mut pending: Vec<u8> = Vec::new();
    let mut spare: Vec<u8> = Vec::new();
    loop {
        let chunk = stream.try_next().await?;
        let done = chunk.is_none();
        if let Some(chunk) = chunk {
            pending.extend_from_slice(&chunk);
        }
        let cut = if done {
            pending.len()
        } else if pending.len() >= PARSE_BLOCK {
            match memchr::memrchr(b'\n', &pending) {
                Some(i) => i + 1,
                None => continue,
            }
        } else {
            continue;
        };
        spare.clear();
        spare.extend_from_slice(&pending[cut..]);
        pending.truncate(cut);
        let block = std::mem::replace(&mut pending, spare);
        let parsed = on_pool(move || {
            let mut builder = builder;
            events::parse(kind, &block, &mut builder);
            (builder, block)
        })
        .await?;
        (builder, spare) = parsed;
        if done {
            return Ok(builder);
        }
    }
}

/// Runs CPU-bound work on the rayon pool and waits for it without blocking the runtime.
async fn on_pool<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(work());
    });
    rx.await.map_err(|_| Error::Worker)
}

/// Parses files from memory (tests and benchmarks): the same path as [`load`] minus storage.
pub fn parse_files<'a>(files: impl IntoParallelIterator<Item = (FileKind, &'a [u8])>) -> Session {
    files
        .into_par_iter()
        .map(|(kind, data)| events::parse_to_builder(kind, data))
        .reduce(Builder::default, |mut a, b| {
            a.merge(b);
            a
        })
        .finish()
}

/// Shared handle type for loaded sessions.
pub type SharedSession = Arc<LoadedSession>;
