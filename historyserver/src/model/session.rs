//! The frozen [`Session`] and the part of it the session index stores beside the tasks.

use std::collections::{BTreeMap, HashMap};

use ray_history_storage::layout::SnapshotKind;

use super::*;
use crate::ids::{ActorId, NodeId};

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

pub(super) fn actors_by_id(actors: &[Actor]) -> HashMap<ActorId, u32> {
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
    pub(super) fn merge(&mut self, other: LoadStats) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.lines += other.lines;
        self.corrupt_lines += other.corrupt_lines;
        self.unknown_events += other.unknown_events;
    }
}
