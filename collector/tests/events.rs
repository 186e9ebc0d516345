//! The RayEvents HTTP receiver with the posts Ray 2.60's aggregator agent really sent
//! (camelCase and snake_case), against real Azurite: every event ends up in
//! `node_events/<node-id>-<millis>.json` (JSON Lines) once, bad bodies get 4xx.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use futures::TryStreamExt;
use ray_history_storage::layout::SessionName;
use ray_history_testkit::Azurite;
use serde_json::Value;

const POSTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/ray-2.60-session/http-aggregator-posts"
);
/// The session the camelCase posts name; the snake_case ones name another (unknown) session
/// and so go to the live one.
const POSTED_SESSION: &str = "session_2026-11-21_04-27-02_770504_19750";

fn event_id(event: &Value) -> String {
    event
        .get("eventId")
        .or_else(|| event.get("event_id"))
        .and_then(Value::as_str)
        .expect("every RayEvent has an id")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_ray_posts_are_stored_once_and_bad_bodies_are_refused() {
    let azurite = Azurite::shared();
    let target = Target::azurite(azurite, "events").await;
    let ray = FakeRay::with_session(POSTED_SESSION);
    let mut collector = Collector::start(ray.root.path(), &target, &[("EVENTS_MAX_BODY", "65536")]);
    collector.wait_ready().await;
    let url = format!("http://127.0.0.1:{}/v1/events", collector.events_port);
    let client = reqwest::Client::new();
    let post = |body: String| {
        let request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        async move { request.send().await.unwrap().status().as_u16() }
    };

    // The engine must have found the session first (503 until then; Ray retries).
    let mut status = 0;
    for _ in 0..50 {
        status = post("[]".into()).await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);

    let mut posted = BTreeSet::new();
    for file in ["posts_run_B.jsonl", "posts_run_C_snake_case.jsonl"] {
        let text = std::fs::read_to_string(format!("{POSTS}/{file}")).unwrap();
        for line in text.lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            let body = record["body"].as_str().unwrap().to_string();
            let events: Vec<Value> = serde_json::from_str(&body).unwrap();
            posted.extend(events.iter().map(event_id));
            assert_eq!(post(body).await, 200, "{file}");
        }
    }
    assert_eq!(posted.len(), 89 + 47);

    assert_eq!(post("not json".into()).await, 400);
    assert_eq!(
        post("{\"eventId\":\"x\"}".into()).await,
        400,
        "an object, not an array"
    );
    assert_eq!(post("[1, 2]".into()).await, 400, "not RayEvent objects");
    let huge = format!("[{{\"eventId\":\"{}\"}}]", "x".repeat(70_000));
    assert_eq!(post(huge).await, 413);

    collector.terminate(Duration::from_secs(20));

    let session = SessionName::new(POSTED_SESSION).unwrap();
    let prefix = cluster().node_events_prefix(&session);
    let objects: Vec<_> = target
        .storage
        .list(Some(&prefix))
        .try_collect()
        .await
        .unwrap();
    assert!(!objects.is_empty());
    let mut stored = Vec::new();
    for object in &objects {
        let name = object.location.filename().unwrap();
        assert!(
            name.starts_with(&format!("{NODE}-")) && name.ends_with(".json"),
            "{name}"
        );
        let bytes = target.storage.get(&object.location).await.unwrap();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let event: Value = serde_json::from_slice(line).unwrap();
            stored.push(event_id(&event));
        }
    }
    assert_eq!(stored.len(), posted.len(), "every event once");
    assert_eq!(stored.into_iter().collect::<BTreeSet<_>>(), posted);
    // Sent files are removed from the spool.
    let spool = ray
        .root
        .path()
        .join(".ray-history/events")
        .join(POSTED_SESSION);
    assert_eq!(std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0), 0);
}
