//! Command line and environment: the `run` (default) and `sync` commands, the node's identity,
//! and the storage settings flattened from [`ray_history_cli::StorageArgs`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ray_history_cli::StorageArgs;
use ray_history_storage::layout::{ClusterRef, MetaRef};
use ray_history_storage::metadata::{NodeType, Owner};

use crate::{Error, Result};

/// Streams Ray session logs and events to object storage.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: `run`).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of the default `run` command.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The collector's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch the Ray temp dir and stream every session to storage until SIGTERM (default).
    Run(Box<RunArgs>),
    /// Upload one session dir once, in parallel, then exit (backfill).
    Sync(Box<SyncArgs>),
    /// Test the storage settings end to end and exit non-zero with the reason.
    Check(Box<ray_history_cli::CheckCommand>),
}

/// Settings of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Where Ray keeps its sessions (`session_latest`, `session_*`).
    #[arg(long, env = "RAY_TMP_ROOT", default_value = "/tmp/ray")]
    pub ray_tmp_root: PathBuf,
    /// Checkpoint and event spool directory [default: <RAY_TMP_ROOT>/.ray-history].
    #[arg(long, env = "STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// How often new bytes are appended to storage.
    #[arg(long, env = "FLUSH_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub flush_interval: Duration,
    /// On backends without appends, how often changed files are uploaded again (always at exit).
    #[arg(long, env = "REUPLOAD_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub reupload_interval: Duration,
    /// How often `metadata.json` and `nodes/<id>.json` are refreshed.
    #[arg(long, env = "HEARTBEAT_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,
    /// Full rescan of the session dirs even when no file event arrived (inotify can overflow).
    #[arg(long, env = "RESCAN_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub rescan_interval: Duration,
    /// Files uploaded at the same time.
    #[arg(long, env = "UPLOAD_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// On SIGTERM, how long the final flush keeps retrying a failing storage (keep it below
    /// the pod's `terminationGracePeriodSeconds`).
    #[arg(long, env = "FINAL_FLUSH_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub final_flush_timeout: Duration,
    /// Address of the RayEvents HTTP receiver (`/v1/events`), or `off`.
    #[arg(long, env = "EVENTS_LISTEN", default_value = "127.0.0.1:8084", value_parser = parse_listen)]
    pub events_listen: Listen,
    /// Largest accepted `/v1/events` body, in bytes.
    #[arg(long, env = "EVENTS_MAX_BODY", default_value_t = 16 * 1024 * 1024)]
    pub events_max_body: usize,
    /// An events file is closed and a new one started at this size, in bytes…
    #[arg(long, env = "EVENTS_ROLL_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub events_roll_bytes: u64,
    /// …or at this age.
    #[arg(long, env = "EVENTS_ROLL_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub events_roll_interval: Duration,
    /// The head's Ray dashboard (e.g. `http://127.0.0.1:8265`): on the head, its State API is
    /// snapshotted into storage, so the history has what the GCS knew. Unset: no snapshots.
    #[arg(long, env = "RAY_DASHBOARD_URL")]
    pub ray_dashboard_url: Option<reqwest::Url>,
    /// Time between snapshots of the head's state (also taken whenever a job ends).
    #[arg(long, env = "SNAPSHOT_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub snapshot_interval: Duration,
    /// Most rows a snapshot takes of each State API list (Ray itself answers at most 10,000).
    #[arg(long, env = "SNAPSHOT_LIMIT", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub snapshot_limit: u32,
    /// Address of `/healthz`, `/readyz` and `/metrics`, or `off`.
    #[arg(long, env = "METRICS_LISTEN", default_value = "0.0.0.0:9091", value_parser = parse_listen)]
    pub metrics_listen: Listen,
    /// Who this node is.
    #[command(flatten)]
    pub identity: Identity,
    /// Where to write.
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Settings of `sync`.
#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    /// The session dir to upload (`.../session_<date>_<pid>`).
    pub session_dir: PathBuf,
    /// Files uploaded at the same time.
    #[arg(long, env = "UPLOAD_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Who this node is.
    #[command(flatten)]
    pub identity: Identity,
    /// Where to write.
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// An optional listen address (`off` disables the listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

fn parse_listen(value: &str) -> Result<Listen, String> {
    if value.eq_ignore_ascii_case("off") || value.is_empty() {
        return Ok(Listen(None));
    }
    value
        .parse()
        .map(|a| Listen(Some(a)))
        .map_err(|e| format!("{e} (expected host:port or off)"))
}

/// Head or worker, as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NodeKind {
    /// The head node: also writes `metadata.json`.
    Head,
    /// A worker node.
    Worker,
}

/// The node's identity (injected by the operator's webhook in Kubernetes).
#[derive(Debug, Clone, Args)]
pub struct Identity {
    /// The Ray cluster's name.
    #[arg(long, env = "RAY_CLUSTER_NAME", default_value = "local")]
    pub cluster_name: String,
    /// The cluster's unique id (the RayCluster's UID in Kubernetes).
    #[arg(long, env = "RAY_CLUSTER_ID", default_value = "local")]
    pub cluster_id: String,
    /// The cluster's namespace.
    #[arg(
        long = "namespace",
        env = "RAY_CLUSTER_NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
    /// Whether this is the head node.
    #[arg(long, env = "RAY_NODE_TYPE", value_enum, default_value = "head")]
    pub node_type: NodeKind,
    /// The pod's name.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// The pod's IP.
    #[arg(long, env = "POD_IP")]
    pub pod_ip: Option<String>,
    /// Kind of the object owning the cluster (e.g. `RayJob`).
    #[arg(long, env = "OWNER_KIND")]
    pub owner_kind: Option<String>,
    /// Name of the object owning the cluster.
    #[arg(long, env = "OWNER_NAME")]
    pub owner_name: Option<String>,
}

/// The identity, validated against the storage layout.
#[derive(Debug, Clone)]
pub struct Node {
    /// Where this cluster's logs go.
    pub cluster: ClusterRef,
    /// Where this cluster's metadata goes.
    pub meta: MetaRef,
    /// Head or worker.
    pub node_type: NodeType,
    /// Pod name, when known.
    pub pod_name: Option<String>,
    /// Pod IP, when known.
    pub pod_ip: Option<String>,
    /// Owning object, when known.
    pub owner: Option<Owner>,
}

impl Identity {
    /// Validates the identity; errors name the environment variable at fault.
    pub fn resolve(&self) -> Result<Node> {
        let bad = |setting, e: ray_history_storage::layout::LayoutError| Error::Config {
            setting,
            problem: e.to_string(),
        };
        let cluster = ClusterRef::new(&self.cluster_name, &self.cluster_id)
            .map_err(|e| bad("RAY_CLUSTER_NAME/RAY_CLUSTER_ID", e))?;
        let meta = MetaRef::new(&self.namespace, &self.cluster_name)
            .map_err(|e| bad("RAY_CLUSTER_NAMESPACE", e))?;
        let owner = match (&self.owner_kind, &self.owner_name) {
            (Some(kind), Some(name)) if !kind.is_empty() && !name.is_empty() => Some(Owner {
                kind: kind.clone(),
                name: name.clone(),
            }),
            (None, None) => None,
            (Some(k), Some(n)) if k.is_empty() && n.is_empty() => None,
            _ => {
                return Err(Error::Config {
                    setting: "OWNER_KIND/OWNER_NAME",
                    problem: "must be set together".into(),
                });
            }
        };
        Ok(Node {
            cluster,
            meta,
            node_type: match self.node_type {
                NodeKind::Head => NodeType::Head,
                NodeKind::Worker => NodeType::Worker,
            },
            pod_name: self.pod_name.clone().filter(|s| !s.is_empty()),
            pod_ip: self.pod_ip.clone().filter(|s| !s.is_empty()),
            owner,
        })
    }
}

impl RunArgs {
    /// The state dir, defaulting to `<RAY_TMP_ROOT>/.ray-history`.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| self.ray_tmp_root.join(".ray-history"))
    }

    /// Checks the settings that clap cannot check alone.
    pub fn validate(&self) -> Result<()> {
        if self.flush_interval < Duration::from_millis(50) {
            return Err(Error::Config {
                setting: "FLUSH_INTERVAL",
                problem: "must be at least 50ms".into(),
            });
        }
        if self.events_roll_bytes == 0 {
            return Err(Error::Config {
                setting: "EVENTS_ROLL_BYTES",
                problem: "must be greater than 0".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_is_the_default_command_and_durations_parse() {
        let cli = Cli::try_parse_from([
            "ray-history-collector",
            "--flush-interval",
            "500ms",
            "--events-listen",
            "off",
            "--storage",
            "memory",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.flush_interval, Duration::from_millis(500));
        assert_eq!(cli.run.events_listen, Listen(None));
        assert_eq!(cli.run.state_dir(), PathBuf::from("/tmp/ray/.ray-history"));
    }

    #[test]
    fn sync_takes_a_session_dir() {
        let cli =
            Cli::try_parse_from(["ray-history-collector", "sync", "/tmp/ray/session_x"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Sync(s)) if s.session_dir == std::path::Path::new("/tmp/ray/session_x"))
        );
    }

    #[test]
    fn bad_identity_names_the_setting() {
        let cli = Cli::try_parse_from(["ray-history-collector", "--cluster-id", "a_b"]).unwrap();
        let err = cli.run.identity.resolve().unwrap_err().to_string();
        assert!(err.starts_with("RAY_CLUSTER_NAME/RAY_CLUSTER_ID"), "{err}");
        let cli = Cli::try_parse_from(["ray-history-collector", "--owner-kind", "RayJob"]).unwrap();
        assert!(cli.run.identity.resolve().is_err());
    }
}
