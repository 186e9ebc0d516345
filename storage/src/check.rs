//! `check`: tests the configured storage end to end — open it (creating the container when
//! allowed), write a probe object, read it back, find it by listing, delete it — so that a
//! wrong key, a missing container or an unreachable endpoint shows up before a cluster runs.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use rand::Rng;

use crate::config::StorageConfig;
use crate::error::{Error, Result};
use crate::store::Storage;

/// Folder (under the storage prefix) that holds probe objects while a check runs.
pub const PROBE_DIR: &str = ".ray-history-check";

/// One step of a check that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStep {
    /// What was done (`open`, `write`, `read`, `list`, `delete`).
    pub name: &'static str,
    /// What it did, e.g. the probe's key.
    pub detail: String,
    /// How long it took.
    pub elapsed: Duration,
}

/// The outcome of a check that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The storage checked, without secrets.
    pub storage: String,
    /// Every step, in order.
    pub steps: Vec<CheckStep>,
}

/// Runs the check; the error is the first step that failed (its message names the step).
pub async fn run(config: &StorageConfig) -> Result<CheckReport> {
    run_with(config, |_| {}).await
}

/// Like [`run`], calling `on_step` after each step that passed (for live output).
pub async fn run_with(
    config: &StorageConfig,
    mut on_step: impl FnMut(&CheckStep),
) -> Result<CheckReport> {
    let mut steps = Vec::new();
    let mut record = |name, detail: String, started: Instant| {
        let step = CheckStep {
            name,
            detail,
            elapsed: started.elapsed(),
        };
        on_step(&step);
        steps.push(step);
    };

    let started = Instant::now();
    let storage = Storage::open(config).await?;
    record("open", storage.describe().to_string(), started);

    let key = Path::from(PROBE_DIR).join(format!("{:016x}", rand::rng().random::<u64>()));
    let body = Bytes::from(format!("ray-history storage check {key}\n"));

    let started = Instant::now();
    storage.put(&key, body.clone()).await?;
    record("write", format!("{key} ({} bytes)", body.len()), started);

    let started = Instant::now();
    let read = storage.get(&key).await?;
    if read != body {
        return Err(failed(
            "read",
            &key,
            "the probe read back differs from what was written",
        ));
    }
    record("read", format!("{key} matches"), started);

    let started = Instant::now();
    let prefix = Path::from(PROBE_DIR);
    let listed: Vec<_> = storage.list(Some(&prefix)).try_collect().await?;
    if !listed.iter().any(|meta| meta.location == key) {
        return Err(failed(
            "list",
            &prefix,
            "the probe is missing from the listing",
        ));
    }
    record(
        "list",
        format!("{prefix}/ has {} object(s)", listed.len()),
        started,
    );

    let started = Instant::now();
    storage.delete(&key).await?;
    if storage.head(&key).await?.is_some() {
        return Err(failed(
            "delete",
            &key,
            "the probe still exists after delete",
        ));
    }
    record("delete", key.to_string(), started);

    Ok(CheckReport {
        storage: storage.describe().to_string(),
        steps,
    })
}

fn failed(operation: &'static str, key: &Path, message: &str) -> Error {
    Error::backend(operation, key.to_string(), message, false)
}
