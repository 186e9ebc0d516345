//! Actors (`logical/actors`), jobs (`api/jobs/`), nodes (`nodes`) and cluster events
//! (`events`), in the camelCase (or, for jobs, snake_case) shapes of Ray 2.60's dashboard.
//! Node states depend on the asking page: see [`reported_state`].

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::query::{query_get, query_pairs};
use super::views::{all_jobs, all_nodes, json_text, node_ip};
use super::{AppState, Loaded, RayPage};
use crate::events::camelize;
use crate::ids::{ActorId, JobId, NodeId};
use crate::loader::LoadedSession;
use crate::model::{Actor, ActorState, Node, NodeState};
use crate::response::{self, ApiError};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/logical/actors", get(actors))
        .route("/logical/actors/{actor_id}", get(actor))
        .route("/api/jobs/", get(jobs))
        .route("/api/jobs/{job_id}", get(job))
        .route("/nodes", get(nodes))
        .route("/nodes/{node_id}", get(node))
        .route("/events", get(events))
}

/// One actor in the dashboard's camelCase shape.
fn actor_json(session: &LoadedSession, actor: &Actor) -> Value {
    let current = actor.current();
    let placement = actor.placement();
    let state = current
        .map(|t| t.state)
        .unwrap_or(ActorState::DependenciesUnready);
    let first = |s: ActorState| {
        actor
            .transitions
            .iter()
            .find(|t| t.state == s)
            .map(|t| t.ts_ns / 1_000_000)
    };
    let node_id = placement.and_then(|p| p.node_id);
    let dead = actor
        .transitions
        .iter()
        .rev()
        .find(|t| t.state == ActorState::Dead);
    json!({
        "actorId": actor.actor_id,
        "jobId": actor.job_id(),
        "address": {
            "nodeId": node_id,
            "ipAddress": node_ip(session, node_id),
            "port": placement.map_or(0, |p| p.port),
            "workerId": placement.and_then(|p| p.worker_id),
        },
        "name": &*actor.def.name,
        "className": &*actor.def.class_name,
        "state": state.name(),
        "numRestarts": actor.num_restarts().to_string(),
        "timestamp": current.map_or(0.0, |t| (t.ts_ns / 1_000_000) as f64),
        "pid": placement.map_or(0, |p| p.pid),
        "startTime": first(ActorState::Alive).unwrap_or(0),
        "endTime": dead.map_or(0, |t| t.ts_ns / 1_000_000),
        "reprName": current.map(|t| t.repr_name.to_string()).unwrap_or_default(),
        "labelSelector": json_text(&actor.def.label_selector),
        "actorClass": &*actor.def.class_name,
        "exitDetail": dead.map(|t| t.exit_detail.to_string()).unwrap_or_else(|| "-".into()),
        "requiredResources": json_text(&actor.def.required_resources),
        "gpus": [],
        "processStats": null,
        "tpus": [],
        "rayNamespace": &*actor.def.ray_namespace,
        "isDetached": actor.def.is_detached,
    })
}

async fn actors(Loaded(session): Loaded) -> Response {
    let actors: serde_json::Map<String, Value> = session
        .state
        .actors
        .iter()
        .map(|a| (a.actor_id.hex(), actor_json(&session, a)))
        .collect();
    response::ok("All actors fetched.", json!({ "actors": actors }))
}

#[derive(Deserialize)]
struct ActorPath {
    actor_id: String,
}

async fn actor(Loaded(session): Loaded, Path(path): Path<ActorPath>) -> Response {
    // A live Ray answers an unknown actor with 200 and `detail: null`.
    let detail = ActorId::from_hex(&path.actor_id)
        .and_then(|id| session.state.actor(&id))
        .map(|a| actor_json(&session, a));
    response::ok("Actor details fetched.", json!({ "detail": detail }))
}

async fn jobs(Loaded(session): Loaded) -> Response {
    let list: Vec<Value> = all_jobs(&session).into_iter().map(|(_, _, v)| v).collect();
    response::json(StatusCode::OK, &list)
}

#[derive(Deserialize)]
struct JobPath {
    job_id: String,
}

async fn job(Loaded(session): Loaded, Path(path): Path<JobPath>) -> Response {
    let by_job = JobId::from_hex(&path.job_id);
    let found = all_jobs(&session)
        .into_iter()
        .find(|(job_id, submission, _)| {
            *submission == path.job_id || (by_job.is_some() && *job_id == by_job)
        });
    match found {
        Some((_, _, value)) => response::json(StatusCode::OK, &value),
        // A live Ray answers 404 with this text.
        None => response::text(
            StatusCode::NOT_FOUND,
            format!("Job {} does not exist", path.job_id),
        ),
    }
}

/// Whether the node has logs in storage.
fn has_logs(session: &LoadedSession, node: &Node) -> bool {
    ray_history_storage::layout::NodeId::new(&node.node_id.hex())
        .is_ok_and(|id| session.logs.contains_key(&id))
}

/// The `raylet.state` and `raylet.stateMessage` to report.
///
/// Ray's Logs page lists only nodes whose state is `ALIVE`, and its Cluster page links a node's
/// logs only when it is not `DEAD`; on a stored session every node is gone, so that page would
/// be empty. For requests from Ray's dashboard page of this session (`ray_page`) a dead node
/// with stored logs is therefore reported `ALIVE` ("its logs can be browsed") and its recorded
/// end goes into the state message, which the Cluster page shows next to it. Every other client
/// (scripts, our own UI) gets the recorded state unchanged.
fn reported_state(session: &LoadedSession, node: &Node, ray_page: bool) -> (&'static str, Value) {
    let message =
        crate::events::snapshot::compose_state_message(&node.death_reason, &node.death_message);
    match node.state {
        NodeState::Alive => ("ALIVE", json!(message)),
        NodeState::Dead if ray_page && has_logs(session, node) => {
            let reason = message.map(|m| format!(": {m}")).unwrap_or_default();
            (
                "ALIVE",
                json!(format!(
                    "DEAD in the stored session{reason} (shown as ALIVE so that Ray's Logs page \
                     lists its stored logs)"
                )),
            )
        }
        NodeState::Dead => ("DEAD", json!(message)),
    }
}

/// A resource total of a node event, or 0.
fn resource(node: &Node, name: &str) -> f64 {
    json_text(&node.resources_total)
        .get(name)
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

/// The `raylet` part of a node summary, with every field a live head reports. What a stored
/// session does not know (ports, sockets, usage) is zero or empty in the live type.
fn raylet_json(session: &LoadedSession, node: &Node, ray_page: bool) -> Value {
    let resources = camelize(json_text(&node.resources_total));
    let (state, state_message) = reported_state(session, node, ray_page);
    // Nothing is in the object store of a stopped node; its capacity is known.
    let store = resource(node, "object_store_memory") as u64;
    json!({
        "coreWorkersStats": [],
        "numWorkers": 0,
        "storeStats": {"objectStoreBytesAvail": store.to_string(), "cumulativeCreatedObjects": "0", "cumulativeCreatedBytes": "0"},
        "objectStoreUsedMemory": 0,
        "objectStoreAvailableMemory": store,
        "nodeId": node.node_id,
        "nodeManagerAddress": &*node.ip,
        "rayletSocketName": "",
        "objectStoreSocketName": "",
        "nodeManagerPort": 0,
        "objectManagerPort": 0,
        "nodeManagerHostname": &*node.hostname,
        "metricsExportPort": 0,
        "resourcesTotal": resources,
        "nodeName": &*node.node_name,
        "startTimeMs": node.start_ms.to_string(),
        "isHeadNode": node.is_head,
        "labels": json_text(&node.labels),
        "runtimeEnvAgentPort": 0,
        "stateSnapshot": {
            "state": if node.state == NodeState::Dead { "DEAD" } else { "IDLE" },
            "idleDurationMs": "0",
            "nodeActivity": [],
        },
        "metricsAgentPort": 0,
        "dashboardAgentListenPort": 0,
        "tempDir": "",
        "sessionDir": "",
        "state": state,
        "instanceId": "",
        "nodeTypeName": "",
        "instanceTypeName": "",
        "endTimeMs": node.end_ms.to_string(),
        "stateMessage": state_message,
        "sessionName": session.name().as_str(),
    })
}

fn hostname(session: &LoadedSession, node: &Node) -> String {
    if !node.hostname.is_empty() {
        return node.hostname.to_string();
    }
    let id = node.node_id.hex();
    session
        .nodes
        .iter()
        .find(|n| n.node_id.as_str() == id)
        .and_then(|n| n.pod_name.clone())
        .unwrap_or_else(|| node.node_name.to_string())
}

/// A process entry (`agent`, `gcs`, `workers[]`) with no samples.
fn no_process() -> Value {
    json!({
        "pid": 0, "createTime": 0.0, "cpuPercent": 0.0,
        "cpuTimes": {"user": 0.0, "system": 0.0, "childrenUser": 0.0, "childrenSystem": 0.0},
        "cmdline": [],
        "memoryInfo": {"rss": 0.0, "vms": 0.0, "pfaults": null, "pageins": null},
        "memoryFullInfo": null, "numFds": 0, "gpuMemoryUsage": null, "gpuUtilization": null,
    })
}

/// One node in the live summary shape. Ray's Cluster page does arithmetic on the host samples
/// (`mem[2].toFixed`, `disk["/"].percent`…), which a stored session does not have: they are
/// zeros of the live shape (`mem` = total, available, percent, used).
fn node_summary(session: &LoadedSession, node: &Node, ray_page: bool) -> Value {
    let sampled = session.meta.last_heartbeat.timestamp_millis() as f64 / 1000.0;
    json!({
        "now": sampled,
        "hostname": hostname(session, node),
        "ip": &*node.ip,
        "cpu": 0.0,
        "cpus": [0, 0],
        "mem": [0, 0, 0.0, 0],
        "hostMem": [0, 0],
        "cgroupMem": [0, 0],
        "shm": 0,
        "raylet": raylet_json(session, node, ray_page),
        "agent": no_process(),
        "bootTime": node.start_ms as f64 / 1000.0,
        "loadAvg": [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
        "disk": {"/": {"total": 0, "used": 0, "free": 0, "percent": 0.0}},
        "diskIo": [0, 0, 0, 0],
        "diskIoSpeed": [0.0, 0.0, 0.0, 0.0],
        "gpus": [],
        "tpus": [],
        "network": [0, 0],
        "networkSpeed": [0.0, 0.0],
        "cmdline": [],
        "gcs": if node.is_head { no_process() } else { Value::Null },
    })
}

/// Ray's per-node logical resources text (`1.0 CPU`, `15.58GiB memory`…); usage is not
/// recorded, so only totals are listed.
fn logical_resources(node: &Node) -> String {
    let Value::Object(resources) = json_text(&node.resources_total) else {
        return String::new();
    };
    resources
        .iter()
        .filter(|(name, _)| !name.starts_with("node:"))
        .filter_map(|(name, value)| {
            let value = value.as_f64()?;
            Some(if name.contains("memory") {
                format!("{} {name}", bytes_text(value))
            } else {
                format!("{value:.1} {name}")
            })
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Bytes as Ray writes them: `6.68GiB`.
fn bytes_text(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value}B")
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}

async fn nodes(
    Loaded(session): Loaded,
    RayPage(ray_page): RayPage,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let nodes = all_nodes(&session);
    if query_get(&pairs, "view") == Some("hostNameList") {
        let names: Vec<String> = nodes
            .iter()
            .filter(|n| reported_state(&session, n, ray_page).0 == "ALIVE")
            .map(|n| hostname(&session, n))
            .collect();
        return varies_by_page(response::ok(
            "Node hostname list fetched.",
            json!({ "hostNameList": names }),
        ));
    }
    let summary: Vec<Value> = nodes
        .iter()
        .map(|n| node_summary(&session, n, ray_page))
        .collect();
    let logical: BTreeMap<String, String> = nodes
        .iter()
        .map(|n| (n.node_id.hex(), logical_resources(n)))
        .collect();
    varies_by_page(response::ok(
        "Node summary fetched.",
        json!({ "summary": summary, "nodeLogicalResources": logical }),
    ))
}

/// Node states depend on the requesting page ([`reported_state`]): caches must keep apart.
fn varies_by_page(mut response: Response) -> Response {
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("referer"));
    response
}

#[derive(Deserialize)]
struct NodePath {
    node_id: String,
}

async fn node(
    Loaded(session): Loaded,
    RayPage(ray_page): RayPage,
    Path(path): Path<NodePath>,
) -> Response {
    let nodes = all_nodes(&session);
    let found =
        NodeId::from_hex(&path.node_id).and_then(|id| nodes.iter().find(|n| n.node_id == id));
    let detail = match found {
        Some(node) => {
            let mut value = node_summary(&session, node, ray_page);
            let actors: serde_json::Map<String, Value> = session
                .state
                .actors
                .iter()
                .filter(|a| a.placement().and_then(|p| p.node_id) == Some(node.node_id))
                .map(|a| (a.actor_id.hex(), actor_json(&session, a)))
                .collect();
            value["actors"] = Value::Object(actors);
            value["workers"] = json!([]);
            value
        }
        // A live Ray answers an unknown node with 200 and this skeleton.
        None => json!({
            "raylet": {"objectStoreUsedMemory": 0, "objectStoreAvailableMemory": 0, "stateMessage": null},
            "tpus": [], "actors": {}, "workers": [],
        }),
    };
    varies_by_page(response::ok(
        "Node details fetched.",
        json!({ "detail": detail }),
    ))
}

async fn events(Loaded(session): Loaded, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let pairs = query_pairs(query.as_deref());
    if let Some(job_id) = query_get(&pairs, "job_id") {
        let events: Vec<Value> = session
            .state
            .events
            .iter()
            .filter(|e| &*e.job_id == job_id)
            .map(|e| crate::events::camelize(e.json.clone()))
            .collect();
        return Ok(response::ok(
            "Job events fetched.",
            json!({ "jobId": job_id, "events": events }),
        ));
    }
    let mut grouped: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for e in &session.state.events {
        let key = if e.job_id.is_empty() {
            "global"
        } else {
            &e.job_id
        };
        grouped
            .entry(key)
            .or_default()
            .push(crate::events::camelize(e.json.clone()));
    }
    Ok(response::ok(
        "All events fetched.",
        json!({ "events": grouped }),
    ))
}
