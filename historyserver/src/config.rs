//! Command-line flags of `ray-history-server serve` (every flag also reads an environment
//! variable).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ray_history_cli::StorageArgs;

use crate::retention::RetentionArgs;

/// Flags of the `serve` command.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Memory budget of the loaded-session cache, e.g. `1GiB`, `512MiB` or bytes.
    #[arg(long, env = "CACHE_MAX_BYTES", default_value = "1GiB", value_parser = crate::units::parse_bytes)]
    pub cache_max_bytes: u64,
    /// Ray's built dashboard (`ray/dashboard/client/build`) to serve under each session.
    #[arg(long, env = "RAY_DASHBOARD_DIR")]
    pub ray_dashboard_dir: Option<PathBuf>,
    /// How often the session catalog is refreshed and live sessions are reloaded.
    #[arg(long, env = "REFRESH_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub refresh_interval: Duration,
    /// A running session whose heartbeat is older than this is reported as lost.
    #[arg(long, env = "LOST_AFTER", default_value = "5m", value_parser = humantime::parse_duration)]
    pub lost_after: Duration,
    /// Most sessions loaded from storage at once (cold loads parse every event file); more
    /// wait their turn, so a burst of requests for old sessions cannot exhaust memory or CPU.
    #[arg(long, env = "MAX_CONCURRENT_LOADS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_loads: u32,
    /// Most API requests handled at once (health, readiness and metrics not counted); more
    /// wait for a free slot within the request timeout.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_requests: u32,
    /// Most API requests one client may have in flight (a client is its address, or the first
    /// `X-Forwarded-For` entry behind a proxy in `--auth-trusted-proxies`); more get 429.
    #[arg(long, env = "MAX_REQUESTS_PER_CLIENT", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_requests_per_client: u32,
    /// Longest an API request may take to produce its response (waiting for a slot included);
    /// past it the answer is 503. Streaming a download's body is not limited.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// A client must send its request headers within this time of connecting (or of its
    /// previous request), else the connection is closed: idle and trickling clients cannot
    /// pile up.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// Who may see what: `none` (everyone sees every namespace), `header` (the user and
    /// groups a trusted proxy forwards, checked against `--auth-acl`) or `kubernetes` (a
    /// bearer token checked by TokenReview, each namespace by SubjectAccessReview).
    #[arg(long, env = "AUTH_MODE", value_enum, default_value = "none")]
    pub auth: crate::auth::AuthMode,
    /// `header` mode: the proxies whose `X-Forwarded-User`/`-Groups` are believed, as
    /// comma-separated addresses or networks (`10.0.0.0/8,127.0.0.1`).
    #[arg(long, env = "AUTH_TRUSTED_PROXIES", default_value = "")]
    pub auth_trusted_proxies: String,
    /// `header` mode: a YAML file with `admins` (groups that see all), `groups` and `users`
    /// (each a map to lists of namespaces).
    #[arg(long, env = "AUTH_ACL")]
    pub auth_acl: Option<PathBuf>,
    /// `kubernetes` mode: audiences the token must be valid for, comma-separated (empty: the
    /// API server's own).
    #[arg(long, env = "AUTH_TOKEN_AUDIENCES", default_value = "")]
    pub auth_token_audiences: String,
    /// `kubernetes` mode: the verb a user needs on `--auth-sar-resource` in a namespace to see
    /// its sessions.
    #[arg(long, env = "AUTH_SAR_VERB", default_value = "get")]
    pub auth_sar_verb: String,
    /// `kubernetes` mode: the API group of that resource.
    #[arg(long, env = "AUTH_SAR_GROUP", default_value = "ray.io")]
    pub auth_sar_group: String,
    /// `kubernetes` mode: the resource.
    #[arg(long, env = "AUTH_SAR_RESOURCE", default_value = "rayclusters")]
    pub auth_sar_resource: String,
    /// `kubernetes` mode: how long a token's review and a namespace's access decision are
    /// reused (revoked access takes up to this long to apply; at most 1h).
    #[arg(long, env = "AUTH_CACHE_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub auth_cache_ttl: Duration,
    /// Store an index of each finished session next to it on first load, and read it on later
    /// loads (any replica, any restart) instead of parsing the events again; tasks are then
    /// served from a local copy a block at a time.
    #[arg(long, env = "SESSION_INDEX", default_value_t = true, action = clap::ArgAction::Set)]
    pub session_index: bool,
    /// Where local copies of session indexes go (unlinked files: nothing is left behind).
    /// Default: the system temp dir.
    #[arg(long, env = "SESSION_INDEX_DIR")]
    pub session_index_dir: Option<PathBuf>,
    /// Finished sessions that ended within this long ago are loaded in the background as soon
    /// as the catalog lists them, which builds their session index, so their first view is
    /// answered from it; `0s` turns it off.
    #[arg(long, env = "INDEX_AHEAD", default_value = "24h", value_parser = humantime::parse_duration)]
    pub index_ahead: Duration,
    /// Retention limits; when any is set, the server sweeps (see `ray-history-server gc`).
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// How often the retention sweeper runs.
    #[arg(long, env = "RETENTION_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub retention_interval: Duration,
    /// The Lease (in `POD_NAMESPACE`) whose holder is the one replica that sweeps.
    #[arg(
        long,
        env = "RETENTION_LEASE",
        default_value = "ray-history-server-retention"
    )]
    pub retention_lease: String,
    /// This pod's namespace (the Downward API's `metadata.namespace`), for the Lease.
    #[arg(long, env = "POD_NAMESPACE")]
    pub pod_namespace: Option<String>,
    /// This pod's name (the Downward API's `metadata.name`), its identity in the Lease.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Storage settings.
    #[command(flatten)]
    pub storage: StorageArgs,
}
