//! Running a [`Plan`] over a kernel's memory: the containers walked in order, the key
//! columns read first (rows the query's `=`/`IN` rule out are dropped before anything else
//! is read; on `@index` keys an xarray, idr or array is looked up instead of walked; on a
//! parent's keys only the matching parents are walked), then the other columns.
//!
//! Bounded and read-only, whatever memory holds: every container walker caps its nodes and
//! detects cycles; pointers are checked to be kernel addresses before they are followed; a
//! value that cannot be read is NULL and counted into one warning; a container that cannot
//! be walked is skipped and counted the same way; a scan stops with an error past its
//! [`Budget`] of nodes, bytes and time.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use datafusion::arrow::array::ArrayRef;
use kql_drgn::{Error, ErrorKind, Result};
use kql_engine::ColumnType;
use kql_kernel::cgroup::CgroupIds;
use kql_kernel::fs::FileWalker;
use kql_kernel::rbtree::RbTree;
use kql_kernel::xarray::XArray;
use kql_kernel::{Memory, Types, list, percpu};

use crate::ast::{BoundName, StepKind};
use crate::bind::{Base, BoundColumn, BoundStep, Op, Place, Plan};
use crate::column::Column;
use crate::memo::Memo;
use crate::reader::Reader;
use crate::span::{ObjectSpan, Window};

/// The most a scan may do before it stops with an error.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Objects visited, across all containers.
    pub nodes: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Wall-clock time.
    pub time: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { nodes: 1 << 24, bytes: 4 << 30, time: Duration::from_secs(120) }
    }
}

/// How deep a TREE may go.
const MAX_TREE_DEPTH: u32 = 64;

/// A column value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// No value: a NULL pointer on the path, an optional member this kernel lacks, or a read
    /// that failed (counted).
    Null,
    /// Any integer.
    Int(i128),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(String),
}

/// For each constrained key column, the values a row may have.
pub type Wanted = HashMap<String, HashSet<Value>>;

/// A scan's rows, one vector per output column, and its warnings.
#[derive(Debug)]
pub struct Scanned {
    /// Columns in [`Plan::output`] order.
    pub columns: Vec<ArrayRef>,
    /// Lines for the user: values and containers that could not be read.
    pub warnings: Vec<String>,
}

/// What one row's values are computed from.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Frame {
    pub object: u64,
    pub parent: Option<u64>,
    pub index: Option<u64>,
    pub cpu: Option<u32>,
    pub depth: Option<u32>,
    /// LIST, HLIST: where the object's back pointer is and what the walk saw it point to.
    pub back_link: Option<BackLink>,
}

/// An object's back pointer (`prev`, `pprev`) and the link that led the walk to it: when the
/// row is read they must still agree, or the object was unlinked, moved or freed meanwhile
/// (a live kernel) or the list is inconsistent (a damaged dump), and the row is left out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BackLink {
    at: u64,
    expected: u64,
}

/// What makes a row the same row twice in one walk: its object, `@index` and `@cpu`.
type Sighting = (u64, Option<u64>, Option<u32>);

/// An object found by the walk, with the key values its parents gave it.
struct Found {
    frame: Frame,
    inherited: Vec<Value>,
}

/// One scan's state: the memory view, lazily built helpers, the budget and the counts.
pub(crate) struct Scan<'a, 'k> {
    pub mem: Memory<'k>,
    pub types: &'a Types<'k>,
    budget: Budget,
    started: Instant,
    nodes: u64,
    pub bytes: u64,
    faults: Faults,
    skipped: Faults,
    /// Objects left out because their back pointer no longer matched the walk.
    unlinked: Faults,
    /// Whether memory is a running kernel's (objects change) rather than a dump's.
    live: bool,
    rbtree: Option<RbTree>,
    xarray: Option<XArray>,
    cpus: Option<Vec<(u32, u64)>>,
    pub files: Option<FileWalker>,
    pub kernfs: Option<CgroupIds>,
    /// The span of the row object being computed, fetched once.
    window: Option<Window<'k>>,
    /// Values read through a row object's pointer, by (place, pointer): see `read_through`.
    pub remembered: Memo,
}

/// Failures of one kind, counted, the first kept.
#[derive(Default)]
struct Faults {
    count: usize,
    first: Option<String>,
}

impl Faults {
    fn add(&mut self, error: &Error) {
        self.count += 1;
        self.first.get_or_insert_with(|| error.message.clone());
    }
}

/// Rows each column's builder makes room for before it grows.
const ROWS_AHEAD: usize = 1024;

/// Runs `plan` over the kernel `types` sees: every row whose key columns can match `wanted`.
/// Each object is fetched once, as soon as the walk reaches it: its keys decide whether it
/// is a row, then the other columns are read from the same window.
pub fn scan(plan: &Plan, types: &Types, wanted: &Wanted, budget: Budget) -> Result<Scanned> {
    let mut scan = Scan::new(types, budget);
    let mut columns: Vec<Column> =
        plan.output().iter().map(|(name, ty)| Column::new(name, *ty, ROWS_AHEAD)).collect();
    let keys = KeyColumns::of(plan);
    let mut others: Vec<Reader> =
        plan.columns.iter().filter(|c| !c.key).map(|c| Reader::of(&c.expr)).collect();
    let (key_positions, other_positions) = (plan.key_positions(), plan.other_positions());
    let address = columns.len() - 1;
    let mut misfits = Faults::default();
    let mut note = |pushed: std::result::Result<(), String>| {
        if let Err(message) = pushed {
            misfits.add(&Error::new(ErrorKind::Other, message));
        }
    };
    scan.each_row(plan, wanted, &keys, |scan, frame, key_values| {
        for (&column, value) in key_positions.iter().zip(key_values) {
            note(columns[column].push(value));
        }
        for (&column, reader) in other_positions.iter().zip(&mut others) {
            note(scan.read_into(reader, &frame, &mut columns[column]));
        }
        note(columns[address].push_int(i128::from(frame.object)));
    })?;
    let columns = columns.into_iter().map(Column::finish).collect();
    let mut warnings = scan.warnings(&plan.name);
    if let Some(first) = misfits.first {
        warnings.push(format!(
            "{}: {} values did not fit their column's type (NULL); first: {first}",
            plan.name, misfits.count
        ));
    }
    with_union_rows(plan, types, wanted, budget, Scanned { columns, warnings })
}

/// A plan's key columns (inherited ones first): names and types to check against
/// [`Wanted`], and the declared ones to compute.
struct KeyColumns<'p> {
    names: Vec<String>,
    types: Vec<ColumnType>,
    own: Vec<&'p BoundColumn>,
}

impl<'p> KeyColumns<'p> {
    fn of(plan: &'p Plan) -> Self {
        let own = plan.columns.iter().filter(|c| c.key).collect();
        KeyColumns { names: plan.key_names(), types: plan.key_types(), own }
    }
}

/// The objects whose linking members (`link` bytes in) are `nodes`, in list order from the
/// pointer at `head`, each with the back link the next read must find: a node's `prev` or
/// `pprev` (after `next`) points at the previous node (whose `next` is its first member),
/// the first node's at `head`.
fn linked_objects(head: u64, nodes: &[u64], link: u64, frame: &Frame) -> Vec<(u64, Frame)> {
    let previous = std::iter::once(head).chain(nodes.iter().copied());
    nodes
        .iter()
        .zip(previous)
        .map(|(&node, expected)| {
            let back_link = Some(BackLink { at: node.wrapping_add(8), expected });
            (node.wrapping_sub(link), Frame { back_link, ..*frame })
        })
        .collect()
}

/// `scanned` followed by the rows of `plan`'s `UNION` parts, each scanned with its own budget.
fn with_union_rows(
    plan: &Plan,
    types: &Types,
    wanted: &Wanted,
    budget: Budget,
    mut scanned: Scanned,
) -> Result<Scanned> {
    for part in &plan.union {
        let more = scan(part, types, wanted, budget)?;
        for (column, rows) in scanned.columns.iter_mut().zip(more.columns) {
            *column = datafusion::arrow::compute::concat(&[column.as_ref(), rows.as_ref()])
                .map_err(|e| Error::new(ErrorKind::Other, format!("{}: {e}", plan.name)))?;
        }
        scanned.warnings.extend(more.warnings);
    }
    Ok(scanned)
}

impl<'a, 'k> Scan<'a, 'k> {
    fn new(types: &'a Types<'k>, budget: Budget) -> Self {
        Scan {
            mem: Memory::new(types),
            types,
            budget,
            started: Instant::now(),
            nodes: 0,
            bytes: 0,
            faults: Faults::default(),
            skipped: Faults::default(),
            unlinked: Faults::default(),
            live: types.program().is_live(),
            rbtree: None,
            xarray: None,
            cpus: None,
            files: None,
            kernfs: None,
            window: None,
            remembered: Memo::default(),
        }
    }

    fn warnings(&self, table: &str) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(first) = &self.skipped.first {
            warnings.push(format!(
                "{table}: skipped {} containers that could not be walked; first: {first}",
                self.skipped.count
            ));
        }
        if let Some(first) = &self.unlinked.first {
            let why = if self.live {
                "changed while being read (a running kernel unlinks and frees them)"
            } else {
                "are not linked where the walk found them (a damaged dump?)"
            };
            warnings.push(format!(
                "{table}: left out {} objects that {why}; first: {first}",
                self.unlinked.count
            ));
        }
        if let Some(first) = &self.faults.first {
            warnings.push(format!(
                "{table}: {} values could not be read (NULL); first: {first}",
                self.faults.count
            ));
        }
        warnings
    }

    /// Fetches `span` of the object at `object` (unless it is already the window) so that
    /// the reads of its columns come from it; reads it does not hold go to memory.
    fn focus(&mut self, object: u64, span: Option<ObjectSpan>) {
        let Some(span) = span else { return };
        if self.window.as_ref().is_some_and(|window| window.holds(object, span)) {
            return;
        }
        let start = object.wrapping_add_signed(span.start);
        self.window = self.mem.bytes(start, span.len).ok().map(|bytes| Window::new(start, bytes));
        self.bytes += span.len as u64;
    }

    /// Whether `frame`'s object is still where its walk found it (see [`BackLink`]); counts
    /// it when not.
    fn still_linked(&mut self, frame: &Frame) -> bool {
        let Some(BackLink { at, expected }) = frame.back_link else { return true };
        let found =
            self.fetch(at, 8).map(|bytes| u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")));
        let message = match found {
            Ok(pointer) if pointer == expected => return true,
            Ok(pointer) => format!(
                "object {:#x}: back pointer {pointer:#x}, the walk came from {expected:#x}",
                frame.object
            ),
            Err(e) => format!("object {:#x}: {}", frame.object, e.message),
        };
        self.unlinked.add(&Error::new(ErrorKind::BadData, message));
        false
    }

    /// The `len` bytes at `address`: from the window when it holds them, else from memory.
    pub fn fetch(&self, address: u64, len: usize) -> Result<Cow<'_, [u8]>> {
        match self.window.as_ref().and_then(|window| window.get(address, len)) {
            Some(bytes) => Ok(Cow::Borrowed(bytes)),
            None => self.mem.bytes(address, len),
        }
    }

    /// The `len` bytes at `address` if the window holds them.
    #[inline(always)]
    pub fn in_window(&self, address: u64, len: usize) -> Option<&[u8]> {
        self.window.as_ref()?.get(address, len)
    }

    /// `read`'s value; a read that failed is NULL, and counted.
    pub fn or_null(&mut self, read: Result<Value>) -> Value {
        read.unwrap_or_else(|error| {
            self.faults.add(&error);
            Value::Null
        })
    }

    /// Rows of `plan` that can match `wanted`: each object with its key values (inherited
    /// ones first).
    fn rows(&mut self, plan: &Plan, wanted: &Wanted) -> Result<Vec<(Frame, Vec<Value>)>> {
        let keys = KeyColumns::of(plan);
        let mut rows = Vec::new();
        self.each_row(plan, wanted, &keys, |_, frame, key_values| rows.push((frame, key_values)))?;
        Ok(rows)
    }

    /// Whether `frame`'s row is met for the first time in this walk, as `seen` records. A
    /// list node is in one place at a time, so its object is its identity; an array slot,
    /// an xarray index or a cpu may hold an object that another also holds, so theirs is
    /// the object with its `@index` and `@cpu`. In a dump, an object whose back pointer was
    /// checked is met once at most (that pointer names one place), so it is not recorded.
    fn first_sighting(&self, frame: &Frame, seen: &mut foldhash::HashSet<Sighting>) -> bool {
        match frame.back_link {
            Some(_) if !self.live => true,
            Some(_) => seen.insert((frame.object, None, None)),
            None => seen.insert((frame.object, frame.index, frame.cpu)),
        }
    }

    /// `found` as a row with its key values, with its object fetched as the window; `None`
    /// when the object is no longer linked where the walk found it or its keys rule it out.
    fn accepted(
        &mut self,
        plan: &Plan,
        found: Found,
        keys: &KeyColumns,
        wanted: &Wanted,
    ) -> Option<(Frame, Vec<Value>)> {
        let Found { frame, mut inherited } = found;
        self.focus(frame.object, plan.span);
        if !self.still_linked(&frame) {
            return None;
        }
        for column in &keys.own {
            inherited.push(self.eval(&column.expr, &frame));
        }
        let mut checks = keys.names.iter().zip(&keys.types).zip(&inherited);
        checks.all(|((name, ty), value)| allowed(wanted, name, *ty, value)).then_some((frame, inherited))
    }

    /// Calls `visit` with each row of `plan`'s walk (its object, still linked, and its key
    /// values), from each of its parent's rows. A row met again from the same parent row (a
    /// running kernel moved its object further along the walk, or a damaged dump links it
    /// twice; see [`Scan::first_sighting`]) is left out the second time, and counted.
    fn each_row(
        &mut self,
        plan: &Plan,
        wanted: &Wanted,
        keys: &KeyColumns,
        mut visit: impl FnMut(&mut Self, Frame, Vec<Value>),
    ) -> Result<()> {
        let starts = match &plan.parent {
            None => vec![Found { frame: Frame::default(), inherited: Vec::new() }],
            Some(parent) => self
                .rows(parent, wanted)?
                .into_iter()
                .map(|(frame, keys)| Found {
                    frame: Frame { parent: Some(frame.object), ..Frame::default() },
                    inherited: keys,
                })
                .collect(),
        };
        let indexes = plan.index_key().and_then(|name| wanted.get(name)).map(|values| {
            values
                .iter()
                .filter_map(|v| if let Value::Int(n) = v { u64::try_from(*n).ok() } else { None })
                .collect::<HashSet<u64>>()
        });
        let mut seen = foldhash::HashSet::default();
        for start in starts {
            seen.clear();
            let inherited = &start.inherited;
            self.expand(&plan.steps, start.frame, indexes.as_ref(), |scan, frame| {
                let found = Found { frame, inherited: inherited.clone() };
                let Some((frame, key_values)) = scan.accepted(plan, found, keys, wanted) else { return };
                match scan.first_sighting(&frame, &mut seen) {
                    true => visit(scan, frame, key_values),
                    false => scan.unlinked.add(&Error::new(
                        ErrorKind::BadData,
                        format!("object {:#x}: met a second time in one walk", frame.object),
                    )),
                }
            })?;
        }
        Ok(())
    }

    /// Calls `visit` with every object the steps reach from `start`, in walk order; the last
    /// step that binds `@index` looks up `indexes` directly when given. The steps before the
    /// last are taken breadth first; the objects of the last are visited a few at a time, as
    /// each of its containers is walked (a bucket's chain, a list), so that a row is read
    /// while its object is still in the caches, as the hand-written walks do.
    fn expand(
        &mut self,
        steps: &[BoundStep],
        start: Frame,
        indexes: Option<&HashSet<u64>>,
        mut visit: impl FnMut(&mut Self, Frame),
    ) -> Result<()> {
        let last_indexed =
            steps.iter().rposition(|s| matches!(s.kind, StepKind::Xarray | StepKind::Idr | StepKind::Array));
        let direct = |i: usize| if Some(i) == last_indexed { indexes } else { None };
        let Some((last, before)) = steps.split_last() else {
            visit(self, start);
            return Ok(());
        };
        let mut frames = vec![start];
        for (i, step) in before.iter().enumerate() {
            let mut next = Vec::new();
            for frame in &frames {
                self.step_or_skip(step, frame, direct(i), &mut next)?;
            }
            frames = next;
        }
        let mut objects = Vec::new();
        for frame in &frames {
            self.step_or_skip(last, frame, direct(before.len()), &mut objects)?;
            for object in objects.drain(..) {
                visit(self, object);
            }
        }
        Ok(())
    }

    /// [`Scan::step`], a failure counted as skipped unless it is the budget's.
    fn step_or_skip(
        &mut self,
        step: &BoundStep,
        frame: &Frame,
        direct: Option<&HashSet<u64>>,
        next: &mut Vec<Frame>,
    ) -> Result<()> {
        match self.step(step, frame, direct, next) {
            Err(e) if e.kind == ErrorKind::Other && e.message.starts_with("scan budget") => return Err(e),
            Err(e) if e.message.contains(&step.what) => self.skipped.add(&e),
            Err(e) => self.skipped.add(&e.context(&step.what)),
            Ok(()) => {}
        }
        Ok(())
    }

    /// Counts one object against the budget.
    fn visit(&mut self) -> Result<()> {
        self.nodes += 1;
        let over = if self.nodes > self.budget.nodes {
            Some(format!("more than {} objects", self.budget.nodes))
        } else if self.bytes > self.budget.bytes {
            Some(format!("more than {} bytes read", self.budget.bytes))
        } else if self.nodes.is_multiple_of(1024) && self.started.elapsed() > self.budget.time {
            Some(format!("more than {} s", self.budget.time.as_secs()))
        } else {
            None
        };
        match over {
            Some(what) => Err(Error::new(
                ErrorKind::Other,
                format!("scan budget exceeded: {what}; narrow the query with a key column"),
            )),
            None => Ok(()),
        }
    }

    /// The objects one step reaches from `frame`, appended to `out`.
    fn step(
        &mut self,
        step: &BoundStep,
        frame: &Frame,
        indexes: Option<&HashSet<u64>>,
        out: &mut Vec<Frame>,
    ) -> Result<()> {
        let Some(at) = self.resolve(&step.source, frame)? else { return Ok(()) };
        let frame = &Frame { back_link: None, ..*frame };
        let objects: Vec<(u64, Frame)> = match step.kind {
            StepKind::List => {
                let nodes = list::list_nodes(&self.mem, at, &step.what)?;
                linked_objects(at, &nodes, step.link, frame)
            }
            StepKind::Hlist => {
                let first = self.read_pointer(at + step.head)?;
                let nodes = list::hlist_nodes(&self.mem, first, &step.what)?;
                linked_objects(at + step.head, &nodes, step.link, frame)
            }
            StepKind::Rbtree => {
                let root = self.read_pointer(at + step.head)?;
                if self.rbtree.is_none() {
                    self.rbtree = Some(RbTree::new(self.types)?);
                }
                let tree = self.rbtree.as_ref().expect("just set");
                tree.nodes(&self.mem, root, &step.what)?
                    .into_iter()
                    .map(|node| (node.wrapping_sub(step.link), *frame))
                    .collect()
            }
            StepKind::Xarray | StepKind::Idr => self.xarray_objects(step, at, frame, indexes)?,
            StepKind::Array => self.array_objects(step, at, frame, indexes)?,
            StepKind::Percpu => self.percpu_objects(at, frame)?,
            StepKind::Tree => self.tree_objects(step, at, frame)?,
            StepKind::Chain => self.chain_objects(step, at, frame)?,
        };
        out.reserve(objects.len());
        for (object, mut frame) in objects {
            self.visit()?;
            if !is_kernel_address(object) {
                self.skipped.add(&Error::new(
                    ErrorKind::BadData,
                    format!("{}: {object:#x} is not a kernel address", step.what),
                ));
                continue;
            }
            frame.object = object;
            out.push(frame);
        }
        Ok(())
    }

    fn xarray_objects(
        &mut self,
        step: &BoundStep,
        at: u64,
        frame: &Frame,
        indexes: Option<&HashSet<u64>>,
    ) -> Result<Vec<(u64, Frame)>> {
        let base = match step.idr_base {
            Some(offset) => u64::from(self.mem.read_u32(at + offset)?),
            None => 0,
        };
        let xa = at + step.head;
        if self.xarray.is_none() {
            self.xarray = Some(XArray::new(self.types)?);
        }
        let xarray = self.xarray.as_ref().expect("just set");
        let entries = match indexes {
            None => xarray.entries(&self.mem, xa, &step.what),
            Some(indexes) => {
                let mut sorted: Vec<u64> = indexes.iter().filter_map(|i| i.checked_sub(base)).collect();
                sorted.sort_unstable();
                sorted
                    .into_iter()
                    .filter_map(|i| {
                        xarray.load(&self.mem, xa, i, &step.what).map(|e| e.map(|e| (i, e))).transpose()
                    })
                    .collect()
            }
        };
        Ok(entries?
            .into_iter()
            .map(|(index, entry)| (entry, Frame { index: Some(index + base), ..*frame }))
            .collect())
    }

    fn array_objects(
        &mut self,
        step: &BoundStep,
        at: u64,
        frame: &Frame,
        indexes: Option<&HashSet<u64>>,
    ) -> Result<Vec<(u64, Frame)>> {
        let count = match (&step.count, step.length) {
            (Some(count), _) => match self.eval(count, frame) {
                Value::Int(n) => u64::try_from(n).unwrap_or(0),
                _ => {
                    return Err(Error::new(
                        ErrorKind::BadData,
                        format!("{}: its COUNT could not be read", step.what),
                    ));
                }
            },
            (None, length) => length.unwrap_or(0),
        };
        if count > list::MAX_NODES as u64 {
            return Err(Error::new(
                ErrorKind::BadData,
                format!("{}: COUNT {count} is more than {} elements", step.what, list::MAX_NODES),
            ));
        }
        let chosen: Vec<u64> = match indexes {
            Some(indexes) => {
                let mut chosen: Vec<u64> = indexes.iter().copied().filter(|&i| i < count).collect();
                chosen.sort_unstable();
                chosen
            }
            None => (0..count).collect(),
        };
        let mut objects = Vec::with_capacity(chosen.len());
        for index in chosen {
            let element = at + index * step.stride;
            let object = match step.pointers {
                true => self.read_pointer(element)?,
                false => element,
            };
            if object != 0 {
                objects.push((object, Frame { index: Some(index), ..*frame }));
            }
        }
        Ok(objects)
    }

    fn percpu_objects(&mut self, at: u64, frame: &Frame) -> Result<Vec<(u64, Frame)>> {
        if self.cpus.is_none() {
            self.cpus = Some(percpu::cpu_offsets(self.types, &self.mem)?);
        }
        let cpus = self.cpus.as_deref().unwrap_or_default();
        Ok(cpus
            .iter()
            .map(|&(cpu, offset)| (at.wrapping_add(offset), Frame { cpu: Some(cpu), ..*frame }))
            .collect())
    }

    /// A TREE in pre-order: the root object, then each child's subtree, children found in the
    /// `struct list_head` at `head` of each object, linked through `link`.
    fn tree_objects(&mut self, step: &BoundStep, root: u64, frame: &Frame) -> Result<Vec<(u64, Frame)>> {
        let mut seen = HashSet::new();
        let mut objects = Vec::new();
        let mut stack = vec![(root, 0u32)];
        while let Some((object, depth)) = stack.pop() {
            if !seen.insert(object) {
                return Err(Error::new(
                    ErrorKind::BadData,
                    format!("{}: {object:#x} is reached twice (a cycle)", step.what),
                ));
            }
            if depth > MAX_TREE_DEPTH {
                return Err(Error::new(
                    ErrorKind::BadData,
                    format!("{}: deeper than {MAX_TREE_DEPTH} levels", step.what),
                ));
            }
            self.visit()?;
            objects.push((object, Frame { depth: Some(depth), ..*frame }));
            let children = list::list_nodes(&self.mem, object + step.head, &step.what)?;
            for child in children.into_iter().rev() {
                stack.push((child.wrapping_sub(step.link), depth + 1));
            }
        }
        Ok(objects)
    }

    /// A CHAIN: the objects from the pointer at `first`, each pointing to the next through
    /// the member at `step.link`, until NULL; a loop or more than `list::MAX_NODES` objects
    /// is an error.
    fn chain_objects(&mut self, step: &BoundStep, first: u64, frame: &Frame) -> Result<Vec<(u64, Frame)>> {
        let mut seen = HashSet::new();
        let mut objects = Vec::new();
        let mut object = self.read_pointer(first)?;
        while object != 0 {
            if !seen.insert(object) {
                return Err(Error::new(
                    ErrorKind::BadData,
                    format!("{}: {object:#x} is reached twice (a cycle)", step.what),
                ));
            }
            if objects.len() >= list::MAX_NODES {
                return Err(Error::new(
                    ErrorKind::BadData,
                    format!("{}: more than {} objects", step.what, list::MAX_NODES),
                ));
            }
            objects.push((object, *frame));
            object = self.read_pointer(object.wrapping_add(step.link))?;
        }
        Ok(objects)
    }

    /// The first object of the `struct list_head` at `head` whose linking member is `link`
    /// bytes in; `None` for an empty list (its `next` pointing back at the head).
    fn first_entry(&mut self, head: u64, link: u64) -> Result<Option<u64>> {
        match self.read_pointer(head)? {
            0 => Ok(None),
            next if next == head => Ok(None),
            next => Ok(Some(next.wrapping_sub(link))),
        }
    }

    /// The pointer at `address`, which must be NULL or a kernel address.
    pub fn read_pointer(&mut self, address: u64) -> Result<u64> {
        self.bytes += 8;
        let bytes = self.fetch(address, 8)?;
        let pointer = u64::from_le_bytes(bytes[..8].try_into().expect("an 8-byte read"));
        match pointer == 0 || is_kernel_address(pointer) {
            true => Ok(pointer),
            false => Err(Error::new(
                ErrorKind::BadData,
                format!("{pointer:#x} at {address:#x} is not a kernel address"),
            )),
        }
    }

    /// The address `place` names for `frame`; `None` when a pointer on the way is NULL.
    pub fn resolve(&mut self, place: &Place, frame: &Frame) -> Result<Option<u64>> {
        let start = match place.base {
            Base::Object => frame.object,
            Base::Parent => match frame.parent {
                Some(parent) => parent,
                None => return Ok(None),
            },
            Base::Global(address) => address,
        };
        self.follow(start, &place.ops)
    }

    /// Where `ops` lead from `address`.
    pub fn follow(&mut self, mut address: u64, ops: &[Op]) -> Result<Option<u64>> {
        for op in ops {
            match *op {
                Op::Add(n) => address = address.wrapping_add(n as u64),
                Op::Deref => match self.read_pointer(address)? {
                    0 => return Ok(None),
                    pointer => address = pointer,
                },
                Op::Spread { .. } => {
                    return Err(Error::new(ErrorKind::Other, "[*] outside sum()"));
                }
                Op::First { link } => match self.first_entry(address, link)? {
                    Some(object) => address = object,
                    None => return Ok(None),
                },
            }
        }
        Ok(Some(address))
    }

    /// The value of a bound name for `frame`.
    pub fn bound(&self, name: BoundName, frame: &Frame) -> Value {
        let value = match name {
            BoundName::Index => frame.index,
            BoundName::Cpu => frame.cpu.map(u64::from),
            BoundName::Depth => frame.depth.map(u64::from),
        };
        value.map_or(Value::Null, |v| Value::Int(i128::from(v)))
    }
}

/// Whether `address` can be a kernel address on x86-64 — in the kernel half with 5-level
/// paging (from `0xff00…`; with 4-level paging from `0xffff_8000…`, and anything between
/// simply fails to read) — short of the error-pointer range (`ERR_PTR`, the last 4095).
pub(crate) fn is_kernel_address(address: u64) -> bool {
    (0xff00_0000_0000_0000..0xffff_ffff_ffff_f000).contains(&address)
}

fn allowed(wanted: &Wanted, column: &str, ty: ColumnType, value: &Value) -> bool {
    wanted.get(column).is_none_or(|values| values.contains(&key_form(value, ty)))
}

/// The key-column constraints of `keys` that `plan`'s scan can use, as values of the
/// columns' types (a constraint it cannot read constrains nothing).
pub fn wanted(keys: &kql_engine::KeyFilter, plan: &Plan) -> Wanted {
    let mut wanted = Wanted::new();
    for (name, ty) in plan.output() {
        let Some(scalars) = keys.scalars(&name) else { continue };
        let values: Option<HashSet<Value>> = scalars.iter().map(|s| key_value(s, ty)).collect();
        if let Some(values) = values {
            wanted.insert(name, values);
        }
    }
    wanted
}

/// An SQL literal as the value a key column of type `ty` holds.
fn key_value(scalar: &datafusion::common::ScalarValue, ty: ColumnType) -> Option<Value> {
    use datafusion::arrow::datatypes::DataType;
    match ty {
        ColumnType::Utf8 => match scalar.cast_to(&DataType::Utf8).ok()? {
            datafusion::common::ScalarValue::Utf8(Some(text)) => Some(Value::Text(text)),
            _ => None,
        },
        ColumnType::Boolean => match scalar.cast_to(&DataType::Boolean).ok()? {
            datafusion::common::ScalarValue::Boolean(Some(b)) => Some(Value::Bool(b)),
            _ => None,
        },
        _ => match scalar.cast_to(&DataType::Decimal128(38, 0)).ok()? {
            datafusion::common::ScalarValue::Decimal128(Some(n), _, _) => Some(Value::Int(n)),
            _ => None,
        },
    }
}

/// A key value as its column holds it, so that it compares with [`wanted`]'s.
fn key_form(value: &Value, ty: ColumnType) -> Value {
    match (value, ty) {
        (Value::Int(n), ColumnType::Utf8) => Value::Text(n.to_string()),
        (Value::Bool(b), ColumnType::Utf8) => Value::Text(b.to_string()),
        (Value::Bool(b), ColumnType::Boolean) => Value::Bool(*b),
        (Value::Int(n), ColumnType::Boolean) => Value::Bool(*n != 0),
        (Value::Bool(b), _) => Value::Int(i128::from(*b)),
        (value, _) => value.clone(),
    }
}
