//! Real sockets in every state the tests can make, each test in a network namespace of its
//! own (so the whole dump is known): every socket must appear with the right state, ports
//! and inode in the netlink dump AND the procfs read, both sources must agree where both
//! know a field, and both must match what `ss` (iproute2) prints for the namespace.
//!
//! Needs root (`unshare(CLONE_NEWNET)`) and `ip`/`ss` from iproute2, as the project's
//! tests do.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::process::Command;
use std::time::{Duration, Instant};

use kql_sources::inet_diag::dump_inet;
use kql_sources::inet_socket::*;
use kql_sources::interfaces::interface_name;
use kql_sources::proc_net_inet::{read_tcp, read_udp};
use kql_sources::proc_net_unix::read_unix;
use kql_sources::unix_diag::dump_unix;
use kql_sources::unix_socket::{UnixSocket, UnixType};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, connect, listen, setsockopt,
    socket, socketpair, sockopt,
};

/// Run `f` on a thread of a fresh network namespace with its loopback up; commands it
/// spawns (`ss`) run in that namespace too.
fn in_new_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("unshare(CLONE_NEWNET): root needed");
                let up = Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("run ip");
                assert!(up.success(), "ip link set lo up");
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// sockfs inode of a socket descriptor (fstat through `/proc/self/fd`).
fn inode(fd: &impl AsRawFd) -> u64 {
    std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("stat socket fd").ino()
}

/// `ss ARGS` run in the calling thread's namespace, one entry per socket: its first line
/// and the tab-indented lines that continue it, joined.
fn ss(args: &[&str]) -> Vec<String> {
    let out = Command::new("ss").args(args).output().expect("run ss");
    assert!(out.status.success(), "ss {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let mut entries: Vec<String> = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        match (line.starts_with(char::is_whitespace), entries.last_mut()) {
            (true, Some(last)) => last.push_str(line),
            _ => entries.push(line.to_owned()),
        }
    }
    entries
}

/// The value of `key:VALUE` among the words of an `ss` entry.
fn ss_field<'a>(entry: &'a str, key: &str) -> Option<&'a str> {
    entry.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix(':'))
}

/// The state as `ss` names it.
fn ss_state(state: u8) -> &'static str {
    const NAMES: [&str; 12] = [
        "UNKNOWN",
        "ESTAB",
        "SYN-SENT",
        "SYN-RECV",
        "FIN-WAIT-1",
        "FIN-WAIT-2",
        "TIME-WAIT",
        "UNCONN",
        "CLOSE-WAIT",
        "LAST-ACK",
        "LISTEN",
        "CLOSING",
    ];
    NAMES[usize::from(state)]
}

/// The port of an `ss` address column (`addr:port`, `*` for 0).
fn ss_port(column: &str) -> u16 {
    match column.rsplit_once(':').expect("addr:port").1 {
        "*" => 0,
        port => port.parse().expect("port"),
    }
}

/// Poll `f` until it holds (loopback handshakes and closes finish asynchronously).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A TCP listener on `addr` with `backlog`, made through nix so the backlog is ours.
fn tcp_listener(addr: SocketAddr, backlog: i32, v6only: Option<bool>) -> TcpListener {
    let fd = match addr {
        SocketAddr::V4(a) => {
            let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
            bind(fd.as_raw_fd(), &SockaddrIn::from(a)).unwrap();
            fd
        }
        SocketAddr::V6(a) => {
            let fd = socket(AddressFamily::Inet6, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
            if let Some(v6only) = v6only {
                setsockopt(&fd, sockopt::Ipv6V6Only, &v6only).unwrap();
            }
            bind(fd.as_raw_fd(), &SockaddrIn6::from(a)).unwrap();
            fd
        }
    };
    listen(&fd, Backlog::new(backlog).unwrap()).unwrap();
    TcpListener::from(fd)
}

/// Set `TCP_DEFER_ACCEPT` (which nix does not wrap): the listener then drops a bare final
/// ACK and keeps the connection a request socket (`SYN_RECV`) until data arrives.
fn defer_accept(listener: &TcpListener, seconds: libc::c_int) {
    // SAFETY: `seconds` is a live c_int whose exact size is passed; setsockopt only reads it,
    // and the descriptor is a valid socket borrowed for the call.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&raw const seconds).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "TCP_DEFER_ACCEPT: {}", std::io::Error::last_os_error());
}

/// A non-blocking connect to `to` that stays in SYN_SENT (the peer drops the SYN).
fn syn_sent_to(to: SocketAddr) -> OwnedFd {
    let SocketAddr::V4(to) = to else { panic!("IPv4 only") };
    let fd =
        socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)
            .unwrap();
    assert_eq!(connect(fd.as_raw_fd(), &SockaddrIn::from(to)), Err(nix::errno::Errno::EINPROGRESS));
    fd
}

/// The identity of a TCP/UDP socket both sources and `ss` show.
type InetKey = (u8, u8, IpAddr, u16, IpAddr, u16, u64);

fn inet_key(s: &InetSocket) -> InetKey {
    (s.family, s.state, s.local_addr, s.local_port, s.peer_addr, s.peer_port, s.inode)
}

fn find(sockets: &[InetSocket], state: u8, local_port: u16, peer_port: u16) -> &InetSocket {
    let found: Vec<_> = sockets
        .iter()
        .filter(|s| s.state == state && s.local_port == local_port && s.peer_port == peer_port)
        .collect();
    assert_eq!(found.len(), 1, "one {state}/{local_port}/{peer_port} in {sockets:#?}");
    found[0]
}

/// Netlink and procfs list the same sockets, and agree on every field both know.
fn assert_sources_agree(netlink: &[InetSocket], procfs: &[InetSocket]) {
    let keys = |v: &[InetSocket]| v.iter().map(inet_key).collect::<BTreeSet<_>>();
    assert_eq!(keys(netlink), keys(procfs), "netlink and procfs list different sockets");
    for n in netlink {
        let p = procfs.iter().find(|p| inet_key(p) == inet_key(n)).unwrap();
        assert_eq!((p.protocol, p.uid, p.recv_q), (n.protocol, n.uid, n.recv_q), "{n:?} vs {p:?}");
        if n.state != TCP_LISTEN {
            assert_eq!(p.send_q, n.send_q, "send_q of {n:?}");
        }
        let timer = |s: &InetSocket| s.timer.map(|t| (t.kind, t.retrans));
        assert_eq!(timer(p), timer(n), "timer of {n:?} vs {p:?}");
        if p.protocol == InetProtocol::Udp {
            assert_eq!(p.drops, n.drops, "drops of {n:?}");
        }
        let unknown_to_procfs = (p.bound_ifindex, p.cookie, p.cgroup_id, p.info, &p.congestion, p.skmem);
        assert_eq!(unknown_to_procfs, (None, None, None, None, &None, None));
    }
}

#[test]
fn tcp_sockets_in_every_state() {
    in_new_netns(|| {
        let lo4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let server = tcp_listener("127.0.0.1:0".parse().unwrap(), 16, None);
        let port = server.local_addr().unwrap().port();
        let connect = || TcpStream::connect(server.local_addr().unwrap()).unwrap();
        let local_port = |s: &TcpStream| s.local_addr().unwrap().port();

        // ESTABLISHED both ways, with some data left unread on the accepted side.
        let mut established = connect();
        established.write_all(b"hello").unwrap();
        let (accepted, _) = server.accept().unwrap();
        // CLOSE_WAIT: the server side closes first; its orphan goes FIN_WAIT2.
        let close_wait = connect();
        drop(server.accept().unwrap().0);
        // TIME_WAIT: the client closes first, then the server side.
        let time_wait = connect();
        let time_wait_port = local_port(&time_wait);
        let (time_wait_peer, _) = server.accept().unwrap();
        drop(time_wait);
        eventually("the peer to see the FIN", || time_wait_peer.peek(&mut [0]).ok() == Some(0));
        drop(time_wait_peer);
        // SYN_RECV: a listener deferring accept keeps a handshake without data as a request.
        let deferring = tcp_listener("127.0.0.1:0".parse().unwrap(), 16, None);
        defer_accept(&deferring, 30);
        let deferred = TcpStream::connect(deferring.local_addr().unwrap()).unwrap();
        // SYN_SENT: a full accept queue (backlog 0 holds one) drops further SYNs.
        let full = tcp_listener("127.0.0.1:0".parse().unwrap(), 0, None);
        let _queued = TcpStream::connect(full.local_addr().unwrap()).unwrap();
        let syn_sent = syn_sent_to(full.local_addr().unwrap());
        // LISTEN on IPv6, v6-only and dual-stack.
        let v6only = tcp_listener("[::1]:0".parse().unwrap(), 7, Some(true));
        let dual = tcp_listener("[::]:0".parse().unwrap(), 8, Some(false));

        let netlink = || dump_inet(InetProtocol::Tcp, ALL_STATES).expect("dump_inet");
        eventually("every state", || {
            let socks = netlink();
            let has = |state, lp, pp| {
                socks.iter().any(|s: &InetSocket| (s.state, s.local_port, s.peer_port) == (state, lp, pp))
            };
            has(TCP_CLOSE_WAIT, local_port(&close_wait), port)
                && has(TCP_FIN_WAIT2, port, local_port(&close_wait))
                && has(TCP_TIME_WAIT, time_wait_port, port)
                && has(TCP_SYN_RECV, deferring.local_addr().unwrap().port(), local_port(&deferred))
                && socks.iter().any(|s| s.state == TCP_SYN_SENT)
                && find_recv_q(&socks, port, local_port(&established)) == Some(5)
        });
        let socks = netlink();
        let procfs = read_tcp(ALL_STATES).expect("read_tcp");
        assert_sources_agree(&socks, &procfs);

        // Each socket, its state, ports and inode.
        let e = find(&socks, TCP_ESTABLISHED, local_port(&established), port);
        assert_eq!((e.inode, e.local_addr, e.peer_addr), (inode(&established), lo4, lo4));
        let a = find(&socks, TCP_ESTABLISHED, port, local_port(&established));
        assert_eq!((a.inode, a.recv_q), (inode(&accepted), 5));
        assert_eq!(find(&socks, TCP_CLOSE_WAIT, local_port(&close_wait), port).inode, inode(&close_wait));
        assert_eq!(find(&socks, TCP_FIN_WAIT2, port, local_port(&close_wait)).inode, 0, "an orphan");
        let tw = find(&socks, TCP_TIME_WAIT, time_wait_port, port);
        assert_eq!((tw.inode, tw.timer.map(|t| t.kind)), (0, Some(TimerKind::TimeWait)));
        assert!(tw.timer.unwrap().expires_ms > 0 && tw.info.is_none() && tw.skmem.is_none());
        let req = find(&socks, TCP_SYN_RECV, deferring.local_addr().unwrap().port(), local_port(&deferred));
        assert_eq!((req.inode, req.timer.map(|t| t.kind)), (0, Some(TimerKind::Retransmit)));
        assert!(req.info.is_none() && req.congestion.is_none());
        let sent: Vec<_> = socks.iter().filter(|s| s.state == TCP_SYN_SENT).collect();
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].inode, sent[0].peer_port), (inode(&syn_sent), full.local_addr().unwrap().port()));
        let l = find(&socks, TCP_LISTEN, port, 0);
        assert_eq!((l.inode, l.send_q, l.v6only), (inode(&server), 16, None));
        let l6 = find(&socks, TCP_LISTEN, v6only.local_addr().unwrap().port(), 0);
        assert_eq!(
            (l6.inode, l6.send_q, l6.v6only, l6.family),
            (inode(&v6only), 7, Some(true), libc::AF_INET6 as u8)
        );
        assert_eq!(l6.local_addr, IpAddr::V6(Ipv6Addr::LOCALHOST));
        let ld = find(&socks, TCP_LISTEN, dual.local_addr().unwrap().port(), 0);
        assert_eq!((ld.inode, ld.v6only), (inode(&dual), Some(false)));

        // Full sockets carry tcp_info, congestion and skmem; every socket a cookie.
        for s in socks.iter().filter(|s| s.inode != 0) {
            assert!(s.info.is_some() && s.congestion.is_some() && s.skmem.is_some(), "{s:?}");
            assert_eq!(s.uid, nix::unistd::geteuid().as_raw());
            assert!(s.cgroup_id.is_some(), "{s:?}");
        }
        assert!(socks.iter().all(|s| s.cookie.is_some_and(|c| c != 0) && s.bound_ifindex == Some(0)));
        let cookies: BTreeSet<_> = socks.iter().map(|s| s.cookie).collect();
        assert_eq!(cookies.len(), socks.len(), "cookies are unique");

        // ss -tanie: the same sockets, states, queues, ports, inodes and cookies, and the same
        // congestion control, mss and cwnd for the full sockets.
        let entries = ss(&["-Htanie"]);
        let from_ss: BTreeSet<_> = entries
            .iter()
            .map(|entry| {
                let words: Vec<&str> = entry.split_whitespace().collect();
                let ino: u64 = ss_field(entry, "ino").expect("ino").parse().unwrap();
                let cookie = u64::from_str_radix(ss_field(entry, "sk").expect("sk"), 16).unwrap();
                let queue = |i: usize| words[i].parse::<u32>().unwrap();
                (words[0].to_owned(), queue(1), queue(2), ss_port(words[3]), ss_port(words[4]), ino, cookie)
            })
            .collect();
        let ours: BTreeSet<_> = socks
            .iter()
            .map(|s| {
                let state = ss_state(s.state).to_owned();
                (state, s.recv_q, s.send_q, s.local_port, s.peer_port, s.inode, s.cookie.unwrap())
            })
            .collect();
        assert_eq!(ours, from_ss, "ss -tanie disagrees");
        for s in socks.iter().filter(|s| s.state == TCP_ESTABLISHED) {
            let entry = entries
                .iter()
                .find(|e| ss_field(e, "sk") == Some(&format!("{:x}", s.cookie.unwrap())))
                .expect("socket in ss");
            let info = s.info.unwrap();
            assert!(entry.split_whitespace().any(|w| Some(w) == s.congestion.as_deref()), "{entry}");
            assert_eq!(ss_field(entry, "mss"), Some(info.snd_mss.to_string().as_str()), "{entry}");
            assert_eq!(ss_field(entry, "cwnd"), Some(info.snd_cwnd.to_string().as_str()), "{entry}");
        }
        drop((accepted, established, deferred, syn_sent));
    });
}

fn find_recv_q(socks: &[InetSocket], local_port: u16, peer_port: u16) -> Option<u32> {
    socks.iter().find(|s| s.local_port == local_port && s.peer_port == peer_port).map(|s| s.recv_q)
}

#[test]
fn tcp_state_filter_and_bound_device() {
    in_new_netns(|| {
        assert!(dump_inet(InetProtocol::Tcp, 0).unwrap().is_empty());
        assert!(read_tcp(0).unwrap().is_empty());
        let plain = tcp_listener("127.0.0.1:0".parse().unwrap(), 4, None);
        let bound = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
        setsockopt(&bound, sockopt::BindToDevice, &"lo".into()).unwrap();
        bind(bound.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
        listen(&bound, Backlog::new(4).unwrap()).unwrap();
        let _client = TcpStream::connect(plain.local_addr().unwrap()).unwrap();

        let listeners = dump_inet(InetProtocol::Tcp, 1 << TCP_LISTEN).unwrap();
        assert!(listeners.iter().all(|s| s.state == TCP_LISTEN));
        assert_eq!(listeners.len(), 2);
        let dev = listeners.iter().find(|s| s.inode == inode(&bound)).unwrap();
        let lo = nix::net::if_::if_nametoindex("lo").unwrap();
        assert_eq!(dev.bound_ifindex, Some(lo));
        assert_eq!(dev.bound_ifindex.and_then(interface_name).as_deref(), Some("lo"));
        let established = dump_inet(InetProtocol::Tcp, 1 << TCP_ESTABLISHED).unwrap();
        assert!(!established.is_empty() && established.iter().all(|s| s.state == TCP_ESTABLISHED));
        let procfs = read_tcp(1 << TCP_LISTEN).unwrap();
        assert_eq!(
            procfs.iter().map(|s| s.inode).collect::<BTreeSet<_>>(),
            listeners.iter().map(|s| s.inode).collect()
        );
        assert!(procfs.iter().all(|s| s.bound_ifindex.is_none()));
        let ss_lines = ss(&["-Hnlt"]);
        assert!(ss_lines.iter().any(|l| l.contains("%lo:")), "{ss_lines:?}");
        drop(bound);
    });
}

/// Many sockets: the dump spans many datagrams and returns exactly those created.
#[test]
fn many_sockets_exactly() {
    in_new_netns(|| {
        let listeners: Vec<TcpListener> = (0..1500)
            .map(|i| match i % 2 {
                0 => tcp_listener("127.0.0.1:0".parse().unwrap(), 3, None),
                _ => tcp_listener("[::1]:0".parse().unwrap(), 3, Some(true)),
            })
            .collect();
        let want: BTreeSet<u64> = listeners.iter().map(inode).collect();
        let netlink = dump_inet(InetProtocol::Tcp, ALL_STATES).unwrap();
        assert_eq!(netlink.iter().map(|s| s.inode).collect::<BTreeSet<_>>(), want);
        assert_eq!(netlink.len(), want.len());
        assert_sources_agree(&netlink, &read_tcp(ALL_STATES).unwrap());
    });
}

#[test]
fn udp_sockets_bound_connected_and_dropping() {
    in_new_netns(|| {
        let bound = UdpSocket::bind("127.0.0.1:0").unwrap();
        let v6 = UdpSocket::bind("[::1]:0").unwrap();
        let connected = UdpSocket::bind("127.0.0.1:0").unwrap();
        connected.connect(bound.local_addr().unwrap()).unwrap();
        // A tiny receive buffer and a burst of datagrams: some queue, the rest drop.
        setsockopt(&bound.as_fd(), sockopt::RcvBuf, &1).unwrap();
        for _ in 0..50 {
            connected.send(&[0; 1000]).unwrap();
        }
        let netlink = dump_inet(InetProtocol::Udp, ALL_STATES).expect("dump_inet udp");
        let procfs = read_udp().expect("read_udp");
        assert_eq!(netlink.len(), 3, "{netlink:#?}");
        assert_sources_agree(&netlink, &procfs);

        let port = |s: &UdpSocket| s.local_addr().unwrap().port();
        let b = find(&netlink, TCP_CLOSE, port(&bound), 0);
        assert_eq!(b.inode, inode(&bound));
        assert!(b.recv_q > 0, "datagrams queued: {b:?}");
        let drops = b.drops.unwrap();
        assert!(drops > 0, "datagrams dropped: {b:?}");
        assert_eq!(b.skmem.map(|m| m.drops), Some(drops));
        let c = find(&netlink, TCP_ESTABLISHED, port(&connected), port(&bound));
        assert_eq!(c.inode, inode(&connected));
        let v = find(&netlink, TCP_CLOSE, port(&v6), 0);
        // Binding a specific IPv6 address makes a socket v6-only (`__inet6_bind`).
        assert_eq!((v.inode, v.family, v.v6only), (inode(&v6), libc::AF_INET6 as u8, Some(true)));
        assert!(
            netlink.iter().all(|s| s.timer.is_none() && s.info.is_none() && s.protocol == InetProtocol::Udp)
        );

        // ss -uanme: the same sockets, queues and skmem.
        let from_ss: BTreeSet<_> = ss(&["-Huanme"])
            .iter()
            .map(|entry| {
                let w: Vec<&str> = entry.split_whitespace().collect();
                let skmem = ss_field(entry, "skmem").expect("skmem").to_owned();
                let ino: u64 = ss_field(entry, "ino").expect("ino").parse().unwrap();
                (w[0].to_owned(), w[1].parse::<u32>().unwrap(), ss_port(w[3]), ss_port(w[4]), ino, skmem)
            })
            .collect();
        let ours: BTreeSet<_> = netlink
            .iter()
            .map(|s| {
                let m = s.skmem.unwrap();
                let skmem = format!(
                    "(r{},rb{},t{},tb{},f{},w{},o{},bl{},d{})",
                    m.rmem_alloc,
                    m.rcvbuf,
                    m.wmem_alloc,
                    m.sndbuf,
                    m.fwd_alloc,
                    m.wmem_queued,
                    m.optmem,
                    m.backlog,
                    m.drops
                );
                (ss_state(s.state).to_owned(), s.recv_q, s.local_port, s.peer_port, s.inode, skmem)
            })
            .collect();
        assert_eq!(ours, from_ss, "ss -uanme disagrees");
    });
}

/// The identity of a unix socket both sources and `ss` show.
fn unix_key(s: &UnixSocket) -> (&'static str, u8, u64, Option<String>) {
    (s.kind.name(), s.state, s.inode, s.name.clone())
}

#[test]
fn unix_sockets_of_every_type() {
    let dir = std::env::temp_dir().join(format!("kql-unix-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("listener.sock");
    let _ = std::fs::remove_file(&path);
    in_new_netns(|| {
        let (stream_a, stream_b) = UnixStream::pair().unwrap();
        let (dgram_a, _dgram_b) = UnixDatagram::pair().unwrap();
        let (seq_a, seq_b) =
            socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).unwrap();
        (&stream_a).write_all(b"12345").unwrap();
        let listener = UnixListener::bind(&path).unwrap();
        let _pending = UnixStream::connect(&path).unwrap();
        let abstract_name = format!("kql-test-{}", std::process::id());
        let abstract_addr =
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
        let abstract_listener = UnixListener::bind_addr(&abstract_addr).unwrap();
        let unbound = UnixDatagram::unbound().unwrap();

        let netlink = dump_unix().expect("dump_unix");
        let procfs = read_unix().expect("read_unix");
        let keys = |v: &[UnixSocket]| v.iter().map(unix_key).collect::<BTreeSet<_>>();
        assert_eq!(keys(&netlink), keys(&procfs), "netlink and procfs list different sockets");
        assert!(procfs.iter().all(|s| s.peer_inode.is_none() && s.recv_q.is_none() && s.cookie.is_none()));

        let by_inode = |fd: &dyn AsRawFd| {
            let ino = inode(&fd.as_raw_fd());
            netlink.iter().find(|s| s.inode == ino).unwrap_or_else(|| panic!("inode {ino} not dumped"))
        };
        let (sa, sb) = (by_inode(&stream_a), by_inode(&stream_b));
        assert_eq!((sa.kind, sa.state, sa.peer_inode), (UnixType::Stream, TCP_ESTABLISHED, Some(sb.inode)));
        assert_eq!((sb.peer_inode, sb.recv_q), (Some(sa.inode), Some(5)));
        assert!(sa.send_q.is_some_and(|q| q >= 5), "buffer memory of the 5 bytes sent: {sa:?}");
        let da = by_inode(&dgram_a);
        assert_eq!((da.kind, da.name.as_deref()), (UnixType::Dgram, None));
        let (qa, qb) = (by_inode(&seq_a), by_inode(&seq_b));
        assert_eq!((qa.kind, qa.peer_inode), (UnixType::SeqPacket, Some(qb.inode)));
        let l = by_inode(&listener);
        assert_eq!((l.state, l.name.as_deref()), (TCP_LISTEN, path.to_str()));
        // std listens with backlog -1: the namespace's somaxconn.
        let somaxconn: u32 =
            std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap();
        assert_eq!(
            (l.recv_q, l.send_q, l.pending_inodes.as_ref().map(Vec::len)),
            (Some(1), Some(somaxconn), Some(1))
        );
        let file = std::fs::metadata(&path).unwrap();
        let vfs = l.vfs.expect("vfs of a path socket");
        assert_eq!((vfs.inode, vfs.dev), (file.ino(), file.dev()));
        let a = by_inode(&abstract_listener);
        assert_eq!((a.name.clone(), a.vfs), (Some(format!("@{abstract_name}")), None));
        let u = by_inode(&unbound);
        assert_eq!((u.kind, u.state, u.peer_inode), (UnixType::Dgram, TCP_CLOSE, None));
        let uid = nix::unistd::geteuid().as_raw();
        assert!(
            netlink.iter().all(|s| s.uid == Some(uid) && s.cookie.is_some() && s.skmem.is_some()),
            "{netlink:#?}"
        );

        // ss -xa: the same sockets, states, names, queues and peers.
        let netid = |kind| match kind {
            UnixType::Stream => "u_str",
            UnixType::Dgram => "u_dgr",
            UnixType::SeqPacket => "u_seq",
            UnixType::Other(_) => "?",
        };
        let from_ss: BTreeSet<_> = ss(&["-Hxa"])
            .iter()
            .map(|entry| {
                let w: Vec<&str> = entry.split_whitespace().collect();
                let num = |i: usize| w[i].parse::<u64>().unwrap();
                (w[0].to_owned(), w[1].to_owned(), num(2), num(3), w[4].to_owned(), num(5), num(7))
            })
            .collect();
        let ours: BTreeSet<_> = netlink
            .iter()
            .map(|s| {
                let name = s.name.clone().unwrap_or_else(|| "*".to_owned());
                let (rq, sq) = (u64::from(s.recv_q.unwrap()), u64::from(s.send_q.unwrap()));
                (
                    netid(s.kind).to_owned(),
                    ss_state(s.state).to_owned(),
                    rq,
                    sq,
                    name,
                    s.inode,
                    s.peer_inode.unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(ours, from_ss, "ss -xa disagrees");
        let mut buf = [0; 5];
        (&stream_b).read_exact(&mut buf).unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
