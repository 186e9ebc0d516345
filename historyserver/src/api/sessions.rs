//! Our session browser API: `GET /api/sessions` (filters, cursor pagination, newest first)
//! and `GET /api/sessions/<ns>/<cluster>/<session>` (metadata, nodes, counts).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use base64_simd::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ray_history_storage::metadata::{NodeMetadata, Owner};
use serde::{Deserialize, Serialize};

use super::{AppState, find_session};
use crate::catalog::{ReportedState, SessionEntry};
use crate::model::TaskState;
use crate::response::{self, ApiError};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/sessions", get(list))
        .route("/api/sessions/{namespace}/{cluster}/{session}", get(detail))
}

/// A session as the UI sees it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionJson<'a> {
    namespace: &'a str,
    cluster_name: &'a str,
    cluster_id: &'a str,
    session_name: &'a str,
    state: ReportedState,
    start_time: DateTime<Utc>,
    end_time: Option<DateTime<Utc>>,
    last_heartbeat: DateTime<Utc>,
    ray_version: Option<&'a str>,
    owner: Option<&'a Owner>,
    head_node_id: Option<&'a str>,
}

fn session_json(entry: &SessionEntry, state: ReportedState) -> SessionJson<'_> {
    SessionJson {
        namespace: entry.meta.namespace.as_str(),
        cluster_name: entry.meta.cluster_name.as_str(),
        cluster_id: entry.meta.cluster_id.as_str(),
        session_name: entry.meta.session_name.as_str(),
        state,
        start_time: entry.meta.start_time,
        end_time: entry.meta.end_time,
        last_heartbeat: entry.meta.last_heartbeat,
        ray_version: entry.meta.ray_version.as_deref(),
        owner: entry.meta.owner.as_ref(),
        head_node_id: entry.meta.head_node_id.as_ref().map(|n| n.as_str()),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    namespace: Option<String>,
    cluster: Option<String>,
    state: Option<String>,
    since: Option<String>,
    until: Option<String>,
    q: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListJson<'a> {
    sessions: Vec<SessionJson<'a>>,
    next_cursor: Option<String>,
    total: usize,
}

fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    text.parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid {name} {text:?}: use RFC 3339 or unix milliseconds"
            ))
        })
}

/// A cursor is the position of the last session returned: its start time and key.
fn encode_cursor(entry: &SessionEntry) -> String {
    let raw = format!(
        "{}|{}|{}|{}",
        entry.meta.start_time.timestamp_micros(),
        entry.meta_ref.namespace,
        entry.meta_ref.cluster,
        entry.meta.session_name
    );
    URL_SAFE_NO_PAD.encode_to_string(raw)
}

fn sort_key(entry: &SessionEntry) -> (i64, String) {
    (
        entry.meta.start_time.timestamp_micros(),
        format!(
            "{}|{}|{}",
            entry.meta_ref.namespace, entry.meta_ref.cluster, entry.meta.session_name
        ),
    )
}

fn decode_cursor(text: &str) -> Result<(i64, String), ApiError> {
    let bad = || ApiError::bad_request(format!("invalid cursor {text:?}"));
    let raw = URL_SAFE_NO_PAD.decode_to_vec(text).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (micros, key) = raw.split_once('|').ok_or_else(bad)?;
    Ok((micros.parse().map_err(|_| bad())?, key.to_string()))
}

async fn list(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let wanted_state = match query.state.as_deref() {
        Some(s) => Some(ReportedState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid state {s:?}: use running, finished or lost"
            ))
        })?),
        None => None,
    };
    let since = query
        .since
        .as_deref()
        .map(|t| parse_time("since", t))
        .transpose()?;
    let until = query
        .until
        .as_deref()
        .map(|t| parse_time("until", t))
        .transpose()?;
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let needle = query.q.as_deref().map(str::to_lowercase);
    let now = Utc::now();
    let snapshot = state.catalog.snapshot();
    let access = principal
        .access(
            snapshot
                .sessions
                .iter()
                .map(|e| e.meta_ref.namespace.as_str())
                .collect(),
        )
        .await;
    let lost_after = state.config.lost_after;
    let matching: Vec<(&SessionEntry, ReportedState)> = snapshot
        .sessions
        .iter()
        .map(|e| (e.as_ref(), e.state(now, lost_after)))
        .filter(|(e, s)| {
            access.allows(e.meta_ref.namespace.as_str())
                && query
                    .namespace
                    .as_deref()
                    .is_none_or(|n| e.meta_ref.namespace.as_str() == n)
                && query
                    .cluster
                    .as_deref()
                    .is_none_or(|c| e.meta_ref.cluster.as_str() == c)
                && wanted_state.is_none_or(|w| w == *s)
                && since.is_none_or(|t| e.meta.end_time.unwrap_or(now) >= t)
                && until.is_none_or(|t| e.meta.start_time <= t)
                && needle.as_deref().is_none_or(|q| matches_text(e, q))
        })
        .collect();
    let total = matching.len();
    // Sessions are sorted newest first: skip up to and including the cursor's position.
    let start = match &after {
        Some(cursor) => matching
            .iter()
            .position(|(e, _)| sort_key(e) < *cursor)
            .unwrap_or(matching.len()),
        None => 0,
    };
    let page = &matching[start..matching.len().min(start + limit)];
    let next_cursor = if start + page.len() < matching.len() {
        page.last().map(|(e, _)| encode_cursor(e))
    } else {
        None
    };
    let body = ListJson {
        sessions: page.iter().map(|(e, s)| session_json(e, *s)).collect(),
        next_cursor,
        total,
    };
    Ok(response::json(StatusCode::OK, &body))
}

fn matches_text(entry: &SessionEntry, needle: &str) -> bool {
    let owner = entry
        .meta
        .owner
        .as_ref()
        .map(|o| format!("{} {}", o.kind, o.name))
        .unwrap_or_default();
    [
        entry.meta.session_name.as_str(),
        entry.meta_ref.cluster.as_str(),
        entry.meta_ref.namespace.as_str(),
        entry.meta.cluster_id.as_str(),
        owner.as_str(),
    ]
    .iter()
    .any(|field| field.to_lowercase().contains(needle))
}

#[derive(Deserialize)]
struct DetailPath {
    namespace: String,
    cluster: String,
    session: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Counts {
    tasks: usize,
    failed_tasks: usize,
    actors: usize,
    jobs: usize,
    nodes: usize,
    events: usize,
}

#[derive(Serialize)]
struct DetailJson<'a> {
    session: SessionJson<'a>,
    nodes: &'a [NodeMetadata],
    counts: Counts,
}

async fn detail(
    State(state): State<AppState>,
    Path(path): Path<DetailPath>,
) -> Result<Response, ApiError> {
    let entry = find_session(&state, &path.namespace, &path.cluster, &path.session)?;
    let loaded = state
        .cache
        .get(&entry)
        .await
        .map_err(|e| ApiError::from_error(&e))?;
    let s = &loaded.state;
    let counts = Counts {
        tasks: s.tasks.len() - s.tasks.drivers(),
        failed_tasks: (0..s.tasks.len() as u32)
            .filter(|r| s.tasks.state(*r) == TaskState::Failed)
            .count(),
        actors: s.actors.len(),
        jobs: s.submission_jobs.len()
            + s.driver_jobs
                .iter()
                .filter(|d| {
                    !s.submission_jobs
                        .iter()
                        .any(|j| !d.submission_id.is_empty() && j.submission_id == d.submission_id)
                })
                .count(),
        nodes: s.nodes.len().max(entry.nodes.len()),
        events: s.events.len(),
    };
    let body = DetailJson {
        session: session_json(&entry, entry.state(Utc::now(), state.config.lost_after)),
        nodes: &entry.nodes,
        counts,
    };
    Ok(response::json(StatusCode::OK, &body))
}
