//! The collector binary against real Azurite, with files written by a test writer while it
//! runs: streaming lag, crashes (SIGKILL) at random moments, and a 20-second storage outage.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::kills::Writer;
use common::*;
use futures::TryStreamExt;
use ray_history_testkit::Azurite;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_reach_storage_within_a_few_flush_intervals_while_the_writer_writes() {
    let azurite = Azurite::shared();
    let target = Target::azurite(azurite, "streaming-lag").await;
    let ray = FakeRay::new();
    let mut collector = Collector::start(ray.root.path(), &target, &[]);
    collector.wait_ready().await;
    let writer = Writer::start(ray.logs(), 4, Duration::from_millis(20), None);
    let flush = Duration::from_millis(500);
    // "A few" flush intervals: four leaves room for the other tests sharing these 2 cores.
    let allowed = 4 * flush;
    let started = Instant::now();
    let mut checks = 0;
    while started.elapsed() < Duration::from_secs(8) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = Instant::now();
        let size = match target.storage.head(&log_key("stream-0.log")).await.unwrap() {
            Some(meta) => meta.size,
            None => 0,
        };
        // Everything written `allowed` ago is in storage, while writing goes on.
        if now.duration_since(started) > allowed {
            let expected = writer.len_at(now - allowed);
            assert!(
                size >= expected,
                "storage has {size} bytes, the file had {expected} {allowed:?} ago:\n{}",
                collector.log_text()
            );
            checks += 1;
        }
    }
    assert!(checks >= 10 && writer.len_at(Instant::now()) > 0);
    writer.stop();
    collector.terminate(Duration::from_secs(20));
    assert_eq!(
        differences(&target.storage, &ray.logs(), log_key).await,
        Vec::<String>::new()
    );
    let metadata = target
        .storage
        .get(&meta().metadata(&session()))
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&metadata).unwrap();
    assert_eq!(doc["state"], "finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let target = Target::azurite(Azurite::shared(), "sigkill").await;
    common::kills::sigkill_at_random_moments(&target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_of_the_same_size_under_a_new_files_key_is_replaced_not_adopted() {
    // A rotated log of equal length (Ray's generations often are) left under the key while the
    // collector was down: a refused append at offset 0 reports exactly the file's size.
    let azurite = Azurite::shared();
    let target = Target::azurite(azurite, "same-size").await;
    let ray = FakeRay::new();
    let old: String = (1000..1500).map(|n| format!("raylet {n}\n")).collect();
    let new: String = (2000..2500).map(|n| format!("raylet {n}\n")).collect();
    assert_eq!(old.len(), new.len());
    let key = log_key("raylet.out.1");
    target.storage.append(&key, 0, old.into()).await.unwrap();
    std::fs::write(ray.logs().join("raylet.out.1"), &new).unwrap();
    let mut collector = Collector::start(ray.root.path(), &target, &[]);
    collector.wait_ready().await;
    wait_mirrored(&target.storage, &ray.logs(), Duration::from_secs(30)).await;
    collector.terminate(Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_second_storage_outage_loses_nothing() {
    let mut azurite = Azurite::start_on_disk();
    let target = Target::azurite(&azurite, "outage").await;
    let ray = FakeRay::new();
    let mut collector = Collector::start(ray.root.path(), &target, &[]);
    collector.wait_ready().await;
    let writer = Writer::start(ray.logs(), 6, Duration::from_millis(10), Some(500));
    tokio::time::sleep(Duration::from_secs(2)).await;
    azurite.stop();
    tokio::time::sleep(Duration::from_secs(20)).await;
    azurite.start_again();
    tokio::time::sleep(Duration::from_secs(2)).await;
    writer.stop();
    wait_mirrored(&target.storage, &ray.logs(), Duration::from_secs(60)).await;
    let metrics = collector.metrics().await;
    collector.terminate(Duration::from_secs(20));
    assert_eq!(
        differences(&target.storage, &ray.logs(), log_key).await,
        Vec::<String>::new()
    );
    let retries = metrics
        .lines()
        .find(|l| l.starts_with("ray_history_collector_storage_retries_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        retries > 0,
        "the outage must have caused retries:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_backfills_a_real_session_dir_and_can_run_again() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/ray-2.60-session");
    let dir = std::fs::read_dir(fixtures)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("_export_api_on"))
        .expect("fixture session");
    let name =
        ray_history_storage::layout::SessionName::new(dir.file_name().unwrap().to_str().unwrap())
            .unwrap();
    let node = ray_history_collector::discovery::node_id(&dir)
        .unwrap()
        .unwrap();
    let azurite = Azurite::shared();
    let target = Target::azurite(azurite, "sync").await;
    for run in 0..2 {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ray-history-collector"))
            .env_clear()
            .env("RAY_CLUSTER_NAME", CLUSTER)
            .envs(target.env.iter().map(|(k, v)| (k, v)))
            .arg("sync")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let key_of = |relative: &str| cluster().log_file(&name, &node, relative).unwrap();
        assert_eq!(
            differences(&target.storage, &dir.join("logs"), key_of).await,
            Vec::<String>::new()
        );
    }
    let doc = target.storage.get(&meta().metadata(&name)).await.unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(doc["state"], "finished");
    assert_eq!(doc["rayVersion"], "2.60.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearly_full_append_blob_is_rewritten_in_big_blocks() {
    use ray_history_collector::metrics::Metrics;
    use ray_history_collector::tracker::{FileStat, Tracked};
    use ray_history_collector::uploader::{COMPACT_AT, Job, Mode, Uploader};

    let azurite = Azurite::shared();
    let target = Target::azurite(azurite, "compaction").await;
    let uploader = Uploader::new(target.storage.clone(), Default::default(), Metrics::new());
    assert_eq!(uploader.mode(), Mode::Append);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raylet.out");
    let key = log_key("raylet.out");
    std::fs::write(&path, b"first line\n").unwrap();
    let id = FileStat::of(&path).unwrap().unwrap().id;
    let job = |tracked: Tracked| Job {
        path: path.clone(),
        key: key.clone(),
        tracked,
        verified: true,
        limit: None,
        due: true,
        closing: false,
    };
    let out = uploader.run(job(Tracked::new(id))).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.tracked.blocks, 1);
    // Pretend the blob has taken almost every block it may: the next round rewrites it.
    append(&path, b"second line\n");
    let full = Tracked {
        blocks: COMPACT_AT,
        ..out.tracked
    };
    let out = uploader.run(job(full)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(
        out.tracked.blocks, 1,
        "one 4 MiB block holds the whole file again"
    );
    assert_eq!(
        &target.storage.get(&key).await.unwrap()[..],
        b"first line\nsecond line\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_files_replace_their_append_blob_without_the_key_ever_missing() {
    use ray_history_collector::metrics::Metrics;
    use ray_history_collector::tracker::{FileStat, Tracked};
    use ray_history_collector::uploader::{Job, Uploader};

    let azurite = Azurite::shared();
    let target = Target::azurite(azurite, "rewrite").await;
    let uploader = Uploader::new(target.storage.clone(), Default::default(), Metrics::new());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("debug_state.txt");
    let key = log_key("debug_state.txt");
    let content = |round: usize| format!("round {round}\n").repeat(2000 + 100 * round);
    std::fs::write(&path, content(0)).unwrap();
    let id = FileStat::of(&path).unwrap().unwrap().id;
    let mut tracked = Tracked::new(id);
    let run = |tracked: Tracked| {
        uploader.run(Job {
            path: path.clone(),
            key: key.clone(),
            tracked,
            verified: true,
            limit: None,
            due: true,
            closing: false,
        })
    };
    let out = run(tracked).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    tracked = out.tracked;
    // A reader polls the key all along.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (storage, key, stop) = (target.storage.clone(), key.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let (mut polls, mut missing) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                polls += 1;
                if storage.head(&key).await.unwrap().is_none() {
                    missing += 1;
                }
            }
            (polls, missing)
        })
    };
    for round in 1..=15 {
        // Ray rewrites it in place (shorter, or different from the first byte), then appends.
        std::fs::write(&path, content(round)).unwrap();
        let out = run(tracked).await;
        assert!(out.error.is_none(), "{:?}", out.error);
        append(&path, b"appended after the rewrite\n");
        let out = run(out.tracked).await;
        assert!(
            out.error.is_none(),
            "appends go on after the copy: {:?}",
            out.error
        );
        tracked = out.tracked;
        let expected = format!("{}appended after the rewrite\n", content(round));
        assert_eq!(
            &target.storage.get(&key).await.unwrap()[..],
            expected.as_bytes()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let (polls, missing) = poller.await.unwrap();
    eprintln!("{polls} polls, {missing} found the key missing");
    assert!(polls > 15);
    assert_eq!(
        missing, 0,
        "a reader found the key missing during a rewrite"
    );
    let staging: Vec<_> = target
        .storage
        .list(Some(&cluster().node_staging_prefix(&session(), &node())))
        .try_collect()
        .await
        .unwrap();
    assert!(staging.is_empty(), "{staging:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_of_the_checkpoints_size_with_other_bytes_is_rewritten_after_a_restart() {
    // What a crashed run's repeated rename mirror once left (the random SIGKILL test caught
    // it under load): raylet.out.2 held another generation of exactly the file's size, and
    // the restarted collector, trusting the size, never fixed it.
    use ray_history_collector::metrics::Metrics;
    use ray_history_collector::tracker::{FileStat, Tracked};
    use ray_history_collector::uploader::{Job, Uploader};

    let azurite = Azurite::shared();
    let target = Target::azurite(azurite, "same-size-resume").await;
    let uploader = Uploader::new(target.storage.clone(), Default::default(), Metrics::new());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raylet.out.2");
    let key = log_key("raylet.out.2");
    let ours: String = (1200..1600).map(|n| format!("raylet {n}\n")).collect();
    let other: String = (1600..2000).map(|n| format!("raylet {n}\n")).collect();
    assert_eq!(ours.len(), other.len());
    std::fs::write(&path, &ours).unwrap();
    let id = FileStat::of(&path).unwrap().unwrap().id;
    let job = |tracked: Tracked, verified: bool| Job {
        path: path.clone(),
        key: key.clone(),
        tracked,
        verified,
        limit: None,
        due: true,
        closing: false,
    };
    let out = uploader.run(job(Tracked::new(id), true)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    target.storage.delete(&key).await.unwrap();
    target.storage.append(&key, 0, other.into()).await.unwrap();
    // A restart: the checkpoint's progress, not yet verified in this process.
    let out = uploader.run(job(out.tracked, false)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    let stored = target.storage.get(&key).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&stored), ours);
}
