//! The RayEvents HTTP receiver with the posts Ray 2.60's aggregator agent really sent
//! (camelCase and snake_case), against real Azurite: every event ends up in
//! `node_events/<node-id>-<millis>.json` (JSON Lines) once, a batch sent again is not stored
//! twice, bad bodies get 4xx; and under
//! concurrent posters, fast rolls, SIGKILLs and a storage outage, every acknowledged event is
//! stored exactly once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use futures::TryStreamExt;
use rand::Rng;
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
            // 503 until the engine found the session (`[]` needs none); Ray retries.
            let mut status = post(body.clone()).await;
            for _ in 0..50 {
                if status != 503 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                status = post(body.clone()).await;
            }
            assert_eq!(status, 200, "{file}");
        }
    }
    assert_eq!(posted.len(), 89 + 47);

    // A batch sent again (its answer was lost, to Ray) is taken and not stored twice.
    let text = std::fs::read_to_string(format!("{POSTS}/posts_run_B.jsonl")).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let again = first["body"].as_str().unwrap().to_string();
    let repeated = serde_json::from_str::<Vec<Value>>(&again).unwrap().len();
    assert_eq!(post(again).await, 200);
    let metrics = collector.metrics().await;
    assert!(
        metrics.contains(&format!(
            "ray_history_collector_events_repeated_total {repeated}\n"
        )),
        "{metrics}"
    );

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

/// Posters' share of the stress test: every event id posted, and those answered `200`.
#[derive(Default)]
struct Posted {
    all: Vec<String>,
    acked: Vec<String>,
}

/// Posts batches of `BATCH` events with unique ids to `url` until `stop`; a batch without a
/// `200` is never sent again (the receiver drops the repeats of a re-sent batch only while it
/// remembers their ids, which a SIGKILL forgets).
async fn poster(id: usize, url: String, stop: Arc<AtomicBool>) -> Posted {
    const BATCH: usize = 50;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut posted = Posted::default();
    let mut batch_no = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let ids: Vec<String> = (0..BATCH)
            .map(|i| format!("p{id}-b{batch_no:06}-e{i:02}"))
            .collect();
        batch_no += 1;
        let events: Vec<Value> = ids
            .iter()
            .map(|event_id| {
                serde_json::json!({
                    "eventId": event_id,
                    "sourceType": "CORE_WORKER",
                    "eventType": "TASK_DEFINITION_EVENT",
                    "timestamp": "2026-11-21T04:23:40.000000000Z",
                    "severity": "INFO",
                    "sessionName": SESSION,
                    "message": "x".repeat(150),
                })
            })
            .collect();
        posted.all.extend(ids.iter().cloned());
        let answer = client.post(&url).json(&events).send().await;
        match answer {
            Ok(response) if response.status() == 200 => posted.acked.extend(ids),
            // Refused while the collector is down, 503 before it found the session, or cut
            // by a SIGKILL: not acknowledged, so stored at most once.
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    posted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_sigkills_fast_rolls_and_an_outage_exactly_once() {
    let mut azurite = Azurite::start_on_disk();
    let target = Target::azurite(&azurite, "events-stress").await;
    let mut outage = |down: bool| {
        if down {
            azurite.stop();
        } else {
            azurite.start_again();
        }
    };
    stress("azurite", &target, Some(&mut outage)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_sigkills_and_fast_rolls_exactly_once_on_s3() {
    // moto keeps objects in memory, so it cannot be stopped and started again: no outage.
    let target = Target::s3(ray_history_testkit::MotoS3::shared(), "events-stress").await;
    stress("s3", &target, None).await;
}

/// Posters with unique event ids against the collector, SIGKILLed and restarted 8 times with
/// segments rolling every second, and (with `outage`) storage down for a while in the middle:
/// every acknowledged event is stored exactly once.
async fn stress(backend: &str, target: &Target, mut outage: Option<&mut dyn FnMut(bool)>) {
    const POSTERS: usize = 8;
    let ray = FakeRay::new();
    let port = ray_history_testkit::free_port();
    // Segments roll every second (and every 256 KiB), so most SIGKILLs land near a roll.
    let settings = [
        ("EVENTS_ROLL_INTERVAL", "1s"),
        ("EVENTS_ROLL_BYTES", "262144"),
    ];
    let start = || Collector::start_with_events_port(ray.root.path(), target, &settings, port);
    let mut collector = start();
    collector.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/v1/events");
    let stop = Arc::new(AtomicBool::new(false));
    let posters: Vec<_> = (0..POSTERS)
        .map(|id| tokio::spawn(poster(id, url.clone(), Arc::clone(&stop))))
        .collect();
    let mut rng = rand::rng();
    for round in 0..8 {
        let alive = Duration::from_millis(rng.random_range(1000..3000));
        tokio::time::sleep(alive).await;
        if round == 3
            && let Some(outage) = outage.as_mut()
        {
            // The outage starts under a running collector: the spool takes what storage cannot.
            outage(true);
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        collector.kill();
        eprintln!("round {round}: killed after {alive:?}");
        collector = start();
        if round == 3
            && let Some(outage) = outage.as_mut()
        {
            // Restarted while storage is still down; it waits for it before it listens.
            tokio::time::sleep(Duration::from_secs(2)).await;
            outage(false);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut posted = Posted::default();
    for handle in posters {
        let one = handle.await.unwrap();
        posted.all.extend(one.all);
        posted.acked.extend(one.acked);
    }
    collector.wait_ready().await;
    collector.terminate(Duration::from_secs(60));

    let prefix = cluster().node_events_prefix(&session());
    let objects: Vec<_> = target
        .storage
        .list(Some(&prefix))
        .try_collect()
        .await
        .unwrap();
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    let mut torn = 0;
    for object in &objects {
        let bytes = target.storage.get(&object.location).await.unwrap();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Value>(line) {
                Ok(event) => *stored.entry(event_id(&event)).or_default() += 1,
                Err(_) => torn += 1,
            }
        }
    }
    let all: BTreeSet<&String> = posted.all.iter().collect();
    let lost: Vec<&String> = posted
        .acked
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    let duplicated: Vec<(&String, &usize)> = stored.iter().filter(|(_, n)| **n > 1).collect();
    let unknown = stored.keys().filter(|id| !all.contains(id)).count();
    let unacked_stored = stored.len() - (posted.acked.len() - lost.len());
    eprintln!(
        "{backend}: events posted {}, acknowledged {}, stored {} ({} of them unacknowledged), lost {}, \
         duplicated {}, torn lines {torn}, in {} objects",
        posted.all.len(),
        posted.acked.len(),
        stored.len(),
        unacked_stored,
        lost.len(),
        duplicated.len(),
        objects.len(),
    );
    assert!(posted.acked.len() > 10_000, "too few events acknowledged");
    assert!(
        lost.is_empty(),
        "acknowledged but not stored: {:?}",
        &lost[..lost.len().min(20)]
    );
    assert!(
        duplicated.is_empty(),
        "stored more than once: {:?}",
        &duplicated[..duplicated.len().min(20)]
    );
    assert_eq!((torn, unknown), (0, 0), "torn lines, ids never posted");
    let spool = ray.root.path().join(".ray-history/events").join(SESSION);
    assert_eq!(
        std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0),
        0,
        "spool left behind"
    );
}
