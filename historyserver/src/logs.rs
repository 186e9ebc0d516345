//! Reading stored log files without downloading them whole: the last N lines (read backwards
//! in growing chunks with ranged GETs), byte ranges, and gzip files (decompressed as a stream,
//! keeping only what is asked for). Also the checks on user-supplied file names.

use std::io::Write;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::path::Path;
use ray_history_storage::Storage;
use ray_history_storage::layout::split_relative;

use crate::Error;

/// First chunk read from the end of a file when tailing; later chunks double up to
/// [`MAX_CHUNK`].
const FIRST_CHUNK: u64 = 64 * 1024;
const MAX_CHUNK: u64 = 8 * 1024 * 1024;
/// Most bytes returned for one request (whole-file reads of gzip files, very long lines).
pub const MAX_RESPONSE: u64 = 256 * 1024 * 1024;

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
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

/// The last `n` lines of `window` (a byte range of the object), reading backwards.
pub async fn tail(
    storage: &Storage,
    key: &Path,
    window: Range<u64>,
    n: usize,
) -> Result<Bytes, Error> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut pos = window.end;
    let mut chunk = FIRST_CHUNK;
    let mut newlines = 0usize;
    let mut total = 0u64;
    while pos > window.start {
        let start = pos.saturating_sub(chunk).max(window.start);
        let data = storage.get_range(key, start..pos).await?;
        let mut count = memchr_count(&data);
        if pos == window.end && data.last() == Some(&b'\n') {
            count -= 1;
        }
        newlines += count;
        total += data.len() as u64;
        chunks.push(data);
        pos = start;
        if newlines >= n || total >= MAX_RESPONSE {
            break;
        }
        chunk = (chunk * 2).min(MAX_CHUNK);
    }
    let mut joined = BytesMut::with_capacity(total as usize);
    for c in chunks.iter().rev() {
        joined.extend_from_slice(c);
    }
    let joined = joined.freeze();
    let start = tail_start(&joined, n);
    Ok(joined.slice(start..))
}

/// Ray writes a `:task_name:<name>` line before each task's output in a worker's log.
pub const TASK_MARKER: &[u8] = b":task_name:";

/// The bytes of `window` after the last line that starts with `marker` (the whole window if
/// there is none), reading backwards. Export events give a task's end offset but no start;
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
    while pos > window.start && (collected.len() as u64) < MAX_RESPONSE {
        let start = pos.saturating_sub(chunk).max(window.start);
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
    data.iter().filter(|b| **b == b'\n').count()
}

/// A gzip file, decompressed; only the last `lines` lines are kept when given, otherwise at
/// most [`MAX_RESPONSE`] bytes.
pub async fn gunzip(storage: &Storage, key: &Path, lines: Option<usize>) -> Result<Bytes, Error> {
    let (_, mut stream) = storage.get_stream(key, None).await?;
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        decoder
            .write_all(&chunk)
            .map_err(|e| Error::BadRequest(format!("{key} is not valid gzip: {e}")))?;
        let out = decoder.get_mut();
        match lines {
            Some(n) if out.len() > 4 * 1024 * 1024 => {
                let start = tail_start(out, n);
                out.drain(..start);
            }
            None if out.len() as u64 > MAX_RESPONSE => break,
            _ => {}
        }
    }
    let mut out = decoder
        .finish()
        .map_err(|e| Error::BadRequest(format!("{key} is not valid gzip: {e}")))?;
    if let Some(n) = lines {
        let start = tail_start(&out, n);
        out.drain(..start);
    }
    Ok(Bytes::from(out))
}

/// Parses an HTTP `Range: bytes=a-b` header against an object of `size` bytes.
pub fn parse_range(header: &str, size: u64) -> Option<Range<u64>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let range = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            size.saturating_sub(n)..size
        }
        (start, "") => start.parse().ok()?..size,
        (start, end) => {
            let end: u64 = end.parse().ok()?;
            start.parse().ok()?..end.saturating_add(1).min(size)
        }
    };
    (range.start < range.end && range.end <= size).then_some(range)
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
        assert_eq!(parse_range("bytes=0-9", 100), Some(0..10));
        assert_eq!(parse_range("bytes=-10", 100), Some(90..100));
        assert_eq!(parse_range("bytes=95-", 100), Some(95..100));
        assert_eq!(parse_range("bytes=95-200", 100), Some(95..100));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), None);
        assert_eq!(parse_range("lines=1", 100), None);
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
