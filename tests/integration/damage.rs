//! The fault injector: damaged copies of a real vmcore, for [`crate::damaged`].
//!
//! The structures to damage are found through the kernel's own types — the BTF and kallsyms
//! in the vmcore's memory, read with kql-kernel as kql reads them — in the undamaged vmcore
//! ([`Landmarks`]). A [`Damage`] is a list of writes at kernel virtual addresses (each moved
//! to its place in the ELF file through the direct map and the file's `PT_LOAD` segments)
//! and an optional cut of the file. Garbage values and the objects picked come from a
//! seeded generator, so a run is reproducible; the damaged copies live in a temporary
//! directory made by the test and are never committed.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use kql_drgn::{Program, Target};
use kql_kernel::net::{BucketArray, ListeningHash};
use kql_kernel::sched::{TaskCaches, TaskWalker};
use kql_kernel::udp::UdpWalker;
use kql_kernel::unix::UnixWalker;
use kql_kernel::{Kernel, Memory, Skipped, TypeName, TypeSource};

/// The seed of every run's choices (change it by hand to explore other objects).
pub const SEED: u64 = 0x6b71_6c2d_6461_6d67;

/// A small seeded generator (xorshift64*), enough to pick objects and garbage.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

/// A process of the undamaged vmcore.
#[derive(Debug, Clone)]
pub struct Leader {
    pub task: u64,
    pub pid: i32,
    pub comm: String,
}

/// A listener of the undamaged vmcore and the bucket of `lhash2` that holds it.
#[derive(Debug, Clone)]
pub struct Listener {
    pub sk: u64,
    pub port: u16,
    pub bucket: usize,
}

/// A socket of a plain `hlist` hash (UDP, unix) that is last in its chain, and its bucket.
#[derive(Debug, Clone, Copy)]
pub struct LastInChain {
    pub sk: u64,
    pub bucket: usize,
}

/// Where the damaged structures are in the undamaged vmcore, and how to reach its file.
pub struct Landmarks {
    pub page_offset_base: u64,
    /// `offsetof(struct task_struct, tasks)` and `files`.
    pub task_tasks: u64,
    pub task_files: u64,
    /// Thread-group leaders in `init_task.tasks` order.
    pub leaders: Vec<Leader>,
    /// `offsetof(struct sock, sk_socket)` and `__sk_common.skc_nulls_node`.
    pub sk_socket: u64,
    pub sk_node: u64,
    pub listeners: Vec<Listener>,
    /// `tcp_hashinfo.lhash2` (the array), its bucket size and head offset, and the address of
    /// `tcp_hashinfo.lhash2_mask`.
    pub lhash2: u64,
    pub lhash2_bucket: u64,
    pub lhash2_head: u64,
    pub lhash2_mask: u64,
    /// `offsetof(struct sock, __sk_common.skc_node)`, the chain node of UDP and unix sockets.
    pub sk_plain_node: u64,
    /// Sockets last in their chain, of the first UDP table and of the first unix table.
    pub udp: Vec<LastInChain>,
    pub unix: Vec<LastInChain>,
    /// Physical address of every page-aligned virtual address asked for, as kql maps it.
    physical: Vec<(u64, u64)>,
}

impl Landmarks {
    /// Reads the landmarks of `vmcore` through its BTF.
    pub fn find(vmcore: &Path) -> Landmarks {
        let mut kernel =
            Kernel::new(Program::attach(Target::CoreDump(vmcore.into())).expect("open the vmcore"));
        kernel.load_btf(None).expect("the vmcore's BTF");
        let types = kernel.types(TypeSource::Btf).expect("BTF types");
        let mem = Memory::new(&types);
        let task = types.find_type("struct task_struct").unwrap();
        let sock = types.find_type("struct sock").unwrap();
        let walker = TaskWalker::new(&types).unwrap();
        let mut caches = TaskCaches::default();
        let leaders: Vec<Leader> = walker
            .leaders(&mem)
            .unwrap()
            .into_iter()
            .map(|at| {
                let read = walker.read(&mem, at, &mut caches).unwrap();
                Leader { task: at, pid: read.pid, comm: read.comm }
            })
            .collect();

        let hashinfo = [TypeName::Named("struct inet_hashinfo")];
        let (tcp_hashinfo, hashinfo_type) = types.global("tcp_hashinfo", &hashinfo).unwrap();
        let lhash2_field = hashinfo_type.field("lhash2").unwrap();
        let lhash2 = mem.read_u64(tcp_hashinfo + lhash2_field.offset as u64).unwrap();
        let lhash2_mask = tcp_hashinfo + hashinfo_type.offset_of("lhash2_mask").unwrap() as u64;
        let mask = mem.read_u32(lhash2_mask).unwrap() as usize;
        let bucket = types.find_type("struct inet_listen_hashbucket").unwrap();
        let (lhash2_bucket, lhash2_head) =
            (bucket.size().unwrap() as u64, bucket.offset_of("nulls_head").unwrap() as u64);
        let sk_node = sock.offset_of("__sk_common.skc_nulls_node").unwrap() as u64;
        let sk_num = sock.offset_of("__sk_common.skc_num").unwrap() as u64;
        let mut listeners = Vec::new();
        for index in 0..=mask {
            let mut node = mem.read_u64(lhash2 + index as u64 * lhash2_bucket + lhash2_head).unwrap();
            while node & 1 == 0 && node != 0 {
                let sk = node - sk_node;
                let port = mem.read_u32(sk + sk_num).unwrap() as u16;
                listeners.push(Listener { sk, port, bucket: index });
                node = mem.read_u64(node).unwrap();
            }
        }
        let mut skipped = Skipped::default();
        let walked = ListeningHash::new(&types).unwrap().socks(&mem, &mut skipped).unwrap();
        assert_eq!(walked.len(), listeners.len(), "the injector finds the listeners kql finds");

        let sk_plain_node = sock.offset_of("__sk_common.skc_node").unwrap() as u64;
        let udp_table = UdpWalker::new(&types).unwrap().tables(&mem).unwrap()[0].slots;
        let udp = last_in_chains(&mem, &udp_table, sk_plain_node);
        let unix =
            last_in_chains(&mem, &UnixWalker::new(&types).unwrap().tables(&mem).unwrap()[0], sk_plain_node);

        let page_offset_base = mem.read_u64(types.symbol("page_offset_base").unwrap()).unwrap();
        let mut wanted: Vec<u64> = leaders.iter().map(|l| l.task).collect();
        wanted.extend(listeners.iter().map(|l| l.sk));
        wanted.extend(udp.iter().chain(&unix).map(|l| l.sk));
        wanted.extend([lhash2, lhash2_mask]);
        wanted.extend((0..=mask as u64).map(|i| lhash2 + i * lhash2_bucket));
        let physical = wanted
            .iter()
            .flat_map(|&at| [at & !0xfff, (at & !0xfff) + 0x1000])
            .map(|page| (page, mem.physical_address(page).expect("a direct-map or image address")))
            .collect();
        Landmarks {
            page_offset_base,
            task_tasks: task.offset_of("tasks").unwrap() as u64,
            task_files: task.offset_of("files").unwrap() as u64,
            leaders,
            sk_socket: sock.offset_of("sk_socket").unwrap() as u64,
            sk_node,
            listeners,
            lhash2,
            lhash2_bucket,
            lhash2_head,
            lhash2_mask,
            sk_plain_node,
            udp,
            unix,
            physical,
        }
    }

    /// The physical address of `address` (a page the landmarks located).
    fn physical(&self, address: u64) -> u64 {
        let page = address & !0xfff;
        let (_, physical) = self.physical.iter().find(|(p, _)| *p == page).expect("a located page");
        physical + (address & 0xfff)
    }

    /// A kernel address in the direct map that no vmcore of the rig holds (beyond RAM).
    pub fn unmapped(&self, rng: &mut Rng) -> u64 {
        self.page_offset_base + (1 << 40) + (rng.next() % (1 << 30)) * 8
    }
}

/// The socket last in each non-empty chain of `buckets` (an `hlist` hash whose sockets
/// chain through the node at `node` in `struct sock`), read with plain loads.
fn last_in_chains(mem: &Memory, buckets: &BucketArray, node: u64) -> Vec<LastInChain> {
    let mut last = Vec::new();
    for bucket in 0..buckets.count {
        let head = buckets.at + (bucket * buckets.size + buckets.head) as u64;
        let mut at = mem.read_u64(head).unwrap();
        let mut sk = None;
        while at != 0 {
            sk = Some(at - node);
            at = mem.read_u64(at).unwrap();
        }
        last.extend(sk.map(|sk| LastInChain { sk, bucket }));
    }
    last
}

/// One kind of damage: writes at kernel addresses and an optional cut of the file.
#[derive(Debug, Clone, Default)]
pub struct Damage {
    pub writes: Vec<(u64, Vec<u8>)>,
    pub cut_to: Option<u64>,
}

impl Damage {
    /// Overwrites the 8 bytes at `address` with `value`.
    pub fn word(address: u64, value: u64) -> Damage {
        Damage { writes: vec![(address, value.to_le_bytes().to_vec())], cut_to: None }
    }

    /// Writes a damaged copy of `original` to `copy`.
    pub fn apply(&self, landmarks: &Landmarks, original: &Path, copy: &Path) {
        std::fs::copy(original, copy).expect("copy the vmcore");
        let file = File::options().write(true).read(true).open(copy).unwrap();
        let segments = load_segments(&file);
        for (address, bytes) in &self.writes {
            let physical = landmarks.physical(*address);
            let (paddr, offset, _) = *segments
                .iter()
                .find(|(paddr, _, size)| (*paddr..paddr + size).contains(&physical))
                .expect("a segment holds the address");
            file.write_all_at(bytes, offset + (physical - paddr)).unwrap();
        }
        if let Some(len) = self.cut_to {
            file.set_len(len).unwrap();
        }
    }
}

/// `(p_paddr, p_offset, p_filesz)` of every `PT_LOAD` segment of a 64-bit ELF file.
fn load_segments(file: &File) -> Vec<(u64, u64, u64)> {
    let mut header = [0u8; 64];
    file.read_exact_at(&mut header, 0).unwrap();
    let u64_at = |bytes: &[u8], at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let phoff = u64_at(&header, 0x20);
    let (size, count) =
        (u16::from_le_bytes([header[0x36], header[0x37]]), u16::from_le_bytes([header[0x38], header[0x39]]));
    let mut table = vec![0u8; usize::from(size) * usize::from(count)];
    file.read_exact_at(&mut table, phoff).unwrap();
    table
        .chunks_exact(usize::from(size))
        .filter(|entry| u32::from_le_bytes(entry[0..4].try_into().unwrap()) == 1)
        .map(|entry| (u64_at(entry, 0x18), u64_at(entry, 0x08), u64_at(entry, 0x20)))
        .collect()
}
