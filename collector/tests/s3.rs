//! The collector binary against a real S3 server (moto): no appends, so changed files are
//! uploaded whole every `REUPLOAD_INTERVAL` and at exit; renames are mirrored with copies.
//! (The receiver's stress test on S3 is in `events.rs`.)

mod common;

use std::time::Duration;

use common::kills::Writer;
use common::*;
use ray_history_testkit::MotoS3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing_on_s3() {
    let target = Target::s3(MotoS3::shared(), "sigkill").await;
    common::kills::sigkill_at_random_moments(&target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_reach_s3_while_written_and_whole_at_exit() {
    let target = Target::s3(MotoS3::shared(), "streaming").await;
    let ray = FakeRay::new();
    let mut collector = Collector::start(ray.root.path(), &target, &[("REUPLOAD_INTERVAL", "1s")]);
    collector.wait_ready().await;
    let writer = Writer::start(ray.logs(), 4, Duration::from_millis(20), Some(300));
    // Each file's object appears and grows while the writer writes.
    let key = log_key("stream-0.log");
    let mut sizes = Vec::new();
    for _ in 0..16 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        sizes.push(
            target
                .storage
                .head(&key)
                .await
                .unwrap()
                .map_or(0, |m| m.size),
        );
    }
    writer.stop();
    assert!(
        sizes.windows(2).filter(|w| w[1] > w[0]).count() >= 3,
        "stream-0.log did not grow in storage while written: {sizes:?}\n{}",
        collector.log_text()
    );
    collector.terminate(Duration::from_secs(20));
    assert_eq!(
        differences(&target.storage, &ray.logs(), log_key).await,
        Vec::<String>::new()
    );
}
