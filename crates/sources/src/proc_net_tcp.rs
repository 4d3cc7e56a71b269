//! TCP sockets read from the kernel's text tables `/proc/net/tcp` and `/proc/net/tcp6`.
//!
//! This module is the procfs alternative to [`crate::sock_diag`] (`--source procfs`): it
//! parses the lines printed by the kernel's `tcp4_seq_show`/`tcp6_seq_show` into the same
//! [`TcpSocket`] struct, in the same order (IPv4 sockets first, then IPv6 ones).
//!
//! The tables are read through `/proc/thread-self/net/`, not `/proc/net/` (a symlink to
//! `self/net`): `/proc/PID/net` shows the network namespace of task `PID`, and `self` is
//! the thread-group leader, so a helper thread that joined another namespace with
//! [`crate::netns::run_in`] would read the main thread's sockets there.
//! `/proc/thread-self/net` is `/proc/PID/task/TID/net`, the calling thread's namespace
//! (checked by this module's tests, which `unshare` the network namespace of one thread).
//!
//! Addresses are `__be32` words printed with `%08X`, i.e. as host-order numbers: each
//! 32-bit word (one for IPv4, four for IPv6) turns back into its network-order bytes with
//! `to_ne_bytes`. An `AF_INET6` socket carrying IPv4 traffic keeps its IPv4-mapped address
//! (`::ffff:a.b.c.d`), as in `sock_diag`.
//!
//! The text lacks several [`TcpSocket`] fields, which are set to placeholder values:
//! - `send_q` of a listener is the `tx_queue` column (`write_seq - snd_una`, normally 0),
//!   not the `listen(2)` backlog that `sock_diag` (and `ss` as Send-Q) reports: callers
//!   must treat `send_q` of a listener as unknown;
//! - `bound_ifindex` is 0 (unknown, not "unbound"), `v6only` and `cgroup_id` are `None`;
//! - `cookie` is 0, a value the kernel never gives a socket cookie.
//!
//! Like a netlink dump, the file is produced in several reads, so it is not an atomic
//! snapshot: a socket created or closed meanwhile may be missing or appear twice.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::lines::malformed;
use crate::sock_diag::TcpSocket;

/// The calling thread's table of IPv4 TCP sockets.
const TCP4_PATH: &str = "/proc/thread-self/net/tcp";
/// The calling thread's table of IPv6 TCP sockets; absent when IPv6 is disabled.
const TCP6_PATH: &str = "/proc/thread-self/net/tcp6";

/// `AF_INET` as the `u8` stored in [`TcpSocket::family`].
const AF_INET: u8 = libc::AF_INET as u8;
/// `AF_INET6` as the `u8` stored in [`TcpSocket::family`].
const AF_INET6: u8 = libc::AF_INET6 as u8;

/// TCP sockets whose state is in `states` (bit mask `1 << state`, e.g. `1 << TCP_LISTEN`)
/// from `/proc/thread-self/net/tcp` and `tcp6`, in the calling thread's network namespace.
/// IPv4 sockets come first, then IPv6 ones, each in kernel hash-table order. A missing
/// `tcp6` table (IPv6 disabled) yields no IPv6 sockets. See the module documentation for
/// the fields the tables do not have.
///
/// Errors: a table cannot be read, or a line of it is malformed (`InvalidData`, naming the
/// file and the line number).
pub fn read_tcp(states: u32) -> io::Result<Vec<TcpSocket>> {
    let mut out = Vec::new();
    if states == 0 {
        return Ok(out);
    }
    for (path, family) in [(TCP4_PATH, AF_INET), (TCP6_PATH, AF_INET6)] {
        match std::fs::read(path) {
            Ok(text) => parse_table(&text, path, family, states, &mut out)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound && family == AF_INET6 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Parse the whole text of table `path` (header line, then one socket per line) and append
/// the sockets whose state is in `states` to `out`.
fn parse_table(text: &[u8], path: &str, family: u8, states: u32, out: &mut Vec<TcpSocket>) -> io::Result<()> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let line = std::str::from_utf8(line).map_err(|_| malformed(path, line_no, "not UTF-8"))?;
        if line_no == 1 {
            if !line.trim_start().starts_with("sl ") {
                return Err(malformed(path, line_no, "missing header"));
            }
            continue;
        }
        let sock = parse_socket(line, family).ok_or_else(|| malformed(path, line_no, line.trim()))?;
        if u32::from(sock.state) < u32::BITS && states & (1 << sock.state) != 0 {
            out.push(sock);
        }
    }
    Ok(())
}

/// Decode one socket line of a table of `family` sockets, `None` if it is malformed. Only
/// the first ten columns are read: the kernel prints more for full sockets than for
/// request and time-wait sockets.
fn parse_socket(line: &str, family: u8) -> Option<TcpSocket> {
    let mut columns = line.split_ascii_whitespace();
    let _slot = columns.next()?; // "sl": position in the table
    let (local_addr, local_port) = parse_endpoint(columns.next()?, family)?;
    let (peer_addr, peer_port) = parse_endpoint(columns.next()?, family)?;
    let state = u8::try_from(hex_u32(columns.next()?)?).ok()?;
    let (tx_queue, rx_queue) = columns.next()?.split_once(':')?;
    let _timer = columns.next()?; // "tr:tm->when"
    let _retransmits = columns.next()?; // "retrnsmt"
    let uid = columns.next()?.parse().ok()?;
    let _probes = columns.next()?; // "timeout": zero-window probes sent
    let inode = columns.next()?.parse().ok()?;
    Some(TcpSocket {
        family,
        state,
        recv_q: hex_u32(rx_queue)?,
        send_q: hex_u32(tx_queue)?,
        local_addr,
        local_port,
        peer_addr,
        peer_port,
        inode,
        uid,
        bound_ifindex: 0,
        v6only: None,
        cgroup_id: None,
        cookie: 0,
    })
}

/// Decode `ADDR:PORT` (both hex), `ADDR` being 8 hex digits for `AF_INET` and 32 for
/// `AF_INET6`, each group of 8 a host-order `u32` holding 4 network-order bytes.
fn parse_endpoint(text: &str, family: u8) -> Option<(IpAddr, u16)> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::try_from(hex_u32(port)?).ok()?;
    let addr = match (family, addr.len()) {
        (AF_INET, 8) => IpAddr::V4(Ipv4Addr::from(hex_u32(addr)?.to_ne_bytes())),
        (AF_INET6, 32) => {
            let mut octets = [0u8; 16];
            for (i, word) in octets.chunks_exact_mut(4).enumerate() {
                word.copy_from_slice(&hex_u32(addr.get(i * 8..i * 8 + 8)?)?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some((addr, port))
}

/// Value of `text` read as 1 to 8 hex digits (no sign, no prefix), `None` otherwise.
fn hex_u32(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sock_diag::{TCP_ESTABLISHED, TCP_LISTEN, dump_tcp};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, Instant};

    /// Header and lines of `/proc/net/tcp` as printed on x86_64 (padded to 149 columns):
    /// a listener on 127.0.0.1:3000 with 2 connections waiting, an established connection,
    /// and a time-wait socket.
    const TCP4_SAMPLE: &str = concat!(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     \n",
        "   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000002 00:00000000 00000000  1000        0 390 1 00000000cce4a8bf 100 0 0 10 0                       \n",
        "   1: 0100007F:0BB8 0100007F:A2C4 01 0000000A:00000014 01:00000014 00000000     0        0 424242 2 0000000012345678 20 4 30 10 -1                   \n",
        "   2: 0100007F:A2C6 0100007F:0BB8 06 00000000:00000000 03:00001770 00000000     0        0 0 3 00000000deadbeef                                      \n",
    );

    /// Header and lines of `/proc/net/tcp6` as printed on x86_64: listeners on `::1`, on
    /// `::` and on `2001:db8::1`, and a connection between IPv4-mapped `::ffff:127.0.0.1`
    /// addresses.
    const TCP6_SAMPLE: &str = concat!(
        "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
        "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5001 1 0000000000000000 100 0 0 10 0\n",
        "   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000    33        0 5002 1 0000000000000000 100 0 0 10 0\n",
        "   2: B80D0120000000000000000001000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5003 1 0000000000000000 100 0 0 10 0\n",
        "   3: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 5004 1 0000000000000000 20 4 30 10 -1\n",
    );

    fn parse(text: &str, family: u8, states: u32) -> io::Result<Vec<TcpSocket>> {
        let mut out = Vec::new();
        parse_table(text.as_bytes(), "sample", family, states, &mut out)?;
        Ok(out)
    }

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().unwrap())
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse().unwrap())
    }

    fn endpoints(socks: &[TcpSocket]) -> Vec<(IpAddr, u16, IpAddr, u16)> {
        socks.iter().map(|s| (s.local_addr, s.local_port, s.peer_addr, s.peer_port)).collect()
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_ipv4_sample() {
        let all = parse(TCP4_SAMPLE, AF_INET, u32::MAX).unwrap();
        assert_eq!(
            all[0],
            TcpSocket {
                family: AF_INET,
                state: TCP_LISTEN,
                recv_q: 2,
                send_q: 0,
                local_addr: v4("127.0.0.1"),
                local_port: 3000,
                peer_addr: v4("0.0.0.0"),
                peer_port: 0,
                inode: 390,
                uid: 1000,
                bound_ifindex: 0,
                v6only: None,
                cgroup_id: None,
                cookie: 0,
            }
        );
        let (conn, time_wait) = (all[1], all[2]);
        assert_eq!((conn.state, conn.send_q, conn.recv_q, conn.inode), (TCP_ESTABLISHED, 10, 20, 424242));
        assert_eq!((conn.peer_addr, conn.peer_port), (v4("127.0.0.1"), 41668));
        assert_eq!((time_wait.state, time_wait.local_port, time_wait.inode), (6, 41670, 0));

        let listeners = parse(TCP4_SAMPLE, AF_INET, 1 << TCP_LISTEN).unwrap();
        assert_eq!(listeners, [all[0]]);
        assert!(parse(TCP4_SAMPLE, AF_INET, 1 << 2).unwrap().is_empty());
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_ipv6_sample() {
        let all = parse(TCP6_SAMPLE, AF_INET6, u32::MAX).unwrap();
        let any = v6("::");
        let mapped = v6("::ffff:127.0.0.1");
        assert_eq!(
            endpoints(&all),
            [
                (v6("::1"), 8080, any, 0),
                (any, 80, any, 0),
                (v6("2001:db8::1"), 443, any, 0),
                (mapped, 8080, mapped, 54321),
            ]
        );
        assert!(all.iter().all(|s| s.family == AF_INET6));
        assert_eq!(all.iter().map(|s| (s.uid, s.inode)).collect::<Vec<_>>()[..2], [(0, 5001), (33, 5002)]);
        let conns = parse(TCP6_SAMPLE, AF_INET6, 1 << TCP_ESTABLISHED).unwrap();
        assert_eq!(endpoints(&conns), [(mapped, 8080, mapped, 54321)]);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let header = TCP4_SAMPLE.lines().next().unwrap();
        let line = TCP4_SAMPLE.lines().nth(1).unwrap();
        let bad = [
            line.replace("0100007F:0BB8", "0100007F0BB8"), // no port separator
            line.replace("0100007F:0BB8", "100007F:0BB8"), // short address
            line.replace("0100007F:0BB8", "0100007F:10BB8"), // port over 16 bits
            line.replace(" 0A ", " 0G "),                  // not hex
            line.replace(" 0A ", " +A "),                  // sign
            line.replace(" 1000 ", " -1 "),                // negative uid
            line.replace(" 390 ", " x "),                  // inode
            line[..40].to_owned(),                         // truncated
            String::new(),                                 // empty
        ];
        for bad_line in bad {
            let text = format!("{header}\n{line}\n{bad_line}\n");
            let err = parse(&text, AF_INET, u32::MAX).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(err.to_string().starts_with("sample line 3: malformed"), "{err} for {bad_line:?}");
        }
        // An IPv4 line in an IPv6 table, a missing header, non-UTF-8.
        let err = parse(&format!("{header}\n{line}\n"), AF_INET6, u32::MAX).unwrap_err();
        assert!(err.to_string().starts_with("sample line 2: malformed"), "{err}");
        let err = parse(&format!("{line}\n"), AF_INET, u32::MAX).unwrap_err();
        assert!(err.to_string().starts_with("sample line 1: malformed: missing header"), "{err}");
        let mut out = Vec::new();
        let err = parse_table(b"  sl local\n\xff\n", "sample", AF_INET, 1, &mut out).unwrap_err();
        assert!(err.to_string().starts_with("sample line 2: malformed: not UTF-8"), "{err}");
        // A header alone is an empty table.
        assert!(parse(&format!("{header}\n"), AF_INET, u32::MAX).unwrap().is_empty());
    }

    /// sockfs inode of a socket, the number the `inode` column must show.
    fn socket_inode(fd: &impl AsRawFd) -> u64 {
        std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("stat socket fd").ino()
    }

    fn find(socks: &[TcpSocket], inode: u64) -> Vec<TcpSocket> {
        socks.iter().filter(|s| s.inode == inode).copied().collect()
    }

    #[test]
    fn listeners_match_sock_diag() {
        let listeners = [TcpListener::bind("127.0.0.1:0").unwrap(), TcpListener::bind("[::1]:0").unwrap()];
        // One connection each listener never accepts: both accept queues hold 1.
        let _clients = listeners.each_ref().map(|l| TcpStream::connect(l.local_addr().unwrap()).unwrap());
        let inodes = listeners.each_ref().map(socket_inode);
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };

        // The handshake's final ACK may still be in flight on loopback: poll briefly.
        let deadline = Instant::now() + Duration::from_secs(2);
        let procfs = loop {
            let socks = read_tcp(1 << TCP_LISTEN).expect("read_tcp");
            let queued = inodes.iter().all(|&i| find(&socks, i).first().is_some_and(|s| s.recv_q == 1));
            if queued || Instant::now() > deadline {
                break socks;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let diag = dump_tcp(1 << TCP_LISTEN).expect("dump_tcp");
        for (listener, inode) in listeners.iter().zip(inodes) {
            let local = listener.local_addr().unwrap();
            let (ours, theirs) = (find(&procfs, inode), find(&diag, inode));
            assert_eq!((ours.len(), theirs.len()), (1, 1), "{local}: {ours:?} vs {theirs:?}");
            let (ours, theirs) = (ours[0], theirs[0]);
            assert_eq!((ours.local_addr, ours.local_port), (local.ip(), local.port()));
            assert_eq!((ours.uid, ours.recv_q), (euid, 1), "{ours:?}");
            // Equal to sock_diag's row once the fields procfs lacks are copied over.
            let filled = TcpSocket {
                send_q: theirs.send_q,
                bound_ifindex: theirs.bound_ifindex,
                v6only: theirs.v6only,
                cgroup_id: theirs.cgroup_id,
                cookie: theirs.cookie,
                ..ours
            };
            assert_eq!(filled, theirs);
        }
    }

    #[test]
    fn thread_self_follows_the_thread_namespace() {
        let host_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host_inode = socket_inode(&host_listener);
        let (inside, inside_inode, self_table) = std::thread::spawn(|| {
            // SAFETY: unshare(2) with CLONE_NEWNET takes only an integer and moves just this
            // thread, which exits at the end of the closure, into a new network namespace.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "unshare(CLONE_NEWNET): {}", io::Error::last_os_error());
            // The new namespace's loopback is down: bind the wildcard address.
            let listener = TcpListener::bind("0.0.0.0:0").unwrap();
            let socks = read_tcp(1 << TCP_LISTEN).expect("read_tcp in new namespace");
            let self_table = std::fs::read_to_string("/proc/self/net/tcp").unwrap();
            (socks, socket_inode(&listener), self_table)
        })
        .join()
        .unwrap();
        assert_eq!(find(&inside, inside_inode).len(), 1, "{inside:?}");
        assert!(find(&inside, host_inode).is_empty(), "host listener seen from the new namespace");
        // `/proc/self` is the main thread, still in the host namespace.
        let self_socks = parse(&self_table, AF_INET, 1 << TCP_LISTEN).unwrap();
        assert_eq!(find(&self_socks, host_inode).len(), 1);
        assert!(find(&self_socks, inside_inode).is_empty());
        assert_eq!(find(&read_tcp(1 << TCP_LISTEN).unwrap(), host_inode).len(), 1);
    }
}
