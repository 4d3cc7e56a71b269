//! `net_devices`' host source: an rtnetlink `RTM_GETLINK` dump inside each network namespace
//! in use, for a live host without a kernel walk. The table itself is declared in
//! `tables/net_devices.sql`; this fills the same columns, with the same names for flags and
//! states.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, StringArray, UInt32Array, UInt64Array};
use datafusion::error::{DataFusionError, Result};
use kql_engine::{ScanRequest, Scanned, SourceKind, TableSpec};
use kql_sources::netns;
use kql_sources::rtnetlink::{self, Link};

use crate::declared::{self, HostSource};

/// rtnetlink links.
pub const HOST: HostSource = HostSource {
    table: "net_devices",
    kind: SourceKind::Netlink,
    doc: "rtnetlink RTM_GETLINK dump, in each network namespace in use (address is NULL)",
    scan,
};

/// The declaration's names of `IFF_*` bits 0, 1, … (`flags()` in `tables/net_devices.sql`).
const IFF_NAMES: &[&str] = &[
    "UP",
    "BROADCAST",
    "DEBUG",
    "LOOPBACK",
    "POINTOPOINT",
    "NOTRAILERS",
    "RUNNING",
    "NOARP",
    "PROMISC",
    "ALLMULTI",
    "MASTER",
    "SLAVE",
    "MULTICAST",
    "PORTSEL",
    "AUTOMEDIA",
    "DYNAMIC",
    "LOWER_UP",
    "DORMANT",
    "ECHO",
];

/// A row: a link and its namespace.
struct Device {
    netns: u64,
    link: Link,
}

fn scan(spec: &TableSpec, request: &ScanRequest) -> Result<Scanned> {
    let (found, warnings) = in_each_namespace("net_devices", request, rtnetlink::dump_links);
    let ifindexes = request.keys.values::<i32>("ifindex");
    let rows: Vec<Device> = found
        .into_iter()
        .map(|(netns, link)| Device { netns, link })
        .filter(|row| ifindexes.as_ref().is_none_or(|wanted| wanted.contains(&(row.link.ifindex as i32))))
        .collect();
    let mut scanned = declared::host_batch(spec, &rows, column)?;
    scanned.warnings = warnings;
    Ok(scanned)
}

fn column(name: &str, rows: &[Device]) -> Result<ArrayRef> {
    let text = |f: fn(&Link) -> Option<&str>| {
        Arc::new(StringArray::from_iter(rows.iter().map(|r| f(&r.link)))) as ArrayRef
    };
    Ok(match name {
        "netns" => Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.netns))),
        "ifindex" => Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.link.ifindex as i32))),
        "name" => text(|l| Some(&l.name)),
        "kind" => text(|l| l.kind.as_deref()),
        "mac" => text(|l| l.mac.as_deref()),
        "mtu" => Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.link.mtu))),
        "flags" => {
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| flag_names(r.link.flags, IFF_NAMES))))
        }
        "operstate" => text(|l| Some(&l.operstate)),
        "master" => Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.link.master.map(|m| m as i32)))),
        "qdisc" => text(|l| l.qdisc.as_deref()),
        "type" => Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| u32::from(r.link.link_type)))),
        other => {
            return Err(DataFusionError::Execution(format!("net_devices: rtnetlink has no column {other}")));
        }
    })
}

/// What `dump` returns inside each network namespace in use (those the request's `netns`
/// keys allow), with the namespace's inode; one warning per namespace that could not be
/// read (entering it, or the dump, failed).
pub(crate) fn in_each_namespace<T: Send>(
    table: &str,
    request: &ScanRequest,
    dump: fn() -> io::Result<Vec<T>>,
) -> (Vec<(u64, T)>, Vec<String>) {
    let wanted: Option<HashSet<u64>> = request.keys.values::<u64>("netns");
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for ns in netns::network_namespaces() {
        if wanted.as_ref().is_some_and(|w| !w.contains(&ns.inode)) {
            continue;
        }
        match netns::run_in(&ns, dump).and_then(|dumped| dumped) {
            Ok(found) => rows.extend(found.into_iter().map(|row| (ns.inode, row))),
            Err(e) => warnings.push(format!("{table}: skipped network namespace {}: {e}", ns.inode)),
        }
    }
    (rows, warnings)
}

/// The names of the bits set in `value`, bit 0 first, joined by `|`, as the declaration
/// language's `flags()` writes them (bits without a name as one hex number).
pub(crate) fn flag_names(value: u32, names: &[&str]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut rest = value;
    for (bit, name) in names.iter().enumerate() {
        if value & (1 << bit) != 0 {
            parts.push(name.to_string());
            rest &= !(1 << bit);
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_named_like_the_declarations() {
        assert_eq!(flag_names(0x1 | 0x8, IFF_NAMES), "UP|LOOPBACK");
        assert_eq!(flag_names(0, IFF_NAMES), "");
        assert_eq!(flag_names(0x1 | 0x100000, IFF_NAMES), "UP|0x100000");
    }
}
