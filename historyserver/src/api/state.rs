//! Ray's State API lists other than tasks — actors, nodes, jobs, workers, placement groups,
//! objects, runtime envs and cluster events under `api/v0/` — as Ray 2.60's dashboard answers
//! them (`ray list …`, `ray get …`): every row has the columns of Ray's schema for the `detail`
//! asked (missing ones `null`), filters by the filterable columns with `=` / `!=`, rows sorted
//! as Ray sorts them, then cut to `limit`. Workers and placement groups have no events: they
//! come from the head's snapshots. Objects and runtime envs live only while the cluster does:
//! a stored session has none, as a stopped cluster has none.
//!
//! Rows are built as JSON: these lists have at most thousands of entries, unlike tasks.

use axum::Router;
use axum::extract::RawQuery;
use axum::response::Response;
use axum::routing::get;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::query::{Filter, parse_filters, parse_limit, query_get, query_pairs, truthy};
use super::views::{all_jobs, all_nodes, json_text, node_ip};
use super::{AppState, Loaded};
use crate::events::snapshot::compose_state_message;
use crate::loader::LoadedSession;
use crate::model::{Actor, ActorState, INFERRED_AT_END, NodeState};
use crate::response::{self, ApiError, InOrder, ListResult, Wrapped};
use ray_history_storage::layout::SnapshotKind;
use ray_history_storage::metadata::SessionState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v0/actors", get(actors))
        .route("/api/v0/actors/summarize", get(actor_summary))
        .route("/api/v0/nodes", get(nodes))
        .route("/api/v0/jobs", get(jobs))
        .route("/api/v0/workers", get(workers))
        .route("/api/v0/placement_groups", get(placement_groups))
        .route("/api/v0/cluster_events", get(cluster_events))
        .route("/api/v0/objects", get(objects))
        .route("/api/v0/objects/summarize", get(object_summary))
        .route("/api/v0/runtime_envs", get(runtime_envs))
}

/// One of Ray's state schemas: its columns (the detail ones after `basic`), which may be
/// filtered, and the column rows are sorted by.
struct Schema {
    basic: &'static [&'static str],
    detail: &'static [&'static str],
    filterable: &'static [&'static str],
    /// The column rows are sorted by; `None` keeps the order given (already Ray's).
    sort_by: Option<&'static str>,
}

const ACTORS: Schema = Schema {
    basic: &[
        "actor_id",
        "class_name",
        "state",
        "job_id",
        "name",
        "node_id",
        "pid",
        "ray_namespace",
    ],
    detail: &[
        "serialized_runtime_env",
        "required_resources",
        "death_cause",
        "is_detached",
        "placement_group_id",
        "repr_name",
        "num_restarts",
        "num_restarts_due_to_lineage_reconstruction",
        "num_restarts_due_to_node_preemption",
        "call_site",
        "label_selector",
        "fallback_strategy",
    ],
    filterable: &[
        "actor_id",
        "class_name",
        "state",
        "job_id",
        "name",
        "node_id",
        "pid",
        "ray_namespace",
        "placement_group_id",
        "repr_name",
    ],
    sort_by: Some("actor_id"),
};

const NODES: Schema = Schema {
    basic: &[
        "node_id",
        "node_ip",
        "is_head_node",
        "state",
        "state_message",
        "node_name",
        "resources_total",
        "labels",
    ],
    detail: &["start_time_ms", "end_time_ms"],
    filterable: &["node_id", "node_ip", "is_head_node", "state", "node_name"],
    sort_by: Some("node_id"),
};

const JOBS: Schema = Schema {
    basic: &[
        "job_id",
        "submission_id",
        "entrypoint",
        "type",
        "status",
        "message",
        "error_type",
        "driver_info",
    ],
    detail: &[
        "start_time",
        "end_time",
        "metadata",
        "runtime_env",
        "driver_agent_http_address",
        "driver_node_id",
        "driver_exit_code",
    ],
    filterable: &["job_id", "submission_id", "type", "status"],
    sort_by: Some("job_id"),
};

const WORKERS: Schema = Schema {
    basic: &[
        "worker_id",
        "is_alive",
        "worker_type",
        "exit_type",
        "node_id",
        "ip",
        "pid",
    ],
    detail: &[
        "exit_detail",
        "worker_launch_time_ms",
        "worker_launched_time_ms",
        "start_time_ms",
        "end_time_ms",
        "debugger_port",
        "num_paused_threads",
    ],
    filterable: &[
        "worker_id",
        "is_alive",
        "worker_type",
        "exit_type",
        "node_id",
        "ip",
        "pid",
        "debugger_port",
        "num_paused_threads",
    ],
    sort_by: Some("worker_id"),
};

const PLACEMENT_GROUPS: Schema = Schema {
    basic: &["placement_group_id", "name", "creator_job_id", "state"],
    detail: &[
        "bundles",
        "is_detached",
        "stats",
        "topology_strategy",
        "topology_assignments",
    ],
    filterable: &[
        "placement_group_id",
        "name",
        "creator_job_id",
        "state",
        "is_detached",
    ],
    sort_by: Some("placement_group_id"),
};

const CLUSTER_EVENTS: Schema = Schema {
    basic: &["severity", "time", "source_type", "message", "event_id"],
    detail: &["custom_fields"],
    filterable: &["source_type", "event_id", "severity"],
    sort_by: None,
};

const OBJECTS: Schema = Schema {
    basic: &[
        "object_id",
        "object_size",
        "task_status",
        "attempt_number",
        "reference_type",
        "call_site",
        "type",
        "pid",
        "ip",
    ],
    detail: &[],
    filterable: &[
        "object_id",
        "object_size",
        "task_status",
        "attempt_number",
        "reference_type",
        "call_site",
        "type",
        "pid",
        "ip",
    ],
    sort_by: Some("object_id"),
};

const RUNTIME_ENVS: Schema = Schema {
    basic: &["runtime_env", "success", "creation_time_ms", "node_id"],
    detail: &["ref_cnt", "error"],
    filterable: &["success", "node_id", "error", "runtime_env"],
    sort_by: None,
};

/// A filter value matches a cell as Ray's `do_filter` compares them: text as is, booleans in
/// any case (`--filter is_head_node=true`), numbers by their decimal form.
fn matches(cell: Option<&Value>, filter: &Filter) -> bool {
    let equal = match cell {
        Some(Value::String(s)) => *s == filter.value,
        Some(Value::Bool(b)) => filter.value.eq_ignore_ascii_case(&b.to_string()),
        Some(Value::Number(n)) => n.to_string() == filter.value,
        Some(Value::Null) | None => filter.value.eq_ignore_ascii_case("none"),
        Some(_) => false,
    };
    equal == filter.equal
}

/// Filters, sorts, limits and cuts `rows` to the schema's columns; the list response.
fn list(
    schema: &Schema,
    rows: Vec<Map<String, Value>>,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(query);
    let filters = parse_filters(&pairs, schema.filterable)?;
    let limit = parse_limit(&pairs)?;
    let detail = truthy(query_get(&pairs, "detail"), false);
    let total = rows.len();
    let mut rows: Vec<_> = rows
        .into_iter()
        .filter(|row| filters.iter().all(|f| matches(row.get(&f.column), f)))
        .collect();
    let num_filtered = rows.len();
    if let Some(column) = schema.sort_by {
        rows.sort_by_key(|row| {
            row.get(column)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        });
    }
    let columns: Vec<&str> = schema
        .basic
        .iter()
        .chain(if detail { schema.detail } else { &[] })
        .copied()
        .collect();
    let result: Vec<Map<String, Value>> = rows
        .into_iter()
        .take(limit)
        .map(|mut row| {
            columns
                .iter()
                .map(|c| (c.to_string(), row.remove(*c).unwrap_or(Value::Null)))
                .collect()
        })
        .collect();
    Ok(response::ok(
        "",
        Wrapped {
            result: ListResult {
                total,
                num_after_truncation: total,
                num_filtered,
                result,
                partial_failure_warning: "",
                warnings: None,
            },
        },
    ))
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn actor_row(session: &LoadedSession, actor: &Actor) -> Map<String, Value> {
    let current = actor.current();
    let placement = actor.placement();
    let node_id = placement.and_then(|p| p.node_id);
    let state = current.map_or(ActorState::DependenciesUnready, |t| t.state);
    let dead = actor
        .transitions
        .iter()
        .rev()
        .find(|t| t.state == ActorState::Dead);
    let death_cause = dead.map(|t| {
        json!({"actor_died_error_context": {
            "error_message": &*t.exit_detail,
            "node_ip_address": node_ip(session, node_id),
            "pid": placement.map_or(0, |p| p.pid),
            "name": &*actor.def.name,
            "ray_namespace": &*actor.def.ray_namespace,
            "class_name": &*actor.def.class_name,
            "actor_id": actor.actor_id,
        }})
    });
    object(json!({
        "actor_id": actor.actor_id,
        "class_name": &*actor.def.class_name,
        "state": state.name(),
        "job_id": actor.job_id(),
        "name": &*actor.def.name,
        "node_id": node_id,
        "pid": placement.map(|p| p.pid),
        "ray_namespace": &*actor.def.ray_namespace,
        "serialized_runtime_env": &*actor.def.serialized_runtime_env,
        "required_resources": json_text(&actor.def.required_resources),
        "death_cause": death_cause,
        "is_detached": actor.def.is_detached,
        "placement_group_id": actor.def.placement_group_id,
        "repr_name": current.map(|t| t.repr_name.to_string()).unwrap_or_default(),
        // Ray sends int64 protobuf fields as strings.
        "num_restarts": actor.num_restarts().to_string(),
        "num_restarts_due_to_lineage_reconstruction": "0",
        "num_restarts_due_to_node_preemption": "0",
        "call_site": null,
        "label_selector": json_text(&actor.def.label_selector),
        "fallback_strategy": null,
    }))
}

async fn actors(Loaded(session): Loaded, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let rows = session
        .state
        .actors
        .iter()
        .map(|a| actor_row(&session, a))
        .collect();
    list(&ACTORS, rows, query.as_deref())
}

async fn nodes(Loaded(session): Loaded, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let rows = all_nodes(&session)
        .iter()
        .map(|node| {
            let dead = node.state == NodeState::Dead;
            let state_message = dead
                .then(|| compose_state_message(&node.death_reason, &node.death_message))
                .flatten();
            object(json!({
                "node_id": node.node_id,
                "node_ip": &*node.ip,
                "is_head_node": node.is_head,
                "state": if dead { "DEAD" } else { "ALIVE" },
                "state_message": state_message,
                "node_name": if node.node_name.is_empty() { &*node.ip } else { &*node.node_name },
                "resources_total": json_text(&node.resources_total),
                "labels": json_text(&node.labels),
                "start_time_ms": node.start_ms,
                "end_time_ms": node.end_ms,
            }))
        })
        .collect();
    list(&NODES, rows, query.as_deref())
}

async fn jobs(Loaded(session): Loaded, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let rows = all_jobs(&session)
        .into_iter()
        .map(|(_, _, job)| object(job))
        .collect();
    list(&JOBS, rows, query.as_deref())
}

/// Rows of a kind only the head's snapshots have.
fn snapshot_rows(session: &LoadedSession, kind: SnapshotKind) -> Vec<Map<String, Value>> {
    session
        .state
        .snapshot_rows(kind)
        .iter()
        .cloned()
        .map(object)
        .collect()
}

/// Workers as the head last listed them; in a finished session none is alive any more.
async fn workers(Loaded(session): Loaded, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let mut rows = snapshot_rows(&session, SnapshotKind::Workers);
    if session.meta.state == SessionState::Finished {
        for row in &mut rows {
            if row.get("is_alive") == Some(&Value::Bool(true)) {
                row.insert("is_alive".into(), Value::Bool(false));
                row.insert("exit_detail".into(), INFERRED_AT_END.into());
            }
        }
    }
    list(&WORKERS, rows, query.as_deref())
}

async fn placement_groups(
    Loaded(session): Loaded,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let rows = snapshot_rows(&session, SnapshotKind::PlacementGroups);
    list(&PLACEMENT_GROUPS, rows, query.as_deref())
}

/// `ray list cluster-events`: the events of `logs/events/`, oldest first, with Ray's `time`
/// column (the timestamp as local time of this server, as the head prints its own).
async fn cluster_events(
    Loaded(session): Loaded,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let rows = session
        .state
        .events
        .iter()
        .map(|event| {
            let mut row = object(event.json.clone());
            let time = chrono::DateTime::from_timestamp(event.timestamp, 0)
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_default();
            row.insert("time".into(), Value::String(time));
            row
        })
        .collect();
    list(&CLUSTER_EVENTS, rows, query.as_deref())
}

async fn objects(RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    list(&OBJECTS, Vec::new(), query.as_deref())
}

async fn runtime_envs(RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    list(&RUNTIME_ENVS, Vec::new(), query.as_deref())
}

/// `ray summary objects`: no object outlives its cluster.
async fn object_summary() -> Response {
    let cluster: Ordered = InOrder(vec![
        ("summary".into(), raw(&json!({}))),
        ("total_objects".into(), raw(&0)),
        ("total_size_mb".into(), raw(&0.0)),
        ("callsite_enabled".into(), raw(&true)),
        ("summary_by".into(), raw(&"callsite")),
    ]);
    summary_response(0, cluster)
}

/// A summarize answer: `cluster` under `node_id_to_summary`, in Ray's list envelope.
fn summary_response(total: usize, cluster: Ordered) -> Response {
    let by_node: Ordered = InOrder(vec![("cluster".into(), raw(&cluster))]);
    response::ok(
        "",
        Wrapped {
            result: ListResult {
                total,
                num_after_truncation: total,
                num_filtered: total,
                result: InOrder(vec![("node_id_to_summary", raw(&by_node))]),
                partial_failure_warning: "",
                warnings: None,
            },
        },
    )
}

/// Ray lists classes in the order of its sorted actor list; values are serialised JSON.
type Ordered = InOrder<String, Box<RawValue>>;

fn raw<T: serde::Serialize>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("JSON of plain data")
}

/// `api/v0/actors/summarize` (`ray summary actors`): actors per class with their state counts.
async fn actor_summary(Loaded(session): Loaded) -> Response {
    let mut actors: Vec<&Actor> = session.state.actors.iter().collect();
    actors.sort_by_key(|a| a.actor_id.hex());
    let mut classes: InOrder<String, InOrder<&str, u64>> = InOrder(Vec::new());
    for actor in &actors {
        let state = actor
            .current()
            .map_or(ActorState::DependenciesUnready, |t| t.state)
            .name();
        let counts = classes.entry(actor.def.class_name.to_string(), || InOrder(Vec::new()));
        *counts.entry(state, || 0) += 1;
    }
    let summary: Ordered = InOrder(
        classes
            .0
            .into_iter()
            .map(|(class, counts)| {
                let entry: Ordered = InOrder(vec![
                    ("class_name".into(), raw(&class)),
                    ("state_counts".into(), raw(&counts)),
                ]);
                (class, raw(&entry))
            })
            .collect(),
    );
    let total = actors.len();
    let cluster: Ordered = InOrder(vec![
        ("summary".into(), raw(&summary)),
        ("total_actors".into(), raw(&total)),
        ("summary_by".into(), raw(&"class")),
    ]);
    summary_response(total, cluster)
}
