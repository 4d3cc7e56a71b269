//! The container walks ([`XArray`], [`RbTree`], [`cpu_offsets`]) on real kernels: vmcores of
//! the rig's `basic` scenario, each checked against a truth the walk did not read.
//!
//! - XArray: the IDR of `init_pid_ns` holds a `struct pid` for every pid in use, so its
//!   indexes are the ids of every thread on the task lists (`init_task.tasks`, then each
//!   `signal->thread_head`), kernel threads included, and each entry's `numbers[0]` names
//!   its index and `init_pid_ns`. [`XArray::load`] of each index gives the same entry.
//! - rbtree: vmalloc keeps its areas (`struct vmap_area`) both in red-black trees and in
//!   lists sorted by address: `vmap_area_root` and `vmap_area_list` (busy areas, until 6.9)
//!   and `free_vmap_area_root` and `free_vmap_area_list` (free space, every kernel). The
//!   in-order walk must give the list, in the list's order, with `va_start` strictly
//!   increasing. The CFS runqueue of each cpu (`rq.cfs.tasks_timeline`, an
//!   `rb_root_cached`) must start at its `rb_leftmost`.
//! - per-cpu: the guest boots with `-smp 1` (`kql_rig::guest`), so there is one possible
//!   cpu, and the per-cpu `runqueues` of each cpu says in `cpu` which one it is.
//!
//! The 6.1 vmcore is dumped if missing, as the other vmcore tests do; 6.12 and 5.10 are
//! checked when their vmcores are in the cache (`kql-rig vmcore 6.12`). A kernel whose
//! vmcore cannot be had is skipped with a message. 6.1 and 6.12 are read with DWARF and with
//! BTF (whose results must agree); 5.10 with DWARF only (its VMCOREINFO does not locate
//! kallsyms, so BTF cannot be found in its memory).

use std::collections::BTreeSet;
use std::path::PathBuf;

use kql_drgn::{DebugInfo, Program, Target};
use kql_kernel::list::list_nodes;
use kql_kernel::percpu::cpu_offsets;
use kql_kernel::rbtree::RbTree;
use kql_kernel::sched::TaskWalker;
use kql_kernel::xarray::XArray;
use kql_kernel::{Kernel, Memory, TypeName, TypeSource, Types};
use kql_rig::kernels::{self, Series};

/// `-smp` of the rig's guests.
const GUEST_CPUS: usize = 1;

/// A vmcore to check: its kernel series, scenario, file and vmlinux.
struct Vmcore {
    series: Series,
    scenario: &'static str,
    file: PathBuf,
    vmlinux: PathBuf,
}

/// The vmcores that can be had: 6.1's `basic` (dumped if missing), and those cached of 6.1's
/// `many`, 6.12's and 5.10's `basic`.
fn vmcores() -> Vec<Vmcore> {
    let mut found = Vec::new();
    match kql_rig::vmcores::of(Series::Bookworm61, "basic") {
        Ok((file, vmlinux)) => {
            found.push(Vmcore { series: Series::Bookworm61, scenario: "basic", file, vmlinux })
        }
        Err(e) => eprintln!("skipping 6.1: no vmcore of it: {e}"),
    }
    for (series, scenario) in
        [(Series::Bookworm61, "many"), (Series::Bookworm612, "basic"), (Series::Bullseye510, "basic")]
    {
        match cached_vmcore(series, scenario) {
            Some((file, vmlinux)) => found.push(Vmcore { series, scenario, file, vmlinux }),
            None => eprintln!(
                "skipping {0} {scenario}: its vmcore is not in the cache (`kql-rig vmcore {0} {scenario}` makes it)",
                series.name()
            ),
        }
    }
    found
}

/// The vmcore of `series` running `scenario` if the rig cached it, without fetching or
/// booting anything.
fn cached_vmcore(series: Series, scenario: &str) -> Option<(PathBuf, PathBuf)> {
    let kernels = kql_rig::cache_dir().join("kernels");
    let release = std::fs::read_to_string(kernels.join(format!("{}.release", series.name()))).ok()?;
    let vmcore = kql_rig::cache_dir().join("vmcores").join(format!("{}-{scenario}.vmcore", release.trim()));
    if !vmcore.is_file() {
        return None;
    }
    let kernel = kernels::fetch(series).ok()?;
    Some((vmcore, kernel.vmlinux))
}

/// The type sources a vmcore of `series` is read with.
fn sources(series: Series) -> &'static [TypeSource] {
    match series {
        Series::Bullseye510 => &[TypeSource::Dwarf],
        _ => &[TypeSource::Dwarf, TypeSource::Btf],
    }
}

fn open(vmcore: &Vmcore, source: TypeSource) -> Kernel {
    let program = Program::attach(Target::CoreDump(vmcore.file.clone())).expect("open the vmcore");
    let mut kernel = Kernel::new(program);
    match source {
        TypeSource::Dwarf => kernel.load_dwarf(DebugInfo::Vmlinux(&vmcore.vmlinux)).expect("DWARF"),
        TypeSource::Btf => kernel.load_btf(None).expect("BTF and kallsyms from the vmcore's memory"),
    }
    kernel
}

/// Runs `check` on every available kernel and type source; what each gives must agree
/// across the sources of one kernel.
fn on_every_kernel<T: PartialEq + std::fmt::Debug>(check: impl Fn(&Types, &Memory, &str) -> T) {
    for vmcore in vmcores() {
        let (series, scenario) = (vmcore.series, vmcore.scenario);
        let mut results = Vec::new();
        for &source in sources(series) {
            let kernel = open(&vmcore, source);
            let types = kernel.types(source).unwrap();
            let label = format!("{} {scenario} with {source}", series.name());
            results.push(check(&types, &Memory::new(&types), &label));
            eprintln!("{label}: checked");
        }
        assert!(
            results.windows(2).all(|pair| pair[0] == pair[1]),
            "{} {scenario}: the sources disagree",
            series.name()
        );
    }
}

/// The id of every thread on the task lists.
fn thread_ids(types: &Types, mem: &Memory) -> BTreeSet<u64> {
    let tasks = TaskWalker::new(types).unwrap();
    let mut ids = BTreeSet::new();
    for leader in tasks.leaders(mem).unwrap() {
        for thread in tasks.threads(mem, leader).unwrap() {
            let tid = tasks.thread(mem, thread).unwrap().tid;
            assert!(ids.insert(u64::try_from(tid).unwrap()), "thread id {tid} twice");
        }
    }
    ids
}

/// `offsetof(struct pid, numbers)`. A flexible array member (`numbers[]`, 6.5 and later)
/// has no size in DWARF, which [`kql_kernel::KernelType::field`] wants: there it is found
/// through libdrgn's object of `init_struct_pid`.
fn numbers_offset(types: &Types) -> u64 {
    if let Ok(offset) = types.find_type("struct pid").unwrap().offset_of("numbers") {
        return offset as u64;
    }
    let pid = types.program().object("init_struct_pid").unwrap();
    pid.member("numbers").unwrap().address().unwrap() - pid.address().unwrap()
}

#[test]
fn the_pid_idr_holds_every_thread_and_loads_alike() {
    on_every_kernel(|types, mem, label| {
        let (ns, pid_namespace) =
            types.global("init_pid_ns", &[TypeName::Named("struct pid_namespace")]).unwrap();
        let idr = ns + pid_namespace.offset_of("idr.idr_rt").unwrap() as u64;
        let base = mem.read_u32(ns + pid_namespace.offset_of("idr.idr_base").unwrap() as u64).unwrap();
        assert_eq!(base, 0, "{label}: pids start at 0");
        let upid = types.find_type("struct upid").unwrap();
        let number = numbers_offset(types);
        let (nr, upid_ns) = (upid.offset_of("nr").unwrap() as u64, upid.offset_of("ns").unwrap() as u64);

        let xarray = XArray::new(types).unwrap();
        let entries = xarray.entries(mem, idr, "init_pid_ns.idr").unwrap();
        let pids: BTreeSet<u64> = entries.iter().map(|&(index, _)| index).collect();
        let threads = thread_ids(types, mem);
        assert!(threads.len() > 20, "{label}: {} threads", threads.len());
        assert_eq!(pids, threads, "{label}: the IDR's pids are the threads' ids");
        eprintln!("{label}: {} pids, the highest {:?}", pids.len(), pids.last());
        assert!(entries.windows(2).all(|pair| pair[0].0 < pair[1].0), "{label}: index order");

        for &(index, pid) in &entries {
            assert_eq!(mem.read_u32(pid + number + nr).unwrap() as u64, index, "{label}: pid {index}");
            assert_eq!(mem.read_u64(pid + number + upid_ns).unwrap(), ns, "{label}: pid {index}");
            assert_eq!(
                xarray.load(mem, idr, index, "init_pid_ns.idr").unwrap(),
                Some(pid),
                "{label}: {index}"
            );
        }
        let last = entries.last().unwrap().0;
        for absent in [0, last + 1, last + 64, 1 << 22, 1 << 40, u64::MAX] {
            assert_eq!(xarray.load(mem, idr, absent, "init_pid_ns.idr").unwrap(), None, "{label}: {absent}");
        }
        entries
    });
}

/// `va_start` of the `struct vmap_area`s of the tree at `root` (a `struct rb_root`), checked
/// against the list at `list`.
fn vmap_areas(types: &Types, mem: &Memory, root: &str, list: &str, label: &str) -> Vec<u64> {
    let vmap_area = types.find_type("struct vmap_area").unwrap();
    let (rb_node, list_member) =
        (vmap_area.offset_of("rb_node").unwrap() as u64, vmap_area.offset_of("list").unwrap() as u64);
    let va_start = vmap_area.offset_of("va_start").unwrap() as u64;
    let root_node = types.find_type("struct rb_root").unwrap().offset_of("rb_node").unwrap() as u64;
    let top = mem.read_u64(types.symbol(root).unwrap() + root_node).unwrap();

    let in_tree: Vec<u64> =
        RbTree::new(types).unwrap().nodes(mem, top, root).unwrap().into_iter().map(|n| n - rb_node).collect();
    let in_list: Vec<u64> = list_nodes(mem, types.symbol(list).unwrap(), list)
        .unwrap()
        .into_iter()
        .map(|n| n - list_member)
        .collect();
    assert!(in_tree.len() > 2, "{label}: {root} has {} areas", in_tree.len());
    assert_eq!(in_tree, in_list, "{label}: {root} in order is {list}");
    let starts: Vec<u64> = in_tree.iter().map(|&va| mem.read_u64(va + va_start).unwrap()).collect();
    assert!(starts.windows(2).all(|pair| pair[0] < pair[1]), "{label}: {root}'s va_start increase");
    eprintln!("{label}: {root} has {} areas", starts.len());
    starts
}

#[test]
fn vmalloc_trees_walk_in_the_order_of_their_lists() {
    on_every_kernel(|types, mem, label| {
        let mut trees = vec![vmap_areas(types, mem, "free_vmap_area_root", "free_vmap_area_list", label)];
        // The busy tree became per-node (`vmap_nodes`) in 6.9.
        if types.symbol("vmap_area_root").is_ok() {
            trees.push(vmap_areas(types, mem, "vmap_area_root", "vmap_area_list", label));
        } else {
            eprintln!("{label}: no vmap_area_root");
        }
        trees
    });
}

#[test]
fn each_cpu_has_its_runqueue() {
    on_every_kernel(|types, mem, label| {
        let cpus = cpu_offsets(types, mem).unwrap();
        assert_eq!(cpus.len(), GUEST_CPUS, "{label}: {cpus:?}");
        assert_eq!(
            cpus.iter().map(|&(cpu, _)| cpu as usize).collect::<Vec<_>>(),
            (0..GUEST_CPUS).collect::<Vec<_>>()
        );
        let (runqueues, rq) = types.global("runqueues", &[TypeName::Named("struct rq")]).unwrap();
        let cpu_member = rq.offset_of("cpu").unwrap() as u64;
        let timeline = rq.offset_of("cfs.tasks_timeline").unwrap() as u64;
        let cached = types.find_type("struct rb_root_cached").unwrap();
        let (root, leftmost) = (
            cached.offset_of("rb_root.rb_node").unwrap() as u64,
            cached.offset_of("rb_leftmost").unwrap() as u64,
        );
        let rbtree = RbTree::new(types).unwrap();
        let mut queued = Vec::new();
        for &(cpu, offset) in &cpus {
            let this = runqueues.wrapping_add(offset);
            assert_eq!(mem.read_u32(this + cpu_member).unwrap(), cpu, "{label}: runqueues of cpu {cpu}");
            let nodes =
                rbtree.nodes(mem, mem.read_u64(this + timeline + root).unwrap(), "cfs tasks").unwrap();
            let first = mem.read_u64(this + timeline + leftmost).unwrap();
            assert_eq!(nodes.first().copied().unwrap_or(0), first, "{label}: rb_leftmost of cpu {cpu}");
            queued.push(nodes.len());
        }
        eprintln!("{label}: per-cpu offsets {cpus:x?}, runnable tasks queued {queued:?}");
        (cpus, queued)
    });
}

#[test]
fn hrtimer_queues_start_at_their_leftmost_and_expire_in_order() {
    on_every_kernel(|types, mem, label| {
        let (bases, cpu_base) =
            types.global("hrtimer_bases", &[TypeName::Named("struct hrtimer_cpu_base")]).unwrap();
        let clock_base = cpu_base.field("clock_base").unwrap();
        let base_size = types.find_type("struct hrtimer_clock_base").unwrap().size().unwrap();
        let active = types.find_type("struct hrtimer_clock_base").unwrap().offset_of("active").unwrap();
        let head = types.find_type("struct timerqueue_head").unwrap();
        let (root, leftmost) = (
            head.offset_of("rb_root.rb_root.rb_node").unwrap(),
            head.offset_of("rb_root.rb_leftmost").unwrap(),
        );
        let queue_node = types.find_type("struct timerqueue_node").unwrap();
        let (node, expires) =
            (queue_node.offset_of("node").unwrap(), queue_node.offset_of("expires").unwrap());
        let rbtree = RbTree::new(types).unwrap();
        let mut queued = Vec::new();
        for (cpu, offset) in cpu_offsets(types, mem).unwrap() {
            for index in 0..clock_base.size / base_size {
                let queue =
                    bases.wrapping_add(offset) + (clock_base.offset + index * base_size + active) as u64;
                let top = mem.read_u64(queue + root as u64).unwrap();
                let nodes = rbtree.nodes(mem, top, "hrtimer queue").unwrap();
                let first = mem.read_u64(queue + leftmost as u64).unwrap();
                assert_eq!(
                    nodes.first().copied().unwrap_or(0),
                    first,
                    "{label}: cpu {cpu} clock base {index}"
                );
                let times: Vec<i64> = nodes
                    .iter()
                    .map(|&n| mem.read_u64(n - node as u64 + expires as u64).unwrap() as i64)
                    .collect();
                assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "{label}: expiry order {times:?}");
                queued.push(times);
            }
        }
        let total: usize = queued.iter().map(Vec::len).sum();
        eprintln!("{label}: {total} hrtimers queued");
        assert!(total > 0, "{label}: no hrtimer is queued");
        queued
    });
}
