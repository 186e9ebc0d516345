//! `api/v0/tasks/summarize?summary_by=lineage`: the task tree as Ray's dashboard shows it.
//! Tasks hang under their parent task (roots are tasks started by a driver); an actor's tasks
//! hang under an `ACTOR` node placed where its creation task would be; siblings sharing a
//! name are folded into a `GROUP`. Every node counts the states of its subtree, and siblings
//! are ordered failures first, then by creation time.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::ids::{ActorId, TaskId};
use crate::model::{Session, Task, TaskState, TaskType};

/// A node of the tree.
#[derive(Serialize)]
pub(crate) struct LineageNode {
    name: String,
    key: String,
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: u64,
    state_counts: BTreeMap<&'static str, u64>,
    children: Vec<LineageNode>,
    link: Option<Link>,
}

#[derive(Serialize)]
struct Link {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
}

/// Where a node hangs: under a task, under an actor, or at the top.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Parent {
    Root,
    Task(TaskId),
    Actor(ActorId),
}

/// Builds the tree of `tasks` (drivers excluded; the latest attempt of each task).
pub(crate) fn tree(session: &Session, tasks: &[&Task]) -> Vec<LineageNode> {
    let mut latest: HashMap<TaskId, &Task> = HashMap::new();
    for task in tasks {
        if task.def.task_type == Some(TaskType::Driver) {
            continue;
        }
        let slot = latest.entry(task.task_id).or_insert(task);
        if task.attempt > slot.attempt {
            *slot = task;
        }
    }
    let parent_of_task = |task: &Task| -> Parent {
        match task.def.parent_task_id {
            Some(parent) if latest.contains_key(&parent) => Parent::Task(parent),
            _ => Parent::Root,
        }
    };
    let mut children: HashMap<Parent, Vec<Parent>> = HashMap::new();
    let mut actor_parent: HashMap<ActorId, Parent> = HashMap::new();
    let mut ordered: Vec<&Task> = latest.values().copied().collect();
    ordered.sort_by_key(|t| (t.creation_ns(), t.task_id));
    for task in &ordered {
        let here = Parent::Task(task.task_id);
        match (task.def.task_type, task.def.actor_id) {
            (Some(TaskType::Actor | TaskType::ActorCreation), Some(actor)) => {
                let actor_node = Parent::Actor(actor);
                children.entry(actor_node).or_default().push(here);
                if task.def.task_type == Some(TaskType::ActorCreation)
                    || !actor_parent.contains_key(&actor)
                {
                    actor_parent.insert(actor, parent_of_task(task));
                }
            }
            _ => children.entry(parent_of_task(task)).or_default().push(here),
        }
    }
    for (actor, parent) in &actor_parent {
        children
            .entry(*parent)
            .or_default()
            .push(Parent::Actor(*actor));
    }
    build(session, &latest, &children, Parent::Root)
}

fn build(
    session: &Session,
    tasks: &HashMap<TaskId, &Task>,
    children: &HashMap<Parent, Vec<Parent>>,
    at: Parent,
) -> Vec<LineageNode> {
    let nodes: Vec<LineageNode> = children
        .get(&at)
        .into_iter()
        .flatten()
        .filter_map(|child| node(session, tasks, children, *child))
        .collect();
    let mut by_name: BTreeMap<String, Vec<LineageNode>> = BTreeMap::new();
    for n in nodes {
        by_name.entry(n.name.clone()).or_default().push(n);
    }
    let mut out: Vec<LineageNode> = by_name
        .into_iter()
        .map(|(name, mut same)| {
            if same.len() == 1 {
                return same.remove(0);
            }
            sort(&mut same);
            let mut state_counts = BTreeMap::new();
            for n in &same {
                add_counts(&mut state_counts, &n.state_counts);
            }
            LineageNode {
                key: name.clone(),
                name,
                kind: "GROUP",
                timestamp: same.iter().map(|n| n.timestamp).min().unwrap_or(0),
                state_counts,
                children: same,
                link: None,
            }
        })
        .collect();
    sort(&mut out);
    out
}

fn node(
    session: &Session,
    tasks: &HashMap<TaskId, &Task>,
    children: &HashMap<Parent, Vec<Parent>>,
    at: Parent,
) -> Option<LineageNode> {
    let below = build(session, tasks, children, at);
    let mut state_counts = BTreeMap::new();
    for n in &below {
        add_counts(&mut state_counts, &n.state_counts);
    }
    match at {
        Parent::Root => None,
        Parent::Task(id) => {
            let task = tasks.get(&id)?;
            *state_counts.entry(task.state.name()).or_default() += 1;
            Some(LineageNode {
                name: task.def.name.to_string(),
                key: id.hex(),
                kind: task.def.task_type.unwrap_or_default().name(),
                timestamp: creation_ms(task),
                state_counts,
                children: below,
                link: Some(Link {
                    kind: "task",
                    id: id.hex(),
                }),
            })
        }
        Parent::Actor(id) => {
            let name = session
                .actor(&id)
                .map(|a| a.def.class_name.to_string())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| {
                    below
                        .first()
                        .map(|n| n.name.split('.').next().unwrap_or_default().to_string())
                        .unwrap_or_default()
                });
            Some(LineageNode {
                name,
                key: format!("actor:{id}"),
                kind: "ACTOR",
                timestamp: below.iter().map(|n| n.timestamp).min().unwrap_or(0),
                state_counts,
                children: below,
                link: Some(Link {
                    kind: "actor",
                    id: id.hex(),
                }),
            })
        }
    }
}

fn creation_ms(task: &Task) -> u64 {
    task.ts(TaskState::PendingArgsAvail)
        .or(task.creation_ns())
        .map_or(0, |ns| ns / 1_000_000)
}

fn add_counts(into: &mut BTreeMap<&'static str, u64>, from: &BTreeMap<&'static str, u64>) {
    for (state, n) in from {
        *into.entry(state).or_default() += n;
    }
}

/// Failures first, then by creation time.
fn sort(nodes: &mut [LineageNode]) {
    nodes.sort_by(|a, b| {
        let failed = |n: &LineageNode| !n.state_counts.contains_key("FAILED");
        (failed(a), a.timestamp, &a.key).cmp(&(failed(b), b.timestamp, &b.key))
    });
}
