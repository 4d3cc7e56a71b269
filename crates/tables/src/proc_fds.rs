//! `proc_fds`: open file descriptors of every process.
//!
//! Source on the live host: a parallel scan of `/proc/PID/fd` (one `readlink` per fd).
//! Constraints on `pid` limit which processes are visited; constraints on `inode` (a
//! `WHERE inode = …` or the listeners' inodes in a join) limit which rows are built.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, StringArray, UInt32Array, UInt64Array};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use kql_engine::table::table_schema;
use kql_engine::{Column, ColumnType::*, KernelTable, ScanRequest, Scanned, TableSpec};
use kql_sources::proc_scan::{FdKind, ProcFd, ScanFilter, scan_fds};

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
};

/// Open file descriptors, one row per (process, fd).
#[derive(Debug)]
pub struct ProcFds;

impl KernelTable for ProcFds {
    fn spec(&self) -> &'static TableSpec {
        &SPEC
    }

    fn source(&self) -> &'static str {
        "procfs /proc/PID/fd"
    }

    fn scan(&self, request: &ScanRequest) -> Result<Scanned> {
        let filter = ScanFilter { pids: request.keys.values("pid"), inodes: request.keys.values("inode") };
        let scan = scan_fds(&filter);
        let warnings = match scan.unreadable {
            0 => Vec::new(),
            n => vec![format!(
                "proc_fds: permission denied for {n} fds or fd directories of {}; their rows are missing",
                pid_list(&scan.unreadable_pids)
            )],
        };
        Ok(Scanned { batch: to_batch(self, &scan.fds)?, warnings })
    }
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

fn to_batch(table: &ProcFds, fds: &[ProcFd]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(fds.iter().map(|f| f.pid))),
        Arc::new(StringArray::from_iter_values(fds.iter().map(|f| &*f.comm))),
        Arc::new(UInt32Array::from_iter_values(fds.iter().map(|f| f.uid))),
        Arc::new(Int32Array::from_iter_values(fds.iter().map(|f| f.fd))),
        Arc::new(StringArray::from_iter_values(fds.iter().map(|f| f.kind.as_str()))),
        Arc::new(StringArray::from_iter_values(fds.iter().map(|f| &f.target))),
        Arc::new(UInt64Array::from_iter(fds.iter().map(socket_inode))),
    ];
    Ok(RecordBatch::try_new(table_schema(table), columns)?)
}
