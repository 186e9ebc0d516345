//! Moving a file's new bytes to its object, never duplicating or losing one.
//!
//! On Azure each new range is appended with the offset the blob must have
//! (`Storage::append`), so a repeated append after a timeout or a crash is refused, and the
//! refusal tells the real size. Elsewhere, changed files are uploaded whole on a slower cadence
//! (`Storage::put_file`, streamed) and always at exit. Before the first upload in a process the
//! object is checked: after a crash storage may hold more than the checkpoint says, and the
//! extra bytes are adopted only when the object's bytes match the file's (whole up to 1 MiB,
//! else its first and last bytes); an object of the checkpoint's size must have its bytes too.
//!
//! An append blob takes at most 50,000 blocks. The batch grows as a blob fills up, and a blob
//! that is nearly full is rewritten from its file in 4 MiB blocks, so an upload never fails.
//! Every rewrite (that one, and of a truncated or rewritten file) builds the new content under
//! the layout's staging key and copies it over the object: readers see the old bytes, then
//! the new ones, never a missing object.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use object_store::path::Path;
use ray_history_storage::layout::{self, LayoutError};
use ray_history_storage::retry::{Backoff, retry};
use ray_history_storage::{Error as StorageError, Storage};

use crate::metrics::Metrics;
use crate::tracker::{FileId, FileStat, Tracked, WHOLE, WINDOW, crc};
use crate::{Error, Result};

/// Largest append (one Azure block).
pub const MAX_APPEND: u64 = 4 * 1024 * 1024;
/// Blocks an Azure append blob may hold.
pub const MAX_BLOCKS: u32 = 50_000;
/// A blob with this many blocks is rewritten in big blocks before it can fill up.
pub const COMPACT_AT: u32 = 49_000;
const _: () = assert!(COMPACT_AT < MAX_BLOCKS);
/// Rewrites of one file tolerated in one job (a file rewritten non-stop waits for the next).
const MAX_RESETS: u32 = 2;

/// The smallest append worth a block once a blob has `blocks` of them: any size at first, then
/// doubling from 64 KiB every 5,000 blocks past 25,000, so a slow writer cannot fill a blob.
pub fn min_append(blocks: u32) -> u64 {
    if blocks < 25_000 {
        1
    } else {
        ((64 * 1024u64) << ((blocks - 25_000) / 5_000)).min(MAX_APPEND)
    }
}

/// How objects are kept current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Append new bytes (Azure append blobs).
    Append,
    /// Upload changed files whole (backends without appends).
    Reupload,
}

/// One file to bring up to date.
#[derive(Debug, Clone)]
pub struct Job {
    /// The local file.
    pub path: PathBuf,
    /// Its object.
    pub key: Path,
    /// What storage confirmed so far.
    pub tracked: Tracked,
    /// Whether the object's size was already checked in this process.
    pub verified: bool,
    /// Bytes of the file that may be uploaded (a spool segment's completed appends); `None`:
    /// all of them.
    pub limit: Option<u64>,
    /// In [`Mode::Reupload`]: whether a changed file may be uploaded now.
    pub due: bool,
    /// Final flush: upload everything, whatever the batch size.
    pub closing: bool,
}

/// What a job achieved. `tracked` is valid even when `error` is set (partial progress).
#[derive(Debug)]
pub struct Outcome {
    /// Confirmed progress.
    pub tracked: Tracked,
    /// Whether the object's size has been checked.
    pub verified: bool,
    /// The file's size when the job looked (`None`: it vanished or was replaced).
    pub len: Option<u64>,
    /// Why the job stopped early.
    pub error: Option<Error>,
}

/// What identifies some bytes, as [`Tracked`] records them: CRCs of the first and of the last
/// [`WINDOW`] bytes, and of all of them when they are at most [`WHOLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// How many bytes.
    pub size: u64,
    /// CRC of the first `min(size, WINDOW)` bytes.
    pub head: u32,
    /// CRC of the last `min(size, WINDOW)` bytes.
    pub tail: u32,
    /// CRC of all of them, when `size <= WHOLE`.
    pub whole: Option<u32>,
}

impl Fingerprint {
    /// The fingerprint of a file's first `t.uploaded` bytes.
    pub fn of(t: &Tracked) -> Fingerprint {
        Fingerprint {
            size: t.uploaded,
            head: t.head,
            tail: t.tail,
            whole: t.whole,
        }
    }
}

/// Uploads files through [`Storage`] with retries.
#[derive(Clone)]
pub struct Uploader {
    storage: Storage,
    mode: Mode,
    policy: Backoff,
    metrics: Metrics,
}

impl Uploader {
    /// An uploader in the mode the backend supports.
    pub fn new(storage: Storage, policy: Backoff, metrics: Metrics) -> Uploader {
        let mode = if storage.supports_append() {
            Mode::Append
        } else {
            Mode::Reupload
        };
        Uploader {
            storage,
            mode,
            policy,
            metrics,
        }
    }

    /// The same uploader in another mode (`sync` uploads whole files even on Azure).
    pub fn with_mode(self, mode: Mode) -> Uploader {
        Uploader { mode, ..self }
    }

    /// The mode in use.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The storage handle.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Runs a storage call with the retry policy, counting retries and failures.
    pub async fn call<T, F, Fut>(&self, op: &str, mut f: F) -> Result<T, StorageError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StorageError>>,
    {
        let attempts = AtomicU64::new(0);
        let result = retry(&self.policy, op, || {
            attempts.fetch_add(1, Ordering::Relaxed);
            f()
        })
        .await;
        self.metrics
            .retries
            .inc_by(attempts.load(Ordering::Relaxed).saturating_sub(1));
        if let Err(e) = &result
            && !matches!(e, StorageError::AppendPosition { .. })
        {
            self.metrics.errors.inc();
        }
        result
    }

    /// Brings one object up to date with its file.
    pub async fn run(&self, job: Job) -> Outcome {
        let mut outcome = Outcome {
            tracked: job.tracked.clone(),
            verified: job.verified,
            len: None,
            error: None,
        };
        let result = match self.mode {
            Mode::Append => self.append_file(&job, &mut outcome).await,
            Mode::Reupload => self.put_file(&job, &mut outcome).await,
        };
        outcome.error = result.err();
        outcome
    }

    async fn append_file(&self, job: &Job, out: &mut Outcome) -> Result<()> {
        let Some((file, stat)) = open_same(&job.path, &out.tracked, job.limit)? else {
            return Ok(());
        };
        out.len = Some(stat.len);
        // A rewrite that found the file changing again returns early, with the old time, so
        // the next round tries again.
        if !out.verified {
            let Some(t) = self.verify(&job.key, &file, &out.tracked, stat.len).await? else {
                return Ok(());
            };
            out.tracked = t;
            out.verified = true;
        }
        if out.tracked.blocks >= COMPACT_AT {
            tracing::info!(key = %job.key, blocks = out.tracked.blocks, "rewriting a nearly full append blob");
            let Some(t) = self
                .rewrite(&job.key, &file, &out.tracked, stat.len)
                .await?
            else {
                return Ok(());
            };
            out.tracked = t;
        }
        let mut resets = 0;
        loop {
            let pending = stat.len.saturating_sub(out.tracked.uploaded);
            if pending > 0 && pending < min_append(out.tracked.blocks) && !job.closing {
                break;
            }
            let chunk = read_next(&file, &out.tracked, pending.min(MAX_APPEND)).await?;
            let Some(chunk) = chunk else {
                resets += 1;
                if resets > MAX_RESETS {
                    return Ok(());
                }
                tracing::info!(path = %job.path.display(), "file was truncated or rewritten; uploading it again");
                let Some(t) = self
                    .rewrite(&job.key, &file, &out.tracked, stat.len)
                    .await?
                else {
                    return Ok(());
                };
                out.tracked = t;
                continue;
            };
            if chunk.data.is_empty() {
                break;
            }
            let len = chunk.data.len() as u64;
            let offset = out.tracked.uploaded;
            let appended = self
                .call("append", || {
                    self.storage.append(&job.key, offset, chunk.data.clone())
                })
                .await;
            match appended {
                Ok(_) => {}
                // Also when the size is `offset + len`: an earlier attempt may have landed with
                // its answer lost, or another object of that size sits there (a rotated log of
                // equal length); only the object's bytes can tell.
                Err(StorageError::AppendPosition { actual, .. }) => {
                    let size = actual.unwrap_or(0);
                    tracing::info!(key = %job.key, expected = offset, actual = size, "object size differs; resuming from it");
                    let adopted = self
                        .adopt_or_rewrite(&job.key, &file, &out.tracked, size, stat.len)
                        .await?;
                    let Some(t) = adopted else { return Ok(()) };
                    out.tracked = t;
                    continue;
                }
                Err(e) if e.service_code() == Some("BlockCountExceedsLimit") => {
                    let Some(t) = self
                        .rewrite(&job.key, &file, &out.tracked, stat.len)
                        .await?
                    else {
                        return Ok(());
                    };
                    out.tracked = t;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            self.metrics.uploaded_bytes.inc_by(len);
            self.metrics.uploads.inc();
            let blocks = out.tracked.blocks + 1;
            out.tracked = Tracked {
                blocks,
                ..chunk.after
            };
        }
        out.tracked.mtime_ns = stat.mtime_ns;
        Ok(())
    }

    async fn put_file(&self, job: &Job, out: &mut Outcome) -> Result<()> {
        let Some((file, stat)) = open_same(&job.path, &out.tracked, job.limit)? else {
            return Ok(());
        };
        out.len = Some(stat.len);
        if !out.verified {
            let size = self.head_size(&job.key).await?;
            if size == Some(stat.len) && size != Some(out.tracked.uploaded) {
                out.tracked = self
                    .adopt(&job.key, &file, &out.tracked, stat.len)
                    .await?
                    .unwrap_or(out.tracked.clone());
            } else if size != Some(out.tracked.uploaded)
                || !self.holds(&job.key, &out.tracked).await?
            {
                out.tracked = Tracked::new(out.tracked.id);
            }
            out.verified = true;
        }
        let same = match read_next(&file, &out.tracked, 0).await? {
            Some(_) => out.tracked.uploaded == stat.len,
            None => false,
        };
        let exists = out.tracked.uploaded > 0 || out.tracked.mtime_ns != 0;
        // A changed time with the same length is a rewrite (or progress adopted after a
        // restart, which carries no time): upload it, so the entry settles either way.
        let settled = same && exists && out.tracked.mtime_ns == stat.mtime_ns;
        if settled || !(job.due || job.closing) {
            return Ok(());
        }
        self.call("put", || {
            self.storage.put_file(&job.key, &job.path, stat.len)
        })
        .await?;
        self.metrics.uploaded_bytes.inc_by(stat.len);
        self.metrics.uploads.inc();
        // What was uploaded is what the file held at `stat`; if it changed meanwhile, the
        // fingerprint will differ and the next round uploads it again.
        if let Some(t) = {
            let id = out.tracked.id;
            blocking(&file, move |f| Tracked::at_offset(id, f, stat.len)).await?
        } {
            out.tracked = Tracked {
                mtime_ns: stat.mtime_ns,
                ..t
            };
        }
        Ok(())
    }

    /// After a restart (or for a new file): the progress storage really holds (`None`: see
    /// [`Uploader::rewrite`]).
    async fn verify(
        &self,
        key: &Path,
        file: &Opened,
        t: &Tracked,
        len: u64,
    ) -> Result<Option<Tracked>> {
        if t.uploaded == 0 && len > 0 {
            // The first append (at offset 0) finds out about any object already there.
            return Ok(Some(t.clone()));
        }
        match self.head_size(key).await? {
            None => {
                if len == 0 {
                    // Empty files get (empty) objects too.
                    self.call("append", || self.storage.append(key, 0, Bytes::new()))
                        .await?;
                }
                Ok(Some(Tracked::new(t.id)))
            }
            Some(size) => {
                if size == t.uploaded && self.holds(key, t).await? {
                    return Ok(Some(t.clone()));
                }
                self.adopt_or_rewrite(key, file, t, size, len).await
            }
        }
    }

    async fn head_size(&self, key: &Path) -> Result<Option<u64>> {
        Ok(self
            .call("head", || self.storage.head(key))
            .await?
            .map(|meta| meta.size))
    }

    /// Resumes from an object holding `size` bytes if they are the file's first bytes,
    /// otherwise rewrites the object from the file.
    async fn adopt_or_rewrite(
        &self,
        key: &Path,
        file: &Opened,
        t: &Tracked,
        size: u64,
        len: u64,
    ) -> Result<Option<Tracked>> {
        if size <= len
            && let Some(adopted) = self.adopt(key, file, t, size).await?
        {
            return Ok(Some(adopted));
        }
        self.rewrite(key, file, t, len).await
    }

    /// The fingerprint of the object at `key`, which holds `size` bytes. Objects up to
    /// [`WHOLE`] are read whole (windows miss a change in the middle only), bigger ones only
    /// at both ends.
    pub async fn fingerprint(&self, key: &Path, size: u64) -> Result<Fingerprint> {
        let window = size.min(WINDOW);
        if size <= WHOLE {
            let all = if size == 0 {
                Bytes::new()
            } else {
                self.call("get", || self.storage.get_range(key, 0..size))
                    .await?
            };
            // Fewer bytes than `size` (the object changed meanwhile) make a fingerprint that
            // matches no one's.
            let window = window.min(all.len() as u64) as usize;
            return Ok(Fingerprint {
                size: all.len() as u64,
                head: crc(&all[..window]),
                tail: crc(&all[all.len() - window..]),
                whole: Some(crc(&all)),
            });
        }
        let head = self
            .call("get", || self.storage.get_range(key, 0..window))
            .await?;
        let tail = self
            .call("get", || self.storage.get_range(key, size - window..size))
            .await?;
        Ok(Fingerprint {
            size,
            head: crc(&head),
            tail: crc(&tail),
            whole: None,
        })
    }

    /// Whether the object at `key` holds the bytes `t` describes. Its size alone does not
    /// tell: a crashed run's repeated rename may have left another generation of the same
    /// length there.
    async fn holds(&self, key: &Path, t: &Tracked) -> Result<bool> {
        Ok(self.fingerprint(key, t.uploaded).await? == Fingerprint::of(t))
    }

    /// Whether the objects at `a` and `b`, both of `size` bytes, hold the same bytes (as far
    /// as their fingerprints tell).
    pub async fn same_objects(&self, a: &Path, b: &Path, size: u64) -> Result<bool> {
        Ok(self.fingerprint(a, size).await? == self.fingerprint(b, size).await?)
    }

    /// Whether the object at `key`, of `size` bytes, holds the first `size` bytes of the file
    /// at `path`, which must still be the file `id`.
    pub async fn holds_start_of(
        &self,
        key: &Path,
        size: u64,
        path: &std::path::Path,
        id: FileId,
    ) -> Result<bool> {
        let Some((file, _)) = open_same(path, &Tracked::new(id), None)? else {
            return Ok(false);
        };
        let at = blocking(&file, move |f| Tracked::at_offset(id, f, size)).await?;
        match at {
            Some(at) => Ok(self.fingerprint(key, size).await? == Fingerprint::of(&at)),
            None => Ok(false),
        }
    }

    /// Progress at `size` when the object's bytes are the file's first `size` bytes.
    async fn adopt(
        &self,
        key: &Path,
        file: &Opened,
        t: &Tracked,
        size: u64,
    ) -> Result<Option<Tracked>> {
        let id = t.id;
        let at = blocking(file, move |f| Tracked::at_offset(id, f, size)).await?;
        let Some(mut at) = at else {
            return Ok(None);
        };
        if self.fingerprint(key, size).await? != Fingerprint::of(&at) {
            return Ok(None);
        }
        // The block count is unknown; never assume fewer than the old count or than needed.
        at.blocks = t.blocks.max(size.div_ceil(MAX_APPEND) as u32) + 1;
        Ok(Some(at))
    }

    /// Replaces the append blob at `key` with the file's first `len` bytes (fewer if it
    /// shrank) without a moment in which the key is missing: they are appended to the key's
    /// staging key in blocks of up to 4 MiB, which is copied over the key (a copy of an append
    /// blob is an append blob, so appends go on) and deleted. A crash in between leaves the old
    /// object and a staging key that the next rewrite, or the collector's next start, deletes.
    /// `None` when the file changed while it was read (the next round tries again).
    async fn rewrite(
        &self,
        key: &Path,
        file: &Opened,
        t: &Tracked,
        len: u64,
    ) -> Result<Option<Tracked>> {
        let staging = layout::Key::parse(key)?
            .staging()
            .ok_or_else(|| LayoutError::UnknownKey(key.to_string()))?;
        self.call("delete", || self.storage.delete(&staging))
            .await?;
        self.call("append", || self.storage.append(&staging, 0, Bytes::new()))
            .await?;
        let mut staged = Tracked::new(t.id);
        loop {
            let rest = len.saturating_sub(staged.uploaded);
            let Some(chunk) = read_next(file, &staged, rest.min(MAX_APPEND)).await? else {
                return Ok(None);
            };
            if chunk.data.is_empty() {
                break;
            }
            let offset = staged.uploaded;
            self.call("append", || {
                self.storage.append(&staging, offset, chunk.data.clone())
            })
            .await?;
            self.metrics.uploaded_bytes.inc_by(chunk.data.len() as u64);
            self.metrics.uploads.inc();
            staged = Tracked {
                blocks: staged.blocks + 1,
                ..chunk.after
            };
        }
        crash_point!("rewrite-staged");
        self.call("copy", || self.storage.copy(&staging, key))
            .await?;
        crash_point!("rewrite-copied");
        if let Err(e) = self.call("delete", || self.storage.delete(&staging)).await {
            tracing::warn!(key = %staging, error = %e, "cannot delete a staging object; the next rewrite or start will");
        }
        crash_point!("rewrite-cleaned");
        Ok(Some(staged))
    }
}

/// An open file and its path (for error messages).
#[derive(Clone)]
struct Opened {
    file: Arc<File>,
    path: Arc<PathBuf>,
}

/// Opens `path` if it is still the tracked file (same device and inode); its stat's length
/// is at most `limit`, so nothing past it is read.
fn open_same(
    path: &std::path::Path,
    t: &Tracked,
    limit: Option<u64>,
) -> Result<Option<(Opened, FileStat)>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path)(e)),
    };
    let mut stat = FileStat::from_metadata(&file.metadata().map_err(Error::io(path))?);
    stat.len = limit.map_or(stat.len, |limit| stat.len.min(limit));
    let opened = Opened {
        file: Arc::new(file),
        path: Arc::new(path.to_path_buf()),
    };
    Ok((stat.id == t.id).then_some((opened, stat)))
}

async fn read_next(file: &Opened, t: &Tracked, max: u64) -> Result<Option<crate::tracker::Chunk>> {
    let t = t.clone();
    blocking(file, move |f| t.read_next(f, max)).await
}

/// Runs a blocking read on the blocking pool.
async fn blocking<T: Send + 'static>(
    opened: &Opened,
    f: impl FnOnce(&File) -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    let file = Arc::clone(&opened.file);
    tokio::task::spawn_blocking(move || f(&file))
        .await
        .expect("file reads do not panic")
        .map_err(Error::io(opened.path.as_ref()))
}

#[cfg(test)]
#[path = "uploader_tests.rs"]
mod tests;
