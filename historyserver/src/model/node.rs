//! Nodes and cluster events.

use super::{Text, json_text, take_text};
use crate::ids::NodeId;

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

    pub(super) fn merge(&mut self, other: Node) {
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
