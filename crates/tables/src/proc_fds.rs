//! `proc_fds`: open file descriptors of every process.
//!
//! Sources: a libdrgn walk of every thread-group leader's fd table (`init_task.tasks` →
//! `files->fdt`), which is the only meaningful source for a vmcore or a guest; on the live
//! host, a parallel scan of `/proc/PID/fd` (one `readlink` per fd). Constraints on `pid`
//! limit which processes are visited; constraints on `inode` (a `WHERE inode = …` or the
//! listeners' inodes in a join) limit which rows are built.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, StringArray, UInt32Array, UInt64Array};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use kql_engine::{Column, ColumnType::*, ScanRequest, Scanned, Source, SourceKind, TableSpec};
use kql_kernel::fs::{FileCaches, FileWalker};
use kql_kernel::sched::{TaskCaches, TaskWalker};
use kql_kernel::{Memory, Types};
use kql_sources::proc_scan::{FdKind, ProcFd, ScanFilter, scan_fds};

use crate::kernel_walk::{self, Skipped};
use crate::table::TableScan;
use crate::target::{Binding, Target};

const SPEC: TableSpec = TableSpec {
    name: "proc_fds",
    doc: "Open file descriptors of every process, one row per fd; join with tcp_listeners on inode.",
    columns: &[
        Column::new("pid", Int32, "process id (thread-group id)").key(),
        Column::new("comm", Utf8, "process name, as ss -p shows it"),
        Column::new("uid", UInt32, "real uid of the process"),
        Column::new("fd", Int32, "file descriptor number"),
        Column::new("kind", Utf8, "what the fd refers to: socket, file, pipe, anon or other"),
        Column::new("target", Utf8, "what readlink(/proc/PID/fd/N) says, e.g. socket:[123]"),
        Column::new("inode", UInt64, "socket inode when the fd is a socket, else NULL").nullable().key(),
    ],
    sources: &[
        Source {
            kind: SourceKind::Drgn,
            doc: "libdrgn walk of each process's fd table (files->fdt, open_fds)",
        },
        Source { kind: SourceKind::Procfs, doc: "procfs /proc/PID/fd, one readlink per fd" },
    ],
};

/// Open file descriptors, one row per (process, fd).
#[derive(Debug)]
pub struct ProcFds;

impl TableScan for ProcFds {
    fn spec() -> &'static TableSpec {
        &SPEC
    }

    fn probe(types: &Types) -> kql_drgn::Result<()> {
        TaskWalker::new(types)?;
        FileWalker::new(types)?;
        Ok(())
    }

    fn scan(target: &Target, binding: &Binding, request: &ScanRequest) -> Result<Scanned> {
        let filter = ScanFilter { pids: request.keys.values("pid"), inodes: request.keys.values("inode") };
        let (fds, warnings) = match binding.source.kind {
            SourceKind::Drgn => kernel_walk::walk(target, binding, |types| {
                kernel_fds(types, Skipped::new("proc_fds", target), &filter)
            })?,
            _ => host_fds(target, &filter),
        };
        Ok(Scanned { batch: to_batch(&fds)?, warnings })
    }
}

/// The fds of this host's processes, from /proc.
fn host_fds(target: &Target, filter: &ScanFilter) -> (Vec<ProcFd>, Vec<String>) {
    let scan = scan_fds(filter);
    let mut warnings: Vec<String> = target.take_fallback_note().into_iter().collect();
    if scan.unreadable > 0 {
        warnings.push(format!(
            "proc_fds: permission denied for {} fds or fd directories of {}; their rows are missing",
            scan.unreadable,
            pid_list(&scan.unreadable_pids)
        ));
    }
    (scan.fds, warnings)
}

/// The fds of the kernel's processes, from their fd tables.
fn kernel_fds(
    types: &Types,
    mut skipped: Skipped,
    filter: &ScanFilter,
) -> Result<(Vec<ProcFd>, Vec<String>)> {
    let mem = Memory::new(types);
    let tasks = TaskWalker::new(types).map_err(kernel_walk::error)?;
    let files = FileWalker::new(types).map_err(kernel_walk::error)?;
    let (mut task_caches, mut file_caches) = (TaskCaches::default(), FileCaches::default());
    let mut fds = Vec::new();
    for leader in tasks.leaders_tolerant(&mem, skipped.kernel()) {
        let owner = tasks.files_owner(&mem, leader, &mut task_caches);
        let Some(task) = skipped.check(owner, || format!("task_struct at {leader:#x}")) else { continue };
        if filter.pids.as_ref().is_some_and(|p| !p.contains(&task.pid)) {
            continue;
        }
        let open = files.open_files(&mem, task.files, &mut file_caches);
        let place = || {
            format!(
                "fds of PID {} ({}): task_struct at {leader:#x}, files {:#x}",
                task.pid, task.comm, task.files
            )
        };
        let Some(open) = skipped.check(open, place) else { continue };
        let comm: Arc<str> = task.comm.into();
        for file in open {
            let (kind, inode) = FdKind::classify(file.target.as_bytes());
            if filter.inodes.as_ref().is_some_and(|wanted| inode.is_none_or(|i| !wanted.contains(&i))) {
                continue;
            }
            let fd = ProcFd {
                pid: task.pid,
                comm: Arc::clone(&comm),
                uid: task.uid,
                fd: file.fd,
                kind,
                target: file.target,
                inode,
            };
            fds.push(fd);
        }
        kql_kernel::within_row_budget(fds.len(), "proc_fds walk").map_err(kernel_walk::error)?;
    }
    Ok((fds, skipped.into_warnings()))
}

/// `PID 1` or `3 processes (PIDs 1, 77, 90)`, with at most ten pids spelled out.
fn pid_list(pids: &[i32]) -> String {
    match pids {
        [pid] => format!("PID {pid}"),
        _ => {
            let shown: Vec<String> = pids.iter().take(10).map(i32::to_string).collect();
            let more = if pids.len() > 10 { ", …" } else { "" };
            format!("{} processes (PIDs {}{more})", pids.len(), shown.join(", "))
        }
    }
}

/// The socket inode of an fd; pipes have inodes too, but of another filesystem.
fn socket_inode(fd: &ProcFd) -> Option<u64> {
    (fd.kind == FdKind::Socket).then_some(fd.inode).flatten()
}

fn to_batch(fds: &[ProcFd]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(fds.iter().map(|f| f.pid))),
        Arc::new(StringArray::from_iter_values(fds.iter().map(|f| &*f.comm))),
        Arc::new(UInt32Array::from_iter_values(fds.iter().map(|f| f.uid))),
        Arc::new(Int32Array::from_iter_values(fds.iter().map(|f| f.fd))),
        Arc::new(StringArray::from_iter_values(fds.iter().map(|f| f.kind.as_str()))),
        Arc::new(StringArray::from_iter_values(fds.iter().map(|f| &f.target))),
        Arc::new(UInt64Array::from_iter(fds.iter().map(socket_inode))),
    ];
    Ok(RecordBatch::try_new(SPEC.schema(), columns)?)
}
