//! Generated Ray 2.60 sessions of any size, for benchmarks and tests: per task the owner's
//! definition + pending/submitted transitions, the worker's RUNNING update with log offsets,
//! the owner's FINISHED or FAILED update (1% fail with an error); one actor per 1,000 tasks;
//! 4 nodes with a driver and 8 workers each, so 36 task files per session.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::Utc;
use ray_history_storage::Storage;
use ray_history_storage::layout::{ClusterRef, MetaRef, NodeId, SessionName};
use ray_history_storage::metadata::{
    LAYOUT_VERSION, NodeMetadata, NodeType, SessionMetadata, SessionState,
};

/// Namespace of generated sessions.
pub const NAMESPACE: &str = "bench";
/// Cluster name of generated sessions.
pub const CLUSTER: &str = "bench-cluster";
/// Cluster id of generated sessions.
pub const CLUSTER_ID: &str = "local";
/// Nodes of a generated session.
pub const NODES: usize = 4;
/// Workers per node.
pub const WORKERS_PER_NODE: usize = 8;

/// Deterministic pseudo-random bytes (splitmix64).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

fn bytes(seed: u64, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (mix(seed.wrapping_mul(131).wrapping_add(i as u64)) & 0xff) as u8)
        .collect()
}

/// The raw id of node `n`.
pub fn node_id(n: usize) -> Vec<u8> {
    bytes(1_000_000 + n as u64, 28)
}

fn worker_id(node: usize, w: usize) -> Vec<u8> {
    bytes(2_000_000 + (node * 100 + w) as u64, 28)
}

fn job_id(node: usize) -> [u8; 4] {
    [(node + 1) as u8, 0, 0, 0]
}

fn task_id(i: u64, job: [u8; 4]) -> Vec<u8> {
    let mut id = bytes(i, 8);
    id.extend_from_slice(&[0xff; 12]);
    id.extend_from_slice(&job);
    id
}

fn actor_id(a: u64, job: [u8; 4]) -> Vec<u8> {
    let mut id = bytes(5_000_000 + a, 12);
    id.extend_from_slice(&job);
    id
}

/// Export-event files of one session, keyed by (node, file name).
pub fn generate(tasks: u64) -> Vec<(usize, String, Vec<u8>)> {
    let mut files = part(0..tasks, "");
    files.push(node_file());
    files
}

/// Tasks per part of [`store_generated`]: a part's files are about 1.6 GB in memory.
const TASKS_PER_PART: u64 = 1_000_000;

/// Generates and stores a session of `tasks` tasks a part of [`TASKS_PER_PART`] at a time
/// (each part in its own files, as Ray's rotated event files), so any size fits in memory.
/// Returns the bytes of events stored.
pub async fn store_generated(storage: &Storage, tasks: u64) -> u64 {
    let mut bytes = 0;
    let mut files = vec![node_file()];
    for (k, lo) in (0..tasks).step_by(TASKS_PER_PART as usize).enumerate() {
        let suffix = if k == 0 {
            String::new()
        } else {
            format!(".{k}")
        };
        files.extend(part(lo..tasks.min(lo + TASKS_PER_PART), &suffix));
        bytes += files.iter().map(|f| f.2.len() as u64).sum::<u64>();
        store_files(storage, tasks, &files).await;
        files.clear();
    }
    store_metadata(storage, tasks).await;
    bytes
}

/// The node events of a generated session.
fn node_file() -> (usize, String, Vec<u8>) {
    let mut nodes_file = Vec::new();
    for n in 0..NODES {
        writeln!(
            nodes_file,
            r#"{{"event_data":{{"end_time_ms":"0","is_head_node":{},"labels":{{}},"node_id":"{}","node_manager_address":"10.0.0.{n}","node_name":"10.0.0.{n}","resources_total":{{"CPU":8,"memory":17055444583}},"start_time_ms":"1795235129689","state":"ALIVE"}},"event_id":"n{n}","source_type":"EXPORT_NODE","timestamp":1795235129}}"#,
            n == 0,
            B64.encode(node_id(n))
        )
        .unwrap();
    }
    (
        0,
        "export_events/event_EXPORT_NODE.log".to_string(),
        nodes_file,
    )
}

/// The task and actor event files of tasks `range`, their names ending in `suffix`.
fn part(range: std::ops::Range<u64>, suffix: &str) -> Vec<(usize, String, Vec<u8>)> {
    let t0: u64 = 1_795_235_131_000_000_000;
    let mut owner: Vec<Vec<u8>> = vec![Vec::new(); NODES];
    let mut workers: Vec<Vec<Vec<u8>>> = vec![vec![Vec::new(); WORKERS_PER_NODE]; NODES];
    for i in range.clone() {
        let node = (i as usize) % NODES;
        let w = (mix(i) as usize) % WORKERS_PER_NODE;
        let job = job_id(node);
        let tid = B64.encode(task_id(i, job));
        let parent = B64.encode([[0xffu8; 20].as_slice(), &job].concat());
        let nid = B64.encode(node_id(node));
        let wid = B64.encode(worker_id(node, w));
        let jid = B64.encode(job);
        let start = t0 + i * 1_000_000;
        let name = ["square", "preprocess", "train_shard", "evaluate"][(i % 4) as usize];
        let eid = hex::encode(bytes(i + 7_000_000, 18));
        let secs = start / 1_000_000_000;
        writeln!(
            owner[node],
            r#"{{"event_data":{{"attempt_number":0,"job_id":"{jid}","state_updates":{{"node_id":"{nid}","state_ts_ns":{{"1":"{}","2":"{}","5":"{}"}},"worker_id":"{wid}"}},"task_id":"{tid}","task_info":{{"func_or_class_name":"{name}","label_selector":{{}},"labels":{{}},"language":"PYTHON","parent_task_id":"{parent}","required_resources":{{"CPU":1}},"runtime_env_info":{{"runtime_env_config":{{"eager_install":true,"log_files":[],"setup_timeout_seconds":600}},"serialized_runtime_env":"{{}}","uris":{{"py_modules_uris":[],"working_dir_uri":""}}}},"task_id":"{tid}","type":"NORMAL_TASK"}}}},"event_id":"{eid}","source_type":"EXPORT_TASK","timestamp":{secs}}}"#,
            start,
            start + 50_000,
            start + 400_000
        )
        .unwrap();
        let pid = 20_000 + node * 100 + w;
        writeln!(
            workers[node][w],
            r#"{{"event_data":{{"attempt_number":0,"job_id":"{jid}","state_updates":{{"state_ts_ns":{{"8":"{}"}},"task_log_info":{{"stderr_end":{},"stderr_file":"","stderr_start":0,"stdout_end":{},"stdout_file":"","stdout_start":0}},"worker_pid":{pid}}},"task_id":"{tid}"}},"event_id":"{eid}w","source_type":"EXPORT_TASK","timestamp":{secs}}}"#,
            start + 500_000,
            i * 20,
            i * 30
        )
        .unwrap();
        if i % 100 == 99 {
            writeln!(
                owner[node],
                r#"{{"event_data":{{"attempt_number":0,"job_id":"{jid}","state_updates":{{"error_info":{{"error_message":"User exception:\nray::{name}() (pid={pid}, ip=10.0.0.{node})\nValueError: bad input {i}","error_type":"TASK_EXECUTION_EXCEPTION"}},"node_id":"{nid}","state_ts_ns":{{"12":"{}"}},"worker_id":"{wid}"}},"task_id":"{tid}"}},"event_id":"{eid}e","source_type":"EXPORT_TASK","timestamp":{secs}}}"#,
                start + 900_000
            )
            .unwrap();
        } else {
            writeln!(
                owner[node],
                r#"{{"event_data":{{"attempt_number":0,"job_id":"{jid}","state_updates":{{"node_id":"{nid}","state_ts_ns":{{"11":"{}"}},"worker_id":"{wid}"}},"task_id":"{tid}"}},"event_id":"{eid}f","source_type":"EXPORT_TASK","timestamp":{secs}}}"#,
                start + 900_000
            )
            .unwrap();
        }
    }
    let mut files = Vec::new();
    let mut head = Vec::new();
    for a in range.start / 1000..range.end / 1000 {
        let node = (a as usize) % NODES;
        let job = job_id(node);
        let aid = B64.encode(actor_id(a, job));
        let nid = B64.encode(node_id(node));
        for (state, dt) in [("PENDING_CREATION", 0), ("ALIVE", 1), ("DEAD", 30)] {
            writeln!(
                head,
                r#"{{"event_data":{{"actor_id":"{aid}","class_name":"Worker{}","death_cause":{{}},"is_detached":false,"job_id":"{}","label_selector":{{}},"labels":{{}},"name":"actor-{a}","node_id":"{nid}","pid":{},"placement_group_id":"","ray_namespace":"ns","repr_name":"","required_resources":{{"CPU":1}},"serialized_runtime_env":"{{}}","state":"{state}"}},"event_id":"a{a}{state}","source_type":"EXPORT_ACTOR","timestamp":{}}}"#,
                a % 7,
                B64.encode(job),
                30_000 + a,
                1_795_235_131 + a + dt
            )
            .unwrap();
        }
    }
    files.push((
        0,
        format!("export_events/event_EXPORT_ACTOR.log{suffix}"),
        head,
    ));
    for (node, data) in owner.into_iter().enumerate() {
        files.push((
            node,
            format!(
                "export_events/event_EXPORT_TASK_{}.log{suffix}",
                10_000 + node
            ),
            data,
        ));
    }
    for (node, ws) in workers.into_iter().enumerate() {
        for (w, data) in ws.into_iter().enumerate() {
            let pid = 20_000 + node * 100 + w;
            files.push((
                node,
                format!("export_events/event_EXPORT_TASK_{pid}.log{suffix}"),
                data,
            ));
        }
    }
    files
}

/// The name of the generated session of `tasks` tasks.
pub fn session_name(tasks: u64) -> String {
    format!("session_2026-11-21_00-00-00_000000_{tasks}")
}

/// Stores generated files as a finished session, with its metadata documents.
pub async fn store_session(storage: &Storage, tasks: u64, files: &[(usize, String, Vec<u8>)]) {
    store_files(storage, tasks, files).await;
    store_metadata(storage, tasks).await;
}

/// Stores generated files in the session of `tasks` tasks.
async fn store_files(storage: &Storage, tasks: u64, files: &[(usize, String, Vec<u8>)]) {
    let cluster = ClusterRef::new(CLUSTER, CLUSTER_ID).unwrap();
    let session = SessionName::new(&session_name(tasks)).unwrap();
    for (node, name, data) in files {
        let node = NodeId::new(&hex::encode(node_id(*node))).unwrap();
        let key = cluster.log_file(&session, &node, name).unwrap();
        storage.put(&key, data.clone().into()).await.unwrap();
    }
}

/// Stores the metadata documents of the finished session of `tasks` tasks.
async fn store_metadata(storage: &Storage, tasks: u64) {
    let cluster = ClusterRef::new(CLUSTER, CLUSTER_ID).unwrap();
    let meta_ref = MetaRef::new(NAMESPACE, CLUSTER).unwrap();
    let session = SessionName::new(&session_name(tasks)).unwrap();
    let now = Utc::now();
    let head = NodeId::new(&hex::encode(node_id(0))).unwrap();
    let meta = SessionMetadata {
        layout_version: LAYOUT_VERSION,
        cluster_name: cluster.name.clone(),
        cluster_id: cluster.id.clone(),
        namespace: meta_ref.namespace.clone(),
        session_name: session.clone(),
        owner: None,
        ray_version: Some("2.60.0".into()),
        head_node_id: Some(head.clone()),
        start_time: now,
        last_heartbeat: now,
        end_time: Some(now),
        state: SessionState::Finished,
        collector_version: "bench".into(),
    };
    storage
        .put(
            &meta_ref.metadata(&session),
            serde_json::to_vec(&meta).unwrap().into(),
        )
        .await
        .unwrap();
    for n in 0..NODES {
        let node = NodeId::new(&hex::encode(node_id(n))).unwrap();
        let doc = NodeMetadata {
            node_id: node.clone(),
            node_type: if n == 0 {
                NodeType::Head
            } else {
                NodeType::Worker
            },
            pod_name: None,
            node_ip: Some(format!("10.0.0.{n}")),
            start_time: now,
            last_heartbeat: now,
            end_time: Some(now),
        };
        storage
            .put(
                &meta_ref.node(&session, &node),
                serde_json::to_vec(&doc).unwrap().into(),
            )
            .await
            .unwrap();
    }
}
