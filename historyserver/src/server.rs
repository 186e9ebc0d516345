//! Wiring: open storage, fill the session catalog, start its background refresh, serve HTTP
//! until SIGTERM or Ctrl-C.

use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use ray_history_storage::Storage;

use crate::Error;
use crate::api::{self, ApiConfig, AppState, ClientLimit};
use crate::auth::{Acl, AuthConfig, AuthMode, KubeSettings, Reviews};
use crate::cache::SessionCache;
use crate::catalog::Catalog;
use crate::config::ServeArgs;
use crate::metrics::Metrics;

/// Builds the application state over an opened storage (used by `serve` and by tests); a
/// `--ray-dashboard-dir` that is not Ray's dashboard build is refused here, before serving.
pub async fn state(storage: Storage, args: &ServeArgs) -> Result<AppState, Error> {
    if let Some(dir) = &args.ray_dashboard_dir {
        crate::ui::check_ray_dashboard_dir(dir).map_err(Error::RayDashboardDir)?;
    }
    let auth = Arc::new(auth_config(args).await?);
    let metrics = Arc::new(Metrics::default());
    let catalog = Arc::new(Catalog::new(storage.clone()));
    catalog.refresh().await?;
    let cache = SessionCache::new(
        storage.clone(),
        args.cache_max_bytes,
        args.refresh_interval,
        args.max_concurrent_loads as usize,
        metrics.clone(),
        session_index_dir(args)?,
    );
    Ok(AppState {
        auth,
        storage,
        catalog,
        cache,
        metrics,
        config: Arc::new(ApiConfig {
            lost_after: args.lost_after,
            ray_dashboard_dir: args.ray_dashboard_dir.clone(),
            max_concurrent_requests: args.max_concurrent_requests as usize,
            client_limit: Arc::new(ClientLimit::new(
                args.max_requests_per_client as usize,
                crate::auth::parse_networks(&args.auth_trusted_proxies).map_err(Error::Auth)?,
            )),
            request_timeout: args.request_timeout,
        }),
    })
}

/// How long a stopping server waits for session indexes still being stored (within
/// Kubernetes' default 30 s grace period).
const INDEX_UPLOAD_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// Serves on an already bound listener until `shutdown` resolves; the index is refreshed
/// every `--refresh-interval` meanwhile. Connections are served by hyper directly (rather
/// than `axum::serve`) for a header read timeout: a client that connects and sends nothing,
/// or trickles its request, is dropped after `--header-read-timeout`.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    args: &ServeArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let refresher = tokio::spawn(state.catalog.clone().run(args.refresh_interval));
    let sweeper = start_sweeper(&state, args).await?;
    let indexer = start_index_ahead(&state, args);
    let cache = state.cache.clone();
    let app = api::app(state);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(args.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            // Exempt from tokio's cooperative budget: in a burst of connects, accepting (cheap)
            // must not wait behind thousands of new connections, or the kernel's queue
            // overflows and drops SYNs (probes included), which clients resend a second later.
            accepted = tokio::task::unconstrained(listener.accept()) => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, usually: let connections close, then go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // The peer's address, for `--auth header`'s trusted proxies.
        let peer = stream.peer_addr().ok();
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: axum::http::Request<_>| {
                if let Some(peer) = peer {
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                }
                request
            },
        ));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    if !cache.index_uploads_ended(INDEX_UPLOAD_GRACE).await {
        tracing::warn!(
            "stopping with a session index still being stored; it is built again on its next load"
        );
    }
    refresher.abort();
    for task in [sweeper, indexer].into_iter().flatten() {
        task.abort();
    }
    Ok(())
}

/// Starts indexing finished sessions ahead of their first view, unless `--index-ahead 0s` or
/// `--session-index=false`. Every replica does it: two may build the same index at once,
/// which costs time, not correctness (it is stored create-only).
fn start_index_ahead(state: &AppState, args: &ServeArgs) -> Option<tokio::task::JoinHandle<()>> {
    if args.index_ahead.is_zero() || !args.session_index {
        return None;
    }
    Some(tokio::spawn(crate::index_ahead::run(
        state.catalog.clone(),
        state.cache.clone(),
        state.storage.clone(),
        args.index_ahead,
        args.refresh_interval,
        state.metrics.clone(),
    )))
}

/// Starts the retention sweeper when a limit is set. In Kubernetes (`POD_NAMESPACE` and
/// `POD_NAME` set) only the replica holding the `--retention-lease` Lease sweeps; elsewhere
/// this process sweeps (run one replica).
async fn start_sweeper(
    state: &AppState,
    args: &ServeArgs,
) -> Result<Option<tokio::task::JoinHandle<()>>, Error> {
    let policy = crate::retention::Policy::new(&args.retention, args.lost_after);
    if policy.is_empty() {
        return Ok(None);
    }
    let leader = match (&args.pod_namespace, &args.pod_name) {
        (Some(namespace), Some(name)) => {
            let client = kube::Client::try_default().await.map_err(|e| {
                Error::Setting(format!(
                    "POD_NAMESPACE: retention needs the Kubernetes API for its Lease: {e}"
                ))
            })?;
            let lock = ray_history_lease::LeaseLock::new(
                client,
                namespace,
                &args.retention_lease,
                name,
                RETENTION_LEASE_DURATION,
            );
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(lock.run(tx));
            tracing::info!(lease = %args.retention_lease, %namespace, "retention sweeps run in the replica that holds the lease");
            rx
        }
        _ => {
            tracing::info!(
                "retention sweeps run in this process (no POD_NAMESPACE and POD_NAME: no Lease)"
            );
            tokio::sync::watch::channel(true).1
        }
    };
    Ok(Some(tokio::spawn(crate::retention::run_sweeper(
        state.storage.clone(),
        policy,
        args.retention_interval,
        leader,
        state.metrics.clone(),
    ))))
}

/// How long the sweeper's Lease lasts without renewal (renewed every third of it).
const RETENTION_LEASE_DURATION: std::time::Duration = std::time::Duration::from_secs(30);

/// The checked `--session-index-dir` (a file can be made there), or `None` when
/// `--session-index=false`.
fn session_index_dir(args: &ServeArgs) -> Result<Option<std::path::PathBuf>, Error> {
    if !args.session_index {
        return Ok(None);
    }
    let dir = args
        .session_index_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir)
        .and_then(|_| tempfile::tempfile_in(&dir))
        .map_err(|e| {
            Error::Setting(format!(
                "SESSION_INDEX_DIR: cannot write files in {}: {e}",
                dir.display()
            ))
        })?;
    Ok(Some(dir))
}

/// Longest `--auth-cache-ttl`.
const MAX_AUTH_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The authentication settings, checked: `header` needs trusted proxies and an ACL file,
/// `kubernetes` a Kubernetes API configuration (in-cluster, or `KUBECONFIG`).
async fn auth_config(args: &ServeArgs) -> Result<AuthConfig, Error> {
    match args.auth {
        AuthMode::None => {
            if !args.listen.ip().is_loopback() {
                tracing::warn!(
                    listen = %args.listen,
                    "AUTH_MODE=none on a non-loopback address: every namespace's sessions and \
                     logs are readable by anyone who reaches this port"
                );
            }
            Ok(AuthConfig::None)
        }
        AuthMode::Header => {
            let trusted_proxies =
                crate::auth::parse_networks(&args.auth_trusted_proxies).map_err(Error::Auth)?;
            if trusted_proxies.is_empty() {
                return Err(Error::Auth(
                    "AUTH_TRUSTED_PROXIES: required with AUTH_MODE=header".into(),
                ));
            }
            let path = args
                .auth_acl
                .as_deref()
                .ok_or_else(|| Error::Auth("AUTH_ACL: required with AUTH_MODE=header".into()))?;
            Ok(AuthConfig::Header {
                trusted_proxies,
                acl: Acl::load(path).map_err(Error::Auth)?,
            })
        }
        AuthMode::Kubernetes => {
            // Revoked access lasts as long as a cached answer.
            if args.auth_cache_ttl > MAX_AUTH_CACHE_TTL {
                return Err(Error::Auth(format!(
                    "AUTH_CACHE_TTL: at most {}",
                    humantime::format_duration(MAX_AUTH_CACHE_TTL)
                )));
            }
            let client = kube::Client::try_default().await.map_err(|e| {
                Error::Auth(format!(
                    "AUTH_MODE=kubernetes: no Kubernetes API configuration (in-cluster or \
                     KUBECONFIG): {e}"
                ))
            })?;
            let audiences = args
                .auth_token_audiences
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect();
            for (name, value) in [
                ("AUTH_SAR_VERB", &args.auth_sar_verb),
                ("AUTH_SAR_RESOURCE", &args.auth_sar_resource),
            ] {
                if value.trim().is_empty() {
                    return Err(Error::Auth(format!(
                        "{name}: must not be empty with AUTH_MODE=kubernetes"
                    )));
                }
            }
            Ok(AuthConfig::Kubernetes(Arc::new(Reviews::new(
                client,
                KubeSettings {
                    audiences,
                    verb: args.auth_sar_verb.trim().to_string(),
                    group: args.auth_sar_group.trim().to_string(),
                    resource: args.auth_sar_resource.trim().to_string(),
                    cache_ttl: args.auth_cache_ttl,
                },
            ))))
        }
    }
}

/// `ray-history-server serve`.
pub async fn run(args: ServeArgs) -> Result<(), Error> {
    let config = args.storage.resolve()?;
    let storage = Storage::open(&config).await?;
    tracing::info!(storage = storage.describe(), listen = %args.listen, "starting history server");
    let state = state(storage, &args).await?;
    let listener = bind(args.listen).map_err(|source| Error::Listen {
        addr: args.listen.to_string(),
        source,
    })?;
    serve_on(listener, state, &args, shutdown_signal()).await
}

/// Connections the kernel queues before we accept them (capped by `net.core.somaxconn`);
/// tokio's default of 1024 drops SYNs in a burst of connects, and clients resend those only
/// after a second.
const LISTEN_BACKLOG: u32 = 4096;

fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
