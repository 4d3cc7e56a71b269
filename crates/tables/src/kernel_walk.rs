//! What the libdrgn-backed scans share: running a walk over the kernel seen through the
//! table's type source, turning a walk error into a query error, and counting the objects a
//! walk had to skip into one warning.
//!
//! A live kernel (host or QEMU guest) keeps running while kql reads it, so a task can exit
//! between being listed and being read; that task is skipped and counted, not fatal.

use datafusion::error::{DataFusionError, Result};
use kql_kernel::Types;

use crate::target::{Binding, Target};

/// Runs `walk` over the target's kernel through the types `binding` names; a binding that
/// cannot fill its table fails here with its reason.
pub fn walk<T>(target: &Target, binding: &Binding, walk: impl FnOnce(&Types) -> Result<T>) -> Result<T> {
    if let Some(failure) = &binding.failure {
        return Err(DataFusionError::Execution(failure.clone()));
    }
    let (source, _) = binding.types.as_ref().ok_or_else(|| {
        DataFusionError::Execution(format!("{}: no kernel types are bound", binding.source.kind.name()))
    })?;
    let kernel = target.kernel()?;
    let types = kernel.types(*source).map_err(error)?;
    walk(&types)
}

/// A failed walk as a query error.
pub fn error(error: kql_drgn::Error) -> DataFusionError {
    DataFusionError::Execution(format!("kernel walk: {error}"))
}

/// The objects a scan skipped because reading them failed.
pub struct Skipped {
    table: &'static str,
    count: usize,
    first: Option<kql_drgn::Error>,
}

impl Skipped {
    /// Nothing skipped yet, for `table`.
    pub fn new(table: &'static str) -> Self {
        Skipped { table, count: 0, first: None }
    }

    /// The value, or `None` after counting the error.
    pub fn check<T>(&mut self, result: kql_drgn::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.count += 1;
                self.first.get_or_insert(e);
                None
            }
        }
    }

    /// Zero or one warning line.
    pub fn into_warnings(self) -> Vec<String> {
        match self.first {
            None => Vec::new(),
            Some(first) => vec![format!(
                "{}: skipped {} tasks that could not be read (changing while read?); first: {first}",
                self.table, self.count
            )],
        }
    }
}
