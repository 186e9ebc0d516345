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
    let (_, nodes) = support::get_json(&format!("{prefix}/nodes?view=summary")).await;
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
