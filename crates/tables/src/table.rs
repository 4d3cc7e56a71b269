//! [`Table`]: what every kql table shares — the target it reads and how it is filled there
//! ([`Binding`]) — so that a table's file holds only its spec, its type probe and its scans
//! ([`TableScan`]).

use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::Arc;

use datafusion::error::Result;
use kql_engine::{KernelTable, ScanRequest, Scanned, Source, TableSpec};
use kql_kernel::Types;

use crate::target::{Binding, Target};

/// One table's declaration: its spec, and how each of its sources fills it.
pub trait TableScan: Debug + Send + Sync + 'static {
    /// Name, description, columns and sources.
    fn spec() -> &'static TableSpec;
    /// The kernel walk's type and symbol lookups, reading no rows: whether `types` can fill
    /// the table. Tables without a kernel walk have nothing to look up.
    fn probe(_types: &Types) -> kql_drgn::Result<()> {
        Ok(())
    }
    /// Reads the rows as `binding` says, on `target`.
    fn scan(target: &Target, binding: &Binding, request: &ScanRequest) -> Result<Scanned>;
}

/// A table bound to a target, filled as [`Target::bind`] decided.
#[derive(Debug)]
pub struct Table<T> {
    target: Arc<Target>,
    binding: Binding,
    table: PhantomData<T>,
}

impl<T: TableScan> Table<T> {
    /// The table `T` on `target`.
    pub fn on(target: &Arc<Target>) -> Arc<dyn KernelTable> {
        Arc::new(Table::<T> {
            target: Arc::clone(target),
            binding: target.bind(T::spec(), &T::probe),
            table: PhantomData,
        })
    }
}

impl<T: TableScan> KernelTable for Table<T> {
    fn spec(&self) -> &'static TableSpec {
        T::spec()
    }

    fn source(&self) -> &'static Source {
        self.binding.source
    }

    fn types(&self) -> Option<String> {
        self.binding.types.as_ref().map(|(source, origin)| format!("{}: {origin}", source.name()))
    }

    fn scan(&self, request: &ScanRequest) -> Result<Scanned> {
        let mut scanned = T::scan(&self.target, &self.binding, request)?;
        if let Some(note) = self.target.take_note(T::spec().name) {
            scanned.warnings.insert(0, note);
        }
        Ok(scanned)
    }
}
