//! The local state file: for every tracked file, its object key and the progress storage
//! confirmed. It is replaced atomically (write a temp file, fsync, rename, fsync the dir), so a
//! crash leaves either the old or the new state, never a torn one. Because only confirmed
//! progress is recorded, the state may lag storage (an append landed, then the crash) but never
//! lead it; the uploader closes that gap by checking each object's size after a restart.
//! A restarted engine trusts an entry only when its key names the very file at its path.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use object_store::path::Path as Key;
use ray_history_storage::layout::{self, SessionName};
use serde::{Deserialize, Serialize};

use crate::config::Node;
use crate::discovery;
use crate::files::{Entry, Files, Source};
use crate::tracker::Tracked;
use crate::{Error, Result};

const FILE_NAME: &str = "checkpoint.json";
const VERSION: u32 = 1;

/// One tracked file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// Object key, relative to the storage prefix.
    pub key: String,
    /// Progress storage confirmed.
    #[serde(flatten)]
    pub tracked: Tracked,
}

/// Everything the collector must remember across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// Tracked files by local path.
    pub files: BTreeMap<PathBuf, FileState>,
    /// Sessions whose metadata was finalised (left over from an earlier Ray run).
    pub finished_sessions: BTreeSet<String>,
}

/// The checkpoint file in the state dir.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    path: PathBuf,
}

impl Checkpoint {
    /// The checkpoint inside `state_dir` (created when missing).
    pub fn in_dir(state_dir: &Path) -> Result<Checkpoint> {
        std::fs::create_dir_all(state_dir).map_err(Error::io(state_dir))?;
        Ok(Checkpoint {
            path: state_dir.join(FILE_NAME),
        })
    }

    /// Loads the last saved state; an absent file is an empty state. An unreadable one is
    /// reported, and the caller starts afresh (every object is then rewritten from its file,
    /// which loses and duplicates nothing).
    pub fn load(&self) -> Result<State> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    version: VERSION,
                    ..State::default()
                });
            }
            Err(e) => return Err(Error::io(&self.path)(e)),
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        if state.version != VERSION {
            return Err(Error::Checkpoint {
                path: self.path.clone(),
                message: format!("version {} is not {VERSION}", state.version),
            });
        }
        Ok(state)
    }

    /// Atomically replaces the saved state.
    pub fn save(&self, state: &State) -> Result<()> {
        let bytes = serde_json::to_vec(state).expect("state serialises");
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // The rename is durable only once the directory entry is.
            std::fs::File::open(self.path.parent().unwrap_or(Path::new(".")))?.sync_all()
        };
        write().map_err(Error::io(&self.path))
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The engine's checkpoint: the file and the state last loaded or saved, so that a round which
/// changed nothing writes nothing.
pub(crate) struct CheckpointWriter {
    checkpoint: Checkpoint,
    saved: State,
}

impl CheckpointWriter {
    /// Opens and loads the checkpoint in `state_dir`; an unreadable one is reported and
    /// replaced by an empty state.
    pub(crate) fn open(state_dir: &Path) -> Result<CheckpointWriter> {
        let checkpoint = Checkpoint::in_dir(state_dir)?;
        let saved = match checkpoint.load() {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(error = %e, "starting without a checkpoint; objects are verified against the files");
                State::default()
            }
        };
        Ok(CheckpointWriter { checkpoint, saved })
    }

    /// The loaded files that pass [`trusted`]; the others are reported and left out.
    pub(crate) fn trusted_files(&self, root: &Path, spool_dir: &Path, node: &Node) -> Files {
        let mut entries = Files::new();
        for (path, file) in &self.saved.files {
            let key = Key::from(file.key.as_str());
            let (session, source) = match trusted(root, spool_dir, node, path, &key) {
                Ok(found) => found,
                Err(problem) => {
                    tracing::warn!(path = %path.display(), key = %key, problem, "checkpoint entry refused");
                    continue;
                }
            };
            entries.insert(
                path.clone(),
                Entry {
                    tracked: file.tracked.clone(),
                    ..Entry::new(session, key, source, file.tracked.id)
                },
            );
        }
        entries
    }

    /// The finished sessions of the loaded state.
    pub(crate) fn finished_sessions(&self) -> &BTreeSet<String> {
        &self.saved.finished_sessions
    }

    /// Saves the followed files and the finished sessions, unless they are what was saved
    /// last; a failure is reported and the next save tries again.
    pub(crate) fn save(&mut self, entries: &Files, finished: &BTreeSet<String>) {
        let state = State {
            version: self.saved.version.max(1),
            files: entries
                .iter()
                .map(|(path, e)| {
                    (
                        path.clone(),
                        FileState {
                            key: e.key.to_string(),
                            tracked: e.tracked.clone(),
                        },
                    )
                })
                .collect(),
            finished_sessions: finished.clone(),
        };
        if state == self.saved {
            return;
        }
        match self.checkpoint.save(&state) {
            Ok(()) => self.saved = state,
            Err(e) => tracing::error!(error = %e, "cannot save the checkpoint"),
        }
    }
}

/// Checks a checkpoint entry before it is used: the key must be this cluster's and name the
/// very file at `path` (a log file of a session dir under `root`, on this node; or a spool
/// segment). The checkpoint lies on a volume other processes may write, and a forged key
/// would make the collector overwrite or delete objects that are not this node's.
fn trusted(
    root: &Path,
    spool_dir: &Path,
    node: &Node,
    path: &Path,
    key: &Key,
) -> std::result::Result<(SessionName, Source), String> {
    match layout::Key::parse(key).map_err(|e| e.to_string())? {
        layout::Key::LogFile {
            cluster,
            session,
            node: node_id,
            relative,
        } => {
            if cluster != node.cluster {
                return Err(format!("cluster {} is not this node's", cluster.segment()));
            }
            let session_dir = root.join(session.as_str());
            if path != session_dir.join("logs").join(&relative) {
                return Err("the key does not name the file at this path".into());
            }
            match discovery::node_id(&session_dir) {
                Ok(Some(id)) if id == node_id => Ok((session, Source::Log)),
                _ => Err(format!("node {node_id} is not this session's node")),
            }
        }
        layout::Key::NodeEvents {
            cluster,
            session,
            node: node_id,
            unix_millis,
        } => {
            if cluster != node.cluster {
                return Err(format!("cluster {} is not this node's", cluster.segment()));
            }
            let segment = spool_dir
                .join(session.as_str())
                .join(format!("{node_id}-{unix_millis}.json"));
            if path != segment {
                return Err("the key does not name the spool segment at this path".into());
            }
            match discovery::node_id(&root.join(session.as_str())) {
                Ok(Some(id)) if id == node_id => Ok((session, Source::Spool)),
                _ => Err(format!("node {node_id} is not this session's node")),
            }
        }
        _ => Err("not a log file or events key".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::FileId;

    fn sample() -> State {
        let mut state = State {
            version: VERSION,
            ..State::default()
        };
        let mut tracked = Tracked::new(FileId { dev: 1, ino: 2 });
        tracked.uploaded = 1234;
        tracked.blocks = 3;
        state.files.insert(
            PathBuf::from("/tmp/ray/session_x/logs/raylet.out"),
            FileState {
                key: "log/a_local/session_x/logs/n/raylet.out".into(),
                tracked,
            },
        );
        state.finished_sessions.insert("session_old".into());
        state
    }

    #[test]
    fn resume_reads_back_what_was_saved() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::in_dir(&dir.path().join("state")).unwrap();
        assert_eq!(cp.load().unwrap().files.len(), 0);
        cp.save(&sample()).unwrap();
        // A fresh handle (a restarted collector) sees the same state.
        let again = Checkpoint::in_dir(&dir.path().join("state")).unwrap();
        assert_eq!(again.load().unwrap(), sample());
        let mut newer = sample();
        newer
            .files
            .values_mut()
            .for_each(|f| f.tracked.uploaded = 5000);
        again.save(&newer).unwrap();
        assert_eq!(cp.load().unwrap(), newer);
        assert!(!cp.path().with_extension("json.tmp").exists());
    }

    #[test]
    fn a_corrupt_checkpoint_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::in_dir(dir.path()).unwrap();
        std::fs::write(cp.path(), b"{not json").unwrap();
        let err = cp.load().unwrap_err().to_string();
        assert!(err.contains("checkpoint.json"), "{err}");
    }
}
