//! `metadir/`: the session's `metadata.json` (head node only) and `nodes/<node-id>.json`
//! (every node). Written at first sight so live sessions are listed at once, refreshed on a
//! heartbeat, finalised with an end time when the collector stops (or, for a session left over
//! from an earlier Ray run, once its files are uploaded).

use bytes::Bytes;
use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use ray_history_storage::layout::{NodeId, SessionName};
use ray_history_storage::metadata::{
    LAYOUT_VERSION, NodeMetadata, NodeType, SessionMetadata, SessionState,
};

use crate::Result;
use crate::config::Node;
use crate::uploader::Uploader;

/// What the collector knows about one session on this node.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// The session.
    pub name: SessionName,
    /// This node's id in it.
    pub node: NodeId,
    /// When it started (kept from an earlier collector's document when there is one).
    pub start_time: DateTime<Utc>,
    /// Ray's version, once found in the logs.
    pub ray_version: Option<String>,
}

/// Writes the metadata documents.
#[derive(Clone)]
pub struct Publisher {
    uploader: Uploader,
    node: Node,
}

impl Publisher {
    /// A publisher for this node's identity.
    pub fn new(uploader: Uploader, node: Node) -> Publisher {
        Publisher { uploader, node }
    }

    /// The record of a session seen for the first time by this process: the start time comes
    /// from a document an earlier run wrote, else from the session's name, else now.
    pub async fn first_sight(
        &self,
        name: &SessionName,
        node: &NodeId,
        ray_version: Option<String>,
    ) -> Result<SessionRecord> {
        let storage = self.uploader.storage();
        let key = match self.node.node_type {
            NodeType::Head => self.node.meta.metadata(name),
            NodeType::Worker => self.node.meta.node(name, node),
        };
        let existing = match self.uploader.call("get", || storage.get(&key)).await {
            Ok(bytes) => Some(bytes),
            Err(ray_history_storage::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let earlier = existing.and_then(|bytes| match self.node.node_type {
            NodeType::Head => serde_json::from_slice::<SessionMetadata>(&bytes)
                .ok()
                .map(|d| d.start_time),
            NodeType::Worker => serde_json::from_slice::<NodeMetadata>(&bytes)
                .ok()
                .map(|d| d.start_time),
        });
        Ok(SessionRecord {
            name: name.clone(),
            node: node.clone(),
            start_time: earlier
                .or_else(|| start_from_name(name))
                .unwrap_or_else(Utc::now),
            ray_version,
        })
    }

    /// Writes the node's document and, on the head, the session's: running when `end` is
    /// `None`, finished otherwise.
    pub async fn write(&self, record: &SessionRecord, end: Option<DateTime<Utc>>) -> Result<()> {
        let now = Utc::now();
        let node_doc = NodeMetadata {
            node_id: record.node.clone(),
            node_type: self.node.node_type,
            pod_name: self.node.pod_name.clone(),
            node_ip: self.node.pod_ip.clone(),
            start_time: record.start_time,
            last_heartbeat: now,
            end_time: end,
        };
        self.put(&self.node.meta.node(&record.name, &record.node), &node_doc)
            .await?;
        if self.node.node_type == NodeType::Head {
            let doc = SessionMetadata {
                layout_version: LAYOUT_VERSION,
                cluster_name: self.node.cluster.name.clone(),
                cluster_id: self.node.cluster.id.clone(),
                namespace: self.node.meta.namespace.clone(),
                session_name: record.name.clone(),
                owner: self.node.owner.clone(),
                ray_version: record.ray_version.clone(),
                head_node_id: Some(record.node.clone()),
                start_time: record.start_time,
                last_heartbeat: now,
                end_time: end,
                state: if end.is_some() {
                    SessionState::Finished
                } else {
                    SessionState::Running
                },
                collector_version: env!("CARGO_PKG_VERSION").to_string(),
            };
            self.put(&self.node.meta.metadata(&record.name), &doc)
                .await?;
        }
        Ok(())
    }

    async fn put<T: serde::Serialize>(
        &self,
        key: &object_store::path::Path,
        doc: &T,
    ) -> Result<()> {
        let bytes = Bytes::from(serde_json::to_vec_pretty(doc).expect("metadata serialises"));
        let storage = self.uploader.storage();
        self.uploader
            .call("put", || storage.put(key, bytes.clone()))
            .await?;
        Ok(())
    }
}

/// `session_2026-11-21_04-23-31_898414_12602` → 2026-11-21 04:23:31.898414 in local time
/// (Ray names sessions by the local clock).
pub fn start_from_name(name: &SessionName) -> Option<DateTime<Utc>> {
    let rest = name.as_str().strip_prefix("session_")?;
    let mut parts = rest.split('_');
    let (date, time, micros) = (parts.next()?, parts.next()?, parts.next()?);
    let naive =
        NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H-%M-%S").ok()?;
    let micros: i64 = micros.parse().ok()?;
    let local = Local.from_local_datetime(&naive).earliest()?;
    Some(local.with_timezone(&Utc) + chrono::Duration::microseconds(micros))
}

#[cfg(test)]
mod tests {
    use ray_history_storage::{Storage, StorageConfig};

    use super::*;
    use crate::config::{Identity, NodeKind};
    use crate::metrics::Metrics;

    fn identity(kind: NodeKind) -> Node {
        Identity {
            cluster_name: "demo".into(),
            cluster_id: "local".into(),
            namespace: "default".into(),
            node_type: kind,
            pod_name: Some("demo-head".into()),
            pod_ip: Some("10.0.0.7".into()),
            owner_kind: Some("RayJob".into()),
            owner_name: Some("nightly".into()),
        }
        .resolve()
        .unwrap()
    }

    #[test]
    fn start_time_comes_from_the_session_name() {
        let name = SessionName::new("session_2026-11-21_04-23-31_898414_12602").unwrap();
        let start = start_from_name(&name).unwrap();
        let local = start.with_timezone(&Local);
        assert_eq!(
            local.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
            "2026-11-21 04:23:31.898414"
        );
        assert!(start_from_name(&SessionName::new("session_x").unwrap()).is_none());
    }

    #[tokio::test]
    async fn head_writes_running_then_finished_and_keeps_its_start_time() {
        let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
        let uploader = Uploader::new(storage.clone(), Default::default(), Metrics::new());
        let node = identity(NodeKind::Head);
        let publisher = Publisher::new(uploader, node.clone());
        let name = SessionName::new("session_2026-11-21_04-23-31_898414_12602").unwrap();
        let id = NodeId::new(&"ab".repeat(28)).unwrap();
        let mut record = publisher
            .first_sight(&name, &id, Some("2.60.0".into()))
            .await
            .unwrap();
        record.start_time = Utc::now() - chrono::Duration::hours(1);
        publisher.write(&record, None).await.unwrap();
        let doc: SessionMetadata =
            serde_json::from_slice(&storage.get(&node.meta.metadata(&name)).await.unwrap())
                .unwrap();
        assert_eq!(doc.state, SessionState::Running);
        assert_eq!(doc.head_node_id.as_ref(), Some(&id));
        assert_eq!(doc.owner.unwrap().kind, "RayJob");
        // A restarted collector keeps the start time it finds in storage.
        let again = publisher.first_sight(&name, &id, None).await.unwrap();
        assert_eq!(again.start_time, record.start_time);
        publisher.write(&again, Some(Utc::now())).await.unwrap();
        let doc: SessionMetadata =
            serde_json::from_slice(&storage.get(&node.meta.metadata(&name)).await.unwrap())
                .unwrap();
        assert_eq!(doc.state, SessionState::Finished);
        assert!(doc.end_time.is_some());
        let node_doc: NodeMetadata =
            serde_json::from_slice(&storage.get(&node.meta.node(&name, &id)).await.unwrap())
                .unwrap();
        assert_eq!(node_doc.node_type, NodeType::Head);
        assert_eq!(node_doc.node_ip.as_deref(), Some("10.0.0.7"));
    }

    #[tokio::test]
    async fn workers_write_only_their_node_document() {
        let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
        let uploader = Uploader::new(storage.clone(), Default::default(), Metrics::new());
        let node = identity(NodeKind::Worker);
        let publisher = Publisher::new(uploader, node.clone());
        let name = SessionName::new("session_2026-11-21_04-23-31_898414_12602").unwrap();
        let id = NodeId::new(&"cd".repeat(28)).unwrap();
        let record = publisher.first_sight(&name, &id, None).await.unwrap();
        publisher.write(&record, None).await.unwrap();
        assert!(
            storage
                .head(&node.meta.metadata(&name))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            storage
                .head(&node.meta.node(&name, &id))
                .await
                .unwrap()
                .is_some()
        );
    }
}
