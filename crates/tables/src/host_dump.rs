//! The live-host side of the socket tables: a dump run inside each wanted network namespace
//! of this host (entered from a helper thread; kql itself never moves), with netlink's
//! fallback to procfs when sock_diag cannot dump this protocol here.

use std::io;

use datafusion::error::{DataFusionError, Result};
use kql_engine::SourceKind;
use kql_sources::netns::{self, NetNamespace};

use crate::target::Target;

/// What `table`'s dumps give in every namespace `wants`. When netlink answers `Unsupported`
/// (no `*_diag` module), procfs is used from then on and one warning says what that loses
/// (`procfs_instead`, e.g. "/proc/net/udp{,6} instead, which has no …") — or, with `--source
/// netlink`, that is an error. A namespace that cannot be dumped is skipped with a warning.
pub fn each_namespace<R>(
    table: &str,
    target: &Target,
    mut kind: SourceKind,
    wants: impl Fn(u64) -> bool,
    procfs_instead: &str,
    warnings: &mut Vec<String>,
    mut dump: impl FnMut(SourceKind, &NetNamespace) -> io::Result<Vec<R>>,
) -> Result<Vec<R>> {
    let mut rows = Vec::new();
    for ns in netns::network_namespaces() {
        if !wants(ns.inode) {
            continue;
        }
        let mut dumped = dump(kind, &ns);
        if let Err(e) = &dumped
            && e.kind() == io::ErrorKind::Unsupported
            && kind == SourceKind::Netlink
        {
            if target.is_forced(SourceKind::Netlink) {
                return Err(DataFusionError::Execution(format!("{table}: {e}")));
            }
            warnings.push(format!("{table}: {e}; so it comes from {procfs_instead}"));
            kind = SourceKind::Procfs;
            dumped = dump(kind, &ns);
        }
        match dumped {
            Ok(found) => rows.extend(found),
            Err(e) => warnings.push(format!("{table}: skipped network namespace {}: {e}", ns.inode)),
        }
    }
    Ok(rows)
}
