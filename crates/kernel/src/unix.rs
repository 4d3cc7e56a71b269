//! Every unix socket, with what `ss -xanpe` and `/proc/net/unix` show.
//!
//! Structures walked, chosen by what the kernel has:
//!
//! - before 6.0: the global `unix_socket_table`, an array of `hlist_head` (bound sockets in
//!   its first half, unbound ones in its second), of every network namespace;
//! - since 6.0: each network namespace's `net->unx.table.buckets`, an array of
//!   `UNIX_HASH_SIZE` `hlist_head` (found through `net_namespace_list`).
//!
//! The bucket count is the array's length where DWARF describes the array
//! (`unix_socket_table`, or twice `bsd_socket_buckets[UNIX_HASH_SIZE / 2]` since 6.0); BTF
//! describes no globals, so there it is `UNIX_HASH_SIZE` = 512 (256 × 2 in every kernel
//! since 3.6, `include/net/af_unix.h`). Sockets chain through `sock_common.skc_node`; each
//! is one read of the span of `struct unix_sock` the walk needs (`addr`, `peer`, the `struct
//! sock` members), checked to be `AF_UNIX`. Then, as needed: its `struct unix_address`
//! (`len`, `name[0].sun_path`), its peer's `sk_socket` (for the peer's inode), and, for a
//! non-empty receive queue that is not a listener's, its `struct sk_buff`s (`len`, and
//! `UNIXCB(skb).consumed` in `cb`, `struct unix_skb_parms`) to count the bytes queued as
//! `unix_inq_len()` does. A bucket, chain or socket that cannot be read (a live kernel
//! changing under the walk, a damaged vmcore) is skipped and noted in a [`Skipped`]. Walks
//! are bounded: [`crate::list`]'s caps and cycle checks on
//! every chain and queue, every socket read once.

use kql_drgn::{Error, ErrorKind, Field, Result};

use crate::list::list_nodes;
use crate::net::{
    AF_UNIX, AddressSet, BucketArray, Caches, CommonMembers, Members, NetNamespaces, SockContext,
    SockMembers, TCP_LISTEN, check_pointer, member, member_at, optional,
};
use crate::{Layout, Memory, Shape, Skipped, Types, within_row_budget};

/// `UNIX_HASH_SIZE` where DWARF cannot tell it (see the module documentation).
pub const UNIX_HASH_SIZE: usize = 512;
/// `SOCK_STREAM`: `sk_type` of a stream socket (ss's `u_str`).
pub const SOCK_STREAM: u16 = 1;
/// `SOCK_DGRAM` (ss's `u_dgr`).
pub const SOCK_DGRAM: u16 = 2;
/// `SOCK_SEQPACKET` (ss's `u_seq`).
pub const SOCK_SEQPACKET: u16 = 5;
/// `sizeof(struct sockaddr_un)`: the most a `unix_address` holds.
const SOCKADDR_UN_SIZE: usize = 110;

/// One unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocket {
    /// Address of the `struct sock` (`unix_sock`).
    pub address: u64,
    /// `sock_net(sk)->ns.inum`.
    pub netns: u64,
    /// `sk_type`: [`SOCK_STREAM`], [`SOCK_DGRAM`], [`SOCK_SEQPACKET`].
    pub sock_type: u16,
    /// `sk_state`: `TCP_ESTABLISHED` (1, ss's `ESTAB`), `TCP_CLOSE` (7, `UNCONN`),
    /// `TCP_LISTEN` (10).
    pub state: u8,
    /// `addr->name->sun_path` as `/proc/net/unix` shows it: a path, or an abstract name with
    /// a leading `@` (each NUL byte in it shown as `@` too); `None` if unbound.
    pub path: Option<String>,
    /// `SOCK_INODE(sk->sk_socket)->i_ino`, 0 without a `struct socket` (a connection not
    /// accepted yet).
    pub inode: u64,
    /// Whether `sk_socket` is set (`/proc/net/unix`'s `St` depends on it).
    pub has_socket: bool,
    /// `unix_peer(sk)`: the peer's `struct sock`, if connected.
    pub peer: Option<u64>,
    /// The peer's inode (0 if it has no `struct socket`).
    pub peer_inode: Option<u64>,
    /// ss's Recv-Q: a listener's receive-queue length (connections waiting); else
    /// `unix_inq_len()`: the bytes queued (stream, seqpacket: the sum of `skb->len -
    /// UNIXCB(skb).consumed`), or the first datagram's length (dgram).
    pub recv_q: u32,
    /// ss's Send-Q: a listener's `sk_max_ack_backlog`; else `unix_outq_len()`,
    /// `sk_wmem_alloc - 1`.
    pub send_q: u32,
    /// `sk_receive_queue.qlen`.
    pub receive_queue_len: u32,
    /// `sk_uid`.
    pub uid: u32,
    /// `skc_cookie`, `None` while none is assigned.
    pub cookie: Option<u64>,
}

/// Every unix socket of the kernel, of all network namespaces; an error if any bucket or
/// socket cannot be read.
pub fn unix_sockets(types: &Types) -> Result<Vec<UnixSocket>> {
    let mut skipped = Skipped::default();
    let sockets = UnixWalker::new(types)?.walk(&Memory::new(types), &mut skipped)?;
    skipped.all_or_error(sockets)
}

/// Where the hash tables are.
enum Tables {
    /// `unix_socket_table` (before 6.0).
    Global(BucketArray),
    /// `net->unx.table.buckets` of `count` heads (6.0+).
    PerNetns { buckets: Field, count: usize },
}

/// Offsets into a `struct sk_buff` for [`UnixWalker`]'s receive-queue count.
struct SkbLayout {
    len: u64,
    /// `cb` + `offsetof(struct unix_skb_parms, consumed)`, if the kernel has that type.
    consumed: Option<u64>,
}

/// Decodes unix sockets: the offsets it needs, looked up once.
pub struct UnixWalker {
    context: SockContext,
    layout: Layout,
    common: CommonMembers,
    sock: SockMembers,
    addr: usize,
    peer: usize,
    /// Offset of `sk_receive_queue` (its `next`: the list head).
    receive_queue: u64,
    /// Offset of `sk_socket`, to read a peer's.
    socket: u64,
    /// Offset of `skc_node`, the chain's node.
    node: u64,
    address_len: Field,
    /// `offsetof(struct unix_address, name) + offsetof(struct sockaddr_un, sun_path)`.
    sun_path: u64,
    /// `offsetof(struct sockaddr_un, sun_path)`: what `unix_address.len` counts before the path.
    family_len: usize,
    skb: SkbLayout,
    tables: Tables,
    namespaces: NetNamespaces,
}

impl UnixWalker {
    /// Looks up every offset, symbol and layout the walk needs.
    pub fn new(types: &Types) -> Result<UnixWalker> {
        let (members, common, sock, [addr, peer]) = unix_members();
        let layout = members.layout(types, "struct unix_sock")?;
        for (index, name) in [(sock.sk_type, "sk_type"), (sock.receive_qlen, "sk_receive_queue.qlen")] {
            if layout.field(index).is_none() {
                return Err(Error::new(ErrorKind::Lookup, format!("struct sock has no {name}")));
            }
        }
        let unix_sock = types.find_type("struct unix_sock")?;
        let address = types.find_type("struct unix_address")?;
        let family_len = types.find_type("struct sockaddr_un")?.offset_of("sun_path")?;
        // `name` is a flexible array, which has no size to look up a field by: its offset.
        let name = address
            .member("name")?
            .ok_or_else(|| Error::new(ErrorKind::Lookup, "struct unix_address has no member name"))?;
        let sun_path = (name.bit_offset / 8) as usize + family_len;
        let skb = types.find_type("struct sk_buff")?;
        if skb.offset_of("next")? != 0 {
            return Err(Error::new(ErrorKind::Type, "struct sk_buff: next is not its first member"));
        }
        let consumed = match types.find_type("struct unix_skb_parms").and_then(|ty| ty.offset_of("consumed"))
        {
            Ok(offset) => Some((skb.offset_of("cb")? + offset) as u64),
            Err(_) => None,
        };
        Ok(UnixWalker {
            context: SockContext::new(types)?,
            common,
            sock,
            addr,
            peer,
            receive_queue: unix_sock.offset_of("sk.sk_receive_queue")? as u64,
            socket: unix_sock.offset_of("sk.sk_socket")? as u64,
            node: types.find_type("struct sock")?.offset_of("__sk_common.skc_node")? as u64,
            address_len: address.field("len")?,
            sun_path: sun_path as u64,
            family_len,
            skb: SkbLayout { len: skb.offset_of("len")? as u64, consumed },
            tables: tables(types)?,
            namespaces: NetNamespaces::new(types)?,
            layout,
        })
    }

    /// The bucket arrays: the global one, or each namespace's.
    pub fn tables(&self, mem: &Memory) -> Result<Vec<BucketArray>> {
        match &self.tables {
            Tables::Global(buckets) => Ok(vec![*buckets]),
            Tables::PerNetns { buckets, count } => self
                .namespaces
                .nets(mem)?
                .into_iter()
                .map(|net| {
                    BucketArray::new(
                        mem.read_field(net, *buckets)?,
                        *count,
                        8,
                        0,
                        false,
                        "net->unx.table.buckets",
                    )
                })
                .collect(),
        }
    }

    /// Every unix socket that can be read, table by table, in bucket order. A bucket, chain
    /// or socket that cannot be read is noted in `skipped` (bucket index, socket address,
    /// field) and the walk goes on.
    pub fn walk(&self, mem: &Memory, skipped: &mut Skipped) -> Result<Vec<UnixSocket>> {
        let mut caches = Caches::default();
        let mut seen = AddressSet::default();
        let mut rows = Vec::new();
        for table in self.tables(mem)? {
            for node in table.nodes_tolerant(mem, skipped)? {
                let sk = node - self.node;
                if seen.insert(sk) {
                    let row = self.read(mem, sk, &mut caches);
                    rows.extend(skipped.check(row, || format!("unix struct sock at {sk:#x}")));
                }
            }
            within_row_budget(rows.len(), "unix walk")?;
        }
        Ok(rows)
    }

    /// The socket at `sk`, with one read of its `struct unix_sock`.
    pub fn read(&self, mem: &Memory, sk: u64, caches: &mut Caches) -> Result<UnixSocket> {
        check_pointer(sk, "unix socket")?;
        let (layout, sock) = (&self.layout, &self.sock);
        let bytes = layout.read(mem, sk)?;
        let bytes = &bytes[..];
        let common = self.common.read(layout, bytes)?;
        if common.family != AF_UNIX {
            let message = format!("unix socket table: the sock at {sk:#x} has family {}", common.family);
            return Err(Error::new(ErrorKind::BadData, message));
        }
        let get = |index| member(layout, bytes, index);
        let sock_type = get(sock.sk_type)? as u16;
        let socket = get(sock.socket)?;
        let qlen = get(sock.receive_qlen)? as u32;
        let (recv_q, send_q) = if common.state == TCP_LISTEN {
            (qlen, get(sock.max_ack_backlog)? as u32)
        } else {
            let queued = if qlen == 0 { 0 } else { self.queued_bytes(mem, sk, sock_type)? };
            (queued, (optional(layout, bytes, sock.wmem_alloc)?.unwrap_or(1) as u32).wrapping_sub(1))
        };
        let peer = Some(get(self.peer)?).filter(|&peer| peer != 0);
        let peer_inode = match peer {
            Some(peer) => {
                check_pointer(peer, "unix_peer")?;
                Some(self.context.inode(mem, mem.read_u64(member_at(peer, self.socket, "unix peer")?)?)?)
            }
            None => None,
        };
        Ok(UnixSocket {
            address: sk,
            netns: self.context.netns_inode(mem, common.net, caches)?,
            sock_type,
            state: common.state,
            path: self.path(mem, get(self.addr)?)?,
            inode: self.context.inode(mem, socket)?,
            has_socket: socket != 0,
            peer,
            peer_inode,
            recv_q,
            send_q,
            receive_queue_len: qlen,
            uid: get(sock.uid)? as u32,
            cookie: Some(common.cookie).filter(|&cookie| cookie != 0),
        })
    }

    /// `unix_inq_len()`: the bytes in the receive queue of stream and seqpacket sockets, the
    /// first datagram's length for the others.
    fn queued_bytes(&self, mem: &Memory, sk: u64, sock_type: u16) -> Result<u32> {
        let skbs = list_nodes(mem, member_at(sk, self.receive_queue, "unix sock")?, "unix sk_receive_queue")?;
        let mut total = 0u32;
        for skb in skbs {
            check_pointer(skb, "unix sk_receive_queue")?;
            let len = mem.read_u32(member_at(skb, self.skb.len, "sk_buff")?)?;
            if sock_type != SOCK_STREAM && sock_type != SOCK_SEQPACKET {
                return Ok(len);
            }
            let consumed = match self.skb.consumed {
                Some(offset) => mem.read_u32(member_at(skb, offset, "sk_buff")?)?,
                None => 0,
            };
            total = total.wrapping_add(len.wrapping_sub(consumed));
        }
        Ok(total)
    }

    /// The name of the `struct unix_address` at `addr` as `/proc/net/unix` prints it.
    fn path(&self, mem: &Memory, addr: u64) -> Result<Option<String>> {
        if addr == 0 {
            return Ok(None);
        }
        check_pointer(addr, "unix_sock.addr")?;
        let len = mem.read_field(addr, self.address_len)? as u32 as usize;
        let len = len.min(SOCKADDR_UN_SIZE).saturating_sub(self.family_len);
        if len == 0 {
            return Ok(None);
        }
        let raw = mem.bytes(member_at(addr, self.sun_path, "unix address")?, len)?;
        Ok(Some(render_name(&raw)))
    }
}

/// A unix socket's name as `/proc/net/unix` prints it (`unix_seq_show`): a path without its
/// terminating NUL; an abstract name (leading NUL) with `@` for that NUL and for every NUL in it.
pub fn render_name(raw: &[u8]) -> String {
    let bytes: Vec<u8> = match raw.first() {
        Some(0) => {
            std::iter::once(b'@').chain(raw[1..].iter().map(|&b| if b == 0 { b'@' } else { b })).collect()
        }
        _ => {
            let text = &raw[..raw.len().saturating_sub(1)];
            text.iter().map(|&b| if b == 0 { b'@' } else { b }).collect()
        }
    };
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The members of `struct unix_sock` a socket is read with (`addr`, `peer` last).
fn unix_members() -> (Members, CommonMembers, SockMembers, [usize; 2]) {
    let mut members = Members::default();
    let common = CommonMembers::add(&mut members, "sk.__sk_common.");
    let sock = SockMembers::add(&mut members, "sk.");
    let indexes = [members.add("addr"), members.add("peer")];
    (members, common, sock, indexes)
}

/// The hash tables this kernel has.
fn tables(types: &Types) -> Result<Tables> {
    let net = types.find_type("struct net")?;
    if let Ok(buckets) = net.field("unx.table.buckets") {
        let count = array_length(types, "bsd_socket_buckets").map(|half| half * 2).unwrap_or(UNIX_HASH_SIZE);
        return Ok(Tables::PerNetns { buckets, count });
    }
    let at = types.symbol("unix_socket_table")?;
    let count = array_length(types, "unix_socket_table").unwrap_or(UNIX_HASH_SIZE);
    Ok(Tables::Global(BucketArray::new(at, count, 8, 0, false, "unix_socket_table")?))
}

/// The length of the global array `name` where the types describe it (DWARF).
fn array_length(types: &Types, name: &str) -> Option<usize> {
    match types.variable_type(name)?.shape().ok()? {
        Shape::Array { length: Some(length), .. } => Some(length as usize),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use kql_btf::Btf;

    use super::*;
    use crate::types::find_btf_type;

    /// This machine's kernel (6.18) has every member the walk reads, per-netns tables too.
    #[test]
    fn this_machines_btf_has_what_the_unix_walk_reads() {
        let btf = Btf::parse(std::fs::read("/sys/kernel/btf/vmlinux").expect("kernel BTF")).unwrap();
        let ty = |name| find_btf_type(&btf, name).unwrap();
        let unix_sock = ty("struct unix_sock");
        assert_eq!(unix_members().0.missing(&unix_sock), Vec::<String>::new());
        for designator in ["sk.sk_type", "sk.sk_receive_queue.qlen", "sk.sk_receive_queue", "sk.sk_socket"] {
            assert!(unix_sock.field(designator).is_ok(), "{designator}");
        }
        assert!(ty("struct unix_address").member("name").unwrap().is_some());
        assert!(ty("struct unix_skb_parms").field("consumed").is_ok());
        assert_eq!(ty("struct sk_buff").offset_of("next").unwrap(), 0);
        assert!(ty("struct net").field("unx.table.buckets").is_ok());
    }

    #[test]
    fn names_render_as_proc_net_unix_shows_them() {
        assert_eq!(render_name(b"/tmp/x.sock\0"), "/tmp/x.sock");
        assert_eq!(render_name(b"\0kqlw-abstract"), "@kqlw-abstract");
        assert_eq!(render_name(b"\0kqlw\0nul"), "@kqlw@nul");
        assert_eq!(render_name(b"\0"), "@");
    }
}
