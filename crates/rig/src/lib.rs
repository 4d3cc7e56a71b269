//! kql's real-kernel test rig: Debian kernels with their debug info, booted under QEMU (TCG)
//! with a workload of ours (scenarios `basic`, `many`, `many20k`, `idle`, `sockets`, `churn`),
//! inspected live over QMP, from inside through an agent that runs commands for the host, or
//! dumped to ELF vmcores.
//!
//! - [`agent_protocol`]: the files through which the host has `kql-rig-agent` run commands in
//!   the guest;
//! - [`binaries`]: the guest binaries (workload, agent), built on demand for callers outside
//!   this package;
//! - [`kernels`]: resolve, download, extract and cache Debian kernels and their `-dbg` vmlinux;
//! - [`elf`]: the ELF notes the rig checks (GNU build id, VMCOREINFO);
//! - [`initramfs`]: a busybox initramfs with the modules, the workload and the agent the guest
//!   needs;
//! - [`guest`]: booting a guest (with an optional read-only `tools` share), waiting for it,
//!   running commands in it, dumping it, and always tearing it down;
//! - [`qmp`]: the few QEMU Machine Protocol commands the rig sends;
//! - [`truth`]: the ground truth the guest writes about itself, read back on the host;
//! - [`kernel_truth`]: the part of it about kernel objects (modules, mounts, slab caches,
//!   network devices, cgroups, BPF objects, workqueues), parsed;
//! - [`vmcores`]: vmcores dumped once and kept in the cache, for benchmarks.

pub mod agent_protocol;
pub mod binaries;
pub mod elf;
pub mod guest;
pub mod initramfs;
pub mod kernel_truth;
pub mod kernels;
pub mod qmp;
pub mod truth;
pub mod vmcores;

use std::fmt;

/// A rig failure, worded for the person running the tests.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error(error.to_string())
    }
}

/// Result of rig operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Builds an [`Error`] from a format string.
#[macro_export]
macro_rules! rig_error {
    ($($arg:tt)*) => { $crate::Error(format!($($arg)*)) };
}

/// Where the rig caches downloads and extracted kernels: `$KQL_CACHE`, else
/// `$XDG_CACHE_HOME/kql`, else `~/.cache/kql`.
pub fn cache_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("KQL_CACHE") {
        return dir.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
    });
    base.join("kql")
}
