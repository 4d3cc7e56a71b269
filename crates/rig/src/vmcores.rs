//! vmcores kept between runs, for benchmarks: a guest of a kernel running a scenario, dumped
//! once to `<cache>/vmcores/<release>-<scenario>.vmcore` and reused afterwards.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::guest::{BootOptions, Guest};
use crate::kernels::{Kernel, Lock};

/// The cached vmcore of `kernel` running `scenario`, dumped now if there is none yet.
pub fn cached(kernel: &Kernel, scenario: &str, workload: &Path) -> Result<PathBuf> {
    let dir = crate::cache_dir().join("vmcores");
    let path = dir.join(format!("{}-{scenario}.vmcore", kernel.release));
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir)?;
    let _lock = Lock::exclusive(&dir.join(".lock"))?;
    if path.exists() {
        return Ok(path);
    }
    let partial = path.with_extension(format!("partial.{}", std::process::id()));
    let guest = Guest::boot(&BootOptions::new(kernel, scenario, workload))?;
    guest.dump(&partial)?;
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// The cached vmcore of a `series` kernel running `scenario`, and that kernel's debug vmlinux:
/// the kernel fetched, the workload built and the guest dumped as needed. Must run under cargo
/// (tests, benchmarks), which builds the workload.
pub fn of(series: crate::kernels::Series, scenario: &str) -> Result<(PathBuf, PathBuf)> {
    let kernel = crate::kernels::fetch(series)?;
    let workload = crate::binaries::workload()?;
    Ok((cached(&kernel, scenario, &workload)?, kernel.vmlinux))
}
