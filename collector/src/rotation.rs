//! Ray rotates a log by renaming it (`raylet.out` → `raylet.out.1` → `.2` …, deleting the
//! oldest beyond `RAY_ROTATION_BACKUP_COUNT`) and starting a new file. This module works out,
//! from the tracked files and a fresh scan, which files were renamed (same device + inode at a
//! new path), which vanished and which are new, and orders the renames so that an object is
//! copied away before another rename overwrites it. The engine mirrors each rename with a
//! server-side copy; an object about to be overwritten that no file claims any more (a
//! generation Ray deleted) is first copied to a spare, higher generation number. Mirroring is
//! idempotent: after a crash between its steps, the repeated mirror compares sizes and
//! fingerprints to skip what was done, and the engine checkpoints after every rename.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use object_store::path::Path as Key;
use ray_history_storage::layout::{ClusterRef, NodeId, SessionName};

use crate::Result;
use crate::tracker::{FileId, FileStat};
use crate::uploader::Uploader;

/// A file that moved from one path to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// Where it was.
    pub from: PathBuf,
    /// Where it is now.
    pub to: PathBuf,
}

/// How the files on disk relate to the tracked ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Renames, in an order that never overwrites an object before it was copied away.
    pub renames: Vec<Rename>,
    /// Tracked files no longer on disk.
    pub vanished: Vec<PathBuf>,
    /// Files on disk that are not tracked.
    pub new: Vec<PathBuf>,
}

/// Compares the tracked files with a scan of the disk (both by path). `same(from, to)` says
/// whether the file now at `to` really is the one tracked at `from` (its fingerprint matches:
/// inodes are reused as soon as a file is deleted).
pub fn plan(
    tracked: &BTreeMap<PathBuf, FileId>,
    disk: &BTreeMap<PathBuf, FileId>,
    mut same: impl FnMut(&PathBuf, &PathBuf) -> bool,
) -> Plan {
    let mut by_id: HashMap<FileId, &PathBuf> = HashMap::new();
    for (path, id) in disk {
        by_id.entry(*id).or_insert(path);
    }
    let mut claimed: BTreeSet<&PathBuf> = BTreeSet::new();
    let mut renames = Vec::new();
    let mut vanished = Vec::new();
    for (path, id) in tracked {
        if disk.get(path) == Some(id) {
            claimed.insert(path);
            continue;
        }
        match by_id.get(id) {
            // The new path must not be a file that is itself still tracked there.
            Some(to) if tracked.get(*to) != Some(id) && !claimed.contains(to) && same(path, to) => {
                claimed.insert(to);
                renames.push(Rename {
                    from: path.clone(),
                    to: (*to).clone(),
                });
            }
            _ => vanished.push(path.clone()),
        }
    }
    let new = disk
        .keys()
        .filter(|p| !claimed.contains(p))
        .cloned()
        .collect();
    Plan {
        renames: order(renames),
        vanished,
        new,
    }
}

/// Orders renames so that one whose target is another's source runs after that one.
fn order(mut pending: Vec<Rename>) -> Vec<Rename> {
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|r| !pending.iter().any(|other| other.from == r.to));
        // A cycle (files swapped) has no safe order; the spare copy keeps the overwritten side.
        let next = pending.remove(ready.unwrap_or(0));
        ordered.push(next);
    }
    ordered
}

/// Splits `raylet.out.3` into (`raylet.out`, Some(3)).
pub fn generation(name: &str) -> (&str, Option<u64>) {
    match name.rsplit_once('.') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (base, n.parse().ok())
        }
        _ => (name, None),
    }
}

/// A free name for a generation Ray deleted: `<base>.<n>` with `n` above every generation of
/// the same base in `taken` (names in the same directory, on disk or in storage).
pub fn spare_name<'a>(name: &str, taken: impl IntoIterator<Item = &'a str>) -> String {
    let (base, own) = generation(name);
    let highest = taken
        .into_iter()
        .filter_map(|other| match generation(other) {
            (b, Some(n)) if b == base => Some(n),
            _ => None,
        })
        .chain(own)
        .max()
        .unwrap_or(0);
    format!("{base}.{}", highest + 1)
}

/// Bytes two objects must share from their start to count as one generation of a log.
const SAME_GENERATION_BYTES: u64 = 64;

/// One node's logs in storage, where renames are mirrored.
pub struct Target<'a> {
    /// Storage calls with retries.
    pub uploader: &'a Uploader,
    /// The cluster.
    pub cluster: &'a ClusterRef,
    /// The session.
    pub session: &'a SessionName,
    /// The node.
    pub node: &'a NodeId,
}

impl Target<'_> {
    /// Mirrors a rename of the file now at `file` (tracked as `id`), whose object is `from`:
    /// an object already at the new name that is not this file's (a generation Ray deleted)
    /// is kept under a spare name first, then `from` is copied to the new name and deleted,
    /// unless `keep_from`: another file has its name now, whose upload replaces the object,
    /// so readers never find the name missing. Each step first checks whether a run that
    /// crashed before its checkpoint did it already, so a repeated mirror neither copies
    /// again nor keeps this file's own bytes as a spare. Returns the new key.
    pub async fn mirror(
        &self,
        from: &Key,
        relative: &str,
        file: &Path,
        id: FileId,
        keep_from: bool,
    ) -> Result<Key> {
        let to = self.cluster.log_file(self.session, self.node, relative)?;
        let storage = self.uploader.storage();
        let source = self.uploader.call("head", || storage.head(from)).await?;
        let target = self.uploader.call("head", || storage.head(&to)).await?;
        let copied = match (&source, &target) {
            (_, None) => false,
            (Some(source), Some(target)) => {
                source.size == target.size
                    && self.uploader.same_objects(from, &to, target.size).await?
            }
            // Copied and deleted before a crash, or never uploaded: only the file can tell.
            (None, Some(target)) => {
                self.uploader
                    .holds_start_of(&to, target.size, file, id)
                    .await?
            }
        };
        if let Some(target) = target.filter(|_| !copied) {
            self.keep_spare(&to, target.size, relative, file).await?;
            crash_point!("mirror-spared");
        }
        if source.is_some() {
            if !copied {
                match self.uploader.call("copy", || storage.copy(from, &to)).await {
                    // Gone meanwhile: nothing to copy.
                    Ok(()) | Err(ray_history_storage::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                crash_point!("mirror-copied");
            }
            if !keep_from {
                self.uploader
                    .call("delete", || storage.delete(from))
                    .await?;
                crash_point!("mirror-deleted");
            }
        }
        Ok(to)
    }

    /// Copies the object at `to` (`size` bytes, about to be overwritten) to a generation above
    /// every other of its base name, in storage or on disk beside `file`; unless a file of
    /// that base on disk still starts with these bytes (the generation is alive), or a spare
    /// holds them already (made before a crash, perhaps of more of the file). A spare that
    /// holds only their start (made before a crash from a shorter upload) is grown instead, so
    /// a generation is never kept twice.
    async fn keep_spare(&self, to: &Key, size: u64, relative: &str, file: &Path) -> Result<()> {
        let (parent, name) = match relative.rsplit_once('/') {
            Some((parent, name)) => (Some(parent), name),
            None => (None, relative),
        };
        let prefix = match parent {
            Some(parent) => self.cluster.log_file(self.session, self.node, parent)?,
            None => self.cluster.node_logs_prefix(self.session, self.node),
        };
        let storage = self.uploader.storage();
        let listed = self
            .uploader
            .call("list", || storage.list_with_delimiter(Some(&prefix)))
            .await?;
        let on_disk: BTreeSet<String> = match file.parent().map(std::fs::read_dir) {
            Some(Ok(read)) => read
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            _ => BTreeSet::new(),
        };
        let base = generation(name).0;
        // Still on disk under any generation number (its object may lag or not exist yet): the
        // file's own upload carries it on. Only the file's bytes can tell, as names move.
        for live in on_disk.iter().filter(|n| generation(n).0 == base) {
            let live = file.with_file_name(live);
            if let Ok(Some(stat)) = FileStat::of(&live)
                && stat.len >= size
                && self
                    .uploader
                    .holds_start_of(to, size, &live, stat.id)
                    .await?
            {
                tracing::info!(key = %to, file = %live.display(), "generation still on disk");
                return Ok(());
            }
        }
        for other in &listed.objects {
            let Some(other_name) = other.location.filename() else {
                continue;
            };
            if generation(other_name).0 != base
                || &other.location == to
                || other.size == 0
                || on_disk.contains(other_name)
            {
                continue;
            }
            // Too short a common start could be two generations that begin alike.
            let common = other.size.min(size);
            if common < SAME_GENERATION_BYTES.min(size)
                || !self
                    .uploader
                    .same_objects(to, &other.location, common)
                    .await?
            {
                continue;
            }
            if other.size >= size {
                tracing::info!(key = %to, spare = %other.location, "generation already kept");
            } else {
                tracing::info!(from = %to, to = %other.location, "growing a kept generation");
                self.uploader
                    .call("copy", || storage.copy(to, &other.location))
                    .await?;
            }
            return Ok(());
        }
        let taken: Vec<String> = listed
            .objects
            .iter()
            .filter_map(|o| o.location.filename().map(str::to_string))
            .chain(on_disk)
            .collect();
        let spare = spare_name(name, taken.iter().map(String::as_str));
        let spare_relative = match parent {
            Some(parent) => format!("{parent}/{spare}"),
            None => spare,
        };
        let spare = self
            .cluster
            .log_file(self.session, self.node, &spare_relative)?;
        tracing::info!(from = %to, to = %spare, "keeping a generation Ray deleted");
        self.uploader
            .call("copy", || storage.copy(to, &spare))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ino: u64) -> FileId {
        FileId { dev: 1, ino }
    }
    fn map(items: &[(&str, u64)]) -> BTreeMap<PathBuf, FileId> {
        items
            .iter()
            .map(|(p, i)| (PathBuf::from(p), id(*i)))
            .collect()
    }
    fn rename(from: &str, to: &str) -> Rename {
        Rename {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn ray_rotation_is_renames_in_a_safe_order_plus_a_new_file() {
        // Before: out=A, out.1=B, out.2=C. Ray (backup count 2) deletes .2, renames .1 → .2,
        // out → .1 and opens a new out=D.
        let tracked = map(&[("raylet.out", 1), ("raylet.out.1", 2), ("raylet.out.2", 3)]);
        let disk = map(&[("raylet.out", 4), ("raylet.out.1", 1), ("raylet.out.2", 2)]);
        let plan = plan(&tracked, &disk, |_, _| true);
        assert_eq!(
            plan.renames,
            vec![
                rename("raylet.out.1", "raylet.out.2"),
                rename("raylet.out", "raylet.out.1")
            ]
        );
        assert_eq!(plan.vanished, vec![PathBuf::from("raylet.out.2")]);
        assert_eq!(plan.new, vec![PathBuf::from("raylet.out")]);
    }

    #[test]
    fn unchanged_vanished_and_new_files() {
        let tracked = map(&[("a", 1), ("b", 2)]);
        let disk = map(&[("a", 1), ("c", 3)]);
        let plan = plan(&tracked, &disk, |_, _| true);
        assert!(plan.renames.is_empty());
        assert_eq!(plan.vanished, vec![PathBuf::from("b")]);
        assert_eq!(plan.new, vec![PathBuf::from("c")]);
    }

    #[test]
    fn a_rename_seen_half_done_is_still_a_rename() {
        // Only the first rename happened when the scan ran: out.1 → out.2.
        let tracked = map(&[("x.out", 1), ("x.out.1", 2)]);
        let disk = map(&[("x.out", 1), ("x.out.2", 2)]);
        let plan = plan(&tracked, &disk, |_, _| true);
        assert_eq!(plan.renames, vec![rename("x.out.1", "x.out.2")]);
        assert!(plan.vanished.is_empty() && plan.new.is_empty());
    }

    #[test]
    fn a_reused_inode_is_not_a_rename() {
        // out.1 (inode 1) was deleted and the new out got inode 1 again.
        let tracked = map(&[("x.out", 2), ("x.out.1", 1)]);
        let disk = map(&[("x.out", 1), ("x.out.1", 2)]);
        let plan = plan(&tracked, &disk, |from, _| from != &PathBuf::from("x.out.1"));
        assert_eq!(plan.renames, vec![rename("x.out", "x.out.1")]);
        assert_eq!(plan.vanished, vec![PathBuf::from("x.out.1")]);
        assert_eq!(plan.new, vec![PathBuf::from("x.out")]);
    }

    #[test]
    fn swapped_files_are_both_renames() {
        let tracked = map(&[("a", 1), ("b", 2)]);
        let disk = map(&[("a", 2), ("b", 1)]);
        assert_eq!(plan(&tracked, &disk, |_, _| true).renames.len(), 2);
    }

    #[test]
    fn spare_generations_go_above_every_existing_one() {
        assert_eq!(generation("raylet.out.12"), ("raylet.out", Some(12)));
        assert_eq!(generation("raylet.out"), ("raylet.out", None));
        assert_eq!(generation("a."), ("a.", None));
        let taken = [
            "raylet.out",
            "raylet.out.1",
            "raylet.out.2",
            "raylet.out.7",
            "gcs_server.out.9",
        ];
        assert_eq!(spare_name("raylet.out.2", taken), "raylet.out.8");
        assert_eq!(spare_name("raylet.out.2", []), "raylet.out.3");
        assert_eq!(spare_name("debug_state.txt", []), "debug_state.txt.1");
    }
}
