//! `ray-history-collector sync <session-dir>`: uploads a session dir once, in parallel, and
//! writes its metadata as finished (backfill of sessions that ran without a collector).
//!
//! Files are uploaded whole (one PUT, or a streamed multipart upload for big files), with a
//! memory budget so that a few very large files and many small ones together stay within a few
//! tens of MiB. Objects already equal to their files are skipped, so a sync can be re-run.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::Semaphore;

use crate::config::SyncArgs;
use crate::discovery::{self, SessionDir};
use crate::engine::{open_storage, retry_policy};
use crate::metadata_writer::Publisher;
use crate::metrics::Metrics;
use crate::tracker::Tracked;
use crate::uploader::{Job, Mode, Uploader};
use crate::{Error, Result};

/// Memory the uploads in flight may hold, in MiB.
const MEMORY_BUDGET_MIB: u32 = 40;
/// What one multipart upload holds (its part buffer and the parts in flight), in MiB.
const LARGE_FILE_MIB: u32 = 26;
// An upload costing more than the whole budget would wait forever.
const _: () = assert!(LARGE_FILE_MIB <= MEMORY_BUDGET_MIB);

/// What a sync uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Files found under `logs/`.
    pub files: usize,
    /// Their total size.
    pub bytes: u64,
}

/// Uploads `args.session_dir` and writes its metadata.
pub async fn run(args: SyncArgs) -> Result<Summary> {
    let node = args.identity.resolve()?;
    let config = args
        .storage
        .resolve()
        .map_err(ray_history_storage::Error::from)?;
    let session = SessionDir::open(&args.session_dir)?;
    let Some(node_id) = session.node.clone() else {
        return Err(Error::Config {
            setting: "session-dir",
            problem: format!("{} has no *_port_<node-id> file", session.dir.display()),
        });
    };
    let storage = open_storage(&config).await?;
    let policy = retry_policy(std::time::Duration::from_secs(30));
    let uploader = Uploader::new(storage, policy, Metrics::new());
    // Whole-file uploads even on Azure: one request per small file, and dead sessions do
    // not grow.
    let uploader = uploader.with_mode(Mode::Reupload);
    let logs = session.logs_dir();
    let files = tokio::task::spawn_blocking(move || discovery::log_files(&logs))
        .await
        .expect("scanning does not panic");
    let summary = Summary {
        files: files.len(),
        bytes: files.iter().map(|f| f.stat.len).sum(),
    };
    let budget = Arc::new(Semaphore::new(MEMORY_BUDGET_MIB as usize));
    let mut jobs = Vec::with_capacity(files.len());
    for file in &files {
        jobs.push(Job {
            path: file.path.clone(),
            key: node
                .cluster
                .log_file(&session.name, &node_id, &file.relative)?,
            tracked: Tracked::new(file.stat.id),
            verified: false,
            limit: None,
            due: true,
            closing: true,
        });
    }
    let outcomes: Vec<_> = futures::stream::iter(jobs.into_iter().zip(&files))
        .map(|(job, file)| {
            let (uploader, cost) = (uploader.clone(), memory_cost(file.stat.len));
            let budget = Arc::clone(&budget);
            async move {
                let _permit = budget.acquire_many(cost).await.expect("never closed");
                uploader.run(job).await
            }
        })
        .buffer_unordered(usize::from(args.concurrency))
        .collect()
        .await;
    if let Some(error) = outcomes.into_iter().find_map(|o| o.error) {
        return Err(error);
    }
    let end = files
        .iter()
        .map(|f| f.stat.mtime_ns)
        .max()
        .map(DateTime::from_timestamp_nanos)
        .unwrap_or_else(Utc::now);
    let publisher = Publisher::new(uploader, node);
    let mut record = publisher
        .first_sight(
            &session.name,
            &node_id,
            discovery::ray_version(&session.dir),
        )
        .await?;
    record.ray_version = record
        .ray_version
        .or_else(|| discovery::ray_version(&session.dir));
    publisher.write(&record, Some(end)).await?;
    Ok(summary)
}

/// MiB of the memory budget an upload of `len` bytes takes: small files are read whole
/// (and copied once into the request), large ones are streamed in parts.
fn memory_cost(len: u64) -> u32 {
    let mib = len.div_ceil(1024 * 1024) as u32;
    if mib > 8 {
        LARGE_FILE_MIB
    } else {
        (2 * mib).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_costs_fit_the_budget() {
        assert_eq!(memory_cost(0), 1);
        assert_eq!(memory_cost(100), 2);
        assert_eq!(memory_cost(8 * 1024 * 1024), 16);
        assert_eq!(memory_cost(200 * 1024 * 1024), LARGE_FILE_MIB);
    }
}
