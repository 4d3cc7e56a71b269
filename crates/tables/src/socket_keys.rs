//! What the socket tables' scans share: the key columns a request constrains (network
//! namespace, local port, inode), checked on each row, and the choice between the kernel
//! walk and the host source.

use std::collections::HashSet;

use datafusion::error::Result;
use kql_engine::{ScanRequest, SourceKind};

use crate::target::Binding;
use crate::target::Target;

/// The `netns`, `local_port` and `inode` values a scan request allows (`None`: any).
pub struct SocketKeys {
    netns: Option<HashSet<u64>>,
    ports: Option<HashSet<u16>>,
    inodes: Option<HashSet<u64>>,
}

impl SocketKeys {
    pub fn of(request: &ScanRequest) -> SocketKeys {
        SocketKeys {
            netns: request.keys.values("netns"),
            ports: request.keys.values("local_port"),
            inodes: request.keys.values("inode"),
        }
    }

    /// Whether rows of network namespace `netns` can be wanted.
    pub fn wants_netns(&self, netns: u64) -> bool {
        self.netns.as_ref().is_none_or(|n| n.contains(&netns))
    }

    /// Whether a row with these keys is wanted; `local_port` is `None` in a table without one.
    pub fn wants(&self, netns: u64, local_port: Option<u16>, inode: u64) -> bool {
        self.wants_netns(netns)
            && local_port.is_none_or(|port| self.ports.as_ref().is_none_or(|p| p.contains(&port)))
            && self.inodes.as_ref().is_none_or(|i| i.contains(&inode))
    }
}

/// A socket table's rows from the source `binding` chose: the kernel walk, or the host
/// source after the target's note on why it fell back (if it did).
pub fn rows_from_source<R>(
    target: &Target,
    binding: &Binding,
    warnings: &mut Vec<String>,
    kernel: impl FnOnce(&mut Vec<String>) -> Result<Vec<R>>,
    host: impl FnOnce(SourceKind, &mut Vec<String>) -> Result<Vec<R>>,
) -> Result<Vec<R>> {
    match binding.source.kind {
        SourceKind::Drgn => kernel(warnings),
        kind => {
            warnings.extend(target.take_fallback_note());
            host(kind, warnings)
        }
    }
}
