//! The [`Engine`]: one DataFusion `SessionContext` with every kernel table registered.
//!
//! Configuration choices, each for a measured reason:
//! - one target partition: kernel tables are small, and repartitioning them costs more than
//!   it saves on two cores;
//! - a hash join's dynamic filter stays an `IN` list up to a million keys, so that the
//!   `proc_fds` scan under `tcp_listeners JOIN proc_fds` sees the listeners' inodes;
//! - `information_schema` on, so `SHOW TABLES` and `information_schema.columns` work;
//! - with [`Engine::limit_memory`], a memory pool caps what a statement's operators (sorts,
//!   joins, aggregates) and its collected result hold, and nothing spills to disk: past the
//!   cap the statement fails with "resources exhausted" instead of meeting the OOM killer.

use std::sync::{Arc, RwLock};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::error::Result;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement;
use futures::TryStreamExt;

use crate::policy::Policy;
use crate::scan::KernelTableProvider;
use crate::scan_log::ScanLog;
use crate::table::KernelTable;

/// Largest join build side whose keys are pushed into the probe-side scan as a set.
const MAX_PUSHED_JOIN_KEYS: usize = 1_000_000;

/// A SQL session over kernel tables.
pub struct Engine {
    context: SessionContext,
    tables: RwLock<Vec<Arc<dyn KernelTable>>>,
    /// The saved-query views, kql's own names like the tables.
    views: RwLock<Vec<String>>,
    log: ScanLog,
}

impl Engine {
    /// A session with `tables` registered under their names.
    pub fn new(tables: Vec<Arc<dyn KernelTable>>) -> Result<Self> {
        let mut config = SessionConfig::new().with_information_schema(true).with_target_partitions(1);
        let optimizer = &mut config.options_mut().optimizer;
        optimizer.hash_join_inlist_pushdown_max_distinct_values = MAX_PUSHED_JOIN_KEYS;
        optimizer.hash_join_inlist_pushdown_max_size = MAX_PUSHED_JOIN_KEYS * 16;
        let context = SessionContext::new_with_config(config);
        let engine =
            Engine { context, tables: RwLock::default(), views: RwLock::default(), log: ScanLog::default() };
        for table in tables {
            engine.add_table(table)?;
        }
        Ok(engine)
    }

    /// Caps the memory each statement's operators and result may hold at `bytes`; the
    /// tables and views registered so far stay.
    pub fn limit_memory(&mut self, bytes: usize) -> Result<()> {
        let no_spilling = DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled);
        let runtime =
            RuntimeEnvBuilder::new().with_memory_limit(bytes, 1.0).with_disk_manager_builder(no_spilling);
        let state = SessionStateBuilder::new_from_existing(self.context.state())
            .with_runtime_env(runtime.build_arc()?);
        self.context = SessionContext::new_with_state(state.build());
        Ok(())
    }

    /// Registers one more table (a kernel table declared in the session).
    pub fn add_table(&self, table: Arc<dyn KernelTable>) -> Result<()> {
        let provider = KernelTableProvider::new(Arc::clone(&table), self.log.clone());
        self.context.register_table(table.spec().name, Arc::new(provider))?;
        self.tables.write().unwrap_or_else(|poisoned| poisoned.into_inner()).push(table);
        Ok(())
    }

    /// Unregisters the table `name`; whether there was one.
    pub fn remove_table(&self, name: &str) -> Result<bool> {
        let mut tables = self.tables.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = tables.len();
        tables.retain(|t| t.spec().name != name);
        if tables.len() != before {
            self.context.deregister_table(name)?;
        }
        Ok(tables.len() != before)
    }

    /// Register `(name, SQL)` pairs as views. A view may use another one of the list, in
    /// any order; the error of the first view that cannot be planned is returned.
    pub fn create_views(&self, views: &[(String, &str)]) -> Result<()> {
        let mut pending: Vec<&(String, &str)> = views.iter().collect();
        while !pending.is_empty() {
            let mut failures = Vec::new();
            for view in &pending {
                let (name, sql) = view;
                let create = format!("create view \"{name}\" as {sql}");
                if let Err(error) = futures::executor::block_on(self.context.sql(&create)) {
                    failures.push((*view, error));
                }
            }
            if failures.len() == pending.len() {
                let (view, error) = failures.remove(0);
                return Err(error.context(format!("saved query view {}", view.0)));
            }
            pending = failures.into_iter().map(|(view, _)| view).collect();
        }
        let mut names = self.views.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        names.extend(views.iter().map(|(name, _)| name.clone()));
        Ok(())
    }

    /// The saved-query views [`Engine::create_views`] registered.
    pub fn views(&self) -> Vec<String> {
        self.views.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Whether `name` is one of kql's own: a kernel table or a saved-query view.
    pub fn is_kql_name(&self, name: &str) -> bool {
        self.table(name).is_some() || self.views().iter().any(|view| view == name)
    }

    /// The DataFusion session, for planning and running statements.
    pub fn context(&self) -> &SessionContext {
        &self.context
    }

    /// Every kernel table, in registration order.
    pub fn tables(&self) -> Vec<Arc<dyn KernelTable>> {
        self.tables.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The kernel table called `name`, if there is one.
    pub fn table(&self, name: &str) -> Option<Arc<dyn KernelTable>> {
        self.tables().into_iter().find(|t| t.spec().name == name)
    }

    /// What the scans of the current statement report: warnings, and which are running.
    pub fn scan_log(&self) -> &ScanLog {
        &self.log
    }

    /// Plan and run one SQL statement, returning its schema and rows.
    pub async fn run(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        collect(self.context.sql(sql).await?).await
    }

    /// Plan and run one parsed statement if `policy` lets it run, its `$name` placeholders
    /// bound to `params` (values, never SQL text), returning its schema and rows. The future
    /// owns what it needs (the session context is shared), so a caller can spawn it and stay
    /// free to cancel it.
    pub fn run_statement(
        &self,
        statement: Statement,
        params: &ParamValues,
        policy: Policy,
    ) -> impl Future<Output = Result<(SchemaRef, Vec<RecordBatch>)>> + Send + 'static {
        let (context, params, kql_names) = (self.context.clone(), params.clone(), self.kql_names());
        async move {
            let plan = context.state().statement_to_plan(statement).await?;
            policy.check(&plan, &|name| kql_names.iter().any(|kql| kql == name))?;
            let plan = plan.with_param_values(params)?;
            collect(context.execute_logical_plan(plan).await?).await
        }
    }

    /// The plan of one parsed statement, refused unless `policy` lets it run; its
    /// placeholders stay unbound.
    pub async fn plan_statement(&self, statement: Statement, policy: Policy) -> Result<LogicalPlan> {
        let plan = self.context.state().statement_to_plan(statement).await?;
        policy.check(&plan, &|name| self.is_kql_name(name))?;
        Ok(plan)
    }

    /// Every kql name: the kernel tables and the saved-query views.
    fn kql_names(&self) -> Vec<String> {
        let tables = self.tables().into_iter().map(|t| t.spec().name.to_string());
        tables.chain(self.views()).collect()
    }
}

/// The schema and every row of `frame`, the rows counted against the memory pool.
async fn collect(frame: DataFrame) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let schema = Arc::clone(frame.schema().inner());
    let reservation = MemoryConsumer::new("query result").register(frame.task_ctx().memory_pool());
    let mut stream = frame.execute_stream().await?;
    let mut batches = Vec::new();
    while let Some(batch) = stream.try_next().await? {
        reservation.try_grow(batch.get_array_memory_size())?;
        batches.push(batch);
    }
    Ok((schema, batches))
}
