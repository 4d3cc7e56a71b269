//! kql's SQL engine: how a kernel table is described and scanned, and the DataFusion session
//! that plans and runs SQL over those tables.
//!
//! - [`table`]: the [`KernelTable`] trait every table implements (declarative columns, a scan);
//! - [`pushdown`]: turning SQL predicates into key sets a scan can use (`pid IN (…)`, join keys);
//! - [`scan`]: the DataFusion `TableProvider` and `ExecutionPlan` that run a table's scan;
//! - [`session`]: the [`Engine`], a `SessionContext` with every table registered;
//! - [`warnings`]: non-fatal problems a scan reports (unreadable fds, …) for the front end to print.

pub mod pushdown;
pub mod scan;
pub mod session;
pub mod table;
pub mod warnings;

pub use pushdown::KeyFilter;
pub use session::Engine;
pub use table::{Column, ColumnType, KernelTable, ScanRequest, Scanned, Source, SourceKind, TableSpec};
pub use warnings::Warnings;
