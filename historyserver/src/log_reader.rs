//! Reading stored log files without downloading them whole: the last N lines (read backwards
//! in growing chunks with ranged GETs), byte ranges, and gzip files (decompressed as a stream
//! on the blocking pool, keeping only what is asked for). Also the checks on user-supplied file
//! names. Every read here is bounded by the constants below, whatever the file's size.

use std::io::Read;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use ray_history_storage::Storage;
use ray_history_storage::layout::split_relative;

use crate::Error;

/// First chunk read from the end of a file when tailing; later chunks double up to
/// [`MAX_CHUNK`].
const FIRST_CHUNK: u64 = 64 * 1024;
const MAX_CHUNK: u64 = 8 * 1024 * 1024;
/// Most lines a tail (`lines=N`) returns; larger `N` are served as this many.
pub const MAX_LINES: usize = 100_000;
/// Most bytes a tail returns (and `api/jobs/<id>/logs`): the last bytes of the file, from a
/// line start when one falls within them.
pub const MAX_TAIL_BYTES: u64 = 16 * 1024 * 1024;
/// Most bytes inflated from one gzip log for one request. A tail past it is refused (its end
/// is unknown); a whole-file read stops there with a broken transfer.
pub const MAX_INFLATED: u64 = 256 * 1024 * 1024;
/// Permits for inflating gzip logs, one per core.
static INFLATES: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
});
/// Size of the inflated chunks of a streamed gzip log.
const INFLATE_CHUNK: usize = 64 * 1024;

/// Checks a user-supplied path relative to a node's `logs/` dir: no `..`, `.`, empty segments,
/// absolute paths, backslashes or control characters.
pub fn check_relative(name: &str) -> Result<(), Error> {
    if name.starts_with('/') {
        return Err(Error::BadRequest(format!(
            "invalid log file name {name:?}: must be relative"
        )));
    }
    split_relative(name)
        .map(|_| ())
        .map_err(|e| Error::BadRequest(e.to_string()))
}

/// Index just after the start of the `n`-th line counted from the end of `data` (a trailing
/// newline does not start a line). Returns 0 when `data` has at most `n` lines.
pub fn tail_start(data: &[u8], n: usize) -> usize {
    if n == 0 {
        return data.len();
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    memchr::memrchr_iter(b'\n', body)
        .nth(n - 1)
        .map_or(0, |i| i + 1)
}

/// The last `n` lines (at most [`MAX_LINES`]) of `data`, at most [`MAX_TAIL_BYTES`] of them.
pub fn keep_tail(data: Bytes, n: usize) -> Bytes {
    data.slice(tail_cut(&data, n)..)
}

/// Where [`keep_tail`] cuts `data`.
fn tail_cut(data: &[u8], n: usize) -> usize {
    let start = tail_start(data, n.min(MAX_LINES));
    let cap = MAX_TAIL_BYTES as usize;
    if data.len() - start <= cap {
        return start;
    }
    let start = data.len() - cap;
    // Start at a line when one starts within the kept bytes (not just a final newline).
    match memchr::memchr(b'\n', &data[start..data.len() - 1]) {
        Some(at) => start + at + 1,
        None => start,
    }
}

/// The last `n` lines of `window` (a byte range of the object), reading backwards; bounded
/// as [`keep_tail`] says.
pub async fn tail(
    storage: &Storage,
    key: &Path,
    window: Range<u64>,
    n: usize,
) -> Result<Bytes, Error> {
    let n = n.min(MAX_LINES);
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut pos = window.end;
    let mut chunk = FIRST_CHUNK;
    let mut newlines = 0usize;
    let mut total = 0u64;
    while pos > window.start && newlines < n && total < MAX_TAIL_BYTES {
        let start = pos
            .saturating_sub(chunk.min(MAX_TAIL_BYTES - total))
            .max(window.start);
        let data = storage.get_range(key, start..pos).await?;
        let mut count = memchr_count(&data);
        if pos == window.end && data.last() == Some(&b'\n') {
            count -= 1;
        }
        newlines += count;
        total += data.len() as u64;
        chunks.push(data);
        pos = start;
        chunk = (chunk * 2).min(MAX_CHUNK);
    }
    let mut joined = BytesMut::with_capacity(total as usize);
    for c in chunks.iter().rev() {
        joined.extend_from_slice(c);
    }
    Ok(keep_tail(joined.freeze(), n))
}

/// Ray writes a `:task_name:<name>` line before each task's output in a worker's log.
pub const TASK_MARKER: &[u8] = b":task_name:";

/// The bytes of `window` after the last line that starts with `marker` (the whole window if
/// there is none, at most its last [`MAX_TAIL_BYTES`]), reading backwards. Export events give a task's end offset but no start;
/// the start is just after Ray's marker line.
pub async fn after_last_marker(
    storage: &Storage,
    key: &Path,
    window: Range<u64>,
    marker: &[u8],
) -> Result<Bytes, Error> {
    let mut collected = BytesMut::new();
    let mut pos = window.end;
    let mut chunk = FIRST_CHUNK;
    while pos > window.start && (collected.len() as u64) < MAX_TAIL_BYTES {
        let room = MAX_TAIL_BYTES - collected.len() as u64;
        let start = pos.saturating_sub(chunk.min(room)).max(window.start);
        let data = storage.get_range(key, start..pos).await?;
        let mut joined = BytesMut::with_capacity(data.len() + collected.len());
        joined.extend_from_slice(&data);
        joined.extend_from_slice(&collected);
        collected = joined;
        pos = start;
        if let Some(at) = marker_end(&collected, marker, pos == window.start) {
            return Ok(collected.freeze().slice(at..));
        }
        chunk = (chunk * 2).min(MAX_CHUNK);
    }
    Ok(collected.freeze())
}

/// End of the last complete line starting with `marker` in `data`. A match at offset 0 counts
/// only when `data` starts at a line start (`at_line_start`).
fn marker_end(data: &[u8], marker: &[u8], at_line_start: bool) -> Option<usize> {
    let mut line_end = data.len();
    loop {
        let line_start = data[..line_end]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let line = &data[line_start..line_end];
        let complete = line_end < data.len();
        if complete && line.starts_with(marker) && (line_start > 0 || at_line_start) {
            return Some(line_end + 1);
        }
        if line_start == 0 {
            return None;
        }
        line_end = line_start - 1;
    }
}

fn memchr_count(data: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', data).count()
}

/// Inflates the gzip object at `key` on the blocking pool, handing each inflated chunk to
/// `sink` (with `state`) until it returns `false`; returns the state. Fails past
/// [`MAX_INFLATED`] bytes, so a gzip bomb costs at most that much CPU.
async fn inflate<S: Send + 'static>(
    storage: &Storage,
    key: &Path,
    mut state: S,
    mut sink: impl FnMut(&mut S, &[u8]) -> bool + Send + 'static,
) -> Result<S, Error> {
    // Inflating is CPU-bound: more at once than cores gains nothing and costs memory.
    let _permit = INFLATES.acquire().await.map_err(|_| Error::Worker)?;
    let (_, stream) = storage.get_stream(key, None).await?;
    let reader =
        tokio_util::io::StreamReader::new(stream.map(|r| r.map_err(std::io::Error::other)));
    // Reads block on the runtime from the blocking pool, so inflating never stalls a worker.
    let reader = tokio_util::io::SyncIoBridge::new(reader);
    let key = key.to_string();
    tokio::task::spawn_blocking(move || {
        let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(reader));
        let mut buf = vec![0u8; INFLATE_CHUNK];
        let mut total = 0u64;
        loop {
            let n = decoder
                .read(&mut buf)
                .map_err(|e| Error::BadRequest(format!("{key} is not valid gzip: {e}")))?;
            total += n as u64;
            if total > MAX_INFLATED {
                return Err(Error::TooLarge(format!(
                    "{key} inflates to more than {} MiB, the most read from a gzip log per request",
                    MAX_INFLATED >> 20
                )));
            }
            if n == 0 || !sink(&mut state, &buf[..n]) {
                return Ok(state);
            }
        }
    })
    .await
    .map_err(|_| Error::Worker)?
}

/// The last `lines` lines of a gzip file, bounded as [`keep_tail`] says; memory stays
/// within 1.5 times [`MAX_TAIL_BYTES`] however far the file inflates.
pub async fn gunzip_tail(storage: &Storage, key: &Path, lines: usize) -> Result<Bytes, Error> {
    // Trimming only past 1.5 times the cap keeps the copying linear in the inflated size;
    // the capacity is fixed up front so the buffer never doubles past it.
    let room = (MAX_TAIL_BYTES + MAX_TAIL_BYTES / 2) as usize;
    let kept = Vec::with_capacity(room + INFLATE_CHUNK);
    let kept = inflate(storage, key, kept, move |kept, chunk| {
        kept.extend_from_slice(chunk);
        if kept.len() > room {
            let cut = tail_cut(kept, lines);
            kept.drain(..cut);
        }
        true
    })
    .await?;
    Ok(keep_tail(Bytes::from(kept), lines))
}

/// A gzip file inflated as a stream of chunks, for whole-file reads; at most [`MAX_INFLATED`]
/// bytes, then the stream fails (the client sees a broken transfer, the log a warning).
pub fn gunzip_stream(storage: Storage, key: Path) -> BoxStream<'static, std::io::Result<Bytes>> {
    // A few chunks in flight: the inflater waits for the client to read.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::spawn(async move {
        let sink = |tx: &mut tokio::sync::mpsc::Sender<_>, chunk: &[u8]| {
            tx.blocking_send(Ok(Bytes::copy_from_slice(chunk))).is_ok()
        };
        if let Err(e) = inflate(&storage, &key, tx.clone(), sink).await {
            tracing::warn!(error = %e, "gzip log read stopped");
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// What a `Range` header asks of an object, as RFC 9110 section 14 reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No byte range (another unit): serve the whole answer.
    Ignore,
    /// One satisfiable byte range.
    Bytes(Range<u64>),
    /// Malformed, several ranges, or outside the object: 416.
    Unsatisfiable,
}

/// Parses a `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`) against an object of `size`
/// bytes. Only single ranges are served; a list is refused rather than answered as multipart.
/// Written by hand: `http-range-header` (0.4, the version tower-http brings) refuses a suffix
/// longer than the object, which RFC 9110 says selects all of it (`bytes=-1000` of a short log).
pub fn parse_range(header: &[u8], size: u64) -> RangeRequest {
    let Ok(text) = std::str::from_utf8(header) else {
        return RangeRequest::Unsatisfiable;
    };
    let Some((unit, spec)) = text.trim().split_once('=') else {
        return RangeRequest::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeRequest::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Unsatisfiable;
    };
    let number = |t: &str| {
        (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()))
            .then(|| t.parse::<u64>().unwrap_or(u64::MAX))
    };
    let range = match (a, b) {
        ("", suffix) => number(suffix)
            .filter(|n| *n > 0)
            .map(|n| size.saturating_sub(n)..size),
        (first, "") => number(first).map(|first| first..size),
        (first, last) => match (number(first), number(last)) {
            (Some(first), Some(last)) if first <= last => {
                Some(first..last.saturating_add(1).min(size))
            }
            _ => None,
        },
    };
    match range {
        Some(r) if r.start < r.end => RangeRequest::Bytes(r),
        _ => RangeRequest::Unsatisfiable,
    }
}

/// Removes ANSI CSI sequences (`ESC [ … letter`) from a byte stream fed in chunks of any size:
/// a sequence cut by a chunk boundary is still removed. Written by hand: `strip-ansi-escapes`'
/// `Writer` gives its output back only at `into_inner`, and a streamed response needs it per chunk.
#[derive(Default)]
pub struct AnsiFilter {
    state: AnsiState,
}

#[derive(Default, Clone, Copy)]
enum AnsiState {
    #[default]
    Text,
    Escape,
    Sequence,
}

impl AnsiFilter {
    /// The filtered bytes of the next chunk.
    pub fn feed(&mut self, input: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(input.len() + 1);
        for &b in input {
            self.state = match (self.state, b) {
                (AnsiState::Text, 0x1b) => AnsiState::Escape,
                (AnsiState::Text, _) => {
                    out.push(b);
                    AnsiState::Text
                }
                (AnsiState::Escape, b'[') => AnsiState::Sequence,
                (AnsiState::Escape, 0x1b) => {
                    out.push(0x1b);
                    AnsiState::Escape
                }
                (AnsiState::Escape, _) => {
                    out.extend_from_slice(&[0x1b, b]);
                    AnsiState::Text
                }
                (AnsiState::Sequence, b) if b.is_ascii_alphabetic() => AnsiState::Text,
                (AnsiState::Sequence, _) => AnsiState::Sequence,
            };
        }
        Bytes::from(out)
    }

    /// What is left at the end of the input: a lone trailing `ESC`.
    pub fn finish(self) -> Bytes {
        match self.state {
            AnsiState::Escape => Bytes::from_static(b"\x1b"),
            _ => Bytes::new(),
        }
    }

    /// `data` filtered in one go.
    pub fn filter(data: &[u8]) -> Bytes {
        let mut filter = Self::default();
        let mut out = BytesMut::from(filter.feed(data));
        out.extend_from_slice(&filter.finish());
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_start_counts_lines_from_the_end() {
        assert_eq!(tail_start(b"a\nb\nc\n", 2), 2);
        assert_eq!(tail_start(b"a\nb\nc", 2), 2);
        assert_eq!(tail_start(b"a\nb\nc\n", 5), 0);
        assert_eq!(tail_start(b"", 3), 0);
        assert_eq!(tail_start(b"abc", 0), 3);
    }

    #[test]
    fn markers() {
        let data = b":job_id:01\n:task_name:a\nout a\n:task_name:b\nout b\n";
        assert_eq!(marker_end(data, TASK_MARKER, true), Some(43));
        assert_eq!(&data[43..], b"out b\n");
        assert_eq!(marker_end(b"x\ny\n", TASK_MARKER, true), None);
        assert_eq!(marker_end(b"ame:a\nout\n", TASK_MARKER, false), None);
    }

    #[test]
    fn ranges() {
        use RangeRequest::*;
        let parse = |h: &str, size| parse_range(h.as_bytes(), size);
        assert_eq!(parse("bytes=0-9", 100), Bytes(0..10));
        assert_eq!(parse("Bytes = 0-9", 100), Bytes(0..10));
        assert_eq!(parse("bytes=-10", 100), Bytes(90..100));
        assert_eq!(parse("bytes=-1000", 100), Bytes(0..100));
        assert_eq!(parse("bytes=95-", 100), Bytes(95..100));
        assert_eq!(parse("bytes=95-200", 100), Bytes(95..100));
        assert_eq!(parse("bytes=0-99999999999999999999999", 100), Bytes(0..100));
        assert_eq!(parse("lines=1", 100), Ignore);
        for bad in [
            "bytes=100-",
            "bytes=0-1,3-4",
            "bytes=5-3",
            "bytes=-0",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1--2",
            "bytes",
            "",
        ] {
            assert_eq!(parse(bad, 100), Unsatisfiable, "{bad}");
        }
        assert_eq!(parse("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=\xff-1", 100), Unsatisfiable);
    }

    #[test]
    fn tails_are_capped_in_lines_and_bytes() {
        let lines: Vec<u8> = b"x\n".repeat(MAX_LINES + 10);
        let kept = keep_tail(Bytes::from(lines), usize::MAX);
        assert_eq!(kept.len(), 2 * MAX_LINES);
        let flat = Bytes::from(vec![b'a'; MAX_TAIL_BYTES as usize + 10]);
        assert_eq!(keep_tail(flat, 10).len() as u64, MAX_TAIL_BYTES);
        let mut long = vec![b'a'; MAX_TAIL_BYTES as usize];
        long.extend_from_slice(b"\nlast\n");
        assert_eq!(&keep_tail(Bytes::from(long), 3)[..], b"last\n");
    }

    #[test]
    fn ansi_sequences_are_removed_across_chunks() {
        let text = b"a\x1b[31mred\x1b[0m b\x1bc\x1b";
        assert_eq!(&AnsiFilter::filter(text)[..], b"ared b\x1bc\x1b");
        for cut in 0..text.len() {
            let mut filter = AnsiFilter::default();
            let mut out = BytesMut::from(filter.feed(&text[..cut]));
            out.extend_from_slice(&filter.feed(&text[cut..]));
            out.extend_from_slice(&filter.finish());
            assert_eq!(&out[..], b"ared b\x1bc\x1b", "cut at {cut}");
        }
    }

    #[test]
    fn relative_names() {
        assert!(check_relative("raylet.out").is_ok());
        assert!(check_relative("events/event_GCS.log").is_ok());
        for bad in [
            "../x",
            "/etc/passwd",
            "a//b",
            "a/../b",
            "a\\b",
            "",
            "a\nb",
            ".",
        ] {
            assert!(check_relative(bad).is_err(), "{bad:?}");
        }
    }
}
