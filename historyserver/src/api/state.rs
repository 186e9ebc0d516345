//! Ray's State API lists other than tasks — `api/v0/actors`, `api/v0/nodes`, `api/v0/jobs` — as
//! Ray 2.60's dashboard answers them (`ray list actors|nodes|jobs`, `ray get …`): every row has
//! the columns of Ray's schema for the `detail` asked (missing ones `null`), filters by the
//! filterable columns with `=` / `!=`, rows sorted by id, then cut to `limit`.
//!
//! Rows are built as JSON: these lists have at most thousands of entries, unlike tasks.

use axum::Router;
use axum::extract::RawQuery;
use axum::response::Response;
use axum::routing::get;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::entities::{all_jobs, all_nodes, json_text, node_ip};
use super::response::{self, ApiError, InOrder};
use super::tasks::{Filter, ListResult, Wrapped, parse_filters, parse_limit, query_pairs, truthy};
use super::{AppState, Loaded};
use crate::loader::LoadedSession;
use crate::model::{Actor, ActorState, NodeState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v0/actors", get(actors))
        .route("/api/v0/actors/summarize", get(actor_summary))
        .route("/api/v0/nodes", get(nodes))
        .route("/api/v0/jobs", get(jobs))
}

/// One of Ray's state schemas: its columns (the detail ones after `basic`), which may be
/// filtered, and the column rows are sorted by.
struct Schema {
    basic: &'static [&'static str],
    detail: &'static [&'static str],
    filterable: &'static [&'static str],
    sort_by: &'static str,
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
    sort_by: "actor_id",
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
    sort_by: "node_id",
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
    sort_by: "job_id",
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
    let detail = truthy(super::tasks::query_get(&pairs, "detail"), false);
    let total = rows.len();
    let mut rows: Vec<_> = rows
        .into_iter()
        .filter(|row| filters.iter().all(|f| matches(row.get(&f.column), f)))
        .collect();
    let num_filtered = rows.len();
    let key = |row: &Map<String, Value>| {
        row.get(schema.sort_by)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    rows.sort_by_key(key);
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

/// Restarts of an actor: what Ray counted, or the RESTARTING transitions when an event stream
/// carried no count.
pub(super) fn num_restarts(actor: &Actor) -> u32 {
    let counted = actor
        .transitions
        .iter()
        .map(|t| t.num_restarts)
        .max()
        .unwrap_or(0);
    let seen = actor
        .transitions
        .iter()
        .filter(|t| t.state == ActorState::Restarting)
        .count() as u32;
    counted.max(seen)
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
        "num_restarts": num_restarts(actor).to_string(),
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
            let state_message = (dead && !node.death_reason.is_empty()).then(|| {
                if node.death_message.is_empty() {
                    node.death_reason.to_string()
                } else {
                    format!("{}: {}", node.death_reason, node.death_message)
                }
            });
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
