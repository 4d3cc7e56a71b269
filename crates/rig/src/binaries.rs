//! The rig's guest binaries, for callers outside this package (kql's own tests and
//! benchmarks), which cargo does not hand `CARGO_BIN_EXE_kql-rig-workload`: the workload and
//! the agent (which [`crate::guest::Guest::boot`] finds next to it), built with the cargo that
//! runs them, and located from cargo's own report of what it built.

use std::path::PathBuf;
use std::process::Command;

use crate::{Result, rig_error};

/// Builds (if needed) `kql-rig-workload` and `kql-rig-agent` and returns the workload's path
/// (the agent is next to it). Must run under cargo (`cargo test`, `cargo bench`), which sets
/// `$CARGO`.
pub fn workload() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").ok_or_else(|| rig_error!("$CARGO is not set: run under cargo"))?;
    let output = Command::new(cargo)
        .args(["build", "--quiet", "-p", "kql-rig", "--message-format=json"])
        .args(["--bin", "kql-rig-workload", "--bin", "kql-rig-agent"])
        .output()?;
    if !output.status.success() {
        return Err(rig_error!(
            "building kql-rig-workload and kql-rig-agent failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|message| {
            message["executable"].as_str().filter(|e| e.ends_with("kql-rig-workload")).map(PathBuf::from)
        })
        .ok_or_else(|| rig_error!("cargo did not report the kql-rig-workload executable"))
}
