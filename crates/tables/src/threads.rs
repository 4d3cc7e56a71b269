//! `threads`: every thread of every process.
//!
//! Sources: a libdrgn walk of each thread-group leader's `signal->thread_head`; on the live
//! host, `/proc/PID/task/TID/stat`. Constraints on `pid` limit which processes are visited.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, StringArray};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use kql_engine::{Column, ColumnType::*, ScanRequest, Scanned, Source, SourceKind, TableSpec};
use kql_kernel::sched::TaskWalker;
use kql_kernel::{Memory, Types};
use kql_sources::proc_threads::{ThreadInfo, scan_threads};

use crate::kernel_walk::{self, Skipped};
use crate::table::TableScan;
use crate::target::{Binding, Target};

const SPEC: TableSpec = TableSpec {
    name: "threads",
    doc: "Threads of every process, one row per thread; join with processes on pid.",
    columns: &[
        Column::new("pid", Int32, "process id (thread-group id)").key(),
        Column::new("tid", Int32, "thread id"),
        Column::new("comm", Utf8, "thread name (a thread may rename itself)"),
        Column::new("state", Utf8, "scheduler state letter: R, S, D, Z, T, I, …"),
    ],
    sources: &[
        Source { kind: SourceKind::Drgn, doc: "libdrgn walk of each process's signal->thread_head" },
        Source { kind: SourceKind::Procfs, doc: "procfs /proc/PID/task/TID/stat" },
    ],
};

/// Threads, one row per (process, thread).
#[derive(Debug)]
pub struct Threads;

impl TableScan for Threads {
    fn spec() -> &'static TableSpec {
        &SPEC
    }

    fn probe(types: &Types) -> kql_drgn::Result<()> {
        TaskWalker::new(types).map(drop)
    }

    fn scan(target: &Target, binding: &Binding, request: &ScanRequest) -> Result<Scanned> {
        let pids = request.keys.values::<i32>("pid");
        let (threads, warnings) = match binding.source.kind {
            SourceKind::Drgn => kernel_walk::walk(target, binding, |types| {
                kernel_threads(types, Skipped::new("threads", target), pids.as_ref())
            })?,
            _ => (scan_threads(pids.as_ref()), target.take_fallback_note().into_iter().collect()),
        };
        Ok(Scanned { batch: to_batch(&threads)?, warnings })
    }
}

fn kernel_threads(
    types: &Types,
    mut skipped: Skipped,
    pids: Option<&HashSet<i32>>,
) -> Result<(Vec<ThreadInfo>, Vec<String>)> {
    let mem = Memory::new(types);
    let walker = TaskWalker::new(types).map_err(kernel_walk::error)?;
    let mut threads = Vec::new();
    for leader in walker.leaders_tolerant(&mem, skipped.kernel()) {
        let task = || format!("task_struct at {leader:#x}");
        let Some(process) = skipped.check(walker.thread(&mem, leader), task) else { continue };
        if pids.is_some_and(|p| !p.contains(&process.pid)) {
            continue;
        }
        let group = || format!("threads of PID {} at {leader:#x}", process.pid);
        let Some(members) = skipped.check(walker.threads(&mem, leader), group) else { continue };
        for address in members {
            let task = || format!("thread task_struct at {address:#x} of PID {}", process.pid);
            if let Some(thread) = skipped.check(walker.thread(&mem, address), task) {
                threads.push(ThreadInfo {
                    pid: thread.pid,
                    tid: thread.tid,
                    comm: thread.comm,
                    state: thread.state,
                });
            }
        }
    }
    threads.sort_by_key(|t| (t.pid, t.tid));
    Ok((threads, skipped.into_warnings()))
}

fn to_batch(threads: &[ThreadInfo]) -> Result<RecordBatch> {
    let rows = || threads.iter();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(rows().map(|t| t.pid))),
        Arc::new(Int32Array::from_iter_values(rows().map(|t| t.tid))),
        Arc::new(StringArray::from_iter_values(rows().map(|t| &t.comm))),
        Arc::new(StringArray::from_iter_values(rows().map(|t| t.state.to_string()))),
    ];
    Ok(RecordBatch::try_new(SPEC.schema(), columns)?)
}
