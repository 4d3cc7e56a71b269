//! TCP socket dumps over `NETLINK_SOCK_DIAG`, written by hand on top of libc.
//!
//! This module owns the netlink conversation with the kernel's `inet_diag` code: it sends one
//! `SOCK_DIAG_BY_FAMILY` dump request (`struct inet_diag_req_v2`) per address family, reads the
//! multipart answer until `NLMSG_DONE`, and decodes each `struct inet_diag_msg` and the few
//! attributes kql uses into a [`TcpSocket`].
//!
//! The netlink socket is created by the calling thread, so the dump shows the sockets of the
//! calling *thread's* network namespace; combine with [`crate::netns::run_in`] to look into
//! another namespace.
//!
//! The request asks for no optional extension (`idiag_ext` = 0): the kernel attaches
//! `INET_DIAG_SHUTDOWN`, `INET_DIAG_MARK` (with `CAP_NET_ADMIN`), `INET_DIAG_CGROUP_ID` and
//! `INET_DIAG_SOCKOPT` to every full socket regardless, and `INET_DIAG_SKV6ONLY` to
//! `AF_INET6` sockets in LISTEN or CLOSE state (`inet_diag_msg_attrs_fill`), which covers
//! everything kql decodes; asking for `INET_DIAG_INFO` and the like would only make every
//! message larger. Time-wait sockets are filled by other code and carry only
//! `INET_DIAG_MARK` (observed on Linux 6.18), so their `cgroup_id` is `None`.
//!
//! Decoding works on byte slices with explicit bounds checks, so a malformed or truncated
//! answer yields an [`std::io::ErrorKind::InvalidData`] error, never a panic, and no step
//! allocates per socket beyond the push onto the result vector.

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Kernel TCP state number of a listening socket (`TCP_LISTEN` in `include/net/tcp_states.h`).
pub const TCP_LISTEN: u8 = 10;

/// Kernel TCP state number of an established connection (`TCP_ESTABLISHED`).
pub const TCP_ESTABLISHED: u8 = 1;

/// One TCP socket as reported by the kernel's `inet_diag` (one `struct inet_diag_msg` plus
/// the attributes kql decodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpSocket {
    /// Address family: `libc::AF_INET` or `libc::AF_INET6` (as `u8`).
    pub family: u8,
    /// Kernel TCP state number (`idiag_state`; 1 = ESTABLISHED, [`TCP_LISTEN`] = 10, ...).
    pub state: u8,
    /// `idiag_rqueue`: for a listener, the current accept-queue length; otherwise the
    /// number of unread bytes in the receive queue.
    pub recv_q: u32,
    /// `idiag_wqueue`: for a listener, the backlog passed to `listen(2)` (capped by
    /// `net.core.somaxconn`); otherwise the number of unsent/unacknowledged bytes.
    pub send_q: u32,
    /// Local address (`idiag_src`). An `AF_INET6` socket carrying IPv4 traffic reports an
    /// IPv4-mapped address (`::ffff:a.b.c.d`), kept as such, exactly as `ss` shows it.
    pub local_addr: IpAddr,
    /// Local port (`idiag_sport`, converted from network byte order).
    pub local_port: u16,
    /// Peer address (`idiag_dst`); unspecified (`0.0.0.0` / `::`) for a listener.
    pub peer_addr: IpAddr,
    /// Peer port (`idiag_dport`); 0 for a listener.
    pub peer_port: u16,
    /// Inode of the socket in sockfs (`idiag_inode`), the number in `socket:[N]` links
    /// under `/proc/PID/fd`; 0 for sockets no process holds (e.g. not yet accepted).
    pub inode: u64,
    /// Owner uid of the socket (`idiag_uid`), as seen from the dumping namespace.
    pub uid: u32,
    /// Interface the socket is bound to with `SO_BINDTODEVICE` (`idiag_if`), 0 if none;
    /// see [`interface_name`].
    pub bound_ifindex: u32,
    /// `IPV6_V6ONLY` of an `AF_INET6` socket (attribute `INET_DIAG_SKV6ONLY`). The kernel
    /// only sends it for `AF_INET6` sockets in the LISTEN or CLOSE state, so it is `None`
    /// for IPv4 sockets and for IPv6 connections.
    pub v6only: Option<bool>,
    /// cgroup v2 id of the socket (attribute `INET_DIAG_CGROUP_ID`), when the kernel sends
    /// it (full sockets on kernels built with `CONFIG_SOCK_CGROUP_DATA`).
    pub cgroup_id: Option<u64>,
    /// Kernel socket cookie (`idiag_cookie[0] | idiag_cookie[1] << 32`).
    pub cookie: u64,
}

/// Dump TCP sockets whose state is in `states` (bit mask `1 << state`, e.g.
/// `1 << TCP_LISTEN`) for both `AF_INET` and `AF_INET6`, in the calling thread's network
/// namespace. IPv4 sockets come first, then IPv6 ones, each in kernel hash-table order.
///
/// Errors: creating the netlink socket or talking over it fails, the kernel answers with
/// an error, or the answer is malformed (`InvalidData`). A kernel without TCP support in
/// sock_diag (`inet_diag`/`tcp_diag` are modules, not loaded) is [`io::ErrorKind::Unsupported`].
pub fn dump_tcp(states: u32) -> io::Result<Vec<TcpSocket>> {
    dump_tcp_sockets(states).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => io::Error::new(
            io::ErrorKind::Unsupported,
            "netlink sock_diag has no TCP handler here (the tcp_diag module is not loaded)",
        ),
        _ => e,
    })
}

fn dump_tcp_sockets(states: u32) -> io::Result<Vec<TcpSocket>> {
    let mut out = Vec::new();
    if states == 0 {
        return Ok(out);
    }
    let sock = DiagSocket::open()?;
    let mut buf = vec![0u8; RECV_BUF_LEN];
    for (seq, family) in [(1, libc::AF_INET as u8), (2, libc::AF_INET6 as u8)] {
        sock.send_request(&build_request(seq, family, libc::IPPROTO_TCP as u8, states))?;
        loop {
            let n = sock.recv(&mut buf)?;
            let datagram = buf
                .get(..n)
                .ok_or_else(|| invalid("netlink datagram larger than the receive buffer (truncated)"))?;
            if parse_datagram(datagram, seq, &mut out)? == Flow::Done {
                break;
            }
        }
    }
    Ok(out)
}

/// Name of interface `ifindex` in the calling thread's network namespace
/// (`if_indextoname(3)`), `None` if `ifindex` is 0 or no such interface exists.
pub fn interface_name(ifindex: u32) -> Option<String> {
    if ifindex == 0 {
        return None;
    }
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `buf` is a writable buffer of IF_NAMESIZE bytes, the size if_indextoname
    // requires; it writes at most that many bytes (NUL included) and nothing else.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr().cast::<libc::c_char>()) };
    if p.is_null() {
        return None;
    }
    let name = CStr::from_bytes_until_nul(&buf).ok()?;
    Some(name.to_string_lossy().into_owned())
}

// ---------------------------------------------------------------------------------------
// Wire constants (include/uapi/linux/{netlink,sock_diag,inet_diag}.h). Stable kernel ABI.
// ---------------------------------------------------------------------------------------

/// Netlink protocol number of the socket-diagnostics family.
const NETLINK_SOCK_DIAG: libc::c_int = 4;
/// Message type of sock_diag requests and of each socket in the answer.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `nlmsg_flags`: this message is a request.
const NLM_F_REQUEST: u16 = 0x1;
/// `nlmsg_flags`: dump every matching object (`NLM_F_ROOT | NLM_F_MATCH`).
const NLM_F_DUMP: u16 = 0x100 | 0x200;
/// Message type carrying an errno (or 0 for an acknowledgement).
const NLMSG_ERROR: u16 = 0x2;
/// Message type ending a multipart dump; its payload is the dump's final status.
const NLMSG_DONE: u16 = 0x3;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct nlattr)`.
const NLA_HDRLEN: usize = 4;
/// Clears `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER` from `nla_type`.
const NLA_TYPE_MASK: u16 = !((1 << 15) | (1 << 14));
/// Attribute: `u8` value of `IPV6_V6ONLY`.
const INET_DIAG_SKV6ONLY: u16 = 11;
/// Attribute: `u64` cgroup v2 id of the socket.
const INET_DIAG_CGROUP_ID: u16 = 21;
/// `sizeof(struct inet_diag_req_v2)`.
const INET_DIAG_REQ_V2_LEN: usize = 56;
/// `sizeof(struct inet_diag_msg)`.
const INET_DIAG_MSG_LEN: usize = 72;
/// Full request datagram: `nlmsghdr` + `inet_diag_req_v2`.
const REQUEST_LEN: usize = NLMSG_HDRLEN + INET_DIAG_REQ_V2_LEN;
/// Receive buffer. The kernel sizes dump datagrams by the largest `recvmsg` length seen,
/// capped near 32 KiB, so 64 KiB always holds a whole datagram.
const RECV_BUF_LEN: usize = 64 * 1024;

/// `NLMSG_ALIGN`/`NLA_ALIGN`: round up to a multiple of 4.
const fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// An `InvalidData` error for a malformed kernel answer.
fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Encode one `SOCK_DIAG_BY_FAMILY` dump request: `nlmsghdr` then `inet_diag_req_v2`
/// asking for no optional extension (`idiag_ext` = 0) and a zero socket id (ignored by
/// dumps). Multi-byte fields are host byte order, as netlink expects.
fn build_request(seq: u32, family: u8, protocol: u8, states: u32) -> [u8; REQUEST_LEN] {
    let mut req = [0u8; REQUEST_LEN];
    req[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes()); // nlmsg_len
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes()); // nlmsg_type
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes()); // nlmsg_flags
    req[8..12].copy_from_slice(&seq.to_ne_bytes()); // nlmsg_seq
    // nlmsg_pid (12..16) = 0: addressed to the kernel.
    req[16] = family; // sdiag_family
    req[17] = protocol; // sdiag_protocol
    // idiag_ext (18) = 0, pad (19) = 0.
    req[20..24].copy_from_slice(&states.to_ne_bytes()); // idiag_states
    // id (24..72): all zero.
    req
}

/// What the receive loop does after one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// The dump continues in a later datagram.
    More,
    /// `NLMSG_DONE` (or a zero-error `NLMSG_ERROR`) arrived: the dump is complete.
    Done,
}

/// Host-order `u16` at byte `at` of `b`, `None` if out of bounds.
fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(*b.get(at..)?.first_chunk::<2>()?))
}

/// Host-order `u32` at byte `at` of `b`, `None` if out of bounds.
fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(*b.get(at..)?.first_chunk::<4>()?))
}

/// Kernel error carried by `NLMSG_ERROR`/`NLMSG_DONE` payloads (a negative errno).
fn errno_error(err: i32) -> io::Error {
    io::Error::from_raw_os_error(err.wrapping_neg())
}

/// Decode one received datagram (one or more netlink messages), appending every socket of
/// the dump with sequence number `seq` to `out`. Messages with another sequence number are
/// skipped.
fn parse_datagram(mut rest: &[u8], seq: u32, out: &mut Vec<TcpSocket>) -> io::Result<Flow> {
    while rest.len() >= NLMSG_HDRLEN {
        let (Some(len), Some(kind), Some(msg_seq)) = (ne_u32(rest, 0), ne_u16(rest, 4), ne_u32(rest, 8))
        else {
            return Err(invalid("truncated netlink header"));
        };
        let len = len as usize;
        let payload =
            rest.get(NLMSG_HDRLEN..len).ok_or_else(|| invalid("netlink message length out of bounds"))?;
        rest = rest.get(align4(len)..).unwrap_or(&[]);
        if msg_seq != seq {
            continue;
        }
        match kind {
            SOCK_DIAG_BY_FAMILY => {
                if let Some(sock) = parse_socket(payload)? {
                    out.push(sock);
                }
            }
            NLMSG_DONE => {
                // The payload is the dump's final status (0, or a negative errno).
                return match ne_u32(payload, 0).map(|e| e as i32) {
                    Some(err) if err < 0 => Err(errno_error(err)),
                    _ => Ok(Flow::Done),
                };
            }
            NLMSG_ERROR => {
                let err = ne_u32(payload, 0).ok_or_else(|| invalid("truncated NLMSG_ERROR"))? as i32;
                return if err == 0 { Ok(Flow::Done) } else { Err(errno_error(err)) };
            }
            // NLMSG_NOOP, NLMSG_OVERRUN or anything new: nothing to decode.
            _ => {}
        }
    }
    Ok(Flow::More)
}

/// Decode one `struct inet_diag_msg` and its attributes. `Ok(None)` for a family other than
/// `AF_INET`/`AF_INET6` (never sent for a TCP dump, skipped rather than trusted).
fn parse_socket(payload: &[u8]) -> io::Result<Option<TcpSocket>> {
    let m: &[u8; INET_DIAG_MSG_LEN] =
        payload.first_chunk().ok_or_else(|| invalid("truncated inet_diag_msg"))?;
    let u32_at = |at: usize| u32::from_ne_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]]);
    let addr_at = |at: usize| -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&m[at..at + 16]);
        a
    };
    let family = m[0];
    let (src, dst) = (addr_at(8), addr_at(24));
    let (local_addr, peer_addr) = match libc::c_int::from(family) {
        libc::AF_INET => (
            IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3])),
            IpAddr::V4(Ipv4Addr::new(dst[0], dst[1], dst[2], dst[3])),
        ),
        libc::AF_INET6 => (IpAddr::V6(Ipv6Addr::from(src)), IpAddr::V6(Ipv6Addr::from(dst))),
        _ => return Ok(None),
    };
    let mut sock = TcpSocket {
        family,
        state: m[1],
        // m[2] idiag_timer, m[3] idiag_retrans; id at 4..52; idiag_expires at 52.
        recv_q: u32_at(56),
        send_q: u32_at(60),
        local_addr,
        local_port: u16::from_be_bytes([m[4], m[5]]),
        peer_addr,
        peer_port: u16::from_be_bytes([m[6], m[7]]),
        inode: u64::from(u32_at(68)),
        uid: u32_at(64),
        bound_ifindex: u32_at(40),
        v6only: None,
        cgroup_id: None,
        cookie: u64::from(u32_at(44)) | (u64::from(u32_at(48)) << 32),
    };

    // Attributes follow the fixed part (72 is already 4-aligned). A malformed attribute
    // ends attribute decoding for this socket; the fixed part is still good.
    let mut attrs = payload.get(align4(INET_DIAG_MSG_LEN)..).unwrap_or(&[]);
    while let (Some(nla_len), Some(nla_type)) = (ne_u16(attrs, 0), ne_u16(attrs, 2)) {
        let nla_len = usize::from(nla_len);
        let Some(data) = attrs.get(NLA_HDRLEN..nla_len) else {
            break;
        };
        match nla_type & NLA_TYPE_MASK {
            INET_DIAG_SKV6ONLY => sock.v6only = data.first().map(|&b| b != 0),
            INET_DIAG_CGROUP_ID => {
                sock.cgroup_id = data.first_chunk::<8>().map(|b| u64::from_ne_bytes(*b));
            }
            _ => {}
        }
        attrs = attrs.get(align4(nla_len)..).unwrap_or(&[]);
    }
    Ok(Some(sock))
}

/// An open `NETLINK_SOCK_DIAG` socket (closed on drop).
struct DiagSocket {
    fd: OwnedFd,
}

impl DiagSocket {
    /// Create the socket in the calling thread's network namespace.
    fn open() -> io::Result<Self> {
        // SAFETY: socket(2) takes only integer arguments; it returns a new descriptor or -1.
        let fd =
            unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_SOCK_DIAG) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2), is valid, and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Send one request datagram to the kernel (netlink port 0), retrying on `EINTR`.
    fn send_request(&self, req: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain old data for which all-zero bytes are a valid value.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: `req` is a live, initialized buffer of `req.len()` bytes and `kernel`
            // a live sockaddr_nl whose exact size is passed; sendto only reads them.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    req.as_ptr().cast(),
                    req.len(),
                    0,
                    (&raw const kernel).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if n >= 0 {
                return if n as usize == req.len() {
                    Ok(())
                } else {
                    Err(io::Error::new(io::ErrorKind::WriteZero, "short netlink send"))
                };
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Receive one datagram into `buf`, retrying on `EINTR`. Returns the datagram's full
    /// length (`MSG_TRUNC`), which exceeds `buf.len()` if it did not fit.
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes; recv writes at
            // most that many bytes into it (MSG_TRUNC only changes the returned length).
            let n = unsafe {
                libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_TRUNC)
            };
            if n > 0 {
                return Ok(n as usize);
            }
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "empty netlink datagram"));
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, Instant};

    /// Create a listening TCP socket by hand so the test controls `IPV6_V6ONLY`,
    /// `SO_BINDTODEVICE` and the backlog.
    fn raw_listener(
        addr: SocketAddr,
        v6only: Option<bool>,
        backlog: i32,
        bind_dev: Option<&str>,
    ) -> TcpListener {
        let family = match addr {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        };
        // SAFETY: socket(2) takes only integer arguments; it returns a new fd or -1.
        let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
        // SAFETY: `fd` is freshly created and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let raw = fd.as_raw_fd();
        if let Some(v6only) = v6only {
            let on: libc::c_int = v6only.into();
            // SAFETY: `on` is a live c_int and its exact size is passed.
            let rc = unsafe {
                libc::setsockopt(
                    raw,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_V6ONLY,
                    (&raw const on).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "IPV6_V6ONLY: {}", io::Error::last_os_error());
        }
        if let Some(dev) = bind_dev {
            // SAFETY: `dev` is a live buffer of `dev.len()` bytes (the kernel copies at most
            // that many and NUL-terminates itself).
            let rc = unsafe {
                libc::setsockopt(
                    raw,
                    libc::SOL_SOCKET,
                    libc::SO_BINDTODEVICE,
                    dev.as_ptr().cast(),
                    dev.len() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "SO_BINDTODEVICE: {}", io::Error::last_os_error());
        }
        let rc = match addr {
            SocketAddr::V4(a) => {
                let sa = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                    sin_zero: [0; 8],
                };
                // SAFETY: `sa` is a live sockaddr_in and its exact size is passed.
                unsafe {
                    libc::bind(raw, (&raw const sa).cast(), std::mem::size_of_val(&sa) as libc::socklen_t)
                }
            }
            SocketAddr::V6(a) => {
                let sa = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                    sin6_scope_id: 0,
                };
                // SAFETY: `sa` is a live sockaddr_in6 and its exact size is passed.
                unsafe {
                    libc::bind(raw, (&raw const sa).cast(), std::mem::size_of_val(&sa) as libc::socklen_t)
                }
            }
        };
        assert_eq!(rc, 0, "bind {addr}: {}", io::Error::last_os_error());
        // SAFETY: `raw` is a valid, bound stream socket.
        let rc = unsafe { libc::listen(raw, backlog) };
        assert_eq!(rc, 0, "listen: {}", io::Error::last_os_error());
        TcpListener::from(fd)
    }

    /// sockfs inode of a socket, the number `idiag_inode` must report.
    fn socket_inode(fd: &impl AsRawFd) -> u64 {
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        std::fs::metadata(path).expect("stat socket fd").ino()
    }

    fn euid() -> u32 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }

    fn lo_index() -> u32 {
        // SAFETY: the argument is a valid NUL-terminated C string.
        let idx = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        assert_ne!(idx, 0, "no lo interface");
        idx
    }

    /// Our cgroup v2 id (inode of our cgroup directory), if cgroup2 is mounted.
    fn own_cgroup2_id() -> Option<u64> {
        let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let rel = cg.lines().find_map(|l| l.strip_prefix("0::"))?.to_owned();
        let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
        let mnt = mounts
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .find(|f| f.len() > 2 && f[2] == "cgroup2")?[1]
            .to_owned();
        let dir = format!("{mnt}{}", rel.trim_end_matches('/'));
        std::fs::metadata(dir).ok().map(|m| m.ino())
    }

    fn find(socks: &[TcpSocket], family: i32, addr: IpAddr, port: u16) -> Vec<TcpSocket> {
        socks
            .iter()
            .filter(|s| i32::from(s.family) == family && s.local_addr == addr && s.local_port == port)
            .copied()
            .collect()
    }

    struct Expect {
        listener: TcpListener,
        family: i32,
        ss_local: String,
        v6only: Option<bool>,
        ifindex: u32,
        backlog: u32,
    }

    #[test]
    fn listeners_match_fstat_and_ss() {
        let lo = lo_index();
        let mk = |addr: &str, v6only, backlog: u32, dev: Option<&str>| {
            let listener = raw_listener(addr.parse().unwrap(), v6only, backlog as i32, dev);
            let local = listener.local_addr().unwrap();
            let port = local.port();
            let ss_local = match (local, v6only) {
                (SocketAddr::V4(a), _) => format!("{}{}:{port}", a.ip(), dev_suffix(dev)),
                (SocketAddr::V6(a), Some(false)) if a.ip().is_unspecified() => {
                    format!("*{}:{port}", dev_suffix(dev))
                }
                (SocketAddr::V6(a), _) => format!("[{}]{}:{port}", a.ip(), dev_suffix(dev)),
            };
            Expect {
                family: if local.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 },
                listener,
                ss_local,
                v6only: if local.is_ipv6() { v6only } else { None },
                ifindex: if dev.is_some() { lo } else { 0 },
                backlog,
            }
        };
        fn dev_suffix(dev: Option<&str>) -> String {
            dev.map(|d| format!("%{d}")).unwrap_or_default()
        }
        let expects = [
            mk("127.0.0.1:0", None, 77, None),
            mk("[::1]:0", Some(true), 77, None),
            mk("[::]:0", Some(false), 77, None),
            mk("[::]:0", Some(true), 78, None),
            mk("127.0.0.1:0", None, 79, Some("lo")),
        ];
        // Two connections the first listener never accepts: its accept queue holds 2.
        let target = expects[0].listener.local_addr().unwrap();
        let _clients = [TcpStream::connect(target).unwrap(), TcpStream::connect(target).unwrap()];

        // The handshake's final ACK may still be in flight on loopback: poll briefly.
        let deadline = Instant::now() + Duration::from_secs(2);
        let socks = loop {
            let socks = dump_tcp(1 << TCP_LISTEN).expect("dump_tcp");
            let l0 = find(&socks, libc::AF_INET, target.ip(), target.port());
            if l0.first().is_some_and(|s| s.recv_q == 2) || Instant::now() > deadline {
                break socks;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(socks.iter().all(|s| s.state == TCP_LISTEN));

        let ss = std::process::Command::new("ss").args(["-Hnlt"]).output().expect("run ss");
        assert!(ss.status.success());
        let ss = String::from_utf8(ss.stdout).unwrap();
        let cgroup = own_cgroup2_id();

        for (i, e) in expects.iter().enumerate() {
            let local = e.listener.local_addr().unwrap();
            let found = find(&socks, e.family, local.ip(), local.port());
            assert_eq!(found.len(), 1, "listener {local} in dump: {found:?}");
            let s = found[0];
            let want_recv_q = if i == 0 { 2 } else { 0 };
            assert_eq!(s.state, TCP_LISTEN);
            assert_eq!(s.inode, socket_inode(&e.listener), "{local} inode");
            assert_eq!(s.uid, euid(), "{local} uid");
            assert_eq!(s.send_q, e.backlog, "{local} backlog");
            assert_eq!(s.recv_q, want_recv_q, "{local} accept queue");
            assert_eq!(s.v6only, e.v6only, "{local} v6only");
            assert_eq!(s.bound_ifindex, e.ifindex, "{local} ifindex");
            assert!(s.peer_addr.is_unspecified() && s.peer_port == 0, "{s:?}");
            assert_ne!(s.cookie, 0);
            assert!(s.cgroup_id.is_some(), "CGROUP_ID attribute missing: {s:?}");
            if let Some(cg) = cgroup {
                assert_eq!(s.cgroup_id, Some(cg), "{local} cgroup id");
            }
            if e.ifindex != 0 {
                assert_eq!(interface_name(s.bound_ifindex).as_deref(), Some("lo"));
            }

            // ss columns: State Recv-Q Send-Q Local Peer.
            let line = ss
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| f.len() >= 5 && f[3] == e.ss_local)
                .unwrap_or_else(|| panic!("{} not in ss -Hnlt", e.ss_local));
            assert_eq!(line[1], s.recv_q.to_string(), "ss Recv-Q of {}", e.ss_local);
            assert_eq!(line[2], s.send_q.to_string(), "ss Send-Q of {}", e.ss_local);
        }
        // Cookies identify sockets uniquely.
        let cookies: HashSet<u64> = socks.iter().map(|s| s.cookie).collect();
        assert_eq!(cookies.len(), socks.len());
    }

    #[test]
    fn connections_and_v4_mapped_addresses() {
        let dual = raw_listener("[::]:0".parse().unwrap(), Some(false), 16, None);
        let port = dual.local_addr().unwrap().port();
        let v4_client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let v6_client = TcpStream::connect(("::1", port)).unwrap();
        let v4_port = v4_client.local_addr().unwrap().port();
        let v6_port = v6_client.local_addr().unwrap().port();
        let lo4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mapped = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);

        let established = || {
            let socks = dump_tcp(1 << TCP_ESTABLISHED).expect("dump_tcp");
            assert!(socks.iter().all(|s| s.state == TCP_ESTABLISHED));
            socks
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        let socks = loop {
            let socks = established();
            let children = socks
                .iter()
                .filter(|s| s.local_port == port && (s.peer_port == v4_port || s.peer_port == v6_port));
            if children.count() == 2 || Instant::now() > deadline {
                break socks;
            }
            std::thread::sleep(Duration::from_millis(5));
        };

        // The client side of the IPv4 connection is a plain AF_INET socket.
        let c4 = find(&socks, libc::AF_INET, lo4, v4_port);
        assert_eq!(c4.len(), 1, "{c4:?}");
        assert_eq!((c4[0].peer_addr, c4[0].peer_port), (lo4, port));
        assert_eq!(c4[0].inode, socket_inode(&v4_client));
        assert_eq!(c4[0].v6only, None);

        // The server side of it lives on the dual-stack AF_INET6 listener: IPv4-mapped.
        let s4 = find(&socks, libc::AF_INET6, mapped, port);
        assert_eq!(s4.len(), 1, "{s4:?}");
        assert_eq!((s4[0].peer_addr, s4[0].peer_port), (mapped, v4_port));
        assert_eq!(s4[0].inode, 0, "not accepted yet: no inode");
        assert_eq!(s4[0].v6only, None, "SKV6ONLY is only sent for LISTEN/CLOSE");

        // Plain IPv6 both ways.
        let c6 = find(&socks, libc::AF_INET6, lo6, v6_port);
        assert_eq!(c6.len(), 1, "{c6:?}");
        assert_eq!((c6[0].peer_addr, c6[0].peer_port), (lo6, port));
        assert_eq!(c6[0].inode, socket_inode(&v6_client));
        let s6: Vec<_> =
            find(&socks, libc::AF_INET6, lo6, port).into_iter().filter(|s| s.peer_port == v6_port).collect();
        assert_eq!(s6.len(), 1, "{s6:?}");
        assert_eq!(s6[0].peer_addr, lo6);

        // Once accepted, the server side gets the accepted socket's inode.
        let (accepted, from) = dual.accept().unwrap();
        let socks = established();
        let mine: Vec<_> =
            socks.iter().filter(|s| s.local_port == port && s.peer_port == from.port()).collect();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].inode, socket_inode(&accepted));
    }

    #[test]
    fn states_filter_and_empty_mask() {
        assert!(dump_tcp(0).unwrap().is_empty());
        let l = raw_listener("127.0.0.1:0".parse().unwrap(), None, 5, None);
        let port = l.local_addr().unwrap().port();
        let socks = dump_tcp(1 << TCP_ESTABLISHED).unwrap();
        assert!(!socks.iter().any(|s| s.inode == socket_inode(&l)));
        let all = dump_tcp(u32::MAX).unwrap();
        assert!(all.iter().any(|s| s.local_port == port && s.state == TCP_LISTEN));
    }

    /// Many listeners in a private network namespace (unshare in a helper thread): the dump
    /// spans many datagrams and must return exactly the sockets created, nothing else.
    #[test]
    fn many_listeners_exact_in_private_netns() {
        const N: usize = 3000;
        std::thread::spawn(|| {
            // SAFETY: unshare(CLONE_NEWNET) only moves this helper thread to a new, empty
            // network namespace; it ends with the thread.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "unshare: {}", io::Error::last_os_error());
            // lo is down in a fresh namespace: wildcard binds still work.
            let listeners: Vec<TcpListener> = (0..N)
                .map(|i| {
                    if i % 2 == 0 {
                        raw_listener("0.0.0.0:0".parse().unwrap(), None, 3, None)
                    } else {
                        raw_listener("[::]:0".parse().unwrap(), Some(i % 4 == 1), 3, None)
                    }
                })
                .collect();
            let want: HashSet<u64> = listeners.iter().map(socket_inode).collect();
            let start = Instant::now();
            let socks = dump_tcp(1 << TCP_LISTEN).unwrap();
            let took = start.elapsed();
            eprintln!("dump_tcp: {} listeners in {took:?}", socks.len());
            let got: HashSet<u64> = socks.iter().map(|s| s.inode).collect();
            assert_eq!(socks.len(), N);
            assert_eq!(got, want);
            let v4 = socks.iter().filter(|s| i32::from(s.family) == libc::AF_INET).count();
            assert_eq!(v4, N / 2);
            let v6only = socks.iter().filter(|s| s.v6only == Some(true)).count();
            assert_eq!(v6only, N / 4);
            // The caller's namespace is untouched by the helper thread's.
        })
        .join()
        .unwrap();
    }

    /// Timing on whatever the host has (prints; asserts only a very loose bound).
    #[test]
    fn dump_timing_on_host() {
        let mut best = Duration::MAX;
        let mut n = 0;
        for _ in 0..5 {
            let start = Instant::now();
            n = dump_tcp(1 << TCP_LISTEN).unwrap().len();
            best = best.min(start.elapsed());
        }
        eprintln!("dump_tcp on host: {n} listeners, best of 5 {best:?}");
        assert!(best < Duration::from_secs(2));
    }

    #[test]
    fn interface_names() {
        assert_eq!(interface_name(0), None);
        assert_eq!(interface_name(lo_index()).as_deref(), Some("lo"));
        assert_eq!(interface_name(u32::MAX - 7), None);
    }

    // ---- decoder tests on synthetic bytes ----

    fn nlmsg(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(align4(len), 0);
        m
    }

    fn nla(kind: u16, data: &[u8]) -> Vec<u8> {
        let len = NLA_HDRLEN + data.len();
        let mut a = Vec::new();
        a.extend_from_slice(&(len as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(data);
        a.resize(align4(len), 0);
        a
    }

    fn diag_msg_v6() -> Vec<u8> {
        let mut m = vec![0u8; INET_DIAG_MSG_LEN];
        m[0] = libc::AF_INET6 as u8;
        m[1] = TCP_LISTEN;
        m[4..6].copy_from_slice(&8080u16.to_be_bytes());
        m[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        m[24..40].copy_from_slice(&Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped().octets());
        m[6..8].copy_from_slice(&443u16.to_be_bytes());
        m[40..44].copy_from_slice(&7u32.to_ne_bytes());
        m[44..48].copy_from_slice(&0xdead_beefu32.to_ne_bytes());
        m[48..52].copy_from_slice(&0x1234u32.to_ne_bytes());
        m[56..60].copy_from_slice(&3u32.to_ne_bytes());
        m[60..64].copy_from_slice(&128u32.to_ne_bytes());
        m[64..68].copy_from_slice(&1000u32.to_ne_bytes());
        m[68..72].copy_from_slice(&424242u32.to_ne_bytes());
        m.extend(nla(8, &[0])); // SHUTDOWN
        m.extend(nla(INET_DIAG_SKV6ONLY, &[1]));
        m.extend(nla(14, &[])); // PAD
        m.extend(nla(INET_DIAG_CGROUP_ID | (1 << 14), &99u64.to_ne_bytes()));
        m
    }

    #[test]
    fn decodes_synthetic_message() {
        let mut dgram = nlmsg(SOCK_DIAG_BY_FAMILY, 5, &diag_msg_v6());
        dgram.extend(nlmsg(SOCK_DIAG_BY_FAMILY, 6, &diag_msg_v6())); // other seq: skipped
        let mut out = Vec::new();
        assert_eq!(parse_datagram(&dgram, 5, &mut out).unwrap(), Flow::More);
        assert_eq!(out.len(), 1);
        let s = out[0];
        assert_eq!(s.family, libc::AF_INET6 as u8);
        assert_eq!(s.local_addr, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(s.local_port, 8080);
        assert_eq!(s.peer_addr, "::ffff:10.1.2.3".parse::<IpAddr>().unwrap());
        assert_eq!(s.peer_port, 443);
        assert_eq!((s.recv_q, s.send_q, s.uid, s.inode), (3, 128, 1000, 424242));
        assert_eq!(s.bound_ifindex, 7);
        assert_eq!(s.cookie, 0x1234_dead_beef);
        assert_eq!(s.v6only, Some(true));
        assert_eq!(s.cgroup_id, Some(99));

        let done = nlmsg(NLMSG_DONE, 5, &0i32.to_ne_bytes());
        assert_eq!(parse_datagram(&done, 5, &mut out).unwrap(), Flow::Done);
        let failed = nlmsg(NLMSG_DONE, 5, &(-libc::ENOBUFS).to_ne_bytes());
        let err = parse_datagram(&failed, 5, &mut out).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOBUFS));
        let mut e = (-libc::ENOENT).to_ne_bytes().to_vec();
        e.extend_from_slice(&[0; 16]);
        let err = parse_datagram(&nlmsg(NLMSG_ERROR, 5, &e), 5, &mut out).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn malformed_input_never_panics() {
        let mut good = nlmsg(SOCK_DIAG_BY_FAMILY, 1, &diag_msg_v6());
        good.extend(nlmsg(NLMSG_DONE, 1, &0i32.to_ne_bytes()));
        let mut out = Vec::new();
        // Every truncation: either an error or a consistent partial result.
        for cut in 0..good.len() {
            let _ = parse_datagram(&good[..cut], 1, &mut out);
        }
        // A short inet_diag_msg is an error, not a panic.
        let short = nlmsg(SOCK_DIAG_BY_FAMILY, 1, &[0u8; 40]);
        assert!(parse_datagram(&short, 1, &mut out).is_err());
        // Header length pointing past the end / below the header size.
        let mut bad = good.clone();
        bad[0..4].copy_from_slice(&10_000u32.to_ne_bytes());
        assert!(parse_datagram(&bad, 1, &mut out).is_err());
        bad[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(parse_datagram(&bad, 1, &mut out).is_err());
        // Bad attribute lengths only stop attribute decoding.
        let mut m = diag_msg_v6();
        m[INET_DIAG_MSG_LEN..INET_DIAG_MSG_LEN + 2].copy_from_slice(&2u16.to_ne_bytes());
        out.clear();
        parse_datagram(&nlmsg(SOCK_DIAG_BY_FAMILY, 1, &m), 1, &mut out).unwrap();
        assert_eq!((out.len(), out[0].v6only), (1, None));
        m[INET_DIAG_MSG_LEN..INET_DIAG_MSG_LEN + 2].copy_from_slice(&u16::MAX.to_ne_bytes());
        parse_datagram(&nlmsg(SOCK_DIAG_BY_FAMILY, 1, &m), 1, &mut out).unwrap();
        // Random mutations of a valid datagram (xorshift, fixed seed).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut d = good.clone();
            for _ in 0..(next() % 6 + 1) {
                let at = (next() as usize) % d.len();
                d[at] = next() as u8;
            }
            let cut = (next() as usize) % (d.len() + 1);
            out.clear();
            let _ = parse_datagram(&d[..cut], 1, &mut out);
        }
    }

    #[test]
    fn request_layout() {
        let req = build_request(9, libc::AF_INET6 as u8, libc::IPPROTO_TCP as u8, 1 << 10);
        assert_eq!(ne_u32(&req, 0), Some(72));
        assert_eq!(ne_u16(&req, 4), Some(20));
        assert_eq!(ne_u16(&req, 6), Some(0x301));
        assert_eq!(ne_u32(&req, 8), Some(9));
        assert_eq!(&req[16..20], &[libc::AF_INET6 as u8, 6, 0, 0]);
        assert_eq!(ne_u32(&req, 20), Some(1024));
        assert!(req[24..].iter().all(|&b| b == 0));
    }
}
