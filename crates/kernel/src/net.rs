//! Networking: listening TCP sockets and what they belong to.
//!
//! Structures walked: `tcp_hashinfo` (`struct inet_hashinfo`) — its `lhash2` array of
//! `struct inet_listen_hashbucket` (≥ 5.19, sockets chained through
//! `sock.__sk_common.skc_nulls_node`) or, before, its 32 `listening_hash` buckets (chained
//! through `skc_node`, which shares that offset); `struct sock` (one read per socket);
//! `struct socket_alloc` for `SOCK_INODE()`; `struct net` for `sock_net()` → `ns.inum`; the
//! netns's `dev_base_head` list of `struct net_device` for bound-device names.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kql_drgn::{Error, ErrorKind, Field, Result};

use crate::cgroup::CgroupIds;
use crate::list::{hlist_nodes, list_nodes};
use crate::{Layout, Memory, TypeName, Types};

/// `TCP_LISTEN` of `include/net/tcp_states.h`.
pub const TCP_LISTEN: u8 = 10;
const AF_INET6: u16 = 10;

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
/// More listening-hash buckets than any kernel allocates; a larger count is corruption.
const MAX_BUCKETS: usize = 1 << 24;

/// Every listening TCP socket of the kernel, of all network namespaces.
pub fn tcp_listeners(types: &Types) -> Result<Vec<ListeningSocket>> {
    let walker = SockWalker::new(types)?;
    let hash = ListeningHash::new(types)?;
    let mut caches = Caches::default();
    let mem = Memory::new(types);
    hash.socks(&mem)?.into_iter().map(|sk| walker.read(&mem, sk, &mut caches)).collect()
}

/// Where `tcp_hashinfo`'s listening buckets are and how sockets chain in them.
pub struct ListeningHash {
    buckets: Buckets,
    bucket_size: usize,
    /// Offset of the chain's head in a bucket.
    head: usize,
    /// Offset of the chain's node in a `struct sock`.
    node: u64,
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
        let head = if bucket_type.has_member("nulls_head")? { "nulls_head" } else { "head" };
        Ok(ListeningHash {
            buckets,
            bucket_size,
            head: bucket_type.offset_of(head)?,
            node: types.find_type("struct sock")?.offset_of("__sk_common.skc_nulls_node")? as u64,
        })
    }

    /// Addresses of the `struct sock`s in the listening hash.
    pub fn socks(&self, mem: &Memory) -> Result<Vec<u64>> {
        let (at, count) = match self.buckets {
            Buckets::Fixed { at, count } => (at, count),
            Buckets::Lhash2 { hashinfo, lhash2, mask } => {
                (mem.read_field(hashinfo, lhash2)?, mem.read_field(hashinfo, mask)? as usize + 1)
            }
        };
        if count > MAX_BUCKETS {
            let message =
                format!("tcp_hashinfo: {count} listening buckets is implausible; the hash looks corrupt");
            return Err(Error::new(ErrorKind::BadData, message));
        }
        let mut table = vec![0; self.bucket_size * count];
        mem.read(at, &mut table).map_err(|e| e.context("tcp_hashinfo listening buckets"))?;
        let mut socks = Vec::new();
        for bucket in table.chunks_exact(self.bucket_size) {
            let first = u64::from_le_bytes(bucket[self.head..self.head + 8].try_into().expect("8 bytes"));
            let nodes = hlist_nodes(mem, first, "tcp_hashinfo listening bucket")?;
            socks.extend(nodes.into_iter().map(|node| node - self.node));
        }
        Ok(socks)
    }
}

/// Member indexes of [`SockWalker::sock`].
mod sk {
    pub const FAMILY: usize = 0;
    pub const STATE: usize = 1;
    pub const REUSEPORT: usize = 2;
    pub const IPV6ONLY: usize = 3;
    pub const BOUND_DEV_IF: usize = 4;
    pub const NUM: usize = 5;
    pub const DPORT: usize = 6;
    pub const RCV_SADDR: usize = 7;
    pub const DADDR: usize = 8;
    pub const V6_RCV_SADDR: usize = 9;
    pub const V6_DADDR: usize = 10;
    pub const NET: usize = 11;
    pub const COOKIE: usize = 12;
    pub const ACK_BACKLOG: usize = 13;
    pub const MAX_ACK_BACKLOG: usize = 14;
    pub const UID: usize = 15;
    pub const SOCKET: usize = 16;
    pub const CGROUP: usize = 17;
    pub const CGROUP_VAL: usize = 18;
}

const SOCK_MEMBERS: [&str; 19] = [
    "__sk_common.skc_family",
    "__sk_common.skc_state",
    "__sk_common.skc_reuseport",
    "__sk_common.skc_ipv6only",
    "__sk_common.skc_bound_dev_if",
    "__sk_common.skc_num",
    "__sk_common.skc_dport",
    "__sk_common.skc_rcv_saddr",
    "__sk_common.skc_daddr",
    "__sk_common.skc_v6_rcv_saddr",
    "__sk_common.skc_v6_daddr",
    "__sk_common.skc_net",
    "__sk_common.skc_cookie",
    "sk_ack_backlog",
    "sk_max_ack_backlog",
    "sk_uid",
    "sk_socket",
    "sk_cgrp_data.cgroup",
    "sk_cgrp_data.val",
];

/// Members that depend on the kernel's configuration or version.
const SOCK_OPTIONAL: [&str; 5] = [
    "__sk_common.skc_v6_rcv_saddr",
    "__sk_common.skc_v6_daddr",
    "__sk_common.skc_cookie",
    "sk_cgrp_data.cgroup",
    "sk_cgrp_data.val",
];

/// Decodes listening sockets: the offsets it needs, looked up once.
pub struct SockWalker {
    sock: Layout,
    /// `offsetof(struct socket_alloc, vfs_inode) - offsetof(struct socket_alloc, socket)
    /// + offsetof(struct inode, i_ino)`: from a `struct socket *` to its inode number.
    socket_to_ino: u64,
    net_inum: u64,
    devices: DeviceLayout,
    cgroups: CgroupIds,
}

/// Per-walk caches of what many sockets share.
#[derive(Default)]
pub struct Caches {
    netns: HashMap<u64, u64>,
    devices: HashMap<u64, HashMap<u32, String>>,
    cgroups: HashMap<u64, Option<u64>>,
}

impl SockWalker {
    /// Looks up every offset a socket read needs.
    pub fn new(types: &Types) -> Result<SockWalker> {
        let socket_alloc = types.find_type("struct socket_alloc")?;
        let inode = types.find_type("struct inode")?;
        let socket_to_ino = (socket_alloc.offset_of("vfs_inode")? + inode.offset_of("i_ino")?) as u64
            - socket_alloc.offset_of("socket")? as u64;
        Ok(SockWalker {
            sock: Layout::new(types, "struct sock", &SOCK_MEMBERS, &SOCK_OPTIONAL)?,
            socket_to_ino,
            net_inum: types.find_type("struct net")?.offset_of("ns.inum")? as u64,
            devices: DeviceLayout::new(types)?,
            cgroups: CgroupIds::new(types)?,
        })
    }

    /// Reads the socket at `sk` with one read of its `struct sock`, plus its inode, and its
    /// netns, device and cgroup through `caches`.
    pub fn read(&self, mem: &Memory, sk: u64, caches: &mut Caches) -> Result<ListeningSocket> {
        let bytes = self.sock.read(mem, sk)?;
        let get = |index| self.sock.u64(&bytes, index);
        let family = get(sk::FAMILY)? as u16;
        let v6 = family == AF_INET6;
        let net = get(sk::NET)?;
        let socket = get(sk::SOCKET)?;
        let bound_dev_if = get(sk::BOUND_DEV_IF)? as u32;
        Ok(ListeningSocket {
            address: sk,
            family,
            state: get(sk::STATE)? as u8,
            netns: self.netns_inode(mem, net, caches)?,
            ack_backlog: get(sk::ACK_BACKLOG)? as u32,
            max_ack_backlog: get(sk::MAX_ACK_BACKLOG)? as u32,
            local_addr: self.address(&bytes, v6, sk::RCV_SADDR, sk::V6_RCV_SADDR)?,
            local_port: get(sk::NUM)? as u16,
            peer_addr: self.address(&bytes, v6, sk::DADDR, sk::V6_DADDR)?,
            peer_port: u16::from_be(get(sk::DPORT)? as u16),
            inode: match socket {
                0 => 0,
                socket => mem.read_u64(socket + self.socket_to_ino)?,
            },
            uid: get(sk::UID)? as u32,
            v6only: v6.then_some(get(sk::IPV6ONLY)? != 0),
            reuseport: get(sk::REUSEPORT)? != 0,
            bound_dev: match bound_dev_if {
                0 => None,
                index => self.device_name(mem, net, index, caches)?,
            },
            cookie: Some(get(sk::COOKIE)?).filter(|&cookie| cookie != 0),
            cgroup_id: self.cgroup_id(mem, &bytes, caches)?,
        })
    }

    fn address(&self, bytes: &[u8], v6: bool, v4_index: usize, v6_index: usize) -> Result<IpAddr> {
        match (v6, self.sock.field(v6_index)) {
            (true, Some(field)) => {
                let raw: [u8; 16] = field.slice(bytes)?.try_into().unwrap_or([0; 16]);
                Ok(IpAddr::V6(Ipv6Addr::from(raw)))
            }
            _ => {
                let raw = self.sock.u64(bytes, v4_index)? as u32;
                Ok(IpAddr::V4(Ipv4Addr::from(raw.to_le_bytes())))
            }
        }
    }

    /// `sock_net(sk)->ns.inum`, cached per `struct net`.
    fn netns_inode(&self, mem: &Memory, net: u64, caches: &mut Caches) -> Result<u64> {
        if let Some(&inode) = caches.netns.get(&net) {
            return Ok(inode);
        }
        let inode =
            u64::from(mem.read_u32(net + self.net_inum).map_err(|e| e.context("struct net ns.inum"))?);
        caches.netns.insert(net, inode);
        Ok(inode)
    }

    fn device_name(&self, mem: &Memory, net: u64, index: u32, caches: &mut Caches) -> Result<Option<String>> {
        let names = match caches.devices.entry(net) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(self.devices.names(mem, net)?),
        };
        Ok(names.get(&index).cloned())
    }

    /// The cgroup id of `sk_cgrp_data`: its `cgroup` pointer (≥ 5.15), or its `val` when
    /// that holds a pointer (bit 0 clear; older kernels).
    fn cgroup_id(&self, mem: &Memory, bytes: &[u8], caches: &mut Caches) -> Result<Option<u64>> {
        let cgroup = if self.sock.field(sk::CGROUP).is_some() {
            self.sock.u64(bytes, sk::CGROUP)?
        } else {
            Some(self.sock.u64(bytes, sk::CGROUP_VAL)?).filter(|val| val & 1 == 0).unwrap_or(0)
        };
        if cgroup == 0 {
            return Ok(None);
        }
        if let Some(&id) = caches.cgroups.get(&cgroup) {
            return Ok(id);
        }
        let id = self.cgroups.id(mem, cgroup)?;
        caches.cgroups.insert(cgroup, id);
        Ok(id)
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
        for node in list_nodes(mem, net + self.head, "net dev_base_head")? {
            let bytes = self.device.read(mem, node - self.dev_list)?;
            let index = self.device.u64(&bytes, 0)? as u32;
            let name = self.device.field(1).map(|f| f.slice(&bytes)).transpose()?.unwrap_or_default();
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            names.insert(index, String::from_utf8_lossy(&name[..end]).into_owned());
        }
        Ok(names)
    }
}
