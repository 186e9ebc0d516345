//! Rename mirroring: each rescan matches a session's log files on disk with the followed ones
//! (see [`rotation::plan`]), mirrors Ray's renames in storage, checkpointing each at once,
//! forgets the files that vanished and follows the new ones.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ray_history_storage::layout::{ClusterRef, NodeId, SessionName};

use crate::Result;
use crate::discovery;
use crate::files::{Entry, Files, Source};
use crate::rotation::{self, Rename};
use crate::sessions::Sessions;
use crate::tracker::{FileId, FileStat};
use crate::uploader::Uploader;

/// Keeps the followed log files in step with the session dirs, and their objects with them.
pub(crate) struct RenameMirror {
    uploader: Uploader,
    cluster: ClusterRef,
}

impl RenameMirror {
    /// Mirrors through `uploader`, under `cluster`'s keys.
    pub(crate) fn new(uploader: Uploader, cluster: ClusterRef) -> RenameMirror {
        RenameMirror { uploader, cluster }
    }

    /// Reconciles the log files of every session found. `save` checkpoints the followed
    /// files; it runs after every mirrored rename.
    pub(crate) async fn reconcile(
        &self,
        entries: &mut Files,
        sessions: &Sessions,
        mut save: impl FnMut(&Files),
    ) {
        // Files of sessions no longer on disk (Ray's temp dir was cleaned) are forgotten.
        entries.retain(|path, e| {
            e.source != Source::Log || sessions.contains(&e.session) || path.exists()
        });
        for (name, dir, node) in sessions.dirs() {
            if let Err(e) = self
                .reconcile_session(entries, name, dir, node, &mut save)
                .await
            {
                tracing::warn!(session = %name, error = %e, "cannot mirror renames yet");
            }
        }
    }

    async fn reconcile_session(
        &self,
        entries: &mut Files,
        name: &SessionName,
        dir: &Path,
        node: &NodeId,
        save: &mut impl FnMut(&Files),
    ) -> Result<()> {
        let logs = dir.join("logs");
        let scan_dir = logs.clone();
        let files = tokio::task::spawn_blocking(move || discovery::log_files(&scan_dir))
            .await
            .expect("scanning does not panic");
        let disk: BTreeMap<PathBuf, FileId> =
            files.iter().map(|f| (f.path.clone(), f.stat.id)).collect();
        let tracked: BTreeMap<PathBuf, FileId> = entries
            .iter()
            .filter(|(_, e)| e.source == Source::Log && &e.session == name)
            .map(|(p, e)| (p.clone(), e.tracked.id))
            .collect();
        let plan = rotation::plan(&tracked, &disk, |from, to| {
            let Some(entry) = entries.get(from) else {
                return false;
            };
            std::fs::File::open(to)
                .and_then(|file| entry.tracked.read_next(&file, 0))
                .is_ok_and(|chunk| chunk.is_some())
        });
        let mut targets = BTreeSet::new();
        for rename in &plan.renames {
            self.rename(entries, name, node, &logs, rename, save)
                .await?;
            targets.insert(rename.to.clone());
        }
        for path in plan.vanished.iter().filter(|p| !targets.contains(*p)) {
            tracing::debug!(path = %path.display(), "file vanished");
            entries.remove(path);
        }
        for file in &files {
            if !entries.contains_key(&file.path) {
                let key = self.cluster.log_file(name, node, &file.relative)?;
                entries.insert(
                    file.path.clone(),
                    Entry::new(name.clone(), key, Source::Log, file.stat.id),
                );
            }
            if let Some(entry) = entries.get_mut(&file.path) {
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
        &self,
        entries: &mut Files,
        session: &SessionName,
        node: &NodeId,
        logs: &Path,
        rename: &Rename,
        save: &mut impl FnMut(&Files),
    ) -> Result<()> {
        let Some(mut entry) = entries.remove(&rename.from) else {
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
            cluster: &self.cluster,
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
                entries.insert(rename.to.clone(), entry);
                crash_point!("rename-mirrored");
                save(entries);
                Ok(())
            }
            Err(e) => {
                entries.insert(rename.from.clone(), entry);
                Err(e)
            }
        }
    }
}
