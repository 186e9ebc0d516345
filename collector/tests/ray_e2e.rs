//! End to end with a real Ray 2.60 head: the collector follows the head's temp dir while a
//! workload runs (tasks, a failing task, an actor, a submitted job) with export events on and
//! a tiny rotation size; after the head stops and the collector gets SIGTERM, every file under
//! the session's `logs/` equals its object in Azurite and `metadata.json` says `finished`.

mod common;

use std::time::Duration;

use common::*;
use ray_history_storage::layout::{NodeId, SessionName};
use ray_history_testkit::{Azurite, RayHead, RayHeadOptions};

const WORKLOAD: &str = r#"
import ray
ray.init()

@ray.remote
def square(x):
    print("square", x)
    return x * x

@ray.remote
def boom():
    raise ValueError("expected failure")

@ray.remote
class Counter:
    def __init__(self):
        self.n = 0
    def inc(self):
        self.n += 1
        print("count", self.n)
        return self.n

assert ray.get([square.remote(i) for i in range(8)]) == [i * i for i in range(8)]
try:
    ray.get(boom.remote())
except ray.exceptions.RayTaskError:
    print("boom failed as expected")
c = Counter.remote()
assert ray.get([c.inc.remote() for _ in range(5)])[-1] == 5
for i in range(2000):
    print("filler line to make the worker log rotate", i, "x" * 100)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_ray_session_is_mirrored_byte_for_byte_and_finalised() {
    let azurite = Azurite::shared();
    let target = Target::azurite(azurite, "ray-e2e").await;
    let mut head = RayHead::start(RayHeadOptions {
        env: vec![
            ("RAY_enable_export_api_write".into(), "1".into()),
            ("RAY_ROTATION_MAX_BYTES".into(), "16384".into()),
            ("RAY_ROTATION_BACKUP_COUNT".into(), "2".into()),
        ],
        ..Default::default()
    });
    let session_dir = head.session_dir();
    let session = SessionName::new(session_dir.file_name().unwrap().to_str().unwrap()).unwrap();
    let node = std::fs::read_dir(&session_dir)
        .unwrap()
        .flatten()
        .find_map(|e| {
            let name = e.file_name().into_string().ok()?;
            NodeId::new(name.rsplit_once("_port_")?.1).ok()
        })
        .expect("Ray wrote its port files");
    let mut collector = Collector::start(head.temp_dir(), &target, &[]);
    collector.wait_ready().await;

    let driver = head.run_python(WORKLOAD);
    assert!(
        driver.status.success(),
        "driver failed: {}",
        String::from_utf8_lossy(&driver.stderr)
    );
    let job = head.submit_job("python -c \"print('hello from a job')\"", "e2e-job-1");
    assert!(
        job.status.success(),
        "job failed: {}",
        String::from_utf8_lossy(&job.stderr)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    head.stop();
    let log = collector.log.clone();
    collector.terminate(Duration::from_secs(60));
    let log = std::fs::read_to_string(log).unwrap();
    assert!(
        log.contains("mirrored a rename"),
        "Ray's rotations were followed as renames"
    );

    let logs = session_dir.join("logs");
    let key_of = |relative: &str| cluster().log_file(&session, &node, relative).unwrap();
    let files = files_under(&logs);
    assert_eq!(
        differences(&target.storage, &logs, key_of).await,
        Vec::<String>::new()
    );
    let names: Vec<&str> = files.iter().map(|(r, _)| r.as_str()).collect();
    for expected in [
        "raylet.out",
        "gcs_server.out",
        "events/event_RAYLET.log",
        "export_events/event_EXPORT_TASK",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(expected)),
            "no {expected} in {names:?}"
        );
    }
    assert!(
        names.iter().any(|n| n.ends_with(".1")),
        "the small rotation size must have rotated a log: {:?}",
        files
            .iter()
            .map(|(r, p)| (r, std::fs::metadata(p).unwrap().len()))
            .collect::<Vec<_>>()
    );
    assert!(
        names.iter().any(|n| n.starts_with("job-driver-e2e-job-1")),
        "{names:?}"
    );

    let metadata = target
        .storage
        .get(&meta().metadata(&session))
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&metadata).unwrap();
    assert_eq!(doc["state"], "finished", "{doc}");
    assert_eq!(doc["rayVersion"], "2.60.0");
    assert_eq!(doc["headNodeId"], node.as_str());
    assert!(doc["endTime"].is_string());
    let node_doc = target
        .storage
        .get(&meta().node(&session, &node))
        .await
        .unwrap();
    let node_doc: serde_json::Value = serde_json::from_slice(&node_doc).unwrap();
    assert_eq!(node_doc["nodeType"], "head");
}
