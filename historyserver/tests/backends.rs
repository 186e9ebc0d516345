//! The server reads a stored session back from real S3 (moto) and GCS (fake-gcs-server) servers
//! and answers exactly what it answers from memory: the session list, the State API, logs,
//! ranges.

mod support;

use std::path::PathBuf;

use futures::TryStreamExt;
use ray_history_storage::{Storage, StorageConfig};
use ray_history_testkit::{FakeGcs, MotoS3};

const SESSION: &str = "session_2026-11-21_05-21-56_756984_14093";

fn recorded() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/live-export/session")
}

/// The recorded head's node id (`ids.txt` beside the session).
fn node() -> String {
    let ids = std::fs::read_to_string(recorded().with_file_name("ids.txt")).unwrap();
    ids.split_whitespace()
        .find_map(|kv| kv.strip_prefix("NODE="))
        .expect("NODE= in ids.txt")
        .to_string()
}

/// The same paths asked of every server; the answers must be equal byte for byte.
fn paths() -> Vec<String> {
    let prefix = format!(
        "/sessions/{}/{}/{SESSION}",
        support::NAMESPACE,
        support::CLUSTER
    );
    let node = node();
    [
        "/api/sessions".to_string(),
        format!(
            "/api/sessions/{}/{}/{SESSION}",
            support::NAMESPACE,
            support::CLUSTER
        ),
        format!("{prefix}/api/v0/tasks?limit=1000&detail=1"),
        format!("{prefix}/api/v0/actors"),
        format!("{prefix}/api/v0/nodes"),
        format!("{prefix}/api/jobs/"),
        format!("{prefix}/events"),
        format!("{prefix}/api/v0/logs?node_id={node}"),
        format!("{prefix}/api/v0/logs/file?node_id={node}&filename=events/event_GCS.log&lines=20"),
        format!(
            "{prefix}/api/v0/logs/file?node_id={node}&filename=export_events/event_EXPORT_ACTOR.log"
        ),
    ]
    .into()
}

/// What every path answers: status and body.
async fn answers(base: &str) -> Vec<(String, u16, String)> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for path in paths() {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        let status = response.status().as_u16();
        out.push((path, status, response.text().await.unwrap()));
    }
    out
}

async fn stored_in_memory() -> Storage {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let node = node();
    support::upload_session(&storage, &recorded(), SESSION, &node).await;
    storage
}

/// Every object of `from`, as (key, bytes).
async fn objects(from: &Storage) -> Vec<(object_store::path::Path, bytes::Bytes)> {
    let metas: Vec<_> = from.list(None).try_collect().await.unwrap();
    let mut out = Vec::new();
    for meta in metas {
        let data = from.get(&meta.location).await.unwrap();
        out.push((meta.location, data));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_reads_back_the_same_from_s3_and_gcs() {
    let memory = stored_in_memory().await;
    let expected = answers(&support::start_server(memory.clone()).await).await;
    assert!(
        expected.iter().all(|(_, status, _)| *status == 200),
        "{expected:?}"
    );
    let stored = objects(&memory).await;

    let s3 = Storage::open(&MotoS3::shared().storage_config("readback"))
        .await
        .unwrap();
    for (key, data) in &stored {
        s3.put(key, data.clone()).await.unwrap();
    }
    // fake-gcs-server takes uploads through its JSON API only (see storage's backend suite).
    let fake_gcs = FakeGcs::shared();
    let gcs = Storage::open(&fake_gcs.storage_config("readback"))
        .await
        .unwrap();
    for (key, data) in &stored {
        fake_gcs.upload("readback", key.as_ref(), data);
    }

    for (name, storage) in [("s3", s3), ("gcs", gcs)] {
        let got = answers(&support::start_server(storage).await).await;
        for ((path, status, body), (_, want_status, want_body)) in got.iter().zip(&expected) {
            assert_eq!(status, want_status, "{name} {path}");
            assert_eq!(body, want_body, "{name} {path}");
        }
    }
}
