//! The rig on real kernels: boot each Debian kernel with its workload, read the guest's own
//! ground truth, dump a vmcore, and check that the vmcore, the booted kernel and the extracted
//! debug vmlinux all agree (release and build id). Runs in CI from a cold cache.

use std::path::Path;
use std::time::Instant;

use kql_rig::elf;
use kql_rig::guest::{BootOptions, Guest};
use kql_rig::kernels::{self, Series};
use kql_rig::truth::Truth;

const WORKLOAD: &str = env!("CARGO_BIN_EXE_kql-rig-workload");

fn boot(series: Series, scenario: &str) -> Guest {
    boot_with_memory(series, scenario, None)
}

fn boot_with_memory(series: Series, scenario: &str, memory_mb: Option<u32>) -> Guest {
    let kernel = kernels::fetch(series).unwrap_or_else(|e| panic!("fetch {}: {e}", series.name()));
    let options = BootOptions { memory_mb, ..BootOptions::new(&kernel, scenario, Path::new(WORKLOAD)) };
    let started = Instant::now();
    let guest = Guest::boot(&options).unwrap_or_else(|e| panic!("boot {} {scenario}: {e}", series.name()));
    eprintln!("{} {scenario}: ready after {:.1?}", series.name(), started.elapsed());
    guest
}

/// Boot, check the guest against its kernel files, dump, check the vmcore, tear down.
fn guest_vmcore_and_vmlinux_agree(series: Series) {
    let guest = boot(series, "basic");
    let kernel = guest.kernel().clone();
    let truth = guest.truth().expect("ground truth");
    assert_eq!(truth.release, kernel.release, "the guest runs the kernel we extracted");
    assert_eq!(
        truth.build_id.as_deref(),
        Some(kernel.build_id.as_str()),
        "booted build id = vmlinux build id"
    );
    assert_scenario_listeners_are_in_the_guest_tables(&truth);

    let vmcore =
        std::env::temp_dir().join(format!("kql-rig-{}-{}.vmcore", series.name(), std::process::id()));
    guest.dump(&vmcore).expect("dump-guest-memory");
    let info = elf::vmcoreinfo(&vmcore);
    let _ = std::fs::remove_file(&vmcore);
    let info = info.expect("the vmcore carries VMCOREINFO");
    assert_eq!(info.get("OSRELEASE"), Some(&kernel.release));
    if let Some(build_id) = info.get("BUILD-ID") {
        assert_eq!(build_id, &kernel.build_id, "vmcore build id = vmlinux build id");
    }

    let qemu = guest.qemu_pid();
    drop(guest);
    assert!(!Path::new(&format!("/proc/{qemu}")).exists(), "QEMU {qemu} is gone after teardown");
}

/// Every listener the workload says it made is in its namespace's /proc/net/tcp{,6}, with
/// the accept queue it says it filled.
fn assert_scenario_listeners_are_in_the_guest_tables(truth: &Truth) {
    let listeners = truth.scenario["listeners"].as_array().expect("scenario listeners");
    assert!(listeners.len() >= 9, "the basic scenario made its listeners: {listeners:?}");
    for listener in listeners {
        let found = truth.listeners().find(|entry| {
            Some(entry.inode) == listener["inode"].as_u64()
                && Some(u64::from(entry.local_port)) == listener["port"].as_u64()
                && Some(entry.netns) == listener["netns"].as_u64()
        });
        let entry = found.unwrap_or_else(|| panic!("{listener} is not in the guest's tables"));
        assert_eq!(Some(u64::from(entry.rx_queue)), listener["queued"].as_u64(), "{listener}");
    }
}

#[test]
fn debian_6_1_guest() {
    guest_vmcore_and_vmlinux_agree(Series::Bookworm61);
}

#[test]
fn debian_6_12_guest() {
    guest_vmcore_and_vmlinux_agree(Series::Bookworm612);
}

#[test]
fn debian_5_10_guest() {
    guest_vmcore_and_vmlinux_agree(Series::Bullseye510);
}

#[test]
fn many_listeners_guest() {
    let guest = boot(Series::Bookworm61, "many");
    let truth = guest.truth().expect("ground truth");
    assert!(truth.listeners().count() >= 5000, "5,000 listeners in the guest");
}

#[test]
fn many20k_listeners_guest() {
    let guest = boot_with_memory(Series::Bookworm61, "many20k", Some(768));
    let truth = guest.truth().expect("ground truth");
    assert!(truth.listeners().count() >= 20_000, "20,000 listeners in the guest");
}
