//! Unit tests of the uploader: how append batches grow, and re-uploads keeping the object
//! equal to the file.

use super::*;

#[test]
fn batches_grow_as_a_blob_fills_up() {
    assert_eq!(min_append(0), 1);
    assert_eq!(min_append(24_999), 1);
    assert_eq!(min_append(25_000), 64 * 1024);
    assert_eq!(min_append(30_000), 128 * 1024);
    assert_eq!(min_append(48_999), 1024 * 1024);
    assert_eq!(min_append(60_000), MAX_APPEND);
    let mut blocks = 0u32;
    let mut prev = 0;
    while blocks < COMPACT_AT {
        assert!(min_append(blocks) >= prev);
        prev = min_append(blocks);
        blocks += 1000;
    }
}

/// A file streamed through the memory backend in reupload mode, and through every rewrite.
#[tokio::test]
async fn reupload_mode_keeps_the_object_equal_to_the_file() {
    let storage = Storage::open(&ray_history_storage::StorageConfig::memory())
        .await
        .unwrap();
    let uploader = Uploader::new(storage.clone(), Backoff::default(), Metrics::new());
    assert_eq!(uploader.mode(), Mode::Reupload);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("debug_state.txt");
    let key = Path::from("log/a_local/session_x/logs/n/debug_state.txt");
    std::fs::write(&path, "first version, rather long\n").unwrap();
    let id = FileStat::of(&path).unwrap().unwrap().id;
    let mut job = Job {
        path: path.clone(),
        key: key.clone(),
        tracked: Tracked::new(id),
        verified: false,
        limit: None,
        due: true,
        closing: false,
    };
    for content in [
        "first version, rather long\n",
        "second\n",
        "second\nand more\n",
    ] {
        std::fs::write(&path, content).unwrap();
        let out = uploader.run(job.clone()).await;
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(&storage.get(&key).await.unwrap()[..], content.as_bytes());
        job.tracked = out.tracked;
        job.verified = out.verified;
    }
    // Not due: a change waits for the next round.
    std::fs::write(&path, "third\n").unwrap();
    let out = uploader
        .run(Job {
            due: false,
            ..job.clone()
        })
        .await;
    assert_eq!(&storage.get(&key).await.unwrap()[..], b"second\nand more\n");
    // A restarted collector with the old progress checks the object and uploads.
    let out = uploader
        .run(Job {
            tracked: out.tracked,
            verified: false,
            closing: true,
            due: false,
            ..job
        })
        .await;
    assert!(out.error.is_none());
    assert_eq!(&storage.get(&key).await.unwrap()[..], b"third\n");
}
