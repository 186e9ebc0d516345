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

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::model::{Builder, TaskState, Text};

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
    let mut scratch = crate::model::TaskUpdate::default();
    let ends = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
    for end in ends {
        let line = data[start..end].trim_ascii();
        start = end + 1;
        if line.is_empty() {
            continue;
        }
        builder.stats.lines += 1;
        let ok = match kind {
            FileKind::Export => export::parse_line(line, builder, &mut scratch),
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
    Ok(d.deserialize_option(FlexVisitor)?.and_then(|n| match n {
        Flex::Unsigned(n) => Some(n),
        Flex::Signed(n) => u64::try_from(n).ok(),
        Flex::Float(f) if f >= 0.0 => Some(f as u64),
        Flex::Float(_) => None,
    }))
}

/// Signed variant of [`flex_u64`].
pub(crate) fn flex_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(d.deserialize_option(FlexVisitor)?.and_then(|n| match n {
        Flex::Unsigned(n) => i64::try_from(n).ok(),
        Flex::Signed(n) => Some(n),
        Flex::Float(f) => Some(f as i64),
    }))
}

/// A number as written; an unparsable string or another type is `None`.
enum Flex {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

/// Reads a number or a numeric string in one pass (serde's untagged enums buffer the value
/// first, which cost a tenth of the parse on every line's timestamp).
struct FlexVisitor;

impl<'de> Visitor<'de> for FlexVisitor {
    type Value = Option<Flex>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number or a numeric string")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Some(Flex::Unsigned(n)))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Some(Flex::Signed(n)))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Self::Value, E> {
        Ok(Some(Flex::Float(f)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(s.parse()
            .map(Flex::Unsigned)
            .or_else(|_| s.parse().map(Flex::Signed))
            .ok())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(None)
    }
}

/// A string that may be `null` (then empty), borrowed from the line when it has no escapes
/// (serde borrows a `Cow` field only when it is not inside an `Option`).
pub(crate) fn nullable_text<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Cow<'a, str>, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = Cow<'de, str>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string or null")
        }

        fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(s))
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(s.to_owned()))
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }
    d.deserialize_option(Text)
}

/// Task state times keyed by `TaskStatus` number, `{"11": "<nanos>"}`, appended to the
/// pairs given (a list reused from line to line); unknown states and unparsable times are
/// dropped, and `null` is none.
pub(crate) struct StateTimesInto<'a>(pub &'a mut Vec<(TaskState, u64)>);

impl<'de> de::DeserializeSeed<'de> for StateTimesInto<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for StateTimesInto<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map of task states to times")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(StateKey(state)) = map.next_key()? {
            let time = map.next_value_seed(FlexSeed)?;
            if let (Some(state), Some(Flex::Unsigned(time))) = (state, time) {
                self.0.push((state, time));
            }
        }
        Ok(())
    }
}

/// A `state_ts_ns` key: the state of a `TaskStatus` number, read without copying the key.
struct StateKey(Option<TaskState>);

impl<'de> Deserialize<'de> for StateKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Number;
        impl Visitor<'_> for Number {
            type Value = StateKey;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a task state number")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<StateKey, E> {
                Ok(StateKey(key.parse().ok().and_then(TaskState::from_number)))
            }
        }
        d.deserialize_str(Number)
    }
}

/// [`FlexVisitor`] as a seed, for map values.
struct FlexSeed;

impl<'de> de::DeserializeSeed<'de> for FlexSeed {
    type Value = Option<Flex>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(FlexVisitor)
    }
}

/// A JSON value kept as its text, by either parser (serde_json's `RawValue`, sonic-rs's
/// `LazyValue`).
pub(crate) trait RawJson {
    /// The value's JSON text.
    fn json(&self) -> &str;
}

impl RawJson for RawValue {
    fn json(&self) -> &str {
        self.get()
    }
}

impl RawJson for sonic_rs::LazyValue<'_> {
    fn json(&self) -> &str {
        self.as_raw_str()
    }
}

impl<T: RawJson + ?Sized> RawJson for &T {
    fn json(&self) -> &str {
        (**self).json()
    }
}

/// Canonical JSON text of a resource map (`{"CPU":1.0}`), or empty for none, interned.
pub(crate) fn resources_text<R: RawJson + ?Sized>(raw: Option<&R>, builder: &mut Builder) -> Text {
    let Some(raw) = raw else {
        return builder.intern("");
    };
    builder.intern_derived(raw.json(), |raw| {
        if raw == "{}" {
            return "{}".to_string();
        }
        match serde_json::from_str::<BTreeMap<&str, f64>>(raw) {
            Ok(map) => serde_json::to_string(&map).unwrap_or_default(),
            Err(_) => String::new(),
        }
    })
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
