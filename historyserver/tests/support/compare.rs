//! Field-by-field comparison of a live Ray dashboard's answers with the history server's:
//! ids, states, names, error types and timestamps. Returns every difference found.

use std::collections::BTreeMap;

use serde_json::Value;

fn field(v: &Value, path: &str) -> Value {
    path.split('.')
        .fold(v, |v, k| v.get(k).unwrap_or(&Value::Null))
        .clone()
}

fn diff(out: &mut Vec<String>, what: &str, key: &str, live: &Value, ours: &Value) {
    if live != ours {
        out.push(format!("{what} {key}: live {live} vs ours {ours}"));
    }
}

fn compare_rows(
    out: &mut Vec<String>,
    what: &str,
    live: BTreeMap<String, Value>,
    ours: BTreeMap<String, Value>,
    fields: &[&str],
) {
    for key in live.keys() {
        if !ours.contains_key(key) {
            out.push(format!("{what} {key}: missing in ours"));
        }
    }
    for key in ours.keys() {
        if !live.contains_key(key) {
            out.push(format!("{what} {key}: not in live"));
        }
    }
    for (key, l) in &live {
        let Some(o) = ours.get(key) else { continue };
        for f in fields {
            diff(out, what, &format!("{key}.{f}"), &field(l, f), &field(o, f));
        }
    }
}

/// `api/v0/tasks?detail=1` answers.
pub fn tasks(live: &Value, ours: &Value, out: &mut Vec<String>) {
    let rows = |v: &Value| -> BTreeMap<String, Value> {
        v["data"]["result"]["result"]
            .as_array()
            .unwrap_or(&vec![])
            .iter()
            .map(|t| {
                (
                    format!(
                        "{}#{}",
                        t["task_id"].as_str().unwrap_or(""),
                        t["attempt_number"]
                    ),
                    t.clone(),
                )
            })
            .collect()
    };
    diff(
        out,
        "tasks",
        "total",
        &live["data"]["result"]["total"],
        &ours["data"]["result"]["total"],
    );
    compare_rows(
        out,
        "task",
        rows(live),
        rows(ours),
        &[
            "name",
            "state",
            "job_id",
            "actor_id",
            "type",
            "func_or_class_name",
            "parent_task_id",
            "node_id",
            "error_type",
            "error_message",
            "events",
            "creation_time_ms",
            "start_time_ms",
            "end_time_ms",
            "language",
            "required_resources",
            "placement_group_id",
        ],
    );
}

/// `logical/actors` answers.
pub fn actors(live: &Value, ours: &Value, out: &mut Vec<String>) {
    let rows = |v: &Value| -> BTreeMap<String, Value> {
        v["data"]["actors"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    compare_rows(
        out,
        "actor",
        rows(live),
        rows(ours),
        &[
            "actorId",
            "jobId",
            "name",
            "className",
            "state",
            "pid",
            "address.nodeId",
            "address.ipAddress",
            "exitDetail",
            "numRestarts",
            "requiredResources",
            "labelSelector",
        ],
    );
}

/// Timestamps of actors in ms, only where both sides have second precision or better.
pub fn actor_times(live: &Value, ours: &Value, tolerance_ms: i64, out: &mut Vec<String>) {
    let Some(live) = live["data"]["actors"].as_object() else {
        return;
    };
    for (id, l) in live {
        let o = &ours["data"]["actors"][id];
        for f in ["startTime", "endTime"] {
            let (a, b) = (l[f].as_i64().unwrap_or(0), o[f].as_i64().unwrap_or(0));
            if (a - b).abs() > tolerance_ms {
                out.push(format!("actor {id}.{f}: live {a} vs ours {b}"));
            }
        }
    }
}

/// `api/jobs/` answers; `full` also compares what only submission-job events carry
/// (messages, exit codes, submission times), which HTTP-event sessions do not have.
pub fn jobs(live: &Value, ours: &Value, full: bool, out: &mut Vec<String>) {
    let rows = |v: &Value| -> BTreeMap<String, Value> {
        v.as_array()
            .unwrap_or(&vec![])
            .iter()
            .map(|j| {
                let key = j["submission_id"]
                    .as_str()
                    .or(j["job_id"].as_str())
                    .unwrap_or("")
                    .to_string();
                (key, j.clone())
            })
            .collect()
    };
    let all = [
        "type",
        "job_id",
        "submission_id",
        "status",
        "driver_info.id",
        "driver_info.pid",
        "entrypoint",
        "error_type",
        "start_time",
        "end_time",
        "driver_exit_code",
        "message",
    ];
    compare_rows(
        out,
        "job",
        rows(live),
        rows(ours),
        if full { &all } else { &all[..6] },
    );
}

/// `api/v0/logs` answers: every file the live node listed is listed, in the same category.
pub fn log_lists(live: &Value, ours: &Value, out: &mut Vec<String>) {
    let Some(categories) = live["data"]["result"].as_object() else {
        out.push(format!("log list: live answer has no result: {live}"));
        return;
    };
    for (category, files) in categories {
        // Empty directories cannot exist in object storage; compare files.
        for file in files
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| !f.as_str().is_some_and(|f| f.ends_with('/')))
        {
            let listed = ours["data"]["result"][category]
                .as_array()
                .is_some_and(|list| list.contains(file));
            if !listed {
                out.push(format!("log list: {category} {file} missing in ours"));
            }
        }
    }
}

/// `nodes?view=summary` answers.
pub fn nodes(live: &Value, ours: &Value, fields: &[&str], out: &mut Vec<String>) {
    let rows = |v: &Value| -> BTreeMap<String, Value> {
        v["data"]["summary"]
            .as_array()
            .unwrap_or(&vec![])
            .iter()
            .map(|n| {
                (
                    n["raylet"]["nodeId"].as_str().unwrap_or("").to_string(),
                    n.clone(),
                )
            })
            .collect()
    };
    compare_rows(out, "node", rows(live), rows(ours), fields);
}

/// `events` answers: the same event ids, messages and timestamps.
pub fn events(live: &Value, ours: &Value, out: &mut Vec<String>) {
    let rows = |v: &Value| -> BTreeMap<String, Value> {
        v["data"]["events"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .flat_map(|list| list.as_array().cloned().unwrap_or_default())
            .map(|e| (e["eventId"].as_str().unwrap_or("").to_string(), e))
            .collect()
    };
    compare_rows(
        out,
        "event",
        rows(live),
        rows(ours),
        &[
            "sourceType",
            "message",
            "timestamp",
            "severity",
            "customFields",
        ],
    );
}

/// `api/v0/tasks/timeline` answers: the same spans (category, name, task, start, duration)
/// and the same process and thread names.
pub fn timeline(live: &Value, ours: &Value, out: &mut Vec<String>) {
    let spans = |v: &Value| -> Vec<String> {
        let mut spans: Vec<String> = v
            .as_array()
            .unwrap_or(&vec![])
            .iter()
            .map(|e| match e["ph"].as_str() {
                Some("X") => format!(
                    "{} {} {} {} {}",
                    e["cat"], e["name"], e["args"]["task_id"], e["ts"], e["dur"]
                ),
                _ => format!("{} {}", e["name"], e["args"]["name"]),
            })
            .collect();
        spans.sort();
        spans
    };
    let (live, ours) = (spans(live), spans(ours));
    if live != ours {
        out.push(format!("timeline: live {live:?}\nvs ours {ours:?}"));
    }
}

/// Whether `ours` has the JSON shape of `live`: the same keys of objects, the same type of
/// every value, and the same length of number tuples (`mem`, `cpus`, `loadAvg`…), which
/// Ray's pages index into. A `null` in `live` accepts anything. Paths in `free` (such as
/// labels) only need the same type; `disk` needs only the `/` entry Ray's Cluster page reads.
pub fn shape(live: &Value, ours: &Value, path: &str, free: &[&str], out: &mut Vec<String>) {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if live.is_null() {
        return;
    }
    if kind(live) != kind(ours) {
        out.push(format!("{path}: live {} vs ours {ours}", kind(live)));
        return;
    }
    if free.contains(&path) {
        return;
    }
    match (live, ours) {
        (Value::Object(l), Value::Object(_)) => {
            for (key, value) in l {
                if path.ends_with("disk") && key != "/" {
                    continue;
                }
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match ours.get(key) {
                    Some(o) => shape(value, o, &child, free, out),
                    None => out.push(format!("{child}: missing in ours")),
                }
            }
        }
        (Value::Array(l), Value::Array(o)) => {
            let tuple = !l.is_empty() && l.iter().all(|v| v.is_number() || v.is_array());
            if tuple {
                if l.len() != o.len() {
                    out.push(format!("{path}: live {} items vs ours {ours}", l.len()));
                    return;
                }
                for (i, (lv, ov)) in l.iter().zip(o).enumerate() {
                    shape(lv, ov, &format!("{path}[{i}]"), free, out);
                }
            }
        }
        _ => {}
    }
}
