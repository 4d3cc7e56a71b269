//! A front-end session: the target and its engine, the declared kernel tables, the tokio
//! runtime they run on, and how statements are split, run and printed, with scan warnings
//! after each statement. `CREATE KERNEL TABLE` and `DROP KERNEL TABLE` are run here; every
//! other statement goes to DataFusion, under the session's [`Policy`] (no writes unless
//! `--allow-writes`). A statement with no result columns (DDL) prints nothing. In the REPL a
//! statement races Ctrl-C; `\timing` (and `--timing` anywhere) reports how long each took.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use kql_declare::{Declaration, Statement as KqlStatement};
use kql_engine::{Engine, Policy};
use kql_tables::declared::{Declarations, DeclaredTable};
use kql_tables::target::Target;

use crate::depth;
use crate::error::{CliError, Level, report};
use crate::format::{self, Format};
use crate::memory;
use crate::progress::Progress;

/// Everything needed to run SQL text and print its results.
pub struct Session {
    engine: Engine,
    target: Arc<Target>,
    declarations: Declarations,
    runtime: tokio::runtime::Runtime,
    /// The most memory a statement may hold, in bytes.
    memory_limit: usize,
    policy: Policy,
    /// Output format of query results.
    pub format: Format,
    /// Print each statement's run time on stderr (`\timing`, `--timing`).
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
    /// A session over every kql table of `target`, `declarations` among them, printing in
    /// `format`, running what `policy` allows.
    pub fn new(
        format: Format,
        target: &Arc<Target>,
        declarations: Declarations,
        policy: Policy,
    ) -> Result<Self, CliError> {
        let memory_limit = memory::default_limit();
        let mut engine = kql_tables::engine_with(target, &declarations)?;
        engine.limit_memory(memory_limit)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::new(format!("cannot start the query runtime: {e}")))?;
        let target = Arc::clone(target);
        Ok(Session { engine, target, declarations, runtime, memory_limit, policy, format, timing: false })
    }

    /// Caps each statement's memory at `bytes` (`--memory-limit`).
    pub fn limit_memory(&mut self, bytes: usize) -> Result<(), CliError> {
        self.engine.limit_memory(bytes)?;
        self.memory_limit = bytes;
        Ok(())
    }

    /// What is being inspected.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Inspect `target` from now on (`\target`).
    pub fn switch_target(&mut self, target: Arc<Target>) -> Result<(), CliError> {
        self.engine = kql_tables::engine_with(&target, &self.declarations)?;
        self.engine.limit_memory(self.memory_limit)?;
        self.target = target;
        Ok(())
    }

    /// The engine, for catalog questions.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Run every statement of `sql` in order, printing each result to `out`. Stops at the
    /// first failing statement. SQL with no statement at all is an error.
    pub fn run_sql(&mut self, sql: &str, out: &mut dyn Write) -> Result<(), CliError> {
        self.run_bound(sql, &no_params(), out)
    }

    /// [`Session::run_sql`] with `$name` placeholders bound to `params`.
    pub fn run_bound(
        &mut self,
        sql: &str,
        params: &ParamValues,
        out: &mut dyn Write,
    ) -> Result<(), CliError> {
        let statements = parse(sql)?;
        if self.format == Format::Parquet && statements.len() > 1 {
            return Err(CliError::new(
                "parquet output holds one statement's result; run one at a time".into(),
            ));
        }
        for statement in statements {
            let Some(statement) = self.run_kql(statement)? else { continue };
            let started = Instant::now();
            let progress = Progress::start(self.engine.scan_log());
            let result = self.runtime.block_on(self.engine.run_statement(statement, params, self.policy));
            drop(progress);
            self.print_warnings();
            let (schema, batches) = result?;
            self.write(out, &schema, &batches)?;
            self.print_time(started);
        }
        Ok(())
    }

    /// Like [`Session::run_sql`], but Ctrl-C cancels the running statement (its scans finish
    /// in the background, their rows are dropped) and the rest, and `\timing` is honoured.
    pub fn run_interactive(
        &mut self,
        sql: &str,
        params: &ParamValues,
        out: &mut dyn Write,
    ) -> Result<Outcome, CliError> {
        for statement in parse(sql)? {
            let Some(statement) = self.run_kql(statement)? else { continue };
            let started = Instant::now();
            let progress = Progress::start(self.engine.scan_log());
            let result = self.run_cancellable(statement, params);
            drop(progress);
            self.print_warnings();
            let Some(result) = result else { return Ok(Outcome::Cancelled) };
            let (schema, batches) = result?;
            self.write(out, &schema, &batches)?;
            self.print_time(started);
        }
        Ok(Outcome::Done)
    }

    /// With `\timing` (or `--timing`), how long the statement started at `started` took.
    fn print_time(&self, started: Instant) {
        if self.timing {
            eprintln!("Time: {:.3} ms", started.elapsed().as_secs_f64() * 1e3);
        }
    }

    /// Runs `statement` on a thread of its own while this one waits for it or for Ctrl-C, so
    /// that a plan computing without a pause (a large cross join) cannot hold off the cancel.
    /// `None`: cancelled; the statement is dropped at its next pause, its rows unread.
    fn run_cancellable(
        &self,
        statement: Statement,
        params: &ParamValues,
    ) -> Option<Result<(SchemaRef, Vec<RecordBatch>), CliError>> {
        let running = self.engine.run_statement(statement, params, self.policy);
        let (done, result) = tokio::sync::oneshot::channel();
        let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("kql statement".into())
            .stack_size(depth::STACK_BYTES)
            .spawn(move || {
                let _ = done.send(run_until_cancelled(running, cancelled));
            });
        if let Err(e) = spawned {
            return Some(Err(CliError::new(format!("cannot start the statement's thread: {e}"))));
        }
        self.runtime.block_on(async {
            tokio::select! {
                result = result => Some(result.unwrap_or_else(|_| Err(CliError::new("the statement's thread died".into())))),
                _ = tokio::signal::ctrl_c() => {
                    let _ = cancel.send(());
                    None
                }
            }
        })
    }

    /// Runs a kernel-table statement, or hands SQL back for DataFusion.
    fn run_kql(&mut self, statement: KqlStatement) -> Result<Option<Statement>, CliError> {
        match statement {
            KqlStatement::Sql(sql) => Ok(Some(parse_one(&sql)?)),
            KqlStatement::Create(declaration) => self.declare(declaration).map(|()| None),
            KqlStatement::Drop { name, if_exists } => self.drop_declared(&name, if_exists).map(|()| None),
        }
    }

    /// `CREATE KERNEL TABLE`: the table, bound to this target's kernel, from now on.
    fn declare(&mut self, declaration: Declaration) -> Result<(), CliError> {
        let name = declaration.name.clone();
        if self.declarations.get(&name).is_none() && self.engine.table(&name).is_some() {
            return Err(CliError::new(format!("table {name} is built into kql; choose another name")));
        }
        if let Some(existing) = self.engine.table(&name) {
            return Err(CliError::new(format!(
                "table {name} exists ({}); DROP KERNEL TABLE {name} first",
                existing.origin()
            )));
        }
        let mut declarations = self.declarations.clone();
        declarations.add(declaration, "this session".to_string());
        let declared = declarations.get(&name).expect("just added");
        let table = DeclaredTable::on(&self.target, declared, &declarations);
        if let Some(failure) = table.failure() {
            return Err(CliError::new(failure));
        }
        self.engine.add_table(Arc::new(table))?;
        self.declarations = declarations;
        Ok(())
    }

    /// `DROP KERNEL TABLE`: a declared table (shipped, the user's or the session's) is gone
    /// for the rest of the session.
    fn drop_declared(&mut self, name: &str, if_exists: bool) -> Result<(), CliError> {
        if self.declarations.get(name).is_none() {
            return match (self.engine.table(name), if_exists) {
                (Some(_), _) => {
                    Err(CliError::new(format!("{name} is built into kql, not a declared kernel table")))
                }
                (None, true) => Ok(()),
                (None, false) => {
                    Err(CliError::new(format!("no declared kernel table {name} (`kql tables` lists them)")))
                }
            };
        }
        self.engine.remove_table(name)?;
        self.declarations.remove(name);
        self.target.forget(name);
        Ok(())
    }

    /// Prints one statement's result; one without columns (`CREATE VIEW`, `SET`) prints
    /// nothing rather than an empty box.
    fn write(
        &self,
        out: &mut dyn Write,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(), CliError> {
        if !schema.fields().is_empty() {
            format::write(out, self.format, schema, batches)?;
        }
        Ok(())
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
fn parse(sql: &str) -> Result<Vec<KqlStatement>, CliError> {
    let statements = kql_declare::statements(sql).map_err(|e| CliError::new(e.to_string()))?;
    if statements.is_empty() {
        return Err(CliError::new("no SQL statement given".into()));
    }
    Ok(statements)
}

/// The one SQL statement of `sql`.
fn parse_one(sql: &str) -> Result<Statement, CliError> {
    let mut statements: VecDeque<Statement> =
        DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(CliError::from)?;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(statement), true) => depth::check(statement),
        _ => Err(CliError::new(format!("expected one SQL statement: {}", sql.trim()))),
    }
}

/// Runs `statement` to its end on a runtime of the calling thread, unless `cancelled` fires
/// first (then its result is dropped; it says nothing).
fn run_until_cancelled(
    statement: impl Future<Output = datafusion::error::Result<(SchemaRef, Vec<RecordBatch>)>>,
    cancelled: tokio::sync::oneshot::Receiver<()>,
) -> Result<(SchemaRef, Vec<RecordBatch>), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the query runtime: {e}")))?;
    runtime.block_on(async {
        tokio::select! {
            result = statement => result.map_err(CliError::from),
            _ = cancelled => Err(CliError::new("query cancelled".into())),
        }
    })
}
