//! Retention (`ray-history-server gc`) on local disk and real Azurite: old sessions go, young
//! and live ones stay, a dry run deletes nothing, and a sweep that stopped half way leaves no
//! session listed that cannot be opened (the next sweep removes what is left).

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use ray_history_server::catalog::Catalog;
use ray_history_server::retention::{self, Limits, Policy, Report};
use ray_history_storage::layout::{ClusterRef, MetaRef, NodeId, SessionName};
use ray_history_storage::{Storage, StorageConfig};
use ray_history_testkit::Azurite;

const NODE: &str = "3a9b4df81080f082d6c30fd89c7aae18fdbdc0df8d6543f09ff1df38";

fn session(n: u32) -> SessionName {
    SessionName::new(&format!("session_2026-11-{n:02}_00-00-00_000000_1")).unwrap()
}

/// Stores a session of cluster `cluster`: metadata, a node document and two log files.
/// `end`: finished then; `None`: running, heartbeating at `heartbeat`.
async fn put_session(
    storage: &Storage,
    cluster: &str,
    name: &SessionName,
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
    heartbeat: DateTime<Utc>,
) {
    let cluster_ref = ClusterRef::new(cluster, "local").unwrap();
    let meta_ref = MetaRef::new(support::NAMESPACE, cluster).unwrap();
    let node = NodeId::new(NODE).unwrap();
    for file in ["raylet.out", "events/event_GCS.log"] {
        let key = cluster_ref.log_file(name, &node, file).unwrap();
        storage.put(&key, vec![b'x'; 1000].into()).await.unwrap();
    }
    let mut meta =
        support::session_metadata(&meta_ref, &cluster_ref, name, Some(&node), start, end);
    meta.last_heartbeat = heartbeat;
    support::put_documents(storage, &meta_ref, &meta, &node).await;
}

async fn listed(storage: &Storage) -> Vec<String> {
    let index = Catalog::new(storage.clone());
    index.refresh().await.unwrap();
    let mut names: Vec<String> = index
        .snapshot()
        .sessions
        .iter()
        .map(|s| s.meta.session_name.to_string())
        .collect();
    names.sort();
    names
}

async fn object_count(storage: &Storage) -> usize {
    let all: Vec<_> = storage.list(None).try_collect().await.unwrap();
    all.len()
}

fn policy() -> Policy {
    Policy {
        limits: Limits {
            max_age: Some(Duration::from_secs(30 * 86_400)),
            max_sessions_per_cluster: Some(3),
            max_bytes_per_namespace: None,
        },
        rules: Vec::new(),
        grace: Duration::from_secs(3600),
        lost_after: Duration::from_secs(300),
    }
}

async fn retention_suite(storage: &Storage) {
    let now = Utc::now();
    let days = |n: i64| now - chrono::Duration::days(n);
    let minutes = |n: i64| now - chrono::Duration::minutes(n);
    // Cluster a: one too old, one live though old, one ended a moment ago though old, one
    // lost (stale heartbeat) and old.
    put_session(
        storage,
        "a",
        &session(1),
        days(40),
        Some(days(40)),
        days(40),
    )
    .await;
    put_session(storage, "a", &session(2), days(60), None, now).await;
    put_session(
        storage,
        "a",
        &session(3),
        days(45),
        Some(minutes(10)),
        minutes(10),
    )
    .await;
    put_session(storage, "a", &session(4), days(50), None, days(2)).await;
    // Cluster b: five young finished sessions, at most three kept.
    for n in 10..15 {
        let start = days(20 - i64::from(n - 10));
        put_session(storage, "b", &session(n), start, Some(start), start).await;
    }
    let before = object_count(storage).await;

    let dry = retention::sweep(storage, &policy(), true).await.unwrap();
    assert_eq!(dry.sessions, 4, "{dry:?}");
    assert_eq!(
        object_count(storage).await,
        before,
        "a dry run deletes nothing"
    );

    let report = retention::sweep(storage, &policy(), false).await.unwrap();
    assert_eq!(
        report,
        Report {
            sessions: 4,
            bytes: report.bytes,
            orphans: 0,
            actions: report.actions.clone(),
        }
    );
    assert!(report.bytes >= 4 * 2000, "{report:?}");
    let names: Vec<String> = [2, 3, 12, 13, 14]
        .iter()
        .map(|n| session(*n).to_string())
        .collect();
    assert_eq!(listed(storage).await, names);
    // Nothing of the deleted sessions is left.
    assert_eq!(object_count(storage).await, before - 4 * 4);

    // A sweep that stopped after deleting metadata.json: the session is no longer listed, and
    // the next sweep (past the grace period) removes its logs and node document.
    let meta_ref = MetaRef::new(support::NAMESPACE, "b").unwrap();
    storage
        .delete(&meta_ref.metadata(&session(14)))
        .await
        .unwrap();
    assert!(!listed(storage).await.contains(&session(14).to_string()));
    let young = retention::sweep(storage, &policy(), false).await.unwrap();
    assert_eq!(young.orphans, 0, "younger than the grace period: kept");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = Policy {
        grace: Duration::from_secs(1),
        limits: Limits::default(),
        ..policy()
    };
    let swept = retention::sweep(storage, &later, false).await.unwrap();
    assert_eq!(
        swept.orphans, 2,
        "its logs and its node document: {swept:?}"
    );
    assert_eq!(object_count(storage).await, before - 5 * 4);
}

#[tokio::test]
async fn retention_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&StorageConfig::local(dir.path()))
        .await
        .unwrap();
    retention_suite(&storage).await;
}

#[tokio::test]
async fn retention_on_azurite() {
    let storage = Storage::open(&Azurite::shared().storage_config("retention"))
        .await
        .unwrap();
    retention_suite(&storage).await;
}

#[tokio::test]
async fn bytes_per_namespace_keep_the_newest() {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let now = Utc::now();
    for n in 1..=4 {
        let start = now - chrono::Duration::days(10 - i64::from(n));
        put_session(&storage, "c", &session(n), start, Some(start), start).await;
    }
    // Each session holds 2,000 bytes of logs: 5,000 bytes keep the newest two.
    let policy = Policy {
        limits: Limits {
            max_bytes_per_namespace: Some(5_000),
            ..Limits::default()
        },
        ..policy()
    };
    let report = retention::sweep(&storage, &policy, false).await.unwrap();
    assert_eq!(report.sessions, 2);
    assert_eq!(
        listed(&storage).await,
        vec![session(3).to_string(), session(4).to_string()]
    );
}

#[tokio::test]
async fn rules_give_a_cluster_its_own_limits() {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let now = Utc::now();
    for (cluster, n) in [("d", 1), ("d", 2), ("d", 3), ("e", 4), ("e", 5), ("e", 6)] {
        let start = now - chrono::Duration::days(10 - i64::from(n));
        put_session(&storage, cluster, &session(n), start, Some(start), start).await;
    }
    // The default keeps 2 per cluster; cluster e keeps all but what is over 5.5 days old.
    let rules = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(
        "- cluster: e\n  maxAge: 5d 12h\n- namespace: elsewhere\n  maxSessionsPerCluster: 0\n",
    )
    .unwrap();
    let args = ray_history_server::retention::RetentionArgs {
        max_sessions_per_cluster: Some(2),
        rules: Some(parse_rules(&serde_yaml_ng::to_string(&rules).unwrap())),
        grace: Duration::from_secs(60),
        ..Default::default()
    };
    let policy = Policy::new(&args, Duration::from_secs(300));
    let report = retention::sweep(&storage, &policy, false).await.unwrap();
    assert_eq!(report.sessions, 2, "{:?}", report.actions);
    assert_eq!(
        listed(&storage).await,
        [2, 3, 5, 6].map(|n| session(n).to_string())
    );
}

/// `--retention-rules` as the server parses it.
fn parse_rules(text: &str) -> ray_history_server::retention::Rules {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        retention: ray_history_server::retention::RetentionArgs,
    }
    Wrapper::try_parse_from(["test", "--retention-rules", text])
        .unwrap()
        .retention
        .rules
        .unwrap()
}

#[test]
fn bad_rules_are_refused_naming_the_setting() {
    use clap::Parser;
    #[derive(Parser, Debug)]
    struct Wrapper {
        #[command(flatten)]
        retention: ray_history_server::retention::RetentionArgs,
    }
    for bad in [
        "- maxAge: 3d",
        "- namespace: a\n  maxAge: soon",
        "- namespace: a\n  maxAges: 3d",
        "not a list",
    ] {
        let error = Wrapper::try_parse_from(["test", "--retention-rules", bad])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--retention-rules"), "{bad}: {error}");
    }
}

#[tokio::test]
async fn the_server_sweeps_on_its_own_and_counts_what_it_deleted() {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let now = Utc::now();
    for n in 1..=4 {
        let start = now - chrono::Duration::days(10 - i64::from(n));
        put_session(&storage, "f", &session(n), start, Some(start), start).await;
    }
    let mut args = support::serve_args();
    args.retention.max_sessions_per_cluster = Some(1);
    args.retention.grace = Duration::from_secs(60);
    args.retention_interval = Duration::from_millis(200);
    let base = support::serve(storage.clone(), args).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let deleted = support::counter(&base, "sessions_deleted").await;
        if deleted == 3 {
            let bytes = support::counter(&base, "bytes_deleted").await;
            assert!(
                bytes >= 3 * 2000,
                "three sessions of 2,000 log bytes: {bytes} bytes deleted"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no sweep deleted the 3 old sessions: {deleted} deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed(&storage).await, vec![session(4).to_string()]);
}
