//! TCP and UDP sockets read from the kernel's text tables `/proc/net/{tcp,tcp6,udp,udp6}`.
//!
//! This module is the procfs alternative to [`crate::inet_diag`]: it parses the lines
//! printed by the kernel's `tcp4_seq_show`/`tcp6_seq_show` (full sockets by
//! `get_tcp4_sock`, request sockets by `get_openreq4`, time-wait sockets by
//! `get_timewait4_sock`) and `udp4_seq_show`/`udp6_seq_show` into the same [`InetSocket`],
//! in the same order (IPv4 sockets first, then IPv6 ones).
//!
//! The tables are read through `/proc/thread-self/net/`, not `/proc/net/` (a symlink to
//! `self/net`): `/proc/PID/net` shows the network namespace of task `PID`, and `self` is
//! the thread-group leader, so a helper thread that joined another namespace with
//! [`crate::netns::run_in`] would read the main thread's sockets there.
//!
//! Columns: `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid
//! timeout inode`, then for TCP full sockets `refcnt pointer rto ato quick cwnd ssthresh`
//! and for UDP `ref pointer drops`. Addresses are `__be32` words printed with `%08X`, i.e.
//! as host-order numbers: each 32-bit word turns back into its network-order bytes with
//! `to_ne_bytes`. The timer is `tr` (the same codes as netlink's `idiag_timer`),
//! `tm->when` in clock ticks (converted to ms) and, like netlink, `retrnsmt`
//! (`icsk_retransmits`) for a retransmit timer but the `timeout` column
//! (`icsk_probes_out`) for keepalive and zero-window-probe timers. For a request socket
//! `retrnsmt` is its `num_timeout` where netlink reports `num_retrans`.
//!
//! The text lacks several [`InetSocket`] fields, which are `None`: `bound_ifindex`,
//! `v6only`, `cgroup_id`, `cookie`, `info`, `congestion`, `skmem`, and `drops` of TCP.
//! `send_q` of a TCP listener is the `tx_queue` column (normally 0), not the `listen(2)`
//! backlog netlink reports: callers must treat it as unknown.
//!
//! The file is produced in several reads, so it is not an atomic snapshot: a socket created
//! or closed meanwhile may be missing or appear twice.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::inet_socket::{InetProtocol, InetSocket, SocketTimer, TCP_NEW_SYN_RECV, TCP_SYN_RECV, TimerKind};
use crate::lines::{for_each_line_of, malformed};

/// `AF_INET` as the `u8` of [`InetSocket::family`].
const AF_INET: u8 = libc::AF_INET as u8;
/// `AF_INET6` as the `u8` of [`InetSocket::family`].
const AF_INET6: u8 = libc::AF_INET6 as u8;
/// Longest line accepted: the kernel pads TCP lines to 149 bytes, UDP lines are shorter.
const MAX_LINE: usize = 512;

/// TCP sockets whose state is in `states` (bit mask `1 << state`; `1 << TCP_NEW_SYN_RECV`
/// selects `SYN_RECV` lines, as netlink does) from `/proc/thread-self/net/tcp` and `tcp6`,
/// in the calling thread's network namespace. A missing `tcp6` (IPv6 disabled) yields no
/// IPv6 sockets.
///
/// Errors: a table cannot be read, or a line of it is malformed (`InvalidData`, naming the
/// file and the line number).
pub fn read_tcp(states: u32) -> io::Result<Vec<InetSocket>> {
    read_tables(InetProtocol::Tcp, with_request_sockets(states))
}

/// `states`, plus `TCP_SYN_RECV` if it has `TCP_NEW_SYN_RECV`: the table shows request
/// sockets as `SYN_RECV`.
fn with_request_sockets(states: u32) -> u32 {
    match states & (1 << TCP_NEW_SYN_RECV) {
        0 => states,
        _ => states | (1 << TCP_SYN_RECV),
    }
}

/// Every UDP socket from `/proc/thread-self/net/udp` and `udp6`, as [`read_tcp`] does.
pub fn read_udp() -> io::Result<Vec<InetSocket>> {
    read_tables(InetProtocol::Udp, u32::MAX)
}

fn read_tables(protocol: InetProtocol, states: u32) -> io::Result<Vec<InetSocket>> {
    let mut out = Vec::new();
    if states == 0 {
        return Ok(out);
    }
    let table = Table { protocol, states, ms_per_tick: 1000.0 / procfs::ticks_per_second() as f64 };
    for family in [AF_INET, AF_INET6] {
        let path = table.path(family);
        let found = for_each_line_of(&path, MAX_LINE, |line_no, line| {
            table.add_line(family, &path, line_no, line, &mut out)
        })?;
        if !found && family == AF_INET {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{path} does not exist")));
        }
    }
    Ok(out)
}

/// What decoding one table needs besides its lines.
struct Table {
    protocol: InetProtocol,
    states: u32,
    /// Milliseconds per clock tick, the unit of `tm->when`.
    ms_per_tick: f64,
}

impl Table {
    /// The calling thread's table of `family` sockets.
    fn path(&self, family: u8) -> String {
        let v6 = if family == AF_INET6 { "6" } else { "" };
        format!("/proc/thread-self/net/{}{v6}", self.protocol.name())
    }

    /// Decode line `line_no` of table `path` (the first is the header) and keep its socket
    /// if its state is wanted.
    fn add_line(
        &self,
        family: u8,
        path: &str,
        line_no: usize,
        line: &[u8],
        out: &mut Vec<InetSocket>,
    ) -> io::Result<()> {
        let line = std::str::from_utf8(line).map_err(|_| malformed(path, line_no, "not UTF-8"))?;
        if line_no == 1 {
            return match line.trim_start().starts_with("sl ") {
                true => Ok(()),
                false => Err(malformed(path, line_no, "missing header")),
            };
        }
        let socket = self.parse_socket(line, family).ok_or_else(|| malformed(path, line_no, line.trim()))?;
        if u32::from(socket.state) < u32::BITS && self.states & (1 << socket.state) != 0 {
            out.push(socket);
        }
        Ok(())
    }

    /// Decode one socket line of a table of `family` sockets, `None` if it is malformed.
    fn parse_socket(&self, line: &str, family: u8) -> Option<InetSocket> {
        let mut columns = line.split_ascii_whitespace();
        let _slot = columns.next()?;
        let (local_addr, local_port) = parse_endpoint(columns.next()?, family)?;
        let (peer_addr, peer_port) = parse_endpoint(columns.next()?, family)?;
        let state = u8::try_from(hex_u32(columns.next()?)?).ok()?;
        let (tx_queue, rx_queue) = columns.next()?.split_once(':')?;
        let (timer_code, when) = columns.next()?.split_once(':')?;
        let retransmits = hex_u32(columns.next()?)?;
        let uid = columns.next()?.parse().ok()?;
        let probes = u32::try_from(columns.next()?.parse::<i64>().ok()?).ok()?;
        let inode = columns.next()?.parse().ok()?;
        let drops = match self.protocol {
            InetProtocol::Udp => Some(columns.nth(2)?.parse().ok()?),
            InetProtocol::Tcp => None,
        };
        let kind = TimerKind::from_code(u8::try_from(hex_u32(timer_code)?).ok()?);
        let ticks = hex_u64(when)?;
        let timer = kind.map(|kind| SocketTimer {
            kind,
            expires_ms: (ticks as f64 * self.ms_per_tick).round() as i64,
            retrans: match kind {
                TimerKind::KeepAlive | TimerKind::ZeroWindowProbe => probes,
                _ => retransmits,
            },
        });
        Some(InetSocket {
            family,
            protocol: self.protocol,
            state,
            recv_q: hex_u32(rx_queue)?,
            send_q: hex_u32(tx_queue)?,
            local_addr,
            local_port,
            peer_addr,
            peer_port,
            inode,
            uid,
            bound_ifindex: None,
            v6only: None,
            cgroup_id: None,
            cookie: None,
            timer,
            info: None,
            congestion: None,
            skmem: None,
            drops,
        })
    }
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
    u32::try_from(hex_u64(text).filter(|_| text.len() <= 8)?).ok()
}

/// Value of `text` read as 1 to 16 hex digits (no sign, no prefix), `None` otherwise.
fn hex_u64(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inet_socket::{TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN, TCP_TIME_WAIT};
    use crate::lines::for_each_line;
    use std::net::TcpListener;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    /// `/proc/net/tcp` as printed on x86_64 (padded to 149 columns): a listener on
    /// 127.0.0.1:3000 with 2 connections waiting, an established connection with a
    /// retransmit timer, a time-wait socket, a request socket and a keepalive timer.
    const TCP4_SAMPLE: &str = concat!(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     \n",
        "   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000002 00:00000000 00000000  1000        0 390 1 00000000cce4a8bf 100 0 0 10 0                       \n",
        "   1: 0100007F:0BB8 0100007F:A2C4 01 0000000A:00000014 01:00000014 00000002     0        0 424242 2 0000000012345678 20 4 30 10 -1                   \n",
        "   2: 0100007F:A2C6 0100007F:0BB8 06 00000000:00000000 03:00001770 00000000     0        0 0 3 00000000deadbeef                                      \n",
        "   3: 0100007F:0BB8 0100007F:A2C8 03 00000000:00000000 01:00000064 00000001     0        0 0 0 0000000000000000                                      \n",
        "   4: 0100007F:0BB8 0100007F:A2CA 01 00000000:00000000 02:00001B58 00000000     0        3 424243 2 0000000012345678 20 4 30 10 -1                   \n",
    );

    /// `/proc/net/tcp6`: listeners on `::1`, `::`, `2001:db8::1`, and a connection between
    /// IPv4-mapped addresses.
    const TCP6_SAMPLE: &str = concat!(
        "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
        "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5001 1 0000000000000000 100 0 0 10 0\n",
        "   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000    33        0 5002 1 0000000000000000 100 0 0 10 0\n",
        "   2: B80D0120000000000000000001000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5003 1 0000000000000000 100 0 0 10 0\n",
        "   3: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 5004 1 0000000000000000 20 4 30 10 -1\n",
    );

    /// `/proc/net/udp`: a bound socket with 2 drops and a connected one.
    const UDP4_SAMPLE: &str = concat!(
        "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops             \n",
        "  100: 0100007F:0035 00000000:0000 07 00000000:00000300 00:00000000 00000000   101        0 7001 2 0000000000000000 2            \n",
        "  200: 0100007F:A000 0100007F:0035 01 00000100:00000000 00:00000000 00000000     0        0 7002 2 0000000000000000 0            \n",
    );

    fn parse(text: &str, protocol: InetProtocol, family: u8, states: u32) -> io::Result<Vec<InetSocket>> {
        let table = Table { protocol, states, ms_per_tick: 10.0 };
        let mut out = Vec::new();
        for_each_line(text.as_bytes(), "sample", MAX_LINE, |line_no, line| {
            table.add_line(family, "sample", line_no, line, &mut out)
        })?;
        Ok(out)
    }

    fn tcp4(states: u32) -> Vec<InetSocket> {
        parse(TCP4_SAMPLE, InetProtocol::Tcp, AF_INET, states).unwrap()
    }

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().unwrap())
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse().unwrap())
    }

    fn timer(kind: TimerKind, expires_ms: i64, retrans: u32) -> Option<SocketTimer> {
        Some(SocketTimer { kind, expires_ms, retrans })
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_ipv4_tcp_sample() {
        let all = tcp4(u32::MAX);
        assert_eq!(
            all[0],
            InetSocket {
                family: AF_INET,
                protocol: InetProtocol::Tcp,
                state: TCP_LISTEN,
                recv_q: 2,
                send_q: 0,
                local_addr: v4("127.0.0.1"),
                local_port: 3000,
                peer_addr: v4("0.0.0.0"),
                peer_port: 0,
                inode: 390,
                uid: 1000,
                bound_ifindex: None,
                v6only: None,
                cgroup_id: None,
                cookie: None,
                timer: None,
                info: None,
                congestion: None,
                skmem: None,
                drops: None,
            }
        );
        let conn = &all[1];
        assert_eq!((conn.state, conn.send_q, conn.recv_q, conn.inode), (TCP_ESTABLISHED, 10, 20, 424242));
        assert_eq!((conn.peer_addr, conn.peer_port), (v4("127.0.0.1"), 41668));
        assert_eq!(conn.timer, timer(TimerKind::Retransmit, 200, 2));
        let time_wait = &all[2];
        assert_eq!((time_wait.state, time_wait.local_port, time_wait.inode), (TCP_TIME_WAIT, 41670, 0));
        assert_eq!(time_wait.timer, timer(TimerKind::TimeWait, 60_000, 0));
        assert_eq!((all[3].state, all[3].timer), (TCP_SYN_RECV, timer(TimerKind::Retransmit, 1000, 1)));
        // A keepalive timer counts probes (the `timeout` column), as netlink does.
        assert_eq!(all[4].timer, timer(TimerKind::KeepAlive, 70_000, 3));

        assert_eq!(tcp4(1 << TCP_LISTEN), [all[0].clone()]);
        assert_eq!(tcp4(1 << TCP_SYN_RECV), [all[3].clone()]);
        assert!(tcp4(1 << 2).is_empty());
    }

    #[test]
    fn new_syn_recv_selects_request_sockets() {
        assert!(tcp4(1 << TCP_NEW_SYN_RECV).is_empty(), "the table shows them as SYN_RECV");
        assert_eq!(tcp4(with_request_sockets(1 << TCP_NEW_SYN_RECV)).len(), 1);
        assert_eq!(with_request_sockets(1 << TCP_LISTEN), 1 << TCP_LISTEN);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_ipv6_tcp_sample() {
        let all = parse(TCP6_SAMPLE, InetProtocol::Tcp, AF_INET6, u32::MAX).unwrap();
        let any = v6("::");
        let mapped = v6("::ffff:127.0.0.1");
        let endpoints: Vec<_> =
            all.iter().map(|s| (s.local_addr, s.local_port, s.peer_addr, s.peer_port)).collect();
        assert_eq!(
            endpoints,
            [
                (v6("::1"), 8080, any, 0),
                (any, 80, any, 0),
                (v6("2001:db8::1"), 443, any, 0),
                (mapped, 8080, mapped, 54321)
            ]
        );
        assert!(all.iter().all(|s| s.family == AF_INET6));
        assert_eq!((all[1].uid, all[1].inode), (33, 5002));
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_udp_sample_with_drops() {
        let all = parse(UDP4_SAMPLE, InetProtocol::Udp, AF_INET, u32::MAX).unwrap();
        let summary: Vec<_> = all
            .iter()
            .map(|s| (s.state, s.local_port, s.peer_port, s.recv_q, s.send_q, s.inode, s.drops))
            .collect();
        assert_eq!(
            summary,
            [
                (TCP_CLOSE, 53, 0, 0x300, 0, 7001, Some(2)),
                (TCP_ESTABLISHED, 40960, 53, 0, 0x100, 7002, Some(0))
            ]
        );
        assert!(all.iter().all(|s| s.protocol == InetProtocol::Udp && s.timer.is_none()));
        // A UDP line without its drops column is malformed.
        let cut = UDP4_SAMPLE.replace(" 2            \n", "\n");
        assert!(parse(&cut, InetProtocol::Udp, AF_INET, u32::MAX).is_err());
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let header = TCP4_SAMPLE.lines().next().unwrap();
        let line = TCP4_SAMPLE.lines().nth(1).unwrap();
        let bad = [
            line.replace("0100007F:0BB8", "0100007F0BB8"),
            line.replace("0100007F:0BB8", "100007F:0BB8"),
            line.replace("0100007F:0BB8", "0100007F:10BB8"),
            line.replace(" 0A ", " 0G "),
            line.replace(" 0A ", " +A "),
            line.replace(" 00:00000000 ", " 00-00000000 "),
            line.replace(" 00:00000000 ", " 00:00000000000000000 "),
            line.replace(" 1000 ", " -1 "),
            line.replace(" 390 ", " x "),
            line[..40].to_owned(),
            String::new(),
        ];
        for bad_line in bad {
            let text = format!("{header}\n{line}\n{bad_line}\n");
            let err = parse(&text, InetProtocol::Tcp, AF_INET, u32::MAX).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(err.to_string().starts_with("sample line 3: malformed"), "{err} for {bad_line:?}");
        }
        let err = parse(&format!("{header}\n{line}\n"), InetProtocol::Tcp, AF_INET6, u32::MAX).unwrap_err();
        assert!(err.to_string().starts_with("sample line 2: malformed"), "{err}");
        let err = parse(&format!("{line}\n"), InetProtocol::Tcp, AF_INET, u32::MAX).unwrap_err();
        assert!(err.to_string().starts_with("sample line 1: malformed: missing header"), "{err}");
        let table = Table { protocol: InetProtocol::Tcp, states: 1, ms_per_tick: 10.0 };
        let err = table.add_line(AF_INET, "sample", 2, b"\xff", &mut Vec::new()).unwrap_err();
        assert!(err.to_string().starts_with("sample line 2: malformed: not UTF-8"), "{err}");
        assert!(parse(&format!("{header}\n"), InetProtocol::Tcp, AF_INET, u32::MAX).unwrap().is_empty());
    }

    fn socket_inode(fd: &impl AsRawFd) -> u64 {
        std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("stat socket fd").ino()
    }

    fn has(sockets: &[InetSocket], inode: u64) -> bool {
        sockets.iter().any(|s| s.inode == inode)
    }

    #[test]
    fn thread_self_follows_the_thread_namespace() {
        let host_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host_inode = socket_inode(&host_listener);
        let (inside, inside_inode, self_table) = std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
            // The new namespace's loopback is down: bind the wildcard address.
            let listener = TcpListener::bind("0.0.0.0:0").unwrap();
            let socks = read_tcp(1 << TCP_LISTEN).expect("read_tcp in new namespace");
            let self_table = std::fs::read_to_string("/proc/self/net/tcp").unwrap();
            (socks, socket_inode(&listener), self_table)
        })
        .join()
        .unwrap();
        assert!(has(&inside, inside_inode), "{inside:?}");
        assert!(!has(&inside, host_inode), "host listener seen from the new namespace");
        // `/proc/self` is the main thread, still in the host namespace.
        let self_socks = parse(&self_table, InetProtocol::Tcp, AF_INET, 1 << TCP_LISTEN).unwrap();
        assert!(has(&self_socks, host_inode) && !has(&self_socks, inside_inode));
        assert!(has(&read_tcp(1 << TCP_LISTEN).unwrap(), host_inode));
    }
}
