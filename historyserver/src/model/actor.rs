//! Actors: definition, state transitions and merge rules.

use super::{Text, take_opt, take_text};
use crate::ids::{ActorId, JobId, NodeId, PlacementGroupId, WorkerId};

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
    pub(super) fn merge(&mut self, other: ActorDefinition) {
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
