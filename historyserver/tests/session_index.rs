//! The session index: every answer served from a stored index equals the answer parsed from
//! the event files (a session recorded from a live Ray 2.60 head, and a generated 100k-task
//! session under random filters and pages); a damaged, truncated or foreign index is ignored
//! and rebuilt; two servers building at once leave exactly one valid index.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::path::Path;
use proptest::prelude::*;
use ray_history_server::session_index;
use ray_history_storage::layout::{ClusterRef, Key, NodeId, SessionName};
use ray_history_storage::{Storage, StorageConfig};
use ray_history_testkit::{Azurite, generated};

/// The recorded session and its head node id.
fn recorded() -> (PathBuf, &'static str, String) {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/live-export");
    let node = std::fs::read_to_string(data.join("ids.txt"))
        .unwrap()
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("NODE=").map(str::to_string))
        .unwrap();
    (
        data.join("session"),
        "session_2026-11-21_05-21-56_756984_14093",
        node,
    )
}

/// A server that parses events every time (the reference), and one that uses the index.
async fn servers(storage: &Storage, index_dir: &tempfile::TempDir) -> (String, String) {
    let mut plain = support::serve_args();
    plain.session_index = false;
    let mut indexed = support::serve_args();
    indexed.session_index_dir = Some(index_dir.path().to_path_buf());
    (
        support::serve(storage.clone(), plain).await,
        support::serve(storage.clone(), indexed).await,
    )
}

/// Every stored index object of the storage.
async fn index_objects(storage: &Storage) -> Vec<Path> {
    storage
        .list(None)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.location)
        .filter(|p| matches!(Key::parse(p), Ok(Key::SessionIndex { .. })))
        .collect()
}

/// The stored index objects once `done` holds for them, or after 30 s: an index is stored in
/// the background after the first answer.
async fn index_objects_when(storage: &Storage, done: impl Fn(&[Path]) -> bool) -> Vec<Path> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let objects = index_objects(storage).await;
        if done(&objects) || Instant::now() > deadline {
            return objects;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The stored index objects once there is one.
async fn stored_index(storage: &Storage) -> Vec<Path> {
    index_objects_when(storage, |found| !found.is_empty()).await
}

/// Opens the index stored at `key` once it is a valid one, or fails after 30 s.
async fn valid_index(storage: &Storage, key: &Path, fingerprint: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let opened = match storage.get(key).await {
            Ok(bytes) => {
                let local = tempfile::tempfile().unwrap();
                std::io::Write::write_all(&mut &local, &bytes).unwrap();
                session_index::open(local, fingerprint)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match opened {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("no valid index at {key}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Requests whose answers must not depend on where the rows come from.
fn recorded_paths(node: &str) -> Vec<String> {
    let mut paths: Vec<String> = [
        "api/v0/tasks?limit=1000&detail=1",
        "api/v0/tasks?limit=3",
        "api/v0/tasks?exclude_driver=false&limit=1000",
        "api/v0/tasks?filter_keys=state&filter_predicates=%3D&filter_values=failed&detail=1",
        "api/v0/tasks?filter_keys=state&filter_predicates=!%3D&filter_values=FINISHED",
        "api/v0/tasks?filter_keys=type&filter_predicates=%3D&filter_values=actor_task",
        "api/v0/tasks?filter_keys=name&filter_predicates=%3D&filter_values=square",
        "api/v0/tasks?filter_keys=parent_task_id&filter_predicates=!%3D&filter_values=x",
        "api/v0/tasks?filter_keys=worker_pid&filter_predicates=!%3D&filter_values=1",
        "api/v0/tasks?filter_keys=error_type&filter_predicates=%3D&filter_values=TASK_EXECUTION_EXCEPTION",
        "api/v0/tasks/summarize",
        "api/v0/tasks/summarize?summary_by=lineage",
        "api/v0/tasks/timeline",
        "api/v0/actors?detail=1",
        "api/v0/actors/summarize",
        "api/v0/jobs",
        "api/v0/nodes",
        "api/v0/placement_groups",
        "api/v0/workers",
        "api/v0/cluster_events",
        "api/jobs/",
        "logical/actors",
        "nodes?view=summary",
        "events",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    paths.push(format!(
        "api/v0/tasks?filter_keys=node_id&filter_predicates=%3D&filter_values={node}"
    ));
    paths
}

async fn same_answers(reference: &str, indexed: &str, paths: &[String]) {
    for path in paths {
        let (status_a, a) = support::get_json(&format!("{reference}/{path}")).await;
        let (status_b, b) = support::get_json(&format!("{indexed}/{path}")).await;
        assert_eq!(status_a, status_b, "{path}");
        assert_eq!(a, b, "{path}: the index answers differently");
    }
}

fn prefix(base: &str, session: &str) -> String {
    format!(
        "{base}/sessions/{}/{}/{session}",
        support::NAMESPACE,
        support::CLUSTER
    )
}

#[tokio::test]
async fn recorded_session_answers_the_same_from_its_index() {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let (dir, session, node) = recorded();
    support::upload_session(&storage, &dir, session, &node).await;
    let index_dir = tempfile::tempdir().unwrap();
    let (reference, indexed) = servers(&storage, &index_dir).await;
    let paths = recorded_paths(&node);
    let (status, _) =
        support::get_json(&format!("{}/api/v0/tasks", prefix(&indexed, session))).await;
    assert_eq!(status, 200);
    let stored = stored_index(&storage).await;
    assert_eq!(
        stored.len(),
        1,
        "the first load stores one index: {stored:?}"
    );
    same_answers(
        &prefix(&reference, session),
        &prefix(&indexed, session),
        &paths,
    )
    .await;

    // A restarted server reads the stored index instead of parsing (the object stays as it
    // was) and still answers the same; its local copy is unlinked, nothing is left behind.
    let before = storage.head(&stored[0]).await.unwrap().unwrap();
    let restarted_dir = tempfile::tempdir().unwrap();
    let (_, restarted) = servers(&storage, &restarted_dir).await;
    same_answers(
        &prefix(&reference, session),
        &prefix(&restarted, session),
        &paths,
    )
    .await;
    let after = storage.head(&stored[0]).await.unwrap().unwrap();
    assert_eq!(before.last_modified, after.last_modified);
    assert_eq!(index_objects(&storage).await, stored);
    assert_eq!(std::fs::read_dir(restarted_dir.path()).unwrap().count(), 0);
}

/// Writes `bytes` over the stored index, as damage or a foreign writer would.
async fn replace_index(storage: &Storage, key: &Path, bytes: Vec<u8>) {
    storage.delete(key).await.unwrap();
    storage.put(key, bytes.into()).await.unwrap();
}

#[tokio::test]
async fn a_damaged_truncated_or_foreign_index_is_ignored_and_rebuilt() {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let (dir, session, node) = recorded();
    support::upload_session(&storage, &dir, session, &node).await;
    let index_dir = tempfile::tempdir().unwrap();
    let (reference, indexed) = servers(&storage, &index_dir).await;
    let tasks = "api/v0/tasks?limit=1000&detail=1".to_string();
    same_answers(
        &prefix(&reference, session),
        &prefix(&indexed, session),
        std::slice::from_ref(&tasks),
    )
    .await;
    let key = stored_index(&storage).await.remove(0);
    let good = storage.get(&key).await.unwrap().to_vec();
    let fingerprint = match Key::parse(&key).unwrap() {
        Key::SessionIndex { fingerprint, .. } => fingerprint,
        other => panic!("{other:?}"),
    };

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    let mut other_version = good.clone();
    other_version[8..12].copy_from_slice(&99u32.to_le_bytes());
    let damaged: [(&str, Vec<u8>); 4] = [
        ("a flipped byte", flipped),
        ("truncated", good[..good.len() / 3].to_vec()),
        ("another format version", other_version),
        ("not an index", b"{\"hello\": \"world\"}".to_vec()),
    ];
    for (what, bytes) in damaged {
        replace_index(&storage, &key, bytes).await;
        let fresh_dir = tempfile::tempdir().unwrap();
        let (_, fresh) = servers(&storage, &fresh_dir).await;
        same_answers(
            &prefix(&reference, session),
            &prefix(&fresh, session),
            std::slice::from_ref(&tasks),
        )
        .await;
        // Rebuilt in place: one index again, valid.
        valid_index(&storage, &key, fingerprint).await;
        let stored = index_objects(&storage).await;
        assert_eq!(stored, vec![key.clone()], "{what}");
    }
}

#[tokio::test]
async fn late_events_make_a_new_index_and_the_old_one_goes() {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let (dir, session, node) = recorded();
    support::upload_session(&storage, &dir, session, &node).await;
    let index_dir = tempfile::tempdir().unwrap();
    let (_, indexed) = servers(&storage, &index_dir).await;
    support::get_json(&format!("{}/api/v0/tasks", prefix(&indexed, session))).await;
    let first = stored_index(&storage).await;
    assert_eq!(first.len(), 1);
    // A node's collector uploads its last events after the session was indexed.
    let cluster = ClusterRef::new(support::CLUSTER, support::CLUSTER_ID).unwrap();
    let late = cluster
        .log_file(
            &SessionName::new(session).unwrap(),
            &NodeId::new(&node).unwrap(),
            "events/event_GCS.log",
        )
        .unwrap();
    let mut events = storage
        .get(&late)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    events.extend_from_slice(b"{\"event_id\":\"late\",\"source_type\":\"GCS\",\"severity\":\"INFO\",\"message\":\"late\",\"timestamp\":1795235999}\n");
    storage.put(&late, events.into()).await.unwrap();

    let fresh_dir = tempfile::tempdir().unwrap();
    let (reference, fresh) = servers(&storage, &fresh_dir).await;
    same_answers(
        &prefix(&reference, session),
        &prefix(&fresh, session),
        &["events".to_string(), "api/v0/tasks?limit=1000".to_string()],
    )
    .await;
    let second = index_objects_when(&storage, |found| found.len() == 1 && found != first).await;
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first, "late events must make a new index");
}

#[tokio::test]
async fn two_servers_building_at_once_leave_one_valid_index() {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let (dir, session, node) = recorded();
    support::upload_session(&storage, &dir, session, &node).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (reference, a) = servers(&storage, &dir_a).await;
    let (_, b) = servers(&storage, &dir_b).await;
    let url = |base: &str| format!("{}/api/v0/tasks?limit=1000&detail=1", prefix(base, session));
    let (url_a, url_b) = (url(&a), url(&b));
    let (ra, rb) = tokio::join!(support::get_json(&url_a), support::get_json(&url_b));
    let (_, expected) = support::get_json(&url(&reference)).await;
    assert_eq!(ra.1, expected);
    assert_eq!(rb.1, expected);
    let stored = stored_index(&storage).await;
    let fingerprint = match Key::parse(&stored[0]).unwrap() {
        Key::SessionIndex { fingerprint, .. } => fingerprint,
        other => panic!("{other:?}"),
    };
    valid_index(&storage, &stored[0], fingerprint).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_just_finished_session_is_indexed_before_anyone_asks() {
    let root = tempfile::tempdir().unwrap();
    let storage = Storage::open(&StorageConfig::local(root.path()))
        .await
        .unwrap();
    // Finished just now, as a generated session is.
    generated::store_generated(&storage, 2_000).await;
    let index_dir = tempfile::tempdir().unwrap();
    let args = |index_ahead: u64| {
        let mut args = support::serve_args();
        args.index_ahead = Duration::from_secs(index_ahead);
        args.session_index_dir = Some(index_dir.path().to_path_buf());
        args
    };
    let base = support::serve(storage.clone(), args(3600)).await;
    let stored = stored_index(&storage).await;
    assert_eq!(stored.len(), 1, "indexed without a request: {stored:?}");
    assert_eq!(support::counter(&base, "sessions_indexed_ahead").await, 1);
    let session = generated::session_name(2_000);
    let url = format!(
        "{base}/sessions/{}/{}/{session}/api/v0/tasks?limit=10",
        generated::NAMESPACE,
        generated::CLUSTER
    );
    let (status, tasks) = support::get_json(&url).await;
    assert_eq!(status, 200, "{tasks}");
    assert_eq!(tasks["data"]["result"]["total"], 2_000, "{tasks}");
    assert_eq!(
        support::counter(&base, "session_cache_misses").await,
        1,
        "the request was served by the load done ahead"
    );
    // A restarted server finds the index and loads nothing ahead; with indexing ahead off,
    // a session is loaded on its first view only.
    let again = support::serve(storage.clone(), args(3600)).await;
    let off = support::serve(storage.clone(), args(0)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for base in [&again, &off] {
        assert_eq!(support::counter(base, "sessions_indexed_ahead").await, 0);
        assert_eq!(support::counter(base, "session_cache_misses").await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_right_after_its_first_answer_stores_the_index_before_it_exits() {
    // Azurite: an upload takes long enough there that a shutdown not waiting for it would
    // return first.
    let storage = Storage::open(&Azurite::shared().storage_config("index-on-stop"))
        .await
        .unwrap();
    let tasks = 100_000;
    let files = generated::generate(tasks);
    generated::store_session(&storage, tasks, &files).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = support::serve_args();
    args.session_index_dir = Some(dir.path().to_path_buf());
    let state = ray_history_server::server::state(storage.clone(), &args)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let stopped = async {
            let _ = stopped.await;
        };
        ray_history_server::server::serve_on(listener, state, &args, stopped).await
    });
    let url = format!(
        "{base}/sessions/{}/{}/{}/api/v0/tasks?limit=1",
        generated::NAMESPACE,
        generated::CLUSTER,
        generated::session_name(tasks)
    );
    let (status, _) = support::get_json(&url).await;
    assert_eq!(status, 200);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let stored = index_objects(&storage).await;
    assert_eq!(
        stored.len(),
        1,
        "the stopped server left no index: {stored:?}"
    );
}

/// Random task-list queries over the generated session's columns and values.
fn query() -> impl Strategy<Value = String> {
    let node = hex::encode(generated::node_id(1));
    let filter = prop_oneof![
        Just(("state", "FINISHED".to_string())),
        Just(("state", "failed".to_string())),
        Just(("name", "train_shard".to_string())),
        Just(("func_or_class_name", "evaluate".to_string())),
        Just(("job_id", "03000000".to_string())),
        Just(("node_id", node)),
        Just(("error_type", "TASK_EXECUTION_EXCEPTION".to_string())),
        Just(("type", "NORMAL_TASK".to_string())),
        Just(("worker_pid", "20105".to_string())),
        Just(("attempt_number", "0".to_string())),
        Just(("language", "PYTHON".to_string())),
    ];
    (
        proptest::collection::vec((filter, any::<bool>()), 0..3),
        prop_oneof![Just(1usize), Just(7), Just(100), Just(2500)],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(filters, limit, detail, summarize)| {
            let mut q = String::new();
            for ((key, value), equal) in filters {
                let predicate = if equal { "%3D" } else { "!%3D" };
                q.push_str(&format!(
                    "&filter_keys={key}&filter_predicates={predicate}&filter_values={value}"
                ));
            }
            if summarize {
                format!("api/v0/tasks/summarize?{q}")
            } else {
                format!("api/v0/tasks?limit={limit}&detail={}{q}", u8::from(detail))
            }
        })
}

#[test]
fn generated_session_answers_the_same_from_its_index_under_random_queries() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tasks = 100_000;
    let (storage, reference, indexed, _dir) = runtime.block_on(async {
        let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
        let files = generated::generate(tasks);
        generated::store_session(&storage, tasks, &files).await;
        let dir = tempfile::tempdir().unwrap();
        let (reference, indexed) = servers(&storage, &dir).await;
        (storage, reference, indexed, dir)
    });
    let session = generated::session_name(tasks);
    let at = |base: &str| {
        format!(
            "{base}/sessions/{}/{}/{session}",
            generated::NAMESPACE,
            generated::CLUSTER
        )
    };
    let (reference, indexed) = (at(&reference), at(&indexed));
    // Both load once; the index is stored by the first.
    runtime.block_on(same_answers(
        &reference,
        &indexed,
        &["api/v0/tasks".to_string()],
    ));
    assert_eq!(runtime.block_on(stored_index(&storage)).len(), 1);
    proptest!(ProptestConfig::with_cases(48), |(path in query())| {
        runtime.block_on(same_answers(&reference, &indexed, &[path]));
    });
}

/// A finished session of `tasks` tasks built straight into the model (parsing a million tasks
/// of JSON in a debug build would take minutes), stored as the session index alone.
async fn store_indexed_session(root: &std::path::Path, tasks: u32) -> String {
    use ray_history_server::ids::{Id, NodeId as RayNodeId, TaskId, WorkerId};
    use ray_history_server::model::{
        Builder, ErrorInfo, TaskDefinition, TaskLogInfo, TaskState, TaskType, TaskUpdate,
    };
    let mut builder = Builder::default();
    let names = ["square", "preprocess", "train_shard", "evaluate"].map(|n| builder.intern(n));
    let (language, resources) = (builder.intern("PYTHON"), builder.intern(r#"{"CPU":1.0}"#));
    let error_type = builder.intern("TASK_EXECUTION_EXCEPTION");
    let nodes: Vec<RayNodeId> = (0..4u8).map(|n| Id([n + 1; 28])).collect();
    let t0 = 1_795_235_131_000_000_000u64;
    for i in 0..tasks {
        let mut id = [0xffu8; 24];
        id[..4].copy_from_slice(&i.to_le_bytes());
        id[20..].copy_from_slice(&[(i % 4) as u8 + 1, 0, 0, 0]);
        let start = t0 + u64::from(i) * 1_000_000;
        let failed = i % 100 == 99;
        let end = if failed {
            TaskState::Failed
        } else {
            TaskState::Finished
        };
        let name = names[(i % 4) as usize].clone();
        builder.task(TaskUpdate {
            task_id: Some(TaskId::from_hex(&hex::encode(id)).unwrap()),
            definition: Some(TaskDefinition {
                name: name.clone(),
                func_or_class_name: name,
                task_type: Some(TaskType::Normal),
                language: language.clone(),
                required_resources: resources.clone(),
                ..Default::default()
            }),
            states: vec![
                (TaskState::PendingArgsAvail, start),
                (TaskState::Running, start + 500_000),
                (end, start + 900_000),
            ],
            node_id: Some(nodes[(i % 4) as usize]),
            worker_id: Some(WorkerId::from_hex(&format!("{:056x}", i % 32 + 1)).unwrap()),
            worker_pid: Some(20_000 + i % 32),
            error: failed.then(|| ErrorInfo {
                error_type: error_type.clone(),
                message: format!("ValueError: bad input {i}").into(),
            }),
            log_info: Some(TaskLogInfo {
                stdout_end: i64::from(i) * 30,
                stderr_end: i64::from(i) * 20,
                ..Default::default()
            }),
            event_ns: start + 900_000,
            ..Default::default()
        });
    }
    let session = builder.finish_at(Some(t0 + u64::from(tasks) * 1_000_000));
    let storage = Storage::open(&StorageConfig::local(root)).await.unwrap();
    let name = format!("session_2026-11-21_00-00-00_000000_{tasks}");
    let cluster = ClusterRef::new(support::CLUSTER, support::CLUSTER_ID).unwrap();
    let meta_ref =
        ray_history_storage::layout::MetaRef::new(support::NAMESPACE, support::CLUSTER).unwrap();
    let session_name = SessionName::new(&name).unwrap();
    // No event files: the fingerprint of none.
    let fingerprint = session_index::fingerprint([]);
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("index");
    session_index::write(
        &session,
        fingerprint,
        &std::fs::File::create(&path).unwrap(),
    )
    .unwrap();
    drop(session);
    let key = cluster.session_index(&session_name, session_index::FORMAT_VERSION, fingerprint);
    let len = std::fs::metadata(&path).unwrap().len();
    storage.put_file(&key, &path, len).await.unwrap();
    let now = chrono::Utc::now();
    let head = ray_history_storage::layout::NodeId::new(&hex::encode([1u8; 28])).unwrap();
    let meta = support::session_metadata(
        &meta_ref,
        &cluster,
        &session_name,
        Some(&head),
        now,
        Some(now),
    );
    support::put_documents(&storage, &meta_ref, &meta, &head).await;
    name
}

/// Peak RSS (`VmHWM`) of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The bound is twice the benchmark's target (300 MiB): a debug build, and a margin.
const MAX_RSS_MIB_FOR_A_MILLION: f64 = 600.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_task_session_is_served_from_its_index_in_bounded_memory() {
    let root = tempfile::tempdir().unwrap();
    let tasks = 1_000_000;
    let session = store_indexed_session(root.path(), tasks).await;
    let port = ray_history_testkit::free_port();
    let index_dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ray-history-server"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--storage", "local", "--local-storage-path"])
        .arg(root.path())
        .arg("--session-index-dir")
        .arg(index_dir.path())
        .args(["--refresh-interval", "1h", "--request-timeout", "300s"])
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start the server binary");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let at = prefix(&base, &session);
    let (status, page) = support::get_json(&format!("{at}/api/v0/tasks?limit=100&detail=1")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"]["result"]["total"], tasks);
    assert_eq!(
        page["data"]["result"]["result"].as_array().unwrap().len(),
        100
    );
    let (_, failed) = support::get_json(&format!(
        "{at}/api/v0/tasks?filter_keys=state&filter_predicates=%3D&filter_values=FAILED&limit=5"
    ))
    .await;
    assert_eq!(failed["data"]["result"]["total"], tasks / 100);
    let (_, summary) = support::get_json(&format!("{at}/api/v0/tasks/summarize")).await;
    let square =
        &summary["data"]["result"]["result"]["node_id_to_summary"]["cluster"]["summary"]["square"];
    assert_eq!(square["state_counts"]["FINISHED"], tasks / 4);
    let (_, by_pid) = support::get_json(&format!(
        "{at}/api/v0/tasks?filter_keys=worker_pid&filter_predicates=%3D&filter_values=20007&limit=1"
    ))
    .await;
    assert_eq!(by_pid["data"]["result"]["total"], tasks / 32);
    let peak = peak_rss_mib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("serving {tasks} tasks from the index: peak RSS {peak:.0} MiB");
    assert!(peak > 0.0, "cannot read the server's RSS");
    assert!(
        peak < MAX_RSS_MIB_FOR_A_MILLION,
        "serving {tasks} tasks took {peak:.0} MiB (bound {MAX_RSS_MIB_FOR_A_MILLION} MiB)"
    );
}
