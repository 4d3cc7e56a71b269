//! A front-end session: the engine, the tokio runtime it runs on, and how statements are
//! split, run and printed, with scan warnings after each statement.

use std::io::Write;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use kql_engine::Engine;
use kql_tables::target::Target;

use crate::error::CliError;
use crate::format::{self, Format};

/// Everything needed to run SQL text and print its results.
pub struct Session {
    engine: Engine,
    target: Arc<Target>,
    runtime: tokio::runtime::Runtime,
    /// Output format of query results.
    pub format: Format,
}

impl Session {
    /// A session over every kql table of `target`, printing in `format`.
    pub fn new(format: Format, target: &Arc<Target>) -> Result<Self, CliError> {
        let engine = kql_tables::engine(target)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::new(format!("cannot start the query runtime: {e}")))?;
        Ok(Session { engine, target: Arc::clone(target), runtime, format })
    }

    /// What is being inspected.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The engine, for catalog questions.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Run every statement of `sql` in order, printing each result to `out`. Stops at the
    /// first failing statement. SQL with no statement at all is an error.
    pub fn run_sql(&self, sql: &str, out: &mut dyn Write) -> Result<(), CliError> {
        let statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(CliError::from)?;
        if statements.is_empty() {
            return Err(CliError::new("no SQL statement given".into()));
        }
        for statement in statements {
            let result = self.runtime.block_on(self.engine.run_statement(statement));
            self.print_warnings();
            let (schema, batches) = result?;
            format::write(out, self.format, &schema, &batches)?;
        }
        Ok(())
    }

    /// Print a batch computed outside SQL (catalog listings) in the session's format.
    pub fn print(&self, batch: &RecordBatch, out: &mut dyn Write) -> Result<(), CliError> {
        format::write(out, self.format, &batch.schema(), std::slice::from_ref(batch))?;
        Ok(())
    }

    fn print_warnings(&self) {
        for warning in self.engine.warnings().drain() {
            eprintln!("kql: warning: {warning}");
        }
    }
}
