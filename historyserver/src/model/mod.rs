//! The typed state of one Ray session, built from events: tasks (one row per attempt),
//! actors, driver and submission jobs, nodes and cluster events.
//!
//! Parsers feed updates into a [`Builder`]; builders of different files are merged with
//! [`Builder::merge`]. Every rule is order-independent, so any event order and any split of
//! the events across files gives the same [`Session`]:
//! - per task attempt and state, the earliest timestamp is kept; the current state is the one
//!   with the latest timestamp (ties go to the later state in Ray's state order);
//! - fields that describe an execution (node, worker, error, log offsets) come from the update
//!   with the latest timestamp, ties broken by value;
//! - definition fields take the first non-empty value, two different values resolve to the
//!   smaller one;
//! - actors, jobs and nodes pick their latest snapshot by (timestamp, progress rank); an
//!   actor state seen again counts from when it was first seen;
//! - head snapshots (`snapshot/*.jsonl`) feed the same updates; their rows of kinds without
//!   events keep the newest per id.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ray_history_storage::layout::SnapshotKind;
use serde_json::value::RawValue;

use crate::ids::{ActorId, JobId, NodeId, PlacementGroupId, TaskId, WorkerId};
pub use table::TaskTable;

pub mod table;

/// Interned text shared by many rows (function names, resource maps, runtime envs).
pub type Text = Arc<str>;

/// Ray's `TaskStatus`, numbered as in `common.proto` (the keys of export events' `state_ts_ns`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum TaskState {
    Nil = 0,
    PendingArgsAvail = 1,
    PendingNodeAssignment = 2,
    PendingObjStoreMemAvail = 3,
    PendingArgsFetch = 4,
    SubmittedToWorker = 5,
    PendingActorTaskArgsFetch = 6,
    PendingActorTaskOrderingOrConcurrency = 7,
    Running = 8,
    RunningInRayGet = 9,
    RunningInRayWait = 10,
    Finished = 11,
    Failed = 12,
    GettingAndPinningArgs = 13,
}

/// Number of task states (size of per-attempt timestamp arrays).
pub const TASK_STATES: usize = 14;

const TASK_STATE_NAMES: [&str; TASK_STATES] = [
    "NIL",
    "PENDING_ARGS_AVAIL",
    "PENDING_NODE_ASSIGNMENT",
    "PENDING_OBJ_STORE_MEM_AVAIL",
    "PENDING_ARGS_FETCH",
    "SUBMITTED_TO_WORKER",
    "PENDING_ACTOR_TASK_ARGS_FETCH",
    "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY",
    "RUNNING",
    "RUNNING_IN_RAY_GET",
    "RUNNING_IN_RAY_WAIT",
    "FINISHED",
    "FAILED",
    "GETTING_AND_PINNING_ARGS",
];

impl TaskState {
    /// All states by number.
    pub const ALL: [TaskState; TASK_STATES] = [
        TaskState::Nil,
        TaskState::PendingArgsAvail,
        TaskState::PendingNodeAssignment,
        TaskState::PendingObjStoreMemAvail,
        TaskState::PendingArgsFetch,
        TaskState::SubmittedToWorker,
        TaskState::PendingActorTaskArgsFetch,
        TaskState::PendingActorTaskOrderingOrConcurrency,
        TaskState::Running,
        TaskState::RunningInRayGet,
        TaskState::RunningInRayWait,
        TaskState::Finished,
        TaskState::Failed,
        TaskState::GettingAndPinningArgs,
    ];

    /// The state with this `TaskStatus` number.
    pub fn from_number(n: u64) -> Option<Self> {
        Self::ALL.get(usize::try_from(n).ok()?).copied()
    }

    /// The state with this name (`FINISHED`).
    pub fn from_name(name: &str) -> Option<Self> {
        TASK_STATE_NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
    }

    /// Ray's name of the state.
    pub fn name(self) -> &'static str {
        TASK_STATE_NAMES[self as usize]
    }

    /// Order used to break timestamp ties: terminal states win, then later lifecycle steps.
    fn rank(self) -> u8 {
        match self {
            TaskState::Finished | TaskState::Failed => 100 + self as u8,
            TaskState::GettingAndPinningArgs => 4,
            other => other as u8,
        }
    }
}

/// Ray's `TaskType`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum TaskType {
    #[default]
    Normal,
    ActorCreation,
    Actor,
    Driver,
}

impl TaskType {
    /// Parses Ray's name (`NORMAL_TASK`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "NORMAL_TASK" => TaskType::Normal,
            "ACTOR_CREATION_TASK" => TaskType::ActorCreation,
            "ACTOR_TASK" => TaskType::Actor,
            "DRIVER_TASK" => TaskType::Driver,
            _ => return None,
        })
    }

    /// Ray's name.
    pub fn name(self) -> &'static str {
        match self {
            TaskType::Normal => "NORMAL_TASK",
            TaskType::ActorCreation => "ACTOR_CREATION_TASK",
            TaskType::Actor => "ACTOR_TASK",
            TaskType::Driver => "DRIVER_TASK",
        }
    }
}

/// A task failure.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ErrorInfo {
    /// e.g. `TASK_EXECUTION_EXCEPTION`.
    pub error_type: Text,
    /// The formatted exception.
    pub message: Box<str>,
}

/// Where a task's output went in its worker's log files.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TaskLogInfo {
    pub stdout_file: Text,
    pub stderr_file: Text,
    pub stdout_start: i64,
    pub stdout_end: i64,
    pub stderr_start: i64,
    pub stderr_end: i64,
}

/// One profiling span of a task (timeline data).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ProfileEvent {
    /// Start, nanoseconds since the epoch.
    pub start_ns: u64,
    /// End, nanoseconds since the epoch.
    pub end_ns: u64,
    /// e.g. `task:execute`.
    pub name: Text,
    /// JSON text Ray attached.
    pub extra_data: Text,
}

/// Profiling data of a task attempt.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub component_type: Text,
    pub component_id: Text,
    pub node_ip_address: Text,
    pub events: Vec<ProfileEvent>,
    /// Taken whole from a head snapshot (millisecond times): replaced by any event data.
    pub from_snapshot: bool,
}

/// Keeps `new` (carried by an update stamped `new_stamp`) over `slot` when its update is
/// later; equal stamps are broken by value, so the result never depends on the order.
fn take_stamped<T: PartialOrd>(
    slot: &mut Option<T>,
    stamp: &mut u64,
    new: Option<T>,
    new_stamp: u64,
) {
    let Some(new) = new else { return };
    let keep_old = match slot.as_ref() {
        Some(old) => (*stamp, old) >= (new_stamp, &new),
        None => false,
    };
    if !keep_old {
        *slot = Some(new);
        *stamp = new_stamp;
    }
}

fn take_text(slot: &mut Text, new: Text) {
    if new.is_empty() {
        return;
    }
    if slot.is_empty() || new < *slot {
        *slot = new;
    }
}

fn take_opt<T: Ord + Copy>(slot: &mut Option<T>, new: Option<T>) {
    if let Some(new) = new {
        match slot {
            Some(old) if *old <= new => {}
            _ => *slot = Some(new),
        }
    }
}

/// Definition fields of a task attempt.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskDefinition {
    pub name: Text,
    pub func_or_class_name: Text,
    pub task_type: Option<TaskType>,
    pub language: Text,
    pub job_id: Option<JobId>,
    pub actor_id: Option<ActorId>,
    pub parent_task_id: Option<TaskId>,
    pub placement_group_id: Option<PlacementGroupId>,
    /// JSON object text, e.g. `{"CPU":1.0}`.
    pub required_resources: Text,
    pub serialized_runtime_env: Text,
    /// JSON text of `runtime_env_config`, when the event carried one.
    pub runtime_env_config: Text,
}

impl TaskDefinition {
    fn merge(&mut self, other: TaskDefinition) {
        take_text(&mut self.name, other.name);
        take_text(&mut self.func_or_class_name, other.func_or_class_name);
        take_opt(&mut self.task_type, other.task_type);
        take_text(&mut self.language, other.language);
        take_opt(&mut self.job_id, other.job_id);
        take_opt(&mut self.actor_id, other.actor_id);
        take_opt(&mut self.parent_task_id, other.parent_task_id);
        take_opt(&mut self.placement_group_id, other.placement_group_id);
        take_text(&mut self.required_resources, other.required_resources);
        take_text(
            &mut self.serialized_runtime_env,
            other.serialized_runtime_env,
        );
        take_text(&mut self.runtime_env_config, other.runtime_env_config);
    }
}

/// One update to a task attempt, as any parser produces it.
#[derive(Debug, Default)]
pub struct TaskUpdate {
    pub task_id: Option<TaskId>,
    pub attempt: u32,
    pub definition: Option<TaskDefinition>,
    /// `(state, unix nanos)` pairs.
    pub states: Vec<(TaskState, u64)>,
    pub node_id: Option<NodeId>,
    pub worker_id: Option<WorkerId>,
    pub worker_pid: Option<u32>,
    pub error: Option<ErrorInfo>,
    pub log_info: Option<TaskLogInfo>,
    pub profile: Option<Profile>,
    pub job_id: Option<JobId>,
    /// Timestamp of the event itself, used to stamp execution fields when no state came along.
    pub event_ns: u64,
}

/// Timestamps of the updates that set a task's execution fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stamps {
    node: u64,
    worker: u64,
    pid: u64,
    error: u64,
    log: u64,
}

/// One attempt of one task. Large, rarely present parts are boxed so that rows stay small
/// (a million rows are one `Vec`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    pub task_id: TaskId,
    pub attempt: u32,
    pub def: Box<TaskDefinition>,
    /// Earliest timestamp per state (unix nanos, 0 = never).
    pub state_ts: [u64; TASK_STATES],
    /// The current state (set when the session is finished).
    pub state: TaskState,
    pub node_id: Option<NodeId>,
    pub worker_id: Option<WorkerId>,
    pub worker_pid: Option<u32>,
    pub error: Option<Box<ErrorInfo>>,
    pub log_info: Option<Box<TaskLogInfo>>,
    pub profile: Option<Box<Profile>>,
    /// Job id carried by updates without a definition.
    job_hint: Option<JobId>,
    stamps: Stamps,
}

impl Task {
    /// The job: from the definition, else from the task id.
    pub fn job_id(&self) -> JobId {
        self.def.job_id.unwrap_or_else(|| self.task_id.job_id())
    }

    /// Time of a state, in unix nanos.
    pub fn ts(&self, state: TaskState) -> Option<u64> {
        Some(self.state_ts[state as usize]).filter(|t| *t > 0)
    }

    /// When the attempt was created (its first state).
    pub fn creation_ns(&self) -> Option<u64> {
        self.state_ts.iter().copied().filter(|t| *t > 0).min()
    }

    /// When it finished or failed.
    pub fn end_ns(&self) -> Option<u64> {
        self.ts(TaskState::Finished).or(self.ts(TaskState::Failed))
    }

    fn from_update(task_id: TaskId, update: TaskUpdate) -> Self {
        let stamp = update
            .states
            .iter()
            .map(|(_, t)| *t)
            .max()
            .unwrap_or(update.event_ns);
        let (has_error, has_log) = (update.error.is_some(), update.log_info.is_some());
        let mut state_ts = [0u64; TASK_STATES];
        for (state, ts) in update.states {
            let slot = &mut state_ts[state as usize];
            if ts > 0 && (*slot == 0 || ts < *slot) {
                *slot = ts;
            }
        }
        Task {
            task_id,
            attempt: update.attempt,
            def: Box::new(update.definition.unwrap_or_default()),
            state_ts,
            state: TaskState::Nil,
            node_id: update.node_id,
            worker_id: update.worker_id,
            worker_pid: update.worker_pid,
            error: update.error.map(Box::new),
            log_info: update.log_info.map(Box::new),
            profile: update.profile.map(Box::new),
            job_hint: update.job_id,
            stamps: Stamps {
                node: if update.node_id.is_some() { stamp } else { 0 },
                worker: if update.worker_id.is_some() { stamp } else { 0 },
                pid: if update.worker_pid.is_some() {
                    stamp
                } else {
                    0
                },
                error: if has_error { stamp } else { 0 },
                log: if has_log { stamp } else { 0 },
            },
        }
    }

    fn merge(&mut self, other: Task) {
        self.def.merge(*other.def);
        for (mine, theirs) in self.state_ts.iter_mut().zip(other.state_ts) {
            if theirs > 0 && (*mine == 0 || theirs < *mine) {
                *mine = theirs;
            }
        }
        let s = other.stamps;
        take_stamped(
            &mut self.node_id,
            &mut self.stamps.node,
            other.node_id,
            s.node,
        );
        take_stamped(
            &mut self.worker_id,
            &mut self.stamps.worker,
            other.worker_id,
            s.worker,
        );
        take_stamped(
            &mut self.worker_pid,
            &mut self.stamps.pid,
            other.worker_pid,
            s.pid,
        );
        take_stamped(
            &mut self.error,
            &mut self.stamps.error,
            other.error,
            s.error,
        );
        take_stamped(
            &mut self.log_info,
            &mut self.stamps.log,
            other.log_info,
            s.log,
        );
        take_opt(&mut self.job_hint, other.job_hint);
        merge_profile(&mut self.profile, other.profile);
    }
}

fn merge_profile(slot: &mut Option<Box<Profile>>, new: Option<Box<Profile>>) {
    let Some(new) = new else { return };
    match slot {
        None => *slot = Some(new),
        // A snapshot repeats every profile event of the task, with coarser times.
        Some(old)
            if old.from_snapshot && (!new.from_snapshot || new.events.len() > old.events.len()) =>
        {
            *slot = Some(new)
        }
        Some(old) if new.from_snapshot => {}
        Some(old) => {
            take_text(&mut old.component_type, new.component_type);
            take_text(&mut old.component_id, new.component_id);
            take_text(&mut old.node_ip_address, new.node_ip_address);
            old.events.extend(new.events);
        }
    }
}

/// Ray's actor states.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ActorState {
    DependenciesUnready,
    PendingCreation,
    Alive,
    Restarting,
    Dead,
}

impl ActorState {
    /// Parses Ray's name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "DEPENDENCIES_UNREADY" => ActorState::DependenciesUnready,
            "PENDING_CREATION" => ActorState::PendingCreation,
            "ALIVE" => ActorState::Alive,
            "RESTARTING" => ActorState::Restarting,
            "DEAD" => ActorState::Dead,
            _ => return None,
        })
    }

    /// Ray's name.
    pub fn name(self) -> &'static str {
        match self {
            ActorState::DependenciesUnready => "DEPENDENCIES_UNREADY",
            ActorState::PendingCreation => "PENDING_CREATION",
            ActorState::Alive => "ALIVE",
            ActorState::Restarting => "RESTARTING",
            ActorState::Dead => "DEAD",
        }
    }
}

/// Definition fields of an actor.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActorDefinition {
    pub job_id: Option<JobId>,
    pub name: Text,
    pub class_name: Text,
    pub ray_namespace: Text,
    pub is_detached: bool,
    pub required_resources: Text,
    pub label_selector: Text,
    pub serialized_runtime_env: Text,
    pub placement_group_id: Option<PlacementGroupId>,
}

impl ActorDefinition {
    fn merge(&mut self, other: ActorDefinition) {
        take_opt(&mut self.job_id, other.job_id);
        take_text(&mut self.name, other.name);
        take_text(&mut self.class_name, other.class_name);
        take_text(&mut self.ray_namespace, other.ray_namespace);
        self.is_detached |= other.is_detached;
        take_text(&mut self.required_resources, other.required_resources);
        take_text(&mut self.label_selector, other.label_selector);
        take_text(
            &mut self.serialized_runtime_env,
            other.serialized_runtime_env,
        );
        take_opt(&mut self.placement_group_id, other.placement_group_id);
    }
}

/// One actor state change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ActorTransition {
    pub ts_ns: u64,
    pub num_restarts: u32,
    pub state: ActorState,
    pub node_id: Option<NodeId>,
    pub worker_id: Option<WorkerId>,
    pub pid: u32,
    pub port: u32,
    pub repr_name: Text,
    /// Death cause message, for `DEAD`.
    pub exit_detail: Text,
}

/// An actor update from any parser.
#[derive(Debug)]
pub struct ActorUpdate {
    pub actor_id: ActorId,
    pub definition: Option<ActorDefinition>,
    pub transitions: Vec<ActorTransition>,
}

/// A merged actor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Actor {
    pub actor_id: ActorId,
    pub def: ActorDefinition,
    /// All transitions, oldest first.
    pub transitions: Vec<ActorTransition>,
}

impl Actor {
    /// The latest transition.
    pub fn current(&self) -> Option<&ActorTransition> {
        self.transitions.last()
    }

    /// The latest transition that placed the actor (node, worker, pid).
    pub fn placement(&self) -> Option<&ActorTransition> {
        self.transitions
            .iter()
            .rev()
            .find(|t| t.node_id.is_some() || t.pid > 0)
    }

    /// The job: from the definition, else from the actor id.
    pub fn job_id(&self) -> JobId {
        self.def.job_id.unwrap_or_else(|| self.actor_id.job_id())
    }

    /// Restarts: what Ray counted, or the RESTARTING transitions when an event stream carried
    /// no count.
    pub fn num_restarts(&self) -> u32 {
        let counted = self
            .transitions
            .iter()
            .map(|t| t.num_restarts)
            .max()
            .unwrap_or(0);
        let seen = self
            .transitions
            .iter()
            .filter(|t| t.state == ActorState::Restarting)
            .count() as u32;
        counted.max(seen)
    }
}

/// A driver job (one `ray.init()`), from driver-job events.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DriverJob {
    pub job_id: Option<JobId>,
    pub driver_pid: Text,
    pub driver_ip: Text,
    pub driver_node_id: Option<NodeId>,
    pub entrypoint: Text,
    pub start_ms: u64,
    pub end_ms: u64,
    pub is_dead: bool,
    /// `job_submission_id` from the job config metadata, when submitted through the job API.
    pub submission_id: Text,
    /// JSON object text of the job config metadata.
    pub metadata: Text,
    pub serialized_runtime_env: Text,
}

impl DriverJob {
    fn merge(&mut self, other: DriverJob) {
        take_opt(&mut self.job_id, other.job_id);
        take_text(&mut self.driver_pid, other.driver_pid);
        take_text(&mut self.driver_ip, other.driver_ip);
        take_opt(&mut self.driver_node_id, other.driver_node_id);
        take_text(&mut self.entrypoint, other.entrypoint);
        if other.start_ms > 0 && (self.start_ms == 0 || other.start_ms < self.start_ms) {
            self.start_ms = other.start_ms;
        }
        self.end_ms = self.end_ms.max(other.end_ms);
        self.is_dead |= other.is_dead;
        take_text(&mut self.submission_id, other.submission_id);
        if self.metadata.is_empty() || self.metadata.as_ref() == "{}" {
            self.metadata = other.metadata;
        }
        take_text(
            &mut self.serialized_runtime_env,
            other.serialized_runtime_env,
        );
    }
}

/// Ray's `JobStatus` of submission jobs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum JobStatus {
    Pending,
    Running,
    Stopped,
    Succeeded,
    Failed,
}

impl JobStatus {
    /// Parses Ray's name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "PENDING" => JobStatus::Pending,
            "RUNNING" => JobStatus::Running,
            "STOPPED" => JobStatus::Stopped,
            "SUCCEEDED" => JobStatus::Succeeded,
            "FAILED" => JobStatus::Failed,
            _ => return None,
        })
    }

    /// Ray's name.
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Running => "RUNNING",
            JobStatus::Stopped => "STOPPED",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
        }
    }
}

/// One snapshot of a submission job (`ray job submit`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubmissionJob {
    pub submission_id: Text,
    /// Snapshot time (unix nanos) used to pick the latest snapshot.
    pub ts_ns: u64,
    pub status: Option<JobStatus>,
    pub entrypoint: Text,
    pub message: Text,
    pub error_type: Text,
    pub start_ms: u64,
    pub end_ms: u64,
    pub metadata: Text,
    pub runtime_env_json: Text,
    pub driver_agent_http_address: Text,
    pub driver_node_id: Text,
    pub driver_exit_code: Option<i64>,
}

impl SubmissionJob {
    fn key(&self) -> (u64, Option<JobStatus>, &str) {
        (self.ts_ns, self.status, &self.message)
    }

    fn merge(&mut self, other: SubmissionJob) {
        let (mut newer, older) = if other.key() > self.key() {
            (other, std::mem::take(self))
        } else {
            (std::mem::take(self), other)
        };
        // Later snapshots can omit fields an earlier one had.
        if newer.start_ms == 0 {
            newer.start_ms = older.start_ms;
        }
        take_text(&mut newer.entrypoint, older.entrypoint);
        take_text(&mut newer.runtime_env_json, older.runtime_env_json);
        take_text(
            &mut newer.driver_agent_http_address,
            older.driver_agent_http_address,
        );
        take_text(&mut newer.driver_node_id, older.driver_node_id);
        if newer.metadata.is_empty() {
            newer.metadata = older.metadata;
        }
        *self = newer;
    }
}

/// Node states.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum NodeState {
    Alive,
    Dead,
}

/// A node, merged from node events.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    pub node_id: NodeId,
    pub ip: Text,
    pub node_name: Text,
    pub hostname: Text,
    pub is_head: bool,
    /// JSON object text of total resources.
    pub resources_total: Text,
    /// JSON object text of labels.
    pub labels: Text,
    pub start_ms: u64,
    pub end_ms: u64,
    pub state: NodeState,
    pub death_reason: Text,
    pub death_message: Text,
}

impl Node {
    /// An empty node record.
    pub fn new(node_id: NodeId) -> Self {
        Node {
            node_id,
            ip: Text::from(""),
            node_name: Text::from(""),
            hostname: Text::from(""),
            is_head: false,
            resources_total: Text::from(""),
            labels: Text::from(""),
            start_ms: 0,
            end_ms: 0,
            state: NodeState::Alive,
            death_reason: Text::from(""),
            death_message: Text::from(""),
        }
    }

    fn merge(&mut self, other: Node) {
        take_text(&mut self.ip, other.ip);
        take_text(&mut self.node_name, other.node_name);
        take_text(&mut self.hostname, other.hostname);
        self.is_head |= other.is_head;
        take_text(&mut self.resources_total, other.resources_total);
        take_text(&mut self.labels, other.labels);
        if other.start_ms > 0 && (self.start_ms == 0 || other.start_ms < self.start_ms) {
            self.start_ms = other.start_ms;
        }
        self.end_ms = self.end_ms.max(other.end_ms);
        self.state = self.state.max(other.state);
        take_text(&mut self.death_reason, other.death_reason);
        take_text(&mut self.death_message, other.death_message);
    }
}

/// A cluster event from `logs/events/event_*.log`, as Ray wrote it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterEvent {
    pub event_id: Text,
    /// Seconds since the epoch (as Ray writes it).
    pub timestamp: i64,
    /// Job id from `custom_fields.job_id`, for `events?job_id=`.
    pub job_id: Text,
    /// The whole event, keys as Ray wrote them.
    #[serde(with = "json_text")]
    pub json: serde_json::Value,
}

/// Counts of what a load skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadStats {
    pub files: u64,
    pub bytes: u64,
    pub lines: u64,
    pub corrupt_lines: u64,
    pub unknown_events: u64,
}

impl LoadStats {
    fn merge(&mut self, other: LoadStats) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.lines += other.lines;
        self.corrupt_lines += other.corrupt_lines;
        self.unknown_events += other.unknown_events;
    }
}

/// Accumulates updates from one or more files; merge builders, then [`Builder::finish`].
#[derive(Default)]
pub struct Builder {
    tasks: Vec<Task>,
    task_index: HashMap<(TaskId, u32), u32>,
    actors: HashMap<ActorId, (ActorDefinition, Vec<ActorTransition>)>,
    driver_jobs: HashMap<JobId, DriverJob>,
    submission_jobs: HashMap<Text, SubmissionJob>,
    nodes: HashMap<NodeId, Node>,
    events: Vec<ClusterEvent>,
    /// Snapshot rows without events (placement groups, workers, Serve, Data), newest per id.
    snapshot_rows: HashMap<(SnapshotKind, String), (u64, Box<RawValue>)>,
    interned: std::collections::HashSet<Text>,
    /// What was read and skipped.
    pub stats: LoadStats,
}

impl Builder {
    /// Shares one allocation for equal strings within this builder.
    pub fn intern(&mut self, text: &str) -> Text {
        if text.is_empty() {
            return empty_text();
        }
        if let Some(found) = self.interned.get(text) {
            return found.clone();
        }
        let new: Text = Text::from(text);
        self.interned.insert(new.clone());
        new
    }

    /// Applies one task update.
    pub fn task(&mut self, update: TaskUpdate) {
        let Some(task_id) = update.task_id else {
            self.stats.unknown_events += 1;
            return;
        };
        self.add_task(Task::from_update(task_id, update));
    }

    fn add_task(&mut self, task: Task) {
        match self.task_index.entry((task.task_id, task.attempt)) {
            Entry::Occupied(e) => self.tasks[*e.get() as usize].merge(task),
            Entry::Vacant(e) => {
                e.insert(self.tasks.len() as u32);
                self.tasks.push(task);
            }
        }
    }

    /// Applies one actor update.
    pub fn actor(&mut self, update: ActorUpdate) {
        let entry = self.actors.entry(update.actor_id).or_default();
        if let Some(def) = update.definition {
            entry.0.merge(def);
        }
        entry.1.extend(update.transitions);
    }

    /// Applies one driver job snapshot.
    pub fn driver_job(&mut self, job: DriverJob) {
        let Some(id) = job.job_id else {
            self.stats.unknown_events += 1;
            return;
        };
        match self.driver_jobs.entry(id) {
            Entry::Occupied(mut e) => e.get_mut().merge(job),
            Entry::Vacant(e) => {
                e.insert(job);
            }
        }
    }

    /// Applies one submission job snapshot.
    pub fn submission_job(&mut self, job: SubmissionJob) {
        if job.submission_id.is_empty() {
            self.stats.unknown_events += 1;
            return;
        }
        match self.submission_jobs.entry(job.submission_id.clone()) {
            Entry::Occupied(mut e) => e.get_mut().merge(job),
            Entry::Vacant(e) => {
                e.insert(job);
            }
        }
    }

    /// Applies one node snapshot.
    pub fn node(&mut self, node: Node) {
        match self.nodes.entry(node.node_id) {
            Entry::Occupied(mut e) => e.get_mut().merge(node),
            Entry::Vacant(e) => {
                e.insert(node);
            }
        }
    }

    /// Adds a cluster event.
    pub fn cluster_event(&mut self, event: ClusterEvent) {
        self.events.push(event);
    }

    /// Keeps a snapshot row of a kind without events, if it is the newest of its id.
    pub fn snapshot_row(&mut self, kind: SnapshotKind, id: String, ts_ns: u64, row: &str) {
        let Ok(row) = RawValue::from_string(row.to_string()) else {
            return;
        };
        match self.snapshot_rows.entry((kind, id)) {
            Entry::Occupied(mut e) => {
                let (old_ts, old) = e.get();
                if (ts_ns, row.get()) > (*old_ts, old.get()) {
                    e.insert((ts_ns, row));
                }
            }
            Entry::Vacant(e) => {
                e.insert((ts_ns, row));
            }
        }
    }

    /// Merges another builder into this one (commutative and associative).
    pub fn merge(&mut self, other: Builder) {
        if other.tasks.len() > self.tasks.len() {
            let mut other = other;
            std::mem::swap(self, &mut other);
            return self.merge(other);
        }
        self.task_index.reserve(other.tasks.len());
        for task in other.tasks {
            self.add_task(task);
        }
        for (id, (def, transitions)) in other.actors {
            self.actor(ActorUpdate {
                actor_id: id,
                definition: Some(def),
                transitions,
            });
        }
        for job in other.driver_jobs.into_values() {
            self.driver_job(job);
        }
        for job in other.submission_jobs.into_values() {
            self.submission_job(job);
        }
        for node in other.nodes.into_values() {
            self.node(node);
        }
        self.events.extend(other.events);
        for ((kind, id), (ts, row)) in other.snapshot_rows {
            self.snapshot_row(kind, id, ts, row.get());
        }
        self.stats.merge(other.stats);
    }

    /// Freezes the state and builds the indexes.
    pub fn finish(self) -> Session {
        self.finish_at(None)
    }

    /// Like [`Builder::finish`], for a session that ended at `ended_ns` (finalised by the head's
    /// collector): what was still alive is shown as Ray's GCS would have it once the cluster is
    /// gone — nodes and actors `DEAD`, drivers ended, unfinished tasks `FAILED` as on a worker's
    /// death, submitted jobs `FAILED` — each marked with [`INFERRED_AT_END`].
    pub fn finish_at(mut self, ended_ns: Option<u64>) -> Session {
        // Attempts Ray never lists go first, so that none of them is inferred to have failed.
        self.tasks = drop_unlisted_attempts(std::mem::take(&mut self.tasks));
        if let Some(ended_ns) = ended_ns {
            self.infer_end(ended_ns);
        }
        let mut actors: Vec<Actor> = self
            .actors
            .into_iter()
            .map(|(actor_id, (def, mut transitions))| {
                transitions.sort();
                dedup_repeated_states(&mut transitions);
                Actor {
                    actor_id,
                    def,
                    transitions,
                }
            })
            .collect();
        actors.sort_unstable_by_key(|a| (a.transitions.first().map(|t| t.ts_ns), a.actor_id));
        let actor_names: HashMap<ActorId, Text> = actors
            .iter()
            .filter(|a| !a.def.name.is_empty())
            .map(|a| (a.actor_id, a.def.name.clone()))
            .collect();
        drop(self.task_index);
        let mut tasks = self.tasks;
        for task in &mut tasks {
            finish_task(task, &actor_names);
        }
        tasks.shrink_to_fit();
        tasks.sort_unstable_by(|a, b| {
            (a.creation_ns(), a.task_id, a.attempt).cmp(&(b.creation_ns(), b.task_id, b.attempt))
        });
        let mut driver_jobs: Vec<DriverJob> = self.driver_jobs.into_values().collect();
        driver_jobs.sort_unstable_by_key(|j| j.job_id);
        let mut submission_jobs: Vec<SubmissionJob> = self.submission_jobs.into_values().collect();
        submission_jobs.sort_unstable_by(|a, b| {
            (a.start_ms, &a.submission_id).cmp(&(b.start_ms, &b.submission_id))
        });
        let mut nodes: Vec<Node> = self.nodes.into_values().collect();
        nodes.sort_unstable_by_key(|n| (!n.is_head, n.start_ms, n.node_id));
        let mut events = self.events;
        events.sort_unstable_by(|a, b| (a.timestamp, &a.event_id).cmp(&(b.timestamp, &b.event_id)));
        events.dedup_by(|a, b| a.event_id == b.event_id && !a.event_id.is_empty());
        let mut snapshots: BTreeMap<SnapshotKind, Vec<(String, serde_json::Value)>> =
            BTreeMap::new();
        for ((kind, id), (_, row)) in self.snapshot_rows {
            if let Ok(value) = serde_json::from_str(row.get()) {
                snapshots.entry(kind).or_default().push((id, value));
            }
        }
        let snapshots = snapshots
            .into_iter()
            .map(|(kind, mut rows)| {
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                (kind, rows.into_iter().map(|(_, v)| v).collect())
            })
            .collect();
        Session {
            tasks: TaskTable::in_memory(tasks),
            actors_by_id: actors_by_id(&actors),
            actors,
            driver_jobs,
            submission_jobs,
            nodes,
            events,
            stats: self.stats,
            snapshots,
        }
    }
}

/// The text that marks a state inferred at the session's end rather than recorded.
pub const INFERRED_AT_END: &str =
    "inferred by Ray History: the session ended and no later state was recorded";

impl Builder {
    fn infer_end(&mut self, ended_ns: u64) {
        let ended_ms = ended_ns / 1_000_000;
        let inferred = self.intern(INFERRED_AT_END);
        for node in self.nodes.values_mut() {
            if node.state == NodeState::Alive {
                node.state = NodeState::Dead;
                node.end_ms = node.end_ms.max(ended_ms);
                node.death_message = inferred.clone();
            }
        }
        for (_, transitions) in self.actors.values_mut() {
            let last = transitions.iter().max().cloned();
            if let Some(last) = last.filter(|t| t.state != ActorState::Dead) {
                transitions.push(ActorTransition {
                    ts_ns: ended_ns.max(last.ts_ns),
                    state: ActorState::Dead,
                    exit_detail: inferred.clone(),
                    ..last
                });
            }
        }
        for job in self.driver_jobs.values_mut() {
            if !job.is_dead {
                job.is_dead = true;
                job.end_ms = job.end_ms.max(ended_ms);
            }
        }
        for job in self.submission_jobs.values_mut() {
            if matches!(
                job.status,
                Some(JobStatus::Pending | JobStatus::Running) | None
            ) {
                job.status = Some(JobStatus::Failed);
                job.message = inferred.clone();
                job.ts_ns = job.ts_ns.max(ended_ns);
                if job.end_ms == 0 {
                    job.end_ms = ended_ms;
                }
            }
        }
        let worker_died = self.intern("WORKER_DIED");
        for task in &mut self.tasks {
            let ts = task.state_ts;
            let ended = ts[TaskState::Finished as usize] > 0 || ts[TaskState::Failed as usize] > 0;
            if !ended {
                let last = ts.iter().copied().max().unwrap_or(0);
                task.state_ts[TaskState::Failed as usize] = ended_ns.max(last);
                task.error = Some(Box::new(ErrorInfo {
                    error_type: worker_died.clone(),
                    message: INFERRED_AT_END.into(),
                }));
            }
        }
    }
}

/// A state seen again (a snapshot repeating what an event said, or two event streams) is one
/// transition at the time it was first seen; fields only the later copies carry are kept.
fn dedup_repeated_states(transitions: &mut Vec<ActorTransition>) {
    transitions.dedup_by(|later, first| {
        if later.state != first.state || later.num_restarts != first.num_restarts {
            return false;
        }
        if first.node_id.is_none() {
            first.node_id = later.node_id;
        }
        if first.worker_id.is_none() {
            first.worker_id = later.worker_id;
        }
        if first.pid == 0 {
            first.pid = later.pid;
        }
        if first.port == 0 {
            first.port = later.port;
        }
        take_text(&mut first.repr_name, later.repr_name.clone());
        take_text(&mut first.exit_detail, later.exit_detail.clone());
        true
    });
}

fn empty_text() -> Text {
    static EMPTY: std::sync::OnceLock<Text> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Text::from("")).clone()
}

/// Drops attempts that Ray itself never lists: no definition and nothing but a running state
/// (an actor's restarted creation task), when another attempt of the task has a definition.
/// The live GCS has no row for them, so `ray list tasks` and `summarize` do not count them.
fn drop_unlisted_attempts(tasks: Vec<Task>) -> Vec<Task> {
    let defined = |t: &Task| t.def.task_type.is_some() || !t.def.func_or_class_name.is_empty();
    let running_only = |t: &Task| {
        TaskState::ALL.iter().all(|s| {
            t.state_ts[*s as usize] == 0
                || matches!(
                    s,
                    TaskState::Running | TaskState::RunningInRayGet | TaskState::RunningInRayWait
                )
        })
    };
    let with_definition: std::collections::HashSet<TaskId> = tasks
        .iter()
        .filter(|t| defined(t))
        .map(|t| t.task_id)
        .collect();
    tasks
        .into_iter()
        .filter(|t| defined(t) || !running_only(t) || !with_definition.contains(&t.task_id))
        .collect()
}

fn finish_task(task: &mut Task, actor_names: &HashMap<ActorId, Text>) {
    let ts = task.state_ts;
    task.state = TaskState::ALL
        .iter()
        .copied()
        .filter(|s| ts[*s as usize] > 0)
        .max_by_key(|s| (ts[*s as usize], s.rank()))
        .unwrap_or(TaskState::Nil);
    let def = &mut task.def;
    if def.job_id.is_none() {
        def.job_id = task.job_hint;
    }
    // Actor (creation) task ids end with the actor id; HTTP events omit it for creations.
    if def.actor_id.is_none()
        && matches!(
            def.task_type,
            Some(TaskType::Actor | TaskType::ActorCreation)
        )
    {
        let mut actor = [0u8; 16];
        actor.copy_from_slice(&task.task_id.0[8..]);
        def.actor_id = Some(crate::ids::Id(actor));
    }
    if def.name.is_empty() {
        def.name = def.func_or_class_name.clone();
        // Export events carry no task name; Ray names a named actor's creation task
        // `<actor name>:<class>.__init__`.
        if def.task_type == Some(TaskType::ActorCreation)
            && let Some(actor_name) = def.actor_id.and_then(|a| actor_names.get(&a))
        {
            def.name = Text::from(format!("{actor_name}:{}", def.func_or_class_name));
        }
    }
    if let Some(profile) = task.profile.as_mut() {
        profile.events.sort();
        profile.events.dedup();
    }
}

/// The frozen state of a session.
#[derive(Debug)]
pub struct Session {
    /// Every attempt of every task.
    pub tasks: TaskTable,
    pub actors: Vec<Actor>,
    pub driver_jobs: Vec<DriverJob>,
    pub submission_jobs: Vec<SubmissionJob>,
    pub nodes: Vec<Node>,
    pub events: Vec<ClusterEvent>,
    pub stats: LoadStats,
    /// Actor rows by actor id.
    pub actors_by_id: HashMap<ActorId, u32>,
    /// Rows of the head's snapshots that no event stream has, by kind, sorted by id.
    pub snapshots: BTreeMap<SnapshotKind, Vec<serde_json::Value>>,
}

/// Everything of a [`Session`] but its tasks (what the session index stores as one section).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionRest {
    pub actors: Vec<Actor>,
    pub driver_jobs: Vec<DriverJob>,
    pub submission_jobs: Vec<SubmissionJob>,
    pub nodes: Vec<Node>,
    pub events: Vec<ClusterEvent>,
    pub stats: LoadStats,
    /// Snapshot rows by kind name, as JSON text.
    pub snapshots: Vec<(String, Vec<String>)>,
}

fn actors_by_id(actors: &[Actor]) -> HashMap<ActorId, u32> {
    actors
        .iter()
        .enumerate()
        .map(|(i, a)| (a.actor_id, i as u32))
        .collect()
}

impl Session {
    /// A session of `tasks` and the rest of its state.
    pub fn new(tasks: TaskTable, rest: SessionRest) -> Self {
        let actors_by_id = actors_by_id(&rest.actors);
        let snapshots = rest
            .snapshots
            .into_iter()
            .filter_map(|(kind, rows)| {
                let kind = SnapshotKind::from_name(&kind)?;
                let rows = rows
                    .iter()
                    .filter_map(|r| serde_json::from_str(r).ok())
                    .collect();
                Some((kind, rows))
            })
            .collect();
        Session {
            tasks,
            actors: rest.actors,
            driver_jobs: rest.driver_jobs,
            submission_jobs: rest.submission_jobs,
            nodes: rest.nodes,
            events: rest.events,
            stats: rest.stats,
            actors_by_id,
            snapshots,
        }
    }

    /// Everything but the tasks, for the session index.
    pub fn rest(&self) -> SessionRest {
        SessionRest {
            actors: self.actors.clone(),
            driver_jobs: self.driver_jobs.clone(),
            submission_jobs: self.submission_jobs.clone(),
            nodes: self.nodes.clone(),
            events: self.events.clone(),
            stats: self.stats,
            snapshots: self
                .snapshots
                .iter()
                .map(|(kind, rows)| {
                    (
                        kind.name().to_string(),
                        rows.iter().map(|r| r.to_string()).collect(),
                    )
                })
                .collect(),
        }
    }

    /// The actor with this id.
    pub fn actor(&self, id: &ActorId) -> Option<&Actor> {
        self.actors_by_id.get(id).map(|i| &self.actors[*i as usize])
    }

    /// The snapshot rows of a kind without events (empty when no snapshot was stored).
    pub fn snapshot_rows(&self, kind: SnapshotKind) -> &[serde_json::Value] {
        self.snapshots.get(&kind).map_or(&[], Vec::as_slice)
    }

    /// The node with this id.
    pub fn node(&self, id: &NodeId) -> Option<&Node> {
        self.nodes.iter().find(|n| n.node_id == *id)
    }

    /// Rough heap size, for the cache's byte budget.
    pub fn approx_bytes(&self) -> usize {
        self.tasks.approx_bytes()
            + self.actors.len() * 512
            + self.driver_jobs.len() * 512
            + self.submission_jobs.len() * 1024
            + self.nodes.len() * 512
            + self.events.len() * 1024
    }
}

/// JSON values as their text in the session index (binary formats cannot hold `Value`).
mod json_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &serde_json::Value, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<serde_json::Value, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(attempt: u32, definition: bool, states: &[(TaskState, u64)]) -> TaskUpdate {
        TaskUpdate {
            task_id: TaskId::from_hex("ffffffffffffffffdbc8de4aa87f3fda0124ec7201000000"),
            attempt,
            definition: definition.then(|| TaskDefinition {
                task_type: Some(TaskType::ActorCreation),
                func_or_class_name: Text::from("Counter.__init__"),
                ..Default::default()
            }),
            states: states.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn a_running_only_attempt_without_definition_is_not_invented() {
        let mut builder = Builder::default();
        builder.task(update(
            0,
            true,
            &[
                (TaskState::PendingNodeAssignment, 1),
                (TaskState::Finished, 3),
            ],
        ));
        // The restart of the actor's creation task: Ray wrote only RUNNING for attempt 1.
        builder.task(update(1, false, &[(TaskState::Running, 5)]));
        let session = builder.finish();
        assert_eq!(session.tasks.len(), 1);
        assert_eq!(session.tasks.memory_rows().unwrap()[0].attempt, 0);

        // An attempt with more than a running state is kept even without a definition.
        let mut builder = Builder::default();
        builder.task(update(0, true, &[(TaskState::Finished, 3)]));
        builder.task(update(
            1,
            false,
            &[(TaskState::PendingArgsAvail, 4), (TaskState::Running, 5)],
        ));
        assert_eq!(builder.finish().tasks.len(), 2);
    }
}
