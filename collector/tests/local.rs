//! The collector binary writing to local disk (the demo's default): the SIGKILL test.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::local(dir.path()).await;
    common::kills::sigkill_at_random_moments(&target).await;
}
