//! One request's statement: its own session (a fresh DataFusion state and memory pool over
//! the shared read-only engine, or a private engine when the request declares kernel
//! tables), its plan under [`Policy::ReadOnly`], and its run on a thread of its own under
//! the [`Limits`], so that a slow or failing statement never holds up another. Its batches
//! stream to the client as they are made; the server holds only a few of them.
//!
//! A request's SQL is any number of `CREATE KERNEL TABLE` statements (they only read, and
//! live for this request) followed by exactly one query.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::StreamExt;
use futures::stream::BoxStream;
use kql_declare::Statement as KqlStatement;
use kql_engine::{Engine, Policy, Refused};
use kql_tables::declared::Declarations;
use kql_tables::target::Target;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tonic::Status;

use crate::log::StatementLog;

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
    let state = SessionStateBuilder::new_from_existing(engine.context().state())
        .with_runtime_env(limits.runtime()?)
        .build();
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

/// A started statement: the schema of its result and its batches as they are made; the
/// stream ends with an error if the statement fails or passes a limit on the way.
pub struct Running {
    pub schema: SchemaRef,
    pub batches: BoxStream<'static, Result<RecordBatch, Status>>,
}

/// Starts `planned` with `params` bound on a thread of its own, within `limits`, holding
/// `permit` until it ends; `log` gets its line then. Batches are handed on as DataFusion
/// makes them, at most [`IN_FLIGHT`] ahead of the client; the statement stops at its next
/// pause once the client is gone or the timeout passed.
pub fn start(
    planned: Planned,
    params: ParamValues,
    limits: Limits,
    permit: OwnedSemaphorePermit,
    log: StatementLog,
) -> Result<Running, Status> {
    let Planned { context, plan } = planned;
    let plan = plan.with_param_values(params).map_err(|e| status(&e))?;
    let schema = Arc::new(plan.schema().as_arrow().clone());
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let (batches, received) = mpsc::channel(IN_FLIGHT);
    let (ended, end) = oneshot::channel();
    std::thread::Builder::new()
        .name("kql statement".into())
        .spawn(move || {
            let (rows, outcome) = run_here(context, plan, limits, deadline, batches);
            log.finish(rows, outcome.as_ref().err());
            drop(permit);
            let _ = ended.send(outcome);
        })
        .map_err(|e| Status::resource_exhausted(format!("cannot start the statement's thread: {e}")))?;
    let received = futures::stream::unfold(received, |mut received| async move {
        received.recv().await.map(|batch| (Ok(batch), received))
    });
    let end = futures::stream::once(end).filter_map(|outcome| async move {
        match outcome {
            Ok(Ok(())) => None,
            Ok(Err(status)) => Some(Err(status)),
            Err(_) => Some(Err(Status::internal("the statement's thread died"))),
        }
    });
    Ok(Running { schema, batches: received.chain(end).boxed() })
}

/// Batches a statement makes ahead of its client: what the server holds of one result.
const IN_FLIGHT: usize = 2;

/// Runs `plan` on a runtime of the calling thread, handing its batches to `batches`, until
/// its end, a limit, `deadline`, or the receiver gone: the rows handed on and the outcome.
fn run_here(
    context: SessionContext,
    plan: LogicalPlan,
    limits: Limits,
    deadline: tokio::time::Instant,
    batches: mpsc::Sender<RecordBatch>,
) -> (usize, Result<(), Status>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return (0, Err(Status::internal(format!("cannot start the query runtime: {e}")))),
    };
    let mut rows = 0;
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = tokio::time::timeout_at(deadline, hand_on(context, plan, &limits, &batches, &mut rows)) =>
                outcome.unwrap_or_else(|_| Err(limits.timed_out())),
            () = batches.closed() => Err(Status::cancelled("the client went away")),
        }
    });
    (rows, outcome)
}

/// Hands each batch of `plan` to `batches`, counting `rows`; refused as soon as the result
/// passes the row or byte limit.
async fn hand_on(
    context: SessionContext,
    plan: LogicalPlan,
    limits: &Limits,
    batches: &mpsc::Sender<RecordBatch>,
    rows: &mut usize,
) -> Result<(), Status> {
    let mut stream = stream_of(&context, plan).await.map_err(|e| limits.status(&e))?;
    let mut bytes = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| limits.status(&e))?;
        bytes += batch.get_array_memory_size();
        if *rows + batch.num_rows() > limits.rows {
            return Err(limits.too_many_rows());
        }
        if bytes > limits.bytes {
            return Err(limits.too_many_bytes());
        }
        *rows += batch.num_rows();
        if batches.send(batch).await.is_err() {
            return Err(Status::cancelled("the client went away"));
        }
    }
    Ok(())
}

/// The batches of `plan`, every operator of its physical plan made cooperative: each batch
/// any of them makes spends the task's budget, so that a join or aggregate that makes many
/// batches before returning one still pauses, and the timeout and a gone client stop it.
async fn stream_of(
    context: &SessionContext,
    plan: LogicalPlan,
) -> Result<SendableRecordBatchStream, DataFusionError> {
    let physical = context.state().create_physical_plan(&plan).await?;
    let cooperative = physical
        .transform_up(|node| {
            Ok(Transformed::yes(Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>))
        })?
        .data;
    execute_stream(cooperative, context.task_ctx())
}

impl Limits {
    /// A fresh DataFusion runtime for one statement: its memory pool bounded by the memory
    /// limit, and no spill files (the server writes nothing), so a statement that needs more
    /// memory is refused rather than spilled.
    fn runtime(&self) -> Result<Arc<RuntimeEnv>, Status> {
        RuntimeEnvBuilder::new()
            .with_memory_limit(self.memory, 1.0)
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
            .build_arc()
            .map_err(|e| status(&e))
    }

    /// A running statement's DataFusion error as a Flight status: an exhausted memory pool
    /// names the memory limit.
    fn status(&self, error: &DataFusionError) -> Status {
        match error.find_root() {
            DataFusionError::ResourcesExhausted(detail) => Status::resource_exhausted(format!(
                "the statement needs more memory than the memory limit ({} bytes, --max-memory): {detail}",
                self.memory
            )),
            _ => status(error),
        }
    }

    /// The refusal of a statement while the concurrent statement limit is reached.
    pub fn too_many_statements(&self) -> Status {
        Status::resource_exhausted(format!(
            "too many statements running: the concurrent statement limit is {} (--max-statements)",
            self.concurrent
        ))
    }

    /// The end of a statement that ran past the statement timeout.
    fn timed_out(&self) -> Status {
        Status::deadline_exceeded(format!(
            "the statement ran longer than the statement timeout ({} s, --statement-timeout)",
            self.timeout.as_secs_f64()
        ))
    }

    /// The end of a result that passed the row limit.
    fn too_many_rows(&self) -> Status {
        Status::resource_exhausted(format!(
            "the result has more rows than the row limit ({}, --max-rows)",
            self.rows
        ))
    }

    /// The end of a result that passed the byte limit.
    fn too_many_bytes(&self) -> Status {
        Status::resource_exhausted(format!(
            "the result is larger than the byte limit ({} bytes, --max-bytes)",
            self.bytes
        ))
    }
}

/// A DataFusion error as a Flight status: a refusal is `permission_denied`, anything else
/// is the client's statement's fault.
pub fn status(error: &DataFusionError) -> Status {
    match Refused::find(error) {
        Some(refused) => Status::permission_denied(refused.to_string()),
        None => Status::invalid_argument(error.find_root().to_string()),
    }
}
