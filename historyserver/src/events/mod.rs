//! Parsers for the three kinds of event files Ray writes, all feeding a [`Builder`]:
//! - [`export`]: `logs/export_events/event_EXPORT_*.log` (`RAY_enable_export_api_write=1`);
//! - [`ray_event`]: `node_events/*.json`, RayEvents Ray pushed over HTTP (JSON Lines);
//! - [`cluster`]: `logs/events/event_*.log`, the cluster events behind the dashboard's `/events`;
//! - [`snapshot`]: `snapshot/*.jsonl`, the head collector's copies of the live State API.
//!
//! A line that is not valid JSON or not a known event is counted in [`crate::model::LoadStats`]
//! and skipped; no input makes a parser fail or panic.

pub mod cluster;
pub mod export;
pub mod ray_event;
pub mod snapshot;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::model::Builder;

/// Which parser a file needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Export events (`logs/export_events/event_EXPORT_*.log`).
    Export,
    /// RayEvents received over HTTP (`node_events/*.json`).
    RayEvents,
    /// Cluster events (`logs/events/event_*.log`).
    Cluster,
    /// The head's snapshots of the State API (`snapshot/*.jsonl`).
    Snapshot,
}

impl FileKind {
    /// The kind of a file from its path relative to a node's `logs/` dir, if it holds events.
    pub fn of_log_path(relative: &str) -> Option<Self> {
        let (dir, name) = relative.rsplit_once('/')?;
        match dir {
            "export_events" if name.starts_with("event_EXPORT_") => Some(FileKind::Export),
            "events" if name.starts_with("event_") => Some(FileKind::Cluster),
            _ => None,
        }
    }
}

/// Parses whole lines of a file of the given kind into `builder` (a whole file, or a block
/// of complete lines of one).
pub fn parse(kind: FileKind, data: &[u8], builder: &mut Builder) {
    builder.stats.bytes += data.len() as u64;
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
    for end in ends {
        let line = data[start..end].trim_ascii();
        start = end + 1;
        if line.is_empty() {
            continue;
        }
        builder.stats.lines += 1;
        let ok = match kind {
            FileKind::Export => export::parse_line(line, builder),
            FileKind::RayEvents => ray_event::parse_line(line, builder),
            FileKind::Cluster => cluster::parse_line(line, builder),
            FileKind::Snapshot => snapshot::parse_line(line, builder),
        };
        if !ok {
            builder.stats.corrupt_lines += 1;
        }
    }
}

/// Parses one file into a fresh builder.
pub fn parse_to_builder(kind: FileKind, data: &[u8]) -> Builder {
    let mut builder = Builder::default();
    builder.stats.files = 1;
    parse(kind, data, &mut builder);
    builder
}

/// Accepts an integer written as a JSON number or a string (protobuf int64 fields).
pub(crate) fn flex_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flex<'a> {
        Num(u64),
        Float(f64),
        #[serde(borrow)]
        Str(Cow<'a, str>),
    }
    Ok(match Option::<Flex>::deserialize(d)? {
        Some(Flex::Num(n)) => Some(n),
        Some(Flex::Float(f)) if f >= 0.0 => Some(f as u64),
        Some(Flex::Str(s)) => s.parse().ok(),
        _ => None,
    })
}

/// Signed variant of [`flex_u64`].
pub(crate) fn flex_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flex<'a> {
        Num(i64),
        Float(f64),
        #[serde(borrow)]
        Str(Cow<'a, str>),
    }
    Ok(match Option::<Flex>::deserialize(d)? {
        Some(Flex::Num(n)) => Some(n),
        Some(Flex::Float(f)) => Some(f as i64),
        Some(Flex::Str(s)) => s.parse().ok(),
        None => None,
    })
}

/// Canonical JSON text of a resource map (`{"CPU":1.0}`), or empty for none.
pub(crate) fn resources_text(raw: Option<&RawValue>) -> String {
    let Some(raw) = raw else { return String::new() };
    if raw.get() == "{}" {
        return "{}".to_string();
    }
    match serde_json::from_str::<BTreeMap<&str, f64>>(raw.get()) {
        Ok(map) => serde_json::to_string(&map).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Unix nanoseconds of an RFC 3339 timestamp.
pub(crate) fn rfc3339_ns(text: &str) -> Option<u64> {
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    u64::try_from(t.timestamp_nanos_opt()?).ok()
}

/// Python's `str.title()`: a letter is uppercased after a non-letter, lowercased otherwise.
fn title(word: &str, out: &mut String) {
    let mut prev_letter = false;
    for c in word.chars() {
        if c.is_alphabetic() {
            if prev_letter {
                out.extend(c.to_lowercase());
            } else {
                out.extend(c.to_uppercase());
            }
            prev_letter = true;
        } else {
            out.push(c);
            prev_letter = false;
        }
    }
}

/// The dashboard's key conversion (`to_camel_case`): `a_b_c` → `aBC`-style, Python `title()`
/// on every part after the first.
pub fn camel_case(key: &str) -> String {
    let mut parts = key.split('_');
    let mut out = String::with_capacity(key.len());
    out.push_str(parts.next().unwrap_or_default());
    for part in parts {
        title(part, &mut out);
    }
    out
}

/// Applies [`camel_case`] to every object key, recursively (the dashboard's Google style).
pub fn camelize(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.into_iter()
                .map(|(k, v)| (camel_case(&k), camelize(v)))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(camelize).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_matches_python() {
        assert_eq!(camel_case("submission_id"), "submissionId");
        assert_eq!(camel_case("node:__internal_head__"), "node:InternalHead");
        assert_eq!(camel_case("object_store_memory"), "objectStoreMemory");
        assert_eq!(camel_case("node_f4a4cdf2dbcee3cd"), "nodeF4A4Cdf2Dbcee3Cd");
    }

    #[test]
    fn file_kinds() {
        assert_eq!(
            FileKind::of_log_path("export_events/event_EXPORT_TASK_1.log"),
            Some(FileKind::Export)
        );
        assert_eq!(
            FileKind::of_log_path("events/event_GCS.log"),
            Some(FileKind::Cluster)
        );
        assert_eq!(FileKind::of_log_path("raylet.out"), None);
    }
}
