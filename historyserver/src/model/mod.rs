//! The typed state of one Ray session, built from events: tasks (one row per attempt),
//! actors, driver and submission jobs, nodes and cluster events.
//!
//! Parsers feed updates into a [`Builder`]; builders of different files are merged with
//! [`Builder::merge`]. Every rule is order-independent, so any event order and any split of
//! the events across files gives the same [`Session`]:
//! - per task attempt and state, the earliest timestamp is kept; the current state is the one
//!   with the latest timestamp (ties go to the later state in Ray's state order);
//! - fields that describe an execution (node, worker, error, log offsets) come from the update
//!   with the latest timestamp, ties broken by value;
//! - definition fields take the first non-empty value, two different values resolve to the
//!   smaller one;
//! - actors, jobs and nodes pick their latest snapshot by (timestamp, progress rank); an
//!   actor state seen again counts from when it was first seen;
//! - head snapshots (`snapshot/*.jsonl`) feed the same updates; their rows of kinds without
//!   events keep the newest per id.

use std::sync::Arc;

pub use actor::{Actor, ActorDefinition, ActorState, ActorTransition, ActorUpdate};
pub use builder::{Builder, INFERRED_AT_END};
pub use job::{DriverJob, JobStatus, SubmissionJob};
pub use node::{ClusterEvent, Node, NodeState};
pub use session::{LoadStats, Session, SessionRest};
pub use table::TaskTable;
pub use task::{
    Definition, ErrorInfo, Profile, ProfileEvent, TASK_STATES, Task, TaskDefinition, TaskLogInfo,
    TaskState, TaskType, TaskUpdate,
};

mod actor;
mod builder;
mod job;
mod node;
mod session;
pub mod spill;
pub mod table;
mod task;

/// Interned text shared by many rows (function names, resource maps, runtime envs).
pub type Text = Arc<str>;

/// Texts a thread decoded lately, shared by the rows it decodes next.
const RECENT_TEXTS: usize = 4096;

/// Deserializes a [`Text`], sharing one allocation with an equal text this thread decoded
/// lately: decoded rows (spilled rows, index blocks) repeat the same few names, resource maps
/// and file names, and allocating each of them anew for every row was a large part of
/// building an index.
fn recent_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = Text;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Text, E> {
            thread_local! {
                static RECENT: std::cell::RefCell<foldhash::HashSet<Text>> = Default::default();
            }
            Ok(RECENT.with_borrow_mut(|recent| {
                if let Some(found) = recent.get(text) {
                    return found.clone();
                }
                if recent.len() >= RECENT_TEXTS {
                    recent.clear();
                }
                let new = Text::from(text);
                recent.insert(new.clone());
                new
            }))
        }
    }
    deserializer.deserialize_str(Visitor)
}

/// Keeps `new` (carried by an update stamped `new_stamp`) over `slot` when its update is
/// later; equal stamps are broken by value, so the result never depends on the order.
fn take_stamped<T: PartialOrd>(
    slot: &mut Option<T>,
    stamp: &mut u64,
    new: Option<T>,
    new_stamp: u64,
) {
    let Some(new) = new else { return };
    let keep_old = match slot.as_ref() {
        Some(old) => (*stamp, old) >= (new_stamp, &new),
        None => false,
    };
    if !keep_old {
        *slot = Some(new);
        *stamp = new_stamp;
    }
}

fn take_text(slot: &mut Text, new: Text) {
    if new.is_empty() {
        return;
    }
    if slot.is_empty() || new < *slot {
        *slot = new;
    }
}

fn take_opt<T: Ord + Copy>(slot: &mut Option<T>, new: Option<T>) {
    if let Some(new) = new {
        match slot {
            Some(old) if *old <= new => {}
            _ => *slot = Some(new),
        }
    }
}

/// JSON values as their text in the session index (binary formats cannot hold `Value`).
pub(crate) mod json_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &serde_json::Value, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<serde_json::Value, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}
