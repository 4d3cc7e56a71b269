//! The contract between a kernel table and the engine.
//!
//! A table is declarative in the spirit of osquery's table specs: a [`TableSpec`] constant
//! (name, one-paragraph description, static list of [`Column`]s, each with a one-line
//! description and a flag for key columns a scan can narrow on), and a `scan` that fills one
//! record batch. The spec is the table's contract, whatever source fills it.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;

use crate::pushdown::KeyFilter;

/// Field metadata key under which a column's description is stored in the Arrow schema.
pub const DESCRIPTION_KEY: &str = "description";

/// One column of a kernel table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name, lower snake case.
    pub name: &'static str,
    /// Type of the column.
    pub data_type: ColumnType,
    /// Whether the column may hold NULL.
    pub nullable: bool,
    /// Whether a scan can use `=` / `IN` predicates on this column to do less work.
    pub key: bool,
    /// One-line description shown by `kql describe` and in the README.
    pub doc: &'static str,
}

impl Column {
    /// A non-null column.
    pub const fn new(name: &'static str, data_type: ColumnType, doc: &'static str) -> Self {
        Column { name, data_type, nullable: false, key: false, doc }
    }

    /// The same column, allowed to hold NULL.
    pub const fn nullable(self) -> Self {
        Column { nullable: true, ..self }
    }

    /// The same column, marked as a key the scan narrows on.
    pub const fn key(self) -> Self {
        Column { key: true, ..self }
    }

    /// The Arrow field of this column, with its description in the metadata.
    pub fn field(&self) -> Field {
        let metadata = HashMap::from([(DESCRIPTION_KEY.to_string(), self.doc.to_string())]);
        Field::new(self.name, self.data_type.arrow(), self.nullable).with_metadata(metadata)
    }
}

/// The types kernel-table columns have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `BOOLEAN`
    Boolean,
    /// `SMALLINT UNSIGNED` (ports)
    UInt16,
    /// `INT` (pids, fds)
    Int32,
    /// `INT UNSIGNED` (uids, queue lengths)
    UInt32,
    /// `BIGINT`
    Int64,
    /// `BIGINT UNSIGNED` (inodes, addresses, ids)
    UInt64,
    /// `VARCHAR`
    Utf8,
    /// `TIMESTAMP` in nanoseconds, UTC
    Timestamp,
}

impl ColumnType {
    /// The SQL name of the type, for documentation.
    pub fn sql_name(self) -> &'static str {
        match self {
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::UInt16 => "SMALLINT UNSIGNED",
            ColumnType::Int32 => "INT",
            ColumnType::UInt32 => "INT UNSIGNED",
            ColumnType::Int64 => "BIGINT",
            ColumnType::UInt64 => "BIGINT UNSIGNED",
            ColumnType::Utf8 => "VARCHAR",
            ColumnType::Timestamp => "TIMESTAMP",
        }
    }

    /// The Arrow type of this column type.
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::UInt16 => DataType::UInt16,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::UInt32 => DataType::UInt32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::UInt64 => DataType::UInt64,
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        }
    }
}

/// What a single scan is asked for.
#[derive(Debug, Clone, Default)]
pub struct ScanRequest {
    /// Key-column constraints the rows must satisfy (a superset of the rows is fine: the
    /// engine still applies every predicate after the scan).
    pub keys: KeyFilter,
}

/// What a scan produced: rows, and warnings about what it had to skip.
#[derive(Debug)]
pub struct Scanned {
    /// All columns of the table, in declaration order.
    pub batch: RecordBatch,
    /// Lines for the user, e.g. "proc_fds: 3 fds of PID 1 were not readable".
    pub warnings: Vec<String>,
}

/// The kinds of source that can fill a table; `--source` forces one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A walk of kernel memory with libdrgn: live kernel, vmcore or QEMU guest.
    Drgn,
    /// Netlink (`sock_diag`), on the live host.
    Netlink,
    /// `/proc`, on the live host.
    Procfs,
}

impl SourceKind {
    /// The name used on the command line and in `kql tables`.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Drgn => "drgn",
            SourceKind::Netlink => "netlink",
            SourceKind::Procfs => "procfs",
        }
    }

    /// Whether the source reads the machine kql runs on, whatever the target.
    pub fn reads_this_host(self) -> bool {
        self != SourceKind::Drgn
    }
}

/// One way a table can be filled.
#[derive(Debug)]
pub struct Source {
    /// Which kind of source.
    pub kind: SourceKind,
    /// What it reads, e.g. "netlink sock_diag dump, in each network namespace".
    pub doc: &'static str,
}

/// What a table is, independent of the source that fills it.
#[derive(Debug)]
pub struct TableSpec {
    /// Table name as used in SQL.
    pub name: &'static str,
    /// What one row is.
    pub doc: &'static str,
    /// The table's columns, in order.
    pub columns: &'static [Column],
    /// Every source that can fill the table, preferred first.
    pub sources: &'static [Source],
}

/// A table of kernel objects.
pub trait KernelTable: Debug + Send + Sync {
    /// The table's name, description and columns.
    fn spec(&self) -> &'static TableSpec;
    /// The source that fills the table on this target.
    fn source(&self) -> &'static Source;
    /// For a kernel walk, where its types come from here and why (`kql tables`).
    fn types(&self) -> Option<String> {
        None
    }
    /// Where the table is defined: "built in", or the file or session that declared it.
    fn origin(&self) -> String {
        "built in".to_string()
    }
    /// A declared table's `CREATE KERNEL TABLE` statement.
    fn declaration(&self) -> Option<&str> {
        None
    }
    /// Why the target's kernel types cannot fill this table (a member or type it lacks),
    /// if that was found out when the table was bound.
    fn bind_failure(&self) -> Option<&str> {
        None
    }
    /// Read the rows. Runs on a blocking thread; may take as long as the kernel needs.
    fn scan(&self, request: &ScanRequest) -> Result<Scanned>;
}

impl TableSpec {
    /// The Arrow schema of the table, with column descriptions in the field metadata.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(self.columns.iter().map(Column::field).collect::<Vec<_>>()))
    }
}
