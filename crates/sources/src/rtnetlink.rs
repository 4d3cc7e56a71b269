//! Network interfaces and their addresses from the kernel's routing netlink family
//! (`NETLINK_ROUTE`): the `RTM_GETLINK` and `RTM_GETADDR` dumps that `ip link` and `ip addr`
//! read, decoded into [`Link`] and [`Address`].
//!
//! Requests are built with `netlink-packet-route` and sent on a `netlink-sys` socket; each
//! answer's header (`struct ifinfomsg`, `struct ifaddrmsg`) is decoded by the crate and only
//! the attributes kql keeps are read from its `NlasIterator`, so an attribute the crate
//! would reject (a link kind's private data, say) cannot fail the dump. A malformed answer is
//! an `InvalidData` error, never a panic; a dump the kernel marks interrupted (a device
//! added or removed meanwhile, `NLM_F_DUMP_INTR`) is asked again, a few times at most.
//!
//! The socket belongs to the network namespace of the calling thread: run these inside
//! another namespace with [`crate::netns::run_in`].

use std::io;

use netlink_packet_core::{
    DecodeError, DoneBuffer, ErrorBuffer, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE,
    NLMSG_ERROR, NLMSG_OVERRUN, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NlaBuffer, NlasIterator,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressHeader, AddressMessage};
use netlink_packet_route::link::{LinkHeader, LinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Receive buffer: holds any dump datagram (the kernel sizes them by the reader's buffer,
/// capped near 32 KiB).
const RECV_BUF_LEN: usize = 64 * 1024;
/// `sizeof(struct ifinfomsg)`: the attributes of a link message follow it.
const IFINFOMSG_LEN: usize = 16;
/// `sizeof(struct ifaddrmsg)`: the attributes of an address message follow it.
const IFADDRMSG_LEN: usize = 8;
/// How often an interrupted dump is asked again before it is an error.
const DUMP_TRIES: usize = 5;
/// `IFF_RUNNING`, `IFF_LOWER_UP`, `IFF_DORMANT`: bits `dev_get_flags()` derives from the
/// operational state, which the device's own `flags` never hold.
const DERIVED_FLAGS: u32 = (libc::IFF_RUNNING | libc::IFF_LOWER_UP | libc::IFF_DORMANT) as u32;

/// A network interface, as `RTM_GETLINK` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name (`IFLA_IFNAME`).
    pub name: String,
    /// rtnl link kind (`IFLA_INFO_KIND`: `veth`, `dummy`, `bridge`, …); `None` for a device
    /// that no link type created (loopback, a physical NIC).
    pub kind: Option<String>,
    /// Hardware address (`IFLA_ADDRESS`) as lowercase hex bytes joined by `:`; `None` for a
    /// device without one.
    pub mac: Option<String>,
    /// MTU in bytes.
    pub mtu: u32,
    /// The `IFF_*` flags the device itself holds (`net_device.flags`, as in
    /// `/sys/class/net/NAME/flags`): the answer's `dev_get_flags()` without the bits it
    /// derives from the operational state, with `IFF_PROMISC` and `IFF_ALLMULTI` as their
    /// counters say.
    pub flags: u32,
    /// RFC 2863 operational state (`IFLA_OPERSTATE`, `IF_OPER_*`; DOWN for a device that
    /// is not up), as `ip link` names it: UNKNOWN, NOTPRESENT, DOWN, LOWERLAYERDOWN,
    /// TESTING, DORMANT or UP.
    pub operstate: String,
    /// Index of the master device it is enslaved to (`IFLA_MASTER`), if any.
    pub master: Option<u32>,
    /// Kind of its root queueing discipline (`IFLA_QDISC`: `noqueue`, `noop`, …).
    pub qdisc: Option<String>,
    /// `ARPHRD_*` hardware type (1 ethernet, 772 loopback).
    pub link_type: u16,
}

/// One address of an interface, as `RTM_GETADDR` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Index of the interface it is on.
    pub ifindex: u32,
    /// `inet` or `inet6`.
    pub family: &'static str,
    /// The local address: dotted for IPv4, compressed for IPv6 (`IFA_LOCAL`, else
    /// `IFA_ADDRESS`).
    pub address: String,
    /// Prefix length.
    pub prefix_len: u8,
    /// Scope as `ip addr` names it: global, site, link, host or nowhere (else the number).
    pub scope: String,
    /// `IFA_F_*` flags (`IFA_FLAGS`, else the header's eight bits).
    pub flags: u32,
    /// The IPv4 label (`IFA_LABEL`: the device's name, or an alias like `eth0:1`); `None`
    /// for IPv6, which has none.
    pub label: Option<String>,
}

/// Every interface of the calling thread's network namespace, by ifindex.
///
/// Errors: the socket cannot be opened, the dump fails, or an answer is malformed.
pub fn dump_links() -> io::Result<Vec<Link>> {
    let mut links = Vec::new();
    RouteSocket::open()?.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), |kind, payload| {
        if kind == libc::RTM_NEWLINK {
            links.push(decode_link(payload)?);
        }
        Ok(())
    })?;
    links.sort_by_key(|link| link.ifindex);
    Ok(links)
}

/// Every IPv4 and IPv6 address of the calling thread's network namespace, by ifindex, then
/// in the kernel's order.
///
/// Errors: the socket cannot be opened, the dump fails, or an answer is malformed.
pub fn dump_addresses() -> io::Result<Vec<Address>> {
    let mut addresses = Vec::new();
    let request = RouteNetlinkMessage::GetAddress(AddressMessage::default());
    RouteSocket::open()?.dump(request, |kind, payload| {
        if kind == libc::RTM_NEWADDR
            && let Some(address) = decode_address(payload)?
        {
            addresses.push(address);
        }
        Ok(())
    })?;
    addresses.sort_by_key(|address| address.ifindex);
    Ok(addresses)
}

/// An open `NETLINK_ROUTE` socket with its receive buffer.
struct RouteSocket {
    socket: Socket,
    buf: Vec<u8>,
    seq: u32,
}

/// Whether a dump goes on after a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// More datagrams follow.
    More,
    /// `NLMSG_DONE` arrived.
    Done,
}

impl RouteSocket {
    fn open() -> io::Result<Self> {
        Ok(Self { socket: Socket::new(NETLINK_ROUTE)?, buf: Vec::with_capacity(RECV_BUF_LEN), seq: 0 })
    }

    /// Sends `request` as a dump and hands each answer's message type and payload to
    /// `on_message`, once the dump is complete; an interrupted dump is asked again, so only
    /// the answers of one uninterrupted dump reach `on_message`.
    fn dump(
        &mut self,
        request: RouteNetlinkMessage,
        mut on_message: impl FnMut(u16, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        for _ in 0..DUMP_TRIES {
            let mut answers = Vec::new();
            if !self.dump_once(&request, &mut answers)? {
                return answers.into_iter().try_for_each(|(kind, payload)| on_message(kind, &payload));
            }
        }
        Err(io::Error::new(
            io::ErrorKind::Interrupted,
            format!("rtnetlink: the dump was interrupted {DUMP_TRIES} times in a row (devices changing)"),
        ))
    }

    /// One dump of `request`, its answers appended to `answers`; whether the kernel marked
    /// it interrupted.
    fn dump_once(
        &mut self,
        request: &RouteNetlinkMessage,
        answers: &mut Vec<(u16, Vec<u8>)>,
    ) -> io::Result<bool> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.send(request)?;
        let mut interrupted = false;
        loop {
            let datagram = self.receive()?;
            if split_datagram(datagram, seq, &mut interrupted, answers)? == Flow::Done {
                return Ok(interrupted);
            }
        }
    }

    /// Encodes and sends one dump request to the kernel (netlink port 0).
    fn send(&self, request: &RouteNetlinkMessage) -> io::Result<()> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.seq;
        let mut message = NetlinkMessage::new(header, request.clone().into());
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        let kernel = SocketAddr::new(0, 0);
        loop {
            match self.socket.send_to(&bytes, &kernel, 0) {
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(_) => return Err(io::Error::new(io::ErrorKind::WriteZero, "rtnetlink: short send")),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Receives one datagram into the reused buffer; one larger than the buffer is an error
    /// rather than silently cut.
    fn receive(&mut self) -> io::Result<&[u8]> {
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, libc::MSG_TRUNC) {
                Ok(0) => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "rtnetlink: empty datagram"));
                }
                Ok(n) if n > self.buf.len() => return Err(invalid("a datagram larger than 64 KiB")),
                Ok(_) => return Ok(&self.buf),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The messages of one datagram of dump `seq`, appended to `answers`; messages of another
/// sequence number are stale and skipped. Sets `interrupted` when one carries
/// `NLM_F_DUMP_INTR`.
fn split_datagram(
    mut rest: &[u8],
    seq: u32,
    interrupted: &mut bool,
    answers: &mut Vec<(u16, Vec<u8>)>,
) -> io::Result<Flow> {
    while !rest.is_empty() {
        let message = NetlinkBuffer::new_checked(rest).map_err(decode_error)?;
        let payload = message.payload();
        rest = rest.get((message.length() as usize).next_multiple_of(4)..).unwrap_or_default();
        if message.sequence_number() != seq {
            continue;
        }
        *interrupted |= message.flags() & NLM_F_DUMP_INTR != 0;
        match message.message_type() {
            NLMSG_DONE if payload.is_empty() => return Ok(Flow::Done),
            NLMSG_DONE => {
                let code = DoneBuffer::new_checked(payload).map_err(decode_error)?.code();
                return if code < 0 { Err(io::Error::from_raw_os_error(-code)) } else { Ok(Flow::Done) };
            }
            NLMSG_ERROR => {
                return match ErrorBuffer::new_checked(payload).map_err(decode_error)?.code() {
                    Some(code) => Err(io::Error::from_raw_os_error(code.get().wrapping_neg())),
                    None => Ok(Flow::Done),
                };
            }
            NLMSG_OVERRUN => return Err(invalid("overrun")),
            kind => answers.push((kind, payload.to_vec())),
        }
    }
    Ok(Flow::More)
}

/// An `RTM_NEWLINK` payload: `struct ifinfomsg` then attributes.
fn decode_link(payload: &[u8]) -> io::Result<Link> {
    let header = LinkHeader::parse(payload).map_err(decode_error)?;
    let mut link = Link {
        ifindex: header.index,
        name: String::new(),
        kind: None,
        mac: None,
        mtu: 0,
        flags: header.flags.bits() & !DERIVED_FLAGS,
        operstate: operstate_name(0),
        master: None,
        qdisc: None,
        link_type: header.link_layer_type.into(),
    };
    for nla in NlasIterator::new(payload.get(IFINFOMSG_LEN..).unwrap_or_default()) {
        let nla = nla.map_err(decode_error)?;
        let value = nla.value();
        match nla.kind() {
            libc::IFLA_IFNAME => link.name = text(value),
            libc::IFLA_LINKINFO => link.kind = info_kind(value)?,
            libc::IFLA_ADDRESS if !value.is_empty() => link.mac = Some(hex_bytes(value)),
            libc::IFLA_MTU => link.mtu = u32_of(&nla)?,
            libc::IFLA_OPERSTATE => {
                link.operstate = operstate_name(*value.first().ok_or_else(|| short(&nla))?)
            }
            libc::IFLA_MASTER => link.master = Some(u32_of(&nla)?).filter(|&index| index != 0),
            libc::IFLA_QDISC => link.qdisc = Some(text(value)),
            libc::IFLA_PROMISCUITY => set_flag(&mut link.flags, libc::IFF_PROMISC, u32_of(&nla)? > 0),
            libc::IFLA_ALLMULTI => set_flag(&mut link.flags, libc::IFF_ALLMULTI, u32_of(&nla)? > 0),
            _ => {}
        }
    }
    if link.name.is_empty() {
        return Err(invalid(&format!("link {} has no IFLA_IFNAME", link.ifindex)));
    }
    Ok(link)
}

/// `IFLA_INFO_KIND` from the nested attributes of `IFLA_LINKINFO`.
fn info_kind(nested: &[u8]) -> io::Result<Option<String>> {
    for nla in NlasIterator::new(nested) {
        let nla = nla.map_err(decode_error)?;
        if nla.kind() == libc::IFLA_INFO_KIND {
            return Ok(Some(text(nla.value())));
        }
    }
    Ok(None)
}

/// An `RTM_NEWADDR` payload: `struct ifaddrmsg` then attributes; `None` for a family other
/// than IPv4 and IPv6 (an unspecified dump also answers for MCTP, for instance).
fn decode_address(payload: &[u8]) -> io::Result<Option<Address>> {
    let header = AddressHeader::parse(payload).map_err(decode_error)?;
    let family = match u8::from(header.family) {
        f if i32::from(f) == libc::AF_INET => "inet",
        f if i32::from(f) == libc::AF_INET6 => "inet6",
        _ => return Ok(None),
    };
    let (mut local, mut address, mut label) = (None, None, None);
    let mut flags = u32::from(header.flags.bits());
    for nla in NlasIterator::new(payload.get(IFADDRMSG_LEN..).unwrap_or_default()) {
        let nla = nla.map_err(decode_error)?;
        match nla.kind() {
            libc::IFA_LOCAL => local = Some(ip_text(nla.value()).ok_or_else(|| short(&nla))?),
            libc::IFA_ADDRESS => address = Some(ip_text(nla.value()).ok_or_else(|| short(&nla))?),
            libc::IFA_LABEL => label = Some(text(nla.value())),
            libc::IFA_FLAGS => flags = u32_of(&nla)?,
            _ => {}
        }
    }
    let address = local.or(address).ok_or_else(|| invalid("an address message without IFA_ADDRESS"))?;
    Ok(Some(Address {
        ifindex: header.index,
        family,
        address,
        prefix_len: header.prefix_len,
        scope: scope_name(header.scope.into()),
        flags,
        label,
    }))
}

/// `ip`'s names of the `IF_OPER_*` states; another value as its number.
fn operstate_name(state: u8) -> String {
    const NAMES: [&str; 7] = ["UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP"];
    NAMES.get(usize::from(state)).map_or_else(|| state.to_string(), |name| name.to_string())
}

/// `ip`'s names of the `RT_SCOPE_*` scopes (`/etc/iproute2/rt_scopes`); another as its number.
fn scope_name(scope: u8) -> String {
    match scope {
        0 => "global".into(),
        200 => "site".into(),
        253 => "link".into(),
        254 => "host".into(),
        255 => "nowhere".into(),
        other => other.to_string(),
    }
}

fn set_flag(flags: &mut u32, flag: libc::c_int, on: bool) {
    match on {
        true => *flags |= flag as u32,
        false => *flags &= !(flag as u32),
    }
}

/// A 4- or 16-byte address as text: dotted IPv4, compressed IPv6.
fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

/// Bytes as lowercase hex pairs joined by `:`.
fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A NUL-terminated string attribute.
fn text(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

fn u32_of(nla: &NlaBuffer<&[u8]>) -> io::Result<u32> {
    let bytes = nla.value().get(..4).ok_or_else(|| short(nla))?;
    Ok(u32::from_ne_bytes(bytes.try_into().expect("4 bytes")))
}

fn short(nla: &NlaBuffer<&[u8]>) -> io::Error {
    invalid(&format!("attribute {} is too short ({} bytes)", nla.kind(), nla.value().len()))
}

/// An `InvalidData` error for a malformed answer.
fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("rtnetlink: {msg}"))
}

fn decode_error(err: DecodeError) -> io::Error {
    invalid(&err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink message of `kind` and `seq` around `payload`.
    fn message(kind: u16, seq: u32, flags: u16, payload: &[u8]) -> Vec<u8> {
        let length = 16 + payload.len();
        let mut bytes = (length as u32).to_ne_bytes().to_vec();
        bytes.extend(kind.to_ne_bytes());
        bytes.extend(flags.to_ne_bytes());
        bytes.extend(seq.to_ne_bytes());
        bytes.extend(0u32.to_ne_bytes());
        bytes.extend(payload);
        bytes.resize(length.next_multiple_of(4), 0);
        bytes
    }

    fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
        let length = 4 + value.len();
        let mut bytes = (length as u16).to_ne_bytes().to_vec();
        bytes.extend(kind.to_ne_bytes());
        bytes.extend(value);
        bytes.resize(length.next_multiple_of(4), 0);
        bytes
    }

    fn link_payload(attributes: &[Vec<u8>]) -> Vec<u8> {
        // ifinfomsg: family, pad, type 1 (ether), index 7, flags UP|BROADCAST|RUNNING|LOWER_UP, change.
        let mut payload = vec![0u8, 0];
        payload.extend(1u16.to_ne_bytes());
        payload.extend(7i32.to_ne_bytes());
        payload.extend((0x1 | 0x2 | 0x40 | 0x10000u32).to_ne_bytes());
        payload.extend(0u32.to_ne_bytes());
        payload.extend(attributes.concat());
        payload
    }

    #[test]
    fn a_link_keeps_its_attributes_and_the_flags_the_device_holds() {
        let payload = link_payload(&[
            attribute(libc::IFLA_IFNAME, b"veth0\0"),
            attribute(libc::IFLA_MTU, &1500u32.to_ne_bytes()),
            attribute(libc::IFLA_ADDRESS, &[0x02, 0xab, 0, 0, 0, 1]),
            attribute(libc::IFLA_OPERSTATE, &[6]),
            attribute(libc::IFLA_MASTER, &3u32.to_ne_bytes()),
            attribute(libc::IFLA_QDISC, b"noqueue\0"),
            attribute(libc::IFLA_PROMISCUITY, &1u32.to_ne_bytes()),
            attribute(libc::IFLA_LINKINFO, &attribute(libc::IFLA_INFO_KIND, b"veth\0")),
        ]);
        let link = decode_link(&payload).unwrap();
        assert_eq!(
            link,
            Link {
                ifindex: 7,
                name: "veth0".into(),
                kind: Some("veth".into()),
                mac: Some("02:ab:00:00:00:01".into()),
                mtu: 1500,
                flags: 0x1 | 0x2 | 0x100,
                operstate: "UP".into(),
                master: Some(3),
                qdisc: Some("noqueue".into()),
                link_type: 1,
            }
        );
    }

    #[test]
    fn malformed_links_are_errors_not_panics() {
        assert!(decode_link(&[0; 4]).is_err(), "a short header");
        assert!(decode_link(&link_payload(&[])).is_err(), "no name");
        let short_mtu =
            link_payload(&[attribute(libc::IFLA_IFNAME, b"x\0"), attribute(libc::IFLA_MTU, &[1])]);
        assert_eq!(decode_link(&short_mtu).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut cut = link_payload(&[attribute(libc::IFLA_IFNAME, b"x\0")]);
        cut.push(0xff);
        assert!(decode_link(&cut).is_err(), "a cut attribute");
    }

    fn address_payload(family: u8, attributes: &[Vec<u8>]) -> Vec<u8> {
        // ifaddrmsg: family, prefix 24, flags PERMANENT, scope link, index 2.
        let mut payload = vec![family, 24, 0x80, 253];
        payload.extend(2u32.to_ne_bytes());
        payload.extend(attributes.concat());
        payload
    }

    #[test]
    fn addresses_prefer_the_local_address_and_the_long_flags() {
        let payload = address_payload(
            libc::AF_INET as u8,
            &[
                attribute(libc::IFA_ADDRESS, &[10, 0, 0, 2]),
                attribute(libc::IFA_LOCAL, &[10, 0, 0, 1]),
                attribute(libc::IFA_LABEL, b"eth0:1\0"),
                attribute(libc::IFA_FLAGS, &0x280u32.to_ne_bytes()),
            ],
        );
        let address = decode_address(&payload).unwrap().unwrap();
        assert_eq!(
            address,
            Address {
                ifindex: 2,
                family: "inet",
                address: "10.0.0.1".into(),
                prefix_len: 24,
                scope: "link".into(),
                flags: 0x280,
                label: Some("eth0:1".into()),
            }
        );
        let v6 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let payload = address_payload(libc::AF_INET6 as u8, &[attribute(libc::IFA_ADDRESS, &v6)]);
        let address = decode_address(&payload).unwrap().unwrap();
        assert_eq!((address.address.as_str(), address.flags, address.label), ("fe80::1", 0x80, None));
        assert_eq!(decode_address(&address_payload(45, &[])).unwrap(), None, "AF_MCTP is skipped");
        let bad = address_payload(libc::AF_INET as u8, &[attribute(libc::IFA_LOCAL, &[1, 2, 3])]);
        assert!(decode_address(&bad).is_err());
        assert!(decode_address(&address_payload(libc::AF_INET as u8, &[])).is_err(), "no address");
    }

    #[test]
    fn datagrams_end_at_done_and_report_interruptions() {
        let mut answers = Vec::new();
        let mut interrupted = false;
        let mut datagram = message(libc::RTM_NEWLINK, 3, 0, b"abcd");
        datagram.extend(message(libc::RTM_NEWLINK, 2, 0, b"stale"));
        datagram.extend(message(libc::RTM_NEWLINK, 3, NLM_F_DUMP_INTR, b"ef"));
        let flow = split_datagram(&datagram, 3, &mut interrupted, &mut answers).unwrap();
        assert_eq!((flow, interrupted), (Flow::More, true));
        assert_eq!(answers, [(libc::RTM_NEWLINK, b"abcd".to_vec()), (libc::RTM_NEWLINK, b"ef".to_vec())]);
        let done = message(NLMSG_DONE, 3, 0, &0i32.to_ne_bytes());
        assert_eq!(split_datagram(&done, 3, &mut interrupted, &mut answers).unwrap(), Flow::Done);
        let failed = message(NLMSG_DONE, 3, 0, &(-libc::EPERM).to_ne_bytes());
        let error = split_datagram(&failed, 3, &mut interrupted, &mut answers).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EPERM));
        assert!(split_datagram(&[1, 2, 3], 3, &mut interrupted, &mut answers).is_err());
    }

    #[test]
    fn this_namespace_has_a_loopback_with_its_addresses() {
        let links = dump_links().unwrap();
        let lo = links.iter().find(|l| l.name == "lo").expect("lo is listed");
        assert_eq!((lo.link_type, lo.kind.as_deref()), (772, None));
        assert!(lo.flags & libc::IFF_LOOPBACK as u32 != 0, "{lo:?}");
        let addresses = dump_addresses().unwrap();
        if lo.flags & libc::IFF_UP as u32 != 0 {
            let ours = addresses.iter().filter(|a| a.ifindex == lo.ifindex);
            assert!(ours.clone().any(|a| a.address == "127.0.0.1" && a.scope == "host"), "{addresses:?}");
        }
    }
}
