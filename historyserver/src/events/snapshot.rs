//! `snapshot/<kind>.jsonl`: the head collector's copies of the live dashboard's answers
//! (`{"kind":…,"ts_ms":…,"row":…}` per line, the row as Ray's State API or Jobs API gave it).
//!
//! Tasks, actors, nodes and jobs become the same updates the event parsers produce, so the
//! builder's merge decides per field: task states keep their own timestamps, an actor's state
//! counts as of the snapshot time, and a later event wins over an earlier snapshot. Placement
//! groups, workers, Serve and Data pages have no events; their newest rows are kept as they are.
//!
//! Over 600 lines only with its unit tests, which stay beside the row shapes they check.

use std::borrow::Cow;

use ray_history_storage::layout::SnapshotKind;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::export::{DeathCause, LogInfoData, map_text};
use super::{flex_i64, flex_u64, resources_text};
use crate::ids::Id;
use crate::model::{
    ActorDefinition, ActorState, ActorTransition, ActorUpdate, Builder, DriverJob, ErrorInfo,
    JobStatus, Node, NodeState, Profile, ProfileEvent, SubmissionJob, TaskDefinition, TaskState,
    TaskType, TaskUpdate,
};

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    ts_ms: u64,
    #[serde(borrow)]
    row: &'a RawValue,
}

/// Parses one stored line; `false` when it is not a snapshot line.
pub fn parse_line(line: &[u8], builder: &mut Builder) -> bool {
    let Ok(line) = serde_json::from_slice::<Line>(line) else {
        return false;
    };
    let ts_ns = line.ts_ms.saturating_mul(1_000_000);
    let row = line.row.get();
    let Some(kind) = SnapshotKind::from_name(&line.kind) else {
        builder.stats.unknown_events += 1;
        return true;
    };
    match kind {
        SnapshotKind::Tasks => serde_json::from_str(row).map(|t| task(t, builder)),
        SnapshotKind::Actors => serde_json::from_str(row).map(|a| actor(a, ts_ns, builder)),
        SnapshotKind::Nodes => serde_json::from_str(row).map(|n| node(n, builder)),
        SnapshotKind::Jobs => serde_json::from_str(row).map(|j| job(j, ts_ns, builder)),
        SnapshotKind::PlacementGroups | SnapshotKind::Workers | SnapshotKind::Serve => {
            raw_row(kind, row, ts_ns, builder)
        }
        // Kept whole (`{"job_id":…,"page":…}`), one per job.
        SnapshotKind::Datasets => serde_json::from_str(row).map(|d: DatasetPage| {
            builder.snapshot_row(kind, d.job_id.into_owned(), ts_ns, row);
        }),
    }
    .is_ok()
}

/// Hex id of a row column, `None` for null, empty or Ray's nil id.
fn hex_id<const N: usize>(text: Option<&str>) -> Option<Id<N>> {
    text.and_then(Id::<N>::from_hex).filter(|id| !id.is_nil())
}

/// Milliseconds (Ray's State API floats) to nanoseconds.
fn ms_to_ns(ms: f64) -> u64 {
    if ms > 0.0 { (ms * 1e6) as u64 } else { 0 }
}

#[derive(Deserialize)]
struct TaskRow<'a> {
    #[serde(borrow)]
    task_id: Cow<'a, str>,
    #[serde(default)]
    attempt_number: u32,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    job_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    actor_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "type")]
    task_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    func_or_class_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    parent_task_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    node_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    worker_id: Option<Cow<'a, str>>,
    #[serde(default)]
    worker_pid: Option<u32>,
    #[serde(default, borrow)]
    error_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    error_message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    language: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    required_resources: Option<&'a RawValue>,
    #[serde(default, borrow)]
    runtime_env_info: Option<RuntimeEnvRow<'a>>,
    #[serde(default, borrow)]
    placement_group_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    events: Vec<StateEvent<'a>>,
    #[serde(default, borrow)]
    profiling_data: Option<ProfileRow<'a>>,
    #[serde(default, borrow)]
    task_log_info: Option<LogInfoData<'a>>,
}

#[derive(Deserialize)]
struct RuntimeEnvRow<'a> {
    #[serde(default, borrow)]
    serialized_runtime_env: Cow<'a, str>,
    #[serde(default, borrow)]
    runtime_env_config: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StateEvent<'a> {
    #[serde(borrow)]
    state: Cow<'a, str>,
    #[serde(default)]
    created_ms: f64,
}

#[derive(Deserialize)]
struct ProfileRow<'a> {
    #[serde(default, borrow)]
    component_type: Cow<'a, str>,
    #[serde(default, borrow)]
    component_id: Cow<'a, str>,
    #[serde(default, borrow)]
    node_ip_address: Cow<'a, str>,
    #[serde(default, borrow)]
    events: Vec<ProfileEventRow<'a>>,
}

#[derive(Deserialize)]
struct ProfileEventRow<'a> {
    #[serde(default)]
    start_time: f64,
    #[serde(default)]
    end_time: f64,
    #[serde(default, borrow)]
    event_name: Cow<'a, str>,
    #[serde(default, borrow)]
    extra_data: Option<&'a RawValue>,
}

fn text<'a>(value: &'a Option<Cow<'a, str>>) -> &'a str {
    value.as_deref().unwrap_or_default()
}

fn task(row: TaskRow, builder: &mut Builder) {
    let job_id = hex_id(row.job_id.as_deref());
    let env = row.runtime_env_info.as_ref();
    let definition = TaskDefinition {
        name: builder.intern(text(&row.name)),
        func_or_class_name: builder.intern(text(&row.func_or_class_name)),
        task_type: row.task_type.as_deref().and_then(TaskType::from_name),
        language: builder.intern(text(&row.language)),
        job_id,
        actor_id: hex_id(row.actor_id.as_deref()),
        parent_task_id: hex_id(row.parent_task_id.as_deref()),
        placement_group_id: hex_id(row.placement_group_id.as_deref()),
        required_resources: resources_text(row.required_resources, builder),
        serialized_runtime_env: builder.intern(
            env.map(|e| e.serialized_runtime_env.as_ref())
                .unwrap_or_default(),
        ),
        runtime_env_config: builder.intern(
            env.and_then(|e| e.runtime_env_config)
                .map(|r| r.get())
                .unwrap_or_default(),
        ),
    };
    let states = row
        .events
        .iter()
        .filter_map(|e| Some((TaskState::from_name(&e.state)?, ms_to_ns(e.created_ms))))
        .collect::<Vec<_>>();
    let error = row.error_type.as_deref().map(|error_type| ErrorInfo {
        error_type: builder.intern(error_type),
        message: text(&row.error_message).into(),
    });
    let log_info = row.task_log_info.as_ref().map(|l| l.to_model(builder));
    let profile = row.profiling_data.map(|p| Profile {
        component_type: builder.intern(&p.component_type),
        component_id: builder.intern(&p.component_id),
        node_ip_address: builder.intern(&p.node_ip_address),
        events: p
            .events
            .iter()
            .map(|e| ProfileEvent {
                start_ns: ms_to_ns(e.start_time),
                end_ns: ms_to_ns(e.end_time),
                name: builder.intern(&e.event_name),
                // Events carry it as JSON text; an empty map is what they write for none.
                extra_data: builder.intern(
                    e.extra_data
                        .map(RawValue::get)
                        .filter(|d| *d != "{}")
                        .unwrap_or_default(),
                ),
            })
            .collect(),
        from_snapshot: true,
    });
    let update = TaskUpdate {
        task_id: Id::from_hex(&row.task_id),
        attempt: row.attempt_number,
        definition: Some(definition),
        event_ns: states.iter().map(|(_, t)| *t).max().unwrap_or(0),
        states,
        node_id: hex_id(row.node_id.as_deref()),
        worker_id: hex_id(row.worker_id.as_deref()),
        worker_pid: row.worker_pid.filter(|p| *p > 0),
        error,
        log_info,
        profile,
        job_id,
    };
    builder.task(update);
}

#[derive(Deserialize)]
struct ActorRow<'a> {
    #[serde(borrow)]
    actor_id: Cow<'a, str>,
    #[serde(default, borrow)]
    class_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    state: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    job_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    node_id: Option<Cow<'a, str>>,
    #[serde(default)]
    pid: Option<u32>,
    #[serde(default, borrow)]
    ray_namespace: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    serialized_runtime_env: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    required_resources: Option<&'a RawValue>,
    #[serde(default, borrow)]
    death_cause: Option<DeathCause<'a>>,
    #[serde(default)]
    is_detached: Option<bool>,
    #[serde(default, borrow)]
    placement_group_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    repr_name: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "flex_u64")]
    num_restarts: Option<u64>,
    #[serde(default, borrow)]
    label_selector: Option<&'a RawValue>,
}

fn actor(row: ActorRow, ts_ns: u64, builder: &mut Builder) {
    let Some(actor_id) = Id::from_hex(&row.actor_id) else {
        builder.stats.unknown_events += 1;
        return;
    };
    let definition = ActorDefinition {
        job_id: hex_id(row.job_id.as_deref()),
        name: builder.intern(text(&row.name)),
        class_name: builder.intern(text(&row.class_name)),
        ray_namespace: builder.intern(text(&row.ray_namespace)),
        is_detached: row.is_detached.unwrap_or(false),
        required_resources: resources_text(row.required_resources, builder),
        label_selector: builder.intern(&map_text(row.label_selector)),
        serialized_runtime_env: builder.intern(text(&row.serialized_runtime_env)),
        placement_group_id: hex_id(row.placement_group_id.as_deref()),
    };
    // Ray's actor rows have no timestamps: the state holds as of the snapshot.
    let transitions = row
        .state
        .as_deref()
        .and_then(ActorState::from_name)
        .map(|state| ActorTransition {
            ts_ns,
            num_restarts: row
                .num_restarts
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            state,
            node_id: hex_id(row.node_id.as_deref()),
            worker_id: None,
            pid: row.pid.unwrap_or(0),
            port: 0,
            repr_name: builder.intern(text(&row.repr_name)),
            exit_detail: builder.intern(
                row.death_cause
                    .as_ref()
                    .map(|d| d.message())
                    .unwrap_or_default(),
            ),
        })
        .into_iter()
        .collect();
    builder.actor(ActorUpdate {
        actor_id,
        definition: Some(definition),
        transitions,
    });
}

#[derive(Deserialize)]
struct NodeRow<'a> {
    #[serde(borrow)]
    node_id: Cow<'a, str>,
    #[serde(default, borrow)]
    node_ip: Option<Cow<'a, str>>,
    #[serde(default)]
    is_head_node: bool,
    #[serde(default, borrow)]
    state: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    state_message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    node_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    resources_total: Option<&'a RawValue>,
    #[serde(default, borrow)]
    labels: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "flex_u64")]
    start_time_ms: Option<u64>,
    #[serde(default, deserialize_with = "flex_u64")]
    end_time_ms: Option<u64>,
}

/// Ray's `compose_state_message` prefixes, back to the death reasons they came from.
const DEATH_REASONS: [(&str, &str); 4] = [
    ("Expected termination", "EXPECTED_TERMINATION"),
    ("Unexpected termination", "UNEXPECTED_TERMINATION"),
    ("Terminated due to preemption", "AUTOSCALER_DRAIN_PREEMPTED"),
    (
        "Terminated due to idle (no Ray activity)",
        "AUTOSCALER_DRAIN_IDLE",
    ),
];

/// A node's `state_message` as Ray's dashboard composes it from the death reason and message.
pub(crate) fn compose_state_message(reason: &str, message: &str) -> Option<String> {
    let prefix = DEATH_REASONS
        .iter()
        .find(|(_, r)| *r == reason)
        .map(|(prefix, _)| *prefix);
    match (prefix, message.is_empty()) {
        (Some(prefix), true) => Some(prefix.to_string()),
        (Some(prefix), false) => Some(format!("{prefix}: {message}")),
        (None, false) => Some(message.to_string()),
        (None, true) => None,
    }
}

/// Splits a node's `state_message` into Ray's death reason and reason message.
pub(crate) fn death_of_state_message(message: &str) -> (&'static str, &str) {
    for (prefix, reason) in DEATH_REASONS {
        if let Some(rest) = message.strip_prefix(prefix) {
            if rest.is_empty() {
                return (reason, "");
            }
            if let Some(rest) = rest.strip_prefix(": ") {
                return (reason, rest);
            }
        }
    }
    ("", message)
}

fn node(row: NodeRow, builder: &mut Builder) {
    let Some(node_id) = Id::from_hex(&row.node_id) else {
        builder.stats.unknown_events += 1;
        return;
    };
    let mut node = Node::new(node_id);
    node.ip = builder.intern(text(&row.node_ip));
    node.node_name = builder.intern(text(&row.node_name));
    node.is_head = row.is_head_node;
    node.resources_total = resources_text(row.resources_total, builder);
    node.labels = builder.intern(&map_text(row.labels));
    node.start_ms = row.start_time_ms.unwrap_or(0);
    node.end_ms = row.end_time_ms.unwrap_or(0);
    node.state = if row.state.as_deref() == Some("DEAD") {
        NodeState::Dead
    } else {
        NodeState::Alive
    };
    if let Some(message) = row.state_message.as_deref() {
        let (reason, message) = death_of_state_message(message);
        node.death_reason = builder.intern(reason);
        node.death_message = builder.intern(message);
    }
    builder.node(node);
}

#[derive(Deserialize)]
struct JobRow<'a> {
    #[serde(default, borrow, rename = "type")]
    job_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    job_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    submission_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    driver_info: Option<DriverInfo<'a>>,
    #[serde(default, borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    entrypoint: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    error_type: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "flex_u64")]
    start_time: Option<u64>,
    #[serde(default, deserialize_with = "flex_u64")]
    end_time: Option<u64>,
    #[serde(default, borrow)]
    metadata: Option<&'a RawValue>,
    #[serde(default, borrow)]
    runtime_env: Option<&'a RawValue>,
    #[serde(default, borrow)]
    driver_agent_http_address: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    driver_node_id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "flex_i64")]
    driver_exit_code: Option<i64>,
}

#[derive(Deserialize)]
struct DriverInfo<'a> {
    #[serde(default, borrow)]
    node_ip_address: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pid: Option<Cow<'a, str>>,
}

fn job(row: JobRow, ts_ns: u64, builder: &mut Builder) {
    let status = row.status.as_deref().and_then(JobStatus::from_name);
    let submission_id = text(&row.submission_id);
    let metadata = builder.intern(&map_text(row.metadata));
    let runtime_env = row
        .runtime_env
        .map(RawValue::get)
        .filter(|e| *e != "{}" && *e != "null")
        .unwrap_or_default();
    let driver = row.driver_info.as_ref();
    let submitted = row.job_type.as_deref() == Some("SUBMISSION") || !submission_id.is_empty();
    if let Some(job_id) = hex_id(row.job_id.as_deref()) {
        let ended = status.is_some_and(|s| s != JobStatus::Running && s != JobStatus::Pending);
        let driver_job = DriverJob {
            job_id: Some(job_id),
            driver_pid: builder.intern(driver.map(|d| text(&d.pid)).unwrap_or_default()),
            driver_ip: builder.intern(driver.map(|d| text(&d.node_ip_address)).unwrap_or_default()),
            driver_node_id: None,
            // A submitted job's row has the submission's entrypoint and times, not the driver's.
            entrypoint: builder.intern(if submitted { "" } else { text(&row.entrypoint) }),
            start_ms: if submitted {
                0
            } else {
                row.start_time.unwrap_or(0)
            },
            end_ms: if submitted {
                0
            } else {
                row.end_time.unwrap_or(0)
            },
            is_dead: !submitted && ended,
            submission_id: builder.intern(submission_id),
            metadata: metadata.clone(),
            serialized_runtime_env: builder.intern(if submitted { "" } else { runtime_env }),
        };
        builder.driver_job(driver_job);
    }
    if submitted && !submission_id.is_empty() {
        let submission = SubmissionJob {
            submission_id: builder.intern(submission_id),
            ts_ns,
            status,
            entrypoint: builder.intern(text(&row.entrypoint)),
            message: builder.intern(text(&row.message)),
            error_type: builder.intern(text(&row.error_type)),
            start_ms: row.start_time.unwrap_or(0),
            end_ms: row.end_time.unwrap_or(0),
            metadata,
            runtime_env_json: builder.intern(runtime_env),
            driver_agent_http_address: builder.intern(text(&row.driver_agent_http_address)),
            driver_node_id: builder.intern(text(&row.driver_node_id)),
            driver_exit_code: row.driver_exit_code,
        };
        builder.submission_job(submission);
    }
}

/// Columns that identify a row of the kinds kept as they are.
#[derive(Deserialize)]
struct RowId<'a> {
    #[serde(default, borrow)]
    placement_group_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    worker_id: Option<Cow<'a, str>>,
}

fn raw_row(
    kind: SnapshotKind,
    row: &str,
    ts_ns: u64,
    builder: &mut Builder,
) -> Result<(), serde_json::Error> {
    let ids: RowId = serde_json::from_str(row)?;
    let id = match kind {
        SnapshotKind::PlacementGroups => ids.placement_group_id,
        SnapshotKind::Workers => ids.worker_id,
        _ => None,
    };
    builder.snapshot_row(kind, id.unwrap_or_default().into_owned(), ts_ns, row);
    Ok(())
}

#[derive(Deserialize)]
struct DatasetPage<'a> {
    #[serde(borrow)]
    job_id: Cow<'a, str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_messages_split_as_ray_composes_them() {
        assert_eq!(
            death_of_state_message("Expected termination: received SIGTERM"),
            ("EXPECTED_TERMINATION", "received SIGTERM")
        );
        assert_eq!(
            death_of_state_message("Unexpected termination"),
            ("UNEXPECTED_TERMINATION", "")
        );
        assert_eq!(
            death_of_state_message("health check failed"),
            ("", "health check failed")
        );
        for message in [
            "Expected termination: received SIGTERM",
            "Unexpected termination",
            "x",
        ] {
            let (reason, rest) = death_of_state_message(message);
            assert_eq!(
                compose_state_message(reason, rest).as_deref(),
                Some(message)
            );
        }
    }

    #[test]
    fn a_task_row_becomes_an_attempt_with_its_states() {
        let line = br#"{"kind":"tasks","ts_ms":1796129180000,"row":{"task_id":"16310a0f0a45af5cffffffffffffffffffffffff01000000","attempt_number":0,"name":"f","state":"FINISHED","job_id":"01000000","actor_id":null,"type":"NORMAL_TASK","func_or_class_name":"f","parent_task_id":"ffffffffffffffffffffffffffffffffffffffff01000000","node_id":"bc70de6d7ac9f52d5b64abcc87c7becc01db5634cb5f03384e190f06","worker_pid":16099,"error_type":null,"language":"PYTHON","required_resources":{"CPU":1.0},"events":[{"state":"PENDING_ARGS_AVAIL","created_ms":1796129177669.0},{"state":"RUNNING","created_ms":1796129177676.0},{"state":"FINISHED","created_ms":1796129177847.0}]}}"#;
        let mut builder = Builder::default();
        assert!(parse_line(line, &mut builder));
        let session = builder.finish();
        let task = &session.tasks.memory_rows().unwrap()[0];
        assert_eq!(task.state, TaskState::Finished);
        assert_eq!(&*task.def.name, "f");
        assert_eq!(
            task.def.parent_task_id.map(|p| p.hex()).as_deref(),
            Some("ffffffffffffffffffffffffffffffffffffffff01000000"),
            "the driver task is the parent"
        );
        assert_eq!(task.ts(TaskState::Running), Some(1_796_129_177_676_000_000));
        assert_eq!(task.worker_pid, Some(16099));
    }

    #[test]
    fn a_later_event_wins_over_an_earlier_actor_snapshot() {
        let alive = br#"{"kind":"actors","ts_ms":1000,"row":{"actor_id":"0e227f97ad2ff22dc279ba5501000000","class_name":"A","state":"ALIVE","job_id":"01000000","num_restarts":"1"}}"#;
        let dead = br#"{"kind":"actors","ts_ms":2000,"row":{"actor_id":"0e227f97ad2ff22dc279ba5501000000","class_name":"A","state":"DEAD","job_id":"01000000","num_restarts":"1"}}"#;
        let mut builder = Builder::default();
        assert!(parse_line(dead, &mut builder));
        assert!(parse_line(alive, &mut builder));
        let session = builder.finish();
        let actor = &session.actors[0];
        assert_eq!(actor.current().unwrap().state, ActorState::Dead);
        assert_eq!(actor.current().unwrap().num_restarts, 1);
    }

    #[test]
    fn placement_groups_keep_their_newest_row() {
        let old = br#"{"kind":"placement_groups","ts_ms":1000,"row":{"placement_group_id":"141425f3aea9bcd191c2ca43646301000000","state":"CREATED"}}"#;
        let new = br#"{"kind":"placement_groups","ts_ms":2000,"row":{"placement_group_id":"141425f3aea9bcd191c2ca43646301000000","state":"REMOVED"}}"#;
        let mut builder = Builder::default();
        assert!(parse_line(new, &mut builder));
        assert!(parse_line(old, &mut builder));
        let session = builder.finish();
        let rows = session.snapshot_rows(SnapshotKind::PlacementGroups);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["state"], "REMOVED");
    }

    #[test]
    fn junk_is_refused_without_panicking() {
        let mut builder = Builder::default();
        assert!(!parse_line(b"{", &mut builder));
        assert!(!parse_line(
            br#"{"kind":"tasks","row":{"attempt_number":1}}"#,
            &mut builder
        ));
        assert!(parse_line(br#"{"kind":"future","row":{}}"#, &mut builder));
        assert_eq!(builder.stats.unknown_events, 1);
    }
}
