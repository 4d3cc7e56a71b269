//! What the libdrgn-backed scans share: turning a walk error into a query error, and
//! counting the objects a walk had to skip into one warning.
//!
//! A live kernel (host or QEMU guest) keeps running while kql reads it, so a task can exit
//! between being listed and being read; that task is skipped and counted, not fatal.

use datafusion::error::DataFusionError;

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
