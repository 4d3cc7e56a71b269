//! `udp_sockets`: every bound UDP socket (IPv4 and IPv6) of every network namespace.
//!
//! Sources, in order of preference: a libdrgn walk of the kernel's `udp_table`s (all
//! namespaces at once; also fills the kernel-only columns); a netlink `sock_diag` dump of
//! every UDP socket with its memory (`INET_DIAG_SKMEMINFO`), run inside each network
//! namespace in use (entered from a helper thread; kql itself never moves);
//! `/proc/net/udp{,6}` read the same way, which lacks the bound device, the cookie, the
//! cgroup, `IPV6_V6ONLY` and the socket memory (NULL), but has the drops. Addresses are
//! rendered as `ss` renders them; the state is `UNCONN` or, once connected, `ESTAB`.

use std::io;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, StringArray, UInt16Array, UInt32Array, UInt64Array};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use kql_engine::{Column, ColumnType::*, ScanRequest, Scanned, Source, SourceKind, TableSpec};
use kql_kernel::Types;
use kql_kernel::tcp::state_name;
use kql_kernel::udp::{UdpSocket, UdpWalker};
use kql_sources::inet_diag;
use kql_sources::inet_socket::{ALL_STATES, InetProtocol, InetSocket, SkMem, TCP_CLOSE};
use kql_sources::interfaces::interface_name;
use kql_sources::netns::{self, NetNamespace};
use kql_sources::proc_net_inet;

use crate::host_dump;
use crate::kernel_walk;
use crate::socket_keys::{self, SocketKeys};
use crate::ss_address::ss_address;
use crate::table::TableScan;
use crate::target::{Binding, Target};

const SPEC: TableSpec = TableSpec {
    name: "udp_sockets",
    doc: "Bound UDP sockets (IPv4 and IPv6) of every network namespace, one row per socket, as ss -uan lists them.",
    columns: &[
        Column::new("netns", UInt64, "inode of the socket's network namespace").key(),
        Column::new("family", Utf8, "address family: inet or inet6"),
        Column::new("state", Utf8, "as ss prints it: UNCONN, or ESTAB once connect()ed"),
        Column::new("recv_q", UInt32, "bytes in the receive queue (ss Recv-Q)"),
        Column::new("send_q", UInt32, "bytes sent and not yet freed by the stack (ss Send-Q)"),
        Column::new("local_addr", Utf8, "local address as ss prints it: 0.0.0.0, [::1], * for dual-stack ::"),
        Column::new("local_port", UInt16, "local port").key(),
        Column::new(
            "peer_addr",
            Utf8,
            "peer address as ss prints it; unspecified (0.0.0.0, *, [::]) unless connected",
        ),
        Column::new("peer_port", UInt16, "peer port; 0 unless connected (ss prints *)"),
        Column::new("inode", UInt64, "socket inode, as in socket:[N] of /proc/PID/fd").key(),
        Column::new("uid", UInt32, "uid of the socket's owner"),
        Column::new(
            "v6only",
            Boolean,
            "IPV6_V6ONLY of an inet6 socket; NULL for inet, from procfs, and from netlink once connected",
        )
        .nullable(),
        Column::new("bound_dev", Utf8, "interface set with SO_BINDTODEVICE, NULL if none and from procfs")
            .nullable(),
        Column::new("cgroup_id", UInt64, "cgroup v2 id of the socket's cgroup; NULL from procfs").nullable(),
        Column::new(
            "cookie",
            UInt64,
            "socket cookie (SO_COOKIE); NULL until the kernel assigns one, and from procfs",
        )
        .nullable(),
        Column::new(
            "rmem_alloc",
            UInt32,
            "ss -m skmem r: memory held by the receive queue; NULL from procfs",
        )
        .nullable(),
        Column::new("rcvbuf", UInt32, "ss -m skmem rb: receive buffer limit (SO_RCVBUF); NULL from procfs")
            .nullable(),
        Column::new(
            "wmem_alloc",
            UInt32,
            "ss -m skmem t: memory of packets sent down the stack; NULL from procfs",
        )
        .nullable(),
        Column::new("sndbuf", UInt32, "ss -m skmem tb: send buffer limit (SO_SNDBUF); NULL from procfs")
            .nullable(),
        Column::new("fwd_alloc", UInt32, "ss -m skmem f: memory reserved but not used yet; NULL from procfs")
            .nullable(),
        Column::new("wmem_queued", UInt32, "ss -m skmem w: memory of the send queue; NULL from procfs")
            .nullable(),
        Column::new("optmem", UInt32, "ss -m skmem o: memory of socket options; NULL from procfs").nullable(),
        Column::new("backlog", UInt32, "ss -m skmem bl: the backlog queue; NULL from procfs").nullable(),
        Column::new("drops", UInt32, "packets dropped on receive (sk_drops: ss -m d, /proc/net/udp's drops)")
            .nullable(),
        Column::new("sk_addr", UInt64, "kernel address of the struct sock (kernel walk only)").nullable(),
        Column::new("reuseport", Boolean, "SO_REUSEPORT is set (kernel walk only)").nullable(),
    ],
    sources: &[
        Source {
            kind: SourceKind::Drgn,
            doc: "libdrgn walk of the udp_table hash (and each namespace's own since 6.2), one read per struct udp_sock",
        },
        Source {
            kind: SourceKind::Netlink,
            doc: "netlink sock_diag dump with socket memory, in each network namespace",
        },
        Source { kind: SourceKind::Procfs, doc: "/proc/net/udp and udp6, in each network namespace" },
    ],
};

/// Bound UDP sockets, one row per socket.
#[derive(Debug)]
pub struct UdpSockets;

impl TableScan for UdpSockets {
    fn spec() -> &'static TableSpec {
        &SPEC
    }

    fn probe(types: &Types) -> kql_drgn::Result<()> {
        UdpWalker::new(types)?;
        Ok(())
    }

    fn scan(target: &Target, binding: &Binding, request: &ScanRequest) -> Result<Scanned> {
        let keys = SocketKeys::of(request);
        let mut warnings = Vec::new();
        let mut rows = socket_keys::rows_from_source(
            target,
            binding,
            &mut warnings,
            |warnings| kernel_sockets(target, binding, warnings),
            |kind, warnings| host_sockets(target, kind, &keys, warnings),
        )?;
        rows.retain(|row| keys.wants(row.netns, Some(row.socket.local_port), row.socket.inode));
        Ok(Scanned { batch: to_batch(&rows)?, warnings })
    }
}

/// One socket with what only some sources know.
struct Row {
    netns: u64,
    socket: InetSocket,
    bound_dev: Option<String>,
    sk_addr: Option<u64>,
    reuseport: Option<bool>,
}

/// Every UDP socket of the kernel that can be read, from one walk of its UDP tables; what
/// could not be read is named in `warnings`.
fn kernel_sockets(target: &Target, binding: &Binding, warnings: &mut Vec<String>) -> Result<Vec<Row>> {
    let sockets = kernel_walk::tolerant("udp_sockets", target, binding, warnings, |types, mem, skipped| {
        UdpWalker::new(types)?.walk(mem, skipped)
    })?;
    Ok(sockets.into_iter().map(kernel_row).collect())
}

fn kernel_row(sk: UdpSocket) -> Row {
    let skmem = sk.skmem.map(|m| SkMem {
        rmem_alloc: m.rmem_alloc,
        rcvbuf: m.rcvbuf,
        wmem_alloc: m.wmem_alloc,
        sndbuf: m.sndbuf,
        fwd_alloc: m.forward_alloc,
        wmem_queued: m.wmem_queued,
        optmem: m.optmem,
        backlog: m.backlog,
        drops: m.drops,
    });
    let socket = InetSocket {
        family: sk.family as u8,
        protocol: InetProtocol::Udp,
        state: sk.state,
        recv_q: sk.recv_q,
        send_q: sk.send_q,
        local_addr: sk.local_addr,
        local_port: sk.local_port,
        peer_addr: sk.peer_addr,
        peer_port: sk.peer_port,
        inode: sk.inode,
        uid: sk.uid,
        bound_ifindex: Some(sk.bound_dev_if),
        v6only: sk.v6only,
        cgroup_id: sk.cgroup_id,
        cookie: sk.cookie,
        timer: None,
        info: None,
        congestion: None,
        skmem,
        drops: sk.drops,
    };
    Row {
        netns: sk.netns,
        socket,
        bound_dev: sk.bound_dev,
        sk_addr: Some(sk.address),
        reuseport: Some(sk.reuseport),
    }
}

/// The sockets of every wanted network namespace of this host, dumped from inside each.
fn host_sockets(
    target: &Target,
    kind: SourceKind,
    keys: &SocketKeys,
    warnings: &mut Vec<String>,
) -> Result<Vec<Row>> {
    let procfs =
        "/proc/net/udp{,6} instead, which has no bound device, cookie, cgroup or socket memory (NULL)";
    let wants = |netns| keys.wants_netns(netns);
    host_dump::each_namespace("udp_sockets", target, kind, wants, procfs, warnings, dump_namespace)
}

/// Every UDP socket of `ns`, read from inside it with netlink or /proc/net/udp.
fn dump_namespace(kind: SourceKind, ns: &NetNamespace) -> io::Result<Vec<Row>> {
    let sockets = netns::run_in(ns, || {
        let sockets = match kind {
            SourceKind::Procfs => proc_net_inet::read_udp()?,
            _ => inet_diag::dump_inet(InetProtocol::Udp, ALL_STATES)?,
        };
        // Interface names are per namespace: look them up while inside it.
        let named = sockets.into_iter().map(|socket| {
            let bound_dev = socket.bound_ifindex.and_then(interface_name);
            (socket, bound_dev)
        });
        Ok::<_, io::Error>(named.collect::<Vec<_>>())
    })??;
    Ok(sockets
        .into_iter()
        .map(|(socket, bound_dev)| Row { netns: ns.inode, socket, bound_dev, sk_addr: None, reuseport: None })
        .collect())
}

fn to_batch(rows: &[Row]) -> Result<RecordBatch> {
    let sockets = || rows.iter().map(|r| &r.socket);
    // ss knows IPV6_V6ONLY only of unconnected sockets (netlink sends it for no others).
    let v6only = |s: &InetSocket| s.state == TCP_CLOSE && s.v6only.unwrap_or(false);
    let skmem = |field: fn(&SkMem) -> u32| -> ArrayRef {
        Arc::new(UInt32Array::from_iter(sockets().map(|s| s.skmem.as_ref().map(field))))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.netns))),
        Arc::new(StringArray::from_iter_values(
            sockets().map(|s| if s.local_addr.is_ipv6() { "inet6" } else { "inet" }),
        )),
        Arc::new(StringArray::from_iter_values(sockets().map(|s| state_name(s.state)))),
        Arc::new(UInt32Array::from_iter_values(sockets().map(|s| s.recv_q))),
        Arc::new(UInt32Array::from_iter_values(sockets().map(|s| s.send_q))),
        Arc::new(StringArray::from_iter_values(sockets().map(|s| ss_address(s.local_addr, v6only(s))))),
        Arc::new(UInt16Array::from_iter_values(sockets().map(|s| s.local_port))),
        Arc::new(StringArray::from_iter_values(sockets().map(|s| ss_address(s.peer_addr, v6only(s))))),
        Arc::new(UInt16Array::from_iter_values(sockets().map(|s| s.peer_port))),
        Arc::new(UInt64Array::from_iter_values(sockets().map(|s| s.inode))),
        Arc::new(UInt32Array::from_iter_values(sockets().map(|s| s.uid))),
        Arc::new(BooleanArray::from_iter(sockets().map(|s| s.v6only))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.bound_dev.as_deref()))),
        Arc::new(UInt64Array::from_iter(sockets().map(|s| s.cgroup_id))),
        Arc::new(UInt64Array::from_iter(sockets().map(|s| s.cookie.filter(|&c| c != 0)))),
        skmem(|m| m.rmem_alloc),
        skmem(|m| m.rcvbuf),
        skmem(|m| m.wmem_alloc),
        skmem(|m| m.sndbuf),
        skmem(|m| m.fwd_alloc),
        skmem(|m| m.wmem_queued),
        skmem(|m| m.optmem),
        skmem(|m| m.backlog),
        Arc::new(UInt32Array::from_iter(sockets().map(|s| s.drops))),
        Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.sk_addr))),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.reuseport))),
    ];
    Ok(RecordBatch::try_new(SPEC.schema(), columns)?)
}
