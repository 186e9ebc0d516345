//! The HTTP API: our session browser endpoints under `/api/`, the Ray dashboard API under
//! `/sessions/<ns>/<cluster>/<session>/`, health and metrics. [`app`] builds the whole router.

mod clients;
mod entities;
mod etag;
mod lineage;
mod logs;
mod misc;
mod query;
mod sessions;
mod state;
mod tasks;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, FromRequestParts, MatchedPath, OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use ray_history_storage::Storage;
use ray_history_storage::layout::MetaRef;
use serde::Deserialize;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::cache::SessionCache;
use crate::catalog::{Catalog, SessionEntry};
use crate::loader::SharedSession;
use crate::metrics::{Metrics, RequestLabels};
pub use crate::response::ApiError;
pub use clients::ClientLimit;

/// Settings the handlers need.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// A running session whose heartbeat is older than this is reported as lost.
    pub lost_after: Duration,
    /// Ray's built dashboard to serve under each session prefix, if given.
    pub ray_dashboard_dir: Option<std::path::PathBuf>,
    /// Most API requests handled at once (health routes not counted).
    pub max_concurrent_requests: usize,
    /// Most API requests of one client in flight.
    pub client_limit: Arc<clients::ClientLimit>,
    /// Longest an API request may take to produce its response.
    pub request_timeout: Duration,
}

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    /// Who may see what.
    pub auth: Arc<crate::auth::AuthConfig>,
    /// The storage with the sessions.
    pub storage: Storage,
    /// The session index.
    pub catalog: Arc<Catalog>,
    /// Loaded sessions.
    pub cache: SessionCache,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Settings.
    pub config: Arc<ApiConfig>,
}

/// The whole application router. API routes share one concurrency limit and a timeout;
/// health, readiness and metrics bypass both, so probes answer fast under load.
pub fn app(state: AppState) -> Router {
    let ray = tasks::routes()
        .merge(state::routes())
        .merge(entities::routes())
        .merge(logs::routes())
        .merge(misc::routes());
    // The built-in UI and Ray's dashboard build (`--ray-dashboard-dir`) come from `ui`.
    let mut limited = Router::new()
        .merge(sessions::routes())
        .nest("/sessions/{namespace}/{cluster}/{session}", ray)
        .merge(crate::ui::router(state.config.ray_dashboard_dir.clone()))
        .layer(middleware::from_fn_with_state(
            state.auth.clone(),
            crate::auth::guard,
        ));
    // Signing in needs no token yet.
    if let crate::auth::AuthConfig::Kubernetes(reviews) = state.auth.as_ref() {
        limited = limited.merge(crate::auth::login::routes(reviews.clone()));
    }
    let limited = limited
        // One semaphore for all routes: axum layers each route separately.
        .layer(GlobalConcurrencyLimitLayer::new(
            state.config.max_concurrent_requests,
        ))
        // Outside the global limit: a client over its own share waits for nothing.
        .layer(middleware::from_fn_with_state(
            state.config.client_limit.clone(),
            clients::limit,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.config.request_timeout,
        ));
    limited
        .merge(misc::health_routes())
        .layer(middleware::from_fn(etag::etag))
        .layer(CompressionLayer::new().compress_when(Buffered))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// Compresses buffered answers (JSON, tails: bounded sizes) but not streamed downloads,
/// whose compression would cost CPU in proportion to the file's size.
#[derive(Clone, Copy)]
struct Buffered;

impl Predicate for Buffered {
    fn should_compress<B: axum::body::HttpBody>(&self, response: &axum::http::Response<B>) -> bool {
        response.body().size_hint().exact().is_some()
            && DefaultPredicate::new().should_compress(response)
    }
}

/// Counts requests and their latency per route.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request_seconds
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

#[derive(Deserialize)]
struct SessionPath {
    namespace: String,
    cluster: String,
    session: String,
}

/// Looks a session up in the index (`latest` allowed).
pub(crate) fn find_session(
    state: &AppState,
    namespace: &str,
    cluster: &str,
    session: &str,
) -> Result<Arc<SessionEntry>, ApiError> {
    let meta_ref =
        MetaRef::new(namespace, cluster).map_err(|e| ApiError::bad_request(e.to_string()))?;
    state
        .catalog
        .snapshot()
        .find(&meta_ref, session)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "session {session} of cluster {namespace}/{cluster} not found"
            ))
        })
}

/// Extractor: whether the request comes from Ray's dashboard page of the same session (its
/// `Referer` is below this session's prefix), which is served only with `--ray-dashboard-dir`.
/// Browsers send the page's address without the `#/…` route, so this covers every Ray page.
pub(crate) struct RayPage(pub bool);

impl<S> FromRequestParts<S> for RayPage
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        if state.config.ray_dashboard_dir.is_none() {
            return Ok(RayPage(false));
        }
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(parts.uri.path(), |uri| uri.0.path());
        // `/sessions/<ns>/<cluster>/<session>/`
        let prefix: String = path
            .split_inclusive('/')
            .take(5)
            .collect::<Vec<_>>()
            .concat();
        let referer = parts
            .headers
            .get(axum::http::header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<axum::http::Uri>().ok());
        Ok(RayPage(referer.is_some_and(|r| {
            prefix.starts_with("/sessions/")
                && prefix.ends_with('/')
                && r.path().starts_with(&prefix)
        })))
    }
}

/// Extractor: the loaded session named by the path.
pub(crate) struct Loaded(pub SharedSession);

impl<S> FromRequestParts<S> for Loaded
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let axum::extract::Path(path) =
            axum::extract::Path::<SessionPath>::from_request_parts(parts, &state)
                .await
                .map_err(IntoResponse::into_response)?;
        let entry = find_session(&state, &path.namespace, &path.cluster, &path.session)
            .map_err(IntoResponse::into_response)?;
        let loaded = state
            .cache
            .get(&entry)
            .await
            .map_err(|e| ApiError::from_error(&e).into_response())?;
        Ok(Loaded(loaded))
    }
}
