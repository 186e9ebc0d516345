//! The object key layout shared by the collector (writer) and the history server (reader).
//!
//! ```text
//! log/<cluster-name>_<cluster-id>/<session>/logs/<node-id>/<relative path>
//! log/<cluster-name>_<cluster-id>/<session>/node_events/<node-id>-<unix-millis>.json
//! log/<cluster-name>_<cluster-id>/<session>/staging/<node-id>/<logs|node_events>/<...>
//! metadir/<namespace>_<cluster-name>/<session>/metadata.json
//! metadir/<namespace>_<cluster-name>/<session>/nodes/<node-id>.json
//! ```
//!
//! `staging/` holds the collector's scratch copies: an object's new content is built there and
//! then copied over the object, so a reader never finds a key missing while it is rewritten.
//! Readers skip it; a node's collector clears its own staging keys when it starts.
//!
//! Keys are relative to the storage prefix (the [`crate::Storage`] handle adds it). Every name
//! segment is validated when it is built, so a key made here can always be parsed back by
//! [`Key::parse`]. Namespaces and cluster ids never contain `_`, which makes the joined
//! `<namespace>_<cluster>` and `<cluster>_<id>` segments unambiguous.
//!
//! ```
//! use ray_history_storage::layout::{ClusterRef, Key, NodeId, SessionName};
//! let cluster = ClusterRef::new("raycluster-a", "local").unwrap();
//! let session = SessionName::new("session_2026-11-21_04-23-31_898414_12602").unwrap();
//! let node = NodeId::new(&"ab".repeat(28)).unwrap();
//! let key = cluster.log_file(&session, &node, "events/event_RAYLET.log").unwrap();
//! assert!(matches!(Key::parse(&key).unwrap(), Key::LogFile { .. }));
//! ```

use std::fmt;

use object_store::path::Path;
use serde::{Deserialize, Serialize};

/// Top-level folder for log and event copies.
pub const LOG_ROOT: &str = "log";
/// Top-level folder for session and node metadata.
pub const META_ROOT: &str = "metadir";
/// Folder under a session (in `log/`) that mirrors each node's `logs/` dir.
pub const LOGS_DIR: &str = "logs";
/// Folder under a session (in `log/`) with RayEvents received over HTTP.
pub const NODE_EVENTS_DIR: &str = "node_events";
/// Folder under a session (in `log/`) with the head's snapshots of Ray's GCS-backed state.
pub const SNAPSHOT_DIR: &str = "snapshot";
/// Folder under a session (in `log/`) where a collector builds objects it rewrites.
pub const STAGING_DIR: &str = "staging";
/// Directory of a session's index files (the history server's parsed copy of its events).
pub const INDEX_DIR: &str = "index";
/// File extension of session index files.
pub const INDEX_EXTENSION: &str = "rhsi";
/// File name of the session metadata object.
pub const METADATA_FILE: &str = "metadata.json";
/// Folder under a session (in `metadir/`) with one object per node.
pub const NODES_DIR: &str = "nodes";

/// Why a name or key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    /// A name segment is not acceptable.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// Which kind of name (e.g. "session name").
        what: &'static str,
        /// The offending value (names are never secret).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key does not match any layout shape.
    #[error("key {0:?} is not part of the Ray History layout")]
    UnknownKey(String),
}

type Result<T, E = LayoutError> = std::result::Result<T, E>;

/// Checks one path segment: not empty, not `.`/`..`, no `/`, `\` or control characters.
fn check_segment(what: &'static str, value: &str) -> Result<()> {
    let bad = |reason| {
        Err(LayoutError::InvalidName {
            what,
            value: value.to_string(),
            reason,
        })
    };
    if value.is_empty() {
        return bad("must not be empty");
    }
    if value == "." || value == ".." {
        return bad("must not be '.' or '..'");
    }
    if value.len() > 255 {
        return bad("is longer than 255 bytes");
    }
    if value.contains(['/', '\\']) {
        return bad("must not contain '/' or '\\'");
    }
    if value.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $extra:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps a name.
            pub fn new(value: &str) -> Result<Self> {
                check_segment($what, value)?;
                let extra: fn(&str) -> Option<&'static str> = $extra;
                if let Some(reason) = extra(value) {
                    return Err(LayoutError::InvalidName { what: $what, value: value.to_string(), reason });
                }
                Ok(Self(value.to_string()))
            }
            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = LayoutError;
            fn try_from(value: String) -> Result<Self> {
                Self::new(&value)
            }
        }
        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
        impl std::str::FromStr for $name {
            type Err = LayoutError;
            fn from_str(value: &str) -> Result<Self> {
                Self::new(value)
            }
        }
    };
}

name_type!(
    /// A Ray cluster's name (the `ray.io/cluster` label in Kubernetes).
    ClusterName, "cluster name", |_| None
);
name_type!(
    /// A cluster's unique id: the RayCluster's Kubernetes UID, or `local`. Never contains `_`.
    ClusterId, "cluster id", |v| v.contains('_').then_some("must not contain '_'")
);
name_type!(
    /// A Kubernetes namespace (or `default` outside Kubernetes). Never contains `_`.
    Namespace, "namespace", |v| v.contains('_').then_some("must not contain '_'")
);
name_type!(
    /// Ray's session directory name, e.g. `session_2026-11-21_04-23-31_898414_12602`.
    SessionName, "session name", |v| (!v.starts_with("session_")).then_some("must start with 'session_'")
);
name_type!(
    /// A Ray node id: 56 lowercase hex characters.
    NodeId, "node id", |v| (v.len() != 56 || !v.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then_some("must be 56 lowercase hex characters")
);

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

/// Splits and validates a relative path inside a node's `logs/` dir.
pub fn split_relative(relative: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = relative.split('/').collect();
    for part in &parts {
        check_segment("log file path segment", part)?;
    }
    Ok(parts)
}

/// A parsed object key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A byte-identical copy of a file under a node's `logs/` dir.
    LogFile {
        /// Cluster the file belongs to.
        cluster: ClusterRef,
        /// Session it belongs to.
        session: SessionName,
        /// Node that wrote it.
        node: NodeId,
        /// `/`-separated path relative to the node's `logs/` dir.
        relative: String,
    },
    /// A JSON Lines file of RayEvents received over HTTP.
    NodeEvents {
        /// Cluster the events belong to.
        cluster: ClusterRef,
        /// Session they belong to.
        session: SessionName,
        /// Node whose collector received them.
        node: NodeId,
        /// When the file was started, in Unix milliseconds.
        unix_millis: u64,
    },
    /// The head's latest snapshot of one kind of Ray state (JSON Lines).
    Snapshot {
        /// Cluster the snapshot belongs to.
        cluster: ClusterRef,
        /// Session it belongs to.
        session: SessionName,
        /// What it holds.
        kind: SnapshotKind,
    },
    /// A scratch copy of a log file or events object being rewritten (never a log).
    Staging {
        /// Cluster it belongs to.
        cluster: ClusterRef,
        /// Session it belongs to.
        session: SessionName,
        /// Node whose collector writes it.
        node: NodeId,
        /// The staged object's path after `log/<cluster>/<session>/`, e.g. `logs/<node-id>/raylet.out`.
        of: String,
    },
    /// The history server's index of a session.
    SessionIndex {
        /// Cluster it belongs to.
        cluster: ClusterRef,
        /// Session it indexes.
        session: SessionName,
        /// Its format version.
        version: u32,
        /// Fingerprint of the event files it was built from.
        fingerprint: u64,
    },
    /// A session's `metadata.json`.
    Metadata {
        /// Namespace and cluster.
        meta: MetaRef,
        /// The session.
        session: SessionName,
    },
    /// A node's `nodes/<node-id>.json`.
    NodeMeta {
        /// Namespace and cluster.
        meta: MetaRef,
        /// The session.
        session: SessionName,
        /// The node.
        node: NodeId,
    },
}

impl Key {
    /// Parses a key relative to the storage prefix. Only keys in the form this crate writes
    /// are accepted: one that names the same thing spelled differently (a raw `"` where
    /// [`Key::to_path`] writes `%22`) is unknown, so a parsed key always leads back to its
    /// object.
    pub fn parse(path: &Path) -> Result<Self> {
        let key = Self::parse_parts(path)?;
        if key.to_path() != *path {
            return Err(LayoutError::UnknownKey(path.as_ref().to_string()));
        }
        Ok(key)
    }

    fn parse_parts(path: &Path) -> Result<Self> {
        let raw = path.as_ref();
        let unknown = || LayoutError::UnknownKey(raw.to_string());
        // `Path` stores parts percent-encoded (`#` is `%23`); names are compared decoded.
        let decoded: Vec<String> = path
            .parts()
            .map(|part| {
                percent_encoding::percent_decode_str(part.as_ref())
                    .decode_utf8()
                    .map(|s| s.into_owned())
                    .map_err(|_| unknown())
            })
            .collect::<Result<_>>()?;
        let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
        match parts.as_slice() {
            [LOG_ROOT, cluster, session, LOGS_DIR, node, rest @ ..] if !rest.is_empty() => {
                let relative = rest.join("/");
                split_relative(&relative)?;
                Ok(Key::LogFile {
                    cluster: ClusterRef::parse_segment(cluster)?,
                    session: SessionName::new(session)?,
                    node: NodeId::new(node)?,
                    relative,
                })
            }
            [LOG_ROOT, cluster, session, NODE_EVENTS_DIR, file] => {
                let stem = file.strip_suffix(".json").ok_or_else(unknown)?;
                let (node, millis) = stem.rsplit_once('-').ok_or_else(unknown)?;
                Ok(Key::NodeEvents {
                    cluster: ClusterRef::parse_segment(cluster)?,
                    session: SessionName::new(session)?,
                    node: NodeId::new(node)?,
                    unix_millis: millis.parse().map_err(|_| unknown())?,
                })
            }
            [
                LOG_ROOT,
                cluster,
                session,
                STAGING_DIR,
                node,
                kind,
                rest @ ..,
            ] if !rest.is_empty() && (*kind == LOGS_DIR || *kind == NODE_EVENTS_DIR) => {
                let of = format!("{kind}/{}", rest.join("/"));
                split_relative(&of)?;
                Ok(Key::Staging {
                    cluster: ClusterRef::parse_segment(cluster)?,
                    session: SessionName::new(session)?,
                    node: NodeId::new(node)?,
                    of,
                })
            }
            [LOG_ROOT, cluster, session, SNAPSHOT_DIR, file] => {
                let kind = file
                    .strip_suffix(".jsonl")
                    .and_then(SnapshotKind::from_name)
                    .ok_or_else(unknown)?;
                Ok(Key::Snapshot {
                    cluster: ClusterRef::parse_segment(cluster)?,
                    session: SessionName::new(session)?,
                    kind,
                })
            }
            [LOG_ROOT, cluster, session, INDEX_DIR, file] => {
                let (version, fingerprint) = file
                    .strip_suffix(INDEX_EXTENSION)
                    .and_then(|f| f.strip_suffix('.'))
                    .and_then(|f| f.strip_prefix('v'))
                    .and_then(|f| f.split_once('-'))
                    .filter(|(_, fp)| fp.len() == 16)
                    .ok_or_else(unknown)?;
                Ok(Key::SessionIndex {
                    cluster: ClusterRef::parse_segment(cluster)?,
                    session: SessionName::new(session)?,
                    version: version.parse().map_err(|_| unknown())?,
                    fingerprint: u64::from_str_radix(fingerprint, 16).map_err(|_| unknown())?,
                })
            }
            [META_ROOT, meta, session, METADATA_FILE] => Ok(Key::Metadata {
                meta: MetaRef::parse_segment(meta)?,
                session: SessionName::new(session)?,
            }),
            [META_ROOT, meta, session, NODES_DIR, file] => {
                let node = file.strip_suffix(".json").ok_or_else(unknown)?;
                Ok(Key::NodeMeta {
                    meta: MetaRef::parse_segment(meta)?,
                    session: SessionName::new(session)?,
                    node: NodeId::new(node)?,
                })
            }
            _ => Err(unknown()),
        }
    }

    /// Builds the key back into a path.
    pub fn to_path(&self) -> Path {
        match self {
            Key::LogFile {
                cluster,
                session,
                node,
                relative,
            } => cluster
                .log_file(session, node, relative)
                .expect("relative path was validated when parsed"),
            Key::NodeEvents {
                cluster,
                session,
                node,
                unix_millis,
            } => cluster.node_events(session, node, *unix_millis),
            Key::Snapshot {
                cluster,
                session,
                kind,
            } => cluster.snapshot(session, *kind),
            Key::Staging {
                cluster,
                session,
                node,
                of,
            } => {
                let mut all = vec![
                    LOG_ROOT.to_string(),
                    cluster.segment(),
                    session.to_string(),
                    STAGING_DIR.to_string(),
                    node.to_string(),
                ];
                let parts = split_relative(of).expect("staged path was validated when built");
                all.extend(parts.into_iter().map(str::to_string));
                Path::from_iter(all)
            }
            Key::SessionIndex {
                cluster,
                session,
                version,
                fingerprint,
            } => cluster.session_index(session, *version, *fingerprint),
            Key::Metadata { meta, session } => meta.metadata(session),
            Key::NodeMeta {
                meta,
                session,
                node,
            } => meta.node(session, node),
        }
    }
}

impl Key {
    /// Where the collector stages a new content of this object: log files and events objects
    /// only (`None` for the others, which are written whole).
    pub fn staging(&self) -> Option<Path> {
        let (cluster, session, node, of) = match self {
            Key::LogFile {
                cluster,
                session,
                node,
                relative,
            } => (
                cluster,
                session,
                node,
                format!("{LOGS_DIR}/{node}/{relative}"),
            ),
            Key::NodeEvents {
                cluster,
                session,
                node,
                unix_millis,
            } => (
                cluster,
                session,
                node,
                format!("{NODE_EVENTS_DIR}/{node}-{unix_millis}.json"),
            ),
            _ => return None,
        };
        Some(
            Key::Staging {
                cluster: cluster.clone(),
                session: session.clone(),
                node: node.clone(),
                of,
            }
            .to_path(),
        )
    }
}

/// `Content-Type` for an object, from its key: logs are text, events JSON Lines.
pub fn content_type(path: &Path) -> &'static str {
    let raw = path.as_ref();
    if raw.starts_with(META_ROOT) {
        "application/json"
    } else if raw.contains("/node_events/") || raw.contains("/snapshot/") {
        "application/x-ndjson"
    } else if raw.ends_with(INDEX_EXTENSION) && raw.contains("/index/") {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeId {
        NodeId::new("2c19cf3212f28247c3219bcfea6f3840dda46c43df2052e23770e17e").unwrap()
    }
    fn session() -> SessionName {
        SessionName::new("session_2026-11-21_04-23-31_898414_12602").unwrap()
    }

    #[test]
    fn every_key_round_trips() {
        let cluster = ClusterRef::new("my_cluster", "5f1c-uid").unwrap();
        let meta = MetaRef::new("ray-system", "my_cluster").unwrap();
        let keys = [
            cluster
                .log_file(&session(), &node(), "events/event_RAYLET.log")
                .unwrap(),
            cluster
                .log_file(&session(), &node(), "raylet.out.1")
                .unwrap(),
            cluster.node_events(&session(), &node(), 1_763_700_000_000),
            cluster.snapshot(&session(), SnapshotKind::PlacementGroups),
            cluster.session_index(&session(), 1, 0x00ab_cdef_0123_4567),
            Key::parse(&cluster.node_events(&session(), &node(), 7))
                .unwrap()
                .staging()
                .unwrap(),
            meta.metadata(&session()),
            meta.node(&session(), &node()),
        ];
        for key in keys {
            let parsed = Key::parse(&key).unwrap();
            assert_eq!(parsed.to_path(), key, "{key}");
        }
    }

    #[test]
    fn file_names_with_special_characters_round_trip() {
        let cluster = ClusterRef::new("a", "local").unwrap();
        for relative in [
            "odd/a#b%c.log",
            "spaces in name.txt",
            "ünïcödé.log",
            "x{1}[2].out",
        ] {
            let key = cluster.log_file(&session(), &node(), relative).unwrap();
            let Key::LogFile { relative: back, .. } = Key::parse(&key).unwrap() else {
                panic!("{key}")
            };
            assert_eq!(back, relative);
            assert_eq!(Key::parse(&key).unwrap().to_path(), key);
        }
        // The same name spelled raw (found by fuzzing): not a key this crate wrote.
        let raw = Path::parse(format!(
            "log/a_local/{}/logs/{}/x{{1}}.out",
            session(),
            node()
        ))
        .unwrap();
        assert!(matches!(Key::parse(&raw), Err(LayoutError::UnknownKey(_))));
    }

    #[test]
    fn keys_have_the_documented_shape() {
        let cluster = ClusterRef::new("raycluster-a", "local").unwrap();
        let meta = MetaRef::new("default", "raycluster-a").unwrap();
        let n = node();
        assert_eq!(
            cluster
                .log_file(&session(), &n, "jobs/supervisor-x.log")
                .unwrap()
                .as_ref(),
            format!(
                "log/raycluster-a_local/{}/logs/{n}/jobs/supervisor-x.log",
                session()
            )
        );
        assert_eq!(
            cluster.node_events(&session(), &n, 42).as_ref(),
            format!(
                "log/raycluster-a_local/{}/node_events/{n}-42.json",
                session()
            )
        );
        assert_eq!(
            cluster.snapshot(&session(), SnapshotKind::Tasks).as_ref(),
            format!("log/raycluster-a_local/{}/snapshot/tasks.jsonl", session())
        );
        assert_eq!(
            meta.metadata(&session()).as_ref(),
            format!("metadir/default_raycluster-a/{}/metadata.json", session())
        );
        assert_eq!(
            meta.node(&session(), &n).as_ref(),
            format!("metadir/default_raycluster-a/{}/nodes/{n}.json", session())
        );
    }

    #[test]
    fn staging_keys_are_beside_the_logs_and_parse_as_staging_only() {
        let cluster = ClusterRef::new("raycluster-a", "local").unwrap();
        let n = node();
        let log = cluster.log_file(&session(), &n, "odd/a#b.log").unwrap();
        let staged = Key::parse(&log).unwrap().staging().unwrap();
        assert_eq!(
            staged.as_ref(),
            format!(
                "log/raycluster-a_local/{}/staging/{n}/logs/{n}/odd/a%23b.log",
                session()
            )
        );
        assert!(
            staged
                .as_ref()
                .starts_with(cluster.node_staging_prefix(&session(), &n).as_ref())
        );
        assert!(matches!(Key::parse(&staged).unwrap(), Key::Staging { .. }));
        assert_eq!(Key::parse(&staged).unwrap().to_path(), staged);
        let events = cluster.node_events(&session(), &n, 42);
        let staged = Key::parse(&events).unwrap().staging().unwrap();
        assert_eq!(content_type(&staged), "application/x-ndjson");
        assert_eq!(
            content_type(&Key::parse(&log).unwrap().staging().unwrap()),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            Key::parse(&MetaRef::new("d", "a").unwrap().metadata(&session()))
                .unwrap()
                .staging(),
            None
        );
        assert!(
            Key::parse(&Path::from(format!(
                "log/a_local/{}/staging/{n}/other/x",
                session()
            )))
            .is_err()
        );
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(ClusterRef::new("", "local").is_err());
        assert!(ClusterRef::new("a", "with_underscore").is_err());
        assert!(MetaRef::new("ns_x", "a").is_err());
        assert!(SessionName::new("..").is_err());
        assert!(SessionName::new("not-a-session").is_err());
        assert!(NodeId::new("abc").is_err());
        assert!(NodeId::new(&"G".repeat(56)).is_err());
        let cluster = ClusterRef::new("a", "local").unwrap();
        for bad in ["../x", "a//b", "a/./b", "", "a\nb", "a\\b", "/abs"] {
            assert!(
                cluster.log_file(&session(), &node(), bad).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn foreign_keys_are_unknown() {
        for raw in [
            "other/x",
            "log/a_local",
            "metadir/default_a/session_x/other.json",
            "log/a_local/session_x/node_events/nope.json",
        ] {
            assert!(Key::parse(&Path::from(raw)).is_err(), "{raw}");
        }
    }

    #[test]
    fn content_types_follow_the_key() {
        let cluster = ClusterRef::new("a", "local").unwrap();
        let meta = MetaRef::new("default", "a").unwrap();
        assert_eq!(content_type(&meta.metadata(&session())), "application/json");
        assert_eq!(
            content_type(&cluster.node_events(&session(), &node(), 1)),
            "application/x-ndjson"
        );
        assert_eq!(
            content_type(&cluster.log_file(&session(), &node(), "raylet.out").unwrap()),
            "text/plain; charset=utf-8"
        );
    }
}
