//! Per-file identity and upload progress.
//!
//! A file is identified by device + inode, and its already-uploaded bytes are fingerprinted by
//! a CRC of the first and of the last [`WINDOW`] bytes before the uploaded offset, and, while at
//! most [`WHOLE`] bytes are uploaded, by a CRC of all of them. Each read of new bytes re-checks
//! those in the same call, so a file that was truncated, rewritten in place or replaced by a new
//! file on a reused inode is noticed before a single wrong byte is appended after the old ones.
//! The whole-file CRC is for Ray's in-place rewrites of small files with the same size whose
//! changes are in the middle only (`debug_state.txt`).

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Bytes fingerprinted at the start of a file and before its uploaded offset.
pub const WINDOW: u64 = 512;
/// Files with at most this many bytes uploaded are also fingerprinted whole.
pub const WHOLE: u64 = 1024 * 1024;

/// Device and inode of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

/// What `stat` says about a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// Device and inode.
    pub id: FileId,
    /// Size in bytes.
    pub len: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
}

impl FileStat {
    /// Stats `path` without following symlinks; `None` when it is missing or not a regular
    /// file (sockets, symlinks, devices and directories are never uploaded).
    pub fn of(path: &Path) -> io::Result<Option<FileStat>> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_file() => Ok(Some(Self::from_metadata(&meta))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Builds a stat from already-read metadata.
    pub fn from_metadata(meta: &std::fs::Metadata) -> FileStat {
        FileStat {
            id: FileId {
                dev: meta.dev(),
                ino: meta.ino(),
            },
            len: meta.size(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        }
    }
}

/// Upload progress of one file: what storage has confirmed, and how to recognise those bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    /// The file's identity.
    pub id: FileId,
    /// Bytes storage confirmed (the object holds exactly the file's first `uploaded` bytes).
    pub uploaded: u64,
    /// CRC of the first `min(uploaded, WINDOW)` bytes.
    pub head: u32,
    /// CRC of the `min(uploaded, WINDOW)` bytes before `uploaded`.
    pub tail: u32,
    /// Modification time seen when `uploaded` was last confirmed.
    pub mtime_ns: i64,
    /// Append blocks written to the object (Azure allows 50,000 per blob).
    pub blocks: u32,
    /// CRC of all `uploaded` bytes, while they are at most [`WHOLE`] (checkpoints written
    /// before it existed have none: windows only).
    #[serde(default)]
    pub whole: Option<u32>,
}

/// How a file changed since its bytes were last confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Same file, same size and time: nothing to do.
    Unchanged,
    /// Same file, more bytes.
    Grown,
    /// Same file, same size, new time: the fingerprint decides whether it was rewritten.
    Touched,
    /// Same file, fewer bytes than uploaded: truncated or rewritten.
    Shrunk,
    /// Another file (new inode) at the same path.
    Replaced,
}

/// New bytes read from a file, with the progress they lead to once storage confirms them.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The bytes after `uploaded`.
    pub data: Bytes,
    /// The progress after `data` is confirmed (blocks not yet counted).
    pub after: Tracked,
}

impl Tracked {
    /// Progress of a file nothing of which is uploaded yet.
    pub fn new(id: FileId) -> Tracked {
        let empty = crc(&[]);
        Tracked {
            id,
            uploaded: 0,
            head: empty,
            tail: empty,
            mtime_ns: 0,
            blocks: 0,
            whole: Some(empty),
        }
    }

    /// Classifies a fresh `stat` of the path this file was tracked at.
    pub fn classify(&self, stat: &FileStat) -> Change {
        if stat.id != self.id {
            Change::Replaced
        } else if stat.len < self.uploaded {
            Change::Shrunk
        } else if stat.len > self.uploaded {
            Change::Grown
        } else if stat.mtime_ns != self.mtime_ns {
            Change::Touched
        } else {
            Change::Unchanged
        }
    }

    /// Reads up to `max` bytes after `uploaded`, after checking that the uploaded bytes are
    /// still the file's. `None` means they are not: the file was truncated or rewritten.
    pub fn read_next(&self, file: &File, max: u64) -> io::Result<Option<Chunk>> {
        let start = self.uploaded - self.uploaded.min(WINDOW);
        let known = (self.uploaded - start) as usize;
        let buf = read_upto(file, start, known as u64 + max)?;
        if buf.len() < known || crc(&buf[..known]) != self.tail {
            return Ok(None);
        }
        let mut after = self.clone();
        if start == 0 {
            after.head = crc(&buf[..buf.len().min(WINDOW as usize)]);
        } else if crc(&read_upto(file, 0, WINDOW)?) != self.head {
            return Ok(None);
        }
        // Checked after `buf` was read: a rewrite in between fails here, not later.
        if let Some(whole) = self.whole
            && self.uploaded > WINDOW
            && crc(&read_upto(file, 0, self.uploaded)?) != whole
        {
            return Ok(None);
        }
        after.uploaded = start + buf.len() as u64;
        after.tail = crc(&buf[buf.len() - after.uploaded.min(WINDOW) as usize..]);
        after.whole = self.whole.filter(|_| after.uploaded <= WHOLE).map(|whole| {
            let mut hasher = crc32fast::Hasher::new_with_initial(whole);
            hasher.update(&buf[known..]);
            hasher.finalize()
        });
        let data = Bytes::from(buf).slice(known..);
        Ok(Some(Chunk { data, after }))
    }

    /// Progress for a file whose first `offset` bytes storage holds (found by a `head` after a
    /// restart); `None` when the file is shorter than that.
    pub fn at_offset(id: FileId, file: &File, offset: u64) -> io::Result<Option<Tracked>> {
        let start = offset - offset.min(WINDOW);
        let tail = read_upto(file, start, offset - start)?;
        if (tail.len() as u64) < offset - start {
            return Ok(None);
        }
        let head = read_upto(file, 0, offset.min(WINDOW))?;
        let whole = if offset <= WHOLE {
            let all = read_upto(file, 0, offset)?;
            Some(crc(&all)).filter(|_| all.len() as u64 == offset)
        } else {
            None
        };
        Ok(Some(Tracked {
            id,
            uploaded: offset,
            head: crc(&head),
            tail: crc(&tail),
            mtime_ns: 0,
            blocks: 0,
            whole,
        }))
    }
}

/// Reads up to `len` bytes at `offset`, fewer at end of file.
fn read_upto(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// The fingerprint function (CRC-32).
pub fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    }

    impl Fixture {
        fn new(content: &[u8]) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("raylet.out");
            std::fs::write(&path, content).unwrap();
            Fixture { _dir: dir, path }
        }
        fn stat(&self) -> FileStat {
            FileStat::of(&self.path).unwrap().unwrap()
        }
        fn open(&self) -> File {
            File::open(&self.path).unwrap()
        }
        fn append(&self, more: &[u8]) {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .unwrap();
            f.write_all(more).unwrap();
        }
        /// Reads everything in `step`-byte chunks, as the uploader would.
        fn upload_all(&self, mut t: Tracked, step: u64) -> (Tracked, Vec<u8>) {
            let mut got = Vec::new();
            loop {
                let chunk = t.read_next(&self.open(), step).unwrap().expect("same file");
                if chunk.data.is_empty() {
                    return (t, got);
                }
                got.extend_from_slice(&chunk.data);
                t = chunk.after;
            }
        }
    }

    fn lines(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect()
    }

    #[test]
    fn growing_file_is_read_exactly_once_in_any_chunking() {
        let content = lines(400);
        let f = Fixture::new(&content[..100]);
        let (t, mut got) = f.upload_all(Tracked::new(f.stat().id), 7);
        assert_eq!(f.stat().len, t.uploaded);
        f.append(&content[100..]);
        assert_eq!(t.classify(&f.stat()), Change::Grown);
        let (t, more) = f.upload_all(t, 333);
        got.extend(more);
        assert_eq!(got, content);
        assert_eq!(t.uploaded, content.len() as u64);
    }

    #[test]
    fn truncation_is_detected() {
        let f = Fixture::new(&lines(300));
        let (t, _) = f.upload_all(Tracked::new(f.stat().id), 4096);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&f.path)
            .unwrap()
            .set_len(10)
            .unwrap();
        assert_eq!(t.classify(&f.stat()), Change::Shrunk);
        assert!(t.read_next(&f.open(), 100).unwrap().is_none());
    }

    #[test]
    fn truncated_then_regrown_past_the_offset_is_detected() {
        let f = Fixture::new(&lines(300));
        let (t, _) = f.upload_all(Tracked::new(f.stat().id), 4096);
        // Same inode, same first bytes, more bytes than before: only the window shows it.
        let mut rewritten = lines(10);
        rewritten.extend(std::iter::repeat_n(b'x', 5000));
        std::fs::write(&f.path, &rewritten).unwrap();
        assert_eq!(t.classify(&f.stat()), Change::Grown);
        assert!(t.read_next(&f.open(), 100).unwrap().is_none());
    }

    #[test]
    fn in_place_rewrite_of_the_same_length_is_detected() {
        let f = Fixture::new(b"NodeManager:\nnum_workers: 1\n");
        let (t, _) = f.upload_all(Tracked::new(f.stat().id), 4096);
        let t = Tracked {
            mtime_ns: f.stat().mtime_ns - 1,
            ..t
        };
        std::fs::write(&f.path, b"NodeManager:\nnum_workers: 2\n").unwrap();
        assert_eq!(t.classify(&f.stat()), Change::Touched);
        assert!(t.read_next(&f.open(), 0).unwrap().is_none());
    }

    #[test]
    fn a_same_size_rewrite_in_the_middle_only_is_detected() {
        // Like Ray's debug_state.txt: 20 KB, rewritten in place, a counter in the middle.
        let mut content = lines(400);
        let f = Fixture::new(&content);
        let (t, _) = f.upload_all(Tracked::new(f.stat().id), 1000);
        assert!(t.whole.is_some());
        let middle = content.len() / 2;
        content[middle] = b'#';
        std::fs::write(&f.path, &content).unwrap();
        assert!(t.read_next(&f.open(), 0).unwrap().is_none());

        // An adopted prefix (after a restart) is fingerprinted whole too.
        let adopted = Tracked::at_offset(f.stat().id, &f.open(), content.len() as u64)
            .unwrap()
            .unwrap();
        assert!(adopted.read_next(&f.open(), 0).unwrap().is_some());
        content[middle] = b'%';
        std::fs::write(&f.path, &content).unwrap();
        assert!(adopted.read_next(&f.open(), 0).unwrap().is_none());
    }

    #[test]
    fn a_new_file_at_the_same_path_is_replaced() {
        let f = Fixture::new(&lines(50));
        let (t, _) = f.upload_all(Tracked::new(f.stat().id), 4096);
        let moved = f.path.with_extension("out.1");
        std::fs::rename(&f.path, &moved).unwrap();
        std::fs::write(&f.path, b"fresh").unwrap();
        assert_eq!(t.classify(&f.stat()), Change::Replaced);
        // The renamed file is still the same file: its id and fingerprints match.
        let renamed = FileStat::of(&moved).unwrap().unwrap();
        assert_eq!(renamed.id, t.id);
        assert!(
            t.read_next(&File::open(&moved).unwrap(), 0)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn vanished_and_special_files_have_no_stat() {
        let f = Fixture::new(b"x");
        std::fs::remove_file(&f.path).unwrap();
        assert_eq!(FileStat::of(&f.path).unwrap(), None);
        let link = f.path.with_extension("link");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        assert_eq!(FileStat::of(&link).unwrap(), None);
        let sock = f.path.with_extension("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert_eq!(FileStat::of(&sock).unwrap(), None);
    }

    #[test]
    fn progress_at_an_offset_matches_progress_by_reading() {
        let f = Fixture::new(&lines(500));
        let (read, _) = f.upload_all(Tracked::new(f.stat().id), 1000);
        let at = Tracked::at_offset(f.stat().id, &f.open(), read.uploaded)
            .unwrap()
            .unwrap();
        assert_eq!(
            (at.head, at.tail, at.uploaded),
            (read.head, read.tail, read.uploaded)
        );
        assert!(
            Tracked::at_offset(f.stat().id, &f.open(), read.uploaded + 1)
                .unwrap()
                .is_none()
        );
    }
}
