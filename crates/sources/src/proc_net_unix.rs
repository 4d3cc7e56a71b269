//! Unix-domain sockets read from the kernel's text table `/proc/net/unix` (printed by
//! `unix_seq_show`), the procfs alternative to [`crate::unix_diag`].
//!
//! Each line is `Num RefCount Protocol Flags Type St Inode [Path]`: `Num` the socket's
//! kernel address (zeros unless `kptr_restrict` allows), `Flags` with `__SO_ACCEPTCON`
//! (`1 << 16`) set on a listener, `Type` the `SOCK_*` number, `St` the `socket_state`
//! (`SS_UNCONNECTED` 1 … `SS_DISCONNECTING` 4), `Inode` decimal, and the bound address
//! rendered as `ss` renders it (abstract names with `@` for each NUL). The state is mapped
//! to `sk_state` numbers as `ss` does for this file: a listener is `TCP_LISTEN`, then
//! `SS_UNCONNECTED` → `TCP_CLOSE`, `SS_CONNECTING` → `TCP_SYN_SENT`, `SS_CONNECTED` →
//! `TCP_ESTABLISHED`, `SS_DISCONNECTING` → `TCP_CLOSING`.
//!
//! The table also lists the server side of a connection not yet accepted (an "embryo",
//! inode 0, shown `SS_CONNECTING`); `unix_diag` skips sockets without an inode, and so does
//! [`read_unix`], so that both sources list the same sockets (the listener's queue length,
//! from netlink, counts them).
//!
//! The path is printed byte for byte, so a path holding a line feed continues on the next
//! line: a line that is not a socket line, after a socket with a path, is taken as the rest
//! of that path. The file has no queues, peer, uid, cookie, memory or vfs: those
//! [`UnixSocket`] fields are `None`. It is read through `/proc/thread-self/net/` so that
//! it shows the calling thread's network namespace (see [`crate::proc_net_inet`]).

use std::io;

use crate::inet_socket::{TCP_CLOSE, TCP_CLOSING, TCP_ESTABLISHED, TCP_LISTEN, TCP_SYN_SENT};
use crate::lines::{for_each_line_of, malformed};
use crate::unix_socket::{UnixSocket, UnixType};

/// The calling thread's table of unix sockets.
const UNIX_PATH: &str = "/proc/thread-self/net/unix";
/// `__SO_ACCEPTCON` in the `Flags` column: the socket listens.
const SO_ACCEPTCON: u32 = 1 << 16;
/// Longest line accepted: the fixed columns and a 108-byte `sun_path`, with room to spare.
const MAX_LINE: usize = 512;

/// Every unix socket of the calling thread's network namespace that has an inode, in
/// kernel hash order.
///
/// Errors: the table cannot be read or does not exist, or a line is malformed
/// (`InvalidData`, naming the line).
pub fn read_unix() -> io::Result<Vec<UnixSocket>> {
    let mut out = Vec::new();
    let found = for_each_line_of(UNIX_PATH, MAX_LINE, |line_no, line| add_line(line_no, line, &mut out))?;
    if !found {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("{UNIX_PATH} does not exist")));
    }
    Ok(out)
}

/// Decode line `line_no` (the first is the header) into `out`.
fn add_line(line_no: usize, line: &[u8], out: &mut Vec<UnixSocket>) -> io::Result<()> {
    if line_no == 1 {
        return match line.starts_with(b"Num ") {
            true => Ok(()),
            false => Err(malformed(UNIX_PATH, line_no, "missing header")),
        };
    }
    if let Some(socket) = parse_socket(line) {
        if socket.inode != 0 {
            out.push(socket);
        }
        return Ok(());
    }
    match out.last_mut().and_then(|previous| previous.name.as_mut()) {
        Some(name) => {
            name.push('\n');
            name.push_str(&String::from_utf8_lossy(line));
            Ok(())
        }
        None => Err(malformed(UNIX_PATH, line_no, &String::from_utf8_lossy(line))),
    }
}

/// Decode one socket line, `None` if it is not one.
fn parse_socket(line: &[u8]) -> Option<UnixSocket> {
    let mut rest = line;
    let mut column = || next_column(&mut rest);
    let _address = column()?.strip_suffix(b":")?;
    let _refcount = hex(column()?)?;
    let _protocol = hex(column()?)?;
    let flags = hex(column()?)?;
    let kind = UnixType::from_number(u8::try_from(hex(column()?)?).ok()?);
    let socket_state = hex(column()?)?;
    let inode = std::str::from_utf8(column()?).ok()?.parse().ok()?;
    let state = if flags & SO_ACCEPTCON != 0 { TCP_LISTEN } else { sk_state(socket_state)? };
    let name = match rest.strip_prefix(b" ") {
        Some(path) if !path.is_empty() => Some(String::from_utf8_lossy(path).into_owned()),
        _ if rest.is_empty() => None,
        _ => return None,
    };
    Some(UnixSocket {
        kind,
        state,
        inode,
        name,
        peer_inode: None,
        recv_q: None,
        send_q: None,
        pending_inodes: None,
        uid: None,
        vfs: None,
        cookie: None,
        skmem: None,
    })
}

/// The next space-separated column of `rest` (leading spaces skipped), leaving `rest` at
/// the space that ends it.
fn next_column<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let start = rest.iter().position(|&b| b != b' ')?;
    let text = &rest[start..];
    let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
    *rest = &text[end..];
    Some(&text[..end])
}

/// `sk_state` for a `socket_state` number, as `ss` maps `/proc/net/unix`.
fn sk_state(socket_state: u32) -> Option<u8> {
    Some(match socket_state {
        1 => TCP_CLOSE,
        2 => TCP_SYN_SENT,
        3 => TCP_ESTABLISHED,
        4 => TCP_CLOSING,
        _ => return None,
    })
}

/// 1 to 8 hex digits.
fn hex(text: &[u8]) -> Option<u32> {
    if text.is_empty() || text.len() > 8 || !text.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(text).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Num       RefCount Protocol Flags    Type St Inode Path";

    fn parse(lines: &[&str]) -> io::Result<Vec<UnixSocket>> {
        let mut out = Vec::new();
        for (index, line) in std::iter::once(&HEADER).chain(lines).enumerate() {
            add_line(index + 1, line.as_bytes(), &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn parses_sample_lines() {
        let socks = parse(&[
            "0000000000000000: 00000002 00000000 00010000 0001 01 23456 /run/kql.sock",
            "0000000000000000: 00000003 00000000 00000000 0001 03 23457",
            "0000000000000000: 00000002 00000000 00000000 0002 01  1234 @kql@x",
            "0000000000000000: 00000002 00000000 00000000 0005 02    12 /tmp/a b",
            "0000000000000000: 00000002 00000000 00000000 0001 02     0 /run/kql.sock",
        ])
        .unwrap();
        let summary: Vec<_> = socks.iter().map(|s| (s.kind, s.state, s.inode, s.name.as_deref())).collect();
        assert_eq!(
            summary,
            [
                (UnixType::Stream, TCP_LISTEN, 23456, Some("/run/kql.sock")),
                (UnixType::Stream, TCP_ESTABLISHED, 23457, None),
                (UnixType::Dgram, TCP_CLOSE, 1234, Some("@kql@x")),
                (UnixType::SeqPacket, TCP_SYN_SENT, 12, Some("/tmp/a b")),
            ]
        );
        assert!(socks.iter().all(|s| s.peer_inode.is_none() && s.recv_q.is_none() && s.uid.is_none()));
    }

    #[test]
    fn a_path_with_a_line_feed_continues_on_the_next_line() {
        let socks = parse(&[
            "0000000000000000: 00000002 00000000 00000000 0001 01 7 /tmp/a",
            "b c",
            "0000000000000000: 00000002 00000000 00000000 0001 01 8",
        ])
        .unwrap();
        assert_eq!(socks.len(), 2);
        assert_eq!(socks[0].name.as_deref(), Some("/tmp/a\nb c"));
    }

    #[test]
    fn malformed_lines_are_errors() {
        let good = "0000000000000000: 00000002 00000000 00000000 0001 01 7";
        for bad in [
            "",
            "garbage",
            "0000000000000000 00000002 00000000 00000000 0001 01 7",
            "0000000000000000: 00000002 00000000 00000000 0001 09 7",
            "0000000000000000: 00000002 00000000 00000000 0001 01 x",
            "0000000000000000: 00000002 00000000 00000000 0001 01",
            "0000000000000000: 00000002 00000000 000000000 0001 01 7",
        ] {
            let err = parse(&[good, bad]).map(|_| ()).unwrap_err();
            assert!(err.to_string().contains("line 3: malformed"), "{err} for {bad:?}");
        }
        let err = parse(&[good]).map(|_| ());
        assert!(err.is_ok());
        let mut out = Vec::new();
        assert!(add_line(1, b"sl local", &mut out).is_err());
    }
}
