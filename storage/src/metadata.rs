//! The JSON documents under `metadir/`: one `metadata.json` per session and one
//! `nodes/<node-id>.json` per node. The collector writes them, the history server reads them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::layout::{ClusterId, ClusterName, ClusterRef, Namespace, NodeId, SessionName};

/// Version of the storage layout written into every `metadata.json`.
pub const LAYOUT_VERSION: u32 = 1;

/// Whether a session's collector is still reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// The head's collector is heartbeating.
    Running,
    /// The head's collector finalised the session on shutdown.
    Finished,
}

/// The Kubernetes object that owns the cluster, e.g. a RayJob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Object kind, e.g. `RayJob`.
    pub kind: String,
    /// Object name.
    pub name: String,
}

/// `metadir/<ns>_<cluster>/<session>/metadata.json`, written by the head node's collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionMetadata {
    /// Always [`LAYOUT_VERSION`] for documents written by this version.
    pub layout_version: u32,
    /// The cluster's name.
    pub cluster_name: ClusterName,
    /// The cluster's unique id (`local` outside Kubernetes).
    pub cluster_id: ClusterId,
    /// The cluster's namespace.
    pub namespace: Namespace,
    /// Ray's session directory name.
    pub session_name: SessionName,
    /// Owning object, if any.
    pub owner: Option<Owner>,
    /// Ray version read from the session's logs, when known.
    pub ray_version: Option<String>,
    /// The head node's id.
    pub head_node_id: Option<NodeId>,
    /// When the session was first seen.
    pub start_time: DateTime<Utc>,
    /// Last heartbeat of the head's collector.
    pub last_heartbeat: DateTime<Utc>,
    /// Set when the session was finalised.
    pub end_time: Option<DateTime<Utc>>,
    /// Running or finished (a stale running session is reported as lost by the server).
    pub state: SessionState,
    /// Version of the collector that wrote the document.
    pub collector_version: String,
}

impl SessionMetadata {
    /// The cluster whose `log/` folder holds the session.
    pub fn cluster(&self) -> ClusterRef {
        ClusterRef {
            name: self.cluster_name.clone(),
            id: self.cluster_id.clone(),
        }
    }

    /// `log/<cluster>/<session>/`: the session's logs, events, snapshots and index.
    pub fn log_prefix(&self) -> object_store::path::Path {
        self.cluster().session_prefix(&self.session_name)
    }
}

/// Whether a node is the head or a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    /// The head node (runs GCS and the dashboard).
    Head,
    /// A worker node.
    Worker,
}

/// `metadir/<ns>_<cluster>/<session>/nodes/<node-id>.json`, one per node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMetadata {
    /// The Ray node id.
    pub node_id: NodeId,
    /// Head or worker.
    pub node_type: NodeType,
    /// Pod name, when running in Kubernetes.
    pub pod_name: Option<String>,
    /// Node IP, when known.
    pub node_ip: Option<String>,
    /// When the node was first seen.
    pub start_time: DateTime<Utc>,
    /// Last heartbeat of the node's collector.
    pub last_heartbeat: DateTime<Utc>,
    /// Set when the node's collector shut down.
    pub end_time: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_camel_case_and_round_trips() {
        let now = Utc::now();
        let doc = SessionMetadata {
            layout_version: LAYOUT_VERSION,
            cluster_name: ClusterName::new("c").unwrap(),
            cluster_id: ClusterId::new("local").unwrap(),
            namespace: Namespace::new("default").unwrap(),
            session_name: SessionName::new("session_x").unwrap(),
            owner: Some(Owner {
                kind: "RayJob".into(),
                name: "j".into(),
            }),
            ray_version: Some("2.60.0".into()),
            head_node_id: None,
            start_time: now,
            last_heartbeat: now,
            end_time: None,
            state: SessionState::Running,
            collector_version: "0.1.0".into(),
        };
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["layoutVersion"], 1);
        assert_eq!(json["state"], "running");
        assert_eq!(json["endTime"], serde_json::Value::Null);
        assert_eq!(json["owner"]["kind"], "RayJob");
        let back: SessionMetadata = serde_json::from_value(json).unwrap();
        assert_eq!(back, doc);
    }
}
