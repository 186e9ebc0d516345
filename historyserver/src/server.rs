//! Wiring: open storage, fill the session index, start its background refresh, serve HTTP
//! until SIGTERM or Ctrl-C.

use std::sync::Arc;

use ray_history_storage::Storage;

use crate::Error;
use crate::api::{self, ApiConfig, AppState};
use crate::cache::SessionCache;
use crate::config::ServeArgs;
use crate::index::SessionIndex;
use crate::metrics::Metrics;

/// Builds the application state over an opened storage (used by `serve` and by tests); a
/// `--ray-dashboard-dir` that is not Ray's dashboard build is refused here, before serving.
pub async fn state(storage: Storage, args: &ServeArgs) -> Result<AppState, Error> {
    if let Some(dir) = &args.ray_dashboard_dir {
        crate::ui::check_ray_dashboard_dir(dir).map_err(Error::RayDashboardDir)?;
    }
    let metrics = Arc::new(Metrics::default());
    let index = Arc::new(SessionIndex::new(storage.clone()));
    index.refresh().await?;
    let cache = SessionCache::new(
        storage.clone(),
        args.cache_max_bytes,
        args.refresh_interval,
        args.max_concurrent_loads as usize,
        metrics.clone(),
    );
    Ok(AppState {
        storage,
        index,
        cache,
        metrics,
        config: Arc::new(ApiConfig {
            lost_after: args.lost_after,
            ray_dashboard_dir: args.ray_dashboard_dir.clone(),
            max_concurrent_requests: args.max_concurrent_requests as usize,
            request_timeout: args.request_timeout,
        }),
    })
}

/// Serves on an already bound listener until `shutdown` resolves; the index is refreshed
/// every `--refresh-interval` meanwhile.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    args: &ServeArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let refresher = tokio::spawn(state.index.clone().run(args.refresh_interval));
    let app = api::app(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Io);
    refresher.abort();
    result
}

/// `ray-history-server serve`.
pub async fn run(args: ServeArgs) -> Result<(), Error> {
    let config = args.storage.resolve()?;
    let storage = Storage::open(&config).await?;
    tracing::info!(storage = storage.describe(), listen = %args.listen, "starting history server");
    let state = state(storage, &args).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: args.listen.to_string(),
            source,
        })?;
    serve_on(listener, state, &args, shutdown_signal()).await
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
