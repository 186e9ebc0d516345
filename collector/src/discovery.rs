//! Finding what to upload: the session dirs under `RAY_TMP_ROOT` (the one `session_latest`
//! points to is live; the others are left over from earlier Ray runs), each node's id from the
//! `*_port_<node-id>` files Ray writes, the regular files under `logs/`, and the Ray version
//! from the session's own logs. A `notify` watcher marks the tree dirty so the engine rescans
//! at once; the engine also rescans on a timer, since inotify can overflow or be missing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use notify::{RecursiveMode, Watcher as _};
use ray_history_storage::layout::{NodeId, SessionName, split_relative};

use crate::tracker::FileStat;
use crate::{Error, Result};

/// The symlink Ray points at the live session.
pub const LATEST: &str = "session_latest";
/// Bytes of a log read when looking for the Ray version.
const VERSION_SCAN_BYTES: u64 = 256 * 1024;

/// A session dir found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDir {
    /// The dir's name.
    pub name: SessionName,
    /// Its path.
    pub dir: PathBuf,
    /// The node id, once Ray has written its port files.
    pub node: Option<NodeId>,
}

impl SessionDir {
    /// Reads a session dir (the name must start with `session_`).
    pub fn open(dir: &Path) -> Result<SessionDir> {
        let file_name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let name = SessionName::new(file_name)?;
        Ok(SessionDir {
            name,
            dir: dir.to_path_buf(),
            node: node_id(dir)?,
        })
    }

    /// The session's `logs/` dir.
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }
}

/// Every `session_*` dir under `root` (not the `session_latest` link), oldest name first.
pub fn sessions(root: &Path) -> Result<Vec<SessionDir>> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(root)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io(root))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if name.starts_with("session_") && name != LATEST && is_dir {
            match SessionDir::open(&entry.path()) {
                Ok(session) => found.push(session),
                Err(e) => {
                    tracing::warn!(dir = %entry.path().display(), error = %e, "skipping session dir")
                }
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The session `session_latest` points to, if any.
pub fn latest(root: &Path) -> Option<SessionName> {
    let target = std::fs::read_link(root.join(LATEST)).ok()?;
    SessionName::new(target.file_name()?.to_str()?).ok()
}

/// The node id from the `*_port_<node-id>` files in a session dir.
pub fn node_id(dir: &Path) -> Result<Option<NodeId>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(Error::io(dir))?;
        if let Some(name) = entry.file_name().to_str()
            && let Some((_, id)) = name.rsplit_once("_port_")
            && let Ok(node) = NodeId::new(id)
        {
            return Ok(Some(node));
        }
    }
    Ok(None)
}

/// A regular file under a session's `logs/` dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// Its path.
    pub path: PathBuf,
    /// Its `/`-separated path relative to `logs/` (valid for the key layout).
    pub relative: String,
    /// What `stat` said.
    pub stat: FileStat,
}

/// Every regular file under `logs_dir`, recursively, without following symlinks. Names the
/// key layout refuses (control characters…) are skipped with a warning.
pub fn log_files(logs_dir: &Path) -> Vec<LogFile> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(logs_dir)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = match entry {
            Ok(entry) => entry,
            // Files and dirs vanish while Ray runs: not an error.
            Err(e) if e.io_error().map(|io| io.kind()) == Some(std::io::ErrorKind::NotFound) => {
                continue;
            }
            Err(e) => {
                tracing::warn!(dir = %logs_dir.display(), error = %e, "cannot read");
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let Some(relative) = entry
            .path()
            .strip_prefix(logs_dir)
            .ok()
            .and_then(|r| r.to_str())
            .map(str::to_string)
        else {
            tracing::warn!(path = %entry.path().display(), "skipping a file whose name is not UTF-8");
            continue;
        };
        if split_relative(&relative).is_err() {
            tracing::warn!(path = %entry.path().display(), "skipping a file whose name cannot be a key");
            continue;
        }
        files.push(LogFile {
            path: entry.path().to_path_buf(),
            relative,
            stat: FileStat::from_metadata(&meta),
        });
    }
    files
}

/// The Ray version, from the line GCS logs at start (`ray_version=2.60.0`) or the
/// autoscaler monitor's `Ray version: 2.60.0`.
pub fn ray_version(session_dir: &Path) -> Option<String> {
    let logs = session_dir.join("logs");
    let sources = [
        ("gcs_server.out", "ray_version="),
        ("monitor.log", "Ray version: "),
    ];
    sources.iter().find_map(|(file, marker)| {
        let mut bytes = Vec::new();
        std::fs::File::open(logs.join(file))
            .ok()?
            .take(VERSION_SCAN_BYTES)
            .read_to_end(&mut bytes)
            .ok()?;
        let text = String::from_utf8_lossy(&bytes);
        let rest = &text[text.find(marker)? + marker.len()..];
        let version: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
            .collect();
        (!version.is_empty()).then_some(version)
    })
}

/// Watches `RAY_TMP_ROOT` recursively and raises a flag on every change outside the state
/// dir (the collector's own writes there must not trigger rescans).
pub struct Watcher {
    _watcher: notify::RecommendedWatcher,
    dirty: Arc<AtomicBool>,
}

impl Watcher {
    /// Starts watching `root` (created when missing, so Ray can start after the collector).
    pub fn start(root: &Path, state_dir: &Path) -> Result<Watcher> {
        std::fs::create_dir_all(root).map_err(Error::io(root))?;
        let dirty = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&dirty);
        let ignored = state_dir.to_path_buf();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let relevant = match event {
                    Ok(event) => event.paths.iter().any(|p| !p.starts_with(&ignored)),
                    // An error (e.g. queue overflow) means events were lost: rescan.
                    Err(_) => true,
                };
                if relevant {
                    flag.store(true, Ordering::Relaxed);
                }
            })
            .map_err(|source| Error::Watch {
                path: root.to_path_buf(),
                source,
            })?;
        watcher
            .watch(root, RecursiveMode::Recursive)
            .map_err(|source| Error::Watch {
                path: root.to_path_buf(),
                source,
            })?;
        Ok(Watcher {
            _watcher: watcher,
            dirty,
        })
    }

    /// Whether anything changed since the last call.
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/ray-2.60-session");
    const NODE: &str = "2c19cf3212f28247c3219bcfea6f3840dda46c43df2052e23770e17e";

    fn fixture_session() -> PathBuf {
        let root = Path::new(FIXTURES);
        let name = std::fs::read_dir(root)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().into_string().unwrap())
            .find(|n| n.ends_with("_default"))
            .expect("fixture session");
        root.join(name)
    }

    #[test]
    fn node_id_and_version_come_from_the_session_dir() {
        let session = SessionDir::open(&fixture_session()).unwrap();
        assert_eq!(session.node.unwrap().as_str(), NODE);
        assert_eq!(ray_version(&session.dir).as_deref(), Some("2.60.0"));
    }

    #[test]
    fn log_files_are_every_regular_file_with_relative_names() {
        let files = log_files(&fixture_session().join("logs"));
        let names: Vec<&str> = files.iter().map(|f| f.relative.as_str()).collect();
        assert!(names.contains(&"raylet.out"));
        assert!(names.contains(&"events/event_RAYLET.log"));
        assert!(names.contains(&"jobs/supervisor-probe-job-1.log"));
        assert!(names.iter().all(|n| !n.starts_with('/')));
    }

    #[test]
    fn sessions_latest_and_leftovers() {
        let root = tempfile::tempdir().unwrap();
        for (name, node) in [
            ("session_2026-01-01_00-00-00_1_1", "aa"),
            ("session_2026-01-02_00-00-00_2_2", "bb"),
        ] {
            let dir = root.path().join(name);
            std::fs::create_dir_all(dir.join("logs")).unwrap();
            std::fs::write(
                dir.join(format!("metrics_agent_port_{}", node.repeat(28))),
                "1",
            )
            .unwrap();
        }
        std::fs::create_dir(root.path().join("session_2026-01-03_00-00-00_3_3")).unwrap();
        std::os::unix::fs::symlink(
            root.path().join("session_2026-01-02_00-00-00_2_2"),
            root.path().join(LATEST),
        )
        .unwrap();
        let found = sessions(root.path()).unwrap();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].node.as_ref().unwrap().as_str(), "aa".repeat(28));
        assert_eq!(found[2].node, None, "no port files yet");
        assert_eq!(
            latest(root.path()).unwrap().as_str(),
            "session_2026-01-02_00-00-00_2_2"
        );
        assert!(sessions(&root.path().join("missing")).unwrap().is_empty());
    }

    #[test]
    fn sockets_and_symlinks_are_not_log_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("events")).unwrap();
        std::fs::write(dir.path().join("events/event_GCS.log"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link")).unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(dir.path().join("raylet.sock")).unwrap();
        let files = log_files(dir.path());
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].relative, "events/event_GCS.log");
    }
}
