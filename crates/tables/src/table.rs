//! [`Table`]: what every kql table shares — the target it reads and the source chosen for it
//! there — so that a table's file holds only its spec and its scans ([`TableScan`]).

use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::Arc;

use datafusion::error::Result;
use kql_engine::{KernelTable, ScanRequest, Scanned, Source, SourceKind, TableSpec};

use crate::target::Target;

/// One table's declaration: its spec, and how each of its sources fills it.
pub trait TableScan: Debug + Send + Sync + 'static {
    /// Name, description, columns and sources.
    fn spec() -> &'static TableSpec;
    /// Reads the rows from `source` on `target`.
    fn scan(target: &Target, source: SourceKind, request: &ScanRequest) -> Result<Scanned>;
}

/// A table bound to a target, with the source [`Target::source_for`] chose.
#[derive(Debug)]
pub struct Table<T> {
    target: Arc<Target>,
    source: &'static Source,
    table: PhantomData<T>,
}

impl<T: TableScan> Table<T> {
    /// The table `T` on `target`.
    pub fn on(target: &Arc<Target>) -> Arc<dyn KernelTable> {
        Arc::new(Table::<T> {
            target: Arc::clone(target),
            source: target.source_for(T::spec()),
            table: PhantomData,
        })
    }
}

impl<T: TableScan> KernelTable for Table<T> {
    fn spec(&self) -> &'static TableSpec {
        T::spec()
    }

    fn source(&self) -> &'static Source {
        self.source
    }

    fn scan(&self, request: &ScanRequest) -> Result<Scanned> {
        T::scan(&self.target, self.source.kind, request)
    }
}
