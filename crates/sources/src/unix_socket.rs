//! What kql knows of one unix-domain socket, whichever source filled it: [`UnixSocket`].
//!
//! Two sources fill it: netlink `unix_diag` ([`crate::unix_diag`]) and `/proc/net/unix`
//! ([`crate::proc_net_unix`]); a field a source cannot know is `None`. States are the
//! kernel's `sk_state` numbers shared with TCP ([`crate::inet_socket::TCP_LISTEN`],
//! `TCP_ESTABLISHED`, `TCP_CLOSE`, …).

use crate::inet_socket::SkMem;

/// The type of a unix socket (`udiag_type`, the `Type` column of `/proc/net/unix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnixType {
    /// `SOCK_STREAM` (`ss`: `u_str`).
    Stream,
    /// `SOCK_DGRAM` (`ss`: `u_dgr`).
    Dgram,
    /// `SOCK_SEQPACKET` (`ss`: `u_seq`).
    SeqPacket,
    /// Any other `SOCK_*` number.
    Other(u8),
}

impl UnixType {
    /// The type for a `SOCK_*` number.
    pub fn from_number(number: u8) -> Self {
        match i32::from(number) {
            libc::SOCK_STREAM => Self::Stream,
            libc::SOCK_DGRAM => Self::Dgram,
            libc::SOCK_SEQPACKET => Self::SeqPacket,
            _ => Self::Other(number),
        }
    }

    /// `stream`, `dgram`, `seqpacket` or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stream => "stream",
            Self::Dgram => "dgram",
            Self::SeqPacket => "seqpacket",
            Self::Other(_) => "unknown",
        }
    }
}

/// The file a socket is bound to, for a socket bound to a path (`UNIX_DIAG_VFS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnixVfs {
    /// Inode of the socket file (`stat`'s `st_ino`), not the sockfs inode.
    pub inode: u64,
    /// Device of the file system holding it, encoded as `stat`'s `st_dev`.
    pub dev: u64,
}

/// One unix-domain socket.
#[derive(Debug, Clone, PartialEq)]
pub struct UnixSocket {
    /// Stream, datagram or seqpacket.
    pub kind: UnixType,
    /// `sk_state`: `TCP_LISTEN`, `TCP_ESTABLISHED` (connected), `TCP_CLOSE` (unconnected),
    /// `TCP_SYN_SENT` (connecting). procfs gives the `socket_state` instead, mapped as `ss`
    /// maps it (see [`crate::proc_net_unix`]).
    pub state: u8,
    /// sockfs inode, the number in `socket:[N]` links under `/proc/PID/fd`.
    pub inode: u64,
    /// Bound address as `ss` prints it: the path, or for an abstract name `@` followed by
    /// the name with each NUL byte shown as `@`; lossy UTF-8. `None` if unbound.
    pub name: Option<String>,
    /// sockfs inode of the connected peer (`UNIX_DIAG_PEER`); `None` when not connected,
    /// and always from procfs.
    pub peer_inode: Option<u64>,
    /// For a listener, connections waiting to be accepted; otherwise bytes (stream) or
    /// the first datagram's bytes (dgram) to read. netlink only (`UNIX_DIAG_RQLEN`).
    pub recv_q: Option<u32>,
    /// For a listener, the `listen(2)` backlog; otherwise the memory of what was sent and
    /// not yet read by the peer (`sk_wmem_alloc`: buffer sizes, not data bytes). netlink
    /// only.
    pub send_q: Option<u32>,
    /// For a listener, the sockfs inodes of connections not yet accepted
    /// (`UNIX_DIAG_ICONS`); netlink only.
    pub pending_inodes: Option<Vec<u64>>,
    /// Owner uid (`UNIX_DIAG_UID`, Linux 5.3+); netlink only.
    pub uid: Option<u32>,
    /// The socket file of a socket bound to a path; netlink only.
    pub vfs: Option<UnixVfs>,
    /// Kernel socket cookie; netlink only.
    pub cookie: Option<u64>,
    /// Socket memory (`UNIX_DIAG_MEMINFO`, `ss -xm`); netlink only.
    pub skmem: Option<SkMem>,
}

/// A bound address as `ss` prints it: a path as is; an abstract name (first byte NUL) as
/// `@` then the rest with every NUL as `@`.
pub(crate) fn ss_unix_name(address: &[u8]) -> String {
    match address.split_first() {
        Some((0, name)) => {
            let shown: Vec<u8> =
                std::iter::once(b'@').chain(name.iter().map(|&b| if b == 0 { b'@' } else { b })).collect();
            String::from_utf8_lossy(&shown).into_owned()
        }
        _ => String::from_utf8_lossy(address).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_ss_prints_them() {
        assert_eq!(ss_unix_name(b"/run/x.sock"), "/run/x.sock");
        assert_eq!(ss_unix_name(b"\0kql\0x"), "@kql@x");
        assert_eq!(ss_unix_name(b"\0"), "@");
        assert_eq!(ss_unix_name(b""), "");
        assert_eq!(UnixType::from_number(5), UnixType::SeqPacket);
        assert_eq!(UnixType::from_number(9).name(), "unknown");
    }
}
