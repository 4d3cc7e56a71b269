//! kql's kernel tables, one file each: its columns (with descriptions), its documentation and
//! its scan. Adding a table means adding its file and one line to [`tables`].
//!
//! [`functions`] holds the SQL functions kql adds for queries about the target itself.

pub mod functions;
mod proc_fds;
mod processes;
mod tcp_listeners;

use std::sync::Arc;

use kql_engine::KernelTable;

/// Every kernel table, in the order `kql tables` lists them.
pub fn tables() -> Vec<Arc<dyn KernelTable>> {
    vec![
        Arc::new(tcp_listeners::TcpListeners),
        Arc::new(proc_fds::ProcFds),
        Arc::new(processes::Processes),
    ]
}
