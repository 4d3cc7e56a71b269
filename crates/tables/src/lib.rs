//! kql's kernel tables, one file each: its columns (with descriptions), its documentation and
//! its scans (`TableScan`). Adding a table means adding its file and one line to [`tables`].
//!
//! [`target`] says which kernel is inspected and which source fills each table there;
//! [`functions`] holds the SQL functions kql adds for queries about the target itself;
//! [`queries`] the saved queries, which are also views; [`engine`] puts them all together.

pub mod functions;
mod kernel_walk;
mod proc_fds;
mod processes;
pub mod queries;
mod ss_users;
mod table;
pub mod target;
mod tcp_listeners;
mod threads;

use std::sync::Arc;

use datafusion::error::Result;
use kql_engine::{Engine, KernelTable};

use crate::table::Table;
use crate::target::Target;

/// Every kernel table on `target`, in the order `kql tables` lists them.
pub fn tables(target: &Arc<Target>) -> Vec<Arc<dyn KernelTable>> {
    vec![
        Table::<tcp_listeners::TcpListeners>::on(target),
        Table::<proc_fds::ProcFds>::on(target),
        Table::<processes::Processes>::on(target),
        Table::<threads::Threads>::on(target),
    ]
}

/// An engine over `target` with every table, function and saved-query view of kql.
pub fn engine(target: &Arc<Target>) -> Result<Engine> {
    let engine = Engine::new(tables(target))?;
    for function in functions::functions(target) {
        match function.udf {
            functions::Udf::Scalar(udf) => engine.context().register_udf(udf),
            functions::Udf::Aggregate(udaf) => engine.context().register_udaf(udaf),
        }
    }
    let views: Vec<(String, &str)> =
        queries::all().iter().filter(|q| q.params().is_empty()).map(|q| (q.view(), q.sql)).collect();
    engine.create_views(&views)?;
    Ok(engine)
}
