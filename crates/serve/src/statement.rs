//! One request's statement: its own session (a fresh DataFusion state and memory pool over
//! the shared read-only engine, or a private engine when the request declares kernel
//! tables), its plan under [`Policy::ReadOnly`], and its run on a thread of its own under
//! the [`Limits`], so that a slow or failing statement never holds up another.
//!
//! A request's SQL is any number of `CREATE KERNEL TABLE` statements (they only read, and
//! live for this request) followed by exactly one query.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::StreamExt;
use kql_declare::Statement as KqlStatement;
use kql_engine::{Engine, Policy, Refused};
use kql_tables::declared::Declarations;
use kql_tables::target::Target;
use tonic::Status;

/// What one statement may use; each refusal names its limit.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest run (`--statement-timeout`).
    pub timeout: Duration,
    /// Statements running at once (`--max-statements`).
    pub concurrent: usize,
    /// Result rows (`--max-rows`).
    pub rows: usize,
    /// Result bytes in Arrow memory (`--max-bytes`).
    pub bytes: usize,
    /// DataFusion memory pool of one statement (`--max-memory`).
    pub memory: usize,
}

/// The target and the engine every request starts from.
pub struct Shared {
    pub target: Arc<Target>,
    pub declarations: Declarations,
    pub engine: Arc<Engine>,
}

/// A planned statement and the session that planned it.
pub struct Planned {
    pub context: SessionContext,
    pub plan: LogicalPlan,
}

/// Plans `sql` in a session of its own, refusing anything but a query.
pub async fn plan(shared: &Shared, sql: &str, limits: &Limits) -> Result<Planned, Status> {
    let (declared, query) = split(sql)?;
    let engine = if declared.is_empty() {
        Arc::clone(&shared.engine)
    } else {
        let mut declarations = shared.declarations.clone();
        for declaration in declared {
            declarations.add(declaration, "this request".to_string());
        }
        Arc::new(kql_tables::engine_with(&shared.target, &declarations).map_err(|e| status(&e))?)
    };
    let runtime =
        RuntimeEnvBuilder::new().with_memory_limit(limits.memory, 1.0).build_arc().map_err(|e| status(&e))?;
    let state =
        SessionStateBuilder::new_from_existing(engine.context().state()).with_runtime_env(runtime).build();
    let context = SessionContext::new_with_state(state);
    let plan = context.state().statement_to_plan(query).await.map_err(|e| status(&e))?;
    Policy::ReadOnly.check(&plan, &|name| engine.is_kql_name(name)).map_err(|e| status(&e))?;
    Ok(Planned { context, plan })
}

/// The declarations and the one query of `sql`.
fn split(sql: &str) -> Result<(Vec<kql_declare::Declaration>, Statement), Status> {
    let statements = kql_declare::statements(sql).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let mut declarations = Vec::new();
    let mut queries = Vec::new();
    for statement in statements {
        match statement {
            KqlStatement::Create(declaration) => declarations.push(declaration),
            KqlStatement::Drop { name, .. } => {
                return Err(Status::invalid_argument(format!(
                    "DROP KERNEL TABLE {name}: a request's declarations end with it; nothing to drop"
                )));
            }
            KqlStatement::Sql(text) => queries.push(text),
        }
    }
    let [query] = queries.as_slice() else {
        return Err(Status::invalid_argument(format!(
            "a request runs one query (after any CREATE KERNEL TABLE), not {}",
            queries.len()
        )));
    };
    let mut parsed = DFParser::parse_sql_with_dialect(query, &GenericDialect {}).map_err(|e| status(&e))?;
    match (parsed.pop_front(), parsed.is_empty()) {
        (Some(statement), true) => Ok((declarations, statement)),
        _ => Err(Status::invalid_argument("expected one SQL statement")),
    }
}

/// Runs `planned` with `params` bound on a thread of its own, within `limits`; dropped (a
/// client gone, the timeout) it stops at the statement's next pause.
pub async fn run(
    planned: Planned,
    params: ParamValues,
    limits: Limits,
) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
    let Planned { context, plan } = planned;
    let plan = plan.with_param_values(params).map_err(|e| status(&e))?;
    let (done, result) = tokio::sync::oneshot::channel();
    let (_cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("kql statement".into())
        .spawn(move || {
            let _ = done.send(run_here(context, plan, limits, cancelled));
        })
        .map_err(|e| Status::resource_exhausted(format!("cannot start the statement's thread: {e}")))?;
    match tokio::time::timeout(limits.timeout, result).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(Status::internal("the statement's thread died")),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "the statement ran longer than the statement timeout ({} s, --statement-timeout)",
            limits.timeout.as_secs_f64()
        ))),
    }
}

/// Runs `plan` on a runtime of the calling thread until its end, a limit, or `cancelled`.
fn run_here(
    context: SessionContext,
    plan: LogicalPlan,
    limits: Limits,
    cancelled: tokio::sync::oneshot::Receiver<()>,
) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Status::internal(format!("cannot start the query runtime: {e}")))?;
    runtime.block_on(async {
        tokio::select! {
            result = collect(context, plan, limits) => result,
            _ = cancelled => Err(Status::cancelled("statement cancelled")),
        }
    })
}

/// Every row of `plan`, refused as soon as it passes the row or byte limit.
async fn collect(
    context: SessionContext,
    plan: LogicalPlan,
    limits: Limits,
) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
    let frame = context.execute_logical_plan(plan).await.map_err(|e| status(&e))?;
    let schema = Arc::clone(frame.schema().inner());
    let mut stream = frame.execute_stream().await.map_err(|e| status(&e))?;
    let (mut batches, mut rows, mut bytes) = (Vec::new(), 0, 0);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| status(&e))?;
        rows += batch.num_rows();
        bytes += batch.get_array_memory_size();
        if rows > limits.rows {
            return Err(Status::resource_exhausted(format!(
                "the result has more rows than the row limit ({}, --max-rows)",
                limits.rows
            )));
        }
        if bytes > limits.bytes {
            return Err(Status::resource_exhausted(format!(
                "the result is larger than the byte limit ({} bytes, --max-bytes)",
                limits.bytes
            )));
        }
        batches.push(batch);
    }
    Ok((schema, batches))
}

/// A DataFusion error as a Flight status: a refusal is `permission_denied`, an exhausted
/// memory pool names the memory limit, anything else is the client's statement's fault.
pub fn status(error: &DataFusionError) -> Status {
    if let Some(refused) = Refused::find(error) {
        return Status::permission_denied(refused.to_string());
    }
    match error.find_root() {
        DataFusionError::ResourcesExhausted(detail) => Status::resource_exhausted(format!(
            "the statement needs more memory than the memory limit (--max-memory): {detail}"
        )),
        root => Status::invalid_argument(root.to_string()),
    }
}
