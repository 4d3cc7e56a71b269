//! `tcp_sockets`: every TCP socket of every network namespace, in every state — what
//! `ss -tanpie -m` shows, one schema whatever the source.
//!
//! Sources, in order of preference:
//!
//! - a libdrgn walk ([`kql_kernel::tcp`]) of `tcp_hashinfo`'s listening hash and of every
//!   established hash (the shared one and each namespace's own), which holds full sockets,
//!   time-wait sockets and connection requests: all namespaces at once, every column;
//! - a netlink `sock_diag` dump of every state with `tcp_info`, congestion control and
//!   socket memory, run inside each network namespace in use (from a helper thread);
//! - `/proc/net/tcp{,6}` read the same way, which has the socket's header and timer only:
//!   no `tcp_info`, congestion, memory, cookie, cgroup or bound device (NULL), and no
//!   listen() backlog (a listener's `send_q` is NULL).
//!
//! Time-wait sockets and connection requests have no `struct tcp_sock`: whatever the source,
//! their `tcp_info`, congestion and memory columns are NULL, their inode and queues 0.
//! Constraints on `netns`, `state`, `local_port` and `inode` are pushed down: `netns` picks
//! the namespaces dumped, `state` the states asked of netlink and procfs, and all four drop
//! rows before the batch is built.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, StringArray, StringBuilder, UInt16Array, UInt32Array, UInt64Array,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use kql_engine::{Column, ColumnType::*, ScanRequest, Scanned, Source, SourceKind, TableSpec};
use kql_kernel::Types;
use kql_kernel::tcp::{TcpSocket, TcpWalker, state_name};
use kql_sources::inet_diag;
use kql_sources::inet_socket::{self, InetProtocol, InetSocket, SkMem, TCP_CLOSE, TCP_LISTEN};
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
    name: "tcp_sockets",
    doc: "Every TCP socket (IPv4 and IPv6) of every network namespace in every state, with its timer, tcp_info, congestion control and memory (ss -tanpie -m), one row per socket.",
    columns: &[
        Column::new("netns", UInt64, "inode of the socket's network namespace").key(),
        Column::new("family", Utf8, "address family: inet or inet6"),
        Column::new(
            "state",
            Utf8,
            "TCP state as ss names it: ESTAB, SYN-SENT, SYN-RECV (a connection request too), FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT, UNCONN (closed), CLOSE-WAIT, LAST-ACK, LISTEN, CLOSING",
        )
        .key(),
        Column::new(
            "recv_q",
            UInt32,
            "ss Recv-Q: a listener's accept queue, else bytes received not yet read; 0 for time-wait and requests",
        ),
        Column::new(
            "send_q",
            UInt32,
            "ss Send-Q: a listener's listen() backlog (NULL from procfs), else bytes sent not yet acknowledged",
        )
        .nullable(),
        Column::new(
            "local_addr",
            Utf8,
            "local address as ss prints it: 127.0.0.1, [::1], [::ffff:10.0.0.1], * for a dual-stack listener's :: (any :: listener from procfs, which cannot tell)",
        ),
        Column::new("local_port", UInt16, "local port").key(),
        Column::new("peer_addr", Utf8, "peer address as ss prints it (unspecified for a listener)"),
        Column::new("peer_port", UInt16, "peer port (0 for a listener; ss prints *)"),
        Column::new(
            "inode",
            UInt64,
            "socket inode, as in socket:[N] of /proc/PID/fd; 0 for sockets no file holds (time-wait, requests, not yet accepted, orphaned)",
        )
        .key(),
        Column::new(
            "uid",
            UInt32,
            "uid of the socket's owner; 0 for time-wait; a request's listener's (kernel walk, procfs) or 0 (netlink)",
        ),
        Column::new(
            "v6only",
            Boolean,
            "IPV6_V6ONLY of an inet6 socket; NULL for inet, from procfs, and from netlink but for LISTEN and UNCONN",
        )
        .nullable(),
        Column::new("bound_dev", Utf8, "interface set with SO_BINDTODEVICE, NULL if none (and from procfs)")
            .nullable(),
        Column::new("cgroup_id", UInt64, "cgroup v2 id of a full socket's cgroup; NULL from procfs").nullable(),
        Column::new(
            "cookie",
            UInt64,
            "socket cookie (SO_COOKIE); NULL until the kernel assigns one, and from procfs",
        )
        .nullable(),
        Column::new("timer", Utf8, "the timer pending, as ss -o names it: off, on, keepalive, timewait, persist"),
        Column::new(
            "timer_expires_ms",
            UInt64,
            "milliseconds until the timer fires (0 when off or overdue; procfs counts in clock ticks)",
        ),
        Column::new(
            "retrans",
            UInt32,
            "the timer's count as ss -o shows it: retransmissions (on; a request's SYN-ACKs, its timeouts from procfs) or unanswered probes (keepalive, persist)",
        ),
        Column::new("congestion", Utf8, "congestion-control algorithm (cubic, bbr, …)").nullable(),
        Column::new("rtt_us", UInt32, "smoothed round-trip time, µs (tcpi_rtt; ss -i rtt in ms)").nullable(),
        Column::new("rttvar_us", UInt32, "round-trip time variation, µs (tcpi_rttvar)").nullable(),
        Column::new("min_rtt_us", UInt32, "minimum round-trip time seen, µs (tcpi_min_rtt)").nullable(),
        Column::new("rto_us", UInt32, "retransmission timeout, µs (tcpi_rto; ss -i rto in ms)").nullable(),
        Column::new("ato_us", UInt32, "delayed-ACK timeout, µs (tcpi_ato)").nullable(),
        Column::new("mss", UInt32, "send MSS (tcpi_snd_mss)").nullable(),
        Column::new("rcv_mss", UInt32, "MSS estimated for the peer's segments (tcpi_rcv_mss)").nullable(),
        Column::new("cwnd", UInt32, "congestion window, segments (tcpi_snd_cwnd)").nullable(),
        Column::new(
            "ssthresh",
            UInt32,
            "slow-start threshold, segments (tcpi_snd_ssthresh): 2147483647 until the first loss (ss then omits it)",
        )
        .nullable(),
        Column::new("unacked", UInt32, "segments in flight (tcpi_unacked)").nullable(),
        Column::new("lost", UInt32, "segments considered lost (tcpi_lost)").nullable(),
        Column::new("retransmits", UInt32, "timeouts since the last ACK advanced (tcpi_retransmits)")
            .nullable(),
        Column::new("total_retrans", UInt32, "segments retransmitted over the connection's life (tcpi_total_retrans)")
            .nullable(),
        Column::new("bytes_acked", UInt64, "bytes acknowledged by the peer (tcpi_bytes_acked)").nullable(),
        Column::new("bytes_received", UInt64, "bytes received (tcpi_bytes_received)").nullable(),
        Column::new("bytes_sent", UInt64, "bytes sent, retransmissions included (tcpi_bytes_sent, Linux 4.19+)")
            .nullable(),
        Column::new("bytes_retrans", UInt64, "bytes retransmitted (tcpi_bytes_retrans, Linux 4.19+)").nullable(),
        Column::new("segs_out", UInt32, "segments sent (tcpi_segs_out)").nullable(),
        Column::new("segs_in", UInt32, "segments received (tcpi_segs_in)").nullable(),
        Column::new("delivery_rate", UInt64, "delivery rate, bytes/s (tcpi_delivery_rate; 0 before a sample)")
            .nullable(),
        Column::new(
            "pacing_rate",
            UInt64,
            "pacing rate, bytes/s (tcpi_pacing_rate; 18446744073709551615 when unlimited)",
        )
        .nullable(),
        Column::new("rmem_alloc", UInt32, "bytes charged to the receive queue (ss -m r)").nullable(),
        Column::new("rcvbuf", UInt32, "receive buffer limit, SO_RCVBUF (ss -m rb)").nullable(),
        Column::new("wmem_alloc", UInt32, "bytes of packets sent down the stack (ss -m t)").nullable(),
        Column::new("sndbuf", UInt32, "send buffer limit, SO_SNDBUF (ss -m tb)").nullable(),
        Column::new("fwd_alloc", UInt32, "bytes reserved but not used yet (ss -m f)").nullable(),
        Column::new("wmem_queued", UInt32, "bytes of the send queue (ss -m w)").nullable(),
        Column::new("optmem", UInt32, "socket options' memory (ss -m o)").nullable(),
        Column::new("backlog", UInt32, "bytes in the socket's backlog queue (ss -m bl)").nullable(),
        Column::new("drops", UInt32, "packets dropped (ss -m d)").nullable(),
        Column::new(
            "sk_addr",
            UInt64,
            "kernel address of the struct sock, inet_timewait_sock or request_sock (kernel walk only)",
        )
        .nullable(),
        Column::new("reuseport", Boolean, "SO_REUSEPORT is set (kernel walk only)").nullable(),
    ],
    sources: &[
        Source {
            kind: SourceKind::Drgn,
            doc: "libdrgn walk of tcp_hashinfo's listening hash and of every established hash (full, time-wait and request sockets), one read per socket",
        },
        Source {
            kind: SourceKind::Netlink,
            doc: "netlink sock_diag dump of every state with tcp_info, congestion and memory, in each network namespace",
        },
        Source {
            kind: SourceKind::Procfs,
            doc: "/proc/net/tcp and tcp6, in each network namespace (no tcp_info, congestion, memory, cookie, cgroup, bound device or backlog)",
        },
    ],
};

/// `AF_INET6`, as `TcpSocket::family` and `InetSocket::family` number it.
const AF_INET6: u16 = 10;

/// Every TCP socket, one row per socket.
#[derive(Debug)]
pub struct TcpSockets;

impl TableScan for TcpSockets {
    fn spec() -> &'static TableSpec {
        &SPEC
    }

    fn probe(types: &Types) -> kql_drgn::Result<()> {
        TcpWalker::new(types)?;
        Ok(())
    }

    fn scan(target: &Target, binding: &Binding, request: &ScanRequest) -> Result<Scanned> {
        let filter = Filter::of(request);
        let mut warnings = Vec::new();
        let rows = socket_keys::rows_from_source(
            target,
            binding,
            &mut warnings,
            |warnings| kernel_sockets(target, binding, &filter, warnings),
            |kind, warnings| host_sockets(target, kind, &filter, warnings),
        )?;
        Ok(Scanned { batch: to_batch(&rows)?, warnings })
    }
}

/// What the key constraints of a scan allow.
struct Filter {
    keys: SocketKeys,
    /// Allowed states as a mask of `1 << state`; every state when unconstrained.
    states: u32,
}

impl Filter {
    fn of(request: &ScanRequest) -> Filter {
        let states = match request.keys.scalars("state") {
            None => inet_socket::ALL_STATES,
            Some(names) => names
                .iter()
                .filter_map(|name| name.try_as_str().flatten())
                .filter_map(|name| (1..=12u8).find(|&state| state_name(state) == name))
                .fold(0, |mask, state| mask | 1 << state),
        };
        Filter { keys: SocketKeys::of(request), states }
    }

    fn wants(&self, row: &Row) -> bool {
        self.states & (1 << row.state) != 0 && self.keys.wants(row.netns, Some(row.local_port), row.inode)
    }
}

/// One socket, whichever source read it.
struct Row {
    netns: u64,
    /// `AF_INET` or `AF_INET6`.
    family: u16,
    state: u8,
    recv_q: u32,
    send_q: Option<u32>,
    local_addr: IpAddr,
    local_port: u16,
    peer_addr: IpAddr,
    peer_port: u16,
    inode: u64,
    uid: u32,
    v6only: Option<bool>,
    bound_dev: Option<String>,
    cgroup_id: Option<u64>,
    cookie: Option<u64>,
    timer: &'static str,
    timer_expires_ms: u64,
    retrans: u32,
    congestion: Option<Arc<str>>,
    info: Option<Info>,
    skmem: Option<SkMem>,
    sk_addr: Option<u64>,
    reuseport: Option<bool>,
}

/// The `tcp_info` columns.
struct Info {
    rtt_us: u32,
    rttvar_us: u32,
    min_rtt_us: u32,
    rto_us: u32,
    ato_us: u32,
    mss: u32,
    rcv_mss: u32,
    cwnd: u32,
    ssthresh: u32,
    unacked: u32,
    lost: u32,
    retransmits: u32,
    total_retrans: u32,
    bytes_acked: u64,
    bytes_received: u64,
    bytes_sent: Option<u64>,
    bytes_retrans: Option<u64>,
    segs_out: u32,
    segs_in: u32,
    delivery_rate: u64,
    pacing_rate: u64,
}

/// Every wanted socket of the kernel that can be read, from one walk of its hashes; what
/// could not be read is named in `warnings`.
fn kernel_sockets(
    target: &Target,
    binding: &Binding,
    filter: &Filter,
    warnings: &mut Vec<String>,
) -> Result<Vec<Row>> {
    let sockets = kernel_walk::tolerant("tcp_sockets", target, binding, warnings, |types, mem, skipped| {
        TcpWalker::new(types)?.walk(mem, skipped)
    })?;
    Ok(sockets.into_iter().map(kernel_row).filter(|row| filter.wants(row)).collect())
}

fn kernel_row(sk: TcpSocket) -> Row {
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    let info = sk.info.map(|i| Info {
        rtt_us: i.rtt_us,
        rttvar_us: i.rttvar_us,
        min_rtt_us: i.min_rtt_us,
        rto_us: clamp(i.rto_us),
        ato_us: clamp(i.ato_us),
        mss: i.snd_mss,
        rcv_mss: i.rcv_mss,
        cwnd: i.snd_cwnd,
        ssthresh: i.snd_ssthresh,
        unacked: i.unacked,
        lost: i.lost,
        retransmits: u32::from(i.retransmits),
        total_retrans: i.total_retrans,
        bytes_acked: i.bytes_acked,
        bytes_received: i.bytes_received,
        bytes_sent: i.bytes_sent,
        bytes_retrans: i.bytes_retrans,
        segs_out: i.segs_out,
        segs_in: i.segs_in,
        delivery_rate: i.delivery_rate.unwrap_or(0),
        pacing_rate: i.pacing_rate,
    });
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
    Row {
        netns: sk.netns,
        family: sk.family,
        state: sk.state,
        recv_q: sk.recv_q,
        send_q: Some(sk.send_q),
        local_addr: sk.local_addr,
        local_port: sk.local_port,
        peer_addr: sk.peer_addr,
        peer_port: sk.peer_port,
        inode: sk.inode,
        uid: sk.uid,
        v6only: sk.v6only,
        bound_dev: sk.bound_dev,
        cgroup_id: sk.cgroup_id,
        cookie: sk.cookie,
        timer: sk.timer.kind.name(),
        timer_expires_ms: sk.timer.expires_ms,
        retrans: sk.timer.retransmits,
        congestion: sk.congestion,
        info,
        skmem,
        sk_addr: Some(sk.address),
        reuseport: Some(sk.reuseport),
    }
}

/// Sockets of every wanted network namespace of this host, dumped from inside each.
fn host_sockets(
    target: &Target,
    kind: SourceKind,
    filter: &Filter,
    warnings: &mut Vec<String>,
) -> Result<Vec<Row>> {
    if filter.states == 0 {
        return Ok(Vec::new());
    }
    let procfs = "/proc/net/tcp{,6} instead, which has no tcp_info, congestion, memory, cookie, cgroup, bound device or backlog (those columns are NULL)";
    let mut names = Congestion::default();
    let dump = |kind, ns: &NetNamespace| {
        let sockets = dump_namespace(kind, ns, filter.states)?;
        let rows = sockets
            .into_iter()
            .map(|(socket, bound_dev)| host_row(ns.inode, kind, socket, bound_dev, &mut names));
        Ok(rows.filter(|row| filter.wants(row)).collect())
    };
    host_dump::each_namespace(
        "tcp_sockets",
        target,
        kind,
        |netns| filter.keys.wants_netns(netns),
        procfs,
        warnings,
        dump,
    )
}

/// Every socket of `ns` in `states`, read from inside it with netlink or /proc/net/tcp,
/// with the name of the device it is bound to.
fn dump_namespace(
    kind: SourceKind,
    ns: &NetNamespace,
    states: u32,
) -> io::Result<Vec<(InetSocket, Option<String>)>> {
    netns::run_in(ns, || {
        let sockets = match kind {
            SourceKind::Procfs => proc_net_inet::read_tcp(states)?,
            _ => inet_diag::dump_inet(InetProtocol::Tcp, states)?,
        };
        let mut devices: HashMap<u32, Option<String>> = HashMap::new();
        let named = sockets.into_iter().map(|socket| {
            let bound_dev = match socket.bound_ifindex {
                None | Some(0) => None,
                Some(index) => devices.entry(index).or_insert_with(|| interface_name(index)).clone(),
            };
            (socket, bound_dev)
        });
        Ok::<_, io::Error>(named.collect())
    })?
}

/// Congestion-control names, one allocation per algorithm rather than per socket.
#[derive(Default)]
struct Congestion(HashMap<String, Arc<str>>);

impl Congestion {
    fn intern(&mut self, name: String) -> Arc<str> {
        match self.0.get(&name) {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared: Arc<str> = Arc::from(name.as_str());
                self.0.insert(name, Arc::clone(&shared));
                shared
            }
        }
    }
}

fn host_row(
    netns: u64,
    kind: SourceKind,
    socket: InetSocket,
    bound_dev: Option<String>,
    names: &mut Congestion,
) -> Row {
    let InetSocket {
        family,
        state,
        recv_q,
        send_q,
        local_addr,
        local_port,
        peer_addr,
        peer_port,
        inode,
        uid,
        v6only,
        cgroup_id,
        cookie,
        timer,
        info,
        congestion,
        skmem,
        ..
    } = socket;
    let info = info.map(|i| Info {
        rtt_us: i.rtt_us,
        rttvar_us: i.rttvar_us,
        min_rtt_us: i.min_rtt_us,
        rto_us: i.rto_us,
        ato_us: i.ato_us,
        mss: i.snd_mss,
        rcv_mss: i.rcv_mss,
        cwnd: i.snd_cwnd,
        ssthresh: i.snd_ssthresh,
        unacked: i.unacked,
        lost: i.lost,
        retransmits: u32::from(i.retransmits),
        total_retrans: i.total_retrans,
        bytes_acked: i.bytes_acked,
        bytes_received: i.bytes_received,
        bytes_sent: Some(i.bytes_sent),
        bytes_retrans: Some(i.bytes_retrans),
        segs_out: i.segs_out,
        segs_in: i.segs_in,
        delivery_rate: i.delivery_rate,
        pacing_rate: i.pacing_rate,
    });
    let listener_from_procfs = kind == SourceKind::Procfs && state == TCP_LISTEN;
    Row {
        netns,
        family: u16::from(family),
        state,
        recv_q,
        send_q: (!listener_from_procfs).then_some(send_q),
        local_addr,
        local_port,
        peer_addr,
        peer_port,
        inode,
        uid,
        v6only,
        bound_dev,
        cgroup_id,
        cookie: cookie.filter(|&c| c != 0),
        timer: timer.map_or("off", |t| t.kind.ss_name()),
        timer_expires_ms: timer.map_or(0, |t| t.expires_ms.max(0) as u64),
        retrans: timer.map_or(0, |t| t.retrans),
        congestion: congestion.map(|name| names.intern(name)),
        info,
        skmem,
        sk_addr: None,
        reuseport: None,
    }
}

/// The local or peer address of `row` as `ss` prints it: `ss` knows `IPV6_V6ONLY` only for
/// LISTEN and CLOSE sockets (all netlink reports), so only theirs changes the rendering.
fn address(row: &Row, addr: IpAddr) -> String {
    let v6only = matches!(row.state, TCP_LISTEN | TCP_CLOSE) && row.v6only == Some(true);
    ss_address(addr, v6only)
}

fn to_batch(rows: &[Row]) -> Result<RecordBatch> {
    let info = |f: fn(&Info) -> u32| -> ArrayRef {
        Arc::new(UInt32Array::from_iter(rows.iter().map(|r| r.info.as_ref().map(f))))
    };
    let info64 = |f: fn(&Info) -> Option<u64>| -> ArrayRef {
        Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.info.as_ref().and_then(f))))
    };
    let mem = |f: fn(&SkMem) -> u32| -> ArrayRef {
        Arc::new(UInt32Array::from_iter(rows.iter().map(|r| r.skmem.as_ref().map(f))))
    };
    let strings = |f: &dyn Fn(&Row) -> String| -> ArrayRef {
        let mut builder = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
        for row in rows {
            builder.append_value(f(row));
        }
        Arc::new(builder.finish())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.netns))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| if r.family == AF_INET6 { "inet6" } else { "inet" }),
        )),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| state_name(r.state)))),
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.recv_q))),
        Arc::new(UInt32Array::from_iter(rows.iter().map(|r| r.send_q))),
        strings(&|r| address(r, r.local_addr)),
        Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.local_port))),
        strings(&|r| address(r, r.peer_addr)),
        Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.peer_port))),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.inode))),
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.uid))),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.v6only))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.bound_dev.as_deref()))),
        Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.cgroup_id))),
        Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.cookie))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.timer))),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.timer_expires_ms))),
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.retrans))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.congestion.as_deref()))),
        info(|i| i.rtt_us),
        info(|i| i.rttvar_us),
        info(|i| i.min_rtt_us),
        info(|i| i.rto_us),
        info(|i| i.ato_us),
        info(|i| i.mss),
        info(|i| i.rcv_mss),
        info(|i| i.cwnd),
        info(|i| i.ssthresh),
        info(|i| i.unacked),
        info(|i| i.lost),
        info(|i| i.retransmits),
        info(|i| i.total_retrans),
        info64(|i| Some(i.bytes_acked)),
        info64(|i| Some(i.bytes_received)),
        info64(|i| i.bytes_sent),
        info64(|i| i.bytes_retrans),
        info(|i| i.segs_out),
        info(|i| i.segs_in),
        info64(|i| Some(i.delivery_rate)),
        info64(|i| Some(i.pacing_rate)),
        mem(|m| m.rmem_alloc),
        mem(|m| m.rcvbuf),
        mem(|m| m.wmem_alloc),
        mem(|m| m.sndbuf),
        mem(|m| m.fwd_alloc),
        mem(|m| m.wmem_queued),
        mem(|m| m.optmem),
        mem(|m| m.backlog),
        mem(|m| m.drops),
        Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.sk_addr))),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.reuseport))),
    ];
    Ok(RecordBatch::try_new(SPEC.schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_has_a_value_per_row_of_each_source() {
        assert_eq!(to_batch(&[]).unwrap().num_columns(), SPEC.columns.len());
    }
}
