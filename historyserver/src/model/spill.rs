//! Building a session's task rows for the session index: builders split their rows by task
//! id into [`PARTITIONS`] as they parse, and hand each partition's rows over a few at a time.
//! A session small enough (see [`hold_rows_for`]) keeps them in memory, merged as they come;
//! a bigger one moves them to disk, and each partition is then merged, finished and sorted
//! alone. Either way the sorted partitions are merged into row order, and memory is bounded
//! whatever the session's size.
//!
//! Rows are a few hundred bytes: every move of a million of them costs tens of milliseconds,
//! so held rows are finished where they lie and passed on in row order by reference.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::Task;
use super::task::{RowKey, TaskRows};
use crate::ids::TaskId;

/// Partitions of the rows; a partition is merged in memory (a 10M-task session gives
/// partitions of about 160k rows).
pub const PARTITIONS: usize = 64;
/// Rows of one partition a builder collects before it hands them over: few enough that the
/// builders of a load hold little, many enough that a lock is taken once per batch.
const BATCH_ROWS: usize = 256;
/// Merged rows a big session holds in memory before they go to disk (about 100 MiB).
pub const HOLD_ROWS: usize = 131_072;
/// Event bytes up to which a session's rows are all held in memory (about 1.3M tasks of
/// export events): the disk costs a build more than half of its time.
pub const HOLD_ALL_BYTES: u64 = 2 << 30;
/// Merged rows a session that small holds at most (about 900 MiB).
pub const HOLD_ALL_ROWS: usize = 1_500_000;
/// The keys of some rows in row order, each with the index of its row.
pub(super) type RowOrder = Vec<(RowKey, u32)>;
/// Rows per chunk of a sorted partition.
const RUN_CHUNK: usize = 1024;
/// Rows passed to the sink at once when they come from disk (a multiple of the index's
/// block size, so that no block straddles two batches).
const SINK_ROWS: usize = 8192;

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

    /// Takes a partition's rows over (leaving `rows` empty): merged into the held rows while
    /// they are fewer than the spill holds, else moved to disk.
    fn put(&self, partition: usize, rows: &mut Vec<Task>) {
        if self.on_disk.load(Ordering::Acquire) {
            self.append(partition, rows);
            rows.clear();
            return;
        }
        let added = {
            let mut held = self.held[partition].lock().expect("spill lock");
            let before = held.len();
            for task in rows.drain(..) {
                held.add(task);
            }
            held.len() - before
        };
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

    /// Finishes every row: `finish` finishes all the rows of some tasks where they lie and
    /// returns their row order (creation time, task id, attempt); `sink` is given every
    /// finished row in that order, a batch at a time.
    fn finish(
        &self,
        finish: impl Fn(&mut Vec<Task>) -> RowOrder + Sync,
        mut sink: impl FnMut(&[&Task]) -> io::Result<()>,
    ) -> io::Result<()> {
        let started = std::time::Instant::now();
        if !self.on_disk.load(Ordering::Acquire) {
            // Never went to disk: each partition finishes alone, and the sorted partitions
            // are merged by reference.
            let parts: Vec<(Vec<Task>, RowOrder)> = self
                .held
                .par_iter()
                .map(|held| {
                    let mut rows = held.lock().expect("spill lock").take();
                    let order = finish(&mut rows);
                    (rows, order)
                })
                .collect();
            let sources = parts
                .iter()
                .enumerate()
                .map(|(p, (_, order))| order.iter().map(move |(key, i)| (*key, p, *i)))
                .collect();
            let mut all = Vec::with_capacity(parts.iter().map(|(_, order)| order.len()).sum());
            merge_sorted(
                sources,
                |keys| Ok(keys.next()),
                |(key, ..)| *key,
                |(_, p, i)| {
                    all.push(&parts[p].0[i as usize]);
                    Ok(())
                },
            )?;
            sink(&all)?;
            tracing::info!(
                rows = all.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "session index: task rows finished in memory"
            );
            drop(all);
            free_in_background(parts);
            return Ok(());
        }
        self.move_held_to_disk();
        self.rows.check()?;
        let runs = self.sorted_partitions(&finish)?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "session index: task rows merged and sorted by partition"
        );
        let cursors: Vec<Run> = (0..PARTITIONS)
            .map(|p| Run {
                file: &runs,
                chunks: runs.chunks(p).into_iter(),
                rows: Vec::new().into_iter(),
            })
            .collect();
        // The merge runs on a thread of its own while the sink writes the batch before (on
        // the pool, which the merge must not wait for: it may be a single thread).
        let (batches, incoming) = std::sync::mpsc::sync_channel::<Vec<Task>>(1);
        let (merged, written) = std::thread::scope(|scope| {
            let merging = scope.spawn(move || {
                let mut batch = Vec::with_capacity(SINK_ROWS);
                let mut rows = 0u64;
                let stopped = || io::Error::other("the session index writer stopped");
                merge_sorted(cursors, Run::next, Task::row_key, |task| {
                    batch.push(task);
                    rows += 1;
                    if batch.len() == SINK_ROWS {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(SINK_ROWS));
                        batches.send(full).map_err(|_| stopped())?;
                    }
                    Ok(())
                })?;
                batches.send(batch).map_err(|_| stopped())?;
                Ok::<_, io::Error>(rows)
            });
            // A failing sink stops taking batches, which stops the merge.
            let written = incoming
                .into_iter()
                .try_for_each(|batch| sink(&batch.iter().collect::<Vec<_>>()));
            let merged = merging
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the session index merge panicked")));
            (merged, written)
        });
        written?;
        let rows = merged?;
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
        finish: &(impl Fn(&mut Vec<Task>) -> RowOrder + Sync),
    ) -> io::Result<ChunkFile> {
        let runs = ChunkFile::new(&self.dir)?;
        (0..PARTITIONS).into_par_iter().try_for_each(|partition| {
            let mut rows = self.merged(partition)?;
            let order = finish(&mut rows);
            let rows = in_order(rows, &order);
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

/// Frees rows on a thread of their own, then gives the freed pages back to the system. Rows
/// own allocations of their own and share texts and definitions: a million took up to half a
/// second to free on one thread (longer on the pool, fighting over the shared reference
/// counts), which a load need not wait for, as the session is served from its index file.
fn free_in_background<T: Send + 'static>(rows: T) {
    let free = move || {
        lowest_priority();
        drop(rows);
        release_freed_memory();
    };
    // A thread that cannot start drops its closure, and with it the rows, here.
    if std::thread::Builder::new()
        .name("index-rows-free".into())
        .spawn(free)
        .is_err()
    {
        release_freed_memory();
    }
}

/// Makes the calling thread the last to get a core: freeing waits while the load ends.
#[allow(unsafe_code)]
fn lowest_priority() {
    // SAFETY: gettid and setpriority touch no memory; on Linux, PRIO_PROCESS with a thread
    // id sets that one thread's nice value. A failure leaves the priority as it was.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

/// Gives the heap pages freed so far back to the system. glibc's malloc keeps them in its
/// arenas otherwise: a server that had just built a 1M-task index stayed at about 790 MB RSS
/// while serving from it, against about 100 MB for one that opened the index. No allocator
/// crate was better: mimalloc kept the RSS low here but grew by 265 MiB under the hostile
/// requests test, where glibc's grows by far less.
#[allow(unsafe_code)]
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of malloc's own heaps; it touches no live
    // allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `rows` moved into `order` (each row once).
pub(super) fn in_order(rows: Vec<Task>, order: &[(RowKey, u32)]) -> Vec<Task> {
    let mut slots: Vec<Option<Task>> = rows.into_iter().map(Some).collect();
    order
        .iter()
        .map(|(_, i)| slots[*i as usize].take().expect("each row is taken once"))
        .collect()
}

/// Merges sources sorted by `key` (`next` gives a source's next item) into one sequence in
/// that order, passed to `sink`.
fn merge_sorted<S, T>(
    mut sources: Vec<S>,
    mut next: impl FnMut(&mut S) -> io::Result<Option<T>>,
    key: impl Fn(&T) -> RowKey,
    mut sink: impl FnMut(T) -> io::Result<()>,
) -> io::Result<()> {
    let mut heads: Vec<Option<T>> = Vec::with_capacity(sources.len());
    let mut heap = BinaryHeap::with_capacity(sources.len());
    for (i, source) in sources.iter_mut().enumerate() {
        let head = next(source)?;
        if let Some(task) = &head {
            heap.push(Reverse((key(task), i)));
        }
        heads.push(head);
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let task = heads[i].take().expect("a queued source has a head");
        let following = next(&mut sources[i])?;
        if let Some(following) = &following {
            heap.push(Reverse((key(following), i)));
        }
        heads[i] = following;
        sink(task)?;
    }
    Ok(())
}

/// A builder's task rows on their way to a [`TaskSpill`], collected by partition.
#[derive(Debug)]
pub(super) struct SpillBuffer {
    spill: Arc<TaskSpill>,
    parts: Vec<Vec<Task>>,
}

impl SpillBuffer {
    /// An empty buffer in front of `spill`.
    pub(super) fn new(spill: Arc<TaskSpill>) -> Self {
        SpillBuffer {
            spill,
            parts: (0..PARTITIONS).map(|_| Vec::new()).collect(),
        }
    }

    /// Adds a row, handing its partition's rows over once there are enough.
    pub(super) fn push(&mut self, task: Task) {
        let partition = partition_of(&task.task_id);
        let rows = &mut self.parts[partition];
        if rows.capacity() == 0 {
            rows.reserve_exact(BATCH_ROWS);
        }
        rows.push(task);
        if rows.len() == BATCH_ROWS {
            self.spill.put(partition, rows);
        }
    }

    /// Hands every collected row over.
    pub(super) fn flush(&mut self) {
        for (partition, rows) in self.parts.iter_mut().enumerate() {
            if !rows.is_empty() {
                self.spill.put(partition, rows);
            }
        }
    }

    /// Hands `other`'s rows over too; both must be in front of the same spill.
    pub(super) fn absorb(&mut self, mut other: SpillBuffer) {
        debug_assert!(Arc::ptr_eq(&self.spill, &other.spill));
        other.flush();
    }

    /// Finishes every row of the spill (see [`TaskSpill::finish`]), this buffer's included.
    pub(super) fn finish(
        mut self,
        finish: impl Fn(&mut Vec<Task>) -> RowOrder + Sync,
        sink: impl FnMut(&[&Task]) -> io::Result<()>,
    ) -> io::Result<()> {
        self.flush();
        self.spill.finish(finish, sink)
    }
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
    /// by two builders (each handing batches over on the way) and merged.
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
        a.finish_to(Some(ENDED_NS), |batch| {
            rows.extend(batch.iter().map(|task| (*task).clone()));
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
