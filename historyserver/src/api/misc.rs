//! The remaining dashboard endpoints (cluster status and metadata, timezone, version, and the
//! features a dead cluster does not have, answered as a live Ray answers when they are off),
//! plus `/healthz`, `/readyz` and `/metrics`.

use axum::Router;
use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{AppState, Loaded};
use crate::model::NodeState;
use crate::response::{self, ApiError};
use ray_history_storage::layout::SnapshotKind;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/cluster_status", get(cluster_status))
        .route("/api/v0/cluster_metadata", get(cluster_metadata))
        .route("/api/version", get(version))
        .route("/timezone", get(timezone))
        .route("/usage_stats_enabled", get(usage_stats))
        .route("/api/authentication_mode", get(authentication_mode))
        .route("/api/profiling_enabled", get(profiling_enabled))
        .route("/api/v0/runtime_env_redaction", get(runtime_env_redaction))
        .route("/api/grafana_health", get(grafana_health))
        .route("/api/prometheus_health", get(prometheus_health))
        .route("/api/serve/applications/", get(serve))
        .route("/api/data/datasets/{job_id}", get(datasets))
        .route("/api/v0/platform_events", get(platform_events))
}

pub(super) fn health_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

fn ray_version(loaded: &crate::loader::LoadedSession) -> String {
    loaded
        .meta
        .ray_version
        .clone()
        .unwrap_or_else(|| "unknown".to_string())
}

async fn cluster_status(Loaded(loaded): Loaded) -> Response {
    // A dead cluster has no autoscaler: report the nodes as they last were.
    let nodes = &loaded.state.nodes;
    let active: serde_json::Map<String, serde_json::Value> = nodes
        .iter()
        .filter(|n| n.state == NodeState::Alive)
        .map(|n| (format!("node_{}", n.node_id), json!(1)))
        .collect();
    let failed: Vec<serde_json::Value> = nodes
        .iter()
        .filter(|n| n.state == NodeState::Dead)
        .map(|n| json!({"nodeId": n.node_id, "ip": &*n.ip}))
        .collect();
    let status = format!(
        "Cluster status: {} nodes (history of session {})",
        nodes.len(),
        loaded.name()
    );
    response::ok(
        "Got cluster status.",
        json!({
            "autoscalingStatus": status,
            "autoscalingError": null,
            "clusterStatus": {
                "autoscalerReport": {
                    "activeNodes": crate::events::camelize(serde_json::Value::Object(active)),
                    "idleNodes": null,
                    "pendingNodes": [],
                    "pendingLaunches": {},
                    "failedNodes": failed,
                },
                "loadMetricsReport": {"usage": {}, "resourceDemand": [], "pgDemand": [], "requestDemand": []},
            },
        }),
    )
}

async fn cluster_metadata(Loaded(loaded): Loaded) -> Response {
    response::ok(
        "",
        json!({
            "rayVersion": ray_version(&loaded),
            "pythonVersion": null,
            "rayInitCluster": false,
        }),
    )
}

async fn version(Loaded(loaded): Loaded) -> Response {
    response::json(
        StatusCode::OK,
        &json!({
            "version": "4",
            "ray_version": ray_version(&loaded),
            "ray_commit": null,
            "session_name": loaded.name().as_str(),
        }),
    )
}

async fn timezone() -> Response {
    let offset = chrono::Local::now().format("%:z").to_string();
    let value = std::env::var("TZ").unwrap_or_else(|_| "UTC".to_string());
    response::json(StatusCode::OK, &json!({"offset": offset, "value": value}))
}

async fn usage_stats() -> Response {
    response::ok(
        "Fetched usage stats enabled",
        json!({"usageStatsEnabled": false, "usageStatsPromptEnabled": true}),
    )
}

/// A stored session needs no token; a live head without auth answers this.
async fn authentication_mode() -> Response {
    response::json(StatusCode::OK, &json!({"authentication_mode": "disabled"}))
}

/// There are no processes to profile; the defaults are those a live head reports.
async fn profiling_enabled() -> Response {
    response::ok(
        "",
        json!({
            "profilingEnabled": false,
            "profilingDefaults": {
                "native": false,
                "subprocesses": false,
                "idle": false,
                "leaks": false,
                "tracePythonAllocators": false,
                "cpuDuration": 5,
                "memoryDuration": 10,
                "maxDuration": 60,
                "cpuFormat": "flamegraph",
                "memoryFormat": "flamegraph",
                "pyspyNativeSupported": true,
            },
        }),
    )
}

/// Ray's default: the dashboard hides runtime-env values that may hold secrets.
async fn runtime_env_redaction() -> Response {
    response::ok("", json!({"redactionEnabled": true}))
}

async fn grafana_health() -> Response {
    response::json(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({"result": false, "msg": "Grafana healthcheck failed", "data": {"exception": "no Grafana for a stored session"}}),
    )
}

async fn prometheus_health() -> Response {
    response::json(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({"result": false, "msg": "prometheus healthcheck failed.", "data": {"reason": "no Prometheus for a stored session"}}),
    )
}

/// The Serve page as the head last answered it; without a snapshot, what a head without Serve
/// answers.
async fn serve(Loaded(loaded): Loaded) -> Response {
    match loaded.state.snapshot_rows(SnapshotKind::Serve).first() {
        Some(page) => response::json(StatusCode::OK, page),
        None => response::text(
            StatusCode::NOT_IMPLEMENTED,
            "Serve dependencies are not installed. Please run `pip install \"ray[serve]\"`.",
        ),
    }
}

/// A job's Ray Data page as the head last answered it (Ray keeps dataset stats in a live
/// actor, so without a snapshot there are none).
async fn datasets(Loaded(loaded): Loaded, Path(path): Path<HashMap<String, String>>) -> Response {
    let job_id = path.get("job_id").map(String::as_str).unwrap_or_default();
    let page = loaded
        .state
        .snapshot_rows(SnapshotKind::Datasets)
        .iter()
        .find(|d| d.get("job_id").and_then(|j| j.as_str()) == Some(job_id))
        .and_then(|d| d.get("page"));
    match page {
        Some(page) => response::json(StatusCode::OK, page),
        None => response::json(StatusCode::OK, &json!({"datasets": []})),
    }
}

/// The dashboard treats a 404 here as "platform events are off".
async fn platform_events() -> ApiError {
    ApiError::not_found("platform events are not recorded for stored sessions")
}

async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state
        .storage
        .list_with_delimiter(Some(&ray_history_storage::layout::MetaRef::root()))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("storage: {e}")))?;
    Ok("ok")
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
