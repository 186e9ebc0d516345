//! [`Key`]: any object key, parsed back into what it is ([`Key::parse`] accepts only the
//! canonical form the builders make).

use object_store::path::Path;

use super::*;

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
