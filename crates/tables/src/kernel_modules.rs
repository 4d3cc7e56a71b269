//! `kernel_modules`' host source: `/proc/modules`, for a live host without a kernel walk.
//! The table itself is declared in `tables/kernel_modules.sql`; this fills the same columns.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, UInt64Array};
use datafusion::error::{DataFusionError, Result};
use kql_engine::{ScanRequest, Scanned, SourceKind, TableSpec};
use kql_sources::proc_modules::{self, ModuleRow};

use crate::declared::{self, HostSource};

/// `/proc/modules`.
pub const HOST: HostSource = HostSource {
    table: "kernel_modules",
    kind: SourceKind::Procfs,
    doc: "/proc/modules (address is NULL; base is NULL where kptr_restrict hides it)",
    scan,
};

fn scan(spec: &TableSpec, request: &ScanRequest) -> Result<Scanned> {
    let mut rows = proc_modules::read_modules()
        .map_err(|e| DataFusionError::Execution(format!("kernel_modules: {e}")))?;
    if let Some(names) = request.keys.scalars("name") {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        rows.retain(|row| names.contains(&row.name));
    }
    declared::host_batch(spec, &rows, column)
}

fn column(name: &str, rows: &[ModuleRow]) -> Result<ArrayRef> {
    Ok(match name {
        "name" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.name))),
        "state" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.state))),
        "size" => Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.size))),
        "refcount" => Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.refcount))),
        "base" => Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.address))),
        other => {
            return Err(DataFusionError::Execution(format!(
                "kernel_modules: /proc/modules has no column {other}"
            )));
        }
    })
}
