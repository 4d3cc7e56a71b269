//! Which statements a front end lets run, decided on the DataFusion logical plan before it
//! runs (and so before anything is written or registered).
//!
//! - [`Policy::ReadOnly`] (the Flight SQL server): queries only. DataFusion's own
//!   `SQLOptions` with DDL, DML and statements off is checked too, so a plan kind kql does
//!   not name here is still refused.
//! - [`Policy::Cli`] (the CLI and REPL by default): no file is written and no kql name
//!   changes: `COPY … TO`, `INSERT`, `DROP` and a `CREATE VIEW`/`TABLE` over a kql table or
//!   saved query are refused; `CREATE EXTERNAL TABLE` reading the user's own file, a view of
//!   a new name and `SET` stay allowed.
//! - [`Policy::AllowWrites`] (`kql --allow-writes`): everything DataFusion runs.

use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, WriteOp};

/// A statement a [`Policy`] refused: one line saying what and why, wrapped in
/// `DataFusionError::External` so that front ends can show it without DataFusion's prefix.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl Refused {
    /// The refusal inside `error`, if `error` is one.
    pub fn find(error: &DataFusionError) -> Option<&Refused> {
        match error.find_root() {
            DataFusionError::External(inner) => inner.downcast_ref::<Refused>(),
            _ => None,
        }
    }
}

/// What a front end lets a statement do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Read only: every DDL, DML and `SET`-like statement is refused.
    ReadOnly,
    /// No writes and no change to kql's own names; reading the user's files is allowed.
    Cli,
    /// Everything.
    AllowWrites,
}

impl Policy {
    /// Refuses `plan` if it does something this policy forbids anywhere in its tree (an
    /// `EXPLAIN ANALYZE COPY …` too). `is_kql_name` says whether a name is one of kql's own
    /// tables or saved queries. The error is one line saying what was refused and why.
    pub fn check(self, plan: &LogicalPlan, is_kql_name: &dyn Fn(&str) -> bool) -> Result<()> {
        if self == Policy::AllowWrites {
            return Ok(());
        }
        let mut refusal = None;
        plan.apply_with_subqueries(|node| {
            refusal = self.refusal(node, is_kql_name);
            Ok(if refusal.is_some() { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
        })?;
        if let Some(what) = refusal {
            return Err(self.refuse(&what));
        }
        if self == Policy::ReadOnly {
            let read_only =
                SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
            read_only.verify_plan(plan).map_err(|e| self.refuse(&e.strip_backtrace()))?;
        }
        Ok(())
    }

    /// What `node` would do that this policy refuses, if anything.
    fn refusal(self, node: &LogicalPlan, is_kql_name: &dyn Fn(&str) -> bool) -> Option<String> {
        let over_kql_name = |name: &TableReference| {
            is_kql_name(name.table())
                .then(|| format!("{} over the kql name {}", ddl_verb(node), name.table()))
        };
        match node {
            LogicalPlan::Copy(copy) => Some(format!("COPY … TO '{}' (it writes a file)", copy.output_url)),
            LogicalPlan::Dml(dml) => Some(format!("{} {} (it writes)", dml_verb(&dml.op), dml.table_name)),
            LogicalPlan::Ddl(ddl) if self == Policy::ReadOnly => Some(match ddl {
                DdlStatement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE (it reads files)".to_string(),
                _ => format!("{} (it changes the catalog)", ddl_verb(node)),
            }),
            LogicalPlan::Statement(statement) if self == Policy::ReadOnly => {
                Some(format!("{} (it changes the session)", statement.name()))
            }
            LogicalPlan::Ddl(ddl) => match ddl {
                DdlStatement::DropTable(_)
                | DdlStatement::DropView(_)
                | DdlStatement::DropCatalogSchema(_)
                | DdlStatement::DropFunction(_) => {
                    Some(format!("{} (it changes the catalog)", ddl_verb(node)))
                }
                DdlStatement::CreateView(view) => over_kql_name(&view.name),
                DdlStatement::CreateMemoryTable(table) => over_kql_name(&table.name),
                DdlStatement::CreateExternalTable(table) => over_kql_name(&table.name),
                _ => None,
            },
            _ => None,
        }
    }

    /// The one-line refusal of `what` under this policy, with what to do instead.
    fn refuse(self, what: &str) -> DataFusionError {
        DataFusionError::External(Box::new(Refused(match self {
            Policy::ReadOnly => format!("refused: {what}; this server is read-only"),
            _ => format!(
                "refused: {what}; kql writes no files and keeps its names by default \
                 (save results with -o FILE and --format, or run with --allow-writes)"
            ),
        })))
    }
}

/// The SQL words of a DDL node: `CREATE VIEW`, `DROP TABLE`, ….
fn ddl_verb(node: &LogicalPlan) -> &'static str {
    let LogicalPlan::Ddl(ddl) = node else { return "statement" };
    match ddl {
        DdlStatement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE",
        DdlStatement::CreateMemoryTable(_) => "CREATE TABLE",
        DdlStatement::CreateView(_) => "CREATE VIEW",
        DdlStatement::CreateCatalogSchema(_) => "CREATE SCHEMA",
        DdlStatement::CreateCatalog(_) => "CREATE DATABASE",
        DdlStatement::CreateIndex(_) => "CREATE INDEX",
        DdlStatement::DropTable(_) => "DROP TABLE",
        DdlStatement::DropView(_) => "DROP VIEW",
        DdlStatement::DropCatalogSchema(_) => "DROP SCHEMA",
        DdlStatement::CreateFunction(_) => "CREATE FUNCTION",
        DdlStatement::DropFunction(_) => "DROP FUNCTION",
    }
}

/// The SQL words of a DML operation: `INSERT INTO`, `DELETE FROM`, ….
fn dml_verb(op: &WriteOp) -> &'static str {
    match op {
        WriteOp::Insert(_) => "INSERT INTO",
        WriteOp::Delete => "DELETE FROM",
        WriteOp::Update => "UPDATE",
        WriteOp::Ctas => "CREATE TABLE AS",
        WriteOp::Truncate => "TRUNCATE",
        WriteOp::MergeInto(_) => "MERGE INTO",
        _ => "a write to",
    }
}
