//! Cluster events (`logs/events/event_*.log`): one JSON object per line with `event_id`,
//! `source_type`, `message`, `timestamp` (unix seconds as a string), `custom_fields`, … The
//! dashboard's `/events` returns them with camelCased keys, the State API as written.

use crate::model::{Builder, ClusterEvent};

/// Parses one line; `false` when it is not a JSON object.
pub fn parse_line(line: &[u8], builder: &mut Builder) -> bool {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(line) else {
        return false;
    };
    let event_id = map
        .get("event_id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let timestamp = match map.get("timestamp") {
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    };
    let job_id = map
        .get("custom_fields")
        .and_then(|c| c.get("job_id"))
        .and_then(|j| j.as_str())
        .unwrap_or_default()
        .to_string();
    let event = ClusterEvent {
        event_id: builder.intern(&event_id),
        timestamp,
        job_id: builder.intern(&job_id),
        json: serde_json::Value::Object(map),
    };
    builder.cluster_event(event);
    true
}
