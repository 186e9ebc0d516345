//! Ray's views of a loaded session that several endpoints share: every job as `api/jobs/`
//! lists it (submission jobs joined with their drivers, then driver-only jobs), every node
//! (from events and from `metadir/`), node addresses, and JSON text as values.

use serde_json::{Value, json};

use crate::ids::{JobId, NodeId};
use crate::loader::LoadedSession;
use crate::model::{DriverJob, JobStatus, Node, NodeState, SubmissionJob};

/// JSON object text as a value (`{}` when empty or not JSON).
pub(crate) fn json_text(text: &str) -> Value {
    if text.is_empty() {
        return json!({});
    }
    serde_json::from_str(text).unwrap_or_else(|_| json!({}))
}

pub(crate) fn node_ip(session: &LoadedSession, node: Option<NodeId>) -> String {
    node.and_then(|id| session.state.node(&id))
        .map(|n| n.ip.to_string())
        .filter(|ip| !ip.is_empty())
        .or_else(|| {
            let id = node?.hex();
            session
                .nodes
                .iter()
                .find(|n| n.node_id.as_str() == id)
                .and_then(|n| n.node_ip.clone())
        })
        .unwrap_or_default()
}

/// The status of a submission job known only from its driver and the JOBS cluster events.
fn status_from_events(session: &LoadedSession, submission_id: &str) -> Option<JobStatus> {
    let completed = format!("Completed a ray job {submission_id} with a status ");
    session.state.events.iter().rev().find_map(|e| {
        let message = e.json.get("message")?.as_str()?;
        message
            .strip_prefix(&completed)
            .and_then(|s| JobStatus::from_name(s.trim_end_matches('.')))
    })
}

fn driver_info(job: &DriverJob) -> Value {
    json!({
        "id": job.job_id,
        "node_ip_address": &*job.driver_ip,
        "pid": &*job.driver_pid,
    })
}

fn submission_json(sub: &SubmissionJob, driver: Option<&DriverJob>) -> Value {
    json!({
        "type": "SUBMISSION",
        "job_id": driver.and_then(|d| d.job_id),
        "submission_id": &*sub.submission_id,
        "driver_info": driver.map(driver_info),
        "status": sub.status.unwrap_or(JobStatus::Pending).name(),
        "entrypoint": &*sub.entrypoint,
        "message": &*sub.message,
        "error_type": Some(&*sub.error_type).filter(|e| !e.is_empty()),
        "start_time": sub.start_ms,
        "end_time": Some(sub.end_ms).filter(|e| *e > 0),
        "metadata": json_text(&sub.metadata),
        "runtime_env": json_text(&sub.runtime_env_json),
        "driver_agent_http_address": Some(&*sub.driver_agent_http_address).filter(|s| !s.is_empty()),
        "driver_node_id": Some(&*sub.driver_node_id).filter(|s| !s.is_empty()),
        "driver_exit_code": sub.driver_exit_code,
    })
}

fn ip_of(session: &LoadedSession, job: &DriverJob) -> DriverJob {
    let mut job = job.clone();
    if job.driver_ip.is_empty() {
        job.driver_ip = node_ip(session, job.driver_node_id).into();
    }
    job
}

/// Every job as `api/jobs/` lists them: submission jobs (joined with their driver), then
/// driver-only jobs.
pub(crate) fn all_jobs(session: &LoadedSession) -> Vec<(Option<JobId>, String, Value)> {
    let state = &session.state;
    let mut out = Vec::new();
    let driver_of = |id: &str| {
        state
            .driver_jobs
            .iter()
            .find(|d| &*d.submission_id == id)
            .map(|d| ip_of(session, d))
    };
    for sub in &state.submission_jobs {
        let driver = driver_of(&sub.submission_id);
        out.push((
            driver.as_ref().and_then(|d| d.job_id),
            sub.submission_id.to_string(),
            submission_json(sub, driver.as_ref()),
        ));
    }
    let mut listed: Vec<String> = out.iter().map(|(_, id, _)| id.clone()).collect();
    for driver in &state.driver_jobs {
        let driver = ip_of(session, driver);
        let submission_known = state
            .submission_jobs
            .iter()
            .any(|s| s.submission_id == driver.submission_id);
        if !driver.submission_id.is_empty() && !submission_known {
            // HTTP-event sessions have no submission-job events: rebuild from the driver.
            let status =
                status_from_events(session, &driver.submission_id).unwrap_or(if driver.is_dead {
                    JobStatus::Succeeded
                } else {
                    JobStatus::Running
                });
            let sub = SubmissionJob {
                submission_id: driver.submission_id.clone(),
                status: Some(status),
                entrypoint: driver.entrypoint.clone(),
                start_ms: driver.start_ms,
                end_ms: driver.end_ms,
                metadata: driver.metadata.clone(),
                runtime_env_json: driver.serialized_runtime_env.clone(),
                ..SubmissionJob::default()
            };
            listed.push(driver.submission_id.to_string());
            out.push((
                driver.job_id,
                driver.submission_id.to_string(),
                submission_json(&sub, Some(&driver)),
            ));
            continue;
        }
        if submission_known {
            continue;
        }
        out.push((
            driver.job_id,
            String::new(),
            json!({
                "type": "DRIVER",
                "job_id": driver.job_id,
                "submission_id": null,
                "driver_info": driver_info(&driver),
                "status": if driver.is_dead { "SUCCEEDED" } else { "RUNNING" },
                "entrypoint": &*driver.entrypoint,
                "message": null,
                "error_type": null,
                "start_time": driver.start_ms,
                "end_time": Some(driver.end_ms).filter(|e| *e > 0),
                "metadata": json_text(&driver.metadata),
                "runtime_env": json_text(&driver.serialized_runtime_env),
                "driver_agent_http_address": null,
                "driver_node_id": null,
                "driver_exit_code": null,
            }),
        ));
    }
    // Submitted jobs that never started a driver are known only from the JOBS events.
    for (id, start_ms) in started_jobs(session) {
        if listed.contains(&id) {
            continue;
        }
        listed.push(id.clone());
        let sub = SubmissionJob {
            submission_id: id.as_str().into(),
            status: Some(status_from_events(session, &id).unwrap_or(JobStatus::Running)),
            start_ms,
            ..SubmissionJob::default()
        };
        out.push((None, id, submission_json(&sub, None)));
    }
    out
}

/// `(submission id, start ms)` of every "Started a ray job <id>." JOBS event.
fn started_jobs(session: &LoadedSession) -> Vec<(String, u64)> {
    session
        .state
        .events
        .iter()
        .filter_map(|e| {
            let message = e.json.get("message")?.as_str()?;
            let id = message
                .strip_prefix("Started a ray job ")?
                .strip_suffix('.')?;
            Some((id.to_string(), e.timestamp.max(0) as u64 * 1000))
        })
        .collect()
}

/// Nodes from events, plus nodes known only from `metadir/` (no node events stored).
pub(crate) fn all_nodes(session: &LoadedSession) -> Vec<Node> {
    let mut nodes = session.state.nodes.clone();
    // HTTP node events do not say which node is the head; the collector's metadata does.
    let head = session.meta.head_node_id.as_ref().map(|n| n.as_str());
    for node in &mut nodes {
        let id = node.node_id.hex();
        node.is_head |= head == Some(id.as_str())
            || session.nodes.iter().any(|m| {
                m.node_id.as_str() == id
                    && m.node_type == ray_history_storage::metadata::NodeType::Head
            });
    }
    for meta in &session.nodes {
        let Some(id) = NodeId::from_hex(meta.node_id.as_str()) else {
            continue;
        };
        if nodes.iter().any(|n| n.node_id == id) {
            continue;
        }
        let mut node = Node::new(id);
        node.ip = meta.node_ip.clone().unwrap_or_default().into();
        node.hostname = meta.pod_name.clone().unwrap_or_default().into();
        node.is_head = meta.node_type == ray_history_storage::metadata::NodeType::Head;
        node.start_ms = meta.start_time.timestamp_millis().max(0) as u64;
        if let Some(end) = meta.end_time {
            node.end_ms = end.timestamp_millis().max(0) as u64;
            node.state = NodeState::Dead;
        }
        nodes.push(node);
    }
    nodes
}
