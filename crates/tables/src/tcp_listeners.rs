//! `tcp_listeners`: listening TCP sockets of every network namespace.
//!
//! Sources, in order of preference: a libdrgn walk of `tcp_hashinfo`'s listening hash (all
//! namespaces at once; also fills the kernel-only columns); a netlink `sock_diag` dump of
//! `TCP_LISTEN` sockets run inside each network namespace in use (entered from a helper
//! thread; kql itself never moves); `/proc/net/tcp{,6}` read the same way, which lacks the
//! backlog (`send_q` is NULL), the bound device, the cookie and the cgroup. Addresses are
//! rendered as `ss` renders them.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, StringArray, UInt16Array, UInt32Array, UInt64Array};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use kql_engine::{Column, ColumnType::*, ScanRequest, Scanned, Source, SourceKind, TableSpec};
use kql_kernel::Types;
use kql_kernel::net::{ListeningHash, ListeningSocket, SockWalker};
use kql_sources::inet_diag;
use kql_sources::inet_socket::{InetProtocol, InetSocket, TCP_LISTEN};
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
    name: "tcp_listeners",
    doc: "Listening TCP sockets (IPv4 and IPv6) of every network namespace, one row per socket.",
    columns: &[
        Column::new("netns", UInt64, "inode of the socket's network namespace").key(),
        Column::new("family", Utf8, "address family: inet or inet6"),
        Column::new("state", Utf8, "TCP state, always LISTEN"),
        Column::new("recv_q", UInt32, "connections waiting in the accept queue (ss Recv-Q)"),
        Column::new(
            "send_q",
            UInt32,
            "accept-queue limit, the listen() backlog (ss Send-Q); NULL from procfs",
        )
        .nullable(),
        Column::new(
            "local_addr",
            Utf8,
            "local address as ss prints it: 127.0.0.1, [::1], * for dual-stack ::",
        ),
        Column::new("local_port", UInt16, "local port").key(),
        Column::new("peer_addr", Utf8, "peer address as ss prints it (unspecified for a listener)"),
        Column::new("peer_port", UInt16, "peer port (0 for a listener; ss prints *)"),
        Column::new("inode", UInt64, "socket inode, as in socket:[N] of /proc/PID/fd").key(),
        Column::new("uid", UInt32, "uid of the socket's owner"),
        Column::new("v6only", Boolean, "IPV6_V6ONLY of an inet6 socket; NULL for inet").nullable(),
        Column::new("bound_dev", Utf8, "interface set with SO_BINDTODEVICE, NULL if none").nullable(),
        Column::new("cgroup_id", UInt64, "cgroup v2 id of the socket's cgroup").nullable(),
        Column::new(
            "cookie",
            UInt64,
            "socket cookie (SO_COOKIE); NULL until the kernel assigns one, and from procfs",
        )
        .nullable(),
        Column::new("sk_addr", UInt64, "kernel address of the struct sock (kernel walk only)").nullable(),
        Column::new("reuseport", Boolean, "SO_REUSEPORT is set (kernel walk only)").nullable(),
    ],
    sources: &[
        Source {
            kind: SourceKind::Drgn,
            doc: "libdrgn walk of tcp_hashinfo's listening hash (lhash2, or listening_hash before 5.19), one read per struct sock",
        },
        Source { kind: SourceKind::Netlink, doc: "netlink sock_diag dump, in each network namespace" },
        Source { kind: SourceKind::Procfs, doc: "/proc/net/tcp and tcp6, in each network namespace" },
    ],
};

/// Listening TCP sockets, one row per socket.
#[derive(Debug)]
pub struct TcpListeners;

impl TableScan for TcpListeners {
    fn spec() -> &'static TableSpec {
        &SPEC
    }

    fn probe(types: &Types) -> kql_drgn::Result<()> {
        SockWalker::new(types)?;
        ListeningHash::new(types)?;
        Ok(())
    }

    fn scan(target: &Target, binding: &Binding, request: &ScanRequest) -> Result<Scanned> {
        let keys = SocketKeys::of(request);
        let mut warnings = Vec::new();
        let mut rows = socket_keys::rows_from_source(
            target,
            binding,
            &mut warnings,
            |warnings| kernel_listeners(target, binding, warnings),
            |kind, warnings| host_listeners(target, kind, &keys, warnings),
        )?;
        rows.retain(|row| keys.wants(row.netns, Some(row.socket.local_port), row.socket.inode));
        Ok(Scanned { batch: to_batch(&rows)?, warnings })
    }
}

/// One listener with what only some sources know.
struct Listener {
    netns: u64,
    socket: InetSocket,
    /// The listen() backlog, unknown to /proc/net/tcp.
    send_q: Option<u32>,
    bound_dev: Option<String>,
    sk_addr: Option<u64>,
    reuseport: Option<bool>,
}

/// Every listener of the kernel that can be read, from one walk of its listening hash; what
/// could not be read is named in `warnings`.
fn kernel_listeners(target: &Target, binding: &Binding, warnings: &mut Vec<String>) -> Result<Vec<Listener>> {
    let sockets =
        kernel_walk::tolerant("tcp_listeners", target, binding, warnings, kql_kernel::net::read_listeners)?;
    Ok(sockets.into_iter().map(kernel_row).collect())
}

fn kernel_row(sk: ListeningSocket) -> Listener {
    let socket = InetSocket {
        family: sk.family as u8,
        protocol: InetProtocol::Tcp,
        state: sk.state,
        recv_q: sk.ack_backlog,
        send_q: sk.max_ack_backlog,
        local_addr: sk.local_addr,
        local_port: sk.local_port,
        peer_addr: sk.peer_addr,
        peer_port: sk.peer_port,
        inode: sk.inode,
        uid: sk.uid,
        bound_ifindex: None,
        v6only: sk.v6only,
        cgroup_id: sk.cgroup_id,
        cookie: sk.cookie,
        timer: None,
        info: None,
        congestion: None,
        skmem: None,
        drops: None,
    };
    Listener {
        netns: sk.netns,
        send_q: Some(sk.max_ack_backlog),
        socket,
        bound_dev: sk.bound_dev,
        sk_addr: Some(sk.address),
        reuseport: Some(sk.reuseport),
    }
}

/// Listeners of every wanted network namespace of this host, dumped from inside each.
fn host_listeners(
    target: &Target,
    kind: SourceKind,
    keys: &SocketKeys,
    warnings: &mut Vec<String>,
) -> Result<Vec<Listener>> {
    let procfs = "/proc/net/tcp{,6} instead, which has no backlog (send_q is NULL)";
    let wants = |netns| keys.wants_netns(netns);
    host_dump::each_namespace("tcp_listeners", target, kind, wants, procfs, warnings, dump_namespace)
}

/// Every listener of `ns`, read from inside it with netlink or /proc/net/tcp.
fn dump_namespace(kind: SourceKind, ns: &NetNamespace) -> std::io::Result<Vec<Listener>> {
    let sockets = netns::run_in(ns, || {
        let sockets = match kind {
            SourceKind::Procfs => proc_net_inet::read_tcp(1 << TCP_LISTEN)?,
            _ => inet_diag::dump_inet_summary(InetProtocol::Tcp, 1 << TCP_LISTEN)?,
        };
        let named = sockets.into_iter().map(|socket| {
            let bound_dev = socket.bound_ifindex.and_then(interface_name);
            (socket, bound_dev)
        });
        Ok::<_, std::io::Error>(named.collect::<Vec<_>>())
    })??;
    let send_q = |socket: &InetSocket| (kind != SourceKind::Procfs).then_some(socket.send_q);
    Ok(sockets
        .into_iter()
        .map(|(socket, bound_dev)| Listener {
            netns: ns.inode,
            send_q: send_q(&socket),
            socket,
            bound_dev,
            sk_addr: None,
            reuseport: None,
        })
        .collect())
}

fn to_batch(rows: &[Listener]) -> Result<RecordBatch> {
    let sockets = || rows.iter().map(|r| &r.socket);
    let v6only = |s: &InetSocket| s.v6only.unwrap_or(false);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.netns))),
        Arc::new(StringArray::from_iter_values(
            sockets().map(|s| if s.local_addr.is_ipv6() { "inet6" } else { "inet" }),
        )),
        Arc::new(StringArray::from_iter_values(sockets().map(|_| "LISTEN"))),
        Arc::new(UInt32Array::from_iter_values(sockets().map(|s| s.recv_q))),
        Arc::new(UInt32Array::from_iter(rows.iter().map(|r| r.send_q))),
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
        Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.sk_addr))),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.reuseport))),
    ];
    Ok(RecordBatch::try_new(SPEC.schema(), columns)?)
}
