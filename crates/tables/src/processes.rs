//! `processes`: every process (thread group) of the kernel.
//!
//! Sources: a libdrgn walk of `init_task.tasks` (thread-group leaders) reading each
//! `task_struct` with its credentials, namespaces, cgroup and command line (through the
//! process's page tables); on the live host, `/proc/PID/{stat,status,cmdline,cgroup}` and
//! the inode of `/proc/PID/ns/net`, scanned in parallel. Constraints on `pid` limit which
//! processes are read; constraints on `netns` are applied as rows are built.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int32Array, Int64Array, StringArray, TimestampNanosecondArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use kql_engine::{Column, ColumnType::*, ScanRequest, Scanned, Source, SourceKind, TableSpec};
use kql_kernel::sched::{Task, TaskCaches, TaskWalker};
use kql_kernel::{Memory, Types};
use kql_sources::proc_scan::{ProcessInfo, scan_processes};

use crate::kernel_walk::{self, Skipped};
use crate::table::TableScan;
use crate::target::{Binding, Target};

const SPEC: TableSpec = TableSpec {
    name: "processes",
    doc: "Processes (thread groups), one row each, with their network namespace and cgroup.",
    columns: &[
        Column::new("pid", Int32, "process id (thread-group id)").key(),
        Column::new("ppid", Int32, "parent process id"),
        Column::new("comm", Utf8, "process name (/proc/PID/comm, at most 15 bytes)"),
        Column::new("cmdline", Utf8, "command line, arguments separated by spaces; empty for kernel threads"),
        Column::new("uid", UInt32, "real uid"),
        Column::new("state", Utf8, "scheduler state letter: R, S, D, Z, T, I, …"),
        Column::new("threads", Int64, "number of threads"),
        Column::new("start_time", Timestamp, "when the process started"),
        Column::new("netns", UInt64, "inode of the process's network namespace").nullable().key(),
        Column::new("cgroup", Utf8, "cgroup v2 path").nullable(),
    ],
    sources: &[
        Source { kind: SourceKind::Drgn, doc: "libdrgn walk of init_task.tasks, one read per task_struct" },
        Source { kind: SourceKind::Procfs, doc: "procfs /proc/PID/{stat,status,cmdline,cgroup,ns/net}" },
    ],
};

/// Processes, one row per thread group.
#[derive(Debug)]
pub struct Processes;

impl TableScan for Processes {
    fn spec() -> &'static TableSpec {
        &SPEC
    }

    fn probe(types: &Types) -> kql_drgn::Result<()> {
        TaskWalker::new(types).map(drop)
    }

    fn scan(target: &Target, binding: &Binding, request: &ScanRequest) -> Result<Scanned> {
        let pids = request.keys.values::<i32>("pid");
        let (mut processes, warnings) = match binding.source.kind {
            SourceKind::Drgn => kernel_walk::walk(target, binding, |types| {
                kernel_processes(types, Skipped::new("processes", target), pids.as_ref())
            })?,
            _ => host_processes(target, pids.as_ref()),
        };
        if let Some(netns) = request.keys.values::<u64>("netns") {
            processes.retain(|p| p.netns.is_some_and(|n| netns.contains(&n)));
        }
        Ok(Scanned { batch: to_batch(&processes)?, warnings })
    }
}

fn host_processes(target: &Target, pids: Option<&HashSet<i32>>) -> (Vec<ProcessInfo>, Vec<String>) {
    let scan = scan_processes(pids);
    let mut warnings: Vec<String> = target.take_fallback_note().into_iter().collect();
    if scan.unreadable > 0 {
        warnings.push(format!(
            "processes: {} processes could not be read (permission denied) and are missing",
            scan.unreadable
        ));
    }
    (scan.processes, warnings)
}

fn kernel_processes(
    types: &Types,
    mut skipped: Skipped,
    pids: Option<&HashSet<i32>>,
) -> Result<(Vec<ProcessInfo>, Vec<String>)> {
    let mem = Memory::new(types);
    let walker = TaskWalker::new(types).map_err(kernel_walk::error)?;
    let mut caches = TaskCaches::default();
    let mut processes = Vec::new();
    for leader in walker.leaders_tolerant(&mem, skipped.kernel()) {
        let task = walker.read(&mem, leader, &mut caches);
        let Some(task) = skipped.check(task, || format!("task_struct at {leader:#x}")) else { continue };
        if pids.is_none_or(|p| p.contains(&task.pid)) {
            processes.push(process_info(task));
        }
    }
    processes.sort_by_key(|p| p.pid);
    Ok((processes, skipped.into_warnings()))
}

fn process_info(task: Task) -> ProcessInfo {
    ProcessInfo {
        pid: task.pid,
        ppid: task.ppid,
        comm: task.comm,
        cmdline: task.cmdline,
        uid: task.uid,
        state: task.state,
        threads: task.threads,
        start_time_ns: task.start_time_ns,
        netns: task.netns,
        cgroup: task.cgroup,
    }
}

fn to_batch(processes: &[ProcessInfo]) -> Result<RecordBatch> {
    let rows = || processes.iter();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(rows().map(|p| p.pid))),
        Arc::new(Int32Array::from_iter_values(rows().map(|p| p.ppid))),
        Arc::new(StringArray::from_iter_values(rows().map(|p| &p.comm))),
        Arc::new(StringArray::from_iter_values(rows().map(|p| &p.cmdline))),
        Arc::new(UInt32Array::from_iter_values(rows().map(|p| p.uid))),
        Arc::new(StringArray::from_iter_values(rows().map(|p| p.state.to_string()))),
        Arc::new(Int64Array::from_iter_values(rows().map(|p| p.threads))),
        Arc::new(
            TimestampNanosecondArray::from_iter_values(rows().map(|p| p.start_time_ns)).with_timezone("UTC"),
        ),
        Arc::new(UInt64Array::from_iter(rows().map(|p| p.netns))),
        Arc::new(StringArray::from_iter(rows().map(|p| p.cgroup.as_deref()))),
    ];
    Ok(RecordBatch::try_new(SPEC.schema(), columns)?)
}
