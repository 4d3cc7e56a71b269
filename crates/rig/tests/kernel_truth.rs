//! The kernel-object ground truth on real kernels: one `basic` boot per Debian kernel (6.1,
//! 6.12, 5.10), taking turns, and every accessor of `kql_rig::kernel_truth` returns what the
//! workload made or what any such guest must have: its modules, its mounts, slab caches,
//! the devices of both network namespaces, the cgroups `kqlw/a` and `kqlw/b`, the BPF
//! program and map, workqueues. What each kernel yielded is printed (`--nocapture`).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use kql_rig::guest::{BootOptions, Guest};
use kql_rig::kernel_truth::Part;
use kql_rig::kernels::{self, Series};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_kql-rig-workload");

/// One TCG guest at a time: this machine has 2 cores.
static ONE_GUEST: Mutex<()> = Mutex::new(());

const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;

fn check(series: Series) {
    let _turn = ONE_GUEST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let kernel = kernels::fetch(series).unwrap_or_else(|e| panic!("fetch {}: {e}", series.name()));
    let started = Instant::now();
    let options = BootOptions::new(&kernel, "basic", Path::new(WORKLOAD));
    let guest = Guest::boot(&options).unwrap_or_else(|e| panic!("boot {}: {e}", series.name()));
    let booted = started.elapsed();
    let truth = guest.truth().expect("ground truth");
    let name = series.name();
    let skipped = truth.skipped_parts().expect("skipped.tsv");
    for (part, reason) in &skipped {
        eprintln!("{name}: skipped {part}: {reason}");
    }
    assert!(skipped.is_empty(), "{name}: a guest provides every part: {skipped:?}");

    let modules = truth.modules().expect("modules");
    let module = |name: &str| modules.iter().find(|m| m.name == name);
    let ninep = module("9pnet").unwrap_or_else(|| panic!("{name}: 9pnet is loaded: {modules:?}"));
    assert!(ninep.used_by.iter().any(|user| user == "9p"), "{name}: 9p uses 9pnet: {ninep:?}");
    assert!(ninep.refcount.is_some_and(|count| count >= 1) && ninep.state == "Live", "{ninep:?}");
    assert!(module("dummy").is_some(), "{name}: dummy is loaded");

    let mounts = truth.mounts().expect("mounts");
    let at = |point: &str| mounts.iter().find(|m| m.mount_point == point);
    assert_eq!(at("/proc").map(|m| m.fstype.as_str()), Some("proc"), "{name}: {mounts:?}");
    assert_eq!(at("/share").map(|m| m.fstype.as_str()), Some("9p"), "{name}: {mounts:?}");
    assert_eq!(at("/sys/fs/cgroup").map(|m| m.fstype.as_str()), Some("cgroup2"), "{name}: {mounts:?}");
    assert!(truth.mount_namespace().expect("mount namespace") > 0);
    let super_blocks = truth.mounted_super_blocks().expect("super blocks");
    assert!(super_blocks.len() >= 5 && super_blocks.len() <= mounts.len(), "{name}: {super_blocks:?}");

    let slabs = truth.slab_caches().expect("slab caches");
    let task = slabs.iter().find(|s| s.name == "task_struct").expect("a task_struct cache");
    assert!(task.object_size.is_some_and(|size| size <= task.size), "{name}: {task:?}");
    assert!(task.active_objs <= task.num_objs && task.objects_per_slab > 0, "{name}: {task:?}");

    let namespaces = truth.net_namespaces().expect("network namespaces");
    let of_processes: BTreeSet<u64> = truth.processes.iter().map(|p| p.netns).collect();
    assert_eq!(namespaces, of_processes.into_iter().collect::<Vec<_>>(), "{name}");
    let main_netns = truth.scenario["processes"][0]["netns"].as_u64().expect("main netns");
    let netns_worker =
        truth.scenario["processes"].as_array().unwrap().iter().find(|p| p["name"] == "kqlw-netns");
    let other_netns = netns_worker.and_then(|p| p["netns"].as_u64()).expect("kqlw-netns");
    assert_eq!(namespaces.len(), 2, "{name}: the initial namespace and kqlw-netns's: {namespaces:?}");
    let devices = truth.net_devices().expect("network devices");
    let device = |netns: u64, device: &str| {
        devices
            .iter()
            .find(|d| d.netns == netns && d.name == device)
            .unwrap_or_else(|| panic!("{name}: no {device} in {netns}: {devices:?}"))
    };
    for netns in [main_netns, other_netns] {
        let lo = device(netns, "lo");
        assert_eq!((lo.ifindex, lo.mtu, lo.mac.as_str()), (1, 65536, "00:00:00:00:00:00"), "{lo:?}");
        assert_eq!(lo.flags & (IFF_UP | IFF_LOOPBACK), IFF_UP | IFF_LOOPBACK, "{lo:?}");
    }
    let dummy0 = device(main_netns, "dummy0");
    assert_eq!(dummy0.flags & IFF_UP, 0, "dummy0 stays down: {dummy0:?}");
    let ours = device(other_netns, "kqlw-dummy");
    assert_eq!((ours.mtu, ours.mac.as_str()), (1400, "02:6b:71:6c:77:01"), "{ours:?}");
    assert_eq!(ours.flags & IFF_UP, IFF_UP, "{ours:?}");

    let cgroups = truth.cgroups().expect("cgroups");
    let paths: Vec<&str> = cgroups.iter().map(|c| c.path.as_str()).collect();
    for path in ["/", "/kqlw", "/kqlw/a", "/kqlw/b"] {
        assert!(paths.contains(&path), "{name}: cgroup {path} in {paths:?}");
    }
    assert_eq!(cgroups[0].id, 1, "{name}: the root cgroup's id: {cgroups:?}");
    let ids: BTreeSet<u64> = cgroups.iter().map(|c| c.id).collect();
    assert_eq!(ids.len(), cgroups.len(), "{name}: cgroup ids are unique: {cgroups:?}");

    let bpf = truth.bpf().expect("bpf");
    assert_eq!((bpf.prog_type, bpf.prog_name.as_str()), (1, "kqlw_prog"), "{name}: {bpf:?}");
    assert_eq!((bpf.map_type, bpf.key_size, bpf.value_size, bpf.max_entries), (2, 4, 8, 4), "{bpf:?}");
    assert_eq!(bpf.map_name, "kqlw_map", "{bpf:?}");
    assert!(bpf.prog_id > 0 && bpf.map_id > 0, "{bpf:?}");
    assert!(bpf.prog_tag.len() == 16 && bpf.prog_tag.bytes().all(|b| b.is_ascii_hexdigit()), "{bpf:?}");
    assert_eq!(i64::from(bpf.pid), truth.scenario["workload_pid"].as_i64().unwrap(), "{bpf:?}");

    let workqueues = truth.workqueues().expect("workqueues");
    assert!(workqueues.iter().any(|w| w == "writeback"), "{name}: {workqueues:?}");

    eprintln!(
        "{name} ({}, ready after {booted:.1?}): {} modules, {} mounts, {} mounted superblocks, {} slab caches \
         ({} with object_size), {} network namespaces, {} devices ({}), {} cgroups, bpf prog {} map {}, \
         {} workqueues ({})",
        truth.release,
        modules.len(),
        mounts.len(),
        super_blocks.len(),
        slabs.len(),
        slabs.iter().filter(|s| s.object_size.is_some()).count(),
        namespaces.len(),
        devices.len(),
        devices.iter().map(|d| format!("{}:{}", d.netns, d.name)).collect::<Vec<_>>().join(" "),
        cgroups.len(),
        bpf.prog_id,
        bpf.map_id,
        workqueues.len(),
        workqueues.join(" "),
    );
    assert!(Part::ALL.iter().all(|part| truth.skipped(*part).is_none()));
}

#[test]
fn debian_6_1_kernel_truth() {
    check(Series::Bookworm61);
}

#[test]
fn debian_6_12_kernel_truth() {
    check(Series::Bookworm612);
}

#[test]
fn debian_5_10_kernel_truth() {
    check(Series::Bullseye510);
}
