//! Where a cluster's objects live: [`ClusterRef`] builds the keys under `log/`, [`MetaRef`]
//! those under `metadir/`.

use object_store::path::Path;

use super::*;

/// Where a cluster's logs live: `log/<cluster-name>_<cluster-id>/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterRef {
    /// The cluster's name.
    pub name: ClusterName,
    /// The cluster's unique id.
    pub id: ClusterId,
}

impl ClusterRef {
    /// Builds a reference from raw strings, validating both.
    pub fn new(name: &str, id: &str) -> Result<Self> {
        Ok(Self {
            name: ClusterName::new(name)?,
            id: ClusterId::new(id)?,
        })
    }

    /// The `<cluster-name>_<cluster-id>` segment.
    pub fn segment(&self) -> String {
        format!("{}_{}", self.name, self.id)
    }

    /// Parses a `<cluster-name>_<cluster-id>` segment (split at the last `_`).
    pub fn parse_segment(segment: &str) -> Result<Self> {
        let (name, id) = segment
            .rsplit_once('_')
            .ok_or_else(|| LayoutError::UnknownKey(segment.to_string()))?;
        Self::new(name, id)
    }

    /// `log/<cluster>/<session>/`: everything stored for one session.
    pub fn session_prefix(&self, session: &SessionName) -> Path {
        Path::from_iter([LOG_ROOT, &self.segment(), session.as_str()])
    }

    /// `log/<cluster>/<session>/logs/<node-id>/`: one node's copy of its `logs/` dir.
    pub fn node_logs_prefix(&self, session: &SessionName, node: &NodeId) -> Path {
        Path::from_iter([
            LOG_ROOT,
            &self.segment(),
            session.as_str(),
            LOGS_DIR,
            node.as_str(),
        ])
    }

    /// `log/<cluster>/<session>/logs/<node-id>/<relative>`, where `relative` is a `/`-separated
    /// path inside the node's `logs/` dir; every part of it is validated.
    pub fn log_file(&self, session: &SessionName, node: &NodeId, relative: &str) -> Result<Path> {
        let parts = split_relative(relative)?;
        let mut all = vec![
            LOG_ROOT.to_string(),
            self.segment(),
            session.to_string(),
            LOGS_DIR.to_string(),
            node.to_string(),
        ];
        all.extend(parts.into_iter().map(str::to_string));
        Ok(Path::from_iter(all))
    }

    /// `log/<cluster>/<session>/staging/<node-id>/`: one node's scratch copies.
    pub fn node_staging_prefix(&self, session: &SessionName, node: &NodeId) -> Path {
        Path::from_iter([
            LOG_ROOT,
            &self.segment(),
            session.as_str(),
            STAGING_DIR,
            node.as_str(),
        ])
    }

    /// `log/<cluster>/<session>/node_events/`.
    pub fn node_events_prefix(&self, session: &SessionName) -> Path {
        Path::from_iter([LOG_ROOT, &self.segment(), session.as_str(), NODE_EVENTS_DIR])
    }

    /// `log/<cluster>/<session>/snapshot/<kind>.jsonl`: the latest snapshot of one kind.
    pub fn snapshot(&self, session: &SessionName, kind: SnapshotKind) -> Path {
        Path::from_iter([
            LOG_ROOT,
            &self.segment(),
            session.as_str(),
            SNAPSHOT_DIR,
            &format!("{}.jsonl", kind.name()),
        ])
    }

    /// `log/<cluster>/<session>/index/v<version>-<fingerprint>.rhsi`: the history server's
    /// index of a session, for one format version and one set of event files (the
    /// fingerprint, 16 hex digits).
    pub fn session_index(&self, session: &SessionName, version: u32, fingerprint: u64) -> Path {
        Path::from_iter([
            LOG_ROOT,
            &self.segment(),
            session.as_str(),
            INDEX_DIR,
            &format!("v{version}-{fingerprint:016x}.{INDEX_EXTENSION}"),
        ])
    }

    /// `log/<cluster>/<session>/node_events/<node-id>-<unix-millis>.json`.
    pub fn node_events(&self, session: &SessionName, node: &NodeId, unix_millis: u64) -> Path {
        let file = format!("{node}-{unix_millis}.json");
        Path::from_iter([
            LOG_ROOT,
            &self.segment(),
            session.as_str(),
            NODE_EVENTS_DIR,
            &file,
        ])
    }
}

/// What a snapshot object holds: one of the head's State API lists (or Serve / Data pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SnapshotKind {
    /// `api/v0/tasks?detail=true`.
    Tasks,
    /// `api/v0/actors?detail=true`.
    Actors,
    /// `api/v0/nodes?detail=true`.
    Nodes,
    /// `api/jobs/` (driver and submitted jobs).
    Jobs,
    /// `api/v0/placement_groups?detail=true`.
    PlacementGroups,
    /// `api/v0/workers?detail=true`.
    Workers,
    /// `api/serve/applications/`.
    Serve,
    /// `api/data/datasets/<job-id>` of every job.
    Datasets,
}

impl SnapshotKind {
    /// Every kind, in the order the collector takes them.
    pub const ALL: [SnapshotKind; 8] = [
        SnapshotKind::Jobs,
        SnapshotKind::Nodes,
        SnapshotKind::Actors,
        SnapshotKind::PlacementGroups,
        SnapshotKind::Workers,
        SnapshotKind::Tasks,
        SnapshotKind::Serve,
        SnapshotKind::Datasets,
    ];

    /// The name used in keys and in each stored line's `kind`.
    pub fn name(self) -> &'static str {
        match self {
            SnapshotKind::Tasks => "tasks",
            SnapshotKind::Actors => "actors",
            SnapshotKind::Nodes => "nodes",
            SnapshotKind::Jobs => "jobs",
            SnapshotKind::PlacementGroups => "placement_groups",
            SnapshotKind::Workers => "workers",
            SnapshotKind::Serve => "serve",
            SnapshotKind::Datasets => "datasets",
        }
    }

    /// The kind of a name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Where a cluster's metadata lives: `metadir/<namespace>_<cluster-name>/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetaRef {
    /// The cluster's namespace.
    pub namespace: Namespace,
    /// The cluster's name.
    pub cluster: ClusterName,
}

impl MetaRef {
    /// Builds a reference from raw strings, validating both.
    pub fn new(namespace: &str, cluster: &str) -> Result<Self> {
        Ok(Self {
            namespace: Namespace::new(namespace)?,
            cluster: ClusterName::new(cluster)?,
        })
    }

    /// The `<namespace>_<cluster-name>` segment.
    pub fn segment(&self) -> String {
        format!("{}_{}", self.namespace, self.cluster)
    }

    /// Parses a `<namespace>_<cluster-name>` segment (split at the first `_`).
    pub fn parse_segment(segment: &str) -> Result<Self> {
        let (namespace, cluster) = segment
            .split_once('_')
            .ok_or_else(|| LayoutError::UnknownKey(segment.to_string()))?;
        Self::new(namespace, cluster)
    }

    /// `metadir/`: the root of every cluster's metadata (list it to find sessions).
    pub fn root() -> Path {
        Path::from(META_ROOT)
    }

    /// `metadir/<ns>_<cluster>/<session>/`.
    pub fn session_prefix(&self, session: &SessionName) -> Path {
        Path::from_iter([META_ROOT, &self.segment(), session.as_str()])
    }

    /// `metadir/<ns>_<cluster>/<session>/metadata.json`.
    pub fn metadata(&self, session: &SessionName) -> Path {
        Path::from_iter([META_ROOT, &self.segment(), session.as_str(), METADATA_FILE])
    }

    /// `metadir/<ns>_<cluster>/<session>/nodes/<node-id>.json`.
    pub fn node(&self, session: &SessionName, node: &NodeId) -> Path {
        let file = format!("{node}.json");
        Path::from_iter([
            META_ROOT,
            &self.segment(),
            session.as_str(),
            NODES_DIR,
            &file,
        ])
    }
}
