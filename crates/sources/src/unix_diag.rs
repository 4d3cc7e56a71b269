//! Unix-domain sockets dumped over netlink `unix_diag` (`SOCK_DIAG_BY_FAMILY` with
//! `struct unix_diag_req`, answered by the `unix_diag` module).
//!
//! Each answer is a `struct unix_diag_msg` and the attributes asked for with
//! `UDIAG_SHOW_NAME | VFS | PEER | ICONS | RQLEN | MEMINFO | UID`: `UNIX_DIAG_NAME` (the
//! bound address), `UNIX_DIAG_VFS` (`struct unix_diag_vfs`), `UNIX_DIAG_PEER`,
//! `UNIX_DIAG_ICONS` (pending connections of a listener), `UNIX_DIAG_RQLEN`
//! (`struct unix_diag_rqlen`), `UNIX_DIAG_MEMINFO` (the `sk_meminfo` array) and
//! `UNIX_DIAG_UID` (Linux 5.3+). `netlink-packet-sock-diag` 0.5 decodes the message
//! header and most attributes, but three are read here from the attribute's bytes: it knows
//! no `UNIX_DIAG_UID`, keeps only three of the nine `sk_meminfo` values, and hides the
//! fields of `struct unix_diag_vfs`.

use std::io;

use netlink_packet_core::{NlasIterator, Parseable};
use netlink_packet_sock_diag::unix::nlas::{Nla, UnixDiagName};
use netlink_packet_sock_diag::unix::{ShowFlags, StateFlags, UnixRequest, UnixResponseHeader};
use netlink_packet_sock_diag::{SockDiagMessage, UNIX_DIAG_MEMINFO, UNIX_DIAG_VFS};

use crate::inet_socket::SkMem;
use crate::sock_diag::{DiagSocket, decode_error, missing_module};
use crate::unix_socket::{UnixSocket, UnixType, UnixVfs, ss_unix_name};
use crate::wire::{cookie, ne_u32};

/// `UDIAG_SHOW_UID` (`include/uapi/linux/unix_diag.h`; unknown to the crate).
const UDIAG_SHOW_UID: u32 = 1 << 6;
/// Attribute: `u32` owner uid.
const UNIX_DIAG_UID: u16 = 7;
/// `sizeof(struct unix_diag_msg)`: the attributes follow it.
const UNIX_DIAG_MSG_LEN: usize = 16;

/// Every unix socket of the calling thread's network namespace, in kernel hash order.
///
/// Errors: `Unsupported` when the kernel has no `unix_diag` module, with a one-line
/// reason; `InvalidData` for a malformed answer; any other socket or kernel error as is.
pub fn dump_unix() -> io::Result<Vec<UnixSocket>> {
    let mut out = Vec::new();
    let mut socket = DiagSocket::open()?;
    socket
        .dump(request(), |payload| {
            out.push(decode(payload)?);
            Ok(())
        })
        .map_err(|e| missing_module(e, "unix sockets", "unix_diag"))?;
    Ok(out)
}

/// The dump request: every state, every attribute this module decodes.
fn request() -> SockDiagMessage {
    let show = ShowFlags::NAME
        | ShowFlags::VFS
        | ShowFlags::PEER
        | ShowFlags::ICONS
        | ShowFlags::RQLEN
        | ShowFlags::MEMINFO
        | ShowFlags::from_bits_retain(UDIAG_SHOW_UID);
    SockDiagMessage::UnixRequest(UnixRequest {
        state_flags: StateFlags::from_bits_retain(u32::MAX),
        inode: 0,
        show_flags: show,
        cookie: [0; 8],
    })
}

/// One answer (a `struct unix_diag_msg` and attributes) as a [`UnixSocket`].
fn decode(payload: &[u8]) -> io::Result<UnixSocket> {
    let header = UnixResponseHeader::parse(payload).map_err(decode_error)?;
    let mut socket = UnixSocket {
        kind: UnixType::from_number(header.kind),
        state: header.state,
        inode: u64::from(header.inode),
        name: None,
        peer_inode: None,
        recv_q: None,
        send_q: None,
        pending_inodes: None,
        uid: None,
        vfs: None,
        cookie: Some(cookie(&header.cookie)),
        skmem: None,
    };
    for nla in NlasIterator::new(payload.get(UNIX_DIAG_MSG_LEN..).unwrap_or_default()) {
        let nla = nla.map_err(decode_error)?;
        match nla.kind() {
            UNIX_DIAG_UID => socket.uid = ne_u32(nla.value(), 0),
            UNIX_DIAG_MEMINFO => socket.skmem = SkMem::from_kernel(nla.value()),
            UNIX_DIAG_VFS => socket.vfs = unix_vfs(nla.value()),
            _ => add_attribute(&mut socket, Nla::parse(&nla).map_err(decode_error)?),
        }
    }
    Ok(socket)
}

/// Fill `socket` from one attribute the crate decoded.
fn add_attribute(socket: &mut UnixSocket, nla: Nla) {
    match nla {
        Nla::Name(UnixDiagName::Pathname(path)) => socket.name = Some(ss_unix_name(path.as_encoded_bytes())),
        Nla::Name(UnixDiagName::Abstract(name)) => {
            socket.name = Some(ss_unix_name(&[&[0], &name[..]].concat()))
        }
        Nla::Peer(inode) => socket.peer_inode = Some(u64::from(inode)),
        Nla::PendingConnections(inodes) => {
            socket.pending_inodes = Some(inodes.into_iter().map(u64::from).collect())
        }
        Nla::ReceiveQueueLength(recv_q, send_q) => {
            (socket.recv_q, socket.send_q) = (Some(recv_q), Some(send_q))
        }
        _ => {}
    }
}

/// `struct unix_diag_vfs` (`udiag_vfs_ino`, `udiag_vfs_dev`), with the kernel's internal
/// device number (`major << 20 | minor`) turned into `stat`'s encoding.
fn unix_vfs(value: &[u8]) -> Option<UnixVfs> {
    let kernel_dev = ne_u32(value, 4)?;
    Some(UnixVfs {
        inode: u64::from(ne_u32(value, 0)?),
        dev: libc::makedev(kernel_dev >> 20, kernel_dev & 0xf_ffff),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inet_socket::TCP_LISTEN;
    use crate::wire::samples::{mutate, nla};
    use netlink_packet_sock_diag::{UNIX_DIAG_ICONS, UNIX_DIAG_NAME, UNIX_DIAG_PEER, UNIX_DIAG_RQLEN};

    fn listener_message(name: &[u8]) -> Vec<u8> {
        let mut m = vec![libc::AF_UNIX as u8, libc::SOCK_SEQPACKET as u8, TCP_LISTEN, 0];
        m.extend_from_slice(&4242u32.to_ne_bytes());
        m.extend_from_slice(&7u32.to_ne_bytes());
        m.extend_from_slice(&1u32.to_ne_bytes());
        m.extend(nla(UNIX_DIAG_NAME, name));
        let vfs: Vec<u8> = [99u32, (8 << 20) | 3].into_iter().flat_map(u32::to_ne_bytes).collect();
        m.extend(nla(UNIX_DIAG_VFS, &vfs));
        m.extend(nla(UNIX_DIAG_PEER, &77u32.to_ne_bytes()));
        m.extend(nla(UNIX_DIAG_ICONS, &[5u32, 6].map(u32::to_ne_bytes).concat()));
        m.extend(nla(UNIX_DIAG_RQLEN, &[2u32, 128].map(u32::to_ne_bytes).concat()));
        let meminfo: Vec<u8> = (1..=9u32).flat_map(u32::to_ne_bytes).collect();
        m.extend(nla(UNIX_DIAG_MEMINFO, &meminfo));
        m.extend(nla(UNIX_DIAG_UID, &1000u32.to_ne_bytes()));
        m.extend(nla(6, &[0])); // UNIX_DIAG_SHUTDOWN: not kept
        m
    }

    #[test]
    fn decodes_every_attribute() {
        let s = decode(&listener_message(b"/run/kql.sock\0")).unwrap();
        assert_eq!((s.kind, s.state, s.inode), (UnixType::SeqPacket, TCP_LISTEN, 4242));
        assert_eq!(s.cookie, Some((1 << 32) | 7));
        assert_eq!(s.name.as_deref(), Some("/run/kql.sock"));
        assert_eq!(s.vfs, Some(UnixVfs { inode: 99, dev: libc::makedev(8, 3) }));
        assert_eq!((s.peer_inode, s.pending_inodes.as_deref()), (Some(77), Some(&[5, 6][..])));
        assert_eq!((s.recv_q, s.send_q, s.uid), (Some(2), Some(128), Some(1000)));
        assert_eq!(s.skmem.map(|m| (m.rmem_alloc, m.wmem_alloc, m.drops)), Some((1, 3, 9)));
        let abstract_name = decode(&listener_message(b"\0kql\0x")).unwrap();
        assert_eq!(abstract_name.name.as_deref(), Some("@kql@x"));
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        assert!(decode(&[1, 1, 1, 0, 0, 0]).is_err());
        let unterminated_path = listener_message(b"/run/x");
        assert_eq!(decode(&unterminated_path).unwrap_err().kind(), io::ErrorKind::InvalidData);
        mutate(&listener_message(b"/run/kql.sock\0"), |bytes| drop(decode(bytes)));
    }
}
