//! The files the engine follows, by local path: a session's log files and the spool's
//! segments, each with its object key and how far storage has it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use object_store::path::Path as Key;
use ray_history_storage::layout::SessionName;

use crate::tracker::{FileId, FileStat, Tracked};

/// Where a followed file comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A file under a session's `logs/`.
    Log,
    /// A segment of the event spool.
    Spool,
}

/// One followed file.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The session it belongs to.
    pub(crate) session: SessionName,
    /// Its object.
    pub(crate) key: Key,
    /// Where it comes from.
    pub(crate) source: Source,
    /// What storage confirmed.
    pub(crate) tracked: Tracked,
    /// Whether the object's size was checked in this process.
    pub(crate) verified: bool,
    /// Last `stat` of the file (a spool segment's: no longer than its completed appends).
    pub(crate) seen: Option<FileStat>,
    /// Bytes that may be uploaded (a spool segment's completed appends); `None`: all.
    pub(crate) limit: Option<u64>,
    /// Since when storage has been behind the file (for the lag gauge).
    pub(crate) behind_since: Option<Instant>,
}

impl Entry {
    /// A newly followed file: nothing confirmed yet, its object not verified.
    pub(crate) fn new(session: SessionName, key: Key, source: Source, id: FileId) -> Entry {
        Entry {
            session,
            key,
            source,
            tracked: Tracked::new(id),
            verified: false,
            seen: None,
            limit: None,
            behind_since: None,
        }
    }

    /// Whether the object must be verified or the file changed since the last upload.
    pub(crate) fn needs_work(&self) -> bool {
        !self.verified
            || self.seen.is_some_and(|s| {
                s.len != self.tracked.uploaded || s.mtime_ns != self.tracked.mtime_ns
            })
    }

    /// Bytes seen on disk and not yet in storage.
    pub(crate) fn pending(&self) -> u64 {
        self.seen
            .map_or(0, |s| s.len.saturating_sub(self.tracked.uploaded))
    }
}

/// The followed files by local path.
pub(crate) type Files = BTreeMap<PathBuf, Entry>;
