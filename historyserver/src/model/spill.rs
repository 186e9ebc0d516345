//! Building a session's task rows for the session index: builders hand their rows over in
//! chunks, split by task id into [`PARTITIONS`]. A session small enough (see
//! [`hold_rows_for`]) keeps them in memory, merged as they come; a bigger one moves them to
//! disk, and each partition is then merged, finished and sorted alone. Either way the sorted
//! partitions are merged into row order, and memory is bounded whatever the session's size.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;

use super::Task;
use super::task::TaskRows;
use crate::ids::TaskId;

/// Partitions of the rows; a partition is merged in memory (a 10M-task session gives
/// partitions of about 160k rows).
pub const PARTITIONS: usize = 64;
/// Rows a builder holds before they go to disk.
pub const SPILL_ROWS: usize = 16_384;
/// Merged rows a big session holds in memory before they go to disk (about 100 MiB).
pub const HOLD_ROWS: usize = 131_072;
/// Event bytes up to which a session's rows are all held in memory (about 1.3M tasks of
/// export events): the disk costs a build more than half of its time.
pub const HOLD_ALL_BYTES: u64 = 2 << 30;
/// Merged rows a session that small holds at most (about 900 MiB).
pub const HOLD_ALL_ROWS: usize = 1_500_000;
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
    /// Rows not yet on disk, merged, by partition: a lock each, so that parsers merging
    /// their rows at once rarely wait for each other.
    held: Vec<Mutex<TaskRows>>,
    /// Rows held so far (each attempt once).
    held_rows: AtomicUsize,
    /// Rows held before they all go to disk.
    hold_rows: usize,
    /// Set once the rows go to disk; rows merged in by a parser at that moment stay held
    /// until [`TaskSpill::finish`] moves them too.
    on_disk: AtomicBool,
    dir: std::path::PathBuf,
}

impl std::fmt::Debug for TaskSpill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSpill").field("dir", &self.dir).finish()
    }
}

/// Rows a session holds in memory before they go to disk, by the size of its event files:
/// up to [`HOLD_ALL_BYTES`] of events, all of them (up to [`HOLD_ALL_ROWS`]); a bigger
/// session holds [`HOLD_ROWS`].
pub fn hold_rows_for(event_bytes: u64) -> usize {
    if event_bytes <= HOLD_ALL_BYTES {
        HOLD_ALL_ROWS
    } else {
        HOLD_ROWS
    }
}

impl TaskSpill {
    /// A spill in a new unlinked file in `dir`, holding up to `hold_rows` merged rows in
    /// memory before it uses the file.
    pub fn new(dir: &Path, hold_rows: usize) -> io::Result<Self> {
        Ok(TaskSpill {
            rows: ChunkFile::new(dir)?,
            held: (0..PARTITIONS).map(|_| Mutex::default()).collect(),
            held_rows: AtomicUsize::new(0),
            hold_rows,
            on_disk: AtomicBool::new(false),
            dir: dir.to_path_buf(),
        })
    }

    /// Takes rows over, each to its partition: merged into the held rows while they are
    /// fewer than the spill holds, else moved to disk.
    pub(super) fn put(&self, tasks: Vec<Task>) {
        let mut parts: Vec<Vec<Task>> = (0..PARTITIONS).map(|_| Vec::new()).collect();
        for task in tasks {
            parts[partition_of(&task.task_id)].push(task);
        }
        if self.on_disk.load(Ordering::Acquire) {
            for (partition, rows) in parts.iter().enumerate() {
                self.append(partition, rows);
            }
            return;
        }
        let mut added = 0;
        for (held, rows) in self.held.iter().zip(parts) {
            let mut held = held.lock().expect("spill lock");
            let before = held.len();
            for task in rows {
                held.add(task);
            }
            added += held.len() - before;
        }
        let held = self.held_rows.fetch_add(added, Ordering::AcqRel) + added;
        if held >= self.hold_rows && !self.on_disk.swap(true, Ordering::AcqRel) {
            self.move_held_to_disk();
        }
    }

    fn move_held_to_disk(&self) {
        for (partition, held) in self.held.iter().enumerate() {
            let rows = held.lock().expect("spill lock").take();
            self.append(partition, &rows);
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
        if !self.on_disk.load(Ordering::Acquire) {
            // Never went to disk: each partition finishes alone, and the sorted partitions
            // are merged in memory.
            let parts: Vec<std::vec::IntoIter<Task>> = self
                .held
                .par_iter()
                .map(|held| finish(held.lock().expect("spill lock").take()).into_iter())
                .collect();
            let rows = merge_sorted(parts, |rows| Ok(rows.next()), &mut sink)?;
            tracing::info!(
                rows,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "session index: task rows finished in memory"
            );
            return Ok(());
        }
        self.move_held_to_disk();
        self.rows.check()?;
        let runs = self.sorted_partitions(&finish)?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "session index: task rows merged and sorted by partition"
        );
        let cursors = (0..PARTITIONS)
            .map(|p| Run {
                file: &runs,
                chunks: runs.chunks(p).into_iter(),
                rows: Vec::new().into_iter(),
            })
            .collect();
        let rows = merge_sorted(cursors, Run::next, &mut sink)?;
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

/// Merges sorted sources (`next` gives a source's next row) into one sequence in row
/// order; returns the number of rows.
fn merge_sorted<S>(
    mut sources: Vec<S>,
    mut next: impl FnMut(&mut S) -> io::Result<Option<Task>>,
    sink: &mut impl FnMut(Task) -> io::Result<()>,
) -> io::Result<u64> {
    let mut heads: Vec<Option<Task>> = Vec::with_capacity(sources.len());
    let mut heap = BinaryHeap::with_capacity(sources.len());
    for (i, source) in sources.iter_mut().enumerate() {
        let head = next(source)?;
        if let Some(task) = &head {
            heap.push(Reverse((task.row_key(), i)));
        }
        heads.push(head);
    }
    let mut rows = 0;
    while let Some(Reverse((_, i))) = heap.pop() {
        let task = heads[i].take().expect("a queued source has a head");
        let following = next(&mut sources[i])?;
        if let Some(following) = &following {
            heap.push(Reverse((following.row_key(), i)));
        }
        heads[i] = following;
        sink(task)?;
        rows += 1;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ids::NodeId;
    use crate::model::{Builder, TaskDefinition, TaskState, TaskUpdate, Text};

    const TASKS: u64 = 20_000;
    const ENDED_NS: u64 = 5_000_000_000;

    /// Three updates per attempt (definition, running, end), a second attempt for every
    /// seventh task, some left unfinished; interleaved as two files would hold them.
    fn updates() -> Vec<TaskUpdate> {
        let name: Text = Text::from("work");
        let mut updates = Vec::new();
        for i in 0..TASKS {
            let task_id = TaskId::from_hex(&format!("{:048x}", i * 7919));
            for attempt in 0..=u32::from(i % 7 == 0) {
                let start = 1_000_000_000 + i * 1000 + u64::from(attempt) * 500;
                updates.push(TaskUpdate {
                    task_id,
                    attempt,
                    definition: Some(TaskDefinition {
                        func_or_class_name: name.clone(),
                        ..TaskDefinition::default()
                    }),
                    states: vec![(TaskState::PendingArgsAvail, start)],
                    ..TaskUpdate::default()
                });
                updates.push(TaskUpdate {
                    task_id,
                    attempt,
                    states: vec![(TaskState::Running, start + 10)],
                    node_id: Some(NodeId::from_hex(&format!("{:056x}", i % 4)).unwrap()),
                    ..TaskUpdate::default()
                });
                if i % 13 != 0 {
                    updates.push(TaskUpdate {
                        task_id,
                        attempt,
                        states: vec![(TaskState::Finished, start + 20)],
                        ..TaskUpdate::default()
                    });
                }
            }
        }
        updates
    }

    /// The finished rows of [`updates`] through a spill holding `hold_rows` in memory, parsed
    /// by two builders (each passing [`SPILL_ROWS`] rows on the way) and merged.
    fn spilled_rows(hold_rows: usize) -> Vec<Task> {
        let dir = tempfile::tempdir().unwrap();
        let spill = Arc::new(TaskSpill::new(dir.path(), hold_rows).unwrap());
        let (mut a, mut b) = (Builder::spilling(spill.clone()), Builder::spilling(spill));
        // Out of order: a third forwards, the rest backwards.
        let mut updates = updates();
        let mut rest = updates.split_off(updates.len() / 3);
        rest.reverse();
        for update in updates.into_iter().chain(rest) {
            if update.task_id.unwrap().0[23] % 2 == 0 {
                a.task(update);
            } else {
                b.task(update);
            }
        }
        a.merge(b);
        let mut rows = Vec::new();
        a.finish_to(Some(ENDED_NS), |task| {
            rows.push(task);
            Ok(())
        })
        .unwrap();
        rows
    }

    #[test]
    fn rows_come_out_the_same_held_in_memory_or_spilled_to_disk() {
        let mut builder = Builder::default();
        for update in updates() {
            builder.task(update);
        }
        let session = builder.finish_at(Some(ENDED_NS));
        let expected = session.tasks.memory_rows().unwrap();
        assert_eq!(expected.len() as u64, TASKS + TASKS.div_ceil(7));
        // On disk from the first chunk, on disk after some rows were held, and all held.
        for hold_rows in [0, 10_000, usize::MAX] {
            assert!(
                spilled_rows(hold_rows) == expected,
                "rows differ when {hold_rows} rows are held"
            );
        }
    }
}
