//! `tcp_sockets` and `ss-tanp` against `ss`, on a fresh network namespace holding a TCP socket
//! in every state a test can make: LISTEN, ESTAB (IPv4, IPv6 and IPv4-mapped), SYN-SENT (a
//! connect to a listener whose accept queue is full), SYN-RECV (a request a TCP_DEFER_ACCEPT
//! listener keeps), FIN-WAIT-1, LAST-ACK and CLOSING (FINs queued behind data a zero window
//! holds back), FIN-WAIT-2 (a full socket, and an orphan's time-wait socket), CLOSE-WAIT and
//! TIME-WAIT. A process of the test holds the sockets that have files; nothing outside the
//! namespace is compared.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, ErrorKind, Read, Write};
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

type Row = BTreeMap<String, Value>;

/// Every state the scene makes, as ss names them.
const STATES: [&str; 10] = [
    "LISTEN",
    "ESTAB",
    "SYN-SENT",
    "SYN-RECV",
    "FIN-WAIT-1",
    "FIN-WAIT-2",
    "TIME-WAIT",
    "CLOSE-WAIT",
    "LAST-ACK",
    "CLOSING",
];

/// A network namespace with a socket in every state of [`STATES`], held by `_holder`.
struct Scene {
    ns: NetNs,
    /// The namespace's inode, the `netns` of its sockets.
    netns: u64,
    _holder: Holder,
}

impl Scene {
    fn new(tag: &str) -> Scene {
        let ns = NetNs::add(tag);
        let path = ns.path();
        let held = in_netns(&path, make_sockets);
        let refs: Vec<&OwnedFd> = held.iter().collect();
        let holder = Holder::start("kqlt-tcp-all", &refs, false, Some(&path));
        drop(held);
        let scene = Scene { netns: inode_of(&path), ns, _holder: holder };
        scene.wait_for_every_state();
        scene
    }

    /// `ss ARGS` run inside the namespace.
    fn ss(&self, args: &str) -> String {
        command_stdout("ip", &["netns", "exec", &self.ns.0, "ss", args])
    }

    /// Waits until `ss -tan` in the namespace shows every state of [`STATES`] (a closing
    /// handshake takes a moment) and the same sockets twice in a row.
    fn wait_for_every_state(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = String::new();
        loop {
            let now = self.ss("-Htan");
            let states: BTreeSet<&str> = now.lines().filter_map(|l| l.split_whitespace().next()).collect();
            if STATES.iter().all(|s| states.contains(s)) && now == last {
                return;
            }
            assert!(Instant::now() < deadline, "the namespace never had every state: {now}");
            last = now;
            sleep(Duration::from_millis(100));
        }
    }

    /// `kql ARGS --format json` run inside the namespace. Where libdrgn can attach (a
    /// kernel walk shows every namespace), netlink is asked for, as `ss` reads it.
    fn kql_inside(&self, args: &[&str]) -> Vec<Row> {
        let mut argv = vec!["netns", "exec", &self.ns.0, env!("CARGO_BIN_EXE_kql"), "--format", "json"];
        if std::path::Path::new("/proc/kcore").exists() {
            argv.extend(["--source", "netlink"]);
        }
        argv.extend(args);
        let output = std::process::Command::new("ip").args(&argv).output().unwrap();
        assert!(output.status.success(), "kql {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).expect("kql prints a JSON array")
    }
}

/// Runs `f` on a helper thread inside the network namespace at `path`.
fn in_netns<T: Send + 'static>(path: &str, f: fn() -> T) -> T {
    let ns = std::fs::File::open(path).expect("open netns");
    std::thread::spawn(move || {
        // SAFETY: setns(2) on this helper thread only, with a namespace fd it owns.
        assert_eq!(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
        f()
    })
    .join()
    .expect("netns thread")
}

/// Makes the scene's sockets in the calling thread's namespace; returns those to hold.
fn make_sockets() -> Vec<OwnedFd> {
    let mut held: Vec<OwnedFd> = Vec::new();
    let loopback = Ipv4Addr::LOCALHOST;

    // LISTEN and ESTAB: IPv4, IPv6, and IPv4 on a dual-stack listener ([::ffff:127.0.0.1]).
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let dual = TcpListener::bind("[::]:0").unwrap();
    for (listener, ip) in [(&v4, "127.0.0.1"), (&dual, "::1"), (&dual, "127.0.0.1")] {
        let (client, server) = pair(listener, ip);
        held.extend([client.into(), server.into()]);
    }
    // FIN-WAIT-2 (a full socket that shut down writing) and CLOSE-WAIT.
    let (client, server) = pair(&v4, "127.0.0.1");
    client.shutdown(Shutdown::Write).unwrap();
    held.extend([client.into(), server.into()]);
    // FIN-WAIT-2 of an orphan, which the kernel keeps as a time-wait socket; CLOSE-WAIT.
    let (client, server) = pair(&v4, "127.0.0.1");
    drop(client);
    held.push(server.into());
    // TIME-WAIT: the client closes first, the server after reading the FIN.
    let (client, mut server) = pair(&v4, "127.0.0.1");
    drop(client);
    assert_eq!(server.read(&mut [0; 16]).unwrap(), 0, "the server reads the FIN");
    drop(server);

    // Small buffers, so that a peer that does not read soon advertises a zero window and
    // a FIN stays queued behind the data it holds back.
    let slow = TcpListener::bind("127.0.0.1:0").unwrap();
    set_int(slow.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 4096);
    let slow_addr = SocketAddrV4::new(loopback, slow.local_addr().unwrap().port());
    // FIN-WAIT-1: the client fills the window, then shuts down writing.
    let mut client = TcpStream::from(connect(slow_addr, true));
    let (server, _) = slow.accept().unwrap();
    fill(&mut client);
    client.shutdown(Shutdown::Write).unwrap();
    held.extend([client.into(), server.into()]);
    // LAST-ACK: the client shuts down writing (FIN-WAIT-2), the server (CLOSE-WAIT) fills
    // the client's window and then shuts down writing too.
    let client = TcpStream::from(connect(slow_addr, true));
    let (mut server, _) = slow.accept().unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(server.read(&mut [0; 16]).unwrap(), 0, "the server reads the FIN");
    fill(&mut server);
    server.shutdown(Shutdown::Write).unwrap();
    held.extend([client.into(), server.into()]);
    // CLOSING: the client's FIN waits behind data; the server's bare FIN reaches it.
    let mut client = TcpStream::from(connect(slow_addr, true));
    let (server, _) = slow.accept().unwrap();
    fill(&mut client);
    client.shutdown(Shutdown::Write).unwrap();
    sleep(Duration::from_millis(20));
    server.shutdown(Shutdown::Write).unwrap();
    held.extend([client.into(), server.into(), slow.into()]);

    // SYN-RECV: a TCP_DEFER_ACCEPT listener keeps the request until data comes.
    let deferred = TcpListener::bind("127.0.0.1:0").unwrap();
    set_int(deferred.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, 60);
    let client = TcpStream::connect(deferred.local_addr().unwrap()).unwrap();
    held.extend([client.into(), deferred.into()]);

    // SYN-SENT: a listener with backlog 0 and one connection queued drops further SYNs.
    let full = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen(2) again on a listening socket we own only changes its backlog.
    assert_eq!(unsafe { libc::listen(full.as_raw_fd(), 0) }, 0);
    let full_addr = SocketAddrV4::new(loopback, full.local_addr().unwrap().port());
    let queued = TcpStream::connect(full_addr).unwrap();
    sleep(Duration::from_millis(20));
    let syn_sent = connect(full_addr, false);
    held.extend([full.into(), queued.into(), syn_sent]);

    held.extend([v4.into(), dual.into()]);
    held
}

/// A connection to `listener` from a client connecting to `ip`, and its accepted end.
fn pair(listener: &TcpListener, ip: &str) -> (TcpStream, TcpStream) {
    let port = listener.local_addr().unwrap().port();
    let client = TcpStream::connect(SocketAddr::new(ip.parse().unwrap(), port)).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// An IPv4 TCP socket connecting to `addr`: with 4 KiB buffers, blocking until connected
/// (`small`); else non-blocking, returned while its SYN is in flight.
fn connect(addr: SocketAddrV4, small: bool) -> OwnedFd {
    let nonblocking = if small { 0 } else { libc::SOCK_NONBLOCK };
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | nonblocking, 0) };
    assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    if small {
        set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 4096);
        set_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, 4096);
    }
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_port = addr.port().to_be();
    sa.sin_addr.s_addr = u32::from_ne_bytes(addr.ip().octets());
    // SAFETY: sa is a valid sockaddr_in of the size passed.
    let rc = unsafe {
        libc::connect(fd, (&sa as *const libc::sockaddr_in).cast(), size_of::<libc::sockaddr_in>() as u32)
    };
    let error = io::Error::last_os_error();
    match small {
        true => assert_eq!(rc, 0, "connect: {error}"),
        false => assert_eq!(error.raw_os_error(), Some(libc::EINPROGRESS), "connect: {error}"),
    }
    socket
}

fn set_int(fd: RawFd, level: i32, name: i32, value: i32) {
    // SAFETY: value lives for the call and its size is passed.
    let rc =
        unsafe { libc::setsockopt(fd, level, name, (&value as *const i32).cast(), size_of::<i32>() as u32) };
    assert_eq!(rc, 0, "setsockopt: {}", io::Error::last_os_error());
}

/// Writes to `stream` until its send buffer is full: the peer, which does not read, then
/// advertises a zero window and the rest stays queued.
fn fill(stream: &mut TcpStream) {
    stream.set_nonblocking(true).unwrap();
    let chunk = [b'x'; 65536];
    loop {
        match stream.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => panic!("write: {e}"),
        }
    }
}

/// ss's six columns of each line of `ss -H…p` output, sorted.
fn ss_lines(output: &str) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> =
        output.lines().filter(|l| !l.starts_with(char::is_whitespace)).map(split).collect();
    rows.sort();
    rows
}

/// The fields of an ss line: five words, then the rest (the Process column, maybe empty).
fn split(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut rest = line.trim_start();
    for _ in 0..5 {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        fields.push(rest[..end].to_string());
        rest = rest[end..].trim_start();
    }
    fields.push(rest.trim_end().to_string());
    fields
}

fn sorted_columns(rows: &[Row]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = rows.iter().map(ss_columns).collect();
    rows.sort();
    rows
}

fn text(row: &Row, column: &str) -> String {
    match &row[column] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn ss_tanp_matches_ss_in_a_namespace_with_every_state() {
    let scene = Scene::new("tanp");
    let all = format!(
        "select \"State\", \"Recv-Q\", \"Send-Q\", \"Local Address:Port\", \"Peer Address:Port\", \"Process\" \
         from ss_tanp_all where \"Netns\" = {}",
        scene.netns
    );
    // Compared only while ss sees the same before and after kql, so that a socket changing
    // meanwhile (none should) is retried, not reported.
    for attempt in 1..=3 {
        let before = scene.ss("-Htanp");
        let inside = sorted_columns(&scene.kql_inside(&["-q", "ss-tanp"]));
        let from_outside = sorted_columns(&kql_rows(&[&all]));
        if scene.ss("-Htanp") != before && attempt < 3 {
            continue;
        }
        let expected = ss_lines(&before);
        let states: BTreeSet<&str> = expected.iter().map(|row| row[0].as_str()).collect();
        assert_eq!(states, STATES.into_iter().collect(), "the scene has every state");
        let held = expected.iter().filter(|row| row[5].contains("\"kqlt-tcp-all\"")).count();
        assert!(held >= 20, "ss sees the holder's sockets: {expected:#?}");
        assert_eq!(inside, expected, "kql -q ss-tanp inside the namespace");
        assert_eq!(from_outside, expected, "ss_tanp_all filtered to the namespace");
        return;
    }
}

#[test]
fn procfs_agrees_with_netlink_on_what_both_know() {
    let scene = Scene::new("tcpsrc");
    let sql = format!(
        "select family, state, recv_q, send_q, local_addr, local_port, peer_addr, peer_port, inode, uid, \
         timer, cookie, congestion, cwnd, rcvbuf from tcp_sockets where netns = {} \
         order by local_addr, local_port, peer_addr, peer_port",
        scene.netns
    );
    let netlink = kql_rows(&["--source", "netlink", &sql]);
    let procfs = kql_rows(&["--source", "procfs", &sql]);
    let states: BTreeSet<String> = netlink.iter().map(|row| text(row, "state")).collect();
    assert_eq!(states, STATES.iter().map(|s| s.to_string()).collect(), "{netlink:#?}");

    // Full sockets have tcp_info and memory; time-wait sockets (TIME-WAIT, the orphan's
    // FIN-WAIT-2) and requests (SYN-RECV) have none.
    let full = |row: &Row| text(row, "timer") != "timewait" && text(row, "state") != "SYN-RECV";
    for row in &netlink {
        assert!(!row["cookie"].is_null(), "netlink knows every cookie: {row:?}");
        assert_eq!(full(row), !row["congestion"].is_null(), "tcp_info for full sockets only: {row:?}");
        assert_eq!(full(row), !row["rcvbuf"].is_null(), "memory for full sockets only: {row:?}");
    }
    for row in &procfs {
        for column in ["cookie", "congestion", "cwnd", "rcvbuf"] {
            assert!(row[column].is_null(), "procfs has no {column}: {row:?}");
        }
        assert_eq!(text(row, "state") == "LISTEN", row["send_q"].is_null(), "{row:?}");
    }
    let shared = |rows: Vec<Row>| -> Vec<Row> {
        rows.into_iter()
            .map(|mut row| {
                for column in ["cookie", "congestion", "cwnd", "rcvbuf"] {
                    row.remove(column);
                }
                if row["state"] == "LISTEN" {
                    row.remove("send_q");
                }
                row
            })
            .collect()
    };
    assert_eq!(shared(procfs), shared(netlink));

    // Pushed-down states: FIN-WAIT-2 rows are full sockets and an orphan's time-wait socket.
    for source in ["netlink", "procfs"] {
        let sql = format!(
            "select inode, timer from tcp_sockets where netns = {} and state = 'FIN-WAIT-2' order by inode",
            scene.netns
        );
        let rows = kql_rows(&["--source", source, &sql]);
        let timers: Vec<String> = rows.iter().map(|row| text(row, "timer")).collect();
        assert_eq!(rows.len(), 4, "{source}: three FIN-WAIT-2 full sockets and one orphan: {rows:?}");
        assert_eq!((rows[0]["inode"].clone(), timers[0].as_str()), (Value::from(0), "timewait"), "{source}");
    }
}

#[test]
fn tcp_info_matches_ss_tin() {
    let scene = Scene::new("tcpinfo");
    let sql = format!(
        "select local_addr || ':' || local_port as local, peer_addr || ':' || peer_port as peer, \
         cwnd, mss, rtt_us, rttvar_us, rto_us, congestion from tcp_sockets \
         where netns = {} and state = 'ESTAB'",
        scene.netns
    );
    let rows = kql_rows(&["--source", "netlink", &sql]);
    let output = scene.ss("-Htin");
    let mut compared = 0;
    let mut lines = output.lines().peekable();
    while let Some(line) = lines.next() {
        let fields = split(line);
        let Some(info) = lines.next_if(|l| l.starts_with(char::is_whitespace)) else { continue };
        if fields[0] != "ESTAB" {
            continue;
        }
        let value = |name: &str| -> String {
            let prefix = format!("{name}:");
            let word = info.split_whitespace().find(|w| w.starts_with(&prefix));
            word.unwrap_or_else(|| panic!("ss -i shows {name}: {info}"))[prefix.len()..].to_string()
        };
        let row = rows
            .iter()
            .find(|row| text(row, "local") == fields[3] && text(row, "peer") == fields[4])
            .unwrap_or_else(|| panic!("kql has {line}: {rows:#?}"));
        let ms_to_us = |ms: &str| (ms.parse::<f64>().unwrap() * 1000.0).round() as u64;
        let (rtt, rttvar) = value("rtt").split_once('/').map(|(a, b)| (ms_to_us(a), ms_to_us(b))).unwrap();
        assert_eq!(row["cwnd"].to_string(), value("cwnd"), "cwnd of {line}");
        assert_eq!(row["mss"].to_string(), value("mss"), "mss of {line}");
        assert_eq!(
            (row["rtt_us"].as_u64(), row["rttvar_us"].as_u64()),
            (Some(rtt), Some(rttvar)),
            "rtt of {line}"
        );
        assert_eq!(row["rto_us"].as_u64(), Some(ms_to_us(&value("rto"))), "rto of {line}");
        let congestion = text(row, "congestion");
        assert!(info.split_whitespace().any(|w| w == congestion), "{congestion} in {info}");
        compared += 1;
    }
    assert!(compared >= 8, "ss -tin showed the scene's established sockets: {output}");
}

#[test]
fn tcp_listeners_are_the_listen_rows_of_tcp_sockets() {
    let scene = Scene::new("tcplisten");
    let columns = "netns, family, state, recv_q, send_q, local_addr, local_port, peer_addr, peer_port, \
                   inode, uid, v6only, bound_dev, cgroup_id, cookie, sk_addr, reuseport";
    let listeners =
        format!("select {columns} from tcp_listeners where netns = {} order by inode", scene.netns);
    let sockets = format!(
        "select {columns} from tcp_sockets where netns = {} and state = 'LISTEN' order by inode",
        scene.netns
    );
    for source in [None, Some("procfs")] {
        let run = |sql: &str| match source {
            Some(source) => kql_rows(&["--source", source, sql]),
            None => kql_rows(&[sql]),
        };
        let listening = run(&listeners);
        assert_eq!(listening.len(), 5, "{source:?}: the scene's listeners: {listening:#?}");
        assert_eq!(run(&sockets), listening, "{source:?}");
    }
}
