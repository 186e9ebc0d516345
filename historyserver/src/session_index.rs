//! The session index: a finished session's parsed state, stored next to its events at
//! `log/<cluster>/<session>/index/v<version>-<fingerprint>.rhsi`, so that every replica and
//! every restart reads it instead of parsing the events again, and serves its tasks from a
//! local copy a block at a time instead of holding every row in memory.
//!
//! The name carries the format version and a fingerprint of the event files it was built
//! from: a new format or late events make another name, which is built anew; the old one is
//! deleted. Files are written create-only, so two servers building at once leave one.
//!
//! A file is, in order (integers little-endian):
//!
//! | part | content |
//! |---|---|
//! | header | `RHSINDEX`, format version (u32) |
//! | task blocks | [`ROWS_PER_BLOCK`] rows each, zstd-compressed postcard of `Vec<Task>` |
//! | columns | zstd-compressed postcard of the task table's in-memory columns |
//! | rest | zstd-compressed postcard of actors, jobs, nodes, events, snapshots, load counts |
//! | footer | postcard of [`Footer`]: version, fingerprint, row count, where every part is |
//! | trailer | footer length (u32), CRC-32 of everything before it (u32), `RHSINDEX` |
//!
//! A file that fails any check (magic, version, fingerprint, checksum, decoding) is ignored
//! with a warning and rebuilt, never trusted.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path as FsPath;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use rayon::prelude::*;
use zstd::bulk::Compressor;

use crate::model::table::{Columns, ColumnsBuilder, RowFile, TaskTable, encode_block};
use crate::model::{Builder, Session, SessionRest, Task};

/// Bytes per ranged read when a stored index is downloaded.
const FETCH_PART: u64 = 8 * 1024 * 1024;
/// Ranged reads in flight while a stored index is downloaded.
const FETCH_CONCURRENCY: usize = 4;
/// Version of the file format; part of the object name.
pub const FORMAT_VERSION: u32 = 2;
/// Rows per task block: a page of 100 rows decodes one or two blocks of about 10 KB.
pub const ROWS_PER_BLOCK: usize = 256;

const MAGIC: &[u8; 8] = b"RHSINDEX";
const HEADER_LEN: u64 = 12;
const TRAILER_LEN: u64 = 16;

/// Why a stored index is not used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading or writing the local copy failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] ray_history_storage::Error),
    /// Not a session index (wrong magic or too short).
    #[error("not a session index file")]
    NotAnIndex,
    /// Another format version.
    #[error("format version {0}, this server reads {FORMAT_VERSION}")]
    Version(u32),
    /// Built from other event files.
    #[error("built from other event files")]
    Fingerprint,
    /// The checksum does not match: the file is damaged.
    #[error("checksum mismatch")]
    Checksum,
    /// A part does not decode.
    #[error("cannot decode its {0}: {1}")]
    Corrupt(&'static str, String),
}

/// Where each part of the file is.
#[derive(Debug, Serialize, Deserialize)]
struct Footer {
    version: u32,
    fingerprint: u64,
    rows: u64,
    rows_per_block: u32,
    blocks: Vec<(u64, u32)>,
    columns: (u64, u32),
    rest: (u64, u32),
}

/// Fingerprint of the event files a session's state is parsed from: `(key, size)` pairs, in
/// any order.
pub fn fingerprint<'a>(files: impl IntoIterator<Item = (&'a str, u64)>) -> u64 {
    let mut files: Vec<(&str, u64)> = files.into_iter().collect();
    files.sort_unstable();
    let mut hash = Sha256::new();
    hash.update(FORMAT_VERSION.to_le_bytes());
    for (key, size) in files {
        hash.update(key.as_bytes());
        hash.update([0]);
        hash.update(size.to_le_bytes());
    }
    let digest = hash.finalize();
    u64::from_be_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    )
}

/// zstd level of the task blocks: a fast level, -3, wrote a 1M-task index about 0.1 s sooner
/// than level 1, for a file 6% bigger (71 MB against 67 MB).
const BLOCK_LEVEL: i32 = -3;
/// Blocks encoded (in parallel) before they are written.
const BLOCKS_PER_BATCH: usize = 64;

/// Writes an index file, rows in their final order, a batch at a time: the columns are
/// built as the rows pass while their blocks are encoded on the rest of the pool.
pub struct IndexWriter {
    file: File,
    fingerprint: u64,
    out: Checksummed<io::BufWriter<File>>,
    /// Where each block is.
    blocks: Vec<(u64, u32)>,
    /// Rows of a block not yet full (when a batch does not end on a block's end).
    partial: Vec<Task>,
    columns: ColumnsBuilder,
    rows: u64,
}

impl IndexWriter {
    /// Starts an index file at the start of `file`.
    pub fn new(file: File, fingerprint: u64) -> io::Result<Self> {
        let mut out = Checksummed::new(io::BufWriter::with_capacity(1 << 20, file.try_clone()?));
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        Ok(IndexWriter {
            file,
            fingerprint,
            out,
            blocks: Vec::new(),
            partial: Vec::new(),
            columns: ColumnsBuilder::default(),
            rows: 0,
        })
    }

    /// Adds the next rows.
    pub fn push(&mut self, rows: &[&Task]) -> io::Result<()> {
        self.rows += rows.len() as u64;
        // Rows that complete the block the last batch began.
        let fill = ((ROWS_PER_BLOCK - self.partial.len()) % ROWS_PER_BLOCK).min(rows.len());
        let (fill, rest) = rows.split_at(fill);
        self.partial.extend(fill.iter().map(|task| (*task).clone()));
        if self.partial.len() == ROWS_PER_BLOCK {
            self.write_partial()?;
        }
        let (whole, tail) = rest.split_at(rest.len() / ROWS_PER_BLOCK * ROWS_PER_BLOCK);
        let IndexWriter {
            out,
            blocks,
            columns,
            ..
        } = self;
        let (written, ()) = rayon::join(
            || {
                for batch in whole.chunks(ROWS_PER_BLOCK * BLOCKS_PER_BATCH) {
                    let encoded: Vec<Vec<u8>> = batch
                        .par_chunks(ROWS_PER_BLOCK)
                        .map_init(
                            || Compressor::new(BLOCK_LEVEL),
                            |compressor, rows| match compressor {
                                Ok(compressor) => encode_block(compressor, rows),
                                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                            },
                        )
                        .collect::<io::Result<_>>()?;
                    for block in encoded {
                        write_block(out, blocks, &block)?;
                    }
                }
                Ok::<_, io::Error>(())
            },
            || rows.iter().for_each(|task| columns.push(task)),
        );
        written?;
        self.partial.extend(tail.iter().map(|task| (*task).clone()));
        Ok(())
    }

    /// Writes the rows of the block not yet full.
    fn write_partial(&mut self) -> io::Result<()> {
        let block = encode_block(&mut Compressor::new(BLOCK_LEVEL)?, &self.partial)?;
        self.partial.clear();
        write_block(&mut self.out, &mut self.blocks, &block)
    }

    /// Writes the columns, the rest of the session and the footer; returns the file, the
    /// columns and the session's rows in the file.
    pub fn finish(mut self, rest: &SessionRest) -> io::Result<(File, Columns, RowFile)> {
        if !self.partial.is_empty() {
            self.write_partial()?;
        }
        let IndexWriter {
            file,
            fingerprint,
            mut out,
            blocks,
            columns,
            rows,
            ..
        } = self;
        let columns = columns.finish();
        let columns_at = write_section(&mut out, &columns)?;
        let rest_at = write_section(&mut out, rest)?;
        let footer = postcard::to_stdvec(&Footer {
            version: FORMAT_VERSION,
            fingerprint,
            rows,
            rows_per_block: ROWS_PER_BLOCK as u32,
            blocks: blocks.clone(),
            columns: columns_at,
            rest: rest_at,
        })
        .map_err(io::Error::other)?;
        out.write_all(&footer)?;
        out.write_all(&(footer.len() as u32).to_le_bytes())?;
        let crc = out.crc.clone().finalize();
        let mut inner = out.inner;
        inner.write_all(&crc.to_le_bytes())?;
        inner.write_all(MAGIC)?;
        inner.flush()?;
        drop(inner);
        let rows = RowFile::new(file.try_clone()?, blocks, ROWS_PER_BLOCK as u32);
        Ok((file, columns, rows))
    }
}

/// Appends an encoded block and notes where it is.
fn write_block(
    out: &mut Checksummed<io::BufWriter<File>>,
    blocks: &mut Vec<(u64, u32)>,
    block: &[u8],
) -> io::Result<()> {
    blocks.push((out.written, block.len() as u32));
    out.write_all(block)
}

/// Writes a session whose rows are in memory as an index file to `out` (at its start).
pub fn write(session: &Session, fingerprint: u64, out: &File) -> io::Result<()> {
    let rows = session.tasks.memory_rows().ok_or_else(|| {
        io::Error::other("only a session whose rows are in memory is written whole")
    })?;
    let mut writer = IndexWriter::new(out.try_clone()?, fingerprint)?;
    writer.push(&rows.iter().collect::<Vec<_>>())?;
    writer.finish(&session.rest()).map(|_| ())
}

/// Builds a session's index from its builder into a new unlinked file in `dir`; returns the
/// session serving its rows from that file, and the file.
pub fn build(
    builder: Builder,
    ended_ns: Option<u64>,
    fingerprint: u64,
    dir: &FsPath,
) -> io::Result<(Session, File)> {
    let mut writer = IndexWriter::new(tempfile::tempfile_in(dir)?, fingerprint)?;
    let rest = builder.finish_to(ended_ns, |rows| writer.push(rows))?;
    let (file, columns, rows) = writer.finish(&rest)?;
    Ok((Session::new(TaskTable::in_file(columns, rows), rest), file))
}

/// Writes a zstd-compressed postcard section, streamed (the columns of ten million rows
/// are hundreds of MB; they are never held twice); returns where it is.
fn write_section<W: Write, T: Serialize>(
    out: &mut Checksummed<W>,
    value: &T,
) -> io::Result<(u64, u32)> {
    let at = out.written;
    // postcard writes a field at a time: buffered, the encoder sees large writes.
    let mut encoder =
        io::BufWriter::with_capacity(1 << 16, zstd::stream::Encoder::new(&mut *out, 1)?);
    postcard::to_io(value, &mut encoder).map_err(io::Error::other)?;
    encoder
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .finish()?;
    let len = u32::try_from(out.written - at)
        .map_err(|_| io::Error::other("a section of the session index passes 4 GiB"))?;
    Ok((at, len))
}

/// Largest string or byte field inside a section (a foreign file cannot make a read
/// allocate more).
const MAX_FIELD_BYTES: usize = 1 << 20;

fn read_section<T: for<'de> Deserialize<'de>>(
    file: &File,
    (offset, len): (u64, u32),
    what: &'static str,
) -> Result<T, IndexError> {
    let corrupt = |e: &dyn std::fmt::Display| IndexError::Corrupt(what, e.to_string());
    let part = io::BufReader::new(PartReader {
        file,
        at: offset,
        end: offset + u64::from(len),
    });
    let decoder = zstd::stream::Decoder::with_buffer(part).map_err(|e| corrupt(&e))?;
    let mut input = postcard::Deserializer::from_flavor(ReadInput::new(decoder));
    let value = T::deserialize(&mut input).map_err(|e| corrupt(&e))?;
    input.finalize().map_err(|e| corrupt(&e))?;
    Ok(value)
}

/// postcard input from a reader, through a buffer of its own: postcard's own reader input
/// reads every byte with a call to `Read`, which made loading the columns of a million rows
/// five times slower. Fields are decoded owned (`try_take_n_temp`), never borrowed.
struct ReadInput<R> {
    reader: R,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    field: Vec<u8>,
    failed: Option<io::Error>,
}

impl<R: Read> ReadInput<R> {
    fn new(reader: R) -> Self {
        ReadInput {
            reader,
            buf: vec![0; 1 << 16],
            pos: 0,
            len: 0,
            field: Vec::new(),
            failed: None,
        }
    }

    /// Refills the buffer; `false` at the end of the input (or on a read error, kept).
    fn fill(&mut self) -> bool {
        self.pos = 0;
        self.len = match self.reader.read(&mut self.buf) {
            Ok(n) => n,
            Err(e) => {
                self.failed = Some(e);
                0
            }
        };
        self.len > 0
    }
}

impl<'de, R: Read + 'de> postcard::de_flavors::Flavor<'de> for ReadInput<R> {
    type Remainder = ();
    type Source = ();

    fn pop(&mut self) -> postcard::Result<u8> {
        if self.pos == self.len && !self.fill() {
            return Err(postcard::Error::DeserializeUnexpectedEnd);
        }
        let byte = self.buf[self.pos];
        self.pos += 1;
        Ok(byte)
    }

    fn try_take_n(&mut self, _: usize) -> postcard::Result<&'de [u8]> {
        // Only borrowed fields (`&str`, `&[u8]`) ask for this; the index has none.
        Err(postcard::Error::DeserializeBadEncoding)
    }

    fn try_take_n_temp<'a>(&'a mut self, ct: usize) -> postcard::Result<&'a [u8]>
    where
        'de: 'a,
    {
        if ct > MAX_FIELD_BYTES {
            return Err(postcard::Error::DeserializeBadEncoding);
        }
        self.field.clear();
        while self.field.len() < ct {
            if self.pos == self.len && !self.fill() {
                return Err(postcard::Error::DeserializeUnexpectedEnd);
            }
            let take = (ct - self.field.len()).min(self.len - self.pos);
            self.field
                .extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
        }
        Ok(&self.field)
    }

    fn finalize(self) -> postcard::Result<()> {
        match self.failed {
            Some(_) => Err(postcard::Error::DeserializeUnexpectedEnd),
            None => Ok(()),
        }
    }
}

/// Reads one part of a file with positioned reads.
struct PartReader<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl Read for PartReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.at) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// A writer that counts and checksums what passes through.
struct Checksummed<W> {
    inner: W,
    crc: crc32fast::Hasher,
    written: u64,
}

impl<W: Write> Checksummed<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            crc: crc32fast::Hasher::new(),
            written: 0,
        }
    }
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens an index file: checks it whole, then decodes its columns and the rest of the
/// session; the task rows stay in the file.
pub fn open(mut file: File, fingerprint: u64) -> Result<Session, IndexError> {
    let len = file.seek(SeekFrom::End(0))?;
    if len < HEADER_LEN + TRAILER_LEN {
        return Err(IndexError::NotAnIndex);
    }
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)?;
    let mut trailer = [0u8; TRAILER_LEN as usize];
    file.read_exact_at(&mut trailer, len - TRAILER_LEN)?;
    if &header[..8] != MAGIC || &trailer[8..] != MAGIC {
        return Err(IndexError::NotAnIndex);
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(IndexError::Version(version));
    }
    let footer_len = u64::from(u32::from_le_bytes(
        trailer[..4].try_into().expect("4 bytes"),
    ));
    let stored_crc = u32::from_le_bytes(trailer[4..8].try_into().expect("4 bytes"));
    let body = len - 8 - 4;
    let mut crc = crc32fast::Hasher::new();
    file.seek(SeekFrom::Start(0))?;
    let mut reader = io::BufReader::with_capacity(1 << 20, (&file).take(body));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
    }
    if crc.finalize() != stored_crc {
        return Err(IndexError::Checksum);
    }
    let footer_at = body
        .checked_sub(4 + footer_len)
        .filter(|at| *at >= HEADER_LEN)
        .ok_or(IndexError::Corrupt("footer", "bad length".into()))?;
    let mut raw = vec![0u8; footer_len as usize];
    file.read_exact_at(&mut raw, footer_at)?;
    let footer: Footer =
        postcard::from_bytes(&raw).map_err(|e| IndexError::Corrupt("footer", e.to_string()))?;
    if footer.version != FORMAT_VERSION {
        return Err(IndexError::Version(footer.version));
    }
    if footer.fingerprint != fingerprint {
        return Err(IndexError::Fingerprint);
    }
    let inside = |(at, n): (u64, u32)| at >= HEADER_LEN && at + u64::from(n) <= footer_at;
    if !footer.blocks.iter().all(|b| inside(*b)) || !inside(footer.columns) || !inside(footer.rest)
    {
        return Err(IndexError::Corrupt(
            "footer",
            "a part lies outside the file".into(),
        ));
    }
    let columns: Columns = read_section(&file, footer.columns, "columns")?;
    let rest: SessionRest = read_section(&file, footer.rest, "session state")?;
    let per = u64::from(footer.rows_per_block.max(1));
    if columns.rows() as u64 != footer.rows
        || (footer.blocks.len() as u64) != footer.rows.div_ceil(per)
    {
        return Err(IndexError::Corrupt("footer", "row counts disagree".into()));
    }
    let rows = RowFile::new(file, footer.blocks, footer.rows_per_block);
    Ok(Session::new(TaskTable::in_file(columns, rows), rest))
}

/// Downloads a stored index of `size` bytes into a new unlinked file in `dir` and opens it.
/// A big one comes in [`FETCH_PART`] ranges, [`FETCH_CONCURRENCY`] at a time: one stream from
/// a blob service is slower than the disk it lands on.
pub async fn fetch(
    storage: &ray_history_storage::Storage,
    key: &Path,
    size: u64,
    fingerprint: u64,
    dir: &FsPath,
) -> Result<Session, IndexError> {
    let file = tempfile::tempfile_in(dir)?;
    let parts =
        (0..size.div_ceil(FETCH_PART)).map(|i| i * FETCH_PART..((i + 1) * FETCH_PART).min(size));
    let mut fetched = futures::stream::iter(parts)
        .map(|range| async move {
            let at = range.start;
            Ok::<_, IndexError>((at, storage.get_range(key, range).await?))
        })
        .buffer_unordered(FETCH_CONCURRENCY);
    let mut written = 0;
    while let Some((at, bytes)) = fetched.try_next().await? {
        file.write_all_at(&bytes, at)?;
        written += bytes.len() as u64;
    }
    if written != size {
        return Err(IndexError::Corrupt(
            "file",
            format!("{written} bytes of {size} arrived"),
        ));
    }
    tokio::task::spawn_blocking(move || open(file, fingerprint))
        .await
        .map_err(|e| IndexError::Io(io::Error::other(e)))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TaskId;
    use crate::model::{TaskState, TaskUpdate};

    /// The bytes of an index of `rows`, pushed in batches of the given sizes.
    fn written(rows: &[&Task], rest: &SessionRest, batches: &[usize]) -> Vec<u8> {
        let mut file = tempfile::tempfile().unwrap();
        let mut writer = IndexWriter::new(file.try_clone().unwrap(), 7).unwrap();
        let mut rows = rows;
        for size in batches {
            let (batch, more) = rows.split_at((*size).min(rows.len()));
            writer.push(batch).unwrap();
            rows = more;
        }
        writer.push(rows).unwrap();
        writer.finish(rest).unwrap();
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_end(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn rows_pushed_in_batches_of_any_size_make_the_same_file() {
        let mut builder = Builder::default();
        for i in 0..1000u64 {
            builder.task(TaskUpdate {
                task_id: TaskId::from_hex(&format!("{i:048x}")),
                states: vec![(TaskState::Finished, i + 1)],
                ..Default::default()
            });
        }
        let session = builder.finish();
        let rows: Vec<&Task> = session.tasks.memory_rows().unwrap().iter().collect();
        let rest = session.rest();
        let whole = written(&rows, &rest, &[]);
        // Batches that end inside a block, one that completes it, and one smaller than it.
        for batches in [&[100, 300, 1][..], &[256, 512], &[255, 1, 10]] {
            assert!(
                written(&rows, &rest, batches) == whole,
                "batches {batches:?} wrote another file"
            );
        }
        let session = open(tempfile_with(&whole), 7).unwrap();
        assert_eq!(session.tasks.len(), 1000);
    }

    fn tempfile_with(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file
    }
}
