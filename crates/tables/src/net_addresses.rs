//! `net_addresses`' host source: an rtnetlink `RTM_GETADDR` dump inside each network
//! namespace in use, for a live host without a kernel walk. The table itself is declared in
//! `tables/net_addresses.sql`; this fills the same columns, with the same names for scopes
//! and flags.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, StringArray, UInt32Array, UInt64Array};
use datafusion::error::{DataFusionError, Result};
use kql_engine::{ScanRequest, Scanned, SourceKind, TableSpec};
use kql_sources::rtnetlink::{self, Address};

use crate::declared::{self, HostSource};
use crate::net_devices::{flag_names, in_each_namespace};

/// rtnetlink addresses.
pub const HOST: HostSource = HostSource {
    table: "net_addresses",
    kind: SourceKind::Netlink,
    doc: "rtnetlink RTM_GETADDR dump, in each network namespace in use (address is NULL)",
    scan,
};

/// The declaration's names of `IFA_F_*` bits 0, 1, … for IPv4 (`flags()` in
/// `tables/net_addresses.sql`); IPv6 calls bit 0 `temporary`.
const IFA_NAMES: &[&str] = &[
    "secondary",
    "nodad",
    "optimistic",
    "dadfailed",
    "home",
    "deprecated",
    "tentative",
    "permanent",
    "mngtmpaddr",
    "noprefixroute",
    "autojoin",
    "stable-privacy",
];

/// A row: an address and its namespace.
struct NetAddress {
    netns: u64,
    address: Address,
}

fn scan(spec: &TableSpec, request: &ScanRequest) -> Result<Scanned> {
    let (found, warnings) = in_each_namespace("net_addresses", request, rtnetlink::dump_addresses);
    let ifindexes = request.keys.values::<i32>("ifindex");
    let rows: Vec<NetAddress> = found
        .into_iter()
        .map(|(netns, address)| NetAddress { netns, address })
        .filter(|row| ifindexes.as_ref().is_none_or(|wanted| wanted.contains(&(row.address.ifindex as i32))))
        .collect();
    let mut scanned = declared::host_batch(spec, &rows, column)?;
    scanned.warnings = warnings;
    Ok(scanned)
}

fn column(name: &str, rows: &[NetAddress]) -> Result<ArrayRef> {
    let text = |f: fn(&Address) -> Option<&str>| {
        Arc::new(StringArray::from_iter(rows.iter().map(|r| f(&r.address)))) as ArrayRef
    };
    Ok(match name {
        "netns" => Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.netns))),
        "ifindex" => Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.address.ifindex as i32))),
        "family" => text(|a| Some(a.family)),
        "addr" => text(|a| Some(&a.address)),
        "prefix_len" => {
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| u32::from(r.address.prefix_len))))
        }
        "scope" => text(|a| Some(&a.scope)),
        "flags" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| address_flags(&r.address)))),
        "label" => text(|a| a.label.as_deref()),
        other => {
            return Err(DataFusionError::Execution(format!(
                "net_addresses: rtnetlink has no column {other}"
            )));
        }
    })
}

/// The flags' names, as the declaration's IPv4 or IPv6 `flags()` writes them.
fn address_flags(address: &Address) -> String {
    let names = flag_names(address.flags, IFA_NAMES);
    match (address.family, names.strip_prefix("secondary")) {
        ("inet6", Some(rest)) => format!("temporary{rest}"),
        _ => names,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_calls_its_secondary_bit_temporary() {
        let address = |family, flags| Address {
            ifindex: 1,
            family,
            address: "::1".into(),
            prefix_len: 128,
            scope: "host".into(),
            flags,
            label: None,
        };
        assert_eq!(address_flags(&address("inet", 0x81)), "secondary|permanent");
        assert_eq!(address_flags(&address("inet6", 0x81)), "temporary|permanent");
        assert_eq!(address_flags(&address("inet6", 0x80)), "permanent");
    }
}
