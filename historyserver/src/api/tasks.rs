//! `api/v0/tasks`, `api/v0/tasks/summarize` and `api/v0/tasks/timeline`, in the shapes of
//! Ray 2.60's state API.
//!
//! Over 600 lines only with its unit tests, which stay beside the three endpoints they check.

use std::collections::HashMap;

use axum::Router;
use axum::extract::RawQuery;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::value::RawValue;

use super::query::{Filter, parse_filters, parse_limit, query_get, query_pairs, truthy};
use super::{AppState, Loaded};
use crate::ids::{ActorId, Id, JobId, TaskId};
use crate::model::table::TaskTable;
use crate::model::{Task, TaskState, TaskType};
use crate::response::{self, ApiError, InOrder, ListResult, Wrapped, rows_unreadable};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v0/tasks", get(list))
        .route("/api/v0/tasks/summarize", get(summarize))
        .route("/api/v0/tasks/timeline", get(timeline))
}

const TASK_FILTER_COLUMNS: [&str; 16] = [
    "task_id",
    "attempt_number",
    "name",
    "state",
    "job_id",
    "actor_id",
    "type",
    "func_or_class_name",
    "parent_task_id",
    "node_id",
    "worker_id",
    "worker_pid",
    "error_type",
    "language",
    "placement_group_id",
    "is_debugger_paused",
];

/// Ray's nil task id: what it answers as the parent of a task that has none (drivers).
const NIL_TASK_ID: &str = "ffffffffffffffffffffffffffffffffffffffffffffffff";

/// The parent as Ray lists it: always a string (Ray's CLI refuses `null`).
fn parent_hex(task: &Task) -> String {
    task.def
        .parent_task_id
        .map_or_else(|| NIL_TASK_ID.to_string(), |id| id.hex())
}

fn opt_hex<const N: usize>(id: Option<Id<N>>) -> String {
    id.map(|i| i.hex()).unwrap_or_default()
}

/// The column value of a task as text, for filters.
fn column(task: &Task, column: &str) -> String {
    match column {
        "task_id" => task.task_id.hex(),
        "attempt_number" => task.attempt.to_string(),
        "name" => task.def.name.to_string(),
        "state" => task.state.name().to_string(),
        "job_id" => task.job_id().hex(),
        "actor_id" => opt_hex(task.def.actor_id),
        "type" => task.def.task_type.unwrap_or_default().name().to_string(),
        "func_or_class_name" => task.def.func_or_class_name.to_string(),
        "parent_task_id" => parent_hex(task),
        "node_id" => opt_hex(task.node_id),
        "worker_id" => opt_hex(task.worker_id),
        "worker_pid" => task.worker_pid.map(|p| p.to_string()).unwrap_or_default(),
        "error_type" => task
            .error
            .as_ref()
            .map(|e| e.error_type.to_string())
            .unwrap_or_default(),
        "language" => task.def.language.to_string(),
        "placement_group_id" => opt_hex(task.def.placement_group_id),
        _ => String::new(),
    }
}

/// Whether a column's text passes a filter (states and types compare case-insensitively).
fn passes(filter: &Filter, value: &str) -> bool {
    let same = if filter.column == "state" || filter.column == "type" {
        value.eq_ignore_ascii_case(&filter.value)
    } else {
        value == filter.value
    };
    same == filter.equal
}

/// Task rows matching the query, in row order. Filters on the in-memory columns are tested
/// there (a task id through its sorted column); only the others decode rows.
fn select(
    table: &TaskTable,
    filters: &[Filter],
    exclude_driver: bool,
) -> Result<Vec<u32>, ApiError> {
    let by_task = filters
        .iter()
        .find(|f| f.equal && f.column == "task_id")
        .map(|f| TaskId::from_hex(&f.value));
    let mut rows: Vec<u32> = match by_task {
        Some(Some(id)) => table.rows_of(&id),
        Some(None) => Vec::new(),
        None => (0..table.len() as u32).collect(),
    };
    if exclude_driver {
        rows.retain(|r| table.task_type(*r) != Some(TaskType::Driver));
    }
    type Keep<'a> = Box<dyn Fn(&str) -> bool + 'a>;
    let keeps: Vec<Keep> = filters
        .iter()
        .map(|f| Box::new(move |v: &str| passes(f, v)) as Keep)
        .collect();
    let mut on_rows = Vec::new();
    for (filter, keep) in filters.iter().zip(&keeps) {
        match table.test(&filter.column, keep) {
            Some(test) => rows.retain(|r| test(*r)),
            None => on_rows.push(filter),
        }
    }
    if on_rows.is_empty() {
        return Ok(rows);
    }
    let mut kept = Vec::new();
    let mut at = rows.iter();
    table
        .visit(rows.iter().copied(), |task| {
            let row = at.next().copied();
            if on_rows.iter().all(|f| passes(f, &column(&task, &f.column))) {
                kept.extend(row);
            }
        })
        .map_err(rows_unreadable)?;
    Ok(kept)
}

async fn list(Loaded(loaded): Loaded, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let pairs = query_pairs(query.as_deref());
    let filters = parse_filters(&pairs, &TASK_FILTER_COLUMNS)?;
    let limit = parse_limit(&pairs)?;
    let detail = truthy(query_get(&pairs, "detail"), false);
    let exclude_driver = truthy(query_get(&pairs, "exclude_driver"), true);
    let table = &loaded.state.tasks;
    let (page, count): (Vec<u32>, usize) = if filters.is_empty() {
        // The common unfiltered page: counts are known, only `limit` rows are visited.
        let count = table.len() - if exclude_driver { table.drivers() } else { 0 };
        let page = (0..table.len() as u32)
            .filter(|r| !(exclude_driver && table.task_type(*r) == Some(TaskType::Driver)))
            .take(limit)
            .collect();
        (page, count)
    } else {
        let mut selected = select(table, &filters, exclude_driver)?;
        let count = selected.len();
        selected.truncate(limit);
        (selected, count)
    };
    let tasks = table.fetch(&page).map_err(rows_unreadable)?;
    let rows: Vec<TaskRow> = tasks
        .iter()
        .map(|task| TaskRow {
            task,
            detail,
            logs: &loaded,
        })
        .collect();
    Ok(response::ok(
        "",
        Wrapped {
            result: ListResult::new(count, rows),
        },
    ))
}

/// Milliseconds as Ray prints them: `floor(ns / 1e6)` as a float.
pub(crate) fn ms(ns: u64) -> f64 {
    (ns / 1_000_000) as f64
}

fn raw(text: &str) -> Option<&RawValue> {
    if text.is_empty() {
        return None;
    }
    serde_json::from_str(text).ok()
}

struct TaskRow<'a> {
    task: &'a Task,
    detail: bool,
    logs: &'a crate::loader::LoadedSession,
}

impl Serialize for TaskRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.task;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("task_id", &t.task_id)?;
        m.serialize_entry("attempt_number", &t.attempt)?;
        m.serialize_entry("name", &*t.def.name)?;
        m.serialize_entry("state", t.state.name())?;
        m.serialize_entry("job_id", &t.job_id())?;
        m.serialize_entry("actor_id", &t.def.actor_id)?;
        m.serialize_entry("type", t.def.task_type.unwrap_or_default().name())?;
        m.serialize_entry("func_or_class_name", &*t.def.func_or_class_name)?;
        m.serialize_entry("parent_task_id", &parent_hex(t))?;
        m.serialize_entry("node_id", &t.node_id)?;
        m.serialize_entry("worker_id", &t.worker_id)?;
        m.serialize_entry("worker_pid", &t.worker_pid)?;
        m.serialize_entry("error_type", &t.error.as_ref().map(|e| &*e.error_type))?;
        if !self.detail {
            return m.end();
        }
        m.serialize_entry("language", &*t.def.language)?;
        m.serialize_entry(
            "required_resources",
            raw_or_empty(&t.def.required_resources),
        )?;
        m.serialize_entry(
            "runtime_env_info",
            &RuntimeEnvInfo {
                serialized_runtime_env: &t.def.serialized_runtime_env,
                runtime_env_config: raw(&t.def.runtime_env_config),
            },
        )?;
        m.serialize_entry("placement_group_id", &t.def.placement_group_id)?;
        let mut states: Vec<(u64, TaskState)> = TaskState::ALL
            .iter()
            .filter_map(|s| t.ts(*s).map(|ts| (ts, *s)))
            .collect();
        states.sort();
        let events: Vec<StateEvent> = states
            .into_iter()
            .map(|(ts, state)| StateEvent {
                state: state.name(),
                created_ms: ms(ts),
            })
            .collect();
        m.serialize_entry("events", &events)?;
        m.serialize_entry("profiling_data", &ProfilingData(t))?;
        m.serialize_entry(
            "creation_time_ms",
            &t.ts(TaskState::PendingArgsAvail)
                .or(t.creation_ns())
                .map(ms),
        )?;
        m.serialize_entry("start_time_ms", &t.ts(TaskState::Running).map(ms))?;
        m.serialize_entry("end_time_ms", &t.end_ns().map(ms))?;
        m.serialize_entry(
            "task_log_info",
            &t.log_info.as_ref().map(|l| LogInfo {
                info: l,
                stdout_file: self.logs.task_log_file(t, "out"),
                stderr_file: self.logs.task_log_file(t, "err"),
            }),
        )?;
        m.serialize_entry(
            "error_message",
            &t.error
                .as_ref()
                .map(|e| strip_ansi_escapes::strip_str(&e.message)),
        )?;
        m.serialize_entry("is_debugger_paused", &None::<bool>)?;
        m.serialize_entry("call_site", &None::<String>)?;
        m.serialize_entry("label_selector", &serde_json::json!({}))?;
        m.serialize_entry("fallback_strategy", &serde_json::json!({"options": []}))?;
        m.end()
    }
}

fn raw_or_empty(text: &str) -> &RawValue {
    match raw(text) {
        Some(r) => r,
        None => serde_json::from_str("{}").unwrap_or_else(|_| unreachable!("{{}} is valid JSON")),
    }
}

#[derive(Serialize)]
struct RuntimeEnvInfo<'a> {
    serialized_runtime_env: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime_env_config: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct StateEvent {
    state: &'static str,
    created_ms: f64,
}

struct LogInfo<'a> {
    info: &'a crate::model::TaskLogInfo,
    stdout_file: Option<String>,
    stderr_file: Option<String>,
}

impl Serialize for LogInfo<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(6))?;
        let file = |found: &Option<String>, stored: &str| {
            found.clone().unwrap_or_else(|| stored.to_string())
        };
        m.serialize_entry(
            "stdout_file",
            &file(&self.stdout_file, &self.info.stdout_file),
        )?;
        m.serialize_entry(
            "stderr_file",
            &file(&self.stderr_file, &self.info.stderr_file),
        )?;
        m.serialize_entry("stdout_start", &self.info.stdout_start)?;
        m.serialize_entry("stdout_end", &self.info.stdout_end)?;
        m.serialize_entry("stderr_start", &self.info.stderr_start)?;
        m.serialize_entry("stderr_end", &self.info.stderr_end)?;
        m.end()
    }
}

struct ProfilingData<'a>(&'a Task);

impl Serialize for ProfilingData<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Ray shows the executing worker's spans; driver-side `submit_task` spans are not shown.
        let Some(p) = self
            .0
            .profile
            .as_ref()
            .filter(|p| &*p.component_type == "worker")
        else {
            return s.serialize_map(Some(0))?.end();
        };
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("component_type", &*p.component_type)?;
        m.serialize_entry("component_id", &*p.component_id)?;
        m.serialize_entry("node_ip_address", &*p.node_ip_address)?;
        let events: Vec<serde_json::Value> = p
            .events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "start_time": e.start_ns as f64 / 1e6,
                    "end_time": e.end_ns as f64 / 1e6,
                    "extra_data": serde_json::from_str::<serde_json::Value>(&e.extra_data)
                        .unwrap_or_else(|_| serde_json::json!({})),
                    "event_name": &*e.name,
                })
            })
            .collect();
        m.serialize_entry("events", &events)?;
        m.end()
    }
}

#[derive(Serialize)]
struct FuncSummary<'a> {
    func_or_class_name: &'a str,
    #[serde(rename = "type")]
    task_type: &'static str,
    state_counts: InOrder<&'static str, u64>,
}

#[derive(Serialize)]
struct ClusterSummary<'a> {
    summary: InOrder<&'a str, FuncSummary<'a>>,
    total_tasks: u64,
    total_actor_tasks: u64,
    total_actor_scheduled: u64,
    summary_by: &'static str,
}

#[derive(Serialize)]
struct NodeSummaries<'a> {
    node_id_to_summary: HashMap<&'static str, ClusterSummary<'a>>,
}

#[derive(Serialize)]
struct LineageSummary {
    summary: Vec<super::lineage::LineageNode>,
    total_tasks: u64,
    total_actor_tasks: u64,
    total_actor_scheduled: u64,
    summary_by: &'static str,
}

async fn summarize(
    Loaded(loaded): Loaded,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(query.as_deref());
    let by = query_get(&pairs, "summary_by").unwrap_or("func_name");
    if !matches!(by, "func_name" | "task_name" | "lineage") {
        return Err(ApiError::bad_request(format!(
            "invalid summary_by {by:?}: use func_name, task_name or lineage"
        )));
    }
    let filters = parse_filters(&pairs, &TASK_FILTER_COLUMNS)?;
    let session = &loaded.state;
    let table = &session.tasks;
    let selected = select(table, &filters, true)?;
    let (mut tasks, mut actor_tasks, mut actor_scheduled) = (0, 0, 0);
    for row in &selected {
        match table.task_type(*row).unwrap_or_default() {
            TaskType::Normal => tasks += 1,
            TaskType::Actor => actor_tasks += 1,
            TaskType::ActorCreation => actor_scheduled += 1,
            TaskType::Driver => {}
        }
    }
    let count = selected.len();
    if by == "lineage" {
        let rows = table.fetch(&selected).map_err(rows_unreadable)?;
        let refs: Vec<&Task> = rows.iter().map(|t| t.as_ref()).collect();
        let cluster = LineageSummary {
            summary: super::lineage::tree(session, &refs),
            total_tasks: tasks,
            total_actor_tasks: actor_tasks,
            total_actor_scheduled: actor_scheduled,
            summary_by: "lineage",
        };
        let result = serde_json::json!({ "node_id_to_summary": { "cluster": cluster } });
        return Ok(response::ok(
            "",
            Wrapped {
                result: ListResult::new(count, result),
            },
        ));
    }
    // Ray groups its task list, sorted by task id, in order of first appearance.
    let mut chosen = vec![false; table.len()];
    for row in &selected {
        chosen[*row as usize] = true;
    }
    let mut summary: InOrder<&str, FuncSummary> = InOrder(Vec::new());
    for row in table.by_id().iter().filter(|r| chosen[**r as usize]) {
        let task_type = table.task_type(*row).unwrap_or_default();
        let name: &str = table.name(*row);
        let entry = summary.entry(name, || FuncSummary {
            func_or_class_name: name,
            task_type: task_type.name(),
            state_counts: InOrder(Vec::new()),
        });
        *entry.state_counts.entry(table.state(*row).name(), || 0) += 1;
    }
    let cluster = ClusterSummary {
        summary,
        total_tasks: tasks,
        total_actor_tasks: actor_tasks,
        total_actor_scheduled: actor_scheduled,
        summary_by: "func_name",
    };
    let result = NodeSummaries {
        node_id_to_summary: HashMap::from([("cluster", cluster)]),
    };
    Ok(response::ok(
        "",
        Wrapped {
            result: ListResult::new(count, result),
        },
    ))
}

/// Colours of Chrome trace events, as Ray's timeline assigns them.
fn cname(event: &str) -> &'static str {
    match event {
        "task:deserialize_arguments" => "rail_load",
        "task:execute" => "rail_animation",
        "task:store_outputs" => "rail_idle",
        "worker_idle" => "cq_build_abandoned",
        "task" => "rail_response",
        "wait_for_function" | "fetch_and_run_function" | "register_remote_function" => {
            "detailed_memory_dump"
        }
        "ray.get" => "good",
        "ray.put" => "terrible",
        "ray.wait" => "vsync_highlight_color",
        "submit_task" => "background_memory_dump",
        _ => "generic_work",
    }
}

async fn timeline(Loaded(loaded): Loaded, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let pairs = query_pairs(query.as_deref());
    let job = match query_get(&pairs, "job_id") {
        Some(text) => Some(
            JobId::from_hex(text)
                .ok_or_else(|| ApiError::bad_request(format!("invalid job_id {text:?}")))?,
        ),
        None => None,
    };
    let table = &loaded.state.tasks;
    // Indexes in order of first appearance, like Ray: nodes by IP, workers across all nodes.
    let mut nodes: Vec<String> = Vec::new();
    let mut workers: Vec<(usize, String)> = Vec::new();
    let mut spans = Vec::new();
    let rows: Vec<u32> = (0..table.len() as u32)
        .filter(|r| table.task_type(*r) != Some(TaskType::Driver))
        .collect();
    table
        .visit(rows, |task| {
            if job.is_some_and(|j| task.job_id() != j) {
                return;
            }
            let Some(profile) = task
                .profile
                .as_ref()
                .filter(|p| matches!(&*p.component_type, "worker" | "driver"))
            else {
                return;
            };
            let pid = match nodes.iter().position(|n| **n == *profile.node_ip_address) {
                Some(i) => i,
                None => {
                    nodes.push(profile.node_ip_address.to_string());
                    nodes.len() - 1
                }
            };
            let component = format!("{}:{}", profile.component_type, profile.component_id);
            let tid = match workers.iter().position(|w| w.0 == pid && w.1 == component) {
                Some(i) => i,
                None => {
                    workers.push((pid, component));
                    workers.len() - 1
                }
            };
            for event in &profile.events {
                let mut args = match serde_json::from_str::<serde_json::Value>(&event.extra_data) {
                    Ok(serde_json::Value::Object(map)) => map,
                    _ => serde_json::Map::new(),
                };
                let name = args
                    .get("name")
                    .and_then(|n| n.as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| event.name.to_string());
                let cname_key = args
                    .get("cname")
                    .and_then(|c| c.as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| event.name.to_string());
                args.insert("task_id".into(), task.task_id.hex().into());
                args.insert("job_id".into(), task.job_id().hex().into());
                args.insert("attempt_number".into(), task.attempt.into());
                args.insert(
                    "func_or_class_name".into(),
                    task.def.func_or_class_name.to_string().into(),
                );
                args.insert(
                    "actor_id".into(),
                    task.def
                        .actor_id
                        .map(|a: ActorId| a.hex().into())
                        .unwrap_or(serde_json::Value::Null),
                );
                // The same float arithmetic as Ray (ns -> ms -> µs), so values match exactly.
                let start_ms = event.start_ns as f64 / 1e6;
                let end_ms = event.end_ns as f64 / 1e6;
                spans.push(serde_json::json!({
                    "cat": &*event.name,
                    "name": name,
                    "pid": pid,
                    "tid": tid,
                    "ts": start_ms * 1e3,
                    "dur": end_ms * 1e3 - start_ms * 1e3,
                    "cname": cname(&cname_key),
                    "args": args,
                    "ph": "X",
                }));
            }
        })
        .map_err(rows_unreadable)?;
    for (pid, ip) in nodes.iter().enumerate() {
        spans.push(serde_json::json!({
            "name": "process_name", "args": {"name": format!("Node {ip}")},
            "pid": pid, "tid": null, "ph": "M",
        }));
    }
    for (tid, (pid, component)) in workers.iter().enumerate() {
        spans.push(serde_json::json!({
            "name": "thread_name", "args": {"name": component},
            "pid": pid, "tid": tid, "ph": "M",
        }));
    }
    let mut response = response::json(StatusCode::OK, &spans);
    if truthy(query_get(&pairs, "download"), false) {
        let job_text = job.map(|j| j.hex()).unwrap_or_default();
        let now = chrono::Utc::now().format("%Y-%m-%d_%H-%M-%S");
        let disposition = format!("attachment; filename=\"timeline-{job_text}-{now}.json\"");
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(response.into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_messages_lose_their_colours_as_in_ray() {
        let message = "\u{1b}[36mray::f()\u{1b}[39m (pid=1)\n\u{1b}[1;31mValueError\u{1b}[0m: bad";
        assert_eq!(
            strip_ansi_escapes::strip_str(message),
            "ray::f() (pid=1)\nValueError: bad"
        );
    }
}
