//! `ray-history-collector`: a sidecar that streams a Ray node's session directories (logs and
//! event files) to object storage while the cluster runs, and flushes everything on shutdown.
//!
//! The [`engine`] runs one loop: [`discovery`] finds sessions, [`rotation`] reconciles the files
//! on disk with the [`tracker`] state, [`uploader`] moves the new bytes, [`checkpoint`] records
//! what storage confirmed, and [`metadata`] keeps `metadir/` current (the engine's private
//! owners `sessions`, `renames`, `spool_files` and `gauges` drive them). [`events`] receives Ray's
//! HTTP-pushed events into a local [`spool`]; on the head, [`snapshot`] stores what the
//! dashboard's State API knows; [`server`] answers health and metrics.

use std::path::PathBuf;

/// A test hook: built with `--features failpoints` and run with `FAILPOINTS=<name>=return`,
/// the process aborts here as a crash (SIGKILL) would, with no flush and no checkpoint. A
/// no-op otherwise.
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name, |_| std::process::abort());
    };
}

/// The local state file (what storage confirmed), replaced atomically.
pub mod checkpoint;
/// Command line and environment: `run`, `sync`, `check`, identity, storage.
pub mod config;
/// Sessions under `RAY_TMP_ROOT`, node ids, log files, Ray version, the file watcher.
pub mod discovery;
/// The loop: rescan, mirror renames, upload, metadata, checkpoint; final flush on stop.
pub mod engine;
/// `POST /v1/events`: Ray's pushed RayEvents into the spool.
pub mod event_receiver;
/// The files the engine follows and how far storage has each.
mod files;
/// Gauges of the upload queue.
mod gauges;
/// `metadata.json` and `nodes/<node-id>.json`.
pub mod metadata_writer;
/// Prometheus metrics.
pub mod metrics;
/// Rename mirroring: the followed log files kept in step with the session dirs.
mod renames;
/// Ray's log rotation: renames, vanished and new files, spare generations.
pub mod rotation;
/// `/healthz`, `/readyz`, `/metrics`.
pub mod server;
/// The sessions the engine collects and their metadata: heartbeat, finalising.
mod sessions;
/// SIGTERM and SIGINT.
pub mod shutdown;
/// Snapshots of the head's GCS-backed state from its dashboard.
pub mod snapshot;
/// Received events on local disk until they are in storage.
pub mod spool;
/// The spool's segments among the engine's followed files.
mod spool_files;
/// `sync <session-dir>`: one-shot backfill.
pub mod sync;
/// Per-file identity, fingerprints and upload progress.
pub mod tracker;
/// Moving new bytes to objects: appends on Azure, whole uploads elsewhere.
pub mod uploader;

/// Errors of the collector.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A storage call failed (after retries, when the failure was transient).
    #[error(transparent)]
    Storage(#[from] ray_history_storage::Error),
    /// A name or key does not fit the storage layout.
    #[error(transparent)]
    Layout(#[from] ray_history_storage::layout::LayoutError),
    /// A local file or directory could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The local path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A setting is unusable; the message names it.
    #[error("{setting}: {problem}")]
    Config {
        /// The setting, by its flag or environment name.
        setting: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The checkpoint file could not be parsed.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The file watcher could not be started.
    #[error("watching {path}: {source}")]
    Watch {
        /// The watched directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: notify::Error,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// Result with the collector [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
