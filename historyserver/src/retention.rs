//! Retention: which stored sessions go (`ray-history-server gc`), and deleting one so that it
//! is never listed half deleted.
//!
//! A session is deleted `metadata.json` first (it leaves every listing at once), then its
//! logs, events and snapshots (`log/<cluster>/<session>/`), then its node documents. A sweep
//! that stops in between leaves only unlisted objects, which the next sweep removes once they
//! are older than the grace period. Live sessions and sessions that ended within the grace
//! period are never deleted, whatever the limits say; they still count towards the limits.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use ray_history_storage::layout::{ClusterRef, Key, LOG_ROOT, MetaRef};
use ray_history_storage::{Storage, StorageArgs};

use crate::index::{ReportedState, SessionEntry, SessionIndex};

/// `ray-history-server gc`: delete sessions beyond the retention limits.
#[derive(Debug, Clone, clap::Args)]
pub struct GcArgs {
    /// List what would be deleted, and why, without deleting anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete sessions that started longer ago than this, e.g. `30d`.
    #[arg(long, env = "RETENTION_MAX_AGE", value_parser = humantime::parse_duration)]
    pub max_age: Option<Duration>,
    /// Keep at most this many sessions per cluster (the newest).
    #[arg(long, env = "RETENTION_MAX_SESSIONS_PER_CLUSTER")]
    pub max_sessions_per_cluster: Option<usize>,
    /// Keep at most this many bytes per namespace (the newest sessions), e.g. `500GiB`.
    #[arg(long, env = "RETENTION_MAX_BYTES_PER_NAMESPACE", value_parser = crate::config::parse_bytes)]
    pub max_bytes_per_namespace: Option<u64>,
    /// Never delete a session that ended (or last heartbeated) within this time.
    #[arg(long, env = "RETENTION_GRACE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// A running session whose heartbeat is older than this is lost, not live.
    #[arg(long, env = "LOST_AFTER", default_value = "5m", value_parser = humantime::parse_duration)]
    pub lost_after: Duration,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// The limits of a sweep.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Sessions older than this go.
    pub max_age: Option<Duration>,
    /// Sessions beyond the newest N of a cluster go.
    pub max_sessions_per_cluster: Option<usize>,
    /// Sessions beyond this many bytes of a namespace (newest first) go.
    pub max_bytes_per_namespace: Option<u64>,
    /// Nothing that ended within this time goes.
    pub grace: Duration,
    /// Running sessions with a heartbeat older than this are lost.
    pub lost_after: Duration,
}

impl From<&GcArgs> for Policy {
    fn from(args: &GcArgs) -> Self {
        Self {
            max_age: args.max_age,
            max_sessions_per_cluster: args.max_sessions_per_cluster,
            max_bytes_per_namespace: args.max_bytes_per_namespace,
            grace: args.grace,
            lost_after: args.lost_after,
        }
    }
}

/// A stored session and its size.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The session's documents.
    pub entry: Arc<SessionEntry>,
    /// Bytes under its log prefix (0 when sizes were not needed).
    pub bytes: u64,
}

/// A session the policy deletes, and why.
#[derive(Debug, Clone)]
pub struct Doomed {
    /// The session.
    pub stored: Stored,
    /// Which limit it is beyond.
    pub reason: String,
}

/// What a sweep did (or, in a dry run, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Sessions deleted.
    pub sessions: usize,
    /// Bytes of their objects.
    pub bytes: u64,
    /// Objects left by an interrupted sweep, deleted.
    pub orphans: usize,
}

/// The sessions `policy` deletes at `now`, oldest first. `sessions` is newest first.
pub fn plan(sessions: &[Stored], policy: &Policy, now: DateTime<Utc>) -> Vec<Doomed> {
    let mut per_cluster: HashMap<_, usize> = HashMap::new();
    let mut per_namespace: HashMap<_, u64> = HashMap::new();
    let mut doomed = Vec::new();
    for stored in sessions {
        let meta = &stored.entry.meta;
        let rank = per_cluster.entry(&stored.entry.meta_ref).or_default();
        *rank += 1;
        let used = per_namespace
            .entry(stored.entry.meta_ref.namespace.clone())
            .or_default();
        *used += stored.bytes;
        let age = |at: DateTime<Utc>| now.signed_duration_since(at).to_std().unwrap_or_default();
        let reason = if let Some(max) = policy.max_age.filter(|max| age(meta.start_time) > *max) {
            format!("started more than {} ago", humantime::format_duration(max))
        } else if let Some(max) = policy.max_sessions_per_cluster.filter(|max| *rank > *max) {
            format!("beyond the newest {max} sessions of its cluster")
        } else if let Some(max) = policy.max_bytes_per_namespace.filter(|max| *used > *max) {
            format!("beyond {max} bytes of its namespace")
        } else {
            continue;
        };
        let live = stored.entry.state(now, policy.lost_after) == ReportedState::Running;
        let ended = meta.end_time.unwrap_or(meta.last_heartbeat);
        if live || age(ended) < policy.grace {
            continue;
        }
        doomed.push(Doomed {
            stored: stored.clone(),
            reason,
        });
    }
    doomed.reverse();
    doomed
}

/// Every stored session, newest first, with its size when `sized`.
pub async fn stored(storage: &Storage, sized: bool) -> anyhow::Result<Vec<Stored>> {
    let index = SessionIndex::new(storage.clone());
    index.refresh().await?;
    let mut out = Vec::new();
    for entry in &index.snapshot().sessions {
        let bytes = if sized {
            storage
                .list(Some(&log_prefix(entry)?))
                .try_fold(0, |sum, meta| async move { Ok(sum + meta.size) })
                .await?
        } else {
            0
        };
        out.push(Stored {
            entry: entry.clone(),
            bytes,
        });
    }
    Ok(out)
}

fn log_prefix(entry: &SessionEntry) -> anyhow::Result<Path> {
    let meta = &entry.meta;
    let cluster = ClusterRef::new(meta.cluster_name.as_str(), meta.cluster_id.as_str())?;
    Ok(cluster.session_prefix(&meta.session_name))
}

/// Deletes one session: `metadata.json`, then its logs, events and snapshots, then its node
/// documents. Returns the bytes deleted.
pub async fn delete(storage: &Storage, entry: &SessionEntry) -> anyhow::Result<u64> {
    let session = &entry.meta.session_name;
    storage.delete(&entry.meta_ref.metadata(session)).await?;
    let mut bytes = delete_prefix(storage, &log_prefix(entry)?).await?;
    bytes += delete_prefix(storage, &entry.meta_ref.session_prefix(session)).await?;
    Ok(bytes)
}

async fn delete_prefix(storage: &Storage, prefix: &Path) -> anyhow::Result<u64> {
    let objects: Vec<_> = storage.list(Some(prefix)).try_collect().await?;
    let mut bytes = 0;
    for object in objects {
        storage.delete(&object.location).await?;
        bytes += object.size;
    }
    Ok(bytes)
}

/// Prefixes of sessions whose `metadata.json` is gone (a sweep stopped half way): their logs
/// and their node documents, when every object is older than `grace`. A session whose
/// `metadata.json` exists but cannot be read is not an orphan.
async fn orphans(
    storage: &Storage,
    grace: Duration,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Path>> {
    let old = |at: DateTime<Utc>| {
        now.signed_duration_since(at)
            .to_std()
            .is_ok_and(|age| age > grace)
    };
    let documents: Vec<_> = storage.list(Some(&MetaRef::root())).try_collect().await?;
    let mut described: HashSet<(String, String)> = HashSet::new();
    let mut with_metadata: HashSet<Path> = HashSet::new();
    // Node documents of sessions without metadata.json: (prefix, all old).
    let mut undescribed: HashMap<Path, bool> = HashMap::new();
    for object in &documents {
        match Key::parse(&object.location) {
            Ok(Key::Metadata { meta, session }) => {
                with_metadata.insert(meta.session_prefix(&session));
                described.insert((meta.cluster.to_string(), session.to_string()));
            }
            Ok(Key::NodeMeta { meta, session, .. }) => {
                let all_old = undescribed
                    .entry(meta.session_prefix(&session))
                    .or_insert(true);
                *all_old &= old(object.last_modified);
            }
            _ => {}
        }
    }
    let mut out: Vec<Path> = undescribed
        .into_iter()
        .filter(|(prefix, all_old)| *all_old && !with_metadata.contains(prefix))
        .map(|(prefix, _)| prefix)
        .collect();
    let clusters = storage
        .list_with_delimiter(Some(&Path::from(LOG_ROOT)))
        .await?;
    for cluster_prefix in clusters.common_prefixes {
        let Some(cluster) = cluster_prefix
            .filename()
            .and_then(|segment| ClusterRef::parse_segment(segment).ok())
        else {
            continue;
        };
        for session in storage
            .list_with_delimiter(Some(&cluster_prefix))
            .await?
            .common_prefixes
        {
            let name = session.filename().unwrap_or_default().to_string();
            if described.contains(&(cluster.name.to_string(), name)) {
                continue;
            }
            let objects: Vec<_> = storage.list(Some(&session)).try_collect().await?;
            if objects
                .iter()
                .map(|o| o.last_modified)
                .max()
                .is_some_and(old)
            {
                out.push(session);
            }
        }
    }
    Ok(out)
}

/// Runs one sweep; prints a line per session (and per orphan) it deletes or would delete.
pub async fn sweep(storage: &Storage, policy: &Policy, dry_run: bool) -> anyhow::Result<Report> {
    let now = Utc::now();
    let sessions = stored(storage, policy.max_bytes_per_namespace.is_some()).await?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut report = Report::default();
    for doomed in plan(&sessions, policy, now) {
        let entry = &doomed.stored.entry;
        let bytes = if dry_run {
            doomed.stored.bytes
        } else {
            delete(storage, entry).await?
        };
        tracing::info!(
            namespace = %entry.meta_ref.namespace,
            cluster = %entry.meta_ref.cluster,
            session = %entry.meta.session_name,
            bytes,
            reason = %doomed.reason,
            "{verb}"
        );
        println!(
            "{verb} {}/{}/{}: {}",
            entry.meta_ref.namespace,
            entry.meta_ref.cluster,
            entry.meta.session_name,
            doomed.reason
        );
        report.sessions += 1;
        report.bytes += bytes;
    }
    for prefix in orphans(storage, policy.grace, now).await? {
        if !dry_run {
            report.bytes += delete_prefix(storage, &prefix).await?;
        }
        println!("{verb} {prefix}/: its metadata is gone (an interrupted sweep)");
        report.orphans += 1;
    }
    Ok(report)
}

/// `ray-history-server gc`.
pub async fn run(args: GcArgs) -> anyhow::Result<Report> {
    let config = args.storage.resolve()?;
    let storage = Storage::open(&config).await?;
    let report = sweep(&storage, &Policy::from(&args), args.dry_run).await?;
    println!(
        "{} {} sessions ({} bytes), {} orphaned prefixes",
        if args.dry_run {
            "would delete"
        } else {
            "deleted"
        },
        report.sessions,
        report.bytes,
        report.orphans
    );
    Ok(report)
}
