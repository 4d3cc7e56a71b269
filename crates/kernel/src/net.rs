//! Networking: listening TCP sockets and what they belong to, and the pieces every socket
//! walk ([`crate::tcp`], [`crate::udp`], [`crate::unix`]) shares.
//!
//! Structures walked: `tcp_hashinfo` (`struct inet_hashinfo`) — its `lhash2` array of
//! `struct inet_listen_hashbucket` (≥ 5.19, sockets chained through
//! `sock.__sk_common.skc_nulls_node`) or, before, its 32 `listening_hash` buckets (chained
//! through `skc_node`, which shares that offset); `struct sock` (one read per socket);
//! `struct socket_alloc` for `SOCK_INODE()`; `struct net` for `sock_net()` → `ns.inum`; the
//! netns's `dev_base_head` list of `struct net_device` for bound-device names.
//!
//! Shared pieces: the members of `struct sock_common` and `struct sock` every walk reads,
//! added to the one [`Layout`] of the struct that embeds them (`Members`, `CommonMembers`,
//! `SockMembers`: `__sk_common.…` in a `struct sock`, `inet_conn.icsk_inet.sk.…` in a
//! `struct tcp_sock`, …) and decoded from that one read; `ss -m`'s [`SkMem`]; a socket's
//! inode, netns, device and cgroup with their caches; [`BucketArray`], a checked and
//! bounded walk of a hash's chains; the network namespaces (`net_namespace_list`); and
//! [`Jiffies`], the kernel's tick and `HZ` for timers ([`JiffiesSource`]).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kql_drgn::{Error, ErrorKind, Field, Result};

use crate::cgroup::CgroupIds;
use crate::list::{ChainEnd, hlist_chain, list_nodes};
use crate::skipped::Skipped;
use crate::{Layout, Memory, TypeName, Types};

/// `TCP_LISTEN` of `include/net/tcp_states.h`.
pub const TCP_LISTEN: u8 = 10;
/// `AF_UNIX`.
pub const AF_UNIX: u16 = 1;
/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// A socket in the listening hash, with everything `ss -nlpte` shows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListeningSocket {
    /// Address of the `struct sock`.
    pub address: u64,
    /// `skc_family`: 2 (`AF_INET`) or 10 (`AF_INET6`).
    pub family: u16,
    /// `skc_state`, [`TCP_LISTEN`] for every socket of the listening hash.
    pub state: u8,
    /// `sock_net(sk)->ns.inum`.
    pub netns: u64,
    /// `sk_ack_backlog`: connections waiting in the accept queue (ss Recv-Q).
    pub ack_backlog: u32,
    /// `sk_max_ack_backlog`: the `listen()` backlog (ss Send-Q).
    pub max_ack_backlog: u32,
    /// `skc_rcv_saddr` or `skc_v6_rcv_saddr`.
    pub local_addr: IpAddr,
    /// `skc_num`.
    pub local_port: u16,
    /// `skc_daddr` or `skc_v6_daddr`.
    pub peer_addr: IpAddr,
    /// `skc_dport`, in host order.
    pub peer_port: u16,
    /// `SOCK_INODE(sk->sk_socket)->i_ino`; 0 when the sock has no `struct socket`.
    pub inode: u64,
    /// `sk_uid`.
    pub uid: u32,
    /// `skc_ipv6only` of an IPv6 socket.
    pub v6only: Option<bool>,
    /// `skc_reuseport`.
    pub reuseport: bool,
    /// Name of the `skc_bound_dev_if` interface in the socket's netns, if bound.
    pub bound_dev: Option<String>,
    /// `skc_cookie`, `None` while the kernel has not assigned one.
    pub cookie: Option<u64>,
    /// `cgroup_id()` of `sk_cgrp_data`'s cgroup (cgroup v2), if any.
    pub cgroup_id: Option<u64>,
}

/// What `tcp_hashinfo` is (BTF describes no globals' types).
const TCP_HASHINFO: &[TypeName] = &[TypeName::Named("struct inet_hashinfo")];
/// More hash buckets than any kernel allocates (the established hash is at most 2^19 by
/// default, `thash_entries=` aside; UDP's 2^16); a larger count is corruption.
pub const MAX_BUCKETS: usize = 1 << 24;

/// Every listening TCP socket of the kernel, of all network namespaces; an error if any
/// bucket or socket cannot be read.
pub fn tcp_listeners(types: &Types) -> Result<Vec<ListeningSocket>> {
    let mut skipped = Skipped::default();
    let listeners = read_listeners(types, &Memory::new(types), &mut skipped)?;
    skipped.all_or_error(listeners)
}

/// Every listening TCP socket that can be read from `mem`: a bucket or socket that cannot
/// be read is noted in `skipped` (by bucket index, socket address and field) and the walk
/// goes on. An error only when the listening hash as a whole cannot be found.
pub fn read_listeners(types: &Types, mem: &Memory, skipped: &mut Skipped) -> Result<Vec<ListeningSocket>> {
    let walker = SockWalker::new(types)?;
    let hash = ListeningHash::new(types)?;
    let mut caches = Caches::default();
    let socks = hash.socks(mem, skipped)?;
    let mut read = |sk| walker.read(mem, sk, &mut caches).and_then(plausible_listener);
    Ok(socks
        .into_iter()
        .filter_map(|sk| skipped.check(read(sk), || format!("listening struct sock at {sk:#x}")))
        .collect())
}

/// A socket read from the listening hash, unless what it says cannot be a listener (the
/// chain led into something else).
fn plausible_listener(socket: ListeningSocket) -> Result<ListeningSocket> {
    let fail = |what: String| Err(Error::new(ErrorKind::BadData, format!("{what}: not a listening socket")));
    match (socket.family, socket.state) {
        (AF_INET | AF_INET6, TCP_LISTEN) => Ok(socket),
        (AF_INET | AF_INET6, state) => fail(format!("skc_state is {state}")),
        (family, _) => fail(format!("skc_family is {family}")),
    }
}

/// Where `tcp_hashinfo`'s listening buckets are and how sockets chain in them.
pub struct ListeningHash {
    buckets: Buckets,
    bucket_size: usize,
    /// Offset of the chain's head in a bucket.
    head: usize,
    /// Offset of the chain's node in a `struct sock`.
    node: u64,
    /// The chains are `hlist_nulls` (`nulls_head`).
    nulls: bool,
}

/// The listening buckets: a fixed array in `tcp_hashinfo` (before 5.19), or the `lhash2`
/// array it points to, of `lhash2_mask + 1` buckets.
enum Buckets {
    Fixed { at: u64, count: usize },
    Lhash2 { hashinfo: u64, lhash2: Field, mask: Field },
}

impl ListeningHash {
    /// Looks up `tcp_hashinfo` and the bucket layout.
    pub fn new(types: &Types) -> Result<ListeningHash> {
        let (hashinfo, hashinfo_type) = types.global("tcp_hashinfo", TCP_HASHINFO)?;
        let bucket_type = types.find_type("struct inet_listen_hashbucket")?;
        let bucket_size = bucket_type.size()?;
        let buckets = if hashinfo_type.has_member("listening_hash")? {
            let array = hashinfo_type.field("listening_hash")?;
            Buckets::Fixed { at: hashinfo + array.offset as u64, count: array.size / bucket_size.max(1) }
        } else {
            let (lhash2, mask) = (hashinfo_type.field("lhash2")?, hashinfo_type.field("lhash2_mask")?);
            Buckets::Lhash2 { hashinfo, lhash2, mask }
        };
        let nulls = bucket_type.has_member("nulls_head")?;
        Ok(ListeningHash {
            buckets,
            bucket_size,
            nulls,
            head: bucket_type.offset_of(if nulls { "nulls_head" } else { "head" })?,
            node: types.find_type("struct sock")?.offset_of("__sk_common.skc_nulls_node")? as u64,
        })
    }

    /// Addresses of the `struct sock`s in the listening hash; buckets that cannot be walked
    /// are noted in `skipped`.
    pub fn socks(&self, mem: &Memory, skipped: &mut Skipped) -> Result<Vec<u64>> {
        let (at, count) = match self.buckets {
            Buckets::Fixed { at, count } => (at, count),
            Buckets::Lhash2 { hashinfo, lhash2, mask } => {
                (mem.read_field(hashinfo, lhash2)?, mem.read_field(hashinfo, mask)? as usize + 1)
            }
        };
        let what = "tcp_hashinfo listening buckets";
        let buckets = BucketArray::new(at, count, self.bucket_size, self.head, self.nulls, what)?;
        let nodes = buckets.nodes_tolerant(mem, skipped)?;
        Ok(nodes.into_iter().map(|node| node - self.node).collect())
    }
}

/// The most entries [`BucketArray::nodes`] collects from one hash (each chain is also
/// bounded and cycle-checked by [`hlist_chain`]).
pub const MAX_HASHED: usize = 1 << 24;

/// Bytes of a bucket array read at once (bounded memory whatever the count says).
const BUCKETS_PER_READ_BYTES: usize = 64 << 10;

/// An array of hash buckets, each holding the head of a chain (`hlist_head`, or
/// `hlist_nulls_head` whose chain ends at an odd "nulls" marker) somewhere in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketArray {
    /// Address of the first bucket.
    pub at: u64,
    /// How many buckets (`mask + 1`, or the array's length).
    pub count: usize,
    /// Bytes per bucket.
    pub size: usize,
    /// Offset of the chain's head in a bucket.
    pub head: usize,
    /// The chains are `hlist_nulls`: they end at an odd marker, never at NULL (a NULL is
    /// corruption, e.g. a zeroed page of buckets).
    pub nulls: bool,
    /// What the array is, for error messages.
    pub what: &'static str,
}

impl BucketArray {
    /// A checked bucket array: at most [`MAX_BUCKETS`] buckets, at a kernel address.
    pub(crate) fn new(
        at: u64,
        count: usize,
        size: usize,
        head: usize,
        nulls: bool,
        what: &'static str,
    ) -> Result<BucketArray> {
        if count > MAX_BUCKETS || size == 0 || head + 8 > size {
            let message =
                format!("{what}: {count} buckets of {size} bytes is implausible; the hash looks corrupt");
            return Err(Error::new(ErrorKind::BadData, message));
        }
        check_pointer(at, what)?;
        Ok(BucketArray { at, count, size, head, nulls, what })
    }

    /// The nodes of every chain, bucket by bucket, all or an error naming the first bucket
    /// that could not be walked.
    pub fn nodes(&self, mem: &Memory) -> Result<Vec<u64>> {
        let mut skipped = Skipped::default();
        let nodes = self.nodes_tolerant(mem, &mut skipped)?;
        skipped.all_or_error(nodes)
    }

    /// The nodes of every chain, bucket by bucket, going past damage: buckets that cannot
    /// be read, a chain that breaks (the nodes before the break are kept) and, in a nulls
    /// hash, chains ending at NULL are noted in `skipped` by bucket index. The array is read
    /// a piece at a time; most chains are one node long and need no list walk.
    pub fn nodes_tolerant(&self, mem: &Memory, skipped: &mut Skipped) -> Result<Vec<u64>> {
        let per_read = (BUCKETS_PER_READ_BYTES / self.size).max(1);
        let mut nodes = Vec::new();
        let mut null_heads = NullRuns::default();
        for start in (0..self.count).step_by(per_read) {
            let end = (start + per_read).min(self.count);
            let at = self.at + (start * self.size) as u64;
            let table = match mem.bytes(at, (end - start) * self.size) {
                Ok(table) => table,
                Err(e) => {
                    skipped.note(format!("{}: buckets {start}..{} cannot be read: {e}", self.what, end - 1));
                    continue;
                }
            };
            for (offset, bucket) in table.chunks_exact(self.size).enumerate() {
                let index = start + offset;
                let first = u64::from_le_bytes(bucket[self.head..self.head + 8].try_into().expect("8 bytes"));
                if first == 0 && self.nulls {
                    null_heads.add(index);
                }
                if first == 0 || first & 1 == 1 {
                    continue;
                }
                let head = self.at + (index * self.size + self.head) as u64;
                let (chain, end) = hlist_chain(mem, head, self.what);
                nodes.extend(chain);
                match end {
                    ChainEnd::Nulls => {}
                    ChainEnd::Null if !self.nulls => {}
                    ChainEnd::Null => skipped.note(format!(
                        "{}: bucket {index}: the chain ends at NULL, not at a nulls marker: it is corrupt from there",
                        self.what
                    )),
                    ChainEnd::Broken(why) => skipped.note(format!("bucket {index} of {why}")),
                }
                if nodes.len() > MAX_HASHED {
                    let message =
                        format!("{}: more than {MAX_HASHED} entries; the hash looks corrupt", self.what);
                    return Err(Error::new(ErrorKind::BadData, message));
                }
            }
        }
        for (first, last) in null_heads.runs {
            let which =
                if first == last { format!("bucket {first}") } else { format!("buckets {first}..{last}") };
            skipped.note(format!(
                "{}: {which} of {}: NULL where a nulls hash always has a marker (zeroed memory?); \
                 whatever they held is missing",
                self.what, self.count
            ));
        }
        Ok(nodes)
    }
}

/// Runs of consecutive bucket indexes, for one note per run.
#[derive(Default)]
struct NullRuns {
    runs: Vec<(usize, usize)>,
}

impl NullRuns {
    fn add(&mut self, index: usize) {
        match self.runs.last_mut() {
            Some((_, last)) if *last + 1 == index => *last = index,
            _ => self.runs.push((index, index)),
        }
    }
}

/// The network namespaces: `net_namespace_list`, of `struct net` linked through `list`.
pub(crate) struct NetNamespaces {
    head: u64,
    list: u64,
}

impl NetNamespaces {
    pub(crate) fn new(types: &Types) -> Result<NetNamespaces> {
        Ok(NetNamespaces {
            head: types.symbol("net_namespace_list")?,
            list: types.find_type("struct net")?.offset_of("list")? as u64,
        })
    }

    /// Address of every `struct net`, in list order (`init_net` first).
    pub(crate) fn nets(&self, mem: &Memory) -> Result<Vec<u64>> {
        Ok(list_nodes(mem, self.head, "net_namespace_list")?
            .into_iter()
            .map(|node| node - self.list)
            .collect())
    }
}

/// The kernel's tick as its timers count it: `jiffies` now and `HZ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jiffies {
    /// `jiffies_64` when the walk started.
    pub now: u64,
    /// Ticks per second (`CONFIG_HZ`), derived as [`JiffiesSource`] says.
    pub hz: u64,
}

impl Jiffies {
    /// `jiffies_to_msecs(j)` (rounded up when `HZ` does not divide 1000, as the kernel does).
    pub fn to_msecs(&self, j: u64) -> u64 {
        (j.saturating_mul(1000)).div_ceil(self.hz)
    }

    /// `jiffies_to_usecs(j)`.
    pub fn to_usecs(&self, j: u64) -> u64 {
        j.saturating_mul(1_000_000) / self.hz
    }

    /// `jiffies_delta_to_msecs(expires - jiffies)`: milliseconds until a timer set to
    /// `expires` fires, 0 if it is due or overdue.
    pub fn until_msecs(&self, expires: u64) -> u64 {
        let delta = expires.wrapping_sub(self.now) as i64;
        self.to_msecs(delta.max(0) as u64)
    }

    /// `jiffies_to_msecs(now - then)` of 32-bit `tcp_jiffies32` stamps (`lsndtime`, …).
    pub fn since_msecs32(&self, then: u32) -> u64 {
        self.to_msecs(u64::from((self.now as u32).wrapping_sub(then)))
    }
}

/// Where `jiffies` and `HZ` come from, looked up once: `jiffies_64` (or `jiffies`), and `HZ`
/// from `tick_nsec`, the length of a tick in ns that NTP keeps (`NSEC_PER_SEC / HZ`, off by at
/// most NTP's ±500 ppm frequency correction; `kernel/time/ntp.c`, 2.6 … 6.12). A kernel
/// without `tick_nsec` has `HZ` estimated from how far `jiffies_64` has run since boot
/// (`INITIAL_JIFFIES` is `-300 * HZ` truncated to 32 bits) against the monotonic clock
/// (`tk_core.timekeeper.tkr_mono.base`), among the `HZ` that x86 offers (100, 250, 300,
/// 1000). `CONFIG_HZ` itself is in no table the kernel keeps (VMCOREINFO has no `HZ`).
pub struct JiffiesSource {
    jiffies: u64,
    hz: HzSource,
}

enum HzSource {
    TickNsec(u64),
    Timekeeper(u64),
}

/// What `tk_core` is: a `struct tk_data` since 6.13, an anonymous struct before.
const TK_CORE: &[TypeName] =
    &[TypeName::Named("struct tk_data"), TypeName::AnonymousStruct(&["seq", "timekeeper"])];
/// The `CONFIG_HZ` choices of x86 (`kernel/Kconfig.hz`).
const HZ_CHOICES: [u64; 4] = [100, 250, 300, 1000];

impl JiffiesSource {
    pub fn new(types: &Types) -> Result<JiffiesSource> {
        let jiffies = types.symbol("jiffies_64").or_else(|_| types.symbol("jiffies"))?;
        let hz = match types.symbol("tick_nsec") {
            Ok(at) => HzSource::TickNsec(at),
            Err(_) => {
                let (tk_core, ty) = types.global("tk_core", TK_CORE)?;
                HzSource::Timekeeper(tk_core + ty.offset_of("timekeeper.tkr_mono.base")? as u64)
            }
        };
        Ok(JiffiesSource { jiffies, hz })
    }

    /// `jiffies` now, and `HZ`.
    pub fn read(&self, mem: &Memory) -> Result<Jiffies> {
        let now = mem.read_u64(self.jiffies).map_err(|e| e.context("jiffies_64"))?;
        let hz = match self.hz {
            HzSource::TickNsec(at) => {
                let tick_nsec = mem.read_u64(at).map_err(|e| e.context("tick_nsec"))?;
                hz_from_tick_nsec(tick_nsec).ok_or_else(|| {
                    Error::new(ErrorKind::BadData, format!("tick_nsec {tick_nsec} gives no plausible HZ"))
                })?
            }
            HzSource::Timekeeper(at) => {
                let monotonic =
                    mem.read_u64(at).map_err(|e| e.context("tk_core.timekeeper.tkr_mono.base"))?;
                hz_from_uptime(now, monotonic)
            }
        };
        Ok(Jiffies { now, hz })
    }
}

/// `HZ` from the tick length: `1e9 / tick_nsec`, snapped to a usual value within 1 %.
pub fn hz_from_tick_nsec(tick_nsec: u64) -> Option<u64> {
    let hz = (1_000_000_000 + tick_nsec / 2).checked_div(tick_nsec)?;
    let snapped = HZ_CHOICES.into_iter().find(|&choice| choice.abs_diff(hz) * 100 <= choice);
    Some(snapped.unwrap_or(hz)).filter(|hz| (10..=10_000).contains(hz))
}

/// The `HZ` among x86's choices under which `jiffies_64` (started at `INITIAL_JIFFIES`,
/// `(u32)(-300 * HZ)`) best matches `monotonic_ns` of uptime. Every choice fits at exactly
/// 300 s of uptime, where `jiffies_64` crosses 2^32: within a few hundredths of a second of
/// it the answer is unreliable (a tick's worth of disagreement between the two clocks).
pub fn hz_from_uptime(jiffies_64: u64, monotonic_ns: u64) -> u64 {
    let error = |hz: u64| {
        let initial = (1u64 << 32) - 300 * hz;
        let ticks = jiffies_64.wrapping_sub(initial) as i64 as i128;
        (ticks * 1_000_000_000 / i128::from(hz) - i128::from(monotonic_ns)).unsigned_abs()
    };
    HZ_CHOICES.into_iter().min_by_key(|&hz| error(hz)).expect("choices")
}

/// Designators of one struct type, gathered before the one [`Layout`] that reads them all is
/// built: each `add` returns the member's index in that layout.
#[derive(Default)]
pub(crate) struct Members {
    names: Vec<String>,
    optional: Vec<String>,
}

impl Members {
    /// A member every supported kernel has.
    pub(crate) fn add(&mut self, designator: impl Into<String>) -> usize {
        self.names.push(designator.into());
        self.names.len() - 1
    }

    /// A member some kernels lack (its [`Layout::field`] is then `None`).
    pub(crate) fn add_optional(&mut self, designator: impl Into<String>) -> usize {
        let designator = designator.into();
        self.optional.push(designator.clone());
        self.names.push(designator);
        self.names.len() - 1
    }

    /// The required members `ty` lacks (to check a kernel's types without a [`Types`]).
    #[cfg(test)]
    pub(crate) fn missing(&self, ty: &crate::KernelType) -> Vec<String> {
        let required = self.names.iter().filter(|name| !self.optional.contains(name));
        required.filter(|name| ty.field(name).is_err()).cloned().collect()
    }

    /// The layout of `type_name` reading every member added.
    pub(crate) fn layout(&self, types: &Types, type_name: &str) -> Result<Layout> {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let optional: Vec<&str> = self.optional.iter().map(String::as_str).collect();
        Layout::new(types, type_name, &names, &optional)
    }
}

/// The integer member `index` of `layout` from `bytes` (0 if this kernel lacks it): what
/// [`Layout::u64`] gives, with 1-, 2-, 4- and 8-byte members (all but bit-fields) read
/// without [`Field::read_u64`]'s variable-length copy — socket walks decode dozens of
/// members per socket.
#[inline]
pub(crate) fn member(layout: &Layout, bytes: &[u8], index: usize) -> Result<u64> {
    match layout.field(index) {
        Some(field) => value(field, bytes),
        None => Ok(0),
    }
}

/// An optional member's value: `None` if this kernel lacks it.
#[inline]
pub(crate) fn optional(layout: &Layout, bytes: &[u8], index: usize) -> Result<Option<u64>> {
    layout.field(index).map(|field| value(field, bytes)).transpose()
}

/// `field`'s value in `bytes`, little-endian, zero-extended.
#[inline]
fn value(field: Field, bytes: &[u8]) -> Result<u64> {
    let at = field.offset;
    let value = match (field.size, field.bits) {
        (1, None) => bytes.get(at).map(|&b| u64::from(b)),
        (2, None) => bytes.get(at..at + 2).map(|b| u64::from(u16::from_le_bytes([b[0], b[1]]))),
        (4, None) => bytes.get(at..at + 4).map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        (8, None) => bytes.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))),
        _ => return field.read_u64(bytes),
    };
    match value {
        Some(value) => Ok(value),
        None => Err(outside(field, bytes.len())),
    }
}

/// The error of a member beyond the bytes read (a layout bug, never data).
#[cold]
#[inline(never)]
fn outside(field: Field, len: usize) -> Error {
    let message = format!("field at {}..{} is outside a {len}-byte read", field.offset, field.end());
    Error::new(ErrorKind::Other, message)
}

/// Indexes of the `struct sock_common` members every socket walk reads, reached through a
/// prefix: `__sk_common.` in a `struct sock`, `__tw_common.` in a `struct
/// inet_timewait_sock`, `req.__req_common.` in a `struct inet_request_sock`, and so on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommonMembers {
    family: usize,
    state: usize,
    reuseport: usize,
    ipv6only: usize,
    bound_dev_if: usize,
    num: usize,
    dport: usize,
    rcv_saddr: usize,
    daddr: usize,
    v6_rcv_saddr: usize,
    v6_daddr: usize,
    net: usize,
    cookie: usize,
}

/// What [`CommonMembers`] decode: the `struct sock_common` of any socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Common {
    /// `skc_family`.
    pub family: u16,
    /// `skc_state`.
    pub state: u8,
    pub reuseport: bool,
    pub ipv6only: bool,
    pub bound_dev_if: u32,
    /// `skc_num`: the local port, host order.
    pub local_port: u16,
    /// `skc_dport`, turned to host order.
    pub peer_port: u16,
    pub local_addr: IpAddr,
    pub peer_addr: IpAddr,
    /// `skc_net`: the `struct net`.
    pub net: u64,
    /// `skc_cookie`, 0 while none is assigned.
    pub cookie: u64,
}

impl CommonMembers {
    /// Adds the members of the `struct sock_common` at `prefix`.
    pub(crate) fn add(members: &mut Members, prefix: &str) -> CommonMembers {
        let mut add = |name: &str| members.add(format!("{prefix}{name}"));
        let (family, state, reuseport, ipv6only) =
            (add("skc_family"), add("skc_state"), add("skc_reuseport"), add("skc_ipv6only"));
        let (bound_dev_if, num, dport) = (add("skc_bound_dev_if"), add("skc_num"), add("skc_dport"));
        let (rcv_saddr, daddr, net) = (add("skc_rcv_saddr"), add("skc_daddr"), add("skc_net"));
        CommonMembers {
            family,
            state,
            reuseport,
            ipv6only,
            bound_dev_if,
            num,
            dport,
            rcv_saddr,
            daddr,
            net,
            v6_rcv_saddr: members.add_optional(format!("{prefix}skc_v6_rcv_saddr")),
            v6_daddr: members.add_optional(format!("{prefix}skc_v6_daddr")),
            cookie: members.add_optional(format!("{prefix}skc_cookie")),
        }
    }

    /// Decodes them from `bytes` read through `layout`.
    pub(crate) fn read(&self, layout: &Layout, bytes: &[u8]) -> Result<Common> {
        let get = |index| member(layout, bytes, index);
        let family = get(self.family)? as u16;
        let v6 = family == AF_INET6;
        Ok(Common {
            family,
            state: get(self.state)? as u8,
            reuseport: get(self.reuseport)? != 0,
            ipv6only: get(self.ipv6only)? != 0,
            bound_dev_if: get(self.bound_dev_if)? as u32,
            local_port: get(self.num)? as u16,
            peer_port: u16::from_be(get(self.dport)? as u16),
            local_addr: address(layout, bytes, v6, self.rcv_saddr, self.v6_rcv_saddr)?,
            peer_addr: address(layout, bytes, v6, self.daddr, self.v6_daddr)?,
            net: get(self.net)?,
            cookie: get(self.cookie)?,
        })
    }
}

/// The IPv6 member of an `AF_INET6` socket (when the kernel has IPv6), else the IPv4 one.
fn address(layout: &Layout, bytes: &[u8], v6: bool, v4_index: usize, v6_index: usize) -> Result<IpAddr> {
    match (v6, layout.field(v6_index)) {
        (true, Some(field)) => {
            let raw: [u8; 16] = field.slice(bytes)?.try_into().unwrap_or([0; 16]);
            Ok(IpAddr::V6(Ipv6Addr::from(raw)))
        }
        _ => {
            let raw = member(layout, bytes, v4_index)? as u32;
            Ok(IpAddr::V4(Ipv4Addr::from(raw.to_le_bytes())))
        }
    }
}

/// Indexes of the `struct sock` members beyond `sock_common` that the socket walks read,
/// reached through a prefix (`""` in a `struct sock`, `inet_conn.icsk_inet.sk.` in a `struct
/// tcp_sock`, `inet.sk.` in a `struct udp_sock`, `sk.` in a `struct unix_sock`). Only those
/// the listener walk has always read are required; the others are `None` where absent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SockMembers {
    pub ack_backlog: usize,
    pub max_ack_backlog: usize,
    pub uid: usize,
    pub socket: usize,
    cgroup: usize,
    cgroup_val: usize,
    pub sk_type: usize,
    pub rmem_alloc: usize,
    pub rcvbuf: usize,
    pub wmem_alloc: usize,
    pub sndbuf: usize,
    pub forward_alloc: usize,
    pub wmem_queued: usize,
    pub omem_alloc: usize,
    pub backlog_len: usize,
    pub drops: usize,
    pub pacing_rate: usize,
    pub max_pacing_rate: usize,
    /// `sk_timer.entry.pprev`: non-NULL while the timer is pending (`timer_pending()`).
    pub timer_pprev: usize,
    pub timer_expires: usize,
    pub receive_qlen: usize,
}

impl SockMembers {
    /// Adds the members of the `struct sock` at `prefix`.
    pub(crate) fn add(members: &mut Members, prefix: &str) -> SockMembers {
        let mut required = |name: &str| members.add(format!("{prefix}{name}"));
        let (ack_backlog, max_ack_backlog) = (required("sk_ack_backlog"), required("sk_max_ack_backlog"));
        let (uid, socket) = (required("sk_uid"), required("sk_socket"));
        let mut optional = |name: &str| members.add_optional(format!("{prefix}{name}"));
        SockMembers {
            ack_backlog,
            max_ack_backlog,
            uid,
            socket,
            cgroup: optional("sk_cgrp_data.cgroup"),
            cgroup_val: optional("sk_cgrp_data.val"),
            sk_type: optional("sk_type"),
            rmem_alloc: optional("sk_backlog.rmem_alloc"),
            rcvbuf: optional("sk_rcvbuf"),
            wmem_alloc: optional("sk_wmem_alloc"),
            sndbuf: optional("sk_sndbuf"),
            forward_alloc: optional("sk_forward_alloc"),
            wmem_queued: optional("sk_wmem_queued"),
            omem_alloc: optional("sk_omem_alloc"),
            backlog_len: optional("sk_backlog.len"),
            drops: optional("sk_drops"),
            pacing_rate: optional("sk_pacing_rate"),
            max_pacing_rate: optional("sk_max_pacing_rate"),
            timer_pprev: optional("sk_timer.entry.pprev"),
            timer_expires: optional("sk_timer.expires"),
            receive_qlen: optional("sk_receive_queue.qlen"),
        }
    }

    /// The `struct cgroup` of `sk_cgrp_data`: its `cgroup` pointer (≥ 5.15), or its `val`
    /// when that holds a pointer (bit 0 clear; older kernels); 0 if none.
    pub(crate) fn cgroup(&self, layout: &Layout, bytes: &[u8]) -> Result<u64> {
        if layout.field(self.cgroup).is_some() {
            return member(layout, bytes, self.cgroup);
        }
        Ok(Some(member(layout, bytes, self.cgroup_val)?).filter(|val| val & 1 == 0).unwrap_or(0))
    }

    /// `sk_get_meminfo()`, as `ss -m` shows it; `None` if this kernel lacks one of its
    /// members (`sk_drops` alone may be missing: then 0).
    pub(crate) fn skmem(&self, layout: &Layout, bytes: &[u8]) -> Result<Option<SkMem>> {
        let required = [
            self.rmem_alloc,
            self.rcvbuf,
            self.wmem_alloc,
            self.sndbuf,
            self.forward_alloc,
            self.wmem_queued,
            self.omem_alloc,
            self.backlog_len,
        ];
        if required.iter().any(|&index| layout.field(index).is_none()) {
            return Ok(None);
        }
        let get = |index| Ok::<_, kql_drgn::Error>(member(layout, bytes, index)? as u32);
        Ok(Some(SkMem {
            rmem_alloc: get(self.rmem_alloc)?,
            rcvbuf: get(self.rcvbuf)?,
            wmem_alloc: get(self.wmem_alloc)?.wrapping_sub(1),
            sndbuf: get(self.sndbuf)?,
            forward_alloc: get(self.forward_alloc)?,
            wmem_queued: get(self.wmem_queued)?,
            optmem: get(self.omem_alloc)?,
            backlog: get(self.backlog_len)?,
            drops: get(self.drops)?,
        }))
    }
}

/// A socket's memory as `sock_diag` reports it (`sk_get_meminfo()`, `ss -m`'s
/// `skmem:(r…,rb…,t…,tb…,f…,w…,o…,bl…,d…)`), each a `u32` as there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SkMem {
    /// `r`: `sk_rmem_alloc` (`sk_backlog.rmem_alloc`), bytes charged to the receive queue.
    pub rmem_alloc: u32,
    /// `rb`: `sk_rcvbuf`.
    pub rcvbuf: u32,
    /// `t`: `sk_wmem_alloc - 1`, bytes charged to the send side.
    pub wmem_alloc: u32,
    /// `tb`: `sk_sndbuf`.
    pub sndbuf: u32,
    /// `f`: `sk_forward_alloc`.
    pub forward_alloc: u32,
    /// `w`: `sk_wmem_queued`.
    pub wmem_queued: u32,
    /// `o`: `sk_omem_alloc`.
    pub optmem: u32,
    /// `bl`: `sk_backlog.len`.
    pub backlog: u32,
    /// `d`: `sk_drops` (0 on a kernel without it).
    pub drops: u32,
}

/// What a socket walk needs besides the socket's own struct: from a `struct socket` to its
/// inode, from a `struct net` to its inode and devices, from a `struct cgroup` to its id.
pub(crate) struct SockContext {
    /// `offsetof(struct socket_alloc, vfs_inode) - offsetof(struct socket_alloc, socket)
    /// + offsetof(struct inode, i_ino)`: from a `struct socket *` to its inode number.
    socket_to_ino: u64,
    net_inum: u64,
    devices: DeviceLayout,
    cgroups: CgroupIds,
}

impl SockContext {
    pub(crate) fn new(types: &Types) -> Result<SockContext> {
        let socket_alloc = types.find_type("struct socket_alloc")?;
        let inode = types.find_type("struct inode")?;
        let socket_to_ino = (socket_alloc.offset_of("vfs_inode")? + inode.offset_of("i_ino")?) as u64
            - socket_alloc.offset_of("socket")? as u64;
        Ok(SockContext {
            socket_to_ino,
            net_inum: types.find_type("struct net")?.offset_of("ns.inum")? as u64,
            devices: DeviceLayout::new(types)?,
            cgroups: CgroupIds::new(types)?,
        })
    }

    /// `SOCK_INODE(socket)->i_ino`; 0 without a `struct socket`.
    pub(crate) fn inode(&self, mem: &Memory, socket: u64) -> Result<u64> {
        match socket {
            0 => Ok(0),
            socket => {
                check_pointer(socket, "sk_socket")?;
                mem.read_u64(member_at(socket, self.socket_to_ino, "sk_socket")?)
                    .map_err(|e| e.context(format!("sk_socket {socket:#x} (its inode)")))
            }
        }
    }

    /// `net->ns.inum`, cached per `struct net`.
    pub(crate) fn netns_inode(&self, mem: &Memory, net: u64, caches: &mut Caches) -> Result<u64> {
        if let Some(&inode) = caches.netns.get(&net) {
            return Ok(inode);
        }
        check_pointer(net, "skc_net")?;
        let inode = u64::from(
            mem.read_u32(member_at(net, self.net_inum, "skc_net")?)
                .map_err(|e| e.context("struct net ns.inum"))?,
        );
        caches.netns.insert(net, inode);
        Ok(inode)
    }

    /// The name of device `index` of the netns at `net`; `None` for 0 or an unknown index.
    pub(crate) fn device_name(
        &self,
        mem: &Memory,
        net: u64,
        index: u32,
        caches: &mut Caches,
    ) -> Result<Option<String>> {
        if index == 0 {
            return Ok(None);
        }
        let names = match caches.devices.entry(net) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(self.devices.names(mem, net)?),
        };
        Ok(names.get(&index).cloned())
    }

    /// `cgroup_id()` of the `struct cgroup` at `cgroup` (0: none), cached.
    pub(crate) fn cgroup_id(&self, mem: &Memory, cgroup: u64, caches: &mut Caches) -> Result<Option<u64>> {
        if cgroup == 0 {
            return Ok(None);
        }
        if let Some(&id) = caches.cgroups.get(&cgroup) {
            return Ok(id);
        }
        check_pointer(cgroup, "sk_cgrp_data")?;
        let id = self.cgroups.id(mem, cgroup)?;
        caches.cgroups.insert(cgroup, id);
        Ok(id)
    }
}

/// The lowest address of the kernel half of x86-64's address space with 5-level paging
/// (`0xff00…`; `0xffff_8000…` with 4-level paging, which it includes: the rig's `-cpu max`
/// guests run with LA57): every pointer a walk follows must be at or above it.
const KERNEL_SPACE: u64 = 0xff00_0000_0000_0000;

/// Whether `pointer` can point to a kernel object: in the kernel half, 8-byte aligned.
pub fn is_kernel_pointer(pointer: u64) -> bool {
    pointer >= KERNEL_SPACE && pointer.is_multiple_of(8)
}

/// An error unless `pointer` passes [`is_kernel_pointer`]; `what` names where it came from.
pub(crate) fn check_pointer(pointer: u64, what: &str) -> Result<()> {
    match is_kernel_pointer(pointer) {
        true => Ok(()),
        false => Err(Error::new(ErrorKind::BadData, format!("{what}: {pointer:#x} is not a kernel pointer"))),
    }
}

/// The address of the member at `offset` of the object `pointer` (read from memory) points
/// to: an error unless `pointer` is a kernel pointer and the sum does not overflow.
pub fn member_at(pointer: u64, offset: u64, what: &str) -> Result<u64> {
    check_pointer(pointer, what)?;
    pointer.checked_add(offset).ok_or_else(|| {
        Error::new(ErrorKind::BadData, format!("{what}: {pointer:#x} + {offset:#x} overflows"))
    })
}

/// `container_of()`: the object whose member at `offset` is at `member` (a kernel pointer
/// read from memory); an error if `member` is not a kernel pointer or too low.
pub fn container_at(member: u64, offset: u64, what: &str) -> Result<u64> {
    check_pointer(member, what)?;
    member.checked_sub(offset).filter(|&at| is_kernel_pointer(at)).ok_or_else(|| {
        Error::new(ErrorKind::BadData, format!("{what}: {member:#x} - {offset:#x} is not a kernel object"))
    })
}

/// Decodes listening sockets: the offsets it needs, looked up once.
pub struct SockWalker {
    sock: Layout,
    common: CommonMembers,
    fields: SockMembers,
    context: SockContext,
}

/// Per-walk caches of what many sockets share.
#[derive(Default)]
pub struct Caches {
    netns: AddressMap<u64>,
    devices: AddressMap<HashMap<u32, String>>,
    cgroups: AddressMap<Option<u64>>,
}

/// Hashes kernel addresses with one multiplication: they are distinct and aligned, and a
/// walk looks one up per socket, where SipHash costs more than the rest of the lookup.
#[derive(Default, Clone, Copy)]
pub(crate) struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A map keyed by kernel address.
pub(crate) type AddressMap<V> = HashMap<u64, V, BuildHasherDefault<AddressHasher>>;
/// A set of kernel addresses (the sockets a walk has read).
pub(crate) type AddressSet = HashSet<u64, BuildHasherDefault<AddressHasher>>;

impl SockWalker {
    /// Looks up every offset a socket read needs.
    pub fn new(types: &Types) -> Result<SockWalker> {
        let mut members = Members::default();
        let common = CommonMembers::add(&mut members, "__sk_common.");
        let fields = SockMembers::add(&mut members, "");
        Ok(SockWalker {
            sock: members.layout(types, "struct sock")?,
            common,
            fields,
            context: SockContext::new(types)?,
        })
    }

    /// Reads the socket at `sk` with one read of its `struct sock`, plus its inode, and its
    /// netns, device and cgroup through `caches`.
    pub fn read(&self, mem: &Memory, sk: u64, caches: &mut Caches) -> Result<ListeningSocket> {
        let bytes = self.sock.read(mem, sk)?;
        let common = self.common.read(&self.sock, &bytes)?;
        let get = |index| self.sock.u64(&bytes, index);
        let cgroup = self.fields.cgroup(&self.sock, &bytes)?;
        Ok(ListeningSocket {
            address: sk,
            family: common.family,
            state: common.state,
            netns: self.context.netns_inode(mem, common.net, caches)?,
            ack_backlog: get(self.fields.ack_backlog)? as u32,
            max_ack_backlog: get(self.fields.max_ack_backlog)? as u32,
            local_addr: common.local_addr,
            local_port: common.local_port,
            peer_addr: common.peer_addr,
            peer_port: common.peer_port,
            inode: self.context.inode(mem, get(self.fields.socket)?)?,
            uid: get(self.fields.uid)? as u32,
            v6only: (common.family == AF_INET6).then_some(common.ipv6only),
            reuseport: common.reuseport,
            bound_dev: self.context.device_name(mem, common.net, common.bound_dev_if, caches)?,
            cookie: Some(common.cookie).filter(|&cookie| cookie != 0),
            cgroup_id: self.context.cgroup_id(mem, cgroup, caches)?,
        })
    }
}

/// Offsets to list a netns's interfaces: `net.dev_base_head`, `net_device.{dev_list,ifindex,name}`.
struct DeviceLayout {
    head: u64,
    dev_list: u64,
    device: Layout,
}

impl DeviceLayout {
    fn new(types: &Types) -> Result<DeviceLayout> {
        let net_device = types.find_type("struct net_device")?;
        Ok(DeviceLayout {
            head: types.find_type("struct net")?.offset_of("dev_base_head")? as u64,
            dev_list: net_device.offset_of("dev_list")? as u64,
            device: Layout::new(types, "struct net_device", &["ifindex", "name"], &[])?,
        })
    }

    /// `ifindex → name` of every device in the netns at `net`.
    fn names(&self, mem: &Memory, net: u64) -> Result<HashMap<u32, String>> {
        let mut names = HashMap::new();
        for node in list_nodes(mem, member_at(net, self.head, "skc_net")?, "net dev_base_head")? {
            let bytes = self.device.read(mem, container_at(node, self.dev_list, "net dev_base_head")?)?;
            let index = self.device.u64(&bytes, 0)? as u32;
            let name = self.device.field(1).map(|f| f.slice(&bytes)).transpose()?.unwrap_or_default();
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            names.insert(index, String::from_utf8_lossy(&name[..end]).into_owned());
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hz_comes_from_the_tick_length() {
        // Debian's HZ=250: 4 ms ticks, off by NTP's frequency correction at most.
        assert_eq!(hz_from_tick_nsec(4_000_000), Some(250));
        assert_eq!(hz_from_tick_nsec(4_001_999), Some(250));
        assert_eq!(hz_from_tick_nsec(999_847), Some(1000));
        assert_eq!(hz_from_tick_nsec(3_333_333), Some(300));
        assert_eq!(hz_from_tick_nsec(0), None);
        assert_eq!(hz_from_tick_nsec(1), None);
    }

    #[test]
    fn hz_comes_from_jiffies_against_uptime() {
        // jiffies_64 starts at (u32)(-300 * HZ): 2^32 - 300 * HZ, then counts HZ a second
        // (here one tick ahead of the clock, as it may be).
        for hz in HZ_CHOICES {
            for uptime in [1u64, 30, 299, 301, 3600, 86_400 * 100] {
                let jiffies = ((1u64 << 32) - 300 * hz).wrapping_add(uptime * hz + 1);
                assert_eq!(hz_from_uptime(jiffies, uptime * 1_000_000_000), hz, "HZ {hz}, uptime {uptime}");
            }
        }
    }

    #[test]
    fn jiffies_convert_as_the_kernel_does() {
        let j = Jiffies { now: 10_000, hz: 250 };
        assert_eq!((j.to_msecs(50), j.to_usecs(50)), (200, 200_000));
        assert_eq!((j.until_msecs(10_250), j.until_msecs(9_000)), (1000, 0));
        assert_eq!(j.since_msecs32(9_750), 1000);
        let wrapped = Jiffies { now: (1 << 32) + 5, hz: 250 };
        assert_eq!(wrapped.since_msecs32(u32::MAX - 4), 40, "tcp_jiffies32 wraps");
        assert_eq!(Jiffies { now: 0, hz: 300 }.to_msecs(1), 4, "rounded up where HZ does not divide 1000");
    }

    #[test]
    fn kernel_pointers_are_checked() {
        assert!(is_kernel_pointer(0xffff_8880_0100_0000) && is_kernel_pointer(0xff11_0000_0000_0008));
        assert!(
            !is_kernel_pointer(0)
                && !is_kernel_pointer(0x7fff_0000_0000)
                && !is_kernel_pointer(0xffff_8880_0000_0001)
        );
        assert!(check_pointer(8, "x").unwrap_err().message.contains("x: 0x8"));
    }
}
