//! Every TCP socket, with what `ss -tanpie -m` shows about it (and `/proc/net/tcp{,6}`).
//!
//! Structures walked:
//!
//! - the listening hash of `tcp_hashinfo` (`lhash2`, or `listening_hash` before 5.19:
//!   [`ListeningHash`]) for the `LISTEN` sockets;
//! - the established hash of every distinct `struct inet_hashinfo`: `tcp_hashinfo`'s, and
//!   since 6.1 each network namespace's own (`net->ipv4.tcp_death_row.hashinfo`, found
//!   through `net_namespace_list`; a namespace shares `tcp_hashinfo` unless it was made with
//!   `net.ipv4.tcp_child_ehash_entries` set; `tcp_death_row` is embedded in `struct
//!   netns_ipv4` in 5.10–5.15 and 6.1+, a pointer in between: told by its type). Each is
//!   `ehash[0..=ehash_mask].chain`, an `hlist_nulls_head` whose chain runs through
//!   `sock_common.skc_nulls_node` and ends at an odd "nulls" marker. It holds three kinds of
//!   object, told apart by `skc_state`:
//!   - full sockets, `struct tcp_sock` (`SYN_SENT` … `CLOSE_WAIT`, `LAST_ACK`, `CLOSING`):
//!     one read of the span of `tcp_sock` the walk needs, decoded as `ss` and
//!     `tcp_get_info()` do;
//!   - `TCP_TIME_WAIT` (6): `struct inet_timewait_sock` (`tw_substate`, the state `ss` and
//!     `/proc` show, `TIME_WAIT` or `FIN_WAIT2`; `tw_timer.expires`);
//!   - `TCP_NEW_SYN_RECV` (12): `struct inet_request_sock` (`req.rsk_listener`,
//!     `req.num_retrans`, `req.num_timeout`, `req.rsk_timer.expires`), shown as `SYN_RECV`.
//!
//! Per full socket also: `SOCK_INODE(sk->sk_socket)->i_ino`, `sock_net(sk)->ns.inum`,
//! `icsk_ca_ops->name` (cached per ops), the cgroup id and bound device name (cached).
//! Timers are decoded as `get_tcp4_sock()` / `inet_sk_diag_fill()` do (`icsk_pending`:
//! `ICSK_TIME_RETRANS` 1, `ICSK_TIME_LOSS_PROBE` 5, `ICSK_TIME_REO_TIMEOUT` 6 are "on",
//! `ICSK_TIME_PROBE0` 3 "persist"; else a pending keepalive timer is "keepalive": `sk_timer`,
//! or `icsk_keepalive_timer` where the kernel has it, as the rig's 6.1 and 6.12 do), their expiry
//! from `icsk_timeout` (or, on kernels without it, `icsk_retransmit_timer.expires`) against
//! `jiffies_64`, in ms with `HZ` as [`JiffiesSource`] derives it. Members a kernel lacks
//! (`bytes_sent`, `bytes_retrans`, …) are `None`; layouts are chosen by member and symbol
//! presence. Walks are bounded ([`crate::list`]'s caps and cycle checks, [`MAX_BUCKETS`]),
//! and every socket is read once even if a live kernel moves it between chains mid-walk.

use std::net::IpAddr;
use std::sync::Arc;

use kql_drgn::{Error, ErrorKind, Field, Result};

#[cfg(doc)]
use crate::net::MAX_BUCKETS;
use crate::net::{
    AddressMap, AddressSet, BucketArray, Caches, Common, CommonMembers, Jiffies, JiffiesSource,
    ListeningHash, Members, NetNamespaces, SkMem, SockContext, SockMembers, TCP_LISTEN, check_pointer,
    member, member_at, optional,
};
use crate::{Layout, Memory, Skipped, TypeName, Types, within_row_budget};

/// `TCP_SYN_RECV`: the state `ss` and `/proc/net/tcp` show for a connection request.
pub const TCP_SYN_RECV: u8 = 3;
/// `TCP_TIME_WAIT`: `skc_state` of a `struct inet_timewait_sock`.
pub const TCP_TIME_WAIT: u8 = 6;
/// `TCP_NEW_SYN_RECV`: `skc_state` of a `struct request_sock` in the established hash.
pub const TCP_NEW_SYN_RECV: u8 = 12;

/// `ICSK_TIME_*` of `include/net/inet_connection_sock.h` (values unchanged since 4.x).
const ICSK_TIME_RETRANS: u64 = 1;
const ICSK_TIME_PROBE0: u64 = 3;
const ICSK_TIME_LOSS_PROBE: u64 = 5;
const ICSK_TIME_REO_TIMEOUT: u64 = 6;

/// What `tcp_hashinfo` is (BTF describes no globals' types).
const TCP_HASHINFO: &[TypeName] = &[TypeName::Named("struct inet_hashinfo")];

/// `ss`'s name of a TCP state number (`ESTAB`, `SYN-SENT`, …, `UNKNOWN` for others).
pub fn state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTAB",
        2 => "SYN-SENT",
        3 => "SYN-RECV",
        4 => "FIN-WAIT-1",
        5 => "FIN-WAIT-2",
        6 => "TIME-WAIT",
        7 => "UNCONN",
        8 => "CLOSE-WAIT",
        9 => "LAST-ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW-SYN-RECV",
        _ => "UNKNOWN",
    }
}

/// Which kernel object a row was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpSockKind {
    /// A `struct tcp_sock` (listeners included).
    Full,
    /// A `struct inet_timewait_sock`.
    TimeWait,
    /// A `struct inet_request_sock` (`TCP_NEW_SYN_RECV`).
    Request,
}

/// A socket's timer as `ss -o` and `/proc/net/tcp`'s `tr` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// 0: none pending.
    Off,
    /// 1: retransmit, loss probe, reordering timeout; a request's SYN-ACK timer.
    On,
    /// 2: `sk_timer` (keepalive; FIN_WAIT2 of an orphan).
    Keepalive,
    /// 3: a timewait socket's timer.
    TimeWait,
    /// 4: zero-window probe.
    Persist,
}

impl TimerKind {
    /// `/proc/net/tcp`'s `tr` and `inet_diag`'s `idiag_timer`.
    pub fn code(self) -> u8 {
        match self {
            TimerKind::Off => 0,
            TimerKind::On => 1,
            TimerKind::Keepalive => 2,
            TimerKind::TimeWait => 3,
            TimerKind::Persist => 4,
        }
    }

    /// `ss`'s name: `off`, `on`, `keepalive`, `timewait`, `persist`.
    pub fn name(self) -> &'static str {
        match self {
            TimerKind::Off => "off",
            TimerKind::On => "on",
            TimerKind::Keepalive => "keepalive",
            TimerKind::TimeWait => "timewait",
            TimerKind::Persist => "persist",
        }
    }
}

/// A socket's timer, as `ss -o` shows it: `timer:(on,199ms,0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpTimer {
    pub kind: TimerKind,
    /// Milliseconds until it fires (`jiffies_delta_to_msecs`: 0 when due or overdue, or off).
    pub expires_ms: u64,
    /// As `ss` shows it: `icsk_retransmits` for "on", `icsk_probes_out` for "persist" and
    /// "keepalive", a request's `num_retrans`, 0 otherwise.
    pub retransmits: u32,
}

/// What a connection request (`TCP_NEW_SYN_RECV`) has beyond the common columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRequest {
    /// `rsk_listener`: the listening `struct sock` it was made for.
    pub listener: u64,
    /// `num_retrans`: SYN-ACKs retransmitted (what `ss` shows).
    pub num_retrans: u8,
    /// `num_timeout`: timer expiries (what `/proc/net/tcp`'s `retrnsmt` shows).
    pub num_timeout: u8,
}

/// `struct tcp_info` as `tcp_get_info()` fills it from the socket (times in µs unless named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpInfo {
    /// `icsk_ca_state` (`TCP_CA_Open` 0 …).
    pub ca_state: u8,
    /// `icsk_retransmits` (`/proc/net/tcp`'s `retrnsmt`).
    pub retransmits: u8,
    /// `icsk_probes_out` (`/proc/net/tcp`'s `timeout` column).
    pub probes: u8,
    /// `icsk_backoff`.
    pub backoff: u8,
    /// `jiffies_to_usecs(icsk_rto)`.
    pub rto_us: u64,
    /// `jiffies_to_usecs(icsk_ack.ato)`.
    pub ato_us: u64,
    /// `mss_cache`.
    pub snd_mss: u32,
    /// `icsk_ack.rcv_mss`.
    pub rcv_mss: u32,
    /// `packets_out`.
    pub unacked: u32,
    /// `sacked_out`.
    pub sacked: u32,
    /// `lost_out`.
    pub lost: u32,
    /// `retrans_out`.
    pub retrans: u32,
    /// `jiffies_to_msecs(tcp_jiffies32 - lsndtime)`.
    pub last_data_sent_ms: u64,
    /// `jiffies_to_msecs(tcp_jiffies32 - icsk_ack.lrcvtime)`.
    pub last_data_recv_ms: u64,
    /// `jiffies_to_msecs(tcp_jiffies32 - rcv_tstamp)`.
    pub last_ack_recv_ms: u64,
    /// `rcv_ssthresh`.
    pub rcv_ssthresh: u32,
    /// `srtt_us >> 3`.
    pub rtt_us: u32,
    /// `mdev_us >> 2`.
    pub rttvar_us: u32,
    /// `snd_ssthresh` (`TCP_INFINITE_SSTHRESH`, 0x7fffffff, in initial slow start).
    pub snd_ssthresh: u32,
    /// `snd_cwnd`.
    pub snd_cwnd: u32,
    /// `advmss`.
    pub advmss: u32,
    /// `reordering`.
    pub reordering: u32,
    /// `rcv_rtt_est.rtt_us >> 3`.
    pub rcv_rtt_us: u32,
    /// `rcvq_space.space`.
    pub rcv_space: u32,
    /// `total_retrans`.
    pub total_retrans: u32,
    /// `sk_pacing_rate` in bytes/s (`u64::MAX`: unlimited).
    pub pacing_rate: u64,
    /// `sk_max_pacing_rate`.
    pub max_pacing_rate: u64,
    /// `bytes_acked` (the SYN counts one).
    pub bytes_acked: u64,
    /// `bytes_received` (a FIN counts one).
    pub bytes_received: u64,
    /// `bytes_sent` (≥ 4.19).
    pub bytes_sent: Option<u64>,
    /// `bytes_retrans` (≥ 4.19).
    pub bytes_retrans: Option<u64>,
    pub segs_out: u32,
    pub segs_in: u32,
    pub data_segs_out: u32,
    pub data_segs_in: u32,
    /// `max(write_seq - snd_nxt, 0)`.
    pub notsent_bytes: u32,
    /// `tcp_min_rtt()`: `rtt_min.s[0].v`.
    pub min_rtt_us: u32,
    /// `rate_delivered * mss_cache * 1e6 / rate_interval_us` in bytes/s; `None` when either
    /// is 0 (the kernel reports nothing then).
    pub delivery_rate: Option<u64>,
    /// `rate_app_limited`.
    pub delivery_rate_app_limited: bool,
    /// `delivered`.
    pub delivered: u32,
    /// `snd_wnd`.
    pub snd_wnd: u32,
    /// `rcv_wnd`.
    pub rcv_wnd: u32,
}

/// One TCP socket: a full socket, a timewait socket or a connection request, with what
/// `ss -tanpie -m` shows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSocket {
    /// Address of the `struct sock` (`tcp_sock`, `inet_timewait_sock` or `request_sock`).
    pub address: u64,
    pub kind: TcpSockKind,
    /// `skc_family`: 2 (`AF_INET`) or 10 (`AF_INET6`).
    pub family: u16,
    /// The state as `ss` and `/proc/net/tcp` show it: `skc_state` of a full socket,
    /// `tw_substate` of a timewait socket (`TIME_WAIT` or `FIN_WAIT2`), [`TCP_SYN_RECV`] of a
    /// request. [`state_name`] names it.
    pub state: u8,
    /// `sock_net(sk)->ns.inum`.
    pub netns: u64,
    /// `skc_rcv_saddr` or `skc_v6_rcv_saddr`.
    pub local_addr: IpAddr,
    /// `skc_num`.
    pub local_port: u16,
    /// `skc_daddr` or `skc_v6_daddr`.
    pub peer_addr: IpAddr,
    /// `skc_dport`, host order.
    pub peer_port: u16,
    /// ss's Recv-Q: a listener's `sk_ack_backlog`; else `max(rcv_nxt - copied_seq, 0)`; 0
    /// for timewait sockets and requests.
    pub recv_q: u32,
    /// ss's Send-Q: a listener's `sk_max_ack_backlog`; else `write_seq - snd_una`; 0 for
    /// timewait sockets and requests.
    pub send_q: u32,
    /// `sk_uid`; a request's listener's (as `/proc/net/tcp` shows it); 0 for timewait.
    pub uid: u32,
    /// `SOCK_INODE(sk->sk_socket)->i_ino`; 0 without a `struct socket` (not accepted yet,
    /// orphaned, timewait, request).
    pub inode: u64,
    /// `skc_cookie`, `None` while the kernel has not assigned one.
    pub cookie: Option<u64>,
    /// `cgroup_id()` of `sk_cgrp_data`'s cgroup (cgroup v2), full sockets only.
    pub cgroup_id: Option<u64>,
    /// `skc_bound_dev_if` (0: not bound).
    pub bound_dev_if: u32,
    /// That device's name in the socket's netns.
    pub bound_dev: Option<String>,
    /// `skc_ipv6only` of an IPv6 socket.
    pub v6only: Option<bool>,
    /// `skc_reuseport`.
    pub reuseport: bool,
    pub timer: TcpTimer,
    /// `icsk_ca_ops->name` (`cubic`, `bbr`, …), full sockets only; shared by every socket
    /// of the walk using those ops.
    pub congestion: Option<Arc<str>>,
    /// Full sockets only.
    pub info: Option<TcpInfo>,
    /// Full sockets only (`None` also where the kernel lacks a member).
    pub skmem: Option<SkMem>,
    /// Requests only.
    pub request: Option<TcpRequest>,
}

/// Every TCP socket of the kernel, of all network namespaces: listeners first, then each
/// established hash in bucket order; an error if any bucket or socket cannot be read.
pub fn tcp_sockets(types: &Types) -> Result<Vec<TcpSocket>> {
    let mut skipped = Skipped::default();
    let sockets = TcpWalker::new(types)?.walk(&Memory::new(types), &mut skipped)?;
    skipped.all_or_error(sockets)
}

/// Indexes of the `struct tcp_sock` members beyond `struct sock`.
struct TcpMembers {
    pending: usize,
    /// `icsk_keepalive_timer` (kernels that moved keepalive off `sk_timer`: 6.1.y, 6.12).
    keepalive_pprev: usize,
    keepalive_expires: usize,
    timeout: usize,
    retransmit_expires: usize,
    retransmits: usize,
    probes_out: usize,
    backoff: usize,
    ca_state: usize,
    ca_ops: usize,
    rto: usize,
    ato: usize,
    rcv_mss: usize,
    lrcvtime: usize,
    rcv_nxt: usize,
    copied_seq: usize,
    write_seq: usize,
    snd_una: usize,
    snd_nxt: usize,
    srtt_us: usize,
    mdev_us: usize,
    mss_cache: usize,
    snd_cwnd: usize,
    snd_ssthresh: usize,
    total_retrans: usize,
    lost_out: usize,
    packets_out: usize,
    sacked_out: usize,
    retrans_out: usize,
    reordering: usize,
    rcv_ssthresh: usize,
    advmss: usize,
    rcv_rtt: usize,
    rcv_space: usize,
    bytes_acked: usize,
    bytes_received: usize,
    bytes_sent: usize,
    bytes_retrans: usize,
    segs_in: usize,
    segs_out: usize,
    data_segs_in: usize,
    data_segs_out: usize,
    rate_delivered: usize,
    rate_interval_us: usize,
    rate_app_limited: usize,
    rtt_min: usize,
    delivered: usize,
    snd_wnd: usize,
    rcv_wnd: usize,
    lsndtime: usize,
    rcv_tstamp: usize,
}

impl TcpMembers {
    fn add(members: &mut Members) -> TcpMembers {
        let icsk = |name: &str| format!("inet_conn.{name}");
        TcpMembers {
            pending: members.add(icsk("icsk_pending")),
            keepalive_pprev: members.add_optional(icsk("icsk_keepalive_timer.entry.pprev")),
            keepalive_expires: members.add_optional(icsk("icsk_keepalive_timer.expires")),
            timeout: members.add_optional(icsk("icsk_timeout")),
            retransmit_expires: members.add_optional(icsk("icsk_retransmit_timer.expires")),
            retransmits: members.add(icsk("icsk_retransmits")),
            probes_out: members.add(icsk("icsk_probes_out")),
            backoff: members.add(icsk("icsk_backoff")),
            ca_state: members.add(icsk("icsk_ca_state")),
            ca_ops: members.add(icsk("icsk_ca_ops")),
            rto: members.add(icsk("icsk_rto")),
            ato: members.add(icsk("icsk_ack.ato")),
            rcv_mss: members.add(icsk("icsk_ack.rcv_mss")),
            lrcvtime: members.add(icsk("icsk_ack.lrcvtime")),
            rcv_nxt: members.add("rcv_nxt"),
            copied_seq: members.add("copied_seq"),
            write_seq: members.add("write_seq"),
            snd_una: members.add("snd_una"),
            snd_nxt: members.add("snd_nxt"),
            srtt_us: members.add("srtt_us"),
            mdev_us: members.add("mdev_us"),
            mss_cache: members.add("mss_cache"),
            snd_cwnd: members.add("snd_cwnd"),
            snd_ssthresh: members.add("snd_ssthresh"),
            total_retrans: members.add("total_retrans"),
            lost_out: members.add("lost_out"),
            packets_out: members.add("packets_out"),
            sacked_out: members.add("sacked_out"),
            retrans_out: members.add("retrans_out"),
            reordering: members.add("reordering"),
            rcv_ssthresh: members.add("rcv_ssthresh"),
            advmss: members.add("advmss"),
            rcv_rtt: members.add("rcv_rtt_est.rtt_us"),
            rcv_space: members.add("rcvq_space.space"),
            bytes_acked: members.add("bytes_acked"),
            bytes_received: members.add("bytes_received"),
            bytes_sent: members.add_optional("bytes_sent"),
            bytes_retrans: members.add_optional("bytes_retrans"),
            segs_in: members.add("segs_in"),
            segs_out: members.add("segs_out"),
            data_segs_in: members.add("data_segs_in"),
            data_segs_out: members.add("data_segs_out"),
            rate_delivered: members.add("rate_delivered"),
            rate_interval_us: members.add("rate_interval_us"),
            rate_app_limited: members.add("rate_app_limited"),
            rtt_min: members.add("rtt_min"),
            delivered: members.add("delivered"),
            snd_wnd: members.add("snd_wnd"),
            rcv_wnd: members.add("rcv_wnd"),
            lsndtime: members.add("lsndtime"),
            rcv_tstamp: members.add("rcv_tstamp"),
        }
    }
}

/// How a full socket is read: one `struct tcp_sock` layout.
struct FullLayout {
    layout: Layout,
    common: CommonMembers,
    sock: SockMembers,
    tcp: TcpMembers,
    /// `rtt_min.s[0].v` inside the bytes read.
    min_rtt: Field,
}

/// How a timewait socket is read.
struct TimeWaitLayout {
    layout: Layout,
    common: CommonMembers,
    substate: usize,
    expires: usize,
}

/// How a connection request is read.
struct RequestLayout {
    layout: Layout,
    common: CommonMembers,
    listener: usize,
    num_retrans: usize,
    num_timeout: usize,
    expires: usize,
}

/// Where a netns's established hash is: `net->ipv4.tcp_death_row` embedded (its
/// `hashinfo` member's place in `struct net`) or a pointer (then `hashinfo` in it).
enum DeathRow {
    Embedded(Field),
    Pointer { row: Field, hashinfo: Field },
}

/// One established hash: the `struct inet_hashinfo` it belongs to and its buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EstablishedHash {
    /// Address of the `struct inet_hashinfo` (`tcp_hashinfo`, or a netns's own).
    pub hashinfo: u64,
    /// Its `ehash` array of `ehash_mask + 1` buckets.
    pub buckets: BucketArray,
}

/// Decodes every kind of TCP socket: the offsets it needs, looked up once.
pub struct TcpWalker {
    context: SockContext,
    full: FullLayout,
    timewait: TimeWaitLayout,
    request: RequestLayout,
    /// `skc_state` in any of them (`struct sock_common` starts each).
    state: Field,
    /// `sk_uid` of a `struct sock`, for a request's listener.
    listener_uid: Field,
    /// Offset of `skc_nulls_node`, the chain's node in the established hash.
    node: u64,
    listening: ListeningHash,
    tcp_hashinfo: u64,
    ehash: Field,
    ehash_mask: Field,
    bucket_size: usize,
    namespaces: NetNamespaces,
    death_row: Option<DeathRow>,
    /// Offset of `name` in `struct tcp_congestion_ops`, and its size.
    ca_name: Field,
    jiffies: JiffiesSource,
}

/// Per-walk caches: netns, devices and cgroups of sockets, congestion-control names.
#[derive(Default)]
struct TcpCaches {
    sock: Caches,
    ca_names: AddressMap<Option<Arc<str>>>,
    listener_uids: AddressMap<u32>,
}

impl TcpWalker {
    /// Looks up every offset, symbol and layout the walk needs.
    pub fn new(types: &Types) -> Result<TcpWalker> {
        let (members, common, sock, tcp) = full_members();
        let layout = members.layout(types, "struct tcp_sock")?;
        let rtt_min = layout.field(tcp.rtt_min).expect("a required member");
        let v = types.find_type("struct minmax_sample")?.field("v")?;
        let min_rtt = Field { offset: rtt_min.offset + v.offset, ..v };
        let full = FullLayout { layout, common, sock, tcp, min_rtt };

        let (members, common, [substate, expires]) = timewait_members();
        let layout = members.layout(types, "struct inet_timewait_sock")?;
        let timewait = TimeWaitLayout { layout, common, substate, expires };

        let (members, common, [listener, num_retrans, num_timeout, expires]) = request_members();
        let layout = members.layout(types, "struct inet_request_sock")?;
        let request = RequestLayout { layout, common, listener, num_retrans, num_timeout, expires };

        let sock_type = types.find_type("struct sock")?;
        let (tcp_hashinfo, hashinfo_type) = types.global("tcp_hashinfo", TCP_HASHINFO)?;
        let bucket = types.find_type("struct inet_ehash_bucket")?;
        Ok(TcpWalker {
            context: SockContext::new(types)?,
            full,
            timewait,
            request,
            state: sock_type.field("__sk_common.skc_state")?,
            listener_uid: sock_type.field("sk_uid")?,
            node: sock_type.offset_of("__sk_common.skc_nulls_node")? as u64,
            listening: ListeningHash::new(types)?,
            tcp_hashinfo,
            ehash: hashinfo_type.field("ehash")?,
            ehash_mask: hashinfo_type.field("ehash_mask")?,
            bucket_size: bucket.size()?,
            namespaces: NetNamespaces::new(types)?,
            death_row: death_row(types)?,
            ca_name: types.find_type("struct tcp_congestion_ops")?.field("name")?,
            jiffies: JiffiesSource::new(types)?,
        })
    }

    /// Every established hash, each once: `tcp_hashinfo`'s, then those of network
    /// namespaces that have their own.
    pub fn established_hashes(&self, mem: &Memory) -> Result<Vec<EstablishedHash>> {
        let mut hashinfos = vec![self.tcp_hashinfo];
        if let Some(death_row) = &self.death_row {
            for net in self.namespaces.nets(mem)? {
                let hashinfo = match death_row {
                    DeathRow::Embedded(hashinfo) => mem.read_field(net, *hashinfo)?,
                    DeathRow::Pointer { row, hashinfo } => match mem.read_field(net, *row)? {
                        0 => 0,
                        row => {
                            check_pointer(row, "net->ipv4.tcp_death_row")?;
                            mem.read_field(row, *hashinfo)?
                        }
                    },
                };
                if hashinfo != 0 && !hashinfos.contains(&hashinfo) {
                    check_pointer(hashinfo, "net->ipv4.tcp_death_row.hashinfo")?;
                    hashinfos.push(hashinfo);
                }
            }
        }
        hashinfos
            .into_iter()
            .map(|hashinfo| {
                let at = mem.read_field(hashinfo, self.ehash)?;
                let count = mem.read_field(hashinfo, self.ehash_mask)? as usize + 1;
                let buckets = BucketArray::new(at, count, self.bucket_size, 0, true, "inet_hashinfo ehash")?;
                Ok(EstablishedHash { hashinfo, buckets })
            })
            .collect()
    }

    /// Every TCP socket that can be read: the listening hash, then every established hash.
    /// A bucket, chain or socket that cannot be read is noted in `skipped` (bucket index,
    /// socket address, field) and the walk goes on.
    pub fn walk(&self, mem: &Memory, skipped: &mut Skipped) -> Result<Vec<TcpSocket>> {
        let jiffies = self.jiffies.read(mem)?;
        let mut caches = TcpCaches::default();
        let mut seen = AddressSet::default();
        let listeners = self.listening.socks(mem, skipped)?;
        let mut rows = Vec::with_capacity(listeners.len());
        for sk in listeners {
            if seen.insert(sk) {
                let row = self.read_full(mem, sk, &jiffies, &mut caches);
                rows.extend(skipped.check(row, || format!("listening struct sock at {sk:#x}")));
            }
        }
        for hash in self.established_hashes(mem)? {
            let nodes = hash.buckets.nodes_tolerant(mem, skipped)?;
            rows.reserve(nodes.len());
            seen.reserve(nodes.len());
            for node in nodes {
                let sk = node - self.node;
                if seen.insert(sk) {
                    let row = self.read(mem, sk, &jiffies, &mut caches);
                    rows.extend(skipped.check(row, || format!("tcp struct sock at {sk:#x}")));
                }
            }
            within_row_budget(rows.len(), "tcp walk")?;
        }
        Ok(rows)
    }

    /// The socket at `sk` in an established hash, read as what its `skc_state` says it is.
    fn read(&self, mem: &Memory, sk: u64, jiffies: &Jiffies, caches: &mut TcpCaches) -> Result<TcpSocket> {
        check_pointer(sk, "tcp socket")?;
        let state =
            mem.bytes(sk + self.state.offset as u64, 1).map_err(|e| e.context("tcp socket skc_state"))?[0];
        match state {
            TCP_TIME_WAIT => self.read_timewait(mem, sk, jiffies, caches),
            TCP_NEW_SYN_RECV => self.read_request(mem, sk, jiffies, caches),
            _ => self.read_full(mem, sk, jiffies, caches),
        }
    }

    /// The columns every kind shares, from its `struct sock_common`.
    fn row(
        &self,
        mem: &Memory,
        sk: u64,
        kind: TcpSockKind,
        common: &Common,
        caches: &mut TcpCaches,
    ) -> Result<TcpSocket> {
        Ok(TcpSocket {
            address: sk,
            kind,
            family: common.family,
            state: common.state,
            netns: self.context.netns_inode(mem, common.net, &mut caches.sock)?,
            local_addr: common.local_addr,
            local_port: common.local_port,
            peer_addr: common.peer_addr,
            peer_port: common.peer_port,
            recv_q: 0,
            send_q: 0,
            uid: 0,
            inode: 0,
            cookie: Some(common.cookie).filter(|&cookie| cookie != 0),
            cgroup_id: None,
            bound_dev_if: common.bound_dev_if,
            bound_dev: self.context.device_name(mem, common.net, common.bound_dev_if, &mut caches.sock)?,
            v6only: (common.family == crate::net::AF_INET6).then_some(common.ipv6only),
            reuseport: common.reuseport,
            timer: TcpTimer { kind: TimerKind::Off, expires_ms: 0, retransmits: 0 },
            congestion: None,
            info: None,
            skmem: None,
            request: None,
        })
    }

    /// A full socket (`struct tcp_sock`), with one read of it.
    fn read_full(
        &self,
        mem: &Memory,
        sk: u64,
        jiffies: &Jiffies,
        caches: &mut TcpCaches,
    ) -> Result<TcpSocket> {
        check_pointer(sk, "tcp socket")?;
        let FullLayout { layout, common, sock, tcp, min_rtt } = &self.full;
        let bytes = layout.read(mem, sk)?;
        let bytes = &bytes[..];
        let common = common.read(layout, bytes)?;
        let get = |index| member(layout, bytes, index);
        let get32 = |index| Ok::<_, Error>(member(layout, bytes, index)? as u32);
        let mut row = self.row(mem, sk, TcpSockKind::Full, &common, caches)?;

        if common.state == TCP_LISTEN {
            row.recv_q = get32(sock.ack_backlog)?;
            row.send_q = get32(sock.max_ack_backlog)?;
        } else {
            row.recv_q = (get32(tcp.rcv_nxt)?.wrapping_sub(get32(tcp.copied_seq)?) as i32).max(0) as u32;
            row.send_q = get32(tcp.write_seq)?.wrapping_sub(get32(tcp.snd_una)?);
        }
        row.uid = get32(sock.uid)?;
        row.inode = self.context.inode(mem, get(sock.socket)?)?;
        row.cgroup_id = self.context.cgroup_id(mem, sock.cgroup(layout, bytes)?, &mut caches.sock)?;
        row.skmem = sock.skmem(layout, bytes)?;

        let (retransmits, probes) = (get(tcp.retransmits)? as u8, get(tcp.probes_out)? as u8);
        let timeout = match optional(layout, bytes, tcp.timeout)? {
            Some(timeout) => timeout,
            None => get(tcp.retransmit_expires)?,
        };
        row.timer = match get(tcp.pending)? {
            ICSK_TIME_RETRANS | ICSK_TIME_LOSS_PROBE | ICSK_TIME_REO_TIMEOUT => TcpTimer {
                kind: TimerKind::On,
                expires_ms: jiffies.until_msecs(timeout),
                retransmits: u32::from(retransmits),
            },
            ICSK_TIME_PROBE0 => TcpTimer {
                kind: TimerKind::Persist,
                expires_ms: jiffies.until_msecs(timeout),
                retransmits: u32::from(probes),
            },
            _ => {
                // The keepalive timer: `icsk_keepalive_timer` where the kernel has it, else `sk_timer`.
                let (pprev, expires) = match layout.field(tcp.keepalive_pprev) {
                    Some(_) => (tcp.keepalive_pprev, tcp.keepalive_expires),
                    None => (sock.timer_pprev, sock.timer_expires),
                };
                match optional(layout, bytes, pprev)? {
                    Some(pprev) if pprev != 0 => TcpTimer {
                        kind: TimerKind::Keepalive,
                        expires_ms: jiffies.until_msecs(get(expires)?),
                        retransmits: u32::from(probes),
                    },
                    _ => TcpTimer { kind: TimerKind::Off, expires_ms: 0, retransmits: 0 },
                }
            }
        };
        row.congestion = self.ca_name(mem, get(tcp.ca_ops)?, caches)?;

        let (mss_cache, rate, interval) =
            (get32(tcp.mss_cache)?, get(tcp.rate_delivered)?, get(tcp.rate_interval_us)?);
        let delivery_rate =
            (rate != 0 && interval != 0).then(|| rate * u64::from(mss_cache) * 1_000_000 / interval);
        let (write_seq, snd_nxt) = (get32(tcp.write_seq)?, get32(tcp.snd_nxt)?);
        row.info = Some(TcpInfo {
            ca_state: get(tcp.ca_state)? as u8,
            retransmits,
            probes,
            backoff: get(tcp.backoff)? as u8,
            rto_us: jiffies.to_usecs(get(tcp.rto)?),
            ato_us: jiffies.to_usecs(get(tcp.ato)?),
            snd_mss: mss_cache,
            rcv_mss: get32(tcp.rcv_mss)?,
            unacked: get32(tcp.packets_out)?,
            sacked: get32(tcp.sacked_out)?,
            lost: get32(tcp.lost_out)?,
            retrans: get32(tcp.retrans_out)?,
            last_data_sent_ms: jiffies.since_msecs32(get32(tcp.lsndtime)?),
            last_data_recv_ms: jiffies.since_msecs32(get32(tcp.lrcvtime)?),
            last_ack_recv_ms: jiffies.since_msecs32(get32(tcp.rcv_tstamp)?),
            rcv_ssthresh: get32(tcp.rcv_ssthresh)?,
            rtt_us: get32(tcp.srtt_us)? >> 3,
            rttvar_us: get32(tcp.mdev_us)? >> 2,
            snd_ssthresh: get32(tcp.snd_ssthresh)?,
            snd_cwnd: get32(tcp.snd_cwnd)?,
            advmss: get32(tcp.advmss)?,
            reordering: get32(tcp.reordering)?,
            rcv_rtt_us: get32(tcp.rcv_rtt)? >> 3,
            rcv_space: get32(tcp.rcv_space)?,
            total_retrans: get32(tcp.total_retrans)?,
            pacing_rate: optional(layout, bytes, sock.pacing_rate)?.unwrap_or(u64::MAX),
            max_pacing_rate: optional(layout, bytes, sock.max_pacing_rate)?.unwrap_or(u64::MAX),
            bytes_acked: get(tcp.bytes_acked)?,
            bytes_received: get(tcp.bytes_received)?,
            bytes_sent: optional(layout, bytes, tcp.bytes_sent)?,
            bytes_retrans: optional(layout, bytes, tcp.bytes_retrans)?,
            segs_out: get32(tcp.segs_out)?,
            segs_in: get32(tcp.segs_in)?,
            data_segs_out: get32(tcp.data_segs_out)?,
            data_segs_in: get32(tcp.data_segs_in)?,
            notsent_bytes: (write_seq.wrapping_sub(snd_nxt) as i32).max(0) as u32,
            min_rtt_us: min_rtt.read_u64(bytes)? as u32,
            delivery_rate,
            delivery_rate_app_limited: get(tcp.rate_app_limited)? != 0,
            delivered: get32(tcp.delivered)?,
            snd_wnd: get32(tcp.snd_wnd)?,
            rcv_wnd: get32(tcp.rcv_wnd)?,
        });
        Ok(row)
    }

    /// A timewait socket (`struct inet_timewait_sock`).
    fn read_timewait(
        &self,
        mem: &Memory,
        sk: u64,
        jiffies: &Jiffies,
        caches: &mut TcpCaches,
    ) -> Result<TcpSocket> {
        let TimeWaitLayout { layout, common, substate, expires } = &self.timewait;
        let bytes = layout.read(mem, sk)?;
        let mut row = self.row(mem, sk, TcpSockKind::TimeWait, &common.read(layout, &bytes)?, caches)?;
        row.state = layout.u64(&bytes, *substate)? as u8;
        let expires_ms = jiffies.until_msecs(layout.u64(&bytes, *expires)?);
        row.timer = TcpTimer { kind: TimerKind::TimeWait, expires_ms, retransmits: 0 };
        Ok(row)
    }

    /// A connection request (`struct inet_request_sock`).
    fn read_request(
        &self,
        mem: &Memory,
        sk: u64,
        jiffies: &Jiffies,
        caches: &mut TcpCaches,
    ) -> Result<TcpSocket> {
        let RequestLayout { layout, common, listener, num_retrans, num_timeout, expires } = &self.request;
        let bytes = layout.read(mem, sk)?;
        let mut row = self.row(mem, sk, TcpSockKind::Request, &common.read(layout, &bytes)?, caches)?;
        let request = TcpRequest {
            listener: layout.u64(&bytes, *listener)?,
            num_retrans: layout.u64(&bytes, *num_retrans)? as u8,
            num_timeout: layout.u64(&bytes, *num_timeout)? as u8,
        };
        row.state = TCP_SYN_RECV;
        row.uid = self.listener_uid(mem, request.listener, caches)?;
        let expires_ms = jiffies.until_msecs(layout.u64(&bytes, *expires)?);
        row.timer = TcpTimer { kind: TimerKind::On, expires_ms, retransmits: u32::from(request.num_retrans) };
        row.request = Some(request);
        Ok(row)
    }

    /// `sk_uid` of a request's listener, cached; 0 without one.
    fn listener_uid(&self, mem: &Memory, listener: u64, caches: &mut TcpCaches) -> Result<u32> {
        if listener == 0 {
            return Ok(0);
        }
        if let Some(&uid) = caches.listener_uids.get(&listener) {
            return Ok(uid);
        }
        check_pointer(listener, "rsk_listener")?;
        let uid = mem.read_field(listener, self.listener_uid)? as u32;
        caches.listener_uids.insert(listener, uid);
        Ok(uid)
    }

    /// `icsk_ca_ops->name`, cached per ops; `None` without ops.
    fn ca_name(&self, mem: &Memory, ops: u64, caches: &mut TcpCaches) -> Result<Option<Arc<str>>> {
        if ops == 0 {
            return Ok(None);
        }
        if let Some(name) = caches.ca_names.get(&ops) {
            return Ok(name.clone());
        }
        check_pointer(ops, "icsk_ca_ops")?;
        let raw = mem.bytes(member_at(ops, self.ca_name.offset as u64, "icsk_ca_ops")?, self.ca_name.size)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        let name = Some(Arc::from(String::from_utf8_lossy(&raw[..end])));
        caches.ca_names.insert(ops, name.clone());
        Ok(name)
    }
}

/// The members of `struct tcp_sock` a full socket is read with.
fn full_members() -> (Members, CommonMembers, SockMembers, TcpMembers) {
    let mut members = Members::default();
    let common = CommonMembers::add(&mut members, "inet_conn.icsk_inet.sk.__sk_common.");
    let sock = SockMembers::add(&mut members, "inet_conn.icsk_inet.sk.");
    let tcp = TcpMembers::add(&mut members);
    (members, common, sock, tcp)
}

/// The members of `struct inet_timewait_sock`: `sock_common`'s, `tw_substate`,
/// `tw_timer.expires`.
fn timewait_members() -> (Members, CommonMembers, [usize; 2]) {
    let mut members = Members::default();
    let common = CommonMembers::add(&mut members, "__tw_common.");
    let indexes = [members.add("tw_substate"), members.add("tw_timer.expires")];
    (members, common, indexes)
}

/// The members of `struct inet_request_sock`: `sock_common`'s, `rsk_listener`,
/// `num_retrans`, `num_timeout`, `rsk_timer.expires`.
fn request_members() -> (Members, CommonMembers, [usize; 4]) {
    let mut members = Members::default();
    let common = CommonMembers::add(&mut members, "req.__req_common.");
    let indexes = [
        members.add("req.__req_common.skc_listener"),
        members.add("req.num_retrans"),
        members.add("req.num_timeout"),
        members.add("req.rsk_timer.expires"),
    ];
    (members, common, indexes)
}

/// How to reach a netns's `tcp_death_row.hashinfo`, if `struct netns_ipv4` has a
/// `tcp_death_row` (an embedded struct or a pointer, by its type).
fn death_row(types: &Types) -> Result<Option<DeathRow>> {
    let net = types.find_type("struct net")?;
    let Some(ipv4) = net.member("ipv4")? else { return Ok(None) };
    let Some(row) = ipv4.ty.member("tcp_death_row")? else { return Ok(None) };
    let row_type = types.find_type("struct inet_timewait_death_row")?;
    if !row_type.has_member("hashinfo")? {
        return Ok(None);
    }
    match row.ty.shape()? {
        crate::Shape::Pointer(_) => Ok(Some(DeathRow::Pointer {
            row: net.field("ipv4.tcp_death_row")?,
            hashinfo: row_type.field("hashinfo")?,
        })),
        crate::Shape::Struct => Ok(Some(DeathRow::Embedded(net.field("ipv4.tcp_death_row.hashinfo")?))),
        _ => Err(Error::new(
            ErrorKind::Type,
            "struct netns_ipv4: tcp_death_row is neither a struct nor a pointer",
        )),
    }
}

#[cfg(test)]
mod tests {
    use kql_btf::Btf;

    use super::*;
    use crate::types::find_btf_type;

    /// This machine's kernel (6.18, past every layout change the walk knows of: no
    /// `icsk_timeout`, keepalive back on `sk_timer`) has every member the walk requires.
    #[test]
    fn this_machines_btf_has_what_the_tcp_walk_reads() {
        let btf = Btf::parse(std::fs::read("/sys/kernel/btf/vmlinux").expect("kernel BTF")).unwrap();
        let ty = |name| find_btf_type(&btf, name).unwrap();
        let (members, ..) = full_members();
        assert_eq!(members.missing(&ty("struct tcp_sock")), Vec::<String>::new());
        assert_eq!(timewait_members().0.missing(&ty("struct inet_timewait_sock")), Vec::<String>::new());
        assert_eq!(request_members().0.missing(&ty("struct inet_request_sock")), Vec::<String>::new());
        let icsk = ty("struct inet_connection_sock");
        assert!(
            icsk.has_member("icsk_timeout").unwrap() || icsk.field("icsk_retransmit_timer.expires").is_ok()
        );
        assert!(ty("struct minmax_sample").field("v").is_ok());
        assert!(ty("struct tcp_congestion_ops").field("name").is_ok());
    }

    #[test]
    fn states_and_timers_are_named_as_ss_names_them() {
        assert_eq!(
            (state_name(1), state_name(6), state_name(10), state_name(12)),
            ("ESTAB", "TIME-WAIT", "LISTEN", "NEW-SYN-RECV")
        );
        let timers =
            [TimerKind::Off, TimerKind::On, TimerKind::Keepalive, TimerKind::TimeWait, TimerKind::Persist];
        let named: Vec<(u8, &str)> = timers.iter().map(|t| (t.code(), t.name())).collect();
        assert_eq!(named, [(0, "off"), (1, "on"), (2, "keepalive"), (3, "timewait"), (4, "persist")]);
    }
}
