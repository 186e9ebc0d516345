//! Task attempts: their states, definition, execution fields and merge rules.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use super::{Text, take_opt, take_stamped, take_text};
use crate::ids::{ActorId, JobId, NodeId, PlacementGroupId, TaskId, WorkerId};

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
    pub(super) fn rank(self) -> u8 {
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
    #[serde(deserialize_with = "super::recent_text")]
    pub error_type: Text,
    /// The formatted exception.
    pub message: Box<str>,
}

/// Where a task's output went in its worker's log files.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TaskLogInfo {
    #[serde(deserialize_with = "super::recent_text")]
    pub stdout_file: Text,
    #[serde(deserialize_with = "super::recent_text")]
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
    #[serde(deserialize_with = "super::recent_text")]
    pub name: Text,
    /// JSON text Ray attached.
    #[serde(deserialize_with = "super::recent_text")]
    pub extra_data: Text,
}

/// Profiling data of a task attempt.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    #[serde(deserialize_with = "super::recent_text")]
    pub component_type: Text,
    #[serde(deserialize_with = "super::recent_text")]
    pub component_id: Text,
    #[serde(deserialize_with = "super::recent_text")]
    pub node_ip_address: Text,
    pub events: Vec<ProfileEvent>,
    /// Taken whole from a head snapshot (millisecond times): replaced by any event data.
    pub from_snapshot: bool,
}

/// Definition fields of a task attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TaskDefinition {
    #[serde(deserialize_with = "super::recent_text")]
    pub name: Text,
    #[serde(deserialize_with = "super::recent_text")]
    pub func_or_class_name: Text,
    pub task_type: Option<TaskType>,
    #[serde(deserialize_with = "super::recent_text")]
    pub language: Text,
    pub job_id: Option<JobId>,
    pub actor_id: Option<ActorId>,
    pub parent_task_id: Option<TaskId>,
    pub placement_group_id: Option<PlacementGroupId>,
    /// JSON object text, e.g. `{"CPU":1.0}`.
    #[serde(deserialize_with = "super::recent_text")]
    pub required_resources: Text,
    #[serde(deserialize_with = "super::recent_text")]
    pub serialized_runtime_env: Text,
    /// JSON text of `runtime_env_config`, when the event carried one.
    #[serde(deserialize_with = "super::recent_text")]
    pub runtime_env_config: Text,
}

impl TaskDefinition {
    pub(super) fn merge(&mut self, other: TaskDefinition) {
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

/// A task attempt's definition, shared by the attempts that have an equal one: ids of a
/// task's own are not part of it, so the tasks of one call site share one (a builder keeps
/// each distinct definition once). Allocated only once an update carries one: most updates
/// are state changes. Reads see an empty definition when there is none; a write copies a
/// shared one first.
#[derive(Debug, Clone, Default)]
pub struct Definition(Option<Arc<TaskDefinition>>);

impl Definition {
    /// A definition shared with others.
    pub(super) fn shared(def: Arc<TaskDefinition>) -> Self {
        Definition(Some(def))
    }

    /// Where the shared definition is (0 for none): equal for attempts that share it.
    pub(super) fn address(&self) -> usize {
        self.0.as_ref().map_or(0, |def| Arc::as_ptr(def) as usize)
    }

    fn merge(&mut self, other: Definition) {
        match (&mut self.0, other.0) {
            (_, None) => {}
            (None, Some(theirs)) => self.0 = Some(theirs),
            // Merging a definition with itself changes nothing.
            (Some(mine), Some(theirs)) if Arc::ptr_eq(mine, &theirs) => {}
            (Some(mine), Some(theirs)) => {
                Arc::make_mut(mine).merge(Arc::unwrap_or_clone(theirs));
            }
        }
    }
}

impl std::ops::Deref for Definition {
    type Target = TaskDefinition;

    fn deref(&self) -> &TaskDefinition {
        static EMPTY: std::sync::OnceLock<TaskDefinition> = std::sync::OnceLock::new();
        self.0
            .as_deref()
            .unwrap_or_else(|| EMPTY.get_or_init(TaskDefinition::default))
    }
}

impl std::ops::DerefMut for Definition {
    fn deref_mut(&mut self) -> &mut TaskDefinition {
        Arc::make_mut(self.0.get_or_insert_with(Arc::default))
    }
}

impl PartialEq for Definition {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

/// Stored as the definition itself, empty or not.
impl serde::Serialize for Definition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Definition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        TaskDefinition::deserialize(deserializer).map(|def| Definition(Some(Arc::new(def))))
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

impl TaskUpdate {
    /// Empties the update, keeping the memory of its list of states.
    pub fn clear(&mut self) {
        let mut states = std::mem::take(&mut self.states);
        states.clear();
        *self = TaskUpdate {
            states,
            ..TaskUpdate::default()
        };
    }
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
    pub def: Definition,
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
    pub(super) job_hint: Option<JobId>,
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

    /// The row of one update, whose definition (if it carried one) is `def`; the update is
    /// taken out (see [`TaskUpdate::clear`]).
    pub(super) fn from_update(task_id: TaskId, update: &mut TaskUpdate, def: Definition) -> Self {
        let stamp = update
            .states
            .iter()
            .map(|(_, t)| *t)
            .max()
            .unwrap_or(update.event_ns);
        let stamped = |set: bool| if set { stamp } else { 0 };
        let mut state_ts = [0u64; TASK_STATES];
        for (state, ts) in update.states.drain(..) {
            let slot = &mut state_ts[state as usize];
            if ts > 0 && (*slot == 0 || ts < *slot) {
                *slot = ts;
            }
        }
        let task = Task {
            task_id,
            attempt: update.attempt,
            def,
            state_ts,
            state: TaskState::Nil,
            node_id: update.node_id,
            worker_id: update.worker_id,
            worker_pid: update.worker_pid,
            stamps: Stamps {
                node: stamped(update.node_id.is_some()),
                worker: stamped(update.worker_id.is_some()),
                pid: stamped(update.worker_pid.is_some()),
                error: stamped(update.error.is_some()),
                log: stamped(update.log_info.is_some()),
            },
            error: update.error.take().map(Box::new),
            log_info: update.log_info.take().map(Box::new),
            profile: update.profile.take().map(Box::new),
            job_hint: update.job_id,
        };
        update.clear();
        task
    }

    pub(super) fn merge(&mut self, other: Task) {
        self.def.merge(other.def);
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

/// The order of rows: creation time, task id, attempt.
pub type RowKey = (Option<u64>, TaskId, u32);

impl Task {
    /// Where the row goes in a session's task table.
    pub fn row_key(&self) -> RowKey {
        (self.creation_ns(), self.task_id, self.attempt)
    }
}

/// Task rows being merged: one row per attempt, updates of the same attempt merged into it.
#[derive(Debug, Default)]
pub(super) struct TaskRows {
    rows: Vec<Task>,
    index: foldhash::HashMap<(TaskId, u32), u32>,
}

impl TaskRows {
    /// Merges `task` into its attempt's row, or adds a row.
    pub(super) fn add(&mut self, task: Task) {
        match self.index.entry((task.task_id, task.attempt)) {
            Entry::Occupied(e) => self.rows[*e.get() as usize].merge(task),
            Entry::Vacant(e) => {
                e.insert(self.rows.len() as u32);
                self.rows.push(task);
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Takes every row out.
    pub(super) fn take(&mut self) -> Vec<Task> {
        self.index.clear();
        std::mem::take(&mut self.rows)
    }

    pub(super) fn into_vec(self) -> Vec<Task> {
        self.rows
    }
}
