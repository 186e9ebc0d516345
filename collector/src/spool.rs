//! The local event spool: RayEvents received over HTTP are written to a segment file in the
//! state dir before the request is answered, so a storage outage (or a crash) loses none.
//! Each segment is one future `node_events/<node-id>-<unix-millis>.json` object (JSON Lines);
//! the engine uploads it like a log file while it grows.
//!
//! A segment is sealed (rolled by size or age, at shutdown, or at start-up when a crashed run
//! left it open) by creating an empty marker `<node-id>-<unix-millis>.sealed-<size>` beside
//! it: the name carries the final size and appears whole or not at all, so it survives a
//! SIGKILL at any moment. Later events go to a new segment. The engine deletes a segment only
//! once storage confirmed exactly its sealed size, and never uploads past [`Segment::size`],
//! so a batch still being written (or torn by a crash) is never stored in part.
//!
//! What a `200` guarantees: the batch was written and `fdatasync`ed, and so was the directory
//! entry of the segment it went to; it survives a crash of the collector and, on a volume that
//! honours fsync, of the node. A batch answered otherwise may still have been stored (once); a
//! sender that posts it again may then find it stored twice.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ray_history_storage::layout::{NodeId, SessionName};

use crate::{Error, Result};

/// Between a segment's stem and its final size in the name of its seal marker.
const SEALED: &str = ".sealed-";

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
    /// Bytes of completed appends: all that may be uploaded (its final size once sealed).
    pub size: u64,
    /// Whether `size` is final: nothing will be appended any more.
    pub sealed: bool,
}

struct Open {
    file: File,
    path: PathBuf,
    started: Instant,
    size: u64,
}

/// What the receiver is writing, behind one lock.
#[derive(Default)]
struct Writing {
    /// The open segment of each session.
    open: HashMap<SessionName, Open>,
    /// Segments no longer written whose marker could not be created yet: their final size.
    unsealed: HashMap<PathBuf, u64>,
}

/// Event files being written, one open segment per session.
pub struct Spool {
    dir: PathBuf,
    roll_bytes: u64,
    roll_after: Duration,
    writing: Mutex<Writing>,
}

impl Spool {
    /// A spool in `dir` (created when missing). Segments an earlier run left open are sealed
    /// at their last complete line, and markers of removed segments are cleared away.
    pub fn new(dir: PathBuf, roll_bytes: u64, roll_after: Duration) -> Result<Spool> {
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let spool = Spool {
            dir,
            roll_bytes,
            roll_after,
            writing: Mutex::new(Writing::default()),
        };
        let mut writing = Writing::default();
        for listed in spool.list() {
            match (listed.marker, listed.sealed_at) {
                (Some(marker), _) if !listed.path.exists() => {
                    // The segment was removed but a crash kept its marker.
                    let _ = std::fs::remove_file(marker);
                }
                (_, Some(_)) => {}
                (_, None) => {
                    let size = complete_lines(&listed.path).map_err(Error::io(&listed.path))?;
                    if let Err(e) = seal(&listed.path, size) {
                        tracing::warn!(path = %listed.path.display(), error = %e, "cannot seal an events file; retrying");
                        writing.unsealed.insert(listed.path, size);
                    }
                }
            }
        }
        *spool.writing.lock().expect("spool lock") = writing;
        Ok(spool)
    }

    /// The folder of the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends JSON Lines for `session` and makes them durable before returning.
    pub fn append(&self, session: &SessionName, node: &NodeId, lines: &[u8]) -> Result<()> {
        let mut writing = self.writing.lock().expect("spool lock");
        let writing = &mut *writing;
        if writing.open.get(session).is_none_or(|o| self.due(o)) {
            if let Some(old) = writing.open.remove(session) {
                retire(&mut writing.unsealed, old);
            }
            let segment = self.create(session, node)?;
            writing.open.insert(session.clone(), segment);
        }
        let segment = writing.open.get_mut(session).expect("just inserted");
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
                // A partial write leaves a torn line: seal before it, go on in a new file.
                let old = writing.open.remove(session).expect("open");
                let path = old.path.clone();
                retire(&mut writing.unsealed, old);
                Err(Error::io(path)(e))
            }
        }
    }

    fn due(&self, open: &Open) -> bool {
        open.size >= self.roll_bytes || open.started.elapsed() >= self.roll_after
    }

    fn create(&self, session: &SessionName, node: &NodeId) -> Result<Open> {
        let dir = self.dir.join(session.as_str());
        if !dir.exists() {
            std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
            sync_dir(&self.dir).map_err(Error::io(&self.dir))?;
        }
        let mut millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        loop {
            let path = dir.join(format!("{node}-{millis}.json"));
            match OpenOptions::new().append(true).create_new(true).open(&path) {
                Ok(file) => {
                    // A `200` must not depend on a directory entry that a node crash can lose.
                    sync_dir(&dir).map_err(Error::io(&dir))?;
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

    /// Seals the segments that reached their size or age (all of them when `all`), and
    /// retries the seals that failed.
    pub fn roll(&self, all: bool) {
        let mut writing = self.writing.lock().expect("spool lock");
        let writing = &mut *writing;
        let due: Vec<SessionName> = writing
            .open
            .iter()
            .filter(|(_, o)| all || self.due(o))
            .map(|(s, _)| s.clone())
            .collect();
        for session in due {
            let old = writing.open.remove(&session).expect("listed");
            retire(&mut writing.unsealed, old);
        }
        writing
            .unsealed
            .retain(|path, size| seal(path, *size).is_err());
    }

    /// Every spooled segment, open or sealed, with the size that may be uploaded.
    pub fn segments(&self) -> Vec<Segment> {
        // Sizes first: a segment created after this is skipped until the next call, and one
        // sealed meanwhile is reported open with a size it has at least.
        let sizes: HashMap<PathBuf, u64> = {
            let writing = self.writing.lock().expect("spool lock");
            let open = writing.open.values().map(|o| (o.path.clone(), o.size));
            let unsealed = writing.unsealed.iter().map(|(p, s)| (p.clone(), *s));
            open.chain(unsealed).collect()
        };
        let mut found: Vec<Segment> = self
            .list()
            .into_iter()
            .filter_map(|listed| {
                let (size, sealed) = match listed.sealed_at {
                    Some(size) => (size, true),
                    None => (*sizes.get(&listed.path)?, false),
                };
                listed.path.exists().then_some(Segment {
                    path: listed.path,
                    session: listed.session,
                    node: listed.node,
                    unix_millis: listed.unix_millis,
                    size,
                    sealed,
                })
            })
            .collect();
        found.sort_by(|a, b| a.path.cmp(&b.path));
        found
    }

    /// Deletes a sealed segment (storage holds all of it), then its marker; a marker left
    /// behind is cleared at the next start.
    pub fn remove(&self, segment: &Segment) -> std::io::Result<()> {
        std::fs::remove_file(&segment.path)?;
        let _ = std::fs::remove_file(marker_path(&segment.path, segment.size));
        Ok(())
    }

    /// Segments and markers on disk, paired by name.
    fn list(&self) -> Vec<Listed> {
        let mut found: HashMap<PathBuf, Listed> = HashMap::new();
        let Ok(sessions) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
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
                let Some(name) = name.to_str() else { continue };
                let (stem, sealed_at) = match name.split_once(SEALED) {
                    Some((stem, size)) => match size.parse::<u64>() {
                        Ok(size) => (stem, Some(size)),
                        Err(_) => continue,
                    },
                    None => match name.strip_suffix(".json") {
                        Some(stem) => (stem, None),
                        None => continue,
                    },
                };
                let Some((node, millis)) = stem.rsplit_once('-') else {
                    continue;
                };
                let (Ok(node), Ok(unix_millis)) = (NodeId::new(node), millis.parse()) else {
                    continue;
                };
                let path = session_dir.path().join(format!("{stem}.json"));
                let listed = found.entry(path.clone()).or_insert(Listed {
                    path,
                    session: session.clone(),
                    node,
                    unix_millis,
                    marker: None,
                    sealed_at: None,
                });
                if sealed_at.is_some() {
                    listed.marker = Some(file.path());
                    listed.sealed_at = sealed_at;
                }
            }
        }
        found.into_values().collect()
    }
}

/// A segment's name on disk, and its marker if it has one.
struct Listed {
    path: PathBuf,
    session: SessionName,
    node: NodeId,
    unix_millis: u64,
    marker: Option<PathBuf>,
    sealed_at: Option<u64>,
}

/// Seals a segment no longer written, or keeps it for [`Spool::roll`] to retry.
fn retire(unsealed: &mut HashMap<PathBuf, u64>, old: Open) {
    if let Err(e) = seal(&old.path, old.size) {
        tracing::warn!(path = %old.path.display(), error = %e, "cannot seal an events file; retrying");
        unsealed.insert(old.path, old.size);
    }
}

/// `<node-id>-<millis>.sealed-<size>` beside `<node-id>-<millis>.json`.
fn marker_path(segment: &Path, size: u64) -> PathBuf {
    let stem = segment
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    segment.with_file_name(format!("{stem}{SEALED}{size}"))
}

/// Records `size` as the segment's final size.
fn seal(segment: &Path, size: u64) -> std::io::Result<()> {
    let marker = marker_path(segment, size);
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    sync_dir(segment.parent().unwrap_or(Path::new(".")))
}

/// The length of a file up to its last newline: a crash in the middle of a write leaves a torn
/// batch, which was never acknowledged and is left out.
fn complete_lines(path: &Path) -> std::io::Result<u64> {
    const STEP: u64 = 64 * 1024;
    let file = File::open(path)?;
    let mut end = file.metadata()?.len();
    let mut buf = vec![0u8; STEP as usize];
    while end > 0 {
        let start = end.saturating_sub(STEP);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SessionName {
        SessionName::new("session_2026-11-21_04-23-31_898414_12602").unwrap()
    }

    fn node() -> NodeId {
        NodeId::new(&"ab".repeat(28)).unwrap()
    }

    #[test]
    fn events_are_durable_files_rolled_by_size_and_sealed_at_their_size() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("events"), 20, Duration::from_secs(3600)).unwrap();
        let (session, node) = (session(), node());
        spool.append(&session, &node, b"{\"a\":1}\n").unwrap();
        spool.append(&session, &node, b"{\"a\":2}\n").unwrap();
        let segments = spool.segments();
        assert_eq!(segments.len(), 1);
        assert_eq!((segments[0].size, segments[0].sealed), (16, false));
        // 16 bytes < 20: still open; the next write passes the size and rolls.
        spool.append(&session, &node, b"{\"a\":3}\n").unwrap();
        spool.append(&session, &node, b"{\"a\":4}\n").unwrap();
        let segments = spool.segments();
        assert_eq!(segments.len(), 2, "{segments:?}");
        assert_eq!((segments[0].size, segments[0].sealed), (24, true));
        assert_eq!((segments[1].size, segments[1].sealed), (8, false));
        assert_eq!(
            std::fs::read(&segments[0].path).unwrap(),
            b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n"
        );
        assert_eq!(segments[1].node, node);
        spool.roll(true);
        assert!(spool.segments().iter().all(|s| s.sealed));
        // A restarted collector finds the segments again, sealed as they were.
        let again = Spool::new(dir.path().join("events"), 20, Duration::from_secs(1)).unwrap();
        let sealed: Vec<Segment> = segments
            .into_iter()
            .map(|s| Segment { sealed: true, ..s })
            .collect();
        assert_eq!(again.segments(), sealed);
        again.remove(&sealed[0]).unwrap();
        assert_eq!(again.segments(), sealed[1..]);
        assert_eq!(
            std::fs::read_dir(sealed[0].path.parent().unwrap())
                .unwrap()
                .count(),
            2
        );
    }

    #[test]
    fn a_crashed_runs_segment_is_sealed_before_its_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events");
        let spool = Spool::new(events.clone(), 1 << 20, Duration::from_secs(3600)).unwrap();
        spool.append(&session(), &node(), b"{\"a\":1}\n").unwrap();
        let path = spool.segments()[0].path.clone();
        // The process dies in the middle of its next write, with the segment still open.
        drop(spool);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"a\":").unwrap();
        let again = Spool::new(events, 1 << 20, Duration::from_secs(3600)).unwrap();
        let segments = again.segments();
        assert_eq!(segments.len(), 1);
        assert_eq!((segments[0].size, segments[0].sealed), (8, true));
        // New events go to a new segment, never after the torn bytes.
        again.append(&session(), &node(), b"{\"b\":1}\n").unwrap();
        assert_eq!(again.segments().len(), 2);
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n{\"a\":");
    }

    #[test]
    fn a_marker_left_by_a_crash_during_removal_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events");
        let spool = Spool::new(events.clone(), 1 << 20, Duration::from_secs(3600)).unwrap();
        spool.append(&session(), &node(), b"{\"a\":1}\n").unwrap();
        spool.roll(true);
        let segment = spool.segments().remove(0);
        std::fs::remove_file(&segment.path).unwrap();
        let again = Spool::new(events, 1 << 20, Duration::from_secs(3600)).unwrap();
        assert!(again.segments().is_empty());
        assert_eq!(
            std::fs::read_dir(segment.path.parent().unwrap())
                .unwrap()
                .count(),
            0
        );
    }
}
