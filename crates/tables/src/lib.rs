//! kql's kernel tables, one file each: its columns (with descriptions), its documentation and
//! its scans (`TableScan`). Adding a table means adding its file and one line to [`tables`] —
//! or declaring it ([`declared`]: a `tables/*.sql` file, no Rust unless it needs a host source).
//!
//! [`target`] says which kernel is inspected and which source fills each table there;
//! [`functions`] holds the SQL functions kql adds for queries about the target itself;
//! [`queries`] the saved queries, which are also views; [`engine`] puts them all together.

pub mod declared;
pub mod functions;
mod host_dump;
mod kernel_modules;
mod kernel_walk;
mod mounts;
mod net_addresses;
mod net_devices;
mod proc_fds;
mod processes;
pub mod queries;
mod socket_keys;
mod ss_address;
mod ss_users;
mod table;
pub mod target;
mod target_check;
mod tcp_listeners;
mod tcp_sockets;
mod threads;
mod udp_sockets;
mod unix_sockets;

use std::sync::Arc;

use datafusion::error::Result;
use kql_engine::{Engine, KernelTable};

use crate::declared::{Declarations, DeclaredTable};
use crate::table::Table;
use crate::target::Target;

/// Every kernel table on `target`, in the order `kql tables` lists them: the hand-written
/// ones, then the declared ones (a declaration cannot replace a hand-written table).
pub fn tables(target: &Arc<Target>, declarations: &Declarations) -> Vec<Arc<dyn KernelTable>> {
    let mut tables = vec![
        Table::<tcp_listeners::TcpListeners>::on(target),
        Table::<tcp_sockets::TcpSockets>::on(target),
        Table::<proc_fds::ProcFds>::on(target),
        Table::<processes::Processes>::on(target),
        Table::<threads::Threads>::on(target),
        Table::<udp_sockets::UdpSockets>::on(target),
        Table::<unix_sockets::UnixSockets>::on(target),
    ];
    let built_in: Vec<&str> = tables.iter().map(|t| t.spec().name).collect();
    let declared: Vec<Arc<dyn KernelTable>> = declarations
        .all()
        .iter()
        .filter(|d| !built_in.contains(&d.declaration.name.as_str()))
        .map(|d| Arc::new(DeclaredTable::on(target, d, declarations)) as Arc<dyn KernelTable>)
        .collect();
    tables.extend(declared);
    tables
}

/// An engine over `target` with every table (the shipped declarations among them),
/// function and saved-query view of kql.
pub fn engine(target: &Arc<Target>) -> Result<Engine> {
    engine_with(target, &Declarations::shipped())
}

/// [`engine`] with `declarations` as the declared tables.
pub fn engine_with(target: &Arc<Target>, declarations: &Declarations) -> Result<Engine> {
    let engine = Engine::new(tables(target, declarations))?;
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
