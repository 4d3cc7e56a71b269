//! Every UDP socket (IPv4 and IPv6), with what `ss -uanpie -m` and `/proc/net/udp{,6}` show.
//!
//! Structures walked: the `struct udp_table`s — the global `udp_table`, and since 6.2 each
//! network namespace's `net->ipv4.udp_table` pointer (the global one unless the namespace
//! was made with `net.ipv4.udp_child_hash_entries` set; found through
//! `net_namespace_list` when `struct netns_ipv4` has the member), each walked once. A table
//! is `hash[0..=mask]`, an array of `struct udp_hslot` whose `head` is an `hlist_head` of
//! sockets chained through `sock_common.skc_node` (every bound socket, both families,
//! `udp6` included: UDP-Lite's own `udplite_table` is not walked). Each socket is one read
//! of the span of `struct udp_sock` the walk needs (`forward_deficit` and the `struct sock`
//! members), plus its inode, netns, cgroup and bound device as [`crate::net`] reads them.
//! A slot, chain or socket that cannot be read (a live kernel changing under the walk, a
//! damaged vmcore) is skipped and noted in a [`Skipped`]. Walks are bounded: at most [`crate::net::MAX_BUCKETS`] slots, [`crate::list`]'s caps and
//! cycle checks on each chain, every socket read once.

use std::net::IpAddr;

use kql_drgn::{Field, Result};

use crate::net::{
    AF_INET6, AddressSet, BucketArray, Caches, CommonMembers, Members, NetNamespaces, SkMem, SockContext,
    SockMembers, check_pointer, member, optional,
};
use crate::{Layout, Memory, Skipped, TypeName, Types, within_row_budget};

/// What `udp_table` is (BTF describes no globals' types).
const UDP_TABLE: &[TypeName] = &[TypeName::Named("struct udp_table")];

/// One UDP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpSocket {
    /// Address of the `struct sock` (`udp_sock`).
    pub address: u64,
    /// `skc_family`: 2 (`AF_INET`) or 10 (`AF_INET6`).
    pub family: u16,
    /// `skc_state`: `TCP_ESTABLISHED` (1) when connected, `TCP_CLOSE` (7, ss's `UNCONN`).
    pub state: u8,
    /// `sock_net(sk)->ns.inum`.
    pub netns: u64,
    pub local_addr: IpAddr,
    /// `skc_num`.
    pub local_port: u16,
    pub peer_addr: IpAddr,
    /// `skc_dport`, host order.
    pub peer_port: u16,
    /// ss's Recv-Q and `/proc`'s rx_queue: `udp_rqueue_get()`, `sk_rmem_alloc -
    /// forward_deficit` (just `sk_rmem_alloc` on a kernel without `forward_deficit`).
    pub recv_q: u32,
    /// ss's Send-Q and `/proc`'s tx_queue: `sk_wmem_alloc_get()`, `sk_wmem_alloc - 1`.
    pub send_q: u32,
    /// `sk_drops`, `None` on a kernel without it.
    pub drops: Option<u32>,
    /// `SOCK_INODE(sk->sk_socket)->i_ino`, 0 without a `struct socket`.
    pub inode: u64,
    /// `sk_uid`.
    pub uid: u32,
    /// `skc_cookie`, `None` while none is assigned.
    pub cookie: Option<u64>,
    /// `cgroup_id()` of `sk_cgrp_data`'s cgroup (cgroup v2).
    pub cgroup_id: Option<u64>,
    /// `skc_bound_dev_if` (0: not bound).
    pub bound_dev_if: u32,
    /// That device's name in the socket's netns.
    pub bound_dev: Option<String>,
    /// `skc_ipv6only` of an IPv6 socket.
    pub v6only: Option<bool>,
    /// `skc_reuseport`.
    pub reuseport: bool,
    /// `sk_get_meminfo()` (`ss -m`); `None` where the kernel lacks a member.
    pub skmem: Option<SkMem>,
}

/// Every UDP socket of the kernel, of all network namespaces; an error if any slot or socket
/// cannot be read.
pub fn udp_sockets(types: &Types) -> Result<Vec<UdpSocket>> {
    let mut skipped = Skipped::default();
    let sockets = UdpWalker::new(types)?.walk(&Memory::new(types), &mut skipped)?;
    skipped.all_or_error(sockets)
}

/// One UDP hash table: the `struct udp_table` and its primary `hash` slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpTable {
    /// Address of the `struct udp_table` (`udp_table`, or a netns's own).
    pub table: u64,
    /// Its `hash` array of `mask + 1` slots.
    pub slots: BucketArray,
}

/// Decodes UDP sockets: the offsets it needs, looked up once.
pub struct UdpWalker {
    context: SockContext,
    layout: Layout,
    common: CommonMembers,
    sock: SockMembers,
    forward_deficit: usize,
    /// Offset of `skc_node`, the chain's node.
    node: u64,
    udp_table: u64,
    hash: Field,
    mask: Field,
    slot_size: usize,
    slot_head: usize,
    namespaces: NetNamespaces,
    /// `net->ipv4.udp_table` (≥ 6.2).
    per_netns: Option<Field>,
}

impl UdpWalker {
    /// Looks up every offset, symbol and layout the walk needs.
    pub fn new(types: &Types) -> Result<UdpWalker> {
        let (members, common, sock, forward_deficit) = udp_members();
        let (udp_table, table_type) = types.global("udp_table", UDP_TABLE)?;
        let slot = types.find_type("struct udp_hslot")?;
        let net = types.find_type("struct net")?;
        let per_netns = net.field("ipv4.udp_table").ok();
        Ok(UdpWalker {
            context: SockContext::new(types)?,
            layout: members.layout(types, "struct udp_sock")?,
            common,
            sock,
            forward_deficit,
            node: types.find_type("struct sock")?.offset_of("__sk_common.skc_node")? as u64,
            udp_table,
            hash: table_type.field("hash")?,
            mask: table_type.field("mask")?,
            slot_size: slot.size()?,
            slot_head: slot.offset_of("head")?,
            namespaces: NetNamespaces::new(types)?,
            per_netns,
        })
    }

    /// Every UDP table, each once: `udp_table`, then the namespaces' own.
    pub fn tables(&self, mem: &Memory) -> Result<Vec<UdpTable>> {
        let mut tables = vec![self.udp_table];
        if let Some(per_netns) = self.per_netns {
            for net in self.namespaces.nets(mem)? {
                let table = mem.read_field(net, per_netns)?;
                if table != 0 && !tables.contains(&table) {
                    check_pointer(table, "net->ipv4.udp_table")?;
                    tables.push(table);
                }
            }
        }
        tables
            .into_iter()
            .map(|table| {
                let at = mem.read_field(table, self.hash)?;
                let count = mem.read_field(table, self.mask)? as usize + 1;
                let slots =
                    BucketArray::new(at, count, self.slot_size, self.slot_head, false, "udp_table hash")?;
                Ok(UdpTable { table, slots })
            })
            .collect()
    }

    /// Every UDP socket of every table that can be read, in slot order. A slot, chain or
    /// socket that cannot be read is noted in `skipped` (slot index, socket address, field)
    /// and the walk goes on.
    pub fn walk(&self, mem: &Memory, skipped: &mut Skipped) -> Result<Vec<UdpSocket>> {
        let mut caches = Caches::default();
        let mut seen = AddressSet::default();
        let mut rows = Vec::new();
        for table in self.tables(mem)? {
            for node in table.slots.nodes_tolerant(mem, skipped)? {
                let sk = node - self.node;
                if seen.insert(sk) {
                    let row = self.read(mem, sk, &mut caches);
                    rows.extend(skipped.check(row, || format!("udp struct sock at {sk:#x}")));
                }
            }
            within_row_budget(rows.len(), "udp walk")?;
        }
        Ok(rows)
    }

    /// The socket at `sk`, with one read of its `struct udp_sock`.
    pub fn read(&self, mem: &Memory, sk: u64, caches: &mut Caches) -> Result<UdpSocket> {
        check_pointer(sk, "udp socket")?;
        let (layout, sock) = (&self.layout, &self.sock);
        let bytes = layout.read(mem, sk)?;
        let bytes = &bytes[..];
        let common = self.common.read(layout, bytes)?;
        let get = |index| member(layout, bytes, index);
        let rmem = get(sock.rmem_alloc)? as u32;
        let deficit = optional(layout, bytes, self.forward_deficit)?.unwrap_or(0) as u32;
        Ok(UdpSocket {
            address: sk,
            family: common.family,
            state: common.state,
            netns: self.context.netns_inode(mem, common.net, caches)?,
            local_addr: common.local_addr,
            local_port: common.local_port,
            peer_addr: common.peer_addr,
            peer_port: common.peer_port,
            recv_q: rmem.wrapping_sub(deficit),
            send_q: (get(sock.wmem_alloc)? as u32).wrapping_sub(1),
            drops: optional(layout, bytes, sock.drops)?.map(|drops| drops as u32),
            inode: self.context.inode(mem, get(sock.socket)?)?,
            uid: get(sock.uid)? as u32,
            cookie: Some(common.cookie).filter(|&cookie| cookie != 0),
            cgroup_id: self.context.cgroup_id(mem, sock.cgroup(layout, bytes)?, caches)?,
            bound_dev_if: common.bound_dev_if,
            bound_dev: self.context.device_name(mem, common.net, common.bound_dev_if, caches)?,
            v6only: (common.family == AF_INET6).then_some(common.ipv6only),
            reuseport: common.reuseport,
            skmem: sock.skmem(layout, bytes)?,
        })
    }
}

/// The members of `struct udp_sock` a socket is read with (`forward_deficit` last).
fn udp_members() -> (Members, CommonMembers, SockMembers, usize) {
    let mut members = Members::default();
    let common = CommonMembers::add(&mut members, "inet.sk.__sk_common.");
    let sock = SockMembers::add(&mut members, "inet.sk.");
    let forward_deficit = members.add_optional("forward_deficit");
    (members, common, sock, forward_deficit)
}

#[cfg(test)]
mod tests {
    use kql_btf::Btf;

    use super::*;
    use crate::types::find_btf_type;

    /// This machine's kernel (6.18) has every member the walk reads, per-netns tables too.
    #[test]
    fn this_machines_btf_has_what_the_udp_walk_reads() {
        let btf = Btf::parse(std::fs::read("/sys/kernel/btf/vmlinux").expect("kernel BTF")).unwrap();
        let ty = |name| find_btf_type(&btf, name).unwrap();
        assert_eq!(udp_members().0.missing(&ty("struct udp_sock")), Vec::<String>::new());
        assert!(ty("struct udp_sock").field("forward_deficit").is_ok());
        for designator in ["hash", "mask"] {
            assert!(ty("struct udp_table").field(designator).is_ok(), "{designator}");
        }
        assert!(ty("struct udp_hslot").field("head").is_ok());
        assert!(ty("struct net").field("ipv4.udp_table").is_ok());
    }
}
