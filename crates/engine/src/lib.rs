//! kql's SQL engine: how a kernel table is described and scanned, and the DataFusion session
//! that plans and runs SQL over those tables.
//!
//! - [`table`]: the [`KernelTable`] trait every table implements (declarative columns, a scan);
//! - [`pushdown`]: turning SQL predicates into key sets a scan can use (`pid IN (…)`, join keys);
//! - [`scan`]: the DataFusion `TableProvider` and `ExecutionPlan` that run a table's scan;
//! - [`session`]: the [`Engine`], a `SessionContext` with every table registered;
//! - [`policy`]: which statements a front end lets run (read-only server, CLI without writes);
//! - [`scan_log`]: what scans report while a statement runs (running tables, warnings about
//!   unreadable fds, …) for the front end to show.

pub mod policy;
pub mod pushdown;
pub mod scan;
pub mod scan_log;
pub mod session;
pub mod table;

pub use policy::{Policy, Refused};
pub use pushdown::KeyFilter;
pub use scan_log::{Running, ScanLog};
pub use session::Engine;
pub use table::{Column, ColumnType, KernelTable, ScanRequest, Scanned, Source, SourceKind, TableSpec};
