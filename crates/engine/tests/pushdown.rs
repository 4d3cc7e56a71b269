//! End-to-end pushdown through DataFusion: what scans are asked for, and that results stay
//! exact whatever a scan does with the keys.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, UInt64Array};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use kql_engine::{
    Column, ColumnType, Engine, KernelTable, ScanRequest, Scanned, Source, SourceKind, TableSpec,
};

/// The key sets each scan of a table was narrowed to, in scan order.
type Asked = Arc<Mutex<Vec<Option<HashSet<u64>>>>>;

const COLUMNS: &[Column] = &[Column::new("n", ColumnType::UInt64, "a number").key()];
const SOURCES: &[Source] = &[Source { kind: SourceKind::Procfs, doc: "numbers made in memory" }];

/// A table of the numbers `1..=size` that records the `n` values each scan was narrowed to.
#[derive(Debug)]
struct Numbers {
    spec: &'static TableSpec,
    size: u64,
    asked: Asked,
}

impl KernelTable for Numbers {
    fn spec(&self) -> &'static TableSpec {
        self.spec
    }
    fn source(&self) -> &'static Source {
        &SOURCES[0]
    }
    fn scan(&self, request: &ScanRequest) -> Result<Scanned> {
        self.asked.lock().unwrap().push(request.keys.values::<u64>("n"));
        let values: ArrayRef = Arc::new(UInt64Array::from_iter_values(1..=self.size));
        let batch = RecordBatch::try_new(self.spec.schema(), vec![values])?;
        Ok(Scanned { batch, warnings: vec![format!("{} scanned", self.spec.name)] })
    }
}

fn engine(sizes: &[(&'static str, u64)]) -> (Engine, Vec<Asked>) {
    let asked: Vec<_> = sizes.iter().map(|_| Arc::default()).collect();
    let tables = sizes
        .iter()
        .zip(&asked)
        .map(|(&(name, size), asked)| {
            let spec = TableSpec { name, doc: "numbers", columns: COLUMNS, sources: SOURCES };
            Arc::new(Numbers { spec: Box::leak(Box::new(spec)), size, asked: Arc::clone(asked) })
                as Arc<dyn KernelTable>
        })
        .collect();
    (Engine::new(tables).unwrap(), asked)
}

fn rows(engine: &Engine, sql: &str) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (_, batches) = runtime.block_on(engine.run(sql)).unwrap();
    batches.iter().map(RecordBatch::num_rows).sum()
}

#[test]
fn where_equality_and_in_reach_the_scan() {
    let (engine, asked) = engine(&[("numbers", 100)]);
    assert_eq!(rows(&engine, "select n from numbers where n in (5, 6, 500)"), 2);
    assert_eq!(asked[0].lock().unwrap().pop(), Some(Some(HashSet::from([5, 6, 500]))));
    assert_eq!(rows(&engine, "select n from numbers where n = 7 and n in (7, 8)"), 1);
    assert_eq!(asked[0].lock().unwrap().pop(), Some(Some(HashSet::from([7]))));
    assert_eq!(rows(&engine, "select n from numbers where n > 90 or n = 1"), 11);
    assert_eq!(asked[0].lock().unwrap().pop(), Some(None), "a disjunction narrows nothing");
}

#[test]
fn a_join_hands_its_build_side_keys_to_the_probe_scan() {
    let (engine, asked) = engine(&[("small", 3), ("big", 1000)]);
    assert_eq!(rows(&engine, "select * from small join big using (n)"), 3);
    assert_eq!(asked[0].lock().unwrap().as_slice(), [None]);
    assert_eq!(asked[1].lock().unwrap().as_slice(), [Some(HashSet::from([1, 2, 3]))]);
    assert_eq!(rows(&engine, "select * from small left join big using (n)"), 3);
    assert_eq!(asked[1].lock().unwrap().last(), Some(&Some(HashSet::from([1, 2, 3]))));
}

#[test]
fn scan_warnings_are_collected_for_the_front_end() {
    let (engine, _) = engine(&[("numbers", 1)]);
    rows(&engine, "select * from numbers");
    assert_eq!(engine.scan_log().drain_warnings(), ["numbers scanned"]);
    assert!(engine.scan_log().drain_warnings().is_empty());
}
