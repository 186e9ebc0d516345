//! Building a session's task rows on local disk instead of in memory, for the session index:
//! builders hand their rows over in chunks, split by task id into [`PARTITIONS`]; each
//! partition is then merged, finished and sorted alone, and the sorted partitions are merged
//! into row order. Memory is bounded by a partition and a chunk per partition, whatever the
//! session's size. The first [`HOLD_ROWS`] merged rows stay in memory, so that a session that
//! small never touches the disk.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use rayon::prelude::*;

use super::Task;
use super::task::TaskRows;
use crate::ids::TaskId;

/// Partitions of the rows; a partition is merged in memory (a 10M-task session gives
/// partitions of about 160k rows).
pub const PARTITIONS: usize = 64;
/// Rows a builder holds before they go to disk.
pub const SPILL_ROWS: usize = 16_384;
/// Merged rows held in memory before the first chunk goes to disk (about 100 MiB).
pub const HOLD_ROWS: usize = 131_072;
/// Rows per chunk of a sorted partition.
const RUN_CHUNK: usize = 1024;

/// The partition of a task: all attempts of a task land in the same one.
fn partition_of(id: &TaskId) -> usize {
    let word = |i: usize| u64::from_le_bytes(id.0[i..i + 8].try_into().expect("8 bytes"));
    let mixed = (word(0) ^ word(8).rotate_left(21) ^ word(16).rotate_left(42))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> 58) as usize % PARTITIONS
}

/// An unlinked scratch file of row chunks, each postcard-encoded, by partition.
struct ChunkFile {
    file: File,
    state: Mutex<ChunkState>,
}

struct ChunkState {
    len: u64,
    chunks: Vec<Vec<(u64, u32)>>,
    error: Option<io::Error>,
}

impl ChunkFile {
    fn new(dir: &Path) -> io::Result<Self> {
        Ok(ChunkFile {
            file: tempfile::tempfile_in(dir)?,
            state: Mutex::new(ChunkState {
                len: 0,
                chunks: vec![Vec::new(); PARTITIONS],
                error: None,
            }),
        })
    }

    /// Appends a chunk to a partition. A failure is kept for [`ChunkFile::check`], so that
    /// parsers need not handle it on every row.
    fn append(&self, partition: usize, rows: &[Task]) {
        let encoded = postcard::to_stdvec(rows).map_err(io::Error::other);
        let mut state = self.state.lock().expect("chunk file lock");
        if state.error.is_some() {
            return;
        }
        let written = encoded.and_then(|bytes| {
            let at = state.len;
            self.file.write_all_at(&bytes, at)?;
            Ok((at, bytes.len() as u32))
        });
        match written {
            Ok((at, len)) => {
                state.len += u64::from(len);
                state.chunks[partition].push((at, len));
            }
            Err(e) => state.error = Some(e),
        }
    }

    fn check(&self) -> io::Result<()> {
        match self.state.lock().expect("chunk file lock").error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn chunks(&self, partition: usize) -> Vec<(u64, u32)> {
        self.state.lock().expect("chunk file lock").chunks[partition].clone()
    }

    fn read(&self, (at, len): (u64, u32)) -> io::Result<Vec<Task>> {
        let mut bytes = vec![0u8; len as usize];
        self.file.read_exact_at(&mut bytes, at)?;
        postcard::from_bytes(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// Where builders put their task rows while a session is indexed (shared by every builder
/// of one load).
pub struct TaskSpill {
    rows: ChunkFile,
    /// Rows not yet on disk, merged by partition; `None` once the spill has gone to disk.
    held: Mutex<Option<Vec<TaskRows>>>,
    dir: std::path::PathBuf,
}

impl std::fmt::Debug for TaskSpill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSpill").field("dir", &self.dir).finish()
    }
}

impl TaskSpill {
    /// A spill in a new unlinked file in `dir`.
    pub fn new(dir: &Path) -> io::Result<Self> {
        Ok(TaskSpill {
            rows: ChunkFile::new(dir)?,
            held: Mutex::new(Some((0..PARTITIONS).map(|_| TaskRows::default()).collect())),
            dir: dir.to_path_buf(),
        })
    }

    /// Takes rows over: held in memory while fewer than [`HOLD_ROWS`], else moved to disk,
    /// each to its partition.
    pub(super) fn put(&self, tasks: Vec<Task>) {
        let mut held = self.held.lock().expect("spill lock");
        if let Some(parts) = held.as_mut() {
            for task in tasks {
                parts[partition_of(&task.task_id)].add(task);
            }
            if parts.iter().map(TaskRows::len).sum::<usize>() < HOLD_ROWS {
                return;
            }
            let parts = held.take().expect("held rows");
            drop(held);
            for (partition, mut rows) in parts.into_iter().enumerate() {
                self.append(partition, &rows.take());
            }
            return;
        }
        drop(held);
        let mut parts: Vec<Vec<Task>> = (0..PARTITIONS).map(|_| Vec::new()).collect();
        for task in tasks {
            parts[partition_of(&task.task_id)].push(task);
        }
        for (partition, rows) in parts.iter().enumerate() {
            self.append(partition, rows);
        }
    }

    fn append(&self, partition: usize, rows: &[Task]) {
        if !rows.is_empty() {
            self.rows.append(partition, rows);
        }
    }

    /// Merges one partition's rows: every update of an attempt into one row.
    fn merged(&self, partition: usize) -> io::Result<Vec<Task>> {
        let mut merged = TaskRows::default();
        for chunk in self.rows.chunks(partition) {
            for task in self.rows.read(chunk)? {
                merged.add(task);
            }
        }
        Ok(merged.into_vec())
    }

    /// Finishes the spilled rows and `last` (rows never spilled): `finish` turns all the
    /// rows of some tasks into their finished rows in row order; every finished row is passed
    /// to `sink` in row order (creation time, task id, attempt).
    pub(super) fn finish(
        &self,
        last: Vec<Task>,
        finish: impl Fn(Vec<Task>) -> Vec<Task> + Sync,
        mut sink: impl FnMut(Task) -> io::Result<()>,
    ) -> io::Result<()> {
        let started = std::time::Instant::now();
        self.put(last);
        let held = self.held.lock().expect("spill lock").take();
        if let Some(parts) = held {
            // Never went to disk: the partitions are disjoint, so their rows finish as one.
            let rows: Vec<Task> = parts.into_iter().flat_map(TaskRows::into_vec).collect();
            let count = rows.len();
            finish(rows).into_iter().try_for_each(sink)?;
            tracing::info!(
                rows = count,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "session index: task rows finished in memory"
            );
            return Ok(());
        }
        self.rows.check()?;
        let runs = self.sorted_partitions(&finish)?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "session index: task rows merged and sorted by partition"
        );
        let rows = merge_runs(&runs, &mut sink)?;
        tracing::info!(
            rows,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "session index: task rows written in order"
        );
        Ok(())
    }

    /// Merges, finishes and sorts each partition (in parallel), into a file of sorted runs.
    fn sorted_partitions(
        &self,
        finish: &(impl Fn(Vec<Task>) -> Vec<Task> + Sync),
    ) -> io::Result<ChunkFile> {
        let runs = ChunkFile::new(&self.dir)?;
        (0..PARTITIONS).into_par_iter().try_for_each(|partition| {
            let rows = finish(self.merged(partition)?);
            for chunk in rows.chunks(RUN_CHUNK) {
                runs.append(partition, chunk);
            }
            Ok::<_, io::Error>(())
        })?;
        runs.check()?;
        Ok(runs)
    }
}

/// One sorted partition, read a chunk at a time.
struct Run<'a> {
    file: &'a ChunkFile,
    chunks: std::vec::IntoIter<(u64, u32)>,
    rows: std::vec::IntoIter<Task>,
}

impl Run<'_> {
    fn next(&mut self) -> io::Result<Option<Task>> {
        loop {
            if let Some(task) = self.rows.next() {
                return Ok(Some(task));
            }
            match self.chunks.next() {
                Some(chunk) => self.rows = self.file.read(chunk)?.into_iter(),
                None => return Ok(None),
            }
        }
    }
}

/// Merges the sorted runs into one sequence in row order; returns the number of rows.
fn merge_runs(runs: &ChunkFile, sink: &mut impl FnMut(Task) -> io::Result<()>) -> io::Result<u64> {
    let mut cursors: Vec<Run> = (0..PARTITIONS)
        .map(|p| Run {
            file: runs,
            chunks: runs.chunks(p).into_iter(),
            rows: Vec::new().into_iter(),
        })
        .collect();
    let mut heads: Vec<Option<Task>> = Vec::with_capacity(PARTITIONS);
    let mut heap = BinaryHeap::with_capacity(PARTITIONS);
    for (i, cursor) in cursors.iter_mut().enumerate() {
        let head = cursor.next()?;
        if let Some(task) = &head {
            heap.push(Reverse((task.row_key(), i)));
        }
        heads.push(head);
    }
    let mut rows = 0;
    while let Some(Reverse((_, i))) = heap.pop() {
        let task = heads[i].take().expect("a queued run has a head");
        let next = cursors[i].next()?;
        if let Some(next) = &next {
            heap.push(Reverse((next.row_key(), i)));
        }
        heads[i] = next;
        sink(task)?;
        rows += 1;
    }
    Ok(rows)
}
