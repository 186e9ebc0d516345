//! The history server's answers for a session recorded from a live Ray 2.60 head (export
//! events on; `tests/data/live-export`: the dashboard's answers and the session's event files)
//! match what that dashboard answered: ids, states, names, error types, timestamps.

mod support;

use std::path::PathBuf;

use ray_history_storage::{Storage, StorageConfig};
use serde_json::Value;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/live-export")
}

fn answer(name: &str) -> Value {
    let text =
        std::fs::read_to_string(data().join("answers").join(format!("{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

fn ids() -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(data().join("ids.txt"))
        .unwrap()
        .split_whitespace()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The live answers were taken while the cluster ran; the stored session is finished, so what
/// was still alive is shown as ended and marked inferred. Turns such rows back into what the
/// live head said, and counts them.
fn undo_inferred(value: &mut Value) -> usize {
    let mut undone = 0;
    match value {
        Value::Object(map) => {
            for key in ["state_message", "stateMessage"] {
                let inferred = map
                    .get(key)
                    .and_then(Value::as_str)
                    .is_some_and(|m| m.contains(ray_history_server::model::INFERRED_AT_END));
                if inferred && map.get("state").and_then(Value::as_str) == Some("DEAD") {
                    map.insert("state".into(), "ALIVE".into());
                    map.insert(key.into(), Value::Null);
                    undone += 1;
                }
            }
            for child in map.values_mut() {
                undone += undo_inferred(child);
            }
        }
        Value::Array(items) => {
            for child in items {
                undone += undo_inferred(child);
            }
        }
        _ => {}
    }
    undone
}

#[tokio::test]
async fn recorded_export_session_matches_live_dashboard() {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let ids = ids();
    let session = "session_2026-11-21_05-21-56_756984_14093";
    support::upload_session(&storage, &data().join("session"), session, &ids["NODE"]).await;
    let base = support::start_server(storage).await;
    let prefix = format!(
        "{base}/sessions/{}/{}/{session}",
        support::NAMESPACE,
        support::CLUSTER
    );
    let mut diffs = Vec::new();

    let (status, tasks) =
        support::get_json(&format!("{prefix}/api/v0/tasks?limit=1000&detail=1")).await;
    assert_eq!(status, 200);
    support::compare::tasks(&answer("tasks_detail"), &tasks, &mut diffs);
    let (_, actors) = support::get_json(&format!("{prefix}/logical/actors")).await;
    support::compare::actors(&answer("actors"), &actors, &mut diffs);
    // Export actor events carry second-resolution timestamps only.
    support::compare::actor_times(&answer("actors"), &actors, 1000, &mut diffs);
    let (_, jobs) = support::get_json(&format!("{prefix}/api/jobs/")).await;
    support::compare::jobs(&answer("jobs"), &jobs, true, &mut diffs);
    let (_, mut nodes) = support::get_json(&format!("{prefix}/nodes?view=summary")).await;
    assert_eq!(
        undo_inferred(&mut nodes),
        1,
        "the head is inferred dead: {nodes}"
    );
    support::compare::nodes(
        &answer("nodes_summary"),
        &nodes,
        &[
            "ip",
            "raylet.nodeId",
            "raylet.state",
            "raylet.isHeadNode",
            "raylet.startTimeMs",
            "raylet.nodeManagerAddress",
            "raylet.resourcesTotal",
            "raylet.labels",
        ],
        &mut diffs,
    );
    // Every field Ray's Cluster page reads has the live type (it crashed on `"mem": []`).
    let live_nodes = answer("nodes_summary");
    support::compare::shape(
        &live_nodes["data"]["summary"][0],
        &nodes["data"]["summary"][0],
        "",
        &[
            "raylet.labels",
            "raylet.resourcesTotal",
            "raylet.coreWorkersStats",
        ],
        &mut diffs,
    );
    let mut broken = nodes["data"]["summary"][0].clone();
    broken["mem"] = serde_json::json!([]);
    broken["raylet"]["objectStoreUsedMemory"] = "0".into();
    let mut caught = Vec::new();
    support::compare::shape(
        &live_nodes["data"]["summary"][0],
        &broken,
        "",
        &[],
        &mut caught,
    );
    assert_eq!(caught.len(), 2, "the shape check misses: {caught:?}");
    let logical = &nodes["data"]["nodeLogicalResources"][&ids["NODE"]];
    assert!(
        logical.as_str().is_some_and(|t| t.contains("1.0 CPU")),
        "nodeLogicalResources: {logical}"
    );
    let (_, events) = support::get_json(&format!("{prefix}/events")).await;
    support::compare::events(&answer("events"), &events, &mut diffs);
    let (_, timeline) = support::get_json(&format!("{prefix}/api/v0/tasks/timeline")).await;
    support::compare::timeline(&answer("timeline"), &timeline, &mut diffs);
    for name in ["tasks_summarize", "tasks_summarize_lineage"] {
        let query = if name.ends_with("lineage") {
            "?summary_by=lineage"
        } else {
            ""
        };
        let (_, ours) = support::get_json(&format!("{prefix}/api/v0/tasks/summarize{query}")).await;
        if ours["data"] != answer(name)["data"] {
            diffs.push(format!(
                "{name}: live {}\nvs ours {}",
                answer(name)["data"],
                ours["data"]
            ));
        }
    }
    // Ray's State API lists (`ray list actors|nodes|jobs`): same rows, same columns, same values.
    for (name, path, id, fields) in [
        (
            "actors_state",
            "api/v0/actors?detail=1&limit=100",
            "actor_id",
            &[
                "class_name",
                "state",
                "job_id",
                "name",
                "node_id",
                "pid",
                "ray_namespace",
                "is_detached",
                "required_resources",
                "num_restarts",
                "repr_name",
                "placement_group_id",
                "label_selector",
                "serialized_runtime_env",
                "death_cause.actor_died_error_context.error_message",
            ][..],
        ),
        (
            "nodes_state",
            "api/v0/nodes",
            "node_id",
            &[
                "node_ip",
                "is_head_node",
                "state",
                "state_message",
                "node_name",
                "resources_total",
                "labels",
            ][..],
        ),
        (
            "jobs_state",
            "api/v0/jobs",
            "submission_id",
            &[
                "job_id",
                "entrypoint",
                "type",
                "status",
                "message",
                "error_type",
                "driver_info",
            ][..],
        ),
    ] {
        let (status, mut ours) = support::get_json(&format!("{prefix}/{path}")).await;
        assert_eq!(status, 200, "{path}: {ours}");
        undo_inferred(&mut ours);
        let live = answer(name);
        let live_rows = live["data"]["result"]["result"].as_array().unwrap();
        let our_rows = ours["data"]["result"]["result"].as_array().unwrap();
        if live_rows.len() != our_rows.len() {
            diffs.push(format!(
                "{name}: {} live rows, {} ours",
                live_rows.len(),
                our_rows.len()
            ));
        }
        for live_row in live_rows {
            let live_keys: Vec<&String> = live_row.as_object().unwrap().keys().collect();
            let Some(our_row) = our_rows.iter().find(|r| r[id] == live_row[id]) else {
                diffs.push(format!("{name}: no row {id}={}", live_row[id]));
                continue;
            };
            let our_keys: Vec<&String> = our_row.as_object().unwrap().keys().collect();
            if live_keys != our_keys {
                diffs.push(format!("{name}: columns {live_keys:?} vs {our_keys:?}"));
            }
            for field in fields {
                let pointer = format!("/{}", field.replace('.', "/"));
                if live_row.pointer(&pointer) != our_row.pointer(&pointer) {
                    diffs.push(format!(
                        "{name} {}: {field} live {:?} ours {:?}",
                        live_row[id],
                        live_row.pointer(&pointer),
                        our_row.pointer(&pointer)
                    ));
                }
            }
        }
    }
    // `ray summary actors`, byte for byte (classes in Ray's order).
    let body = reqwest::get(format!("{prefix}/api/v0/actors/summarize"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let live_text = std::fs::read_to_string(data().join("answers/actor_summarize.json")).unwrap();
    let compact = |t: &str| {
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(t).unwrap()).unwrap()
    };
    let classes_in_order = body
        .find("JobSupervisor")
        .zip(body.find("Counter"))
        .is_some_and(|(j, c)| j < c);
    if compact(&body) != compact(&live_text) || !classes_in_order {
        diffs.push(format!(
            "actors/summarize: live {live_text}\nvs ours {body}"
        ));
    }
    // Filters and limits as Ray applies them.
    let (_, dead) = support::get_json(&format!(
        "{prefix}/api/v0/actors?filter_keys=class_name&filter_predicates=%3D&filter_values=Counter"
    ))
    .await;
    assert_eq!(dead["data"]["result"]["num_filtered"], 1, "{dead}");
    assert_eq!(dead["data"]["result"]["total"], 3, "{dead}");
    let (_, heads) = support::get_json(&format!(
        "{prefix}/api/v0/nodes?filter_keys=is_head_node&filter_predicates=%3D&filter_values=True"
    ))
    .await;
    assert_eq!(heads["data"]["result"]["num_filtered"], 1, "{heads}");
    let (_, two) = support::get_json(&format!("{prefix}/api/v0/jobs?limit=2")).await;
    assert_eq!(two["data"]["result"]["result"].as_array().unwrap().len(), 2);
    // Drivers' parent is Ray's nil task id, never null (Ray's CLI refuses null).
    let (_, with_drivers) = support::get_json(&format!(
        "{prefix}/api/v0/tasks?exclude_driver=false&limit=1000"
    ))
    .await;
    for live_task in answer("tasks_excl_driver")["data"]["result"]["result"]
        .as_array()
        .unwrap()
    {
        let ours = with_drivers["data"]["result"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| {
                t["task_id"] == live_task["task_id"]
                    && t["attempt_number"] == live_task["attempt_number"]
            });
        match ours {
            Some(t) if t["parent_task_id"] == live_task["parent_task_id"] => {}
            other => diffs.push(format!(
                "task {} parent: live {} ours {:?}",
                live_task["task_id"],
                live_task["parent_task_id"],
                other.map(|t| &t["parent_task_id"])
            )),
        }
    }

    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );

    // Missing things get the status codes the live dashboard gave.
    let node = &ids["NODE"];
    for (name, path) in [
        ("job_missing", "api/jobs/nope".to_string()),
        (
            "tasks_badkey",
            "api/v0/tasks?filter_keys=bogus&filter_predicates=%3D&filter_values=x".into(),
        ),
        ("logs_nonode", "api/v0/logs".into()),
        (
            "actor_missing",
            "logical/actors/00000000000000000000000000ff".into(),
        ),
        (
            "node_missing",
            "nodes/0000000000000000000000000000000000000000000000000000abcd".into(),
        ),
        ("serve", "api/serve/applications/".into()),
        (
            "logs_glob",
            format!("api/v0/logs?node_id={node}&glob=*.err"),
        ),
    ] {
        let live =
            std::fs::read_to_string(data().join("answers").join(format!("{name}.status"))).unwrap();
        let (status, body) = support::get_json(&format!("{prefix}/{path}")).await;
        assert!(
            live.contains(&format!(" {status} ")),
            "{name}: live {live:?}, ours {status}"
        );
        if let (Some(l), Some(o)) = (answer(name).get("msg").cloned(), body.get("msg").cloned()) {
            let live_msg = l
                .as_str()
                .unwrap_or_default()
                .split(" Supported")
                .next()
                .unwrap()
                .to_string();
            assert!(
                o.as_str().unwrap_or_default().starts_with(&live_msg),
                "{name}: {l} vs {o}"
            );
        }
    }

    // The comparison does catch a wrong state, a missing row and a wrong timestamp.
    let mut altered = answer("tasks_detail");
    let rows = altered["data"]["result"]["result"].as_array_mut().unwrap();
    rows[0]["state"] = "RUNNING".into();
    rows[1]["end_time_ms"] = 1.0.into();
    rows.pop();
    let mut caught = Vec::new();
    support::compare::tasks(&altered, &tasks, &mut caught);
    assert!(caught.len() >= 3, "{caught:?}");
}
