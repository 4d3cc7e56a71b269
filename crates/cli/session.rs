//! A front-end session: the target and its engine, the tokio runtime they run on, and how
//! statements are split, run and printed, with scan warnings after each statement. In the
//! REPL a statement races Ctrl-C, and `\timing` reports how long each took.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use kql_engine::Engine;
use kql_tables::target::Target;

use crate::error::{CliError, Level, report};
use crate::format::{self, Format};
use crate::progress::Progress;

/// Everything needed to run SQL text and print its results.
pub struct Session {
    engine: Engine,
    target: Arc<Target>,
    runtime: tokio::runtime::Runtime,
    /// Output format of query results.
    pub format: Format,
    /// Print each statement's run time on stderr (`\timing`).
    pub timing: bool,
}

/// How a statement run in the REPL ended.
pub enum Outcome {
    /// It ran (and its result was printed).
    Done,
    /// Ctrl-C cancelled it.
    Cancelled,
}

impl Session {
    /// A session over every kql table of `target`, printing in `format`.
    pub fn new(format: Format, target: &Arc<Target>) -> Result<Self, CliError> {
        let engine = kql_tables::engine(target)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::new(format!("cannot start the query runtime: {e}")))?;
        Ok(Session { engine, target: Arc::clone(target), runtime, format, timing: false })
    }

    /// What is being inspected.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Inspect `target` from now on (`\target`).
    pub fn switch_target(&mut self, target: Arc<Target>) -> Result<(), CliError> {
        self.engine = kql_tables::engine(&target)?;
        self.target = target;
        Ok(())
    }

    /// The engine, for catalog questions.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Run every statement of `sql` in order, printing each result to `out`. Stops at the
    /// first failing statement. SQL with no statement at all is an error.
    pub fn run_sql(&self, sql: &str, out: &mut dyn Write) -> Result<(), CliError> {
        self.run_bound(sql, &no_params(), out)
    }

    /// [`Session::run_sql`] with `$name` placeholders bound to `params`.
    pub fn run_bound(&self, sql: &str, params: &ParamValues, out: &mut dyn Write) -> Result<(), CliError> {
        let statements = parse(sql)?;
        if self.format == Format::Parquet && statements.len() > 1 {
            return Err(CliError::new(
                "parquet output holds one statement's result; run one at a time".into(),
            ));
        }
        for statement in statements {
            let progress = Progress::start(self.engine.scan_log());
            let result = self.runtime.block_on(self.engine.run_statement(statement, params));
            drop(progress);
            self.print_warnings();
            let (schema, batches) = result?;
            format::write(out, self.format, &schema, &batches)?;
        }
        Ok(())
    }

    /// Like [`Session::run_sql`], but Ctrl-C cancels the running statement (its scans finish
    /// in the background, their rows are dropped) and the rest, and `\timing` is honoured.
    pub fn run_interactive(
        &self,
        sql: &str,
        params: &ParamValues,
        out: &mut dyn Write,
    ) -> Result<Outcome, CliError> {
        for statement in parse(sql)? {
            let started = Instant::now();
            let progress = Progress::start(self.engine.scan_log());
            let result = self.runtime.block_on(async {
                tokio::select! {
                    result = self.engine.run_statement(statement, params) => Some(result),
                    _ = tokio::signal::ctrl_c() => None,
                }
            });
            drop(progress);
            self.print_warnings();
            let Some(result) = result else { return Ok(Outcome::Cancelled) };
            let (schema, batches) = result?;
            format::write(out, self.format, &schema, &batches)?;
            if self.timing {
                eprintln!("Time: {:.3} ms", started.elapsed().as_secs_f64() * 1e3);
            }
        }
        Ok(Outcome::Done)
    }

    /// Print a batch computed outside SQL (catalog listings) in the session's format.
    pub fn print(&self, batch: &RecordBatch, out: &mut dyn Write) -> Result<(), CliError> {
        format::write(out, self.format, &batch.schema(), std::slice::from_ref(batch))?;
        Ok(())
    }

    /// Prints the statement's scan warnings, each once (a self-join scans a table twice).
    fn print_warnings(&self) {
        let mut printed = Vec::new();
        for warning in self.engine.scan_log().drain_warnings() {
            if !printed.contains(&warning) {
                report(Level::Warning, &format!("warning: {warning}"));
                printed.push(warning);
            }
        }
    }
}

/// No parameters: for SQL without `$name` placeholders.
pub fn no_params() -> ParamValues {
    ParamValues::Map(Default::default())
}

/// The statements of `sql`; none at all is an error.
fn parse(sql: &str) -> Result<VecDeque<Statement>, CliError> {
    let statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(CliError::from)?;
    if statements.is_empty() {
        return Err(CliError::new("no SQL statement given".into()));
    }
    Ok(statements)
}
