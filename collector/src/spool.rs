//! The local event spool: RayEvents received over HTTP are written to a file in the state dir
//! before the request is answered, so a storage outage (or a crash) loses none. Each file is
//! one future `node_events/<node-id>-<unix-millis>.json` object (JSON Lines); the engine
//! uploads it like a log file while it grows, and deletes it once it is sealed (rolled by size
//! or age, or at shutdown) and fully uploaded.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ray_history_storage::layout::{NodeId, SessionName};

use crate::{Error, Result};

/// A spooled events file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its path.
    pub path: PathBuf,
    /// The session it belongs to.
    pub session: SessionName,
    /// The node that received it.
    pub node: NodeId,
    /// When it was started (Unix milliseconds; part of its object key).
    pub unix_millis: u64,
}

struct Open {
    file: File,
    path: PathBuf,
    started: Instant,
    size: u64,
}

/// Event files being written, one open segment per session.
pub struct Spool {
    dir: PathBuf,
    roll_bytes: u64,
    roll_after: Duration,
    open: Mutex<HashMap<SessionName, Open>>,
}

impl Spool {
    /// A spool in `dir` (created when missing). Files left by an earlier run are sealed.
    pub fn new(dir: PathBuf, roll_bytes: u64, roll_after: Duration) -> Result<Spool> {
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        Ok(Spool {
            dir,
            roll_bytes,
            roll_after,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The folder of the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends JSON Lines for `session` and makes them durable before returning.
    pub fn append(&self, session: &SessionName, node: &NodeId, lines: &[u8]) -> Result<()> {
        let mut open = self.open.lock().expect("spool lock");
        if open.get(session).is_none_or(|o| self.due(o)) {
            let segment = self.create(session, node)?;
            open.insert(session.clone(), segment);
        }
        let segment = open.get_mut(session).expect("just inserted");
        let write = segment
            .file
            .write_all(lines)
            .and_then(|()| segment.file.sync_data());
        match write {
            Ok(()) => {
                segment.size += lines.len() as u64;
                Ok(())
            }
            Err(e) => {
                // A partial write leaves a torn line: start a fresh file next time.
                let path = segment.path.clone();
                open.remove(session);
                Err(Error::io(path)(e))
            }
        }
    }

    fn due(&self, open: &Open) -> bool {
        open.size >= self.roll_bytes || open.started.elapsed() >= self.roll_after
    }

    fn create(&self, session: &SessionName, node: &NodeId) -> Result<Open> {
        let dir = self.dir.join(session.as_str());
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let mut millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        loop {
            let path = dir.join(format!("{node}-{millis}.json"));
            match OpenOptions::new().append(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(Open {
                        file,
                        path,
                        started: Instant::now(),
                        size: 0,
                    });
                }
                // Two files in the same millisecond: the key must differ.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => millis += 1,
                Err(e) => return Err(Error::io(path)(e)),
            }
        }
    }

    /// Seals the files that reached their size or age (all of them when `all`).
    pub fn roll(&self, all: bool) {
        let mut open = self.open.lock().expect("spool lock");
        open.retain(|_, o| !all && !self.due(o));
    }

    /// Whether a file is still being written (not sealed).
    pub fn is_open(&self, path: &Path) -> bool {
        let open = self.open.lock().expect("spool lock");
        open.values().any(|o| o.path == path)
    }

    /// Every spooled file, open or sealed.
    pub fn segments(&self) -> Vec<Segment> {
        let mut found = Vec::new();
        let Ok(sessions) = std::fs::read_dir(&self.dir) else {
            return found;
        };
        for session_dir in sessions.flatten() {
            let Some(session) = session_dir
                .file_name()
                .to_str()
                .and_then(|n| SessionName::new(n).ok())
            else {
                continue;
            };
            let Ok(files) = std::fs::read_dir(session_dir.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name();
                let Some((node, millis)) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .and_then(|n| n.rsplit_once('-'))
                else {
                    continue;
                };
                if let (Ok(node), Ok(unix_millis)) = (NodeId::new(node), millis.parse()) {
                    found.push(Segment {
                        path: file.path(),
                        session: session.clone(),
                        node,
                        unix_millis,
                    });
                }
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_durable_files_rolled_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("events"), 20, Duration::from_secs(3600)).unwrap();
        let session = SessionName::new("session_2026-11-21_04-23-31_898414_12602").unwrap();
        let node = NodeId::new(&"ab".repeat(28)).unwrap();
        spool.append(&session, &node, b"{\"a\":1}\n").unwrap();
        spool.append(&session, &node, b"{\"a\":2}\n").unwrap();
        assert_eq!(spool.segments().len(), 1);
        // 16 bytes < 20: still open; the next write passes the size and rolls.
        spool.append(&session, &node, b"{\"a\":3}\n").unwrap();
        spool.append(&session, &node, b"{\"a\":4}\n").unwrap();
        let segments = spool.segments();
        assert_eq!(segments.len(), 2, "{segments:?}");
        assert!(!spool.is_open(&segments[0].path));
        assert!(spool.is_open(&segments[1].path));
        assert_eq!(
            std::fs::read(&segments[0].path).unwrap(),
            b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n"
        );
        assert_eq!(segments[1].node, node);
        spool.roll(true);
        assert!(!spool.is_open(&segments[1].path));
        // A restarted collector finds the files again.
        let again = Spool::new(dir.path().join("events"), 20, Duration::from_secs(1)).unwrap();
        assert_eq!(again.segments(), segments);
    }
}
