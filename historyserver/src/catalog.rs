//! The session catalog: every `metadata.json` and `nodes/*.json` under `metadir/`, kept in
//! memory and refreshed in the background. A refresh is one recursive listing; only documents
//! whose size or modification time changed are downloaded again.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use ray_history_storage::Storage;
use ray_history_storage::layout::{Key, MetaRef, NodeId, SessionName};
use ray_history_storage::metadata::{NodeMetadata, SessionMetadata, SessionState};
use serde::Serialize;

use crate::Error;

/// A session's state as the server reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportedState {
    /// The head's collector is heartbeating.
    Running,
    /// Finalised on shutdown.
    Finished,
    /// Running, but its heartbeat is older than `--lost-after`.
    Lost,
}

impl ReportedState {
    /// Parses the `state` query value.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "running" => Some(Self::Running),
            "finished" => Some(Self::Finished),
            "lost" => Some(Self::Lost),
            _ => None,
        }
    }
}

/// One indexed session.
#[derive(Debug, Clone)]
pub struct SessionEntry {
    /// Namespace and cluster name.
    pub meta_ref: MetaRef,
    /// `metadata.json`.
    pub meta: SessionMetadata,
    /// `nodes/*.json`, sorted by node id.
    pub nodes: Vec<NodeMetadata>,
}

impl SessionEntry {
    /// Running, finished or lost (running with a stale heartbeat).
    pub fn state(&self, now: DateTime<Utc>, lost_after: Duration) -> ReportedState {
        match self.meta.state {
            SessionState::Finished => ReportedState::Finished,
            SessionState::Running => {
                let age = now.signed_duration_since(self.meta.last_heartbeat);
                if age.to_std().is_ok_and(|age| age > lost_after) {
                    ReportedState::Lost
                } else {
                    ReportedState::Running
                }
            }
        }
    }
}

/// Identity of a stored document, to skip downloads of unchanged ones.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    size: u64,
    modified: DateTime<Utc>,
}

#[derive(Default)]
struct Docs {
    sessions: HashMap<(MetaRef, SessionName), (Version, SessionMetadata)>,
    nodes: HashMap<(MetaRef, SessionName, NodeId), (Version, NodeMetadata)>,
}

/// An immutable view of the index, newest session first.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// All sessions, newest first (by start time, then name).
    pub sessions: Vec<Arc<SessionEntry>>,
    by_key: HashMap<(MetaRef, SessionName), usize>,
}

impl Snapshot {
    /// A session by namespace, cluster and name; `latest` picks the newest of that cluster.
    pub fn find(&self, meta_ref: &MetaRef, session: &str) -> Option<Arc<SessionEntry>> {
        if session == "latest" {
            return self
                .sessions
                .iter()
                .find(|s| s.meta_ref == *meta_ref)
                .cloned();
        }
        let name = SessionName::new(session).ok()?;
        self.by_key
            .get(&(meta_ref.clone(), name))
            .map(|i| self.sessions[*i].clone())
    }
}

/// The cached index.
pub struct Catalog {
    storage: Storage,
    docs: tokio::sync::Mutex<Docs>,
    snapshot: RwLock<Arc<Snapshot>>,
}

impl Catalog {
    /// An empty index over `storage`; call [`Catalog::refresh`] to fill it.
    pub fn new(storage: Storage) -> Self {
        Self {
            storage,
            docs: tokio::sync::Mutex::new(Docs::default()),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-lists `metadir/` and downloads changed documents.
    pub async fn refresh(&self) -> Result<(), Error> {
        let mut docs = self.docs.lock().await;
        let listing: Vec<_> = self
            .storage
            .list(Some(&MetaRef::root()))
            .try_collect()
            .await?;
        let mut wanted_sessions = HashMap::new();
        let mut wanted_nodes = HashMap::new();
        let mut downloads: Vec<(Path, Version, DocKey)> = Vec::new();
        for object in listing {
            let version = Version {
                size: object.size,
                modified: object.last_modified,
            };
            match Key::parse(&object.location) {
                Ok(Key::Metadata { meta, session }) => {
                    let key = (meta, session);
                    match docs.sessions.remove(&key) {
                        Some((v, doc)) if v == version => {
                            wanted_sessions.insert(key, (v, doc));
                        }
                        _ => downloads.push((object.location, version, DocKey::Session(key))),
                    }
                }
                Ok(Key::NodeMeta {
                    meta,
                    session,
                    node,
                }) => {
                    let key = (meta, session, node);
                    match docs.nodes.remove(&key) {
                        Some((v, doc)) if v == version => {
                            wanted_nodes.insert(key, (v, doc));
                        }
                        _ => downloads.push((object.location, version, DocKey::Node(key))),
                    }
                }
                _ => {}
            }
        }
        let fetched: Vec<_> = futures::stream::iter(downloads)
            .map(|(path, version, key)| {
                let storage = self.storage.clone();
                async move {
                    let result = storage.get(&path).await;
                    (path, version, key, result)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for (path, version, key, result) in fetched {
            let bytes = match result {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(key = %path, error = %e, "cannot read session metadata");
                    continue;
                }
            };
            match key {
                DocKey::Session(key) => match serde_json::from_slice(&bytes) {
                    Ok(doc) => {
                        wanted_sessions.insert(key, (version, doc));
                    }
                    Err(e) => tracing::warn!(key = %path, error = %e, "bad metadata.json"),
                },
                DocKey::Node(key) => match serde_json::from_slice(&bytes) {
                    Ok(doc) => {
                        wanted_nodes.insert(key, (version, doc));
                    }
                    Err(e) => tracing::warn!(key = %path, error = %e, "bad node document"),
                },
            }
        }
        docs.sessions = wanted_sessions;
        docs.nodes = wanted_nodes;
        let snapshot = build_snapshot(&docs);
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
        Ok(())
    }

    /// Refreshes every `interval` until the task is dropped.
    pub async fn run(self: Arc<Self>, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "session catalog refresh failed");
            }
        }
    }
}

enum DocKey {
    Session((MetaRef, SessionName)),
    Node((MetaRef, SessionName, NodeId)),
}

fn build_snapshot(docs: &Docs) -> Snapshot {
    let mut nodes: HashMap<(MetaRef, SessionName), Vec<NodeMetadata>> = HashMap::new();
    for ((meta, session, _), (_, doc)) in &docs.nodes {
        nodes
            .entry((meta.clone(), session.clone()))
            .or_default()
            .push(doc.clone());
    }
    let mut sessions: Vec<Arc<SessionEntry>> = docs
        .sessions
        .iter()
        .map(|((meta_ref, session), (_, meta))| {
            let mut nodes = nodes
                .remove(&(meta_ref.clone(), session.clone()))
                .unwrap_or_default();
            nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
            Arc::new(SessionEntry {
                meta_ref: meta_ref.clone(),
                meta: meta.clone(),
                nodes,
            })
        })
        .collect();
    sessions.sort_by(|a, b| {
        (b.meta.start_time, &b.meta.session_name).cmp(&(a.meta.start_time, &a.meta.session_name))
    });
    let by_key = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.meta_ref.clone(), s.meta.session_name.clone()), i))
        .collect();
    Snapshot { sessions, by_key }
}
