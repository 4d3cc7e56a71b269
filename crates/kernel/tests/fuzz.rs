//! Fuzzing the walkers with mutated memory images: the 6.1 `basic` guest's vmcore, read
//! through its BTF, with words of the structures the walks follow overwritten
//! ([`Memory::with_patches`]) — list links, hash bucket heads, socket and task members, fd
//! tables, xarray and rbtree nodes — by values that break walkers: NULL, nulls markers, the
//! word's own address, another object, garbage, unmapped kernel memory, user space, huge
//! counts. Every walk (listeners, all TCP sockets, UDP and unix sockets, processes and
//! their fd tables, the pid xarray, an rbtree) must return without a panic or hang, and
//! what it returns must be plausible: no object twice, no listener that neither the
//! undamaged image nor a written value points at.
//!
//! Budget: `KQL_FUZZ_SECONDS` (default 45) of cases, at most `PROPTEST_CASES` (default
//! unlimited within the time) — run longer by hand with e.g. `KQL_FUZZ_SECONDS=600 cargo
//! test -p kql-kernel --test fuzz -- --nocapture`. A failing case is shrunk and printed;
//! inputs that found bugs are kept below as regression tests.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use kql_drgn::{Program, Target};
use kql_kernel::fs::{FileCaches, FileWalker};
use kql_kernel::net::{Caches, ListeningHash, SockWalker};
use kql_kernel::rbtree::RbTree;
use kql_kernel::sched::{TaskCaches, TaskWalker};
use kql_kernel::tcp::TcpWalker;
use kql_kernel::udp::UdpWalker;
use kql_kernel::unix::UnixWalker;
use kql_kernel::xarray::XArray;
use kql_kernel::{Kernel, Memory, Patches, Skipped, TypeSource, Types};
use kql_rig::kernels::Series;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// The default seed of the first round (`KQL_FUZZ_SEED` chooses another).
const SEED: u64 = 0x6b71_6c2d_6675_7a7a;
/// Seeds of rounds that found bugs, run first every time: 7742088176674896524 made a task's
/// `nsproxy` point where `net_ns` read as a pointer near 2^64, and adding `ns.inum`'s offset
/// overflowed (a panic in debug builds, a read at a wrapped address in release) — pointers
/// read from memory are now checked before an offset is added ([`kql_kernel::net::member_at`]).
const FOUND_BUGS: &[u64] = &[7_742_088_176_674_896_524];
/// Cases per round (each round has its own seed, so a failure is reproducible by it).
const ROUND: u32 = 64;

/// The longest one case may take (the walks of one image take milliseconds).
const CASE_LIMIT: Duration = Duration::from_secs(10);

/// Every walker, built once from the vmcore's types.
struct Walkers {
    listening: ListeningHash,
    socks: SockWalker,
    tcp: TcpWalker,
    udp: UdpWalker,
    unix: UnixWalker,
    tasks: TaskWalker,
    files: FileWalker,
    xarray: XArray,
    rbtree: RbTree,
}

/// Words the walks read in the undamaged image, and what they point at.
struct Landmarks {
    /// Addresses of 8-byte words worth damaging.
    words: Vec<u64>,
    /// Objects a damaged word may be pointed at.
    objects: Vec<u64>,
    listeners: HashSet<u64>,
    page_offset_base: u64,
    /// `init_pid_ns.idr.idr_rt` and `vmap_area_root.rb_node`.
    pid_xarray: u64,
    vmap_root: u64,
}

/// One damaging write: which word, with which kind of value.
#[derive(Debug, Clone)]
struct Write {
    word: usize,
    value: Value,
}

#[derive(Debug, Clone)]
enum Value {
    Zero,
    Nulls(u64),
    Itself,
    Nudged(i8),
    Object(usize),
    Unmapped(u32),
    User(u32),
    Garbage(u64),
    Huge,
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Zero),
        any::<u64>().prop_map(|v| Value::Nulls(v | 1)),
        Just(Value::Itself),
        any::<i8>().prop_map(Value::Nudged),
        any::<usize>().prop_map(Value::Object),
        any::<u32>().prop_map(Value::Unmapped),
        any::<u32>().prop_map(Value::User),
        any::<u64>().prop_map(Value::Garbage),
        Just(Value::Huge),
    ]
}

fn writes(words: usize) -> impl Strategy<Value = Vec<Write>> {
    prop::collection::vec((0..words, value()).prop_map(|(word, value)| Write { word, value }), 1..6)
}

impl Landmarks {
    fn find(types: &Types, walkers: &Walkers) -> Landmarks {
        let mem = Memory::new(types);
        let mut words = Vec::new();
        let mut objects = Vec::new();
        let sock = |name: &str| types.find_type("struct sock").unwrap().offset_of(name).unwrap() as u64;
        let mut skipped = Skipped::default();
        let listeners: HashSet<u64> =
            walkers.listening.socks(&mem, &mut skipped).unwrap().into_iter().collect();
        assert_eq!(skipped.count(), 0);
        for &sk in &listeners {
            let node = sk + sock("__sk_common.skc_nulls_node");
            words.extend([node, node + 8, sk + sock("sk_socket"), sk + sock("__sk_common.skc_net")]);
            words.extend((0..64).map(|i| sk + i * 8));
            objects.push(sk);
        }
        for hash in walkers.tcp.established_hashes(&mem).unwrap() {
            let b = hash.buckets;
            for index in 0..b.count as u64 {
                let head = b.at + index * b.size as u64 + b.head as u64;
                if mem.read_u64(head).unwrap() & 1 == 0 {
                    words.push(head);
                }
            }
        }
        let task =
            |name: &str| types.find_type("struct task_struct").unwrap().offset_of(name).unwrap() as u64;
        let mut caches = TaskCaches::default();
        for leader in walkers.tasks.leaders(&mem).unwrap() {
            let tasks = leader + task("tasks");
            words.extend([tasks, tasks + 8]);
            for name in ["files", "signal", "real_cred", "real_parent", "nsproxy", "mm", "cgroups"] {
                words.push(leader + task(name));
            }
            let owner = walkers.tasks.files_owner(&mem, leader, &mut caches).unwrap();
            if owner.files != 0 {
                let fdt = mem.read_u64(owner.files + fdt_offset(types)).unwrap();
                words.extend((0..4).map(|i| fdt + i * 8));
                words.extend((0..4).map(|i| owner.files + i * 8));
            }
            objects.push(leader);
        }
        let pid_ns = types.symbol("init_pid_ns").unwrap();
        let idr = types.find_type("struct pid_namespace").unwrap().offset_of("idr.idr_rt").unwrap() as u64;
        let pid_xarray = pid_ns + idr;
        words.extend((0..3).map(|i| pid_xarray + i * 8));
        let xa_head = mem.read_u64(pid_xarray + 8).unwrap();
        if xa_head & 3 == 2 {
            let node = xa_head - 2;
            words.extend((0..70).map(|i| node + i * 8));
        }
        let vmap_root = types.symbol("vmap_area_root").unwrap();
        let root = mem.read_u64(vmap_root).unwrap();
        for node in walkers.rbtree.nodes(&mem, root, "vmap_area_root").unwrap().into_iter().take(64) {
            words.extend([node, node + 8, node + 16]);
        }
        words.push(vmap_root);
        let page_offset_base = mem.read_u64(types.symbol("page_offset_base").unwrap()).unwrap();
        Landmarks { words, objects, listeners, page_offset_base, pid_xarray, vmap_root }
    }

    /// The patches `writes` make.
    fn patches(&self, writes: &[Write]) -> (Patches, Vec<u64>) {
        let mut patches = Patches::new();
        let mut written = Vec::new();
        for write in writes {
            let at = self.words[write.word];
            let value = match write.value {
                Value::Zero => 0,
                Value::Nulls(v) => v,
                Value::Itself => at,
                Value::Nudged(by) => at.wrapping_add_signed(i64::from(by) * 8),
                Value::Object(i) => self.objects[i % self.objects.len()],
                Value::Unmapped(page) => self.page_offset_base + (1 << 40) + u64::from(page) * 4096,
                Value::User(page) => 0x7ff0_0000_0000 + u64::from(page) * 4096,
                Value::Garbage(v) => v,
                Value::Huge => 0x7fff_ffff_ffff_fff8,
            };
            written.push(value);
            for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
                patches.insert(at + i as u64, byte);
            }
        }
        (patches, written)
    }
}

fn fdt_offset(types: &Types) -> u64 {
    types.find_type("struct files_struct").unwrap().offset_of("fdt").unwrap() as u64
}

/// Runs every walk over `mem`; fails on an implausible result.
fn walk_everything(
    walkers: &Walkers,
    landmarks: &Landmarks,
    mem: &Memory,
    written: &[u64],
    node_offset: u64,
) -> Result<usize, TestCaseError> {
    let mut skipped = Skipped::default();
    let mut objects = 0;
    if let Ok(socks) = walkers.listening.socks(mem, &mut skipped) {
        let unique: BTreeSet<u64> = socks.iter().copied().collect();
        prop_assert_eq!(unique.len(), socks.len(), "a listener twice");
        for sk in &socks {
            let explained = landmarks.listeners.contains(sk)
                || written.iter().any(|w| w.wrapping_sub(node_offset) == *sk || w == sk);
            prop_assert!(explained, "listener {:#x} comes from nowhere", sk);
        }
        let mut caches = Caches::default();
        for sk in socks {
            objects += walkers.socks.read(mem, sk, &mut caches).is_ok() as usize;
        }
    }
    if let Ok(sockets) = walkers.tcp.walk(mem, &mut skipped) {
        let unique: BTreeSet<u64> = sockets.iter().map(|s| s.address).collect();
        prop_assert_eq!(unique.len(), sockets.len(), "a TCP socket twice");
        objects += sockets.len();
    }
    objects += walkers.udp.walk(mem, &mut skipped).map_or(0, |s| s.len());
    objects += walkers.unix.walk(mem, &mut skipped).map_or(0, |s| s.len());
    let leaders = walkers.tasks.leaders_tolerant(mem, &mut skipped);
    let unique: BTreeSet<u64> = leaders.iter().copied().collect();
    prop_assert_eq!(unique.len(), leaders.len(), "a task twice");
    let (mut task_caches, mut file_caches) = (TaskCaches::default(), FileCaches::default());
    for leader in leaders {
        if walkers.tasks.read(mem, leader, &mut task_caches).is_ok() {
            objects += 1;
        }
        if let Ok(owner) = walkers.tasks.files_owner(mem, leader, &mut task_caches) {
            objects += walkers.files.open_files(mem, owner.files, &mut file_caches).map_or(0, |f| f.len());
        }
        objects += walkers.tasks.threads(mem, leader).map_or(0, |t| t.len());
    }
    objects += walkers.xarray.entries(mem, landmarks.pid_xarray, "init_pid_ns.idr").map_or(0, |e| e.len());
    if let Ok(root) = mem.read_u64(landmarks.vmap_root) {
        objects += walkers.rbtree.nodes(mem, root, "vmap_area_root").map_or(0, |n| n.len());
    }
    Ok(objects)
}

#[test]
fn walkers_survive_mutated_memory_images() {
    let (vmcore, _) = kql_rig::vmcores::of(Series::Bookworm61, "basic").expect("the 6.1 vmcore");
    let mut kernel = Kernel::new(Program::attach(Target::CoreDump(vmcore)).expect("open the vmcore"));
    kernel.load_btf(None).expect("the vmcore's BTF");
    let types = kernel.types(TypeSource::Btf).expect("BTF types");
    let walkers = Walkers {
        listening: ListeningHash::new(&types).unwrap(),
        socks: SockWalker::new(&types).unwrap(),
        tcp: TcpWalker::new(&types).unwrap(),
        udp: UdpWalker::new(&types).unwrap(),
        unix: UnixWalker::new(&types).unwrap(),
        tasks: TaskWalker::new(&types).unwrap(),
        files: FileWalker::new(&types).unwrap(),
        xarray: XArray::new(&types).unwrap(),
        rbtree: RbTree::new(&types).unwrap(),
    };
    let landmarks = Landmarks::find(&types, &walkers);
    let node_offset =
        types.find_type("struct sock").unwrap().offset_of("__sk_common.skc_nulls_node").unwrap() as u64;
    let baseline = walk_everything(&walkers, &landmarks, &Memory::new(&types), &[], node_offset).unwrap();

    let seconds = std::env::var("KQL_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(45);
    let budget = Duration::from_secs(seconds);
    let cases: u64 = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
    let seed: u64 = std::env::var("KQL_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(SEED);
    let started = Instant::now();
    let executed = std::cell::Cell::new(0u64);
    // The rounds that found bugs, then rounds of ROUND cases, each from its own seed, until
    // the budget is spent.
    let rounds = FOUND_BUGS.iter().copied().chain((0..).map(|round| seed.wrapping_add(round)));
    for (round, round_seed) in rounds.enumerate() {
        let regression = round < FOUND_BUGS.len();
        if !regression && (started.elapsed() > budget || executed.get() >= cases) {
            break;
        }
        let config = Config { cases: ROUND, failure_persistence: None, ..Config::default() };
        let rng = TestRng::from_seed(
            RngAlgorithm::ChaCha,
            &[round_seed.to_le_bytes(), [0; 8], [0; 8], [0; 8]].concat(),
        );
        let mut runner = TestRunner::new_with_rng(config, rng);
        let result = runner.run(&writes(landmarks.words.len()), |writes| {
            executed.set(executed.get() + 1);
            let (patches, written) = landmarks.patches(&writes);
            let mem = Memory::new(&types).with_patches(&patches);
            let case_started = Instant::now();
            walk_everything(&walkers, &landmarks, &mem, &written, node_offset)?;
            prop_assert!(case_started.elapsed() < CASE_LIMIT, "a case took {:?}", case_started.elapsed());
            Ok(())
        });
        if let Err(failure) = result {
            panic!("KQL_FUZZ_SEED={round_seed}: {failure}");
        }
    }
    let (executed, elapsed) = (executed.get(), started.elapsed().as_secs_f64());
    eprintln!(
        "fuzz: {executed} mutated images of {} damageable words ({baseline} objects undamaged) in {elapsed:.1} s: {:.0} executions/s",
        landmarks.words.len(),
        executed as f64 / elapsed
    );
}
