//! kql's kernel tables, one file each: its columns (with descriptions), its documentation and
//! its scan. Adding a table means adding its file and one line to [`tables`].
//!
//! [`functions`] holds the SQL functions kql adds for queries about the target itself;
//! [`queries`] the saved queries, which are also views; [`engine`] puts all three together.

pub mod functions;
mod proc_fds;
mod processes;
pub mod queries;
mod ss_users;
mod tcp_listeners;

use std::sync::Arc;

use datafusion::error::Result;
use kql_engine::{Engine, KernelTable};

/// Every kernel table, in the order `kql tables` lists them.
pub fn tables() -> Vec<Arc<dyn KernelTable>> {
    vec![Arc::new(tcp_listeners::TcpListeners), Arc::new(proc_fds::ProcFds), Arc::new(processes::Processes)]
}

/// An engine with every table, function and saved-query view of kql.
pub fn engine() -> Result<Engine> {
    let engine = Engine::new(tables())?;
    for function in functions::functions() {
        match function.udf {
            functions::Udf::Scalar(udf) => engine.context().register_udf(udf),
            functions::Udf::Aggregate(udaf) => engine.context().register_udaf(udaf),
        }
    }
    let views: Vec<(String, &str)> = queries::all().iter().map(|q| (q.view(), q.sql)).collect();
    engine.create_views(&views)?;
    Ok(engine)
}
