//! `processes`: every process (thread group) on the host.
//!
//! Source on the live host: `/proc/PID/{stat,status,cmdline,cgroup}` and the inode of
//! `/proc/PID/ns/net`, scanned in parallel. Constraints on `pid` limit which processes are
//! read; constraints on `netns` are applied as rows are built.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int32Array, Int64Array, StringArray, TimestampNanosecondArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use kql_engine::table::table_schema;
use kql_engine::{Column, ColumnType::*, KernelTable, ScanRequest, Scanned, TableSpec};
use kql_sources::proc_scan::{ProcessInfo, scan_processes};

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
};

/// Processes, one row per thread group.
#[derive(Debug)]
pub struct Processes;

impl KernelTable for Processes {
    fn spec(&self) -> &'static TableSpec {
        &SPEC
    }

    fn source(&self) -> &'static str {
        "procfs /proc/PID"
    }

    fn scan(&self, request: &ScanRequest) -> Result<Scanned> {
        let mut scan = scan_processes(request.keys.values("pid").as_ref());
        if let Some(netns) = request.keys.values::<u64>("netns") {
            scan.processes.retain(|p| p.netns.is_some_and(|n| netns.contains(&n)));
        }
        let warnings = match scan.unreadable {
            0 => Vec::new(),
            n => vec![format!(
                "processes: {n} processes could not be read (permission denied) and are missing"
            )],
        };
        Ok(Scanned { batch: to_batch(self, &scan.processes)?, warnings })
    }
}

fn to_batch(table: &Processes, processes: &[ProcessInfo]) -> Result<RecordBatch> {
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
    Ok(RecordBatch::try_new(table_schema(table), columns)?)
}
