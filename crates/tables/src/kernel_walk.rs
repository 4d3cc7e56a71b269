//! What the libdrgn-backed scans share: running a walk over the kernel seen through the
//! table's type source, turning a walk error into a query error, and counting the objects a
//! walk had to skip into one warning.
//!
//! A live kernel (host or QEMU guest) keeps running while kql reads it, so a task can exit
//! between being listed and being read; a vmcore may be damaged. Either way the object (or
//! bucket, or list link) is skipped and named in a warning — "changing while read?" only on
//! a live target — and every row that can be read is still returned.

use datafusion::error::{DataFusionError, Result};
use kql_kernel::{Memory, Types};

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

/// Runs a walk that goes past what it cannot read (`walk(types, memory, skipped)`) for
/// `table`: its rows, with one warning per skipped place appended to `warnings`; an error
/// only if the walk as a whole fails (its structures cannot be found or are implausible).
pub fn tolerant<T>(
    table: &'static str,
    target: &Target,
    binding: &Binding,
    warnings: &mut Vec<String>,
    walk_with: impl FnOnce(&Types, &Memory, &mut kql_kernel::Skipped) -> kql_drgn::Result<T>,
) -> Result<T> {
    let mut skipped = Skipped::new(table, target);
    let rows = walk(target, binding, |types| {
        walk_with(types, &Memory::new(types), skipped.kernel())
            .map_err(|e| DataFusionError::Execution(format!("{table}: {e}")))
    })?;
    warnings.extend(skipped.into_warnings());
    Ok(rows)
}

/// A failed walk as a query error.
pub fn error(error: kql_drgn::Error) -> DataFusionError {
    DataFusionError::Execution(format!("kernel walk: {error}"))
}

/// The objects a scan skipped because reading them failed, and whether the target can
/// change under the walk.
pub struct Skipped {
    table: &'static str,
    dump: bool,
    places: kql_kernel::Skipped,
}

impl Skipped {
    /// Nothing skipped yet, for `table` on `target`.
    pub fn new(table: &'static str, target: &Target) -> Self {
        Skipped { table, dump: target.is_dump(), places: kql_kernel::Skipped::default() }
    }

    /// The value, or `None` after noting `place` (what was read, where) with the error.
    pub fn check<T>(&mut self, result: kql_drgn::Result<T>, place: impl FnOnce() -> String) -> Option<T> {
        self.places.check(result, place)
    }

    /// The list kernel walks note what they skip in.
    pub fn kernel(&mut self) -> &mut kql_kernel::Skipped {
        &mut self.places
    }

    /// One line saying how many places were skipped and why they may be, then one per
    /// place named (at most eight), then how many more.
    pub fn into_warnings(self) -> Vec<String> {
        let count = self.places.count();
        if count == 0 {
            return Vec::new();
        }
        let why = match self.dump {
            true => "the vmcore is damaged there",
            false => "changing while read?",
        };
        let places = if count == 1 { "place" } else { "places" };
        let mut lines = vec![format!(
            "{}: skipped {count} {places} that could not be read ({why}); the rows that could be read are shown",
            self.table
        )];
        lines.extend(self.places.places().iter().map(|place| format!("{}: skipped {place}", self.table)));
        let unnamed = count - self.places.places().len();
        if unnamed > 0 {
            lines.push(format!("{}: and {unnamed} more places skipped", self.table));
        }
        lines
    }
}
