//! One function per parser of untrusted input, each checking what the parser promises besides
//! not panicking. `fuzz_targets/` wraps them for libFuzzer (`make fuzz`); `tests/replay.rs`
//! runs them on the kept corpora and regressions and on mutations of them (`make test`).

use object_store::path::Path;
use ray_history_server::events::{self, FileKind};
use ray_history_server::log_reader::{RangeRequest, check_relative, parse_range};
use ray_history_storage::config::ConnectionString;
use ray_history_storage::layout::Key;

/// Every event format (export files, RayEvents, cluster events, snapshots): the first byte
/// picks the format. Parsing never panics, counts every non-empty line, and the model built
/// from whatever was parsed can be finished (with end-of-session inference).
pub fn events(data: &[u8]) {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let kind = match selector % 4 {
        0 => FileKind::Export,
        1 => FileKind::RayEvents,
        2 => FileKind::Cluster,
        _ => FileKind::Snapshot,
    };
    let builder = events::parse_to_builder(kind, body);
    let lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .count() as u64;
    assert_eq!(builder.stats.lines, lines);
    assert!(builder.stats.corrupt_lines <= lines);
    builder.finish_at(Some(u64::MAX / 2));
}

/// Storage keys: whatever parses renders back to the very key it came from.
pub fn layout_key(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = Path::parse(text) else {
        return;
    };
    if let Ok(key) = Key::parse(&path) {
        assert_eq!(key.to_path(), path, "{key:?}");
    }
}

/// Azure connection strings: parsing never panics, and neither the parsed value's `Debug`
/// nor an error message shows the key or SAS token (unless the same text is also in a part
/// that is not secret, such as an endpoint).
pub fn connection_string(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parts: Vec<(String, &str)> = text
        .split(';')
        .filter_map(|part| part.split_once('='))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim()))
        .collect();
    let secret = |name: &str| name == "accountkey" || name == "sharedaccesssignature";
    let secrets: Vec<&str> = parts
        .iter()
        .filter(|(name, value)| secret(name) && value.len() >= 8)
        .map(|(_, value)| *value)
        .filter(|value| {
            !parts
                .iter()
                .any(|(name, other)| !secret(name) && other.contains(value))
        })
        .collect();
    let shown = match ConnectionString::parse(text) {
        Ok(parsed) => format!("{parsed:?} {:?}", parsed.credential),
        Err(e) => e.to_string(),
    };
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret:?} shown in {shown:?}");
    }
}

/// `Range` headers: a served range is non-empty and inside the object. The first eight bytes
/// are the object's size.
pub fn range_header(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let (size, header) = data.split_at(8);
    let size = u64::from_le_bytes(size.try_into().expect("eight bytes"));
    if let RangeRequest::Bytes(range) = parse_range(header, size) {
        assert!(
            range.start < range.end && range.end <= size,
            "{range:?} of {size}"
        );
    }
}

/// Log file names from URLs: an accepted name stays inside the node's `logs/` dir.
pub fn log_path(data: &[u8]) {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    if check_relative(name).is_ok() {
        assert!(!name.starts_with('/') && !name.contains('\\'), "{name:?}");
        for segment in name.split('/') {
            assert!(
                !segment.is_empty() && segment != "." && segment != "..",
                "{name:?}"
            );
            assert!(!segment.chars().any(char::is_control), "{name:?}");
        }
    }
}
