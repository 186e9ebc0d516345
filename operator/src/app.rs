//! The `run` command: metrics endpoint, webhook (every replica), certificate upkeep, leader
//! election, and the controllers (leader only).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use tokio::net::TcpListener;

use crate::crd::server::DEFAULT_SERVER_IMAGE;
use crate::crd::storage::{DEFAULT_COLLECTOR_IMAGE, HistoryStorage};
use crate::metrics::{self, Metrics};
use crate::reconcile::{self, Context, ProbePolicy, Settings};
use crate::webhook::certs::{self, CertSource, Managed};
use crate::webhook::tls::{self, Resolver};
use crate::webhook::{self, WebhookState};
use crate::{Error, Result};
use ray_history_lease::LeaseLock;

/// Flags of `ray-history-operator run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_LISTEN", default_value = "0.0.0.0:8080")]
    pub metrics_listen: SocketAddr,
    /// HTTPS address of the admission webhook.
    #[arg(long, env = "WEBHOOK_LISTEN", default_value = "0.0.0.0:9443")]
    pub webhook_listen: SocketAddr,
    /// Out of cluster (development, tests): serve the webhook at this URL, e.g.
    /// `https://127.0.0.1:9443`, issue its certificate for that host and point the webhook
    /// configuration at it instead of at the Service.
    #[arg(long, env = "WEBHOOK_URL", value_parser = parse_webhook_url)]
    pub webhook_url: Option<WebhookUrl>,
    /// Directory with tls.crt and tls.key (cert-manager); when unset the operator makes and
    /// rotates its own certificate.
    #[arg(long, env = "WEBHOOK_CERT_DIR")]
    pub webhook_cert_dir: Option<PathBuf>,
    /// Secret for the operator-made certificate.
    #[arg(
        long,
        env = "WEBHOOK_SECRET",
        default_value = "ray-history-webhook-tls"
    )]
    pub webhook_secret: String,
    /// MutatingWebhookConfiguration whose caBundle the operator keeps current.
    #[arg(long, env = "WEBHOOK_CONFIGURATION", default_value = "ray-history")]
    pub webhook_configuration: String,
    /// Service in front of the webhook (certificate DNS names).
    #[arg(long, env = "WEBHOOK_SERVICE", default_value = "ray-history-webhook")]
    pub webhook_service: String,
    /// Namespace the operator runs in.
    #[arg(long, env = "POD_NAMESPACE", default_value = "ray-history")]
    pub namespace: String,
    /// This replica's name (leader election identity, Event reporter).
    #[arg(long, env = "POD_NAME", default_value = "ray-history-operator")]
    pub pod_name: String,
    /// Lease used for leader election.
    #[arg(long, env = "LEASE_NAME", default_value = "ray-history-operator")]
    pub lease_name: String,
    /// How long a leader's lease lasts without renewal.
    #[arg(long, env = "LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,
    /// Collector image injected when a HistoryStorage names none.
    #[arg(long, env = "COLLECTOR_IMAGE", default_value = DEFAULT_COLLECTOR_IMAGE)]
    pub collector_image: String,
    /// History server image when a HistoryServer names none.
    #[arg(long, env = "SERVER_IMAGE", default_value = DEFAULT_SERVER_IMAGE)]
    pub server_image: String,
    /// The ClusterRole (from the chart) bound to a HistoryServer's account when it has
    /// retention: its replicas elect their sweeper with a Lease.
    #[arg(
        long,
        env = "SERVER_RETENTION_CLUSTER_ROLE",
        default_value = "ray-history-server-retention"
    )]
    pub server_retention_cluster_role: String,
    /// Re-probe healthy storage this often.
    #[arg(long, env = "PROBE_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub probe_interval: Duration,
    /// Give up a storage probe after this long.
    #[arg(long, env = "PROBE_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub probe_timeout: Duration,
    /// Custom storage endpoint hosts the operator may probe, besides the public clouds'
    /// (comma-separated globs, e.g. `*.svc.cluster.local`); others are not probed.
    #[arg(long, env = "ALLOWED_ENDPOINTS", value_delimiter = ',', value_parser = parse_host_pattern)]
    pub allowed_endpoints: Vec<String>,
    /// Retry objects with problems this often.
    #[arg(long, env = "RETRY_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub retry_interval: Duration,
}

/// Runs the operator until SIGTERM or Ctrl-C; returns an error if leadership is lost (so the
/// pod restarts as a follower) or a listener cannot start.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(Error::Kube)?;
    let metrics = Arc::new(Metrics::default());

    let resolver = Arc::new(Resolver::default());
    let metrics_listener = bind(args.metrics_listen).await?;
    // Ready once the certificate is loaded and the HistoryStorage cache has synced: a pod
    // admitted before that would silently get no collector.
    let (storages, writer) = reflector::store();
    let synced = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (loaded, synced_flag) = (resolver.clone(), synced.clone());
    let metrics_router = metrics::router(
        metrics.clone(),
        Arc::new(move || {
            loaded.is_loaded() && synced_flag.load(std::sync::atomic::Ordering::Acquire)
        }),
    );
    tokio::spawn(async move { axum::serve(metrics_listener, metrics_router).await });
    let ready_store = storages.clone();
    tokio::spawn(async move {
        if ready_store.wait_until_ready().await.is_ok() {
            synced.store(true, std::sync::atomic::Ordering::Release);
        }
    });

    // Every replica serves the webhook from its own view of the HistoryStorages.
    let watch = reflector(
        writer,
        watcher(
            Api::<HistoryStorage>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects()
    .for_each(|_| async {});
    tokio::spawn(watch);

    let (leader_tx, mut leader_rx) = tokio::sync::watch::channel(false);
    let source = match &args.webhook_cert_dir {
        Some(dir) => CertSource::Files(dir.clone()),
        None => CertSource::Managed(Managed {
            namespace: args.namespace.clone(),
            secret: args.webhook_secret.clone(),
            webhook_configuration: args.webhook_configuration.clone(),
            dns_names: match &args.webhook_url {
                Some(url) => vec![url.host.clone()],
                None => vec![
                    format!("{}.{}.svc", args.webhook_service, args.namespace),
                    format!(
                        "{}.{}.svc.cluster.local",
                        args.webhook_service, args.namespace
                    ),
                ],
            },
            url: args.webhook_url.as_ref().map(|u| u.url.clone()),
        }),
    };
    tokio::spawn(keep_certificate(
        source,
        client.clone(),
        resolver.clone(),
        leader_rx.clone(),
    ));
    let state = WebhookState {
        storages,
        client: Some(client.clone()),
        collector_image: args.collector_image.clone(),
        metrics: metrics.clone(),
    };
    let webhook_listen = args
        .webhook_url
        .as_ref()
        .map_or(args.webhook_listen, |u| u.listen);
    let webhook_listener = bind(webhook_listen).await?;
    tokio::spawn(tls::serve(
        webhook_listener,
        webhook::router(state),
        resolver,
        tls::HANDSHAKE_TIMEOUT,
    ));

    let lock = LeaseLock::new(
        client.clone(),
        &args.namespace,
        &args.lease_name,
        &args.pod_name,
        args.lease_duration,
    );
    tokio::spawn(lock.run(leader_tx));

    tokio::select! {
        _ = shutdown_signal() => return Ok(()),
        _ = leader_rx.wait_for(|leading| *leading) => {}
    }
    tracing::info!(identity = %args.pod_name, "became leader; starting controllers");
    metrics.leader.set(1);
    let settings = Settings {
        probe_interval: args.probe_interval,
        retry_interval: args.retry_interval,
        probe_timeout: args.probe_timeout,
        server_image: args.server_image.clone(),
        retention_cluster_role: args.server_retention_cluster_role.clone(),
        probe_policy: ProbePolicy::new(&args.allowed_endpoints)
            .expect("ALLOWED_ENDPOINTS was checked when parsed"),
    };
    let ctx = Arc::new(Context::new(
        client,
        Some(args.pod_name.clone()),
        metrics.clone(),
        settings,
    ));
    let mut lost = leader_rx.clone();
    tokio::select! {
        _ = reconcile::run(ctx, shutdown_signal()) => Ok(()),
        _ = lost.wait_for(|leading| !*leading) => Err(RunError::LostLeadership),
    }
}

/// Why `run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An operator error.
    #[error(transparent)]
    Operator(#[from] Error),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another replica took the lease.
    #[error("lost leadership; restarting as a follower")]
    LostLeadership,
}

/// Where an out-of-cluster webhook is served (`--webhook-url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// The full URL the API server calls, path included.
    pub url: String,
    /// Host the certificate is issued for.
    pub host: String,
    /// Address to listen on.
    pub listen: SocketAddr,
}

/// Parses one `--allowed-endpoints` host pattern.
pub fn parse_host_pattern(raw: &str) -> Result<String, String> {
    let pattern = raw.trim().to_ascii_lowercase();
    if pattern.is_empty() || pattern.contains(['/', ':']) {
        return Err(format!(
            "{raw:?} is not a host pattern (a host or glob such as *.svc.cluster.local, without scheme or port)"
        ));
    }
    globset::Glob::new(&pattern).map_err(|e| format!("{raw:?}: {e}"))?;
    Ok(pattern)
}

/// Parses `https://<ip>:<port>[/path]`; the path defaults to the webhook's own.
pub fn parse_webhook_url(raw: &str) -> Result<WebhookUrl, String> {
    let mut url = url::Url::parse(raw)
        .map_err(|e| format!("not a URL ({e}); expected e.g. https://127.0.0.1:9443"))?;
    if url.scheme() != "https" {
        return Err("must be an https:// URL (the API server only calls webhooks over TLS)".into());
    }
    let host = url.host_str().ok_or("has no host")?.to_string();
    let ip: std::net::IpAddr = host
        .trim_matches(['[', ']'])
        .parse()
        .map_err(|_| format!("host {host} must be an IP address to listen on"))?;
    let port = url
        .port()
        .ok_or("must name a port, e.g. https://127.0.0.1:9443")?;
    if url.path() == "/" {
        url.set_path(webhook::MUTATE_PATH);
    }
    Ok(WebhookUrl {
        url: url.to_string(),
        host: ip.to_string(),
        listen: SocketAddr::new(ip, port),
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })
}

/// Loads (and, when leading and operator-managed, issues and rotates) the serving certificate
/// every minute.
async fn keep_certificate(
    source: CertSource,
    client: Client,
    resolver: Arc<Resolver>,
    leader: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut leader_changes = leader.clone();
    loop {
        let result = match &source {
            CertSource::Files(dir) => certs::load_files(dir, &resolver).map_err(Error::Tls),
            CertSource::Managed(managed) => {
                let leading = *leader.borrow();
                managed.sync(&client, &resolver, leading).await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "webhook certificate not updated");
        }
        // Re-check at once when leadership changes (a new leader may need to issue one).
        tokio::select! {
            _ = tick.tick() => {}
            _ = leader_changes.changed() => {}
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls() {
        let url = parse_webhook_url("https://127.0.0.1:9443").unwrap();
        assert_eq!(url.url, "https://127.0.0.1:9443/mutate");
        assert_eq!(url.host, "127.0.0.1");
        assert_eq!(url.listen, "127.0.0.1:9443".parse().unwrap());
        assert_eq!(
            parse_webhook_url("https://127.0.0.1:8443/hook")
                .unwrap()
                .url,
            "https://127.0.0.1:8443/hook"
        );
        for (bad, why) in [
            ("http://127.0.0.1:9443", "https"),
            ("https://127.0.0.1", "port"),
            ("https://webhook.local:9443", "IP address"),
            ("127.0.0.1:9443", "https://127.0.0.1:9443"),
        ] {
            let err = parse_webhook_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
