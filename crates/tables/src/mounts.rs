//! `mounts`' host source: `/proc/self/mountinfo` (kql's own mount namespace), for a live
//! host without a kernel walk. The table itself is declared in `tables/mounts.sql`; this
//! fills the same columns.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray, UInt32Array};
use datafusion::error::{DataFusionError, Result};
use kql_engine::{ScanRequest, Scanned, SourceKind, TableSpec};
use kql_sources::mountinfo::{self, MountRow};

use crate::declared::{self, HostSource};

/// `/proc/self/mountinfo`.
pub const HOST: HostSource = HostSource {
    table: "mounts",
    kind: SourceKind::Procfs,
    doc: "/proc/self/mountinfo: kql's own mount namespace",
    scan,
};

fn scan(spec: &TableSpec, request: &ScanRequest) -> Result<Scanned> {
    let mut rows =
        mountinfo::read_own_mountinfo().map_err(|e| DataFusionError::Execution(format!("mounts: {e}")))?;
    if let Some(ids) = request.keys.values::<u32>("mount_id") {
        rows.retain(|row| ids.contains(&row.mount_id));
    }
    declared::host_batch(spec, &rows, column)
}

fn column(name: &str, rows: &[MountRow]) -> Result<ArrayRef> {
    let text =
        |f: fn(&MountRow) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef;
    let number =
        |f: fn(&MountRow) -> u32| Arc::new(UInt32Array::from_iter_values(rows.iter().map(f))) as ArrayRef;
    Ok(match name {
        "mount_id" => number(|r| r.mount_id),
        "parent_id" => number(|r| r.parent_id),
        "major" => number(|r| r.major),
        "minor" => number(|r| r.minor),
        "root" => text(|r| &r.root),
        "mount_point" => text(|r| &r.mount_point),
        "fstype" => text(|r| &r.fstype),
        "source" => text(|r| &r.source),
        other => return Err(DataFusionError::Execution(format!("mounts: mountinfo has no column {other}"))),
    })
}
