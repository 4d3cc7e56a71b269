//! What kql knows of one TCP or UDP socket, whichever source filled it: [`InetSocket`]
//! and its parts, with the kernel's numbering of TCP states and socket timers.
//!
//! Two sources fill it: netlink `inet_diag` ([`crate::inet_diag`]) and the procfs tables
//! `/proc/net/{tcp,udp}{,6}` ([`crate::proc_net_inet`]). A field a source cannot know is
//! `None`. This module also decodes the two fixed-layout kernel structs that netlink
//! attaches to a socket: `struct tcp_info` (`INET_DIAG_INFO`, `include/uapi/linux/tcp.h`)
//! into [`TcpInfo`], and the `u32 [SK_MEMINFO_VARS]` array (`INET_DIAG_SKMEMINFO`,
//! `UNIX_DIAG_MEMINFO`, `include/uapi/linux/sock_diag.h`) into [`SkMem`].

use std::net::IpAddr;

use crate::wire::{ne_u32, ne_u64};

/// `TCP_ESTABLISHED` (`include/net/tcp_states.h`); also a connected UDP or unix socket.
pub const TCP_ESTABLISHED: u8 = 1;
/// `TCP_SYN_SENT`: a connect() waiting for the peer's SYN-ACK.
pub const TCP_SYN_SENT: u8 = 2;
/// `TCP_SYN_RECV`: a connection request not yet completed. The kernel reports request
/// sockets (`TCP_NEW_SYN_RECV` in its tables) with this state, in netlink and procfs alike.
pub const TCP_SYN_RECV: u8 = 3;
/// `TCP_FIN_WAIT1`.
pub const TCP_FIN_WAIT1: u8 = 4;
/// `TCP_FIN_WAIT2`.
pub const TCP_FIN_WAIT2: u8 = 5;
/// `TCP_TIME_WAIT`.
pub const TCP_TIME_WAIT: u8 = 6;
/// `TCP_CLOSE`; also an unconnected UDP or unix socket.
pub const TCP_CLOSE: u8 = 7;
/// `TCP_CLOSE_WAIT`: the peer closed, the local side has not.
pub const TCP_CLOSE_WAIT: u8 = 8;
/// `TCP_LAST_ACK`.
pub const TCP_LAST_ACK: u8 = 9;
/// `TCP_LISTEN`.
pub const TCP_LISTEN: u8 = 10;
/// `TCP_CLOSING`.
pub const TCP_CLOSING: u8 = 11;
/// `TCP_NEW_SYN_RECV`: a request socket in the established hash. Only meaningful in a state
/// mask (it selects request sockets); the sockets come back as [`TCP_SYN_RECV`].
pub const TCP_NEW_SYN_RECV: u8 = 12;

/// Every TCP state, as a state mask for [`crate::inet_diag::dump_inet`] and
/// [`crate::proc_net_inet::read_tcp`].
pub const ALL_STATES: u32 = u32::MAX;

/// The kernel's name of TCP state `state` (`ESTABLISHED`, `SYN_SENT`, …, `NEW_SYN_RECV`),
/// `None` for a number it does not define. `ss` abbreviates some (`ESTAB`, `UNCONN` for
/// `CLOSE`, `SYN-SENT` with a dash).
pub fn tcp_state_name(state: u8) -> Option<&'static str> {
    const NAMES: [&str; 13] = [
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
        "NEW_SYN_RECV",
        "BOUND_INACTIVE",
    ];
    NAMES.get(usize::from(state).checked_sub(1)?).copied()
}

/// The transport protocol of an [`InetSocket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InetProtocol {
    /// TCP (`IPPROTO_TCP`, answered by the `tcp_diag` module).
    Tcp,
    /// UDP (`IPPROTO_UDP`, answered by the `udp_diag` module).
    Udp,
}

impl InetProtocol {
    /// The `IPPROTO_*` number.
    pub fn number(self) -> u8 {
        match self {
            Self::Tcp => libc::IPPROTO_TCP as u8,
            Self::Udp => libc::IPPROTO_UDP as u8,
        }
    }

    /// `tcp` or `udp`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// One TCP or UDP socket.
#[derive(Debug, Clone, PartialEq)]
pub struct InetSocket {
    /// Address family: `libc::AF_INET` or `libc::AF_INET6` (as `u8`).
    pub family: u8,
    /// TCP or UDP.
    pub protocol: InetProtocol,
    /// Kernel state number ([`TCP_LISTEN`], …; see [`tcp_state_name`]). UDP sockets are
    /// [`TCP_CLOSE`] (`UNCONN` in `ss`) or, once connected, [`TCP_ESTABLISHED`].
    pub state: u8,
    /// For a listener, the accept-queue length; otherwise the bytes in the receive queue.
    pub recv_q: u32,
    /// For a listener, the `listen(2)` backlog from netlink but the `tx_queue` column
    /// (normally 0) from procfs; otherwise the unsent or unacknowledged bytes (TCP), the
    /// bytes of the send queue (UDP).
    pub send_q: u32,
    /// Local address. An `AF_INET6` socket carrying IPv4 traffic reports an IPv4-mapped
    /// address (`::ffff:a.b.c.d`), kept as such, as `ss` shows it.
    pub local_addr: IpAddr,
    /// Local port.
    pub local_port: u16,
    /// Peer address; unspecified (`0.0.0.0` / `::`) when not connected.
    pub peer_addr: IpAddr,
    /// Peer port; 0 when not connected.
    pub peer_port: u16,
    /// sockfs inode, the number in `socket:[N]` links under `/proc/PID/fd`; 0 for sockets
    /// no process holds (not yet accepted, request and time-wait sockets).
    pub inode: u64,
    /// Owner uid as seen from the reading namespace (0 for request and time-wait sockets).
    pub uid: u32,
    /// Interface set with `SO_BINDTODEVICE` (0 if none; see
    /// [`crate::interfaces::interface_name`]). `None` from procfs.
    pub bound_ifindex: Option<u32>,
    /// `IPV6_V6ONLY` of an `AF_INET6` socket: netlink sends it only for sockets in the
    /// LISTEN or CLOSE state (so unconnected UDP too). `None` otherwise and from procfs.
    pub v6only: Option<bool>,
    /// cgroup v2 id of the socket (full sockets, netlink only).
    pub cgroup_id: Option<u64>,
    /// Kernel socket cookie (`SO_COOKIE`); netlink only.
    pub cookie: Option<u64>,
    /// The TCP timer running, if any (`None` for UDP).
    pub timer: Option<SocketTimer>,
    /// `struct tcp_info` of a full TCP socket (not request or time-wait), netlink only.
    pub info: Option<TcpInfo>,
    /// Congestion-control algorithm of a full TCP socket (`INET_DIAG_CONG`), netlink only.
    pub congestion: Option<String>,
    /// Socket memory (`ss -m`) of a full socket, netlink only.
    pub skmem: Option<SkMem>,
    /// Packets dropped on receive (`sk_drops`): from netlink's [`SkMem`], or the `drops`
    /// column of `/proc/net/udp`; `None` from `/proc/net/tcp`.
    pub drops: Option<u32>,
}

/// The kind of TCP timer running on a socket (`idiag_timer`, the `tr` column of
/// `/proc/net/tcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// 1: retransmission, reordering or loss-probe timer (`ss`: `on`).
    Retransmit,
    /// 2: keepalive (or another `sk_timer`) (`ss`: `keepalive`).
    KeepAlive,
    /// 3: time-wait timer (`ss`: `timewait`).
    TimeWait,
    /// 4: zero-window probe timer (`ss`: `persist`).
    ZeroWindowProbe,
    /// Any other code (`ss`: `unknown`).
    Other(u8),
}

impl TimerKind {
    /// The kind for the kernel's timer code, `None` for 0 (no timer).
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => return None,
            1 => Self::Retransmit,
            2 => Self::KeepAlive,
            3 => Self::TimeWait,
            4 => Self::ZeroWindowProbe,
            other => Self::Other(other),
        })
    }

    /// The name `ss -o` prints in `timer:(NAME,…)`.
    pub fn ss_name(self) -> &'static str {
        match self {
            Self::Retransmit => "on",
            Self::KeepAlive => "keepalive",
            Self::TimeWait => "timewait",
            Self::ZeroWindowProbe => "persist",
            Self::Other(_) => "unknown",
        }
    }
}

/// A running TCP timer, as `ss -o` shows it: `timer:(on,200ms,0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketTimer {
    /// What the timer is for.
    pub kind: TimerKind,
    /// Milliseconds until it fires (0 if overdue). procfs counts in clock ticks (10 ms).
    pub expires_ms: i64,
    /// Retransmissions (kind `Retransmit`: `icsk_retransmits`; request socket: its
    /// retransmitted SYN-ACKs) or unanswered probes (`KeepAlive`, `ZeroWindowProbe`:
    /// `icsk_probes_out`).
    pub retrans: u32,
}

/// The fields of `struct tcp_info` that `ss -i` shows. Times are microseconds where the
/// name says `_us`, milliseconds where it says `_ms`; rates are bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpInfo {
    /// `tcpi_retransmits`: timeouts since the last ACK advanced.
    pub retransmits: u8,
    /// `tcpi_rto` (`ss`: `rto:` in ms).
    pub rto_us: u32,
    /// `tcpi_ato`, the delayed-ACK timeout.
    pub ato_us: u32,
    /// `tcpi_snd_mss`.
    pub snd_mss: u32,
    /// `tcpi_rcv_mss`.
    pub rcv_mss: u32,
    /// `tcpi_unacked`: segments in flight.
    pub unacked: u32,
    /// `tcpi_lost`: segments considered lost.
    pub lost: u32,
    /// `tcpi_last_data_sent` (`ss`: `lastsnd`).
    pub last_data_sent_ms: u32,
    /// `tcpi_last_data_recv` (`ss`: `lastrcv`).
    pub last_data_recv_ms: u32,
    /// `tcpi_last_ack_recv` (`ss`: `lastack`).
    pub last_ack_recv_ms: u32,
    /// `tcpi_rtt`, smoothed round-trip time.
    pub rtt_us: u32,
    /// `tcpi_rttvar`.
    pub rttvar_us: u32,
    /// `tcpi_snd_ssthresh` in segments; `TCP_INFINITE_SSTHRESH` (0x7fffffff) until the
    /// first loss (`ss` prints it only below 0xffff).
    pub snd_ssthresh: u32,
    /// `tcpi_snd_cwnd` in segments.
    pub snd_cwnd: u32,
    /// `tcpi_total_retrans`: segments retransmitted over the connection's life.
    pub total_retrans: u32,
    /// `tcpi_pacing_rate`.
    pub pacing_rate: u64,
    /// `tcpi_bytes_acked`.
    pub bytes_acked: u64,
    /// `tcpi_bytes_received`.
    pub bytes_received: u64,
    /// `tcpi_segs_out`.
    pub segs_out: u32,
    /// `tcpi_segs_in`.
    pub segs_in: u32,
    /// `tcpi_min_rtt`.
    pub min_rtt_us: u32,
    /// `tcpi_delivery_rate`.
    pub delivery_rate: u64,
    /// `tcpi_bytes_sent` (Linux 4.19+).
    pub bytes_sent: u64,
    /// `tcpi_bytes_retrans` (Linux 4.19+).
    pub bytes_retrans: u64,
}

impl TcpInfo {
    /// Decode a `struct tcp_info` as the running kernel sent it. The struct only grows, so
    /// a longer one (newer kernel) is fine; `None` if it ends before `tcpi_bytes_retrans`
    /// (kernels older than 4.19).
    pub fn from_kernel(bytes: &[u8]) -> Option<Self> {
        let u32_at = |at| ne_u32(bytes, at);
        let u64_at = |at| ne_u64(bytes, at);
        Some(Self {
            // Last field first: one length check covers every read below.
            bytes_retrans: u64_at(208)?,
            retransmits: *bytes.get(2)?,
            rto_us: u32_at(8)?,
            ato_us: u32_at(12)?,
            snd_mss: u32_at(16)?,
            rcv_mss: u32_at(20)?,
            unacked: u32_at(24)?,
            lost: u32_at(32)?,
            last_data_sent_ms: u32_at(44)?,
            last_data_recv_ms: u32_at(52)?,
            last_ack_recv_ms: u32_at(56)?,
            rtt_us: u32_at(68)?,
            rttvar_us: u32_at(72)?,
            snd_ssthresh: u32_at(76)?,
            snd_cwnd: u32_at(80)?,
            total_retrans: u32_at(100)?,
            pacing_rate: u64_at(104)?,
            bytes_acked: u64_at(120)?,
            bytes_received: u64_at(128)?,
            segs_out: u32_at(136)?,
            segs_in: u32_at(140)?,
            min_rtt_us: u32_at(148)?,
            delivery_rate: u64_at(160)?,
            bytes_sent: u64_at(200)?,
        })
    }
}

/// Socket memory accounting, the `sk_meminfo` array (`ss -m`:
/// `skmem:(r…,rb…,t…,tb…,f…,w…,o…,bl…,d…)`). All in bytes except `drops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SkMem {
    /// `SK_MEMINFO_RMEM_ALLOC` (`r`): memory held by the receive queue.
    pub rmem_alloc: u32,
    /// `SK_MEMINFO_RCVBUF` (`rb`): receive buffer limit (`SO_RCVBUF`).
    pub rcvbuf: u32,
    /// `SK_MEMINFO_WMEM_ALLOC` (`t`): memory of packets sent down the stack.
    pub wmem_alloc: u32,
    /// `SK_MEMINFO_SNDBUF` (`tb`): send buffer limit (`SO_SNDBUF`).
    pub sndbuf: u32,
    /// `SK_MEMINFO_FWD_ALLOC` (`f`): memory reserved but not used yet.
    pub fwd_alloc: u32,
    /// `SK_MEMINFO_WMEM_QUEUED` (`w`): memory of the send queue.
    pub wmem_queued: u32,
    /// `SK_MEMINFO_OPTMEM` (`o`): socket options' memory.
    pub optmem: u32,
    /// `SK_MEMINFO_BACKLOG` (`bl`): the backlog queue.
    pub backlog: u32,
    /// `SK_MEMINFO_DROPS` (`d`): packets dropped.
    pub drops: u32,
}

impl SkMem {
    /// Decode the `u32 [SK_MEMINFO_VARS]` array; `None` if it has fewer than the nine
    /// values kql knows (`SK_MEMINFO_DROPS` was the last added). Extra values are ignored.
    pub fn from_kernel(bytes: &[u8]) -> Option<Self> {
        let var = |index: usize| ne_u32(bytes, index * 4);
        Some(Self {
            drops: var(8)?,
            rmem_alloc: var(0)?,
            rcvbuf: var(1)?,
            wmem_alloc: var(2)?,
            sndbuf: var(3)?,
            fwd_alloc: var(4)?,
            wmem_queued: var(5)?,
            optmem: var(6)?,
            backlog: var(7)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names() {
        assert_eq!(tcp_state_name(TCP_ESTABLISHED), Some("ESTABLISHED"));
        assert_eq!(tcp_state_name(TCP_LISTEN), Some("LISTEN"));
        assert_eq!(tcp_state_name(TCP_NEW_SYN_RECV), Some("NEW_SYN_RECV"));
        assert_eq!(tcp_state_name(0), None);
        assert_eq!(tcp_state_name(14), None);
    }

    #[test]
    fn timer_codes() {
        assert_eq!(TimerKind::from_code(0), None);
        let names: Vec<_> = (1..=5).map(|c| TimerKind::from_code(c).unwrap().ss_name()).collect();
        assert_eq!(names, ["on", "keepalive", "timewait", "persist", "unknown"]);
    }

    #[test]
    fn tcp_info_layout_and_length() {
        let mut raw = vec![0u8; 232];
        let put32 = |raw: &mut Vec<u8>, at: usize, v: u32| raw[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        let put64 = |raw: &mut Vec<u8>, at: usize, v: u64| raw[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        raw[2] = 3;
        put32(&mut raw, 8, 204_000);
        put32(&mut raw, 68, 1234);
        put32(&mut raw, 80, 10);
        put64(&mut raw, 104, 1 << 40);
        put64(&mut raw, 200, 99);
        put64(&mut raw, 208, 7);
        let info = TcpInfo::from_kernel(&raw).unwrap();
        assert_eq!((info.retransmits, info.rto_us, info.rtt_us, info.snd_cwnd), (3, 204_000, 1234, 10));
        assert_eq!((info.pacing_rate, info.bytes_sent, info.bytes_retrans), (1 << 40, 99, 7));
        assert_eq!(TcpInfo::from_kernel(&raw[..216]), Some(info));
        assert_eq!(TcpInfo::from_kernel(&raw[..215]), None);
        assert_eq!(TcpInfo::from_kernel(&[]), None);
    }

    #[test]
    fn skmem_layout_and_length() {
        let raw: Vec<u8> = (1..=10u32).flat_map(u32::to_ne_bytes).collect();
        let mem = SkMem::from_kernel(&raw).unwrap();
        assert_eq!((mem.rmem_alloc, mem.rcvbuf, mem.sndbuf, mem.backlog, mem.drops), (1, 2, 4, 8, 9));
        assert_eq!(SkMem::from_kernel(&raw[..36]), Some(mem));
        assert_eq!(SkMem::from_kernel(&raw[..35]), None);
    }
}
