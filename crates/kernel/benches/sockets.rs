//! Criterion benchmark of the socket walks on the vmcore of a 6.1 guest running the rig's
//! `sockets` scenario (about 1,050 TCP sockets — 500 established loopback connections, both
//! ends, plus listeners, timewait sockets and requests — and a few dozen UDP and unix ones;
//! dumped once with its ground truth by `kql_rig::truth::vmcore_with_truth` and cached),
//! with BTF and with DWARF. Throughput is the number of sockets walked, so criterion reports
//! the time per socket:
//!
//! - `tcp walk`: [`TcpWalker::walk`] with the walker built once (offsets, symbols, layouts):
//!   what a scan does per socket, and what is held to ≤ 1 µs per socket;
//! - `tcp_sockets()`: the whole call, walker construction (type lookups) included;
//! - `udp walk`, `unix walk`: the same as `tcp walk` for the other two.
//!
//! Before criterion's runs it prints the best of 300 `tcp walk`s per socket, which a busy
//! machine (the 2 cores are shared) disturbs least.

use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kql_drgn::{DebugInfo, Program, Target};
use kql_kernel::tcp::TcpWalker;
use kql_kernel::udp::UdpWalker;
use kql_kernel::unix::UnixWalker;
use kql_kernel::{Kernel, Memory, TypeSource};
use kql_rig::kernels::Series;

fn sockets(c: &mut Criterion) {
    let made =
        kql_rig::truth::vmcore_with_truth(Series::Bookworm61, "sockets").expect("the sockets vmcore of 6.1");
    for source in [TypeSource::Btf, TypeSource::Dwarf] {
        let mut kernel =
            Kernel::new(Program::attach(Target::CoreDump(made.vmcore.clone())).expect("open the vmcore"));
        match source {
            TypeSource::Dwarf => kernel.load_dwarf(DebugInfo::Vmlinux(&made.vmlinux)).expect("DWARF"),
            TypeSource::Btf => kernel.load_btf(None).expect("BTF and kallsyms from the vmcore"),
        }
        let types = kernel.types(source).expect("types");
        let tcp = TcpWalker::new(&types).expect("TcpWalker");
        let udp = UdpWalker::new(&types).expect("UdpWalker");
        let unix = UnixWalker::new(&types).expect("UnixWalker");
        let count = |n: usize| Throughput::Elements(n as u64);

        let mut group = c.benchmark_group(format!("6.1 sockets vmcore, {}", source.name()));
        let tcp_sockets =
            tcp.walk(&Memory::new(&types), &mut kql_kernel::Skipped::default()).expect("tcp walk").len();
        assert!(tcp_sockets > 1000, "the bulk connections are in the vmcore: {tcp_sockets}");
        // The best of many runs, which a loaded machine disturbs least.
        let best = (0..300)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(
                    tcp.walk(&Memory::new(&types), &mut kql_kernel::Skipped::default()).expect("tcp walk"),
                );
                start.elapsed()
            })
            .min()
            .expect("runs");
        let per_socket = best.as_secs_f64() * 1e6 / tcp_sockets as f64;
        eprintln!(
            "{}: tcp walk, best of 300: {best:?} for {tcp_sockets} sockets, {per_socket:.3} µs per socket",
            source.name()
        );
        group.throughput(count(tcp_sockets));
        group.bench_function(format!("tcp walk ({tcp_sockets} sockets, per socket)"), |b| {
            b.iter(|| tcp.walk(&Memory::new(&types), &mut kql_kernel::Skipped::default()).expect("tcp walk"))
        });
        group.bench_function("tcp_sockets() with TcpWalker::new (per socket)", |b| {
            b.iter(|| kql_kernel::tcp::tcp_sockets(&types).expect("tcp_sockets"))
        });
        let udp_sockets =
            udp.walk(&Memory::new(&types), &mut kql_kernel::Skipped::default()).expect("udp walk").len();
        group.throughput(count(udp_sockets));
        group.bench_function(format!("udp walk ({udp_sockets} sockets, per socket)"), |b| {
            b.iter(|| udp.walk(&Memory::new(&types), &mut kql_kernel::Skipped::default()).expect("udp walk"))
        });
        let unix_sockets =
            unix.walk(&Memory::new(&types), &mut kql_kernel::Skipped::default()).expect("unix walk").len();
        group.throughput(count(unix_sockets));
        group.bench_function(format!("unix walk ({unix_sockets} sockets, per socket)"), |b| {
            b.iter(|| {
                unix.walk(&Memory::new(&types), &mut kql_kernel::Skipped::default()).expect("unix walk")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, sockets);
criterion_main!(benches);
