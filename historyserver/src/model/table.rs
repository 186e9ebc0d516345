//! The task table of a session. The columns that filters, counts and sorts use are kept in
//! memory for every row (dictionary-encoded: each distinct value once, a code per row); the
//! rows themselves are either in memory (a session parsed from its events) or in a session
//! index file on local disk (see the `session_index` module), read and decoded a block at a
//! time.
//! A million rows cost about 45 MB of columns instead of the rows' 600 MB.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::Hash;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use rayon::slice::ParallelSliceMut;
use serde::{Deserialize, Serialize};

use super::{Task, TaskState, TaskType, Text};
use crate::ids::{ActorId, JobId, NodeId, PlacementGroupId, TaskId, WorkerId};

/// Each distinct value once, and the index of its value for every row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Dict<T> {
    values: Vec<T>,
    codes: Codes,
}

/// The code of every row, as narrow as the number of distinct values allows: most columns
/// have a handful of values, and at ten million rows each byte per row is 10 MB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Codes {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl Codes {
    fn get(&self, row: u32) -> usize {
        let row = row as usize;
        match self {
            Codes::U8(c) => usize::from(c[row]),
            Codes::U16(c) => usize::from(c[row]),
            Codes::U32(c) => c[row] as usize,
        }
    }

    fn push(&mut self, code: u32) {
        match self {
            Codes::U8(c) => match u8::try_from(code) {
                Ok(code) => c.push(code),
                Err(_) => {
                    *self = Codes::U16(c.iter().map(|v| u16::from(*v)).collect());
                    self.push(code);
                }
            },
            Codes::U16(c) => match u16::try_from(code) {
                Ok(code) => c.push(code),
                Err(_) => {
                    *self = Codes::U32(c.iter().map(|v| u32::from(*v)).collect());
                    self.push(code);
                }
            },
            Codes::U32(c) => c.push(code),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Codes::U8(c) => c.len(),
            Codes::U16(c) => c.len() * 2,
            Codes::U32(c) => c.len() * 4,
        }
    }
}

/// Rows up to which the task-id order is sorted on copies of the keys (a million rows sort in
/// a third of the time); past it, on row numbers pointing at them, so that a 10M-task build
/// holds 40 MB of row numbers, not 320 MB of keys.
const SORT_KEYS_UP_TO: usize = 2_000_000;

/// Row numbers in (task id, attempt, row) order, sorted on copies of the keys or on the row
/// numbers (see [`SORT_KEYS_UP_TO`]).
fn order_by_id(ids: &[TaskId], attempts: &[u32], copy_keys: bool) -> Vec<u32> {
    if copy_keys {
        let mut keys: Vec<(TaskId, u32, u32)> = ids
            .iter()
            .zip(attempts)
            .zip(0..)
            .map(|((id, attempt), row)| (*id, *attempt, row))
            .collect();
        keys.par_sort_unstable();
        keys.into_iter().map(|(_, _, row)| row).collect()
    } else {
        let mut rows: Vec<u32> = (0..ids.len() as u32).collect();
        rows.par_sort_unstable_by_key(|i| (ids[*i as usize], attempts[*i as usize], *i));
        rows
    }
}

/// Builds a [`Dict`] a row at a time.
#[derive(Debug)]
struct DictBuilder<T> {
    seen: foldhash::HashMap<T, u32>,
    /// The code of the last value: neighbouring rows often share a value, and a comparison
    /// costs less than a hash.
    last: Option<u32>,
    dict: Dict<T>,
}

impl<T> Default for DictBuilder<T> {
    fn default() -> Self {
        DictBuilder {
            seen: foldhash::HashMap::default(),
            last: None,
            dict: Dict {
                values: Vec::new(),
                codes: Codes::U8(Vec::new()),
            },
        }
    }
}

impl<T: Clone + Eq + Hash> DictBuilder<T> {
    fn push(&mut self, value: &T) {
        let dict = &mut self.dict;
        let code = match self.last {
            Some(last) if dict.values[last as usize] == *value => last,
            _ => match self.seen.get(value) {
                Some(code) => *code,
                None => {
                    let code = dict.values.len() as u32;
                    dict.values.push(value.clone());
                    self.seen.insert(value.clone(), code);
                    code
                }
            },
        };
        self.last = Some(code);
        dict.codes.push(code);
    }
}

impl<T: Clone + Eq + Hash> Dict<T> {
    fn get(&self, row: u32) -> &T {
        &self.values[self.codes.get(row)]
    }

    /// A row test from a test of each distinct value's text.
    fn test<'a>(&'a self, text: impl Fn(&T) -> String, keep: &dyn Fn(&str) -> bool) -> RowTest<'a> {
        let ok: Vec<bool> = self.values.iter().map(|v| keep(&text(v))).collect();
        Box::new(move |row| ok[self.codes.get(row)])
    }

    fn heap_bytes(&self) -> usize {
        self.codes.heap_bytes() + self.values.len() * (std::mem::size_of::<T>() + 16)
    }
}

/// The in-memory columns of every row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Columns {
    task_id: Vec<TaskId>,
    attempt: Vec<u32>,
    state: Vec<TaskState>,
    task_type: Vec<Option<TaskType>>,
    job: Dict<JobId>,
    name: Dict<Text>,
    func: Dict<Text>,
    actor: Dict<Option<ActorId>>,
    node: Dict<Option<NodeId>>,
    worker: Dict<Option<WorkerId>>,
    error_type: Dict<Option<Text>>,
    language: Dict<Text>,
    placement_group: Dict<Option<PlacementGroupId>>,
    /// Rows ordered by task id, then attempt.
    by_id: Vec<u32>,
    drivers: usize,
}

impl Columns {
    /// The columns of `tasks`, in their order.
    pub fn of(tasks: &[Task]) -> Self {
        let mut builder = ColumnsBuilder::default();
        tasks.iter().for_each(|t| builder.push(t));
        builder.finish()
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.task_id.len()
    }

    fn heap_bytes(&self) -> usize {
        self.task_id.len() * (24 + 4 + 1 + 2 + 4)
            + self.job.heap_bytes()
            + self.name.heap_bytes()
            + self.func.heap_bytes()
            + self.actor.heap_bytes()
            + self.node.heap_bytes()
            + self.worker.heap_bytes()
            + self.error_type.heap_bytes()
            + self.language.heap_bytes()
            + self.placement_group.heap_bytes()
    }
}

/// Builds [`Columns`] a row at a time, in row order, so a session's rows never need to be
/// in memory together.
#[derive(Debug, Default)]
pub struct ColumnsBuilder {
    task_id: Vec<TaskId>,
    attempt: Vec<u32>,
    state: Vec<TaskState>,
    task_type: Vec<Option<TaskType>>,
    job: DictBuilder<JobId>,
    name: DictBuilder<Text>,
    func: DictBuilder<Text>,
    actor: DictBuilder<Option<ActorId>>,
    node: DictBuilder<Option<NodeId>>,
    worker: DictBuilder<Option<WorkerId>>,
    error_type: DictBuilder<Option<Text>>,
    language: DictBuilder<Text>,
    placement_group: DictBuilder<Option<PlacementGroupId>>,
    drivers: usize,
}

impl ColumnsBuilder {
    /// Adds the next row.
    pub fn push(&mut self, t: &Task) {
        self.task_id.push(t.task_id);
        self.attempt.push(t.attempt);
        self.state.push(t.state);
        self.task_type.push(t.def.task_type);
        self.job.push(&t.job_id());
        self.name.push(&t.def.name);
        self.func.push(&t.def.func_or_class_name);
        self.actor.push(&t.def.actor_id);
        self.node.push(&t.node_id);
        self.worker.push(&t.worker_id);
        self.error_type
            .push(&t.error.as_ref().map(|e| e.error_type.clone()));
        self.language.push(&t.def.language);
        self.placement_group.push(&t.def.placement_group_id);
        self.drivers += usize::from(t.def.task_type == Some(TaskType::Driver));
    }

    /// The columns, with the rows' order by task id.
    pub fn finish(self) -> Columns {
        let copy_keys = self.task_id.len() <= SORT_KEYS_UP_TO;
        let by_id = order_by_id(&self.task_id, &self.attempt, copy_keys);
        Columns {
            task_id: self.task_id,
            attempt: self.attempt,
            state: self.state,
            task_type: self.task_type,
            job: self.job.dict,
            name: self.name.dict,
            func: self.func.dict,
            actor: self.actor.dict,
            node: self.node.dict,
            worker: self.worker.dict,
            error_type: self.error_type.dict,
            language: self.language.dict,
            placement_group: self.placement_group.dict,
            by_id,
            drivers: self.drivers,
        }
    }
}

/// Where the rows are.
#[derive(Debug)]
enum Rows {
    Memory(Vec<Task>),
    File(RowFile),
}

/// Decoded blocks kept per file: the pages everyone asks for (the first ones) decode once.
const CACHED_BLOCKS: u64 = 32;

/// Rows in blocks of a session index file on local disk (the file is unlinked: it goes away
/// with its handle).
pub struct RowFile {
    file: std::fs::File,
    blocks: Vec<(u64, u32)>,
    rows_per_block: u32,
    decoded: moka::sync::Cache<usize, Arc<Vec<Task>>>,
}

impl std::fmt::Debug for RowFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowFile")
            .field("blocks", &self.blocks.len())
            .field("rows_per_block", &self.rows_per_block)
            .finish_non_exhaustive()
    }
}

impl RowFile {
    /// Rows in `file`: `(offset, length)` of each block (zstd-compressed postcard of a
    /// `Vec<Task>`), `rows_per_block` rows each (the last one may hold fewer).
    pub fn new(file: std::fs::File, blocks: Vec<(u64, u32)>, rows_per_block: u32) -> Self {
        Self {
            file,
            blocks,
            rows_per_block: rows_per_block.max(1),
            decoded: moka::sync::Cache::new(CACHED_BLOCKS),
        }
    }

    fn block(&self, index: usize) -> io::Result<Arc<Vec<Task>>> {
        if let Some(rows) = self.decoded.get(&index) {
            return Ok(rows);
        }
        let (offset, len) = *self
            .blocks
            .get(index)
            .ok_or_else(|| io::Error::other(format!("no block {index} in the session index")))?;
        let mut compressed = vec![0u8; len as usize];
        self.file.read_exact_at(&mut compressed, offset)?;
        let rows = Arc::new(decode_block(&compressed)?);
        self.decoded.insert(index, rows.clone());
        Ok(rows)
    }
}

/// Decodes one block of rows.
pub fn decode_block(compressed: &[u8]) -> io::Result<Vec<Task>> {
    let raw = zstd::bulk::decompress(compressed, MAX_BLOCK_BYTES)?;
    postcard::from_bytes(&raw).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Encodes one block of rows (owned or borrowed: both encode alike) with `compressor`,
/// which keeps its state from block to block.
pub fn encode_block<T: serde::Serialize>(
    compressor: &mut zstd::bulk::Compressor<'_>,
    rows: &[T],
) -> io::Result<Vec<u8>> {
    let raw = postcard::to_stdvec(rows).map_err(io::Error::other)?;
    compressor.compress(&raw)
}

/// Largest decoded block accepted (a foreign file cannot make a read allocate more).
const MAX_BLOCK_BYTES: usize = 256 << 20;

/// A row test on one column; `None` from [`TaskTable::test`] means the column needs the rows.
pub type RowTest<'a> = Box<dyn Fn(u32) -> bool + 'a>;

/// All attempts of all tasks of a session.
#[derive(Debug)]
pub struct TaskTable {
    columns: Columns,
    rows: Rows,
}

impl TaskTable {
    /// A table over rows held in memory.
    pub fn in_memory(tasks: Vec<Task>) -> Self {
        TaskTable {
            columns: Columns::of(&tasks),
            rows: Rows::Memory(tasks),
        }
    }

    /// A table over the rows of a session index file, with their columns.
    pub fn in_file(columns: Columns, file: RowFile) -> Self {
        TaskTable {
            columns,
            rows: Rows::File(file),
        }
    }

    /// The columns (what the session index stores beside the rows).
    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    /// The rows when they are in memory.
    pub fn memory_rows(&self) -> Option<&[Task]> {
        match &self.rows {
            Rows::Memory(rows) => Some(rows),
            Rows::File(_) => None,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.columns.task_id.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of driver tasks (hidden by default in task lists).
    pub fn drivers(&self) -> usize {
        self.columns.drivers
    }

    /// The current state of a row.
    pub fn state(&self, row: u32) -> TaskState {
        self.columns.state[row as usize]
    }

    /// The type of a row, as the task's definition gives it.
    pub fn task_type(&self, row: u32) -> Option<TaskType> {
        self.columns.task_type[row as usize]
    }

    /// The task name of a row.
    pub fn name(&self, row: u32) -> &Text {
        self.columns.name.get(row)
    }

    /// Rows ordered by task id, then attempt.
    pub fn by_id(&self) -> &[u32] {
        &self.columns.by_id
    }

    /// The rows (every attempt) of one task, in row order.
    pub fn rows_of(&self, task: &TaskId) -> Vec<u32> {
        let ids = &self.columns.task_id;
        let by_id = &self.columns.by_id;
        let start = by_id.partition_point(|r| ids[*r as usize] < *task);
        let end = by_id.partition_point(|r| ids[*r as usize] <= *task);
        let mut rows = by_id[start..end].to_vec();
        rows.sort_unstable();
        rows
    }

    /// A test of a column's text (as Ray's filters compare it) for every row, from the
    /// columns alone; `None` when the column is not kept in memory.
    pub fn test<'a>(&'a self, column: &str, keep: &'a dyn Fn(&str) -> bool) -> Option<RowTest<'a>> {
        let c = &self.columns;
        fn hex<const N: usize>(id: &Option<crate::ids::Id<N>>) -> String {
            id.map(|i| i.hex()).unwrap_or_default()
        }
        Some(match column {
            "task_id" => Box::new(move |row| keep(&c.task_id[row as usize].hex())),
            "attempt_number" => Box::new(move |row| keep(&c.attempt[row as usize].to_string())),
            "state" => {
                let ok: Vec<bool> = TaskState::ALL.iter().map(|s| keep(s.name())).collect();
                Box::new(move |row| ok[c.state[row as usize] as usize])
            }
            "type" => {
                let ok: HashMap<Option<TaskType>, bool> = [
                    None,
                    Some(TaskType::Normal),
                    Some(TaskType::ActorCreation),
                    Some(TaskType::Actor),
                    Some(TaskType::Driver),
                ]
                .into_iter()
                .map(|t| (t, keep(t.unwrap_or_default().name())))
                .collect();
                Box::new(move |row| ok[&c.task_type[row as usize]])
            }
            "job_id" => c.job.test(|j| j.hex(), keep),
            "name" => c.name.test(|t| t.to_string(), keep),
            "func_or_class_name" => c.func.test(|t| t.to_string(), keep),
            "actor_id" => c.actor.test(hex, keep),
            "node_id" => c.node.test(hex, keep),
            "worker_id" => c.worker.test(hex, keep),
            "error_type" => c
                .error_type
                .test(|e| e.as_deref().unwrap_or_default().to_string(), keep),
            "language" => c.language.test(|t| t.to_string(), keep),
            "placement_group_id" => c.placement_group.test(hex, keep),
            _ => return None,
        })
    }

    /// The rows at `rows` (any order; each block is decoded once per run of its rows).
    pub fn fetch(&self, rows: &[u32]) -> io::Result<Vec<Cow<'_, Task>>> {
        let mut out = Vec::with_capacity(rows.len());
        self.visit(rows.iter().copied(), |task| out.push(task))?;
        Ok(out)
    }

    /// Calls `f` with each row of `rows`, in that order, without holding more than one
    /// decoded block.
    pub fn visit<'a>(
        &'a self,
        rows: impl IntoIterator<Item = u32>,
        mut f: impl FnMut(Cow<'a, Task>),
    ) -> io::Result<()> {
        match &self.rows {
            Rows::Memory(tasks) => {
                for row in rows {
                    f(Cow::Borrowed(&tasks[row as usize]));
                }
            }
            Rows::File(file) => {
                let per = file.rows_per_block as usize;
                let mut current: Option<(usize, Arc<Vec<Task>>)> = None;
                for row in rows {
                    let block = row as usize / per;
                    if current.as_ref().is_none_or(|(b, _)| *b != block) {
                        current = Some((block, file.block(block)?));
                    }
                    let (_, tasks) = current.as_ref().expect("loaded above");
                    let task = tasks.get(row as usize % per).ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            "short block in the session index",
                        )
                    })?;
                    f(Cow::Owned(task.clone()));
                }
            }
        }
        Ok(())
    }

    /// Every row, in row order.
    pub fn all(&self) -> io::Result<Vec<Task>> {
        let mut out = Vec::with_capacity(self.len());
        self.visit_all(|task| out.push(task.into_owned()))?;
        Ok(out)
    }

    /// Calls `f` with every row in row order.
    pub fn visit_all<'a>(&'a self, f: impl FnMut(Cow<'a, Task>)) -> io::Result<()> {
        self.visit(0..self.len() as u32, f)
    }

    /// Rough heap size, for the cache's byte budget.
    pub fn approx_bytes(&self) -> usize {
        let rows = match &self.rows {
            Rows::Memory(tasks) => {
                let task = std::mem::size_of::<Task>() + 200;
                let profile: usize = tasks
                    .iter()
                    .filter_map(|t| t.profile.as_ref())
                    .map(|p| p.events.len() * 64 + 64)
                    .sum();
                tasks.len() * task + profile
            }
            Rows::File(file) => {
                file.blocks.len() * 12
                    + (CACHED_BLOCKS * u64::from(file.rows_per_block)) as usize
                        * (std::mem::size_of::<Task>() + 200)
            }
        };
        self.columns.heap_bytes() + rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Id;

    #[test]
    fn both_sorts_give_the_same_order_by_task_id() {
        // Scrambled ids, some repeated (attempts of one task, and equal keys).
        let ids: Vec<TaskId> = (0..5_000u32)
            .map(|i| {
                let mut id = [0u8; 24];
                id[..4].copy_from_slice(&(i.wrapping_mul(2_654_435_761) % 1_700).to_be_bytes());
                Id(id)
            })
            .collect();
        let attempts: Vec<u32> = (0..5_000u32).map(|i| i % 2).collect();
        let copied = order_by_id(&ids, &attempts, true);
        assert_eq!(copied, order_by_id(&ids, &attempts, false));
        let key = |row: u32| (ids[row as usize], attempts[row as usize], row);
        assert!(copied.windows(2).all(|w| key(w[0]) < key(w[1])));
        assert_eq!(copied.len(), ids.len());
    }
}
