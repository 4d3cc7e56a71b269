//! Criterion benchmark of the libdrgn walks over a vmcore of a 6.1 guest holding 5,000
//! listeners (the rig's `many` scenario, dumped once by `kql-rig vmcore 6.1 many` into the
//! cache): the listening-hash walk alone (throughput = listeners, so criterion reports the
//! time per listener), the fd-table walk of every process, and the whole `ss-nlpt-all` query.

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kql_drgn::{DebugInfo, Program, Target};
use kql_kernel::Memory;
use kql_kernel::fs::{FileCaches, FileWalker};
use kql_kernel::sched::{TaskCaches, TaskWalker};
use kql_rig::kernels::{self, Series};
use kql_tables::target::{Target as KqlTarget, TargetOptions};

/// The cached vmcore of the `many` scenario and its vmlinux, dumped through the rig on first use.
fn many_vmcore() -> (PathBuf, PathBuf) {
    let kernel = kernels::fetch(Series::Bookworm61).expect("fetch 6.1");
    let workload = kql_rig::binaries::workload().expect("the guest workload");
    let vmcore = kql_rig::vmcores::cached(&kernel, "many", &workload).expect("the many vmcore");
    (vmcore, kernel.vmlinux)
}

fn kernel_walk(c: &mut Criterion) {
    let (vmcore, vmlinux) = many_vmcore();
    let mut program = Program::attach(Target::CoreDump(vmcore.clone())).expect("open the vmcore");
    program.load_debug_info(DebugInfo::Vmlinux(&vmlinux)).expect("load the vmlinux");
    let listeners = kql_kernel::net::tcp_listeners(&program).expect("walk").len();
    assert!(listeners >= 5000, "the many scenario's listeners are in the vmcore");

    let mut group = c.benchmark_group("vmcore, 5000 listeners");
    group.throughput(Throughput::Elements(listeners as u64));
    group.bench_function("tcp_listeners walk (per listener)", |b| {
        b.iter(|| kql_kernel::net::tcp_listeners(&program).expect("walk"))
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("fd tables of every process", |b| b.iter(|| open_files(&program)));
    group.finish();
    drop(program);

    let options = TargetOptions { core: Some(vmcore), vmlinux: Some(vmlinux), ..Default::default() };
    let target = KqlTarget::open(&options).expect("kql opens the vmcore");
    let engine = kql_tables::engine(&target).expect("engine");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    c.bench_function("ss-nlpt-all query on the vmcore", |b| {
        b.iter(|| runtime.block_on(engine.run("select * from ss_nlpt_all")).expect("query"))
    });
}

/// Every open file of every process, as the proc_fds table reads them.
fn open_files(program: &Program) -> usize {
    let (tasks, files) = (TaskWalker::new(program).unwrap(), FileWalker::new(program).unwrap());
    let mem = Memory::new(program);
    let (mut task_caches, mut file_caches) = (TaskCaches::default(), FileCaches::default());
    let mut count = 0;
    for leader in tasks.leaders(&mem).unwrap() {
        let task = tasks.files_owner(&mem, leader, &mut task_caches).unwrap();
        count += files.open_files(&mem, task.files, &mut file_caches).unwrap().len();
    }
    count
}

criterion_group!(benches, kernel_walk);
criterion_main!(benches);
