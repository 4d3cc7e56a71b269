//! Criterion benchmark of the kernel walks over a vmcore of a 6.1 guest holding 5,000
//! listeners (the rig's `many` scenario, dumped once by `kql-rig vmcore 6.1 many` into the
//! cache): getting the kernel's types ready (libdrgn attach plus DWARF of the 630 MB debug
//! vmlinux, or plus the BTF and kallsyms in the vmcore's own memory), the listening-hash walk
//! (throughput = listeners, so criterion reports the time per listener), the fd-table walk of
//! every process, and the whole `ss-nlpt-all` query, each with both type sources; and the
//! same listening-hash walk declared at run time (`benches/declared_tcp_listeners.sql`,
//! kql-declare) against the hand-written one, with BTF: the declared scan of a plan bound
//! once (all its 16 columns, and only netns, local_port, inode, recv_q and send_q), the
//! declared bind plus scan, and `kql_kernel::net::tcp_listeners`.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kql_declare::bind::{Binder, Plan};
use kql_declare::walk::{self, Budget, Wanted};
use kql_drgn::{DebugInfo, Program, Target};
use kql_kernel::fs::{FileCaches, FileWalker};
use kql_kernel::sched::{TaskCaches, TaskWalker};
use kql_kernel::{Kernel, Memory, TypeSource, Types};
use kql_rig::kernels::Series;
use kql_tables::target::{Target as KqlTarget, TargetOptions};

/// The vmcore opened with `source`'s types loaded.
fn open(vmcore: &Path, vmlinux: &Path, source: TypeSource) -> Kernel {
    let mut kernel = Kernel::new(Program::attach(Target::CoreDump(vmcore.into())).expect("open the vmcore"));
    match source {
        TypeSource::Dwarf => kernel.load_dwarf(DebugInfo::Vmlinux(vmlinux)).expect("load the vmlinux"),
        TypeSource::Btf => kernel.load_btf(None).expect("BTF and kallsyms from the vmcore"),
    }
    kernel
}

fn types_ready(c: &mut Criterion, vmcore: &Path, vmlinux: &Path) {
    let mut group = c.benchmark_group("attach + types ready, vmcore");
    group.sample_size(10);
    for source in [TypeSource::Btf, TypeSource::Dwarf] {
        group.bench_function(source.name(), |b| b.iter(|| open(vmcore, vmlinux, source)));
    }
    group.finish();
}

fn walks(c: &mut Criterion, vmcore: &Path, vmlinux: &Path, source: TypeSource) {
    let kernel = open(vmcore, vmlinux, source);
    let types = kernel.types(source).expect("types");
    let listeners = kql_kernel::net::tcp_listeners(&types).expect("walk").len();
    assert!(listeners >= 5000, "the many scenario's listeners are in the vmcore");
    let mut group = c.benchmark_group(format!("vmcore, 5000 listeners, {}", source.name()));
    group.throughput(Throughput::Elements(listeners as u64));
    group.bench_function("tcp_listeners walk (per listener)", |b| {
        b.iter(|| kql_kernel::net::tcp_listeners(&types).expect("walk"))
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("fd tables of every process", |b| b.iter(|| open_files(&types)));
    group.finish();
}

/// The declared listening-hash walk against the hand-written one, types loaded (and the
/// declaration parsed) once outside the timing.
fn declared(c: &mut Criterion, vmcore: &Path, vmlinux: &Path) {
    let source = TypeSource::Btf;
    let kernel = open(vmcore, vmlinux, source);
    let types = kernel.types(source).expect("types");
    let declaration = kql_declare::parser::parse(include_str!("declared_tcp_listeners.sql"))
        .expect("the declaration parses")
        .remove(0);
    let bind = || Binder::new(&types, &|_| None).bind(&declaration).expect("the declaration binds");
    let plan = bind();
    // Only the columns the correctness test compares first (kql-declare's tests/tcp_listeners.rs).
    let mut five = declaration.clone();
    five.columns.retain(|c| ["netns", "local_port", "inode", "recv_q", "send_q"].contains(&c.name.as_str()));
    let five = Binder::new(&types, &|_| None).bind(&five).expect("the five columns bind");
    let scan = |plan: &Plan| {
        let scanned = walk::scan(plan, &types, &Wanted::new(), Budget::default()).expect("the scan");
        assert!(scanned.warnings.is_empty(), "{:?}", scanned.warnings);
        scanned.columns[0].len()
    };
    let listeners = kql_kernel::net::tcp_listeners(&types).expect("walk").len();
    assert_eq!(scan(&plan), listeners, "the declared walk finds every listener");
    let mut group = c.benchmark_group(format!("tcp_listeners walk, 5000 listeners, {}", source.name()));
    group
        .bench_function("hand-written", |b| b.iter(|| kql_kernel::net::tcp_listeners(&types).expect("walk")));
    group.bench_function("declared", |b| b.iter(|| scan(&plan)));
    group.bench_function("declared, bind + scan", |b| b.iter(|| scan(&bind())));
    group.bench_function("declared, 5 columns", |b| b.iter(|| scan(&five)));
    group.finish();
}

fn query(c: &mut Criterion, vmcore: &Path, vmlinux: &Path, source: TypeSource) {
    let vmlinux = (source == TypeSource::Dwarf).then(|| vmlinux.to_path_buf());
    let options =
        TargetOptions { core: Some(vmcore.into()), vmlinux, types: Some(source), ..Default::default() };
    let target = KqlTarget::open(&options).expect("kql opens the vmcore");
    let engine = kql_tables::engine(&target).expect("engine");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    c.bench_function(&format!("ss-nlpt-all query on the vmcore, {}", source.name()), |b| {
        b.iter(|| runtime.block_on(engine.run("select * from ss_nlpt_all")).expect("query"))
    });
}

fn kernel_walk(c: &mut Criterion) {
    let (vmcore, vmlinux) = kql_rig::vmcores::of(Series::Bookworm61, "many").expect("the many vmcore of 6.1");
    declared(c, &vmcore, &vmlinux);
    types_ready(c, &vmcore, &vmlinux);
    for source in [TypeSource::Btf, TypeSource::Dwarf] {
        walks(c, &vmcore, &vmlinux, source);
        query(c, &vmcore, &vmlinux, source);
    }
}

/// Every open file of every process, as the proc_fds table reads them.
fn open_files(types: &Types) -> usize {
    let (tasks, files) = (TaskWalker::new(types).unwrap(), FileWalker::new(types).unwrap());
    let mem = Memory::new(types);
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
