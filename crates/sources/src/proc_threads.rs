//! Threads of this host's processes, from `/proc/PID/task/TID/stat`.

use std::collections::HashSet;

use procfs::process::Process;
use rayon::prelude::*;

use crate::proc_scan::target_pids;

/// One thread of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadInfo {
    /// The process (thread-group) id.
    pub pid: i32,
    /// The thread id.
    pub tid: i32,
    /// The thread's name (`comm`).
    pub comm: String,
    /// One-letter state (`R`, `S`, `D`, …).
    pub state: char,
}

/// Every thread of the processes in `pids` (all when `None`), ordered by pid then tid.
/// Processes and threads that exit while being read are skipped.
pub fn scan_threads(pids: Option<&HashSet<i32>>) -> Vec<ThreadInfo> {
    let mut threads: Vec<ThreadInfo> =
        target_pids(pids).par_iter().flat_map_iter(|&pid| process_threads(pid)).collect();
    threads.sort_by_key(|t| (t.pid, t.tid));
    threads
}

fn process_threads(pid: i32) -> Vec<ThreadInfo> {
    let Ok(tasks) = Process::new(pid).and_then(|p| p.tasks()) else { return Vec::new() };
    tasks
        .flatten()
        .filter_map(|task| {
            let stat = task.stat().ok()?;
            Some(ThreadInfo { pid, tid: task.tid, comm: stat.comm, state: stat.state })
        })
        .collect()
}
