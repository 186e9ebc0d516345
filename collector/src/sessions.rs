//! The sessions this node collects: found under `RAY_TMP_ROOT` (the events receiver learns of
//! them, and staging objects a crashed run left are deleted), announced in `metadir/` at first
//! sight, refreshed on the heartbeat, and finalised: a session left from an earlier Ray run
//! once its files are all in storage, the live one when the collector stops.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use ray_history_storage::layout::{ClusterRef, NodeId, SessionName};

use crate::Result;
use crate::config::Node;
use crate::discovery;
use crate::event_receiver::{Known, SharedKnown};
use crate::files::Files;
use crate::metadata_writer::{Publisher, SessionRecord};
use crate::uploader::Uploader;

struct Session {
    record: SessionRecord,
    dir: PathBuf,
    announced: bool,
}

/// The sessions found so far and the metadata written for them.
pub(crate) struct Sessions {
    root: PathBuf,
    cluster: ClusterRef,
    uploader: Uploader,
    publisher: Publisher,
    known: SharedKnown,
    found: BTreeMap<SessionName, Session>,
    finished: BTreeSet<String>,
    heartbeat_interval: Duration,
    last_heartbeat: Instant,
}

impl Sessions {
    /// None found yet under `root`; `finished` are the sessions finalised by earlier runs.
    pub(crate) fn new(
        root: PathBuf,
        node: Node,
        uploader: Uploader,
        known: SharedKnown,
        finished: BTreeSet<String>,
        heartbeat_interval: Duration,
    ) -> Sessions {
        Sessions {
            root,
            cluster: node.cluster.clone(),
            publisher: Publisher::new(uploader.clone(), node),
            uploader,
            known,
            found: BTreeMap::new(),
            finished,
            heartbeat_interval,
            last_heartbeat: Instant::now(),
        }
    }

    /// Lists the session dirs and takes up the new ones.
    pub(crate) async fn discover(&mut self) -> Result<()> {
        let root = self.root.clone();
        let found = tokio::task::spawn_blocking(move || discovery::sessions(&root))
            .await
            .expect("listing does not panic")?;
        let latest = discovery::latest(&self.root);
        let mut new = Vec::new();
        for dir in found {
            let Some(node) = dir.node.clone() else {
                continue;
            };
            if self.found.contains_key(&dir.name) {
                continue;
            }
            let version = discovery::ray_version(&dir.dir);
            match self.publisher.first_sight(&dir.name, &node, version).await {
                Ok(record) => {
                    tracing::info!(session = %dir.name, node = %node, "found session");
                    new.push((dir.name.clone(), node));
                    self.found.insert(
                        dir.name.clone(),
                        Session {
                            record,
                            dir: dir.dir,
                            announced: false,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(session = %dir.name, error = %e, "cannot read session metadata; retrying")
                }
            }
        }
        let known = Known {
            live: latest.and_then(|l| self.found.get(&l).map(|s| (l, s.record.node.clone()))),
            nodes: self
                .found
                .iter()
                .map(|(name, s)| (name.clone(), s.record.node.clone()))
                .collect(),
        };
        *self.known.write().expect("known sessions lock") = known;
        // After the receiver learnt of the sessions: it answers 503 until then.
        for (session, node) in new {
            self.clear_staging(&session, &node).await;
        }
        Ok(())
    }

    /// Deletes the staging objects an earlier run of this node left in a session (it crashed
    /// in a rewrite; none of this run's rewrites has started there yet).
    async fn clear_staging(&self, session: &SessionName, node: &NodeId) {
        let prefix = self.cluster.node_staging_prefix(session, node);
        let storage = self.uploader.storage();
        let listed: std::result::Result<Vec<_>, _> =
            storage.list(Some(&prefix)).try_collect().await;
        let objects = match listed {
            Ok(objects) => objects,
            Err(e) => {
                tracing::warn!(session = %session, error = %e, "cannot list staging objects");
                return;
            }
        };
        for object in objects {
            match self
                .uploader
                .call("delete", || storage.delete(&object.location))
                .await
            {
                Ok(()) => {
                    tracing::info!(key = %object.location, "deleted a staging object left by a crash")
                }
                Err(e) => {
                    tracing::warn!(key = %object.location, error = %e, "cannot delete a staging object")
                }
            }
        }
    }

    fn live(&self) -> Option<SessionName> {
        self.known
            .read()
            .expect("known sessions lock")
            .live
            .as_ref()
            .map(|(s, _)| s.clone())
    }

    /// Whether the session was found.
    pub(crate) fn contains(&self, name: &SessionName) -> bool {
        self.found.contains_key(name)
    }

    /// Each session found, with its dir and this node's id in it.
    pub(crate) fn dirs(&self) -> impl Iterator<Item = (&SessionName, &Path, &NodeId)> {
        self.found
            .iter()
            .map(|(name, s)| (name, s.dir.as_path(), &s.record.node))
    }

    /// The sessions finalised so far (by this run or earlier ones).
    pub(crate) fn finished(&self) -> &BTreeSet<String> {
        &self.finished
    }

    /// Announces new sessions, refreshes the live one on the heartbeat, and finalises
    /// sessions left over from earlier Ray runs once their files are all in storage.
    pub(crate) async fn heartbeat(&mut self, entries: &Files) -> bool {
        let live = self.live();
        let beat = self.last_heartbeat.elapsed() >= self.heartbeat_interval;
        if beat {
            self.last_heartbeat = Instant::now();
        }
        let mut ok = true;
        for (name, session) in &mut self.found {
            let is_live = live.as_ref() == Some(name);
            let done = self.finished.contains(name.as_str());
            let caught_up = entries
                .values()
                .filter(|e| &e.session == name)
                .all(|e| e.verified && !e.needs_work());
            if session.record.ray_version.is_none() && (beat || !session.announced) {
                session.record.ray_version = discovery::ray_version(&session.dir);
            }
            let write = if is_live {
                (beat || !session.announced).then_some(None)
            } else if !done && caught_up {
                Some(Some(last_write(entries, name)))
            } else {
                None
            };
            let Some(end) = write else { continue };
            match self.publisher.write(&session.record, end).await {
                Ok(()) => {
                    session.announced = true;
                    if end.is_some() {
                        tracing::info!(session = %name, "finalised a session left from an earlier run");
                        self.finished.insert(name.to_string());
                    }
                }
                Err(e) => {
                    ok = false;
                    tracing::warn!(session = %name, error = %e, "cannot write session metadata");
                }
            }
        }
        ok
    }

    /// Finalises the live session (this node is stopping).
    pub(crate) async fn finish(&mut self) {
        let Some(live) = self.live() else { return };
        let Some(session) = self.found.get(&live) else {
            return;
        };
        match self
            .publisher
            .write(&session.record, Some(Utc::now()))
            .await
        {
            Ok(()) => {
                tracing::info!(session = %live, "session finalised");
                self.finished.insert(live.to_string());
            }
            Err(e) => {
                tracing::error!(session = %live, error = %e, "cannot finalise session metadata")
            }
        }
    }
}

/// The newest modification time among a session's files (its end, for a dead session).
fn last_write(entries: &Files, name: &SessionName) -> DateTime<Utc> {
    entries
        .values()
        .filter(|e| &e.session == name)
        .map(|e| e.tracked.mtime_ns)
        .max()
        .filter(|ns| *ns > 0)
        .map(DateTime::from_timestamp_nanos)
        .unwrap_or_else(Utc::now)
}
