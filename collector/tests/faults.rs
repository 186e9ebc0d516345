//! The collector binary aborted at each step of mirroring a rename and of rewriting an object
//! (test hooks of the `failpoints` feature), then restarted, against real Azurite: nothing is
//! missing, nothing is stored twice, and a reader polling the keys never finds one missing
//! after it first existed.
#![cfg(feature = "failpoints")]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use futures::TryStreamExt;
use object_store::path::Path as Key;
use ray_history_storage::Storage;
use ray_history_testkit::Azurite;
use tokio::task::JoinHandle;

/// Heads `keys` until stopped; answers, per key, how often it was missing after it existed.
struct Reader {
    stop: Arc<AtomicBool>,
    task: JoinHandle<BTreeMap<String, u32>>,
}

impl Reader {
    fn start(storage: &Storage, keys: Vec<Key>) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let (storage, flag) = (storage.clone(), Arc::clone(&stop));
        let task = tokio::spawn(async move {
            let mut seen = BTreeMap::new();
            let mut missing = BTreeMap::new();
            while !flag.load(Ordering::Relaxed) {
                for key in &keys {
                    let exists = storage.head(key).await.unwrap().is_some();
                    if exists {
                        seen.insert(key.to_string(), true);
                    } else if seen.contains_key(key.as_ref()) {
                        *missing.entry(key.to_string()).or_default() += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            missing
        });
        Reader { stop, task }
    }

    async fn missing(self) -> BTreeMap<String, u32> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// Names of the objects under the node's logs.
async fn objects(storage: &Storage) -> Vec<String> {
    let prefix = cluster().node_logs_prefix(&session(), &node());
    let mut names: Vec<String> = storage
        .list(Some(&prefix))
        .map_ok(|o| o.location.as_ref()[prefix.as_ref().len() + 1..].to_string())
        .try_collect()
        .await
        .unwrap();
    names.sort();
    names
}

async fn staging_objects(storage: &Storage) -> usize {
    let prefix = cluster().node_staging_prefix(&session(), &node());
    let listed: Vec<_> = storage.list(Some(&prefix)).try_collect().await.unwrap();
    listed.len()
}

fn lines(tag: &str, n: usize) -> String {
    (0..n).map(|i| format!("{tag} line {i}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_of_a_rename_mirror_duplicates_and_loses_nothing() {
    let azurite = Azurite::shared();
    // Ray (backup count 1) deletes out.1, renames out -> out.1 and (in most cases) opens a
    // new out: the mirror keeps the deleted generation as out.2, copies, and deletes `out`
    // only when no new file took its name.
    let cases = [
        ("mirror-spared", true),
        ("mirror-copied", true),
        ("rename-mirrored", true),
        ("mirror-copied", false),
        ("mirror-deleted", false),
    ];
    for (n, (step, new_out)) in cases.into_iter().enumerate() {
        let target = Target::azurite(azurite, &format!("fault-mirror-{n}")).await;
        let ray = FakeRay::new();
        let logs = ray.logs();
        std::fs::write(logs.join("raylet.out"), lines("A", 2000)).unwrap();
        std::fs::write(logs.join("raylet.out.1"), lines("B", 1500)).unwrap();
        let hook = format!("{step}=return");
        let mut collector = Collector::start(ray.root.path(), &target, &[("FAILPOINTS", &hook)]);
        collector.wait_ready().await;
        wait_mirrored(&target.storage, &logs, Duration::from_secs(30)).await;
        let watched = ["raylet.out", "raylet.out.1", "raylet.out.2"];
        let reader = Reader::start(&target.storage, watched.map(log_key).to_vec());
        std::fs::remove_file(logs.join("raylet.out.1")).unwrap();
        std::fs::rename(logs.join("raylet.out"), logs.join("raylet.out.1")).unwrap();
        if new_out {
            std::fs::write(logs.join("raylet.out"), lines("C", 10)).unwrap();
        }
        collector.wait_abort(Duration::from_secs(30));
        let mut collector = Collector::start(ray.root.path(), &target, &[]);
        collector.wait_ready().await;
        wait_mirrored(&target.storage, &logs, Duration::from_secs(30)).await;
        collector.terminate(Duration::from_secs(20));
        let mut missing = reader.missing().await;
        if !new_out {
            // Its file is gone: so is its object.
            missing.remove(log_key("raylet.out").as_ref());
        }
        let expected: &[&str] = if new_out {
            &["raylet.out", "raylet.out.1", "raylet.out.2"]
        } else {
            &["raylet.out.1", "raylet.out.2"]
        };
        let what = format!("crash at {step}, new out: {new_out}");
        assert_eq!(objects(&target.storage).await, expected, "{what}");
        assert_eq!(
            target.storage.get(&log_key("raylet.out.2")).await.unwrap(),
            lines("B", 1500).as_bytes(),
            "{what}"
        );
        assert_eq!(missing, BTreeMap::new(), "{what}: keys found missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_of_a_rewrite_loses_nothing_and_leaves_no_staging() {
    let azurite = Azurite::shared();
    for step in ["rewrite-staged", "rewrite-copied", "rewrite-cleaned"] {
        let target = Target::azurite(azurite, &format!("fault-{step}")).await;
        let ray = FakeRay::new();
        let logs = ray.logs();
        let path = logs.join("debug_state.txt");
        std::fs::write(&path, lines("first", 3000)).unwrap();
        let hook = format!("{step}=return");
        let mut collector = Collector::start(ray.root.path(), &target, &[("FAILPOINTS", &hook)]);
        collector.wait_ready().await;
        wait_mirrored(&target.storage, &logs, Duration::from_secs(30)).await;
        let reader = Reader::start(&target.storage, vec![log_key("debug_state.txt")]);
        // Rewritten in place, shorter: the object must be rewritten.
        std::fs::write(&path, lines("second", 1000)).unwrap();
        collector.wait_abort(Duration::from_secs(30));
        let mut collector = Collector::start(ray.root.path(), &target, &[]);
        collector.wait_ready().await;
        wait_mirrored(&target.storage, &logs, Duration::from_secs(30)).await;
        collector.terminate(Duration::from_secs(20));
        assert_eq!(
            objects(&target.storage).await,
            ["debug_state.txt"],
            "crash at {step}"
        );
        assert_eq!(staging_objects(&target.storage).await, 0, "crash at {step}");
        assert_eq!(
            reader.missing().await,
            BTreeMap::new(),
            "crash at {step}: key found missing"
        );
    }
}
