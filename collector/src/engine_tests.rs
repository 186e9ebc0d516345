//! Engine rounds against the in-memory backend (reupload mode) on a temp Ray dir. The append
//! path is covered against Azurite in `tests/`.

use std::io::Write;

use object_store::path::Path as Key;
use ray_history_storage::StorageConfig;
use ray_history_storage::layout::{self, NodeId, SessionName};

use super::*;
use crate::checkpoint::Checkpoint;
use crate::config::{Identity, NodeKind};
use crate::discovery;
use crate::files::{Entry, Source};

const SESSION: &str = "session_2026-11-21_04-23-31_898414_12602";

struct Fixture {
    root: tempfile::TempDir,
    storage: Storage,
    node: Node,
}

impl Fixture {
    async fn new() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let session = root.path().join(SESSION);
        std::fs::create_dir_all(session.join("logs/events")).unwrap();
        std::fs::write(
            session.join(format!("metrics_agent_port_{}", node_id())),
            "1",
        )
        .unwrap();
        std::os::unix::fs::symlink(&session, root.path().join("session_latest")).unwrap();
        let node = Identity {
            cluster_name: "demo".into(),
            cluster_id: "local".into(),
            namespace: "default".into(),
            node_type: NodeKind::Head,
            pod_name: None,
            pod_ip: None,
            owner_kind: None,
            owner_name: None,
        }
        .resolve()
        .unwrap();
        let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
        Fixture {
            root,
            storage,
            node,
        }
    }

    /// A fresh engine (a restarted collector) over the same dirs and storage.
    fn engine(&self) -> Engine {
        let state = self.root.path().join(".ray-history");
        let settings = Settings {
            flush_interval: Duration::from_millis(100),
            reupload_interval: Duration::ZERO,
            heartbeat_interval: Duration::from_secs(3600),
            rescan_interval: Duration::ZERO,
            concurrency: 4,
            final_flush_timeout: Duration::from_secs(5),
        };
        let spool =
            Arc::new(Spool::new(state.join("events"), 1 << 20, Duration::from_secs(60)).unwrap());
        Engine::new(
            self.root.path().to_path_buf(),
            &state,
            settings,
            self.node.clone(),
            self.storage.clone(),
            spool,
            Arc::new(RwLock::new(Known::default())),
            Metrics::new(),
            Arc::new(AtomicBool::new(false)),
        )
        .unwrap()
    }

    fn logs(&self) -> PathBuf {
        self.root.path().join(SESSION).join("logs")
    }

    fn write(&self, name: &str, content: &[u8]) {
        std::fs::write(self.logs().join(name), content).unwrap();
    }

    fn append(&self, name: &str, content: &[u8]) {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.logs().join(name))
            .unwrap();
        file.write_all(content).unwrap();
    }

    fn key(&self, name: &str) -> Key {
        let session = SessionName::new(SESSION).unwrap();
        self.node
            .cluster
            .log_file(&session, &NodeId::new(&node_id()).unwrap(), name)
            .unwrap()
    }

    async fn object(&self, name: &str) -> Option<Vec<u8>> {
        match self.storage.get(&self.key(name)).await {
            Ok(bytes) => Some(bytes.to_vec()),
            Err(ray_history_storage::Error::NotFound { .. }) => None,
            Err(e) => panic!("{e}"),
        }
    }

    /// Every file under logs/ equals its object.
    async fn assert_mirrored(&self) {
        for file in discovery::log_files(&self.logs()) {
            let on_disk = std::fs::read(&file.path).unwrap();
            assert_eq!(
                self.object(&file.relative).await.as_deref(),
                Some(&on_disk[..]),
                "{}",
                file.relative
            );
        }
    }
}

fn node_id() -> String {
    "2c19cf3212f28247c3219bcfea6f3840dda46c43df2052e23770e17e".to_string()
}

#[tokio::test]
async fn rotation_is_mirrored_and_deleted_generations_are_kept() {
    let f = Fixture::new().await;
    let mut engine = f.engine();
    f.write("raylet.out", b"generation A\n");
    assert!(engine.tick(true).await);
    // Ray rotates (backup count 1): out -> out.1, new out.
    std::fs::rename(f.logs().join("raylet.out"), f.logs().join("raylet.out.1")).unwrap();
    f.append("raylet.out.1", b"last line of A\n");
    f.write("raylet.out", b"generation B\n");
    assert!(engine.tick(true).await);
    f.assert_mirrored().await;
    assert_eq!(
        f.object("raylet.out.1").await.unwrap(),
        b"generation A\nlast line of A\n"
    );
    // Next rotation: Ray deletes out.1 (A), renames out (B) -> out.1, opens out (C).
    std::fs::remove_file(f.logs().join("raylet.out.1")).unwrap();
    std::fs::rename(f.logs().join("raylet.out"), f.logs().join("raylet.out.1")).unwrap();
    f.write("raylet.out", b"generation C\n");
    assert!(engine.tick(true).await);
    f.assert_mirrored().await;
    assert_eq!(f.object("raylet.out.1").await.unwrap(), b"generation B\n");
    assert_eq!(
        f.object("raylet.out.2").await.unwrap(),
        b"generation A\nlast line of A\n"
    );
}

#[tokio::test]
async fn truncated_and_rewritten_files_are_uploaded_again() {
    let f = Fixture::new().await;
    let mut engine = f.engine();
    f.write(
        "debug_state.txt",
        &b"NodeManager:\nworkers: 10\n".repeat(100),
    );
    f.write("gcs_server.out", &b"line\n".repeat(1000));
    assert!(engine.tick(true).await);
    f.write("debug_state.txt", b"NodeManager:\nworkers: 2\n");
    std::fs::OpenOptions::new()
        .write(true)
        .open(f.logs().join("gcs_server.out"))
        .unwrap()
        .set_len(3)
        .unwrap();
    assert!(engine.tick(true).await);
    f.assert_mirrored().await;
}

#[tokio::test]
async fn vanishing_files_cost_nothing_and_keep_their_objects() {
    let f = Fixture::new().await;
    let mut engine = f.engine();
    f.write("kept.log", b"uploaded before it vanished\n");
    assert!(engine.tick(true).await);
    std::fs::remove_file(f.logs().join("kept.log")).unwrap();
    // Appears and vanishes between two rounds: never seen, no error.
    f.write("flash.log", b"x");
    std::fs::remove_file(f.logs().join("flash.log")).unwrap();
    assert!(engine.tick(true).await);
    assert_eq!(
        f.object("kept.log").await.unwrap(),
        b"uploaded before it vanished\n"
    );
    assert_eq!(f.object("flash.log").await, None);
    assert!(engine.entries.is_empty());
}

#[tokio::test]
async fn a_restarted_engine_resumes_from_its_checkpoint() {
    let f = Fixture::new().await;
    f.write("events/event_GCS.log", b"{\"a\":1}\n");
    let mut first = f.engine();
    assert!(first.tick(true).await);
    drop(first);
    f.append("events/event_GCS.log", b"{\"a\":2}\n");
    let mut second = f.engine();
    assert_eq!(second.entries.len(), 1, "the checkpoint lists the file");
    assert!(!second.entries.values().next().unwrap().verified);
    assert!(second.tick(true).await);
    f.assert_mirrored().await;
    // Metadata was announced for the live session.
    let meta = f.node.meta.metadata(&SessionName::new(SESSION).unwrap());
    assert!(f.storage.head(&meta).await.unwrap().is_some());
}

#[tokio::test]
async fn spooled_events_are_uploaded_then_removed() {
    let f = Fixture::new().await;
    let mut engine = f.engine();
    assert!(engine.tick(false).await);
    let session = SessionName::new(SESSION).unwrap();
    let node = NodeId::new(&node_id()).unwrap();
    engine
        .spool
        .append(&session, &node, b"{\"eventId\":\"x\"}\n")
        .unwrap();
    assert!(engine.tick(false).await);
    let segment = engine
        .spool
        .segments()
        .pop()
        .expect("still open, still spooled");
    let key = f
        .node
        .cluster
        .node_events(&session, &node, segment.unix_millis);
    assert_eq!(
        &f.storage.get(&key).await.unwrap()[..],
        b"{\"eventId\":\"x\"}\n"
    );
    engine.spool.roll(true);
    assert!(engine.tick(true).await);
    assert!(
        engine.spool.segments().is_empty(),
        "sealed and sent: removed"
    );
}

#[tokio::test]
async fn every_object_has_the_documented_key() {
    use futures::TryStreamExt;
    let f = Fixture::new().await;
    let mut engine = f.engine();
    f.write("raylet.out", b"r\n");
    f.write("events/event_GCS.log", b"{}\n");
    assert!(engine.tick(false).await);
    let session = SessionName::new(SESSION).unwrap();
    let node = NodeId::new(&node_id()).unwrap();
    engine.spool.append(&session, &node, b"{}\n").unwrap();
    engine.spool.roll(true);
    assert!(engine.tick(true).await);
    let mut keys: Vec<String> = f
        .storage
        .list(None)
        .map_ok(|o| o.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    let n = node_id();
    let events = keys
        .iter()
        .find(|k| k.contains("/node_events/"))
        .cloned()
        .unwrap();
    let millis = events
        .rsplit_once('-')
        .unwrap()
        .1
        .strip_suffix(".json")
        .unwrap();
    assert!(millis.parse::<u64>().is_ok(), "{events}");
    assert_eq!(
        keys,
        vec![
            format!("log/demo_local/{SESSION}/logs/{n}/events/event_GCS.log"),
            format!("log/demo_local/{SESSION}/logs/{n}/raylet.out"),
            format!("log/demo_local/{SESSION}/node_events/{n}-{millis}.json"),
            format!("metadir/default_demo/{SESSION}/metadata.json"),
            format!("metadir/default_demo/{SESSION}/nodes/{n}.json"),
        ]
    );
}

#[tokio::test]
async fn files_of_a_deleted_session_dir_are_forgotten() {
    let f = Fixture::new().await;
    f.write("raylet.out", b"r\n");
    let mut first = f.engine();
    assert!(first.tick(true).await);
    drop(first);
    std::fs::remove_dir_all(f.root.path().join(SESSION)).unwrap();
    // Its node cannot be read any more, so its checkpoint entries are not trusted.
    let mut second = f.engine();
    assert!(second.entries.is_empty());
    assert!(second.tick(true).await, "nothing left to do");
    assert!(second.entries.is_empty());
}

#[tokio::test]
async fn checkpoint_entries_naming_other_objects_are_refused() {
    let f = Fixture::new().await;
    f.write("raylet.out", b"ours\n");
    assert!(f.engine().tick(true).await);
    let session = SessionName::new(SESSION).unwrap();
    let node = NodeId::new(&node_id()).unwrap();
    let victim = layout::ClusterRef::new("victim", "local")
        .unwrap()
        .log_file(&session, &node, "raylet.out")
        .unwrap();
    let forged = [
        // Another cluster's object.
        victim.clone(),
        // This cluster's key for another file than the one at the entry's path.
        f.key("gcs_server.out"),
    ];
    let checkpoint = Checkpoint::in_dir(&f.root.path().join(".ray-history")).unwrap();
    for key in forged {
        f.storage
            .put(&key, bytes::Bytes::from_static(b"not yours\n"))
            .await
            .unwrap();
        let mut state = checkpoint.load().unwrap();
        state.files.values_mut().next().unwrap().key = key.to_string();
        checkpoint.save(&state).unwrap();
        f.append("raylet.out", b"more\n");
        let mut engine = f.engine();
        assert!(engine.entries.is_empty(), "{key} was trusted");
        assert!(engine.tick(true).await);
        f.assert_mirrored().await;
        assert_eq!(
            f.storage.get(&key).await.unwrap().as_ref(),
            b"not yours\n",
            "{key} was touched"
        );
    }
}

#[tokio::test]
async fn events_appended_after_the_upload_are_not_deleted_with_their_segment() {
    let f = Fixture::new().await;
    let mut engine = f.engine();
    assert!(engine.tick(false).await);
    let session = SessionName::new(SESSION).unwrap();
    let node = NodeId::new(&node_id()).unwrap();
    engine
        .spool
        .append(&session, &node, b"{\"eventId\":\"a\"}\n")
        .unwrap();
    // One round, with a post landing after the upload and the segment sealed before the
    // round ends (the receiver rolls when the next post finds it due).
    engine.spool.roll(false);
    let segments = spool_files::reconcile(&mut engine.entries, &engine.spool, &f.node.cluster);
    assert!(engine.upload(false).await);
    engine
        .spool
        .append(&session, &node, b"{\"eventId\":\"b\"}\n")
        .unwrap();
    engine.spool.roll(true);
    spool_files::drop_sent(&mut engine.entries, &engine.spool, &segments);
    engine
        .spool
        .append(&session, &node, b"{\"eventId\":\"c\"}\n")
        .unwrap();
    engine.spool.roll(true);
    for _ in 0..3 {
        engine.tick(true).await;
    }
    assert!(engine.spool.segments().is_empty());
    let mut stored = Vec::new();
    let prefix = f.node.cluster.node_events_prefix(&session);
    for object in futures::TryStreamExt::try_collect::<Vec<_>>(f.storage.list(Some(&prefix)))
        .await
        .unwrap()
    {
        stored.extend_from_slice(&f.storage.get(&object.location).await.unwrap());
    }
    let stored = String::from_utf8(stored).unwrap();
    for id in ["a", "b", "c"] {
        assert_eq!(
            stored.matches(&format!("\"{id}\"")).count(),
            1,
            "{id}: {stored}"
        );
    }
}

#[tokio::test]
async fn a_restarted_engine_resumes_its_spool_segments_from_the_checkpoint() {
    let f = Fixture::new().await;
    let mut first = f.engine();
    assert!(first.tick(false).await);
    let session = SessionName::new(SESSION).unwrap();
    let node = NodeId::new(&node_id()).unwrap();
    first.spool.append(&session, &node, b"{}\n").unwrap();
    assert!(first.tick(false).await);
    drop(first);
    let second = f.engine();
    let spooled: Vec<&Entry> = second
        .entries
        .values()
        .filter(|e| e.source == Source::Spool)
        .collect();
    assert_eq!(spooled.len(), 1, "the checkpoint's spool entry is trusted");
    assert_eq!(spooled[0].tracked.uploaded, 3);
    // Not when its key names another node's events object.
    let checkpoint = Checkpoint::in_dir(&f.root.path().join(".ray-history")).unwrap();
    let mut state = checkpoint.load().unwrap();
    let file = state
        .files
        .values_mut()
        .find(|f| f.key.contains("/node_events/"))
        .unwrap();
    file.key = file.key.replace(&node_id(), &"ab".repeat(28));
    checkpoint.save(&state).unwrap();
    assert!(
        f.engine()
            .entries
            .values()
            .all(|e| e.source != Source::Spool)
    );
}

/// Names of the objects under the node's logs.
async fn log_objects(f: &Fixture) -> Vec<String> {
    use futures::TryStreamExt;
    let session = SessionName::new(SESSION).unwrap();
    let node = NodeId::new(&node_id()).unwrap();
    let prefix = f.node.cluster.node_logs_prefix(&session, &node);
    let mut names: Vec<String> = f
        .storage
        .list(Some(&prefix))
        .map_ok(|o| o.location.as_ref()[prefix.as_ref().len() + 1..].to_string())
        .try_collect()
        .await
        .unwrap();
    names.sort();
    names
}

#[tokio::test]
async fn a_rename_mirrored_again_after_a_crash_keeps_one_spare_and_no_copy_twice() {
    // Ray (backup count 1) deletes out.1 (B), renames out (A) -> out.1 and, in the first
    // cases, opens a new out (C). Storage is left as a crash after each step of the mirror
    // would leave it, with the checkpoint from before the rename.
    for (step, new_out) in [
        ("spare", true),
        ("copy", true),
        ("copy", false),
        ("delete", false),
    ] {
        let f = Fixture::new().await;
        f.write("raylet.out", b"generation A\n");
        f.write("raylet.out.1", b"generation B\n");
        assert!(f.engine().tick(true).await);
        std::fs::remove_file(f.logs().join("raylet.out.1")).unwrap();
        std::fs::rename(f.logs().join("raylet.out"), f.logs().join("raylet.out.1")).unwrap();
        if new_out {
            f.write("raylet.out", b"generation C\n");
        }
        let (out, one, two) = (
            f.key("raylet.out"),
            f.key("raylet.out.1"),
            f.key("raylet.out.2"),
        );
        f.storage.copy(&one, &two).await.unwrap();
        if step != "spare" {
            f.storage.copy(&out, &one).await.unwrap();
        }
        if step == "delete" {
            f.storage.delete(&out).await.unwrap();
        }
        assert!(f.engine().tick(true).await, "{step}");
        f.assert_mirrored().await;
        let expected: &[&str] = if new_out {
            &["raylet.out", "raylet.out.1", "raylet.out.2"]
        } else {
            &["raylet.out.1", "raylet.out.2"]
        };
        assert_eq!(
            log_objects(&f).await,
            expected,
            "after {step}, new out: {new_out}"
        );
        assert_eq!(f.object("raylet.out.2").await.unwrap(), b"generation B\n");
    }
}

#[tokio::test]
async fn staging_objects_left_by_a_crash_are_deleted_at_start() {
    let f = Fixture::new().await;
    f.write("raylet.out", b"r\n");
    let staged = layout::Key::parse(&f.key("raylet.out"))
        .unwrap()
        .staging()
        .unwrap();
    f.storage
        .put(&staged, bytes::Bytes::from_static(b"half a rewrite"))
        .await
        .unwrap();
    assert!(f.engine().tick(true).await);
    assert_eq!(f.storage.head(&staged).await.unwrap(), None);
    f.assert_mirrored().await;
}

#[tokio::test]
async fn an_object_of_the_checkpoints_size_with_other_bytes_is_uploaded_again() {
    let f = Fixture::new().await;
    f.write("raylet.out.2", b"raylet 1\nraylet 2\n");
    assert!(f.engine().tick(true).await);
    f.storage
        .put(
            &f.key("raylet.out.2"),
            bytes::Bytes::from_static(b"raylet 3\nraylet 4\n"),
        )
        .await
        .unwrap();
    assert!(f.engine().tick(true).await);
    f.assert_mirrored().await;
}
