//! The RayEvents HTTP receiver: `POST /v1/events` with a JSON array of RayEvents (what Ray's
//! aggregator agent pushes when `RAY_DASHBOARD_AGGREGATOR_AGENT_EVENTS_EXPORT_ADDR` points
//! here). Events are grouped by their `sessionName` (camelCase or snake_case; the live session
//! when absent or unknown), written as JSON Lines to the [`Spool`], and only then answered
//! `200`. Malformed bodies get `400`, oversized ones `413`, and `503` when no session is known
//! yet (Ray retries). An event whose `eventId` was stored lately is dropped: the aggregator
//! posts a batch again when its answer was lost, and the repeat must not be stored twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use ray_history_storage::layout::{NodeId, SessionName};
use serde_json::{Map, Value};

use crate::metrics::Metrics;
use crate::spool::Spool;

/// Path Ray posts to.
pub const PATH: &str = "/v1/events";

/// How many stored event ids are remembered: far more than a few batches, so a retried one is
/// recognised, for a few MiB at most.
const RECENT_IDS: u64 = 32_768;

/// Sessions the engine has found on this node, shared with the receiver.
#[derive(Debug, Default)]
pub struct Known {
    /// The live session (`session_latest`) and this node's id in it.
    pub live: Option<(SessionName, NodeId)>,
    /// Every session with a known node id.
    pub nodes: HashMap<SessionName, NodeId>,
}

/// Shared handle to [`Known`].
pub type SharedKnown = Arc<RwLock<Known>>;

#[derive(Clone)]
struct Receiver {
    spool: Arc<Spool>,
    known: SharedKnown,
    metrics: Metrics,
    /// Ids of events stored lately.
    recent: moka::sync::Cache<String, ()>,
}

/// The receiver's routes.
pub fn router(spool: Arc<Spool>, known: SharedKnown, metrics: Metrics, max_body: usize) -> Router {
    Router::new()
        .route(PATH, post(receive))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(Receiver {
            spool,
            known,
            metrics,
            recent: moka::sync::Cache::new(RECENT_IDS),
        })
}

/// An event's id (`eventId`, or `event_id` from snake_case writers).
fn event_id(event: &Map<String, Value>) -> Option<&str> {
    event
        .get("eventId")
        .or_else(|| event.get("event_id"))
        .and_then(Value::as_str)
}

async fn receive(
    State(rx): State<Receiver>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> (StatusCode, String) {
    let reject = |status: StatusCode, message: String| {
        rx.metrics.events_rejected.inc();
        (status, message)
    };
    let body = match body {
        Ok(body) => body,
        Err(e) => return reject(e.status(), e.body_text()),
    };
    let events: Vec<Map<String, Value>> = match serde_json::from_slice(&body) {
        Ok(events) => events,
        Err(e) => {
            return reject(
                StatusCode::BAD_REQUEST,
                format!("body must be a JSON array of RayEvent objects: {e}"),
            );
        }
    };
    let mut by_session: HashMap<(SessionName, NodeId), Vec<u8>> = HashMap::new();
    let mut ids = HashSet::new();
    let mut repeats = 0u64;
    {
        let known = rx.known.read().expect("known sessions lock");
        for event in &events {
            if let Some(id) = event_id(event)
                && (rx.recent.contains_key(id) || !ids.insert(id))
            {
                repeats += 1;
                continue;
            }
            let named = event
                .get("sessionName")
                .or_else(|| event.get("session_name"))
                .and_then(Value::as_str)
                .and_then(|s| SessionName::new(s).ok())
                .and_then(|s| known.nodes.get(&s).map(|n| (s, n.clone())));
            let Some(target) = named.or_else(|| known.live.clone()) else {
                return reject(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no Ray session found yet".into(),
                );
            };
            let lines = by_session.entry(target).or_default();
            serde_json::to_writer(&mut *lines, event).expect("JSON values serialise");
            lines.push(b'\n');
        }
    }
    let count = events.len() as u64 - repeats;
    let spool = Arc::clone(&rx.spool);
    let written = tokio::task::spawn_blocking(move || {
        by_session
            .iter()
            .try_for_each(|((session, node), lines)| spool.append(session, node, lines))
    })
    .await
    .expect("spool writes do not panic");
    match written {
        Ok(()) => {
            // Remembered only once stored: a batch that failed must be taken when sent again.
            for id in ids {
                rx.recent.insert(id.to_string(), ());
            }
            rx.metrics.events_received.inc_by(count);
            rx.metrics.events_repeated.inc_by(repeats);
            (StatusCode::OK, String::new())
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot spool events");
            reject(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot store events".into(),
            )
        }
    }
}
