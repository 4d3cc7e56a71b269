//! The DataFusion side of a kernel table: a `TableProvider` that plans a [`KernelScanExec`],
//! and that plan node, which runs the table's scan on a blocking thread when first polled and
//! streams its rows in batches of the session's batch size.
//!
//! The scan is deferred to the first poll so that a hash join's dynamic filter (the build
//! side's keys) is complete by then and can narrow the scan, e.g. to the socket inodes of the
//! listeners when `proc_fds` is joined to `tcp_listeners`. Predicates pushed into the node
//! are kept for that purpose only and reported as not pushed down, so DataFusion still
//! evaluates them: key filtering in the scan is an optimisation, never a semantic change.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::config::ConfigOptions;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation, PushedDown,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::TryStreamExt;

use crate::pushdown::KeyFilter;
use crate::scan_log::ScanLog;
use crate::table::{KernelTable, ScanRequest};

/// A kernel table registered in a DataFusion session.
#[derive(Debug)]
pub struct KernelTableProvider {
    table: Arc<dyn KernelTable>,
    schema: SchemaRef,
    log: ScanLog,
}

impl KernelTableProvider {
    /// Wrap `table`; its scans report to `log`.
    pub fn new(table: Arc<dyn KernelTable>, log: ScanLog) -> Self {
        let schema = table.spec().schema();
        KernelTableProvider { table, schema, log }
    }
}

#[async_trait]
impl TableProvider for KernelTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let columns = match projection {
            Some(indices) => indices.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        Ok(Arc::new(KernelScanExec::new(
            Arc::clone(&self.table),
            Arc::new(self.schema.project(&columns)?),
            columns,
            self.log.clone(),
        )))
    }
}

/// Physical plan node that scans one kernel table.
#[derive(Debug, Clone)]
pub struct KernelScanExec {
    table: Arc<dyn KernelTable>,
    /// Indices of the table's columns this node outputs.
    columns: Vec<usize>,
    /// Predicates DataFusion offered to push into this node (static and dynamic).
    predicates: Vec<Arc<dyn PhysicalExpr>>,
    log: ScanLog,
    properties: Arc<PlanProperties>,
}

impl KernelScanExec {
    fn new(table: Arc<dyn KernelTable>, schema: SchemaRef, columns: Vec<usize>, log: ScanLog) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        KernelScanExec { table, columns, predicates: Vec::new(), log, properties: Arc::new(properties) }
    }

    /// The request for the table's scan, with key constraints as the predicates stand now.
    fn request(&self) -> ScanRequest {
        let keys: Vec<&str> = self.table.spec().columns.iter().filter(|c| c.key).map(|c| c.name).collect();
        let mut filter = KeyFilter::default();
        for predicate in &self.predicates {
            filter.and(KeyFilter::from_predicate(predicate, &keys));
        }
        ScanRequest { keys: filter }
    }

    async fn run(self) -> Result<RecordBatch> {
        let request = self.request();
        let table = Arc::clone(&self.table);
        let running = self.log.start(table.spec().name);
        let scanned = tokio::task::spawn_blocking(move || {
            let scanned = table.scan(&request);
            drop(running);
            scanned
        })
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))??;
        for warning in scanned.warnings {
            self.log.warn(warning);
        }
        Ok(scanned.batch.project(&self.columns)?)
    }
}

/// `rows` cut into batches of at most `batch_size` rows (zero-copy slices).
fn slices(rows: RecordBatch, batch_size: usize) -> impl Iterator<Item = RecordBatch> {
    let total = rows.num_rows();
    (0..total)
        .step_by(batch_size.max(1))
        .map(move |offset| rows.slice(offset, batch_size.min(total - offset)))
}

impl DisplayAs for KernelScanExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let names: Vec<&str> = self.columns.iter().map(|&i| self.table.spec().columns[i].name).collect();
        write!(
            f,
            "KernelScanExec: table={}, source={}, columns=[{}]",
            self.table.spec().name,
            self.table.source().kind.name(),
            names.join(", ")
        )?;
        if !self.predicates.is_empty() {
            let predicates: Vec<String> = self.predicates.iter().map(|p| p.to_string()).collect();
            write!(f, ", key_predicates=[{}]", predicates.join(", "))?;
        }
        Ok(())
    }
}

impl ExecutionPlan for KernelScanExec {
    fn name(&self) -> &str {
        "KernelScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for predicate in &self.predicates {
            if f(predicate)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal("KernelScanExec has no children".into()))
        }
    }

    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let offered = child_pushdown_result.parent_filters;
        let verdicts = vec![PushedDown::No; offered.len()];
        if offered.is_empty() {
            return Ok(FilterPushdownPropagation::with_parent_pushdown_result(verdicts));
        }
        let mut narrowed = self.clone();
        narrowed.predicates.extend(offered.into_iter().map(|f| f.filter));
        Ok(FilterPushdownPropagation::with_parent_pushdown_result(verdicts)
            .with_updated_node(Arc::new(narrowed) as Arc<dyn ExecutionPlan>))
    }

    fn execute(&self, _partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let batch_size = context.session_config().batch_size();
        let scan = futures::stream::once(self.clone().run())
            .map_ok(move |rows| futures::stream::iter(slices(rows, batch_size).map(Ok)))
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), scan)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, UInt64Array};

    fn numbers(count: u64) -> RecordBatch {
        let values: ArrayRef = Arc::new(UInt64Array::from_iter_values(0..count));
        RecordBatch::try_from_iter([("n", values)]).unwrap()
    }

    #[test]
    fn rows_are_cut_into_batches_of_the_batch_size() {
        let sizes: Vec<usize> = slices(numbers(10), 4).map(|b| b.num_rows()).collect();
        assert_eq!(sizes, [4, 4, 2]);
        let last = slices(numbers(10), 4).last().unwrap();
        assert_eq!(last.column(0).as_ref(), &UInt64Array::from(vec![8, 9]));
        assert_eq!(slices(numbers(0), 4).count(), 0);
    }
}
