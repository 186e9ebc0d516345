//! The server's own behaviour over real HTTP on in-memory storage: the session index (filters,
//! states including `lost`, cursor pagination, `latest`), errors (unknown sessions, path
//! traversal, missing files), logs (tails, ranges, gzip, downloads), ETags, compression,
//! health, readiness and metrics.
//!
//! Over 600 lines: one suite of the server's HTTP behaviour, sharing its fixtures and started
//! servers.

mod support;

use std::io::Write;
use std::path::PathBuf;

use chrono::{Duration, Utc};
use ray_history_storage::layout::{ClusterRef, MetaRef, NodeId, SessionName};
use ray_history_storage::metadata::{
    LAYOUT_VERSION, NodeMetadata, NodeType, SessionMetadata, SessionState,
};
use ray_history_storage::{Storage, StorageConfig};

const NODE: &str = "3a9b4df81080f082d6c30fd89c7aae18fdbdc0df8d6543f09ff1df38";
const RECORDED: &str = "session_2026-11-21_05-21-56_756984_14093";

fn meta(
    ns: &str,
    cluster: &str,
    session: &str,
    age_min: i64,
    state: SessionState,
    heartbeat_min: i64,
) -> SessionMetadata {
    let now = Utc::now();
    SessionMetadata {
        layout_version: LAYOUT_VERSION,
        cluster_name: cluster.parse().unwrap(),
        cluster_id: "local".parse().unwrap(),
        namespace: ns.parse().unwrap(),
        session_name: session.parse().unwrap(),
        owner: None,
        ray_version: Some("2.60.0".into()),
        head_node_id: None,
        start_time: now - Duration::minutes(age_min),
        last_heartbeat: now - Duration::minutes(heartbeat_min),
        end_time: (state == SessionState::Finished).then(|| now - Duration::minutes(age_min - 1)),
        state,
        collector_version: "test".into(),
    }
}

async fn put_meta(storage: &Storage, doc: &SessionMetadata) {
    let meta_ref = MetaRef::new(doc.namespace.as_str(), doc.cluster_name.as_str()).unwrap();
    storage
        .put(
            &meta_ref.metadata(&doc.session_name),
            serde_json::to_vec(doc).unwrap().into(),
        )
        .await
        .unwrap();
}

async fn put_log(storage: &Storage, relative: &str, data: Vec<u8>) {
    let cluster = ClusterRef::new(support::CLUSTER, support::CLUSTER_ID).unwrap();
    let key = cluster
        .log_file(
            &SessionName::new(RECORDED).unwrap(),
            &NodeId::new(NODE).unwrap(),
            relative,
        )
        .unwrap();
    storage.put(&key, data.into()).await.unwrap();
}

async fn server() -> String {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/live-export/session");
    let recorded = support::upload_session(&storage, &data, RECORDED, NODE).await;
    // Other sessions: a running one, a lost one (stale heartbeat), one in another namespace.
    let c = support::CLUSTER;
    put_meta(
        &storage,
        &meta(
            "default",
            c,
            "session_b_running",
            10,
            SessionState::Running,
            0,
        ),
    )
    .await;
    put_meta(
        &storage,
        &meta(
            "default",
            c,
            "session_c_lost",
            20,
            SessionState::Running,
            15,
        ),
    )
    .await;
    put_meta(
        &storage,
        &meta(
            "team-a",
            "other",
            "session_d",
            30,
            SessionState::Finished,
            29,
        ),
    )
    .await;
    assert_eq!(recorded.state, SessionState::Finished);
    let lines: String = (0..5000).map(|i| format!("line {i}\n")).collect();
    put_log(&storage, "big.log", lines.clone().into_bytes()).await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(lines.as_bytes()).unwrap();
    put_log(&storage, "old/big.log.gz", gz.finish().unwrap()).await;
    support::start_server(storage).await
}

fn prefix(base: &str) -> String {
    format!(
        "{base}/sessions/{}/{}/{RECORDED}",
        support::NAMESPACE,
        support::CLUSTER
    )
}

#[tokio::test]
async fn session_index_filters_states_and_pages() {
    let base = server().await;
    let (status, all) = support::get_json(&format!("{base}/api/sessions")).await;
    assert_eq!(status, 200);
    assert_eq!(all["total"], 4);
    let names: Vec<&str> = all["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [RECORDED, "session_b_running", "session_c_lost", "session_d"],
        "newest first"
    );
    let states: Vec<&str> = all["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["finished", "running", "lost", "finished"]);
    assert_eq!(all["sessions"][0]["clusterId"], "local");
    assert_eq!(all["nextCursor"], serde_json::Value::Null);

    let (_, lost) = support::get_json(&format!("{base}/api/sessions?state=lost")).await;
    assert_eq!(lost["total"], 1);
    assert_eq!(lost["sessions"][0]["sessionName"], "session_c_lost");
    let (_, ns) = support::get_json(&format!("{base}/api/sessions?namespace=team-a")).await;
    assert_eq!(ns["sessions"][0]["clusterName"], "other");
    let (_, q) = support::get_json(&format!("{base}/api/sessions?q=RUNNING")).await;
    assert_eq!(q["total"], 1);
    let since = (Utc::now() - Duration::minutes(12)).to_rfc3339();
    let (_, recent) =
        support::get_json(&format!("{base}/api/sessions?since={}", urlencode(&since))).await;
    assert_eq!(recent["total"], 3, "{recent}");
    let (status, bad) = support::get_json(&format!("{base}/api/sessions?state=zombie")).await;
    assert_eq!(status, 400);
    assert_eq!(bad["result"], false);

    // Cursor pagination visits every session once, in order.
    let mut seen = Vec::new();
    let mut url = format!("{base}/api/sessions?limit=1");
    loop {
        let (_, page) = support::get_json(&url).await;
        seen.push(
            page["sessions"][0]["sessionName"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        match page["nextCursor"].as_str() {
            Some(cursor) => url = format!("{base}/api/sessions?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, names);

    let (status, detail) = support::get_json(&format!(
        "{base}/api/sessions/default/{}/latest",
        support::CLUSTER
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(detail["session"]["sessionName"], RECORDED);
    assert_eq!(detail["counts"]["tasks"], 12);
    // Two failed while Ray ran; the driver task of job 02, never finished in the events, is
    // failed at the session's end (inferred, as Ray's GCS fails the tasks of an ended job).
    assert_eq!(detail["counts"]["failedTasks"], 3);
    assert_eq!(detail["counts"]["actors"], 3);
    assert_eq!(detail["counts"]["jobs"], 3);
    assert_eq!(detail["nodes"][0]["nodeId"], NODE);
    let (status, missing) =
        support::get_json(&format!("{base}/api/sessions/default/nope/session_x")).await;
    assert_eq!(status, 404);
    assert_eq!(missing["result"], false);
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn ray_api_errors_look_like_ray() {
    let base = server().await;
    let p = prefix(&base);
    let (status, body) = support::get_json(&format!(
        "{p}/api/v0/tasks?filter_keys=bogus&filter_predicates=%3D&filter_values=x"
    ))
    .await;
    assert_eq!(status, 400);
    assert!(
        body["msg"]
            .as_str()
            .unwrap()
            .starts_with("The given filter column bogus is not supported")
    );
    let (status, body) = support::get_json(&format!("{p}/api/jobs/nope")).await;
    assert_eq!(
        (status, body.as_str()),
        (404, Some("Job nope does not exist"))
    );
    let (status, body) =
        support::get_json(&format!("{p}/logical/actors/00000000000000000000000000ff")).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["detail"], serde_json::Value::Null);
    let (status, body) = support::get_json(&format!("{p}/api/v0/logs")).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["msg"],
        "Both node id and node ip are not provided. Please provide at least one of them."
    );
    let (status, _) = support::get_json(&format!("{p}/api/v0/platform_events")).await;
    assert_eq!(status, 404, "the dashboard reads 404 as: feature off");
    let (status, body) = support::get_json(&format!("{p}/api/data/datasets/01000000")).await;
    assert_eq!(
        (status, body["datasets"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (status, _) =
        support::get_json(&format!("{base}/sessions/default/nope/latest/api/v0/tasks")).await;
    assert_eq!(status, 404);
    // Filters by state and job use the indexes and agree with the recorded live answers.
    let (_, failed) = support::get_json(&format!(
        "{p}/api/v0/tasks?filter_keys=state&filter_predicates=%3D&filter_values=FAILED"
    ))
    .await;
    assert_eq!(failed["data"]["result"]["total"], 2);
    let (_, not_square) = support::get_json(&format!(
        "{p}/api/v0/tasks?filter_keys=name&filter_predicates=!%3D&filter_values=square"
    ))
    .await;
    assert_eq!(not_square["data"]["result"]["total"], 8);
    let (_, with_driver) =
        support::get_json(&format!("{p}/api/v0/tasks?exclude_driver=false")).await;
    assert_eq!(with_driver["data"]["result"]["total"], 15);
    let (_, two) = support::get_json(&format!("{p}/api/v0/tasks?limit=2")).await;
    assert_eq!(two["data"]["result"]["total"], 12);
    assert_eq!(two["data"]["result"]["result"].as_array().unwrap().len(), 2);
    let (_, summary) = support::get_json(&format!("{p}/api/v0/tasks/summarize")).await;
    let cluster = &summary["data"]["result"]["result"]["node_id_to_summary"]["cluster"];
    assert_eq!(cluster["total_tasks"], 8);
    assert_eq!(cluster["summary"]["square"]["state_counts"]["FINISHED"], 4);
    let (status, timeline) =
        support::get_json(&format!("{p}/api/v0/tasks/timeline?job_id=01000000")).await;
    assert_eq!(status, 200);
    assert!(
        timeline
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["cat"] == "task:execute")
    );
}

#[tokio::test]
async fn logs_tails_ranges_gzip_and_traversal() {
    let base = server().await;
    let p = prefix(&base);
    let client = reqwest::Client::new();
    let file = |q: &str| format!("{p}/api/v0/logs/file?node_id={NODE}&{q}");
    let tail = client
        .get(file("filename=big.log&lines=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    assert_eq!(
        tail.headers()["content-disposition"],
        "attachment; filename=\"file.txt\""
    );
    assert_eq!(
        tail.text().await.unwrap(),
        "line 4997\nline 4998\nline 4999\n"
    );
    let all = client
        .get(file("filename=big.log&lines=-1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(all.lines().count(), 5000);
    let gz = client
        .get(file("filename=old/big.log.gz&lines=2"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(gz, "line 4998\nline 4999\n");
    let ranged = client
        .get(file("filename=big.log&download=1"))
        .header("Range", "bytes=7-13")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes 7-13/{}", all.len())
    );
    assert_eq!(
        ranged.headers()["content-disposition"],
        "attachment; filename=\"big.log\""
    );
    assert_eq!(ranged.text().await.unwrap(), "line 1\n");
    for bad in ["../../etc/passwd", "/etc/passwd", "a//b", "events/../../x"] {
        let (status, body) =
            support::get_json(&file(&format!("filename={}&lines=5", urlencode(bad)))).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["result"], false, "{bad}");
    }
    let (status, body) = support::get_json(&file("filename=nope.log")).await;
    assert_eq!(status, 404);
    assert!(body["msg"].as_str().unwrap().contains("nope.log"));
    let (_, list) = support::get_json(&format!("{p}/api/v0/logs?node_id={NODE}&glob=*.log")).await;
    let internal = list["data"]["result"]["internal"].as_array().unwrap();
    assert!(internal.contains(&"big.log".into()));
    assert!(
        !internal.iter().any(|f| f == "events/"),
        "glob applies to dirs too"
    );
    let (_, list) = support::get_json(&format!("{p}/api/v0/logs?node_ip=127.0.0.1")).await;
    assert!(
        list["data"]["result"]["internal"]
            .as_array()
            .unwrap()
            .contains(&"events/".into())
    );
}

#[tokio::test]
async fn etags_compression_health_and_metrics() {
    let base = server().await;
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let url = format!("{}/logical/actors", prefix(&base));
    let first = client.get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].clone();
    let again = client
        .get(&url)
        .header("If-None-Match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let zipped = client
        .get(&url)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ray_history_server_http_requests_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ray_history_server_session_cache_misses_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn index_and_running_sessions_refresh_in_the_background() {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let base = support::start_server(storage.clone()).await;
    let (_, empty) = support::get_json(&format!("{base}/api/sessions")).await;
    assert_eq!(empty["total"], 0);
    // A running session appears without a restart (refresh interval is 1s in tests).
    let session = "session_live";
    put_meta(
        &storage,
        &meta(
            "default",
            support::CLUSTER,
            session,
            1,
            SessionState::Running,
            0,
        ),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (_, listed) = support::get_json(&format!("{base}/api/sessions?state=running")).await;
    assert_eq!(listed["total"], 1, "{listed}");
    let tasks_url = format!(
        "{base}/sessions/default/{}/{session}/api/v0/tasks",
        support::CLUSTER
    );
    let (_, before) = support::get_json(&tasks_url).await;
    assert_eq!(before["data"]["result"]["total"], 0);
    // Events that arrive later are picked up once the cached copy is older than the interval.
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/live-export/session/logs/export_events/event_EXPORT_TASK_14477.log");
    let cluster = ClusterRef::new(support::CLUSTER, support::CLUSTER_ID).unwrap();
    let key = cluster
        .log_file(
            &SessionName::new(session).unwrap(),
            &NodeId::new(NODE).unwrap(),
            "export_events/event_EXPORT_TASK_14477.log",
        )
        .unwrap();
    storage
        .put(&key, std::fs::read(fixture).unwrap().into())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    // The copy loaded before answers at once while the fresh one loads behind it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, after) = support::get_json(&tasks_url).await;
        if after["data"]["result"]["total"].as_u64().unwrap() > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reloaded: {after}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

const DEAD_SESSION: &str = "session_2026-11-20_10-00-00_000000_1";
const DEAD_NODE: &str = "0b7c5d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e";

/// A server with `--ray-dashboard-dir` over the recorded session and a dead cluster's session
/// whose only node (known from `metadir/`, ended) has stored logs.
async fn dashboard_server() -> (String, tempfile::TempDir) {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/live-export/session");
    support::upload_session(&storage, &data, RECORDED, NODE).await;
    let mut doc = meta(
        support::NAMESPACE,
        support::CLUSTER,
        DEAD_SESSION,
        60,
        SessionState::Finished,
        59,
    );
    doc.head_node_id = Some(NodeId::new(DEAD_NODE).unwrap());
    put_meta(&storage, &doc).await;
    let meta_ref = MetaRef::new(support::NAMESPACE, support::CLUSTER).unwrap();
    let node = NodeMetadata {
        node_id: NodeId::new(DEAD_NODE).unwrap(),
        node_type: NodeType::Head,
        pod_name: Some("head-pod".into()),
        node_ip: Some("10.0.0.7".into()),
        start_time: doc.start_time,
        last_heartbeat: doc.last_heartbeat,
        end_time: doc.end_time,
    };
    storage
        .put(
            &meta_ref.node(&doc.session_name, &node.node_id),
            serde_json::to_vec(&node).unwrap().into(),
        )
        .await
        .unwrap();
    let cluster = ClusterRef::new(support::CLUSTER, support::CLUSTER_ID).unwrap();
    for file in ["worker-ab-01000000-7.out", "events/event_GCS.log"] {
        let key = cluster
            .log_file(&doc.session_name, &node.node_id, file)
            .unwrap();
        storage.put(&key, b"hello\n".to_vec().into()).await.unwrap();
    }
    let build = tempfile::tempdir().unwrap();
    std::fs::write(build.path().join("index.html"), "<html></html>").unwrap();
    let mut args = support::serve_args();
    args.ray_dashboard_dir = Some(build.path().to_path_buf());
    (support::serve(storage, args).await, build)
}

async fn get_with_referer(url: &str, referer: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(url)
        .header("referer", referer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn rays_dashboard_pages_see_dead_nodes_with_logs_as_alive() {
    let (base, _build) = dashboard_server().await;
    let page = format!(
        "{base}/sessions/{}/{}/{DEAD_SESSION}/",
        support::NAMESPACE,
        support::CLUSTER
    );
    let nodes = format!("{page}nodes?view=summary");
    let (status, plain) = support::get_json(&nodes).await;
    assert_eq!(status, 200);
    let raylet = &plain["data"]["summary"][0]["raylet"];
    assert_eq!(raylet["nodeId"], DEAD_NODE);
    assert_eq!(
        raylet["state"], "DEAD",
        "API clients get the recorded state"
    );
    assert_eq!(
        plain["data"]["summary"][0]["mem"].as_array().unwrap().len(),
        4
    );

    let from_ray = get_with_referer(&nodes, &format!("{page}#/logs")).await;
    let raylet = &from_ray["data"]["summary"][0]["raylet"];
    assert_eq!(
        raylet["state"], "ALIVE",
        "Ray's Logs page lists only ALIVE nodes"
    );
    assert!(
        raylet["stateMessage"]
            .as_str()
            .is_some_and(|m| m.starts_with("DEAD in the stored session")),
        "{raylet}"
    );
    let detail = get_with_referer(&format!("{page}nodes/{DEAD_NODE}"), &page).await;
    assert_eq!(detail["data"]["detail"]["raylet"]["state"], "ALIVE");
    let hosts = get_with_referer(&format!("{page}nodes?view=hostNameList"), &page).await;
    assert_eq!(
        hosts["data"]["hostNameList"],
        serde_json::json!(["head-pod"])
    );

    // Our own UI, or Ray's page of another session, gets the recorded state.
    for referer in [
        format!("{base}/"),
        format!("{base}/#/s/default/{}/{DEAD_SESSION}", support::CLUSTER),
        format!(
            "{base}/sessions/{}/{}/{RECORDED}/",
            support::NAMESPACE,
            support::CLUSTER
        ),
    ] {
        let answer = get_with_referer(&nodes, &referer).await;
        assert_eq!(
            answer["data"]["summary"][0]["raylet"]["state"], "DEAD",
            "referer {referer}"
        );
    }
}

#[tokio::test]
async fn log_globs_list_sub_folders_like_ray() {
    let (base, _build) = dashboard_server().await;
    let page = format!(
        "{base}/sessions/{}/{}/{DEAD_SESSION}",
        support::NAMESPACE,
        support::CLUSTER
    );
    let list = |glob: &str| format!("{page}/api/v0/logs?node_id={DEAD_NODE}&glob={glob}");
    let (status, top) = support::get_json(&format!("{page}/api/v0/logs?node_id={DEAD_NODE}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        top["data"]["result"],
        serde_json::json!({"internal": ["events/"], "worker_out": ["worker-ab-01000000-7.out"]})
    );
    let (status, events) = support::get_json(&list("events/*")).await;
    assert_eq!(status, 200);
    assert_eq!(
        events["data"]["result"],
        serde_json::json!({"internal": ["events/event_GCS.log"]})
    );
    let (_, searched) = support::get_json(&list("events/*GCS*")).await;
    assert_eq!(
        searched["data"]["result"]["internal"][0],
        "events/event_GCS.log"
    );
    let (_, none) = support::get_json(&list("events/*nothing*")).await;
    assert_eq!(none["data"]["result"], serde_json::json!({}));
}

#[tokio::test]
async fn dashboard_calls_answer_like_a_live_head() {
    let (base, _build) = dashboard_server().await;
    let prefix = prefix(&base);
    let live = |name: &str| -> serde_json::Value {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/live-export/answers")
            .join(format!("{name}.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let (status, auth) = support::get_json(&format!("{prefix}/api/authentication_mode")).await;
    assert_eq!(status, 200);
    assert_eq!(auth, serde_json::json!({"authentication_mode": "disabled"}));
    let (status, profiling) = support::get_json(&format!("{prefix}/api/profiling_enabled")).await;
    assert_eq!(status, 200);
    assert_eq!(profiling["result"], true);
    assert_eq!(profiling["data"]["profilingEnabled"], false);
    assert_eq!(profiling["data"]["profilingDefaults"]["cpuDuration"], 5);
    assert_eq!(
        profiling["data"]["profilingDefaults"]["memoryFormat"],
        "flamegraph"
    );
    let (status, redaction) =
        support::get_json(&format!("{prefix}/api/v0/runtime_env_redaction")).await;
    assert_eq!(status, 200);
    assert_eq!(
        redaction,
        serde_json::json!({"result": true, "msg": "", "data": {"redactionEnabled": true}})
    );
    let (status, usage) = support::get_json(&format!("{prefix}/usage_stats_enabled")).await;
    assert_eq!(status, 200);
    assert_eq!(usage, live("usage"));
    let (status, groups) = support::get_json(&format!(
        "{prefix}/api/v0/placement_groups?detail=1&limit=10000"
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(groups, live("placement_groups"));
    let (status, metadata) = support::get_json(&format!("{prefix}/api/v0/cluster_metadata")).await;
    assert_eq!(status, 200);
    assert_eq!(
        metadata["data"]["rayVersion"],
        live("cluster_metadata")["data"]["rayVersion"]
    );
    let (status, events) = support::get_json(&format!("{prefix}/events?job_id=01000000")).await;
    assert_eq!(status, 200);
    assert_eq!(events["msg"], live("events_job")["msg"]);
    assert_eq!(events["data"]["jobId"], "01000000");
    assert!(events["data"]["events"].is_array());
    let (status, lineage) = support::get_json(&format!(
        "{prefix}/api/v0/tasks/summarize?filter_keys=job_id&filter_predicates=%3D&filter_values=01000000&summary_by=lineage"
    ))
    .await;
    assert_eq!(status, 200);
    let result = &lineage["data"]["result"];
    assert_eq!(
        result["total"],
        live("task_summarize_job")["data"]["result"]["total"]
    );
    let groups = result["result"]["node_id_to_summary"]["cluster"]["summary"]
        .as_array()
        .expect("a lineage summary is a list");
    assert!(groups.iter().any(|g| g["name"] == "boom"), "{lineage}");
}

#[tokio::test]
async fn a_bad_ray_dashboard_dir_fails_at_start_with_one_line() {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let empty = tempfile::tempdir().unwrap();
    let mut args = support::serve_args();
    args.ray_dashboard_dir = Some(empty.path().to_path_buf());
    let Err(err) = ray_history_server::server::state(storage, &args).await else {
        panic!("a folder without index.html was accepted");
    };
    assert!(err.to_string().starts_with("--ray-dashboard-dir "), "{err}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ray-history-server"))
        .args(["--storage", "memory", "--listen", "127.0.0.1:0"])
        .arg("--ray-dashboard-dir")
        .arg(empty.path())
        .env_remove("RAY_HISTORY_CONFIG")
        // Logs share stderr with the error; only the error is checked here.
        .env("RUST_LOG", "off")
        // Asked-for backtraces add lines by design.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--ray-dashboard-dir"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_take_every_request_slot() {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/live-export/session");
    support::upload_session(&storage, &data, RECORDED, NODE).await;
    // Large enough that an unread download stays in flight (socket buffers fill).
    put_log(&storage, "big.log", vec![b'x'; 64 << 20]).await;
    let mut args = support::serve_args();
    args.max_requests_per_client = 2;
    let base = support::serve(storage, args).await;
    let url = format!(
        "{base}/sessions/{}/{}/{RECORDED}/api/v0/logs/file?node_id={NODE}&filename=big.log",
        support::NAMESPACE,
        support::CLUSTER
    );
    let client = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let first = client([127, 0, 0, 1]);
    // Two downloads in flight, their bodies not read: the client's share is used up.
    let held: Vec<_> = futures::future::join_all(
        (0..2).map(|_| first.get(&url).header("Range", "bytes=0-").send()),
    )
    .await
    .into_iter()
    .map(|r| r.unwrap())
    .collect();
    assert!(held.iter().all(|r| r.status() == 206));
    let refused = first
        .get(format!("{base}/api/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["result"], false, "{body}");
    // Another client is not held up, and probes are never limited.
    let other = client([127, 0, 0, 2]);
    let listed = other
        .get(format!("{base}/api/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let health = first.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // Once the downloads end, the first client's slots come back.
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let again = first
            .get(format!("{base}/api/sessions"))
            .send()
            .await
            .unwrap();
        if again.status() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slots never returned");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
