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
use ray_history_cli::StorageArgs;
use ray_history_storage::Storage;
use ray_history_storage::layout::{ClusterRef, Key, LOG_ROOT, MetaRef};

use crate::catalog::{Catalog, ReportedState, SessionEntry};

/// The retention limits, shared by `gc` and `serve` (each flag also reads the environment
/// variable shown).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RetentionArgs {
    /// Delete sessions that started longer ago than this, e.g. `30d`.
    #[arg(long = "retention-max-age", visible_alias = "max-age", env = "RETENTION_MAX_AGE", value_parser = humantime::parse_duration)]
    pub max_age: Option<Duration>,
    /// Keep at most this many sessions per cluster (the newest).
    #[arg(
        long = "retention-max-sessions-per-cluster",
        visible_alias = "max-sessions-per-cluster",
        env = "RETENTION_MAX_SESSIONS_PER_CLUSTER"
    )]
    pub max_sessions_per_cluster: Option<usize>,
    /// Keep at most this many bytes per namespace (the newest sessions), e.g. `500GiB`.
    #[arg(long = "retention-max-bytes-per-namespace", visible_alias = "max-bytes-per-namespace", env = "RETENTION_MAX_BYTES_PER_NAMESPACE", value_parser = crate::units::parse_bytes)]
    pub max_bytes_per_namespace: Option<u64>,
    /// Limits of particular namespaces or clusters, overriding the ones above: a YAML or JSON
    /// list of `{namespace, cluster, maxAge, maxSessionsPerCluster, maxBytesPerNamespace}`
    /// (the first rule whose namespace and cluster match a session applies).
    #[arg(long = "retention-rules", env = "RETENTION_RULES", value_parser = parse_rules, allow_hyphen_values = true)]
    pub rules: Option<Rules>,
    /// Never delete a session that ended (or last heartbeated) within this time.
    #[arg(long = "retention-grace", visible_alias = "grace", env = "RETENTION_GRACE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub grace: Duration,
}

/// `ray-history-server gc`: delete sessions beyond the retention limits.
#[derive(Debug, Clone, clap::Args)]
pub struct GcArgs {
    /// List what would be deleted, and why, without deleting anything.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// A running session whose heartbeat is older than this is lost, not live.
    #[arg(long, env = "LOST_AFTER", default_value = "5m", value_parser = humantime::parse_duration)]
    pub lost_after: Duration,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// What may be kept of one scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Sessions older than this go.
    #[serde(default, deserialize_with = "duration_text")]
    pub max_age: Option<Duration>,
    /// Sessions beyond the newest N of a cluster go.
    #[serde(default)]
    pub max_sessions_per_cluster: Option<usize>,
    /// Sessions beyond this many bytes of a namespace (newest first) go.
    #[serde(default, deserialize_with = "bytes_text")]
    pub max_bytes_per_namespace: Option<u64>,
}

impl Limits {
    fn is_empty(&self) -> bool {
        self.max_age.is_none()
            && self.max_sessions_per_cluster.is_none()
            && self.max_bytes_per_namespace.is_none()
    }
}

/// Limits for the sessions of one namespace, or of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// The namespace it applies to (any when absent).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The cluster name it applies to (any when absent).
    #[serde(default)]
    pub cluster: Option<String>,
    /// Its limits (a limit left out is no limit).
    #[serde(flatten)]
    pub limits: Limits,
}

/// `--retention-rules`, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules(pub Vec<Rule>);

fn parse_rules(text: &str) -> Result<Rules, String> {
    let rules: Vec<Rule> =
        serde_yaml_ng::from_str(text).map_err(|e| format!("not a list of retention rules: {e}"))?;
    if let Some(rule) = rules
        .iter()
        .find(|r| r.namespace.is_none() && r.cluster.is_none())
    {
        return Err(format!(
            "a rule needs a namespace or a cluster (the flags set the default): {rule:?}"
        ));
    }
    Ok(Rules(rules))
}

fn duration_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text: Option<String> = serde::Deserialize::deserialize(d)?;
    text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
        .transpose()
}

fn bytes_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let value: Option<serde_yaml_ng::Value> = serde::Deserialize::deserialize(d)?;
    match value {
        None => Ok(None),
        Some(serde_yaml_ng::Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a byte count"))),
        Some(serde_yaml_ng::Value::String(t)) => crate::units::parse_bytes(&t)
            .map(Some)
            .map_err(serde::de::Error::custom),
        Some(other) => Err(serde::de::Error::custom(format!(
            "{other:?} is not a size such as 500GiB"
        ))),
    }
}

/// The limits of a sweep.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Limits of sessions no rule matches.
    pub limits: Limits,
    /// Limits of particular namespaces or clusters, first match wins.
    pub rules: Vec<Rule>,
    /// Nothing that ended within this time goes.
    pub grace: Duration,
    /// Running sessions with a heartbeat older than this are lost.
    pub lost_after: Duration,
}

impl Policy {
    /// The policy of these flags.
    pub fn new(args: &RetentionArgs, lost_after: Duration) -> Self {
        Self {
            limits: Limits {
                max_age: args.max_age,
                max_sessions_per_cluster: args.max_sessions_per_cluster,
                max_bytes_per_namespace: args.max_bytes_per_namespace,
            },
            rules: args.rules.clone().unwrap_or_default().0,
            grace: args.grace,
            lost_after,
        }
    }

    /// Whether nothing is ever deleted.
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty() && self.rules.iter().all(|r| r.limits.is_empty())
    }

    /// The limits of a session of `namespace`/`cluster`.
    pub fn limits_of(&self, namespace: &str, cluster: &str) -> &Limits {
        self.rules
            .iter()
            .find(|r| {
                r.namespace.as_deref().is_none_or(|n| n == namespace)
                    && r.cluster.as_deref().is_none_or(|c| c == cluster)
            })
            .map_or(&self.limits, |r| &r.limits)
    }

    fn needs_sizes(&self) -> bool {
        self.limits.max_bytes_per_namespace.is_some()
            || self
                .rules
                .iter()
                .any(|r| r.limits.max_bytes_per_namespace.is_some())
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
    /// One line per session or orphaned prefix: what went (or would go), and why.
    pub actions: Vec<String>,
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
        let limits = policy.limits_of(
            stored.entry.meta_ref.namespace.as_str(),
            stored.entry.meta_ref.cluster.as_str(),
        );
        let reason = if let Some(max) = limits.max_age.filter(|max| age(meta.start_time) > *max) {
            format!("started more than {} ago", humantime::format_duration(max))
        } else if let Some(max) = limits.max_sessions_per_cluster.filter(|max| *rank > *max) {
            format!("beyond the newest {max} sessions of its cluster")
        } else if let Some(max) = limits.max_bytes_per_namespace.filter(|max| *used > *max) {
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
    let index = Catalog::new(storage.clone());
    index.refresh().await?;
    let mut out = Vec::new();
    for entry in &index.snapshot().sessions {
        let bytes = if sized {
            storage
                .list(Some(&entry.meta.log_prefix()))
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

/// Deletes one session: `metadata.json`, then its logs, events and snapshots, then its node
/// documents. Returns the bytes deleted.
pub async fn delete(storage: &Storage, entry: &SessionEntry) -> anyhow::Result<u64> {
    let session = &entry.meta.session_name;
    storage.delete(&entry.meta_ref.metadata(session)).await?;
    let mut bytes = delete_prefix(storage, &entry.meta.log_prefix()).await?;
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

/// Runs one sweep; logs (and reports) each session and orphan it deletes or would delete.
pub async fn sweep(storage: &Storage, policy: &Policy, dry_run: bool) -> anyhow::Result<Report> {
    let now = Utc::now();
    let sessions = stored(storage, policy.needs_sizes()).await?;
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
        report.actions.push(format!(
            "{verb} {}/{}/{}: {}",
            entry.meta_ref.namespace,
            entry.meta_ref.cluster,
            entry.meta.session_name,
            doomed.reason
        ));
        report.sessions += 1;
        report.bytes += bytes;
    }
    for prefix in orphans(storage, policy.grace, now).await? {
        if !dry_run {
            report.bytes += delete_prefix(storage, &prefix).await?;
        }
        tracing::info!(%prefix, "{verb}: its metadata is gone (an interrupted sweep)");
        report.actions.push(format!(
            "{verb} {prefix}/: its metadata is gone (an interrupted sweep)"
        ));
        report.orphans += 1;
    }
    Ok(report)
}

/// `ray-history-server gc`.
pub async fn run(args: GcArgs) -> anyhow::Result<Report> {
    let config = args.storage.resolve()?;
    let storage = Storage::open(&config).await?;
    let policy = Policy::new(&args.retention, args.lost_after);
    let report = sweep(&storage, &policy, args.dry_run).await?;
    for line in &report.actions {
        println!("{line}");
    }
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

/// Sweeps every `interval` while `leader` says this replica leads, counting what it deletes
/// in the metrics.
pub async fn run_sweeper(
    storage: Storage,
    policy: Policy,
    interval: Duration,
    leader: tokio::sync::watch::Receiver<bool>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if !*leader.borrow() {
            continue;
        }
        match sweep(&storage, &policy, false).await {
            Ok(report) => {
                metrics.sessions_deleted.inc_by(report.sessions as u64);
                metrics.bytes_deleted.inc_by(report.bytes);
                metrics.retention_sweeps.inc();
                tracing::info!(
                    sessions = report.sessions,
                    bytes = report.bytes,
                    orphans = report.orphans,
                    "retention sweep done"
                );
            }
            Err(e) => {
                metrics.retention_sweep_failures.inc();
                tracing::warn!(error = %e, "retention sweep failed; the next one retries");
            }
        }
    }
}
