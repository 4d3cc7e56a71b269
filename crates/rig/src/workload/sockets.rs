//! The `sockets` scenario: TCP, UDP and unix sockets in every state a guest can hold for a
//! while, in the initial network namespace and in a second one, for the kernel socket walks
//! to be compared with `/proc/net/{tcp,tcp6,udp,udp6,unix}` (see [`crate::ground_truth`]).
//!
//! Processes (each keeps every descriptor open until it is killed):
//!
//! - `kqlw-sock-bulk`: a loopback listener on [`BULK_PORT`] and [`BULK_PAIRS`] accepted
//!   connections (both ends), for timing the walks per socket;
//! - `kqlw-sock-ns`: in a network namespace of its own (with `lo` up), made while the
//!   initial namespace's `net.ipv4.tcp_child_ehash_entries` and `udp_child_hash_entries`
//!   are 256 where the kernel has them (6.1+, 6.2+), so that the namespace gets its own TCP
//!   established hash and UDP table; both are set back afterwards. Ports 7201–7299 (TCP),
//!   7401–7499 (UDP);
//! - `kqlw-sockets`: the rest, in the initial namespace. Ports 7101–7199 (TCP), 7301–7399
//!   (UDP); unix paths under `/tmp/kqlw-sockets-<pid>/`.
//!
//! What they hold, by role (`scenario.json`'s `sockets.records`, one record per socket that
//! has a descriptor, see [`Record`]):
//!
//! | role | what |
//! |------|------|
//! | `listener` | a TCP listener (`backlog` in `send_q`, its accept queue in `recv_q`) |
//! | `est4-client`, `est4-server` | 127.0.0.1 pair; the client sent 100 bytes the server never reads; the client has `SO_KEEPALIVE` |
//! | `est6-client`, `est6-server` | ::1 pair; the server sent 200 bytes the client never reads |
//! | `persist-client`, `persist-server` | the server's receive buffer is full (4 KiB `SO_RCVBUF`), the client's send queue holds the rest: a zero window |
//! | `close-wait-client`, `close-wait-server` | the client shut its side down (`FIN_WAIT2`); the server is in `CLOSE_WAIT` |
//! | `syn-sent` | a client whose socket filter drops everything it receives: it stays in `SYN_SENT` and the listener holds its request (`NEW_SYN_RECV`, shown as `SYN_RECV`) |
//! | `backlog-queued`, `backlog-syn-sent` | a listener with backlog 1 and 2 connections queued (full); a third client's SYN is dropped, it stays in `SYN_SENT` |
//! | `time-wait-client` | closed last: the server's end of that connection is a `TIME_WAIT` socket |
//! | `orphan-client` | the server closed its end (an orphan, `FIN_WAIT2` or a timewait socket with that substate); the client is in `CLOSE_WAIT` |
//! | `udp4-bound`, `udp4-connected`, `udp6-bound`, `udp6-connected`, `udp4-lo` | UDP: bound only (`UNCONN`), connected; `udp4-bound` has a small receive buffer and was sent more than it holds (drops); `udp4-lo` is bound to device `lo` |
//! | `unix-stream-a/b`, `unix-dgram-a/b`, `unix-seqpacket-a/b` | `socketpair`s; `a` sent 5 bytes (stream), 7 and 9 bytes (dgram), 11 bytes (seqpacket) that `b` never reads |
//! | `unix-listener`, `unix-client` | a stream listener bound to a path, backlog 4, one connection not accepted |
//! | `unix-abstract`, `unix-abstract-nul`, `unix-path-dgram` | datagram sockets bound to `@kqlw-abstract`, to an abstract name with a NUL inside (`/proc` shows `@kqlw@nul`), and to a path |
//!
//! The second namespace holds `listener`, `est4-client`/`est4-server` (10 bytes unread),
//! `time-wait-client`, `udp4-bound`, `udp6-connected`, `unix-stream-a/b` and
//! `unix-abstract` (`@kqlw-netns`). `TIME_WAIT` sockets live 60 s: the rig dumps the guest
//! within seconds of `ready`.

use std::fs;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use kql_rig::{Result, rig_error};
use libc::c_int;
use serde_json::{Value, json};

use crate::process;
use crate::scenarios::{Created, Proc};
use crate::sys::{self, SockAddr, os_error};

/// Port of `kqlw-sock-bulk`'s listener.
pub const BULK_PORT: u16 = 7110;
/// Connections `kqlw-sock-bulk` holds (two sockets each).
pub const BULK_PAIRS: usize = 500;
/// What the child-netns sysctls are set to while `kqlw-sock-ns` makes its namespace.
const CHILD_HASH_ENTRIES: &str = "256";
/// `tcp_info.tcpi_state` values the workload waits for.
const TCP_SYN_SENT: u8 = 2;
const TCP_FIN_WAIT2: u8 = 5;
const TCP_CLOSE_WAIT: u8 = 8;

const LOOPBACK4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const ANY4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
const LOOPBACK6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
const ANY6: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// One socket a worker holds, as `scenario.json` records it: `role`, `kind` (`tcp`, `udp`,
/// `unix`), `inode`, and what is known of it: `family` (`inet`, `inet6`, `unix`),
/// `local_port`, `remote_port`, `state` (the kernel's `TCP_*` number), `recv_q`, `send_q`
/// (as `ss` shows them, where the workload knows them), `path` (unix, `@` for abstract as
/// `/proc/net/unix` shows it), `type` (unix `SOCK_*`), `peer` (the role of a unix peer).
/// The parent adds `process`, `pid` and `netns`.
type Record = Value;

/// Runs the scenario: the three workers, the namespace's sysctls around the second.
pub fn run(created: &mut Created) -> Result<()> {
    let mut records = Vec::new();
    let bulk = process::spawn("kqlw-sock-bulk", || {
        sys::ensure_nofile(2 * BULK_PAIRS as u64 + 64)?;
        bulk()
    })?;
    adopt(created, &mut records, "kqlw-sock-bulk", bulk)?;

    let tcp_child = set_sysctl("net/ipv4/tcp_child_ehash_entries", CHILD_HASH_ENTRIES)?;
    let udp_child = set_sysctl("net/ipv4/udp_child_hash_entries", CHILD_HASH_ENTRIES)?;
    let in_netns = process::spawn("kqlw-sock-ns", || {
        sys::unshare_net()?;
        sys::loopback_up()?;
        second_netns()
    });
    for (name, old) in
        [("net/ipv4/tcp_child_ehash_entries", &tcp_child), ("net/ipv4/udp_child_hash_entries", &udp_child)]
    {
        if let Some(old) = old {
            set_sysctl(name, old.as_str())?;
        }
    }
    adopt(created, &mut records, "kqlw-sock-ns", in_netns?)?;

    let main = process::spawn("kqlw-sockets", initial_netns)?;
    adopt(created, &mut records, "kqlw-sockets", main)?;
    created.sockets = Some(json!({
        "records": records,
        "bulk_pairs": BULK_PAIRS,
        "bulk_port": BULK_PORT,
        "child_tables": { "tcp": tcp_child.is_some(), "udp": udp_child.is_some() },
    }));
    Ok(())
}

/// Records worker `name` and its sockets.
fn adopt(
    created: &mut Created,
    records: &mut Vec<Record>,
    name: &str,
    worker: process::Worker,
) -> Result<()> {
    let bad = || rig_error!("worker {name:?}: bad report {}", worker.report);
    created.processes.push(Proc { name: name.to_string(), pid: worker.pid, ppid: sys::getpid() });
    for record in worker.report["sockets"].as_array().ok_or_else(bad)? {
        let mut record = record.clone();
        record["process"] = json!(name);
        record["pid"] = json!(worker.pid);
        records.push(record);
    }
    Ok(())
}

/// Sets `/proc/sys/<name>` to `value` and returns what it was; `None` if the kernel has no
/// such sysctl.
fn set_sysctl(name: &str, value: &str) -> Result<Option<String>> {
    let path = format!("/proc/sys/{name}");
    let old = match fs::read_to_string(&path) {
        Ok(old) => old.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(rig_error!("{path}: {e}")),
    };
    fs::write(&path, value).map_err(|e| rig_error!("{path}: write {value}: {e}"))?;
    Ok(Some(old))
}

/// `kqlw-sock-bulk`'s body.
fn bulk() -> Result<Value> {
    let listener = tcp_listener(LOOPBACK4, BULK_PORT, 1024, None)?;
    for _ in 0..BULK_PAIRS {
        let client = tcp_socket(LOOPBACK4)?;
        connect(client, LOOPBACK4, BULK_PORT)?;
        accept(listener)?;
    }
    let record = tcp_record("listener", listener, Some(0), Some(1024))?;
    Ok(json!({ "sockets": [record] }))
}

/// `kqlw-sock-ns`'s body, in its new namespace.
fn second_netns() -> Result<Value> {
    let mut records = Vec::new();
    let listener = tcp_listener(ANY4, 7201, 6, None)?;
    records.push(tcp_record("listener", listener, Some(0), Some(6))?);
    let (client, server) = pair(listener, LOOPBACK4, 7201)?;
    write_all(client, &[b'n'; 10])?;
    wait_inq(server, 10)?;
    records.push(tcp_record("est4-client", client, Some(0), Some(0))?);
    records.push(tcp_record("est4-server", server, Some(10), Some(0))?);

    let bound = udp_socket(LOOPBACK4, 7401)?;
    records.push(udp_record("udp4-bound", bound)?);
    let bound6 = udp_socket(LOOPBACK6, 7402)?;
    let connected6 = udp_socket(ANY6, 0)?;
    connect(connected6, LOOPBACK6, 7402)?;
    records.push(udp_record("udp6-bound", bound6)?);
    records.push(udp_record("udp6-connected", connected6)?);

    let (a, b) = socketpair(libc::SOCK_STREAM)?;
    write_all(a, b"hello")?;
    records.push(unix_record("unix-stream-a", a, libc::SOCK_STREAM, None, Some("unix-stream-b"))?);
    let mut record_b = unix_record("unix-stream-b", b, libc::SOCK_STREAM, None, Some("unix-stream-a"))?;
    record_b["recv_q"] = json!(5);
    records.push(record_b);
    let abstract_ = unix_bound(libc::SOCK_DGRAM, b"\0kqlw-netns")?;
    records.push(unix_record("unix-abstract", abstract_, libc::SOCK_DGRAM, Some("@kqlw-netns"), None)?);

    records.push(time_wait(ANY4, 7202, LOOPBACK4)?);
    Ok(json!({ "sockets": records }))
}

/// `kqlw-sockets`'s body, in the initial namespace.
fn initial_netns() -> Result<Value> {
    let mut records = Vec::new();
    // Established pairs, the client with keepalive, the server with data it never reads.
    let listener = tcp_listener(LOOPBACK4, 7101, 5, None)?;
    records.push(tcp_record("listener", listener, Some(0), Some(5))?);
    let (client, server) = pair(listener, LOOPBACK4, 7101)?;
    sys::set_int_option(client, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1, "SO_KEEPALIVE")?;
    write_all(client, &[b'a'; 100])?;
    wait_inq(server, 100)?;
    records.push(tcp_record("est4-client", client, Some(0), Some(0))?);
    records.push(tcp_record("est4-server", server, Some(100), Some(0))?);

    let listener = tcp_listener(LOOPBACK6, 7102, 5, None)?;
    records.push(tcp_record("listener", listener, Some(0), Some(5))?);
    let (client, server) = pair(listener, LOOPBACK6, 7102)?;
    write_all(server, &[b'b'; 200])?;
    wait_inq(client, 200)?;
    records.push(tcp_record("est6-client", client, Some(200), Some(0))?);
    records.push(tcp_record("est6-server", server, Some(0), Some(0))?);

    // A zero window: the server's small receive buffer is full, the client's send queue not empty.
    let listener = tcp_listener(LOOPBACK4, 7103, 5, Some(4096))?;
    records.push(tcp_record("listener", listener, Some(0), Some(5))?);
    let (client, server) = pair(listener, LOOPBACK4, 7103)?;
    fill(client)?;
    records.push(tcp_record("persist-client", client, Some(0), None)?);
    records.push(tcp_record("persist-server", server, None, Some(0))?);

    // CLOSE_WAIT and FIN_WAIT2: the client shuts its side down.
    let listener = tcp_listener(LOOPBACK4, 7104, 5, None)?;
    records.push(tcp_record("listener", listener, Some(0), Some(5))?);
    let (client, server) = pair(listener, LOOPBACK4, 7104)?;
    // SAFETY: shutdown(2) on a descriptor we own.
    if unsafe { libc::shutdown(client, libc::SHUT_WR) } != 0 {
        return Err(os_error("shutdown(SHUT_WR)"));
    }
    wait_state(server, TCP_CLOSE_WAIT)?;
    wait_state(client, TCP_FIN_WAIT2)?;
    records.push(tcp_record("close-wait-client", client, Some(0), Some(0))?);
    records.push(tcp_record("close-wait-server", server, Some(1), Some(0))?);

    // SYN_SENT and a request (NEW_SYN_RECV): the client drops the SYN-ACKs.
    let listener = tcp_listener(LOOPBACK4, 7105, 8, None)?;
    records.push(tcp_record("listener", listener, Some(0), Some(8))?);
    let client = tcp_socket(LOOPBACK4)?;
    drop_everything(client)?;
    connect_nonblocking(client, LOOPBACK4, 7105)?;
    wait_state(client, TCP_SYN_SENT)?;
    let mut record = tcp_record("syn-sent", client, Some(0), None)?;
    record["remote_port"] = json!(7105); // getpeername fails until the handshake completes
    records.push(record);

    // A full accept queue: backlog 1, two connections queued, a third SYN dropped.
    let listener = tcp_listener(LOOPBACK4, 7106, 1, None)?;
    for _ in 0..2 {
        let client = tcp_socket(LOOPBACK4)?;
        connect(client, LOOPBACK4, 7106)?;
        records.push(tcp_record("backlog-queued", client, Some(0), Some(0))?);
    }
    wait_accept_queue(listener, 2)?;
    records.push(tcp_record("listener", listener, Some(2), Some(1))?);
    let client = tcp_socket(LOOPBACK4)?;
    connect_nonblocking(client, LOOPBACK4, 7106)?;
    wait_state(client, TCP_SYN_SENT)?;
    let mut record = tcp_record("backlog-syn-sent", client, Some(0), None)?;
    record["remote_port"] = json!(7106);
    records.push(record);

    // UDP.
    let bound = udp_socket(LOOPBACK4, 7301)?;
    sys::set_int_option(bound, libc::SOL_SOCKET, libc::SO_RCVBUF, 1024, "SO_RCVBUF")?;
    let connected = udp_socket(LOOPBACK4, 0)?;
    connect(connected, LOOPBACK4, 7301)?;
    for _ in 0..64 {
        // More than the receive buffer holds: the rest is dropped (sk_drops).
        send(connected, &[b'u'; 200])?;
    }
    records.push(udp_record("udp4-bound", bound)?);
    records.push(udp_record("udp4-connected", connected)?);
    let bound6 = udp_socket(LOOPBACK6, 7303)?;
    let connected6 = udp_socket(ANY6, 0)?;
    connect(connected6, LOOPBACK6, 7303)?;
    send(connected6, &[b'v'; 300])?;
    records.push(udp_record("udp6-bound", bound6)?);
    records.push(udp_record("udp6-connected", connected6)?);
    let on_lo = udp_new(ANY4)?;
    bind_to_device(on_lo, "lo")?;
    bind(on_lo, ANY4, 7305)?;
    records.push(udp_record("udp4-lo", on_lo)?);

    // Unix.
    for (kind, name, sent) in [
        (libc::SOCK_STREAM, "stream", &[&b"hello"[..]][..]),
        (libc::SOCK_DGRAM, "dgram", &[&b"seven!!"[..], &b"nine!!!!!"[..]][..]),
        (libc::SOCK_SEQPACKET, "seqpacket", &[&b"eleven!!!!!"[..]][..]),
    ] {
        let (a, b) = socketpair(kind)?;
        for message in sent {
            send(a, message)?;
        }
        let (role_a, role_b) = (format!("unix-{name}-a"), format!("unix-{name}-b"));
        records.push(unix_record(&role_a, a, kind, None, Some(&role_b))?);
        let mut record_b = unix_record(&role_b, b, kind, None, Some(&role_a))?;
        // As ss shows it: bytes queued (stream, seqpacket), the first datagram's (dgram).
        let queued =
            if kind == libc::SOCK_DGRAM { sent[0].len() } else { sent.iter().map(|m| m.len()).sum() };
        record_b["recv_q"] = json!(queued);
        records.push(record_b);
    }
    let dir = format!("/tmp/kqlw-sockets-{}", sys::getpid());
    fs::create_dir_all(&dir).map_err(|e| rig_error!("{dir}: {e}"))?;
    let path = format!("{dir}/listen.sock");
    let listener = unix_bound(libc::SOCK_STREAM, path.as_bytes())?;
    // SAFETY: listen(2) on a descriptor we own.
    if unsafe { libc::listen(listener, 4) } != 0 {
        return Err(os_error(format_args!("listen({path})")));
    }
    let client = unix_new(libc::SOCK_STREAM)?;
    unix_connect(client, path.as_bytes())?;
    let mut record = unix_record("unix-listener", listener, libc::SOCK_STREAM, Some(&path), None)?;
    (record["recv_q"], record["send_q"]) = (json!(1), json!(4));
    records.push(record);
    records.push(unix_record("unix-client", client, libc::SOCK_STREAM, None, None)?);
    let abstract_ = unix_bound(libc::SOCK_DGRAM, b"\0kqlw-abstract")?;
    records.push(unix_record("unix-abstract", abstract_, libc::SOCK_DGRAM, Some("@kqlw-abstract"), None)?);
    let with_nul = unix_bound(libc::SOCK_DGRAM, b"\0kqlw\0nul")?;
    records.push(unix_record("unix-abstract-nul", with_nul, libc::SOCK_DGRAM, Some("@kqlw@nul"), None)?);
    let path = format!("{dir}/dgram.sock");
    let dgram = unix_bound(libc::SOCK_DGRAM, path.as_bytes())?;
    records.push(unix_record("unix-path-dgram", dgram, libc::SOCK_DGRAM, Some(&path), None)?);

    // Last, as they expire after 60 s: TIME_WAIT, and an orphan's FIN_WAIT2.
    records.push(time_wait(LOOPBACK4, 7107, LOOPBACK4)?);
    let listener = tcp_listener(LOOPBACK4, 7108, 5, None)?;
    let (client, server) = pair(listener, LOOPBACK4, 7108)?;
    close(server)?;
    wait_state(client, TCP_CLOSE_WAIT)?;
    records.push(tcp_record("orphan-client", client, Some(1), Some(0))?);
    records.push(tcp_record("listener", listener, Some(0), Some(5))?);
    Ok(json!({ "sockets": records }))
}

/// A connection to a new listener on `port` whose server end closes first and the client's
/// next: the server's end becomes a `TIME_WAIT` socket on the listener's port. The listener
/// stays open; the record returned is the closed client's (`time-wait-client`: inode 0, its
/// port, and the listener's inode as `listener_inode`).
fn time_wait(listen_addr: IpAddr, port: u16, connect_addr: IpAddr) -> Result<Record> {
    let listener = tcp_listener(listen_addr, port, 5, None)?;
    let (client, server) = pair(listener, connect_addr, port)?;
    let client_port = local_port(client)?;
    close(server)?;
    wait_state(client, TCP_CLOSE_WAIT)?;
    close(client)?;
    Ok(json!({
        "role": "time-wait-client", "kind": "tcp", "inode": 0, "family": family(connect_addr),
        "local_port": client_port, "remote_port": port, "listener_inode": sys::fd_inode(listener)?,
    }))
}

fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() { "inet" } else { "inet6" }
}

/// A record of TCP socket `fd` with the queues expected of it.
fn tcp_record(role: &str, fd: c_int, recv_q: Option<u64>, send_q: Option<u64>) -> Result<Record> {
    let (addr, port) = sockname(fd)?;
    let remote = peername(fd).map(|(_, port)| port).unwrap_or(0);
    Ok(json!({
        "role": role, "kind": "tcp", "inode": sys::fd_inode(fd)?, "family": family(addr),
        "local_port": port, "remote_port": remote, "state": tcp_state(fd)?,
        "recv_q": recv_q.map_or(Value::Null, |q| json!(q)), "send_q": send_q.map_or(Value::Null, |q| json!(q)),
    }))
}

/// A record of UDP socket `fd`.
fn udp_record(role: &str, fd: c_int) -> Result<Record> {
    let (addr, port) = sockname(fd)?;
    let remote = peername(fd).map(|(_, port)| port).unwrap_or(0);
    Ok(json!({
        "role": role, "kind": "udp", "inode": sys::fd_inode(fd)?, "family": family(addr),
        "local_port": port, "remote_port": remote,
    }))
}

/// A record of unix socket `fd`.
fn unix_record(role: &str, fd: c_int, kind: c_int, path: Option<&str>, peer: Option<&str>) -> Result<Record> {
    Ok(json!({
        "role": role, "kind": "unix", "inode": sys::fd_inode(fd)?, "family": "unix", "type": kind,
        "path": path, "peer": peer,
    }))
}

/// A new TCP socket.
fn tcp_socket(addr: IpAddr) -> Result<c_int> {
    new_socket(domain(addr), libc::SOCK_STREAM, "tcp")
}

fn new_socket(domain: c_int, kind: c_int, what: &str) -> Result<c_int> {
    // SAFETY: socket(2) with constant arguments; it only returns a new descriptor or -1.
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(os_error(format_args!("socket({what})")));
    }
    Ok(fd)
}

fn domain(addr: IpAddr) -> c_int {
    if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 }
}

/// A TCP listener on `addr:port`, with `rcvbuf` as `SO_RCVBUF` (inherited by what it accepts).
fn tcp_listener(addr: IpAddr, port: u16, backlog: c_int, rcvbuf: Option<c_int>) -> Result<c_int> {
    let fd = tcp_socket(addr)?;
    sys::set_int_option(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1, "SO_REUSEADDR")?;
    if let Some(size) = rcvbuf {
        sys::set_int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, size, "SO_RCVBUF")?;
    }
    bind(fd, addr, port)?;
    // SAFETY: listen(2) on a descriptor we own.
    if unsafe { libc::listen(fd, backlog) } != 0 {
        return Err(os_error(format_args!("listen({addr}:{port})")));
    }
    Ok(fd)
}

fn bind(fd: c_int, addr: IpAddr, port: u16) -> Result<()> {
    let sa = SockAddr::new(addr, port);
    let (ptr, len) = sa.as_ptr();
    // SAFETY: ptr/len describe the live sockaddr in `sa`.
    if unsafe { libc::bind(fd, ptr, len) } != 0 {
        return Err(os_error(format_args!("bind({addr}:{port})")));
    }
    Ok(())
}

fn connect(fd: c_int, addr: IpAddr, port: u16) -> Result<()> {
    let sa = SockAddr::new(addr, port);
    let (ptr, len) = sa.as_ptr();
    // SAFETY: ptr/len describe the live sockaddr in `sa`.
    if unsafe { libc::connect(fd, ptr, len) } != 0 {
        return Err(os_error(format_args!("connect({addr}:{port})")));
    }
    Ok(())
}

/// Starts connecting without waiting for the handshake.
fn connect_nonblocking(fd: c_int, addr: IpAddr, port: u16) -> Result<()> {
    set_nonblocking(fd)?;
    let sa = SockAddr::new(addr, port);
    let (ptr, len) = sa.as_ptr();
    // SAFETY: ptr/len describe the live sockaddr in `sa`.
    if unsafe { libc::connect(fd, ptr, len) } != 0
        && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINPROGRESS)
    {
        return Err(os_error(format_args!("connect({addr}:{port}, nonblocking)")));
    }
    Ok(())
}

fn set_nonblocking(fd: c_int) -> Result<()> {
    // SAFETY: fcntl(2) on a descriptor we own, with integer arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } != 0 {
        return Err(os_error("fcntl(O_NONBLOCK)"));
    }
    Ok(())
}

fn accept(listener: c_int) -> Result<c_int> {
    // SAFETY: accept4(2) on a listener we own; no address is asked for.
    let fd =
        unsafe { libc::accept4(listener, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
    if fd < 0 {
        return Err(os_error("accept"));
    }
    Ok(fd)
}

/// A connected pair through `listener` (listening on `addr:port`): (client, server).
fn pair(listener: c_int, addr: IpAddr, port: u16) -> Result<(c_int, c_int)> {
    let client = tcp_socket(addr)?;
    connect(client, addr, port)?;
    Ok((client, accept(listener)?))
}

fn close(fd: c_int) -> Result<()> {
    // SAFETY: close(2) of a descriptor we own and never use again.
    if unsafe { libc::close(fd) } != 0 {
        return Err(os_error("close"));
    }
    Ok(())
}

fn write_all(fd: c_int, bytes: &[u8]) -> Result<()> {
    let sent = send(fd, bytes)?;
    if sent != bytes.len() {
        return Err(rig_error!("send: {sent} of {} bytes", bytes.len()));
    }
    Ok(())
}

/// send(2) without signals; returns the bytes sent.
fn send(fd: c_int, bytes: &[u8]) -> Result<usize> {
    // SAFETY: bytes is a live buffer of the length passed.
    let sent = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(os_error(format_args!("send({} bytes)", bytes.len())));
    }
    Ok(sent as usize)
}

/// Writes to a connected TCP socket until its peer's window closes and its own send buffer
/// is full, then waits until nothing moves any more.
fn fill(fd: c_int) -> Result<()> {
    set_nonblocking(fd)?;
    let chunk = [b'p'; 16384];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // SAFETY: chunk is a live buffer of the length passed.
        let sent = unsafe { libc::send(fd, chunk.as_ptr().cast(), chunk.len(), libc::MSG_NOSIGNAL) };
        if sent < 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) => break,
                _ => return Err(os_error("send (filling)")),
            }
        }
        if Instant::now() > deadline {
            return Err(rig_error!("the send queue never filled"));
        }
    }
    let mut last = outq(fd)?;
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_millis(300) {
        std::thread::sleep(Duration::from_millis(50));
        let now = outq(fd)?;
        if now != last {
            (last, since) = (now, Instant::now());
        }
        if Instant::now() > deadline {
            return Err(rig_error!("the send queue never settled"));
        }
    }
    Ok(())
}

/// `SIOCOUTQ`: bytes not yet acknowledged (`write_seq - snd_una`).
fn outq(fd: c_int) -> Result<c_int> {
    ioctl_int(fd, libc::TIOCOUTQ, "SIOCOUTQ")
}

fn ioctl_int(fd: c_int, request: libc::c_ulong, what: &str) -> Result<c_int> {
    let mut value: c_int = 0;
    // SAFETY: the request writes one c_int through the pointer, to a live local.
    if unsafe { libc::ioctl(fd, request as _, &mut value as *mut c_int) } != 0 {
        return Err(os_error(what));
    }
    Ok(value)
}

/// Waits until `fd` has `bytes` to read (`SIOCINQ`).
fn wait_inq(fd: c_int, bytes: c_int) -> Result<()> {
    wait(|| Ok(ioctl_int(fd, libc::FIONREAD as libc::c_ulong, "SIOCINQ")? == bytes), "bytes to arrive")
}

fn wait_state(fd: c_int, state: u8) -> Result<()> {
    wait(|| Ok(tcp_state(fd)? == state), &format!("TCP state {state}"))
}

fn wait_accept_queue(listener: c_int, count: u32) -> Result<()> {
    wait(|| Ok(sys::listen_queue(listener)?.1 == count), &format!("{count} connections queued"))
}

fn wait(mut done: impl FnMut() -> Result<bool>, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done()? {
        if Instant::now() > deadline {
            return Err(rig_error!("waited 10 s for {what}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// `tcpi_state` of `TCP_INFO`.
fn tcp_state(fd: c_int) -> Result<u8> {
    // SAFETY: tcp_info is plain old data; all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info and len are live locals, len holds info's size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(os_error("getsockopt(TCP_INFO)"));
    }
    Ok(info.tcpi_state)
}

/// Attaches a classic BPF filter that drops every packet the socket receives.
fn drop_everything(fd: c_int) -> Result<()> {
    let mut code = [libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0 }]; // BPF_RET | BPF_K, 0
    let program = libc::sock_fprog { len: 1, filter: code.as_mut_ptr() };
    // SAFETY: program points to one live instruction; its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&program as *const libc::sock_fprog).cast(),
            mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(os_error("setsockopt(SO_ATTACH_FILTER)"));
    }
    Ok(())
}

fn bind_to_device(fd: c_int, device: &str) -> Result<()> {
    // SAFETY: the name is a live buffer of the length passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            device.as_ptr().cast(),
            device.len() as _,
        )
    };
    if rc != 0 {
        return Err(os_error(format_args!("setsockopt(SO_BINDTODEVICE, {device})")));
    }
    Ok(())
}

fn udp_new(addr: IpAddr) -> Result<c_int> {
    new_socket(domain(addr), libc::SOCK_DGRAM, "udp")
}

/// A UDP socket bound to `addr:port` (port 0: any).
fn udp_socket(addr: IpAddr, port: u16) -> Result<c_int> {
    let fd = udp_new(addr)?;
    bind(fd, addr, port)?;
    Ok(fd)
}

/// The local address and port of `fd`.
fn sockname(fd: c_int) -> Result<(IpAddr, u16)> {
    name_of(fd, libc::getsockname, "getsockname")
}

fn peername(fd: c_int) -> Result<(IpAddr, u16)> {
    name_of(fd, libc::getpeername, "getpeername")
}

fn local_port(fd: c_int) -> Result<u16> {
    Ok(sockname(fd)?.1)
}

type NameCall = unsafe extern "C" fn(c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> c_int;

fn name_of(fd: c_int, call: NameCall, what: &str) -> Result<(IpAddr, u16)> {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len are live locals, len holds storage's size.
    if unsafe { call(fd, (&mut storage as *mut libc::sockaddr_storage).cast(), &mut len) } != 0 {
        return Err(os_error(what));
    }
    match c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET), which fits in the storage.
            let sa: libc::sockaddr_in = unsafe { *(&storage as *const libc::sockaddr_storage).cast() };
            Ok((IpAddr::V4(Ipv4Addr::from(sa.sin_addr.s_addr.to_ne_bytes())), u16::from_be(sa.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 (family AF_INET6), which fits in the storage.
            let sa: libc::sockaddr_in6 = unsafe { *(&storage as *const libc::sockaddr_storage).cast() };
            Ok((IpAddr::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr)), u16::from_be(sa.sin6_port)))
        }
        family => Err(rig_error!("{what}: address family {family}")),
    }
}

fn unix_new(kind: c_int) -> Result<c_int> {
    new_socket(libc::AF_UNIX, kind, "unix")
}

/// A `sockaddr_un` for `name` (a path, or an abstract name starting with NUL), and its length.
fn unix_address(name: &[u8]) -> Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all zeroes is a valid value.
    let mut sa: libc::sockaddr_un = unsafe { mem::zeroed() };
    if name.len() >= sa.sun_path.len() {
        return Err(rig_error!("unix name {name:?} is too long"));
    }
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in sa.sun_path.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    // A path is NUL-terminated (the kernel counts the NUL); an abstract name is exactly its bytes.
    let extra = if name.first() == Some(&0) { 0 } else { 1 };
    let len = mem::size_of::<libc::sa_family_t>() + name.len() + extra;
    Ok((sa, len as libc::socklen_t))
}

/// A unix socket of `kind` bound to `name`.
fn unix_bound(kind: c_int, name: &[u8]) -> Result<c_int> {
    let fd = unix_new(kind)?;
    let (sa, len) = unix_address(name)?;
    // SAFETY: sa is a live sockaddr_un and len at most its size.
    if unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_un).cast(), len) } != 0 {
        return Err(os_error(format_args!("bind(unix {:?})", String::from_utf8_lossy(name))));
    }
    Ok(fd)
}

fn unix_connect(fd: c_int, name: &[u8]) -> Result<()> {
    let (sa, len) = unix_address(name)?;
    // SAFETY: sa is a live sockaddr_un and len at most its size.
    if unsafe { libc::connect(fd, (&sa as *const libc::sockaddr_un).cast(), len) } != 0 {
        return Err(os_error(format_args!("connect(unix {:?})", String::from_utf8_lossy(name))));
    }
    Ok(())
}

fn socketpair(kind: c_int) -> Result<(c_int, c_int)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: fds is a live array of two c_ints, as socketpair(2) requires.
    if unsafe { libc::socketpair(libc::AF_UNIX, kind | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) } != 0 {
        return Err(os_error(format_args!("socketpair(AF_UNIX, {kind})")));
    }
    Ok((fds[0], fds[1]))
}
