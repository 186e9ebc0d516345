//! Test support: upload a Ray session dir in the storage layout, run the server in-process,
//! and compare its answers with a live Ray dashboard's.

#![allow(dead_code)]

pub mod compare;

use std::path::Path;

use chrono::{DateTime, Utc};
use ray_history_server::config::ServeArgs;
use ray_history_storage::Storage;
use ray_history_storage::layout::{ClusterRef, MetaRef, NodeId, SessionName};
use ray_history_storage::metadata::{
    LAYOUT_VERSION, NodeMetadata, NodeType, SessionMetadata, SessionState,
};

/// Namespace, cluster name and id used by the tests.
pub const NAMESPACE: &str = "default";
pub const CLUSTER: &str = "raycluster-test";
pub const CLUSTER_ID: &str = "local";

/// The node id of a session dir, from Ray's `gcs_server_port_<node-id>` file.
pub fn head_node_id(session_dir: &Path) -> String {
    std::fs::read_dir(session_dir)
        .expect("session dir")
        .filter_map(|e| e.ok())
        .find_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("gcs_server_port_")
                .map(str::to_string)
        })
        .expect("no gcs_server_port_<node-id> file in the session dir")
}

/// Uploads `<session_dir>/logs/**` under the node's log prefix and writes `metadata.json`
/// and `nodes/<node>.json`, as the collector would for a finished session.
pub async fn upload_session(
    storage: &Storage,
    session_dir: &Path,
    session_name: &str,
    node_id: &str,
) -> SessionMetadata {
    let cluster = ClusterRef::new(CLUSTER, CLUSTER_ID).unwrap();
    let meta_ref = MetaRef::new(NAMESPACE, CLUSTER).unwrap();
    let session = SessionName::new(session_name).unwrap();
    let node = NodeId::new(node_id).unwrap();
    let logs = session_dir.join("logs");
    let mut stack = vec![logs.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let relative = path
                    .strip_prefix(&logs)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                let key = cluster.log_file(&session, &node, &relative).unwrap();
                let len = entry.metadata().unwrap().len();
                storage.put_file(&key, &path, len).await.unwrap();
            }
        }
    }
    let now = Utc::now();
    let meta = session_metadata(&meta_ref, &cluster, &session, Some(&node), now, Some(now));
    put_documents(storage, &meta_ref, &meta, &node).await;
    meta
}

/// Writes a session's `metadata.json` and its head node's `nodes/<node>.json` (with the
/// session's times), as the collector does.
pub async fn put_documents(
    storage: &Storage,
    meta_ref: &MetaRef,
    meta: &SessionMetadata,
    node: &NodeId,
) {
    let session = &meta.session_name;
    storage
        .put(
            &meta_ref.metadata(session),
            serde_json::to_vec(meta).unwrap().into(),
        )
        .await
        .unwrap();
    let node_doc = NodeMetadata {
        node_id: node.clone(),
        node_type: NodeType::Head,
        pod_name: None,
        node_ip: Some("127.0.0.1".into()),
        start_time: meta.start_time,
        last_heartbeat: meta.last_heartbeat,
        end_time: meta.end_time,
    };
    storage
        .put(
            &meta_ref.node(session, node),
            serde_json::to_vec(&node_doc).unwrap().into(),
        )
        .await
        .unwrap();
}

/// Server flags for tests. Indexing ahead is off: a test's loads are the ones it makes
/// (the test of indexing ahead turns it on).
pub fn serve_args() -> ServeArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        serve: ServeArgs,
    }
    Wrapper::parse_from([
        "test",
        "--listen",
        "127.0.0.1:0",
        "--refresh-interval",
        "1s",
        "--index-ahead",
        "0s",
    ])
    .serve
}

/// Session metadata as the collector writes it: finished at `end`, else running (heartbeat
/// at `start`).
pub fn session_metadata(
    meta_ref: &MetaRef,
    cluster: &ClusterRef,
    session: &SessionName,
    head: Option<&NodeId>,
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
) -> SessionMetadata {
    SessionMetadata {
        layout_version: LAYOUT_VERSION,
        cluster_name: cluster.name.clone(),
        cluster_id: cluster.id.clone(),
        namespace: meta_ref.namespace.clone(),
        session_name: session.clone(),
        owner: None,
        ray_version: Some("2.60.0".into()),
        head_node_id: head.cloned(),
        start_time: start,
        last_heartbeat: end.unwrap_or(start),
        end_time: end,
        state: if end.is_some() {
            SessionState::Finished
        } else {
            SessionState::Running
        },
        collector_version: "test".into(),
    }
}

/// Starts the server in-process on a free port with the test flags; returns its base URL.
pub async fn start_server(storage: Storage) -> String {
    serve(storage, serve_args()).await
}

/// Starts the server in-process on a free port with `args`; returns its base URL.
pub async fn serve(storage: Storage, args: ServeArgs) -> String {
    let state = ray_history_server::server::state(storage, &args)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        ray_history_server::server::serve_on(listener, state, &args, std::future::pending())
            .await
            .unwrap();
    });
    format!("http://{addr}")
}

/// The value of a counter (`ray_history_server_<name>_total`) in the server's metrics.
pub async fn counter(base: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("ray_history_server_{name}_total ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

/// GET returning status and JSON (or the body as a JSON string when it is not JSON).
pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, value)
}
