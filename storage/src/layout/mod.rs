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

mod folders;
mod key;
mod names;

use object_store::path::Path;

pub use folders::{ClusterRef, MetaRef, SnapshotKind};
pub use key::Key;
use names::check_segment;
pub use names::{ClusterId, ClusterName, Namespace, NodeId, SessionName};

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

/// Splits and validates a relative path inside a node's `logs/` dir.
pub fn split_relative(relative: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = relative.split('/').collect();
    for part in &parts {
        check_segment("log file path segment", part)?;
    }
    Ok(parts)
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
