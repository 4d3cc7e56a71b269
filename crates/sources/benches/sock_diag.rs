//! Cost per socket of a netlink `inet_diag` TCP dump: kql's [`dump_inet`] (decoded by
//! `netlink-packet-core` + `netlink-packet-sock-diag`) against a hand-written decoder of
//! the same messages into the same [`InetSocket`]s (the libc decoder kql used before,
//! extended to the same attributes), the baseline that decided which one kql keeps.
//!
//! The bench moves itself into a private network namespace (root needed; otherwise it
//! measures the host's sockets), brings `lo` up, and opens `CONNECTIONS` loopback
//! connections to three listeners it never accepts from: each is two ESTABLISHED sockets
//! (the client, and the server side waiting in the accept queue) for one descriptor, so
//! 12,000 connections give 24,003 TCP sockets under the 20,000-descriptor limit. Both
//! decoders are timed on a full dump (`tcp_info`, congestion, skmem) and on a summary
//! ([`dump_inet_summary`]), and must return equal sockets.
//! `cargo bench -p kql-sources --bench sock_diag`; without `--bench` (as `cargo test
//! --all-targets` runs it) it uses 300 connections and runs each dump once.

use std::hint::black_box;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::process::Command;

use criterion::{Criterion, Throughput};
use kql_sources::inet_diag::{dump_inet, dump_inet_summary};
use kql_sources::inet_socket::{
    ALL_STATES, InetProtocol, InetSocket, SkMem, SocketTimer, TcpInfo, TimerKind,
};
use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, listen, socket};

/// Listeners the connections are spread over (each accept queue holds `backlog + 1`).
const LISTENERS: usize = 3;
/// `listen(2)` backlog of each listener, within a fresh namespace's `somaxconn` (4096).
const BACKLOG: i32 = 4096;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let connections = if full { 12_000 } else { 300 };
    enter_private_namespace();
    raise_fd_limit();
    let (_listeners, _clients) = open_connections(connections);
    let sockets = dump_inet(InetProtocol::Tcp, ALL_STATES).expect("dump_inet");
    let baseline = hand_written::dump_tcp(ALL_STATES, hand_written::FULL).expect("hand-written dump");
    assert_eq!(normalized(&sockets), normalized(&baseline), "the two decoders disagree");
    let summary = dump_inet_summary(InetProtocol::Tcp, ALL_STATES).expect("dump_inet_summary");
    let summary_baseline = hand_written::dump_tcp(ALL_STATES, 0).expect("hand-written summary");
    assert_eq!(normalized(&summary), normalized(&summary_baseline), "the two decoders disagree");
    assert!(sockets.len() >= 2 * connections, "{} sockets for {connections} connections", sockets.len());
    eprintln!("dumping {} TCP sockets ({connections} loopback connections)", sockets.len());

    let mut criterion = Criterion::default().configure_from_args().sample_size(20);
    let mut group = criterion.benchmark_group("tcp_dump_full");
    group.throughput(Throughput::Elements(sockets.len() as u64));
    group.bench_function("netlink-packet-sock-diag", |b| {
        b.iter(|| black_box(dump_inet(InetProtocol::Tcp, ALL_STATES).unwrap()))
    });
    group.bench_function("hand-written", |b| {
        b.iter(|| black_box(hand_written::dump_tcp(ALL_STATES, hand_written::FULL).unwrap()))
    });
    group.finish();
    let mut group = criterion.benchmark_group("tcp_dump_summary");
    group.throughput(Throughput::Elements(sockets.len() as u64));
    group.bench_function("netlink-packet-sock-diag", |b| {
        b.iter(|| black_box(dump_inet_summary(InetProtocol::Tcp, ALL_STATES).unwrap()))
    });
    group.bench_function("hand-written", |b| {
        b.iter(|| black_box(hand_written::dump_tcp(ALL_STATES, 0).unwrap()))
    });
    group.finish();
    criterion.final_summary();
}

/// The sockets without the fields that change between two dumps (timers, counters).
fn normalized(sockets: &[InetSocket]) -> Vec<InetSocket> {
    let mut out: Vec<InetSocket> = sockets
        .iter()
        .map(|s| InetSocket {
            timer: s.timer.map(|t| SocketTimer { expires_ms: 0, ..t }),
            info: s.info.map(|i| TcpInfo {
                last_data_sent_ms: 0,
                last_data_recv_ms: 0,
                last_ack_recv_ms: 0,
                ..i
            }),
            ..s.clone()
        })
        .collect();
    out.sort_by_key(|s| s.cookie);
    out
}

/// Unshare the network namespace (the whole process: this runs before any thread) and
/// bring its loopback up; without the privilege, stay in the host's namespace.
fn enter_private_namespace() {
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
        eprintln!("cannot unshare the network namespace ({e}): measuring in the host's");
        return;
    }
    let status = Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("run ip");
    assert!(status.success(), "ip link set lo up failed");
}

fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
}

/// `LISTENERS` listeners on 127.0.0.1 and `count` clients connected to them, never
/// accepted.
fn open_connections(count: usize) -> (Vec<TcpListener>, Vec<TcpStream>) {
    let listeners: Vec<TcpListener> = (0..LISTENERS).map(|_| listener()).collect();
    let clients = (0..count)
        .map(|i| TcpStream::connect(listeners[i % LISTENERS].local_addr().unwrap()).expect("connect"))
        .collect();
    (listeners, clients)
}

/// A listener on an ephemeral 127.0.0.1 port with a [`BACKLOG`]-deep accept queue (std's
/// `TcpListener::bind` uses 128).
fn listener() -> TcpListener {
    let fd: OwnedFd =
        socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).expect("socket");
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind");
    listen(&fd, Backlog::new(BACKLOG).expect("backlog")).expect("listen");
    TcpListener::from(fd)
}

/// The baseline: the same dump decoded by hand from the bytes of `struct nlmsghdr`,
/// `struct inet_diag_msg` and `struct nlattr`, with bounds checks and no allocation but the
/// result's.
mod hand_written {
    use super::*;
    use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const NLMSG_HDRLEN: usize = 16;
    const INET_DIAG_MSG_LEN: usize = 72;
    const INET_DIAG_INFO: u16 = 2;
    const INET_DIAG_CONG: u16 = 4;
    const INET_DIAG_SKMEMINFO: u16 = 7;
    const INET_DIAG_SKV6ONLY: u16 = 11;
    const INET_DIAG_CGROUP_ID: u16 = 21;
    /// `idiag_ext` bits of a full dump: `1 << (attribute - 1)`.
    pub const FULL: u8 =
        (1 << (INET_DIAG_INFO - 1)) | (1 << (INET_DIAG_CONG - 1)) | (1 << (INET_DIAG_SKMEMINFO - 1));

    fn invalid(what: &str) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
    }

    fn u16_at(b: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_ne_bytes(*b.get(at..)?.first_chunk()?))
    }

    fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_ne_bytes(*b.get(at..)?.first_chunk()?))
    }

    pub fn dump_tcp(states: u32, extensions: u8) -> io::Result<Vec<InetSocket>> {
        let socket = Socket::new(NETLINK_SOCK_DIAG)?;
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut out = Vec::new();
        for (seq, family) in [(1, libc::AF_INET as u8), (2, libc::AF_INET6 as u8)] {
            socket.send_to(&request(seq, family, states, extensions), &SocketAddr::new(0, 0), 0)?;
            loop {
                buf.clear();
                let n = socket.recv(&mut buf, libc::MSG_TRUNC)?;
                if n > buf.len() {
                    return Err(invalid("truncated datagram"));
                }
                if parse_datagram(&buf, seq, &mut out)? {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn request(seq: u32, family: u8, states: u32, extensions: u8) -> [u8; 72] {
        let mut req = [0u8; 72];
        req[0..4].copy_from_slice(&72u32.to_ne_bytes());
        req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req[6..8].copy_from_slice(&(0x1u16 | 0x300).to_ne_bytes());
        req[8..12].copy_from_slice(&seq.to_ne_bytes());
        req[16] = family;
        req[17] = libc::IPPROTO_TCP as u8;
        req[18] = extensions;
        req[20..24].copy_from_slice(&states.to_ne_bytes());
        req
    }

    /// `Ok(true)` once the dump is done.
    fn parse_datagram(mut rest: &[u8], seq: u32, out: &mut Vec<InetSocket>) -> io::Result<bool> {
        while rest.len() >= NLMSG_HDRLEN {
            let (Some(len), Some(kind), Some(msg_seq)) = (u32_at(rest, 0), u16_at(rest, 4), u32_at(rest, 8))
            else {
                return Err(invalid("truncated header"));
            };
            let len = len as usize;
            let payload = rest.get(NLMSG_HDRLEN..len).ok_or_else(|| invalid("bad length"))?;
            rest = rest.get(len.next_multiple_of(4)..).unwrap_or(&[]);
            if msg_seq != seq {
                continue;
            }
            match kind {
                SOCK_DIAG_BY_FAMILY => out.push(parse_socket(payload)?),
                NLMSG_DONE | NLMSG_ERROR => {
                    let code = u32_at(payload, 0).ok_or_else(|| invalid("truncated status"))? as i32;
                    return if code < 0 { Err(io::Error::from_raw_os_error(-code)) } else { Ok(true) };
                }
                _ => {}
            }
        }
        Ok(false)
    }

    fn parse_socket(payload: &[u8]) -> io::Result<InetSocket> {
        let m: &[u8; INET_DIAG_MSG_LEN] =
            payload.first_chunk().ok_or_else(|| invalid("short inet_diag_msg"))?;
        let u32_of = |at: usize| u32::from_ne_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]]);
        let addr = |at: usize| -> [u8; 16] { m[at..at + 16].try_into().unwrap_or_default() };
        let (src, dst) = (addr(8), addr(24));
        let (local_addr, peer_addr) = match i32::from(m[0]) {
            libc::AF_INET => (
                IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3])),
                IpAddr::V4(Ipv4Addr::new(dst[0], dst[1], dst[2], dst[3])),
            ),
            _ => (IpAddr::V6(Ipv6Addr::from(src)), IpAddr::V6(Ipv6Addr::from(dst))),
        };
        let mut sock = InetSocket {
            family: m[0],
            protocol: InetProtocol::Tcp,
            state: m[1],
            recv_q: u32_of(56),
            send_q: u32_of(60),
            local_addr,
            local_port: u16::from_be_bytes([m[4], m[5]]),
            peer_addr,
            peer_port: u16::from_be_bytes([m[6], m[7]]),
            inode: u64::from(u32_of(68)),
            uid: u32_of(64),
            bound_ifindex: Some(u32_of(40)),
            v6only: None,
            cgroup_id: None,
            cookie: Some(u64::from(u32_of(44)) | (u64::from(u32_of(48)) << 32)),
            timer: TimerKind::from_code(m[2]).map(|kind| SocketTimer {
                kind,
                retrans: u32::from(m[3]),
                expires_ms: i64::from(u32_of(52)),
            }),
            info: None,
            congestion: None,
            skmem: None,
            drops: None,
        };
        let mut attrs = payload.get(INET_DIAG_MSG_LEN..).unwrap_or(&[]);
        while let (Some(nla_len), Some(nla_type)) = (u16_at(attrs, 0), u16_at(attrs, 2)) {
            let nla_len = usize::from(nla_len);
            let Some(data) = attrs.get(4..nla_len) else { break };
            match nla_type & 0x3fff {
                INET_DIAG_INFO => sock.info = TcpInfo::from_kernel(data),
                INET_DIAG_CONG => {
                    let name = data.split(|&b| b == 0).next().unwrap_or_default();
                    sock.congestion = Some(String::from_utf8_lossy(name).into_owned());
                }
                INET_DIAG_SKMEMINFO => sock.skmem = SkMem::from_kernel(data),
                INET_DIAG_SKV6ONLY => sock.v6only = data.first().map(|&b| b != 0),
                INET_DIAG_CGROUP_ID => {
                    sock.cgroup_id = data.first_chunk::<8>().map(|b| u64::from_ne_bytes(*b));
                }
                _ => {}
            }
            attrs = attrs.get(nla_len.next_multiple_of(4)..).unwrap_or(&[]);
        }
        sock.drops = sock.skmem.map(|m| m.drops);
        Ok(sock)
    }
}
