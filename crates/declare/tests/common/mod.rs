//! What the tests over the rig's 6.1 `basic` vmcore share: finding it and opening it with BTF.

use std::fs;
use std::path::{Path, PathBuf};

use kql_drgn::{Program, Target};
use kql_kernel::Kernel;
use kql_rig::kernels::Series;

/// The 6.1 `basic` vmcore: from the cache, else made by the rig.
pub fn basic_vmcore() -> PathBuf {
    if let Ok(release) = fs::read_to_string(kql_rig::cache_dir().join("kernels").join("6.1.release")) {
        let vmcore = kql_rig::cache_dir().join("vmcores").join(format!("{}-basic.vmcore", release.trim()));
        if vmcore.is_file() {
            return vmcore;
        }
    }
    kql_rig::vmcores::of(Series::Bookworm61, "basic").expect("the basic vmcore of 6.1").0
}

/// `vmcore` opened, with the BTF and kallsyms in its own memory loaded.
pub fn open(vmcore: &Path) -> Kernel {
    let mut kernel = Kernel::new(Program::attach(Target::CoreDump(vmcore.into())).expect("open the vmcore"));
    kernel.load_btf(None).expect("BTF and kallsyms from the vmcore's memory");
    kernel
}
