//! The [`Builder`]: accumulates the updates of one or more event files, merges with other
//! builders, and freezes into a [`Session`], inferring the end of what was still alive.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ray_history_storage::layout::SnapshotKind;
use rayon::slice::ParallelSliceMut;
use serde_json::value::RawValue;

use super::spill::{RowOrder, SpillBuffer, TaskSpill, in_order};
use super::task::TaskRows;
use super::*;
use crate::ids::{ActorId, JobId, NodeId, TaskId};

/// Distinct task definitions a builder keeps to share (see [`Builder::task`]).
const SHARED_DEFINITIONS: usize = 4096;

/// Accumulates updates from one or more files; merge builders, then [`Builder::finish`].
#[derive(Default)]
pub struct Builder {
    tasks: TaskRows,
    actors: HashMap<ActorId, (ActorDefinition, Vec<ActorTransition>)>,
    driver_jobs: HashMap<JobId, DriverJob>,
    submission_jobs: HashMap<Text, SubmissionJob>,
    nodes: HashMap<NodeId, Node>,
    events: Vec<ClusterEvent>,
    /// Snapshot rows without events (placement groups, workers, Serve, Data), newest per id.
    snapshot_rows: HashMap<(SnapshotKind, String), (u64, Box<RawValue>)>,
    interned: foldhash::HashSet<Text>,
    /// Texts computed from other texts, by their source (see [`Builder::intern_derived`]).
    derived: foldhash::HashMap<Text, Text>,
    /// Task definitions seen lately, each once (see [`Definition`]).
    definitions: foldhash::HashSet<Arc<TaskDefinition>>,
    /// Where task rows go when the session is indexed, instead of staying here.
    spill: Option<SpillBuffer>,
    /// What was read and skipped.
    pub stats: LoadStats,
}

impl Builder {
    /// A builder that hands its task rows over to `spill` as it goes.
    pub fn spilling(spill: Arc<TaskSpill>) -> Self {
        Builder {
            spill: Some(SpillBuffer::new(spill)),
            ..Builder::default()
        }
    }

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

    /// Interns `derive(source)`, computed once per distinct `source` (a resource map's
    /// canonical text, which every task definition repeats, costs a JSON parse).
    pub fn intern_derived(&mut self, source: &str, derive: impl FnOnce(&str) -> String) -> Text {
        if let Some(found) = self.derived.get(source) {
            return found.clone();
        }
        let derived = self.intern(&derive(source));
        self.derived.insert(Text::from(source), derived.clone());
        derived
    }

    /// Applies one task update.
    pub fn task(&mut self, mut update: TaskUpdate) {
        self.task_from(&mut update);
    }

    /// Applies one task update, taken out of `update`: it is left empty, to be reused (its
    /// list of states keeps its memory, so a parser reading line after line allocates none).
    pub fn task_from(&mut self, update: &mut TaskUpdate) {
        let Some(task_id) = update.task_id else {
            self.stats.unknown_events += 1;
            update.clear();
            return;
        };
        let def = update
            .definition
            .take()
            .map_or_else(Definition::default, |def| self.share(def));
        self.add_task(Task::from_update(task_id, update, def));
    }

    /// The shared copy of a definition: a million tasks of a few call sites keep a few
    /// definitions, not a million (each an allocation to make, fill, read and free).
    fn share(&mut self, def: TaskDefinition) -> Definition {
        if let Some(shared) = self.definitions.get(&def) {
            return Definition::shared(shared.clone());
        }
        // Sharing is only a saving: a builder of tasks that all differ keeps no more than
        // this many alive for it (their rows may have gone to disk).
        if self.definitions.len() >= SHARED_DEFINITIONS {
            self.definitions.clear();
        }
        let shared = Arc::new(def);
        self.definitions.insert(shared.clone());
        Definition::shared(shared)
    }

    fn add_task(&mut self, task: Task) {
        match &mut self.spill {
            Some(spill) => spill.push(task),
            None => self.tasks.add(task),
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
    pub fn merge(&mut self, mut other: Builder) {
        if other.tasks.len() > self.tasks.len() {
            std::mem::swap(self, &mut other);
            return self.merge(other);
        }
        match (&mut self.spill, other.spill.take()) {
            (Some(mine), Some(theirs)) => mine.absorb(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
        for task in other.tasks.into_vec() {
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
        let tasks = self.tasks.take();
        let (rest, finisher) = self.finish_rest(ended_ns);
        Session::new(TaskTable::in_memory(finisher.finish(tasks)), rest)
    }

    /// Freezes the state for the session index: returns everything but the task rows, and
    /// passes every finished row to `sink` in row order, a batch at a time. A spilling
    /// builder never holds more than a partition of its rows in memory when the session is
    /// big (see [`super::spill`]).
    pub fn finish_to(
        mut self,
        ended_ns: Option<u64>,
        mut sink: impl FnMut(&[&Task]) -> std::io::Result<()>,
    ) -> std::io::Result<SessionRest> {
        let spill = self.spill.take();
        let mut tasks = self.tasks.take();
        let (rest, finisher) = self.finish_rest(ended_ns);
        match spill {
            Some(spill) => spill.finish(|rows| finisher.finish_in_place(rows), sink)?,
            None => {
                let order = finisher.finish_in_place(&mut tasks);
                sink(
                    &order
                        .iter()
                        .map(|(_, i)| &tasks[*i as usize])
                        .collect::<Vec<_>>(),
                )?;
            }
        }
        Ok(rest)
    }

    /// Freezes everything but the task rows, and returns what finishes those.
    fn finish_rest(mut self, ended_ns: Option<u64>) -> (SessionRest, TaskFinisher) {
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
        let finisher = TaskFinisher {
            ended_ns,
            actor_names: actors
                .iter()
                .filter(|a| !a.def.name.is_empty())
                .map(|a| (a.actor_id, a.def.name.clone()))
                .collect(),
            worker_died: Text::from("WORKER_DIED"),
        };
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
        let mut snapshots: BTreeMap<SnapshotKind, Vec<(String, String)>> = BTreeMap::new();
        for ((kind, id), (_, row)) in self.snapshot_rows {
            snapshots
                .entry(kind)
                .or_default()
                .push((id, String::from(Box::<str>::from(row))));
        }
        let snapshots = snapshots
            .into_iter()
            .map(|(kind, mut rows)| {
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                (
                    kind.name().to_string(),
                    rows.into_iter().map(|(_, row)| row).collect(),
                )
            })
            .collect();
        let rest = SessionRest {
            actors,
            driver_jobs,
            submission_jobs,
            nodes,
            events,
            stats: self.stats,
            snapshots,
        };
        (rest, finisher)
    }
}

/// Finishes task rows once the rest of the session is frozen: drops the attempts Ray never
/// lists, infers the end of unfinished ones, derives the current state and defaults, and sorts
/// them by creation time. All attempts of a task must be finished together.
struct TaskFinisher {
    ended_ns: Option<u64>,
    actor_names: HashMap<ActorId, Text>,
    worker_died: Text,
}

impl TaskFinisher {
    /// Finished rows of `tasks`, in row order.
    fn finish(&self, mut tasks: Vec<Task>) -> Vec<Task> {
        let order = self.finish_in_place(&mut tasks);
        in_order(tasks, &order)
    }

    /// Finishes `tasks` where they lie; returns their keys ([`Task::row_key`]) and indexes
    /// in row order: rows are a few hundred bytes, and sorting them in place would move each
    /// one many times.
    fn finish_in_place(&self, tasks: &mut Vec<Task>) -> RowOrder {
        // Attempts Ray never lists go first, so that none of them is inferred to have failed.
        drop_unlisted_attempts(tasks);
        let mut finished = FinishedDefinitions::default();
        for task in tasks.iter_mut() {
            if let Some(ended_ns) = self.ended_ns {
                self.infer_end(task, ended_ns);
            }
            finish_task(task, &self.actor_names, &mut finished);
        }
        let mut keys: RowOrder = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.row_key(), i as u32))
            .collect();
        keys.par_sort_unstable();
        keys
    }

    fn infer_end(&self, task: &mut Task, ended_ns: u64) {
        let ts = task.state_ts;
        let ended = ts[TaskState::Finished as usize] > 0 || ts[TaskState::Failed as usize] > 0;
        if !ended {
            let last = ts.iter().copied().max().unwrap_or(0);
            task.state_ts[TaskState::Failed as usize] = ended_ns.max(last);
            task.error = Some(Box::new(ErrorInfo {
                error_type: self.worker_died.clone(),
                message: INFERRED_AT_END.into(),
            }));
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
fn drop_unlisted_attempts(tasks: &mut Vec<Task>) {
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
    // Such attempts are rare: only their tasks are looked at again.
    let candidates: foldhash::HashSet<TaskId> = tasks
        .iter()
        .filter(|t| !defined(t) && running_only(t))
        .map(|t| t.task_id)
        .collect();
    if candidates.is_empty() {
        return;
    }
    let with_definition: foldhash::HashSet<TaskId> = tasks
        .iter()
        .filter(|t| defined(t) && candidates.contains(&t.task_id))
        .map(|t| t.task_id)
        .collect();
    tasks.retain(|t| defined(t) || !running_only(t) || !with_definition.contains(&t.task_id));
}

/// Finished definitions by the definition they came from (its address, kept alive here so
/// that no other takes it) and the row's job hint: rows that share a definition share its
/// finished one, instead of a copy each.
type FinishedDefinitions = foldhash::HashMap<(usize, Option<JobId>), (Definition, Definition)>;

fn finish_task(
    task: &mut Task,
    actor_names: &HashMap<ActorId, Text>,
    finished: &mut FinishedDefinitions,
) {
    let ts = task.state_ts;
    task.state = TaskState::ALL
        .iter()
        .copied()
        .filter(|s| ts[*s as usize] > 0)
        .max_by_key(|s| (ts[*s as usize], s.rank()))
        .unwrap_or(TaskState::Nil);
    // Actor (creation) task ids end with the actor id; HTTP events omit it for creations.
    if task.def.actor_id.is_none()
        && matches!(
            task.def.task_type,
            Some(TaskType::Actor | TaskType::ActorCreation)
        )
    {
        let mut actor = [0u8; 16];
        actor.copy_from_slice(&task.task_id.0[8..]);
        task.def.actor_id = Some(crate::ids::Id(actor));
        finish_definition(&mut task.def, task.job_hint, actor_names);
    } else {
        let (_, def) = finished
            .entry((task.def.address(), task.job_hint))
            .or_insert_with(|| {
                let mut def = task.def.clone();
                finish_definition(&mut def, task.job_hint, actor_names);
                (task.def.clone(), def)
            });
        task.def = def.clone();
    }
    if let Some(profile) = task.profile.as_mut() {
        profile.events.sort();
        profile.events.dedup();
    }
}

/// Fills what a definition lacks from the rest of its row (written only where it changes,
/// so a shared definition is copied only then).
fn finish_definition(
    def: &mut Definition,
    job_hint: Option<JobId>,
    actor_names: &HashMap<ActorId, Text>,
) {
    if def.job_id.is_none() && job_hint.is_some() {
        def.job_id = job_hint;
    }
    if def.name.is_empty() {
        // Export events carry no task name; Ray names a named actor's creation task
        // `<actor name>:<class>.__init__`.
        let name = match def.actor_id.and_then(|a| actor_names.get(&a)) {
            Some(actor_name) if def.task_type == Some(TaskType::ActorCreation) => {
                Text::from(format!("{actor_name}:{}", def.func_or_class_name))
            }
            _ => def.func_or_class_name.clone(),
        };
        if !name.is_empty() {
            def.name = name;
        }
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

    #[test]
    fn equal_definitions_are_shared_and_finished_once() {
        let definition = |func: &str| TaskDefinition {
            task_type: Some(TaskType::Normal),
            func_or_class_name: Text::from(func),
            ..Default::default()
        };
        let mut builder = Builder::default();
        for (i, func) in ["square", "square", "cube"].into_iter().enumerate() {
            builder.task(TaskUpdate {
                task_id: TaskId::from_hex(&format!("{i:048x}")),
                definition: Some(definition(func)),
                states: vec![(TaskState::Finished, i as u64 + 1)],
                job_id: Some(crate::ids::Id([1, 0, 0, 0])),
                ..Default::default()
            });
        }
        let session = builder.finish();
        let rows = session.tasks.memory_rows().unwrap();
        // Export events carry no name and the job only beside the definition: both are
        // filled in, once for the rows that share a definition.
        assert_eq!(
            rows.iter().map(|t| &*t.def.name).collect::<Vec<_>>(),
            ["square", "square", "cube"]
        );
        assert!(rows.iter().all(|t| t.def.job_id.is_some()));
        assert_eq!(rows[0].def.address(), rows[1].def.address());
        assert_ne!(rows[0].def.address(), rows[2].def.address());
        // A write to a shared definition copies it first.
        let (mut first, second) = (rows[0].clone(), rows[1].clone());
        first.def.name = Text::from("renamed");
        assert_eq!(&*second.def.name, "square");
        assert_eq!(rows[0].def.address(), second.def.address());
    }
}
