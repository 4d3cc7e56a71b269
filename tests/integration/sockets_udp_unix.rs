//! `udp_sockets` and `unix_sockets` on the live host, on sockets the test makes and a holder
//! process keeps: `kql -q ss-uanp` against `ss -uanp` and `kql -q ss-xp` against `ss -xp`,
//! row for row; every unix state against `ss -xa`; the netlink source against `--source
//! procfs` on the columns both know; unix sockets of another network namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram, UnixListener, UnixStream};
use std::process::Command;

use serde_json::Value;

use crate::support::*;

type Row = BTreeMap<String, Value>;

/// The sockfs inode of a socket (`socket:[N]` of its fd link).
fn socket_inode(fd: &impl AsRawFd) -> u64 {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("fd link");
    let link = link.to_string_lossy();
    let inode = link.strip_prefix("socket:[").and_then(|rest| rest.strip_suffix(']'));
    inode.and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{link} is not a socket"))
}

fn set_int(fd: RawFd, level: i32, name: i32, value: i32) {
    // SAFETY: value lives for the call and its size is passed.
    let rc =
        unsafe { libc::setsockopt(fd, level, name, (&value as *const i32).cast(), size_of::<i32>() as u32) };
    assert_eq!(rc, 0, "setsockopt {level}/{name}: {}", std::io::Error::last_os_error());
}

/// A UDP socket bound to `[::]` or `[::1]` port 0 with `IPV6_V6ONLY` set as asked (before
/// bind, where it matters).
fn udp6(ip: &str, v6only: bool) -> UdpSocket {
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let socket = unsafe { UdpSocket::from_raw_fd(fd) };
    set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, v6only as i32);
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
    sa.sin6_family = libc::AF_INET6 as u16;
    sa.sin6_addr.s6_addr = ip.parse::<std::net::Ipv6Addr>().unwrap().octets();
    // SAFETY: sa is a valid sockaddr_in6 of the size passed.
    let rc = unsafe {
        libc::bind(fd, (&sa as *const libc::sockaddr_in6).cast(), size_of::<libc::sockaddr_in6>() as u32)
    };
    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    socket
}

/// A socket's local endpoint as `ss -n` prints it.
fn ss_endpoint(socket: &UdpSocket, v6only: bool, device: Option<&str>) -> String {
    let device = device.map(|d| format!("%{d}")).unwrap_or_default();
    match socket.local_addr().unwrap() {
        SocketAddr::V4(v4) => format!("{}{device}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) if v6.ip().is_unspecified() && !v6only => format!("*{device}:{}", v6.port()),
        SocketAddr::V6(v6) => format!("[{}]{device}:{}", v6.ip(), v6.port()),
    }
}

/// A value of a kql JSON row as ss prints it (numbers as digits).
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `columns` of each row, as text.
fn texts(rows: &[Row], columns: &[&str]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> =
        rows.iter().map(|row| columns.iter().map(|c| shown(&row[*c])).collect()).collect();
    out.sort();
    out
}

/// `ss ARGS` (in network namespace `netns` if given), its lines split into whitespace-separated
/// fields, the first `fields - 1` and the rest of the line as the last.
fn ss(args: &str, netns: Option<&str>, fields: usize) -> Vec<Vec<String>> {
    let output = match netns {
        Some(ns) => command_stdout("ip", &["netns", "exec", ns, "ss", args]),
        None => command_stdout("ss", &[args]),
    };
    output
        .lines()
        .map(|line| {
            let mut row = Vec::new();
            let mut rest = line.trim();
            for _ in 0..fields - 1 {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                row.push(rest[..end].to_string());
                rest = rest[end..].trim_start();
            }
            row.push(rest.to_string());
            row
        })
        .collect()
}

/// A unix `ss -x` line (Netid, State, Recv-Q, Send-Q, local name, local inode, peer name, peer
/// inode, Process) as kql's ss-xp columns: name and inode joined by a space.
fn ss_unix_rows(args: &str, netns: Option<&str>, inodes: &BTreeSet<u64>) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = ss(args, netns, 9)
        .into_iter()
        .filter(|f| f[5].parse().is_ok_and(|inode: u64| inodes.contains(&inode)))
        .map(|f| {
            vec![
                f[0].clone(),
                f[1].clone(),
                f[2].clone(),
                f[3].clone(),
                format!("{} {}", f[4], f[5]),
                format!("{} {}", f[6], f[7]),
                f[8].clone(),
            ]
        })
        .collect();
    rows.sort();
    rows
}

const SS_UANP: [&str; 6] =
    ["State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process"];
const SS_XP: [&str; 7] =
    ["Netid", "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process"];

/// The test's UDP sockets, held by a process: what ss should show of them.
struct UdpFixture {
    _holder: Holder,
    /// Local endpoints as ss prints them.
    endpoints: Vec<String>,
    inodes: Vec<u64>,
    /// The endpoint and inode of the socket with a tiny receive buffer that dropped datagrams.
    dropping: (String, u64),
    /// Inode of the v6-only socket bound to `[::]`.
    v6_only: u64,
}

fn udp_fixture() -> UdpFixture {
    let unconnected_v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
    let connected_v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
    connected_v4.connect(unconnected_v4.local_addr().unwrap()).unwrap();
    let unconnected_v6 = udp6("::1", false);
    let connected_v6 = udp6("::1", false);
    connected_v6.connect(unconnected_v6.local_addr().unwrap()).unwrap();
    let dual_stack = udp6("::", false);
    let v6_only = udp6("::", true);
    let on_device = UdpSocket::bind("127.0.0.1:0").unwrap();
    // SAFETY: the name and its length are valid for the call.
    let rc = unsafe {
        libc::setsockopt(
            on_device.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            c"lo".as_ptr().cast(),
            3,
        )
    };
    assert_eq!(rc, 0, "SO_BINDTODEVICE: {}", std::io::Error::last_os_error());
    let dropping = UdpSocket::bind("127.0.0.1:0").unwrap();
    set_int(dropping.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 1);
    let sender = UdpSocket::bind("0.0.0.0:0").unwrap();
    for _ in 0..64 {
        sender.send_to(&[7; 1000], dropping.local_addr().unwrap()).unwrap();
    }

    let sockets = [
        (&unconnected_v4, false, None),
        (&connected_v4, false, None),
        (&unconnected_v6, false, None),
        (&connected_v6, false, None),
        (&dual_stack, false, None),
        (&v6_only, true, None),
        (&on_device, false, Some("lo")),
        (&dropping, false, None),
        (&sender, false, None),
    ];
    let endpoints = sockets.iter().map(|(s, v6only, dev)| ss_endpoint(s, *v6only, *dev)).collect();
    let inodes = sockets.iter().map(|(s, _, _)| socket_inode(*s)).collect();
    let dropping_at = (ss_endpoint(&dropping, false, None), socket_inode(&dropping));
    let v6_only_inode = socket_inode(&v6_only);
    let owned: Vec<OwnedFd> = [
        unconnected_v4,
        connected_v4,
        unconnected_v6,
        connected_v6,
        dual_stack,
        v6_only,
        on_device,
        dropping,
        sender,
    ]
    .into_iter()
    .map(OwnedFd::from)
    .collect();
    let holder = Holder::start("kqlt-udp", &owned.iter().collect::<Vec<_>>(), false, None);
    drop(owned);
    UdpFixture { _holder: holder, endpoints, inodes, dropping: dropping_at, v6_only: v6_only_inode }
}

#[test]
fn ss_uanp_matches_ss_for_bound_connected_and_dropping_udp_sockets() {
    let fixture = udp_fixture();
    let at_endpoints = |rows: Vec<Vec<String>>| -> Vec<Vec<String>> {
        let mut rows: Vec<_> = rows.into_iter().filter(|row| fixture.endpoints.contains(&row[3])).collect();
        rows.sort();
        rows
    };
    let expected = at_endpoints(ss("-Huanp", None, 6));
    let actual = at_endpoints(texts(&kql_rows(&["-q", "ss-uanp"]), &SS_UANP));
    assert_eq!(expected.len(), fixture.endpoints.len(), "ss sees every test socket: {expected:#?}");
    assert_eq!(actual, expected);

    let row_of = |endpoint: &str| actual.iter().find(|row| row[3] == endpoint).unwrap().clone();
    let connected = row_of(&fixture.endpoints[1]);
    assert_eq!((connected[0].as_str(), connected[4].as_str()), ("ESTAB", fixture.endpoints[0].as_str()));
    let v6 = row_of(&fixture.endpoints[3]);
    assert_eq!((v6[0].as_str(), v6[4].as_str()), ("ESTAB", fixture.endpoints[2].as_str()));
    assert!(fixture.endpoints[4].starts_with("*:") && fixture.endpoints[5].starts_with("[::]:"));
    assert!(fixture.endpoints[6].starts_with("127.0.0.1%lo:"), "{}", fixture.endpoints[6]);
    let dropping = row_of(&fixture.dropping.0);
    assert_eq!(dropping[0], "UNCONN");
    assert_ne!(dropping[1], "0", "datagrams wait in the receive queue: {dropping:?}");
    assert!(dropping[5].starts_with("users:((\"kqlt-udp\",pid="), "{dropping:?}");
}

#[test]
fn udp_drops_and_queues_agree_with_proc_net_udp() {
    let fixture = udp_fixture();
    let (_, inode) = fixture.dropping;
    let proc_row = std::fs::read_to_string("/proc/net/udp")
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|fields| fields[9] == inode.to_string())
        .expect("/proc/net/udp lists the socket");
    let rx_queue = u64::from_str_radix(proc_row[4].split(':').nth(1).unwrap(), 16).unwrap();
    let drops: u64 = proc_row[12].parse().unwrap();
    assert!(drops > 0, "a 64-datagram burst into a minimal SO_RCVBUF drops some: {proc_row:?}");
    let sql = format!(
        "select recv_q, drops, rcvbuf, rmem_alloc, uid, state from udp_sockets where inode = {inode}"
    );
    let rows = kql_rows(&[&sql]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["recv_q"], rx_queue);
    assert_eq!(row["drops"], drops);
    assert_eq!(row["uid"].to_string(), proc_row[7]);
    assert_eq!(row["state"], "UNCONN");
    assert!(row["rcvbuf"].as_u64().is_some_and(|b| b < 8192), "the tiny SO_RCVBUF: {row:?}");
    assert!(row["rmem_alloc"].as_u64().is_some_and(|r| r > 0), "{row:?}");
}

#[test]
fn udp_procfs_source_matches_netlink_on_shared_columns() {
    let fixture = udp_fixture();
    let inodes: Vec<String> = fixture.inodes.iter().map(u64::to_string).collect();
    let sql = format!(
        "select netns, family, state, recv_q, send_q, local_addr, local_port, peer_addr, peer_port, inode, uid, \
         drops, cookie, rcvbuf, v6only from udp_sockets where inode in ({}) order by inode",
        inodes.join(", ")
    );
    let netlink = kql_rows(&["--source", "netlink", &sql]);
    let procfs = kql_rows(&["--source", "procfs", &sql]);
    assert_eq!(netlink.len(), fixture.inodes.len(), "{netlink:?}");
    assert!(netlink.iter().all(|row| row["cookie"].is_u64() && row["rcvbuf"].is_u64()), "{netlink:?}");
    assert!(procfs.iter().all(|row| row["cookie"].is_null() && row["rcvbuf"].is_null()), "{procfs:?}");
    assert!(procfs.iter().all(|row| row["v6only"].is_null()), "{procfs:?}");
    let v6_only = netlink.iter().find(|row| row["inode"] == fixture.v6_only).unwrap();
    assert_eq!((&v6_only["local_addr"], &v6_only["v6only"]), (&Value::from("[::]"), &Value::from(true)));
    // /proc/net/udp6 does not say IPV6_V6ONLY (set by the kernel too on a bind to a specific
    // IPv6 address): ss, too, prints `*` for such a socket's `::` from there.
    let v6_only: Vec<Value> =
        netlink.iter().filter(|row| row["v6only"] == true).map(|row| row["inode"].clone()).collect();
    // (netlink says it only of unconnected sockets: the connected one's is NULL.)
    assert_eq!(v6_only.len(), 2, "[::] with IPV6_V6ONLY, and the unconnected [::1]: {netlink:?}");
    let shared = |rows: Vec<Row>| -> Vec<Row> {
        rows.into_iter()
            .map(|mut row| {
                for column in ["cookie", "rcvbuf", "v6only"] {
                    row.remove(column);
                }
                if v6_only.contains(&row["inode"]) {
                    row.remove("local_addr");
                    row.remove("peer_addr");
                }
                row
            })
            .collect()
    };
    assert_eq!(shared(procfs), shared(netlink));
}

/// The test's unix sockets, held by a process.
struct UnixFixture {
    _holder: Holder,
    _dir: TempDir,
    inodes: BTreeSet<u64>,
    listener: u64,
    pending_client: u64,
    accepted_abstract: u64,
    stream_pair: [u64; 2],
    seqpacket_pair: [u64; 2],
    path: String,
    abstract_name: String,
}

fn unix_fixture() -> UnixFixture {
    let dir = TempDir::new();
    let path = dir.0.join("kqlt-listener.sock");
    let (mut stream_a, stream_b) = UnixStream::pair().unwrap();
    stream_a.write_all(b"hello").unwrap();
    let (dgram_a, dgram_b) = UnixDatagram::pair().unwrap();
    dgram_a.send(b"abc").unwrap();
    let mut fds = [0; 2];
    // SAFETY: socketpair(2) writes two descriptors into fds, owned right after.
    let rc = unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr())
    };
    assert_eq!(rc, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned only here.
    let (seq_a, seq_b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let listener = UnixListener::bind(&path).unwrap();
    let pending_client = UnixStream::connect(&path).unwrap();
    // Unique to this fixture, as its directory is (tests run in parallel in one process).
    let abstract_name = format!("{}-abstract", dir.0.file_name().unwrap().to_string_lossy());
    let abstract_addr = UnixAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
    let abstract_listener = UnixListener::bind_addr(&abstract_addr).unwrap();
    let abstract_client = UnixStream::connect_addr(&abstract_addr).unwrap();
    let (accepted_abstract, _) = abstract_listener.accept().unwrap();
    let dgram_name = UnixAddr::from_abstract_name(format!("{abstract_name}-dgram").as_bytes()).unwrap();
    let dgram_server = UnixDatagram::bind_addr(&dgram_name).unwrap();
    let dgram_client = UnixDatagram::unbound().unwrap();
    dgram_client.connect_addr(&dgram_name).unwrap();
    let lone_name = UnixAddr::from_abstract_name(format!("{abstract_name}-lone").as_bytes()).unwrap();
    let lone_dgram = UnixDatagram::bind_addr(&lone_name).unwrap();

    let owned: Vec<OwnedFd> = vec![
        stream_a.into(),
        stream_b.into(),
        dgram_a.into(),
        dgram_b.into(),
        seq_a,
        seq_b,
        listener.into(),
        pending_client.into(),
        abstract_listener.into(),
        abstract_client.into(),
        accepted_abstract.into(),
        dgram_server.into(),
        dgram_client.into(),
        lone_dgram.into(),
    ];
    let inode = |i: usize| socket_inode(&owned[i]);
    let fixture_inodes: BTreeSet<u64> = (0..owned.len()).map(inode).collect();
    let (listener, pending_client, accepted_abstract) = (inode(6), inode(7), inode(10));
    let (stream_pair, seqpacket_pair) = ([inode(0), inode(1)], [inode(4), inode(5)]);
    let holder = Holder::start("kqlt-unix", &owned.iter().collect::<Vec<_>>(), false, None);
    drop(owned);
    UnixFixture {
        _holder: holder,
        inodes: fixture_inodes,
        listener,
        pending_client,
        accepted_abstract,
        stream_pair,
        seqpacket_pair,
        path: path.to_string_lossy().into_owned(),
        abstract_name,
        _dir: dir,
    }
}

/// kql rows whose `Local Address:Port` ends in one of `inodes`.
fn unix_rows_at(rows: &[Row], inodes: &BTreeSet<u64>) -> Vec<Vec<String>> {
    let at: Vec<Row> = rows
        .iter()
        .filter(|row| {
            let local = shown(&row["Local Address:Port"]);
            local.rsplit(' ').next().and_then(|n| n.parse().ok()).is_some_and(|n: u64| inodes.contains(&n))
        })
        .cloned()
        .collect();
    texts(&at, &SS_XP)
}

#[test]
fn ss_xp_matches_ss_for_pairs_listeners_pending_and_abstract_sockets() {
    let fixture = unix_fixture();
    let expected = ss_unix_rows("-Hxp", None, &fixture.inodes);
    let actual = unix_rows_at(&kql_rows(&["-q", "ss-xp"]), &fixture.inodes);
    assert_eq!(actual, expected);

    let row_of = |inode: u64| expected.iter().find(|row| row[4].ends_with(&format!(" {inode}"))).cloned();
    for inode in fixture.stream_pair.iter().chain(&fixture.seqpacket_pair) {
        assert!(row_of(*inode).is_some(), "ss -xp shows the pairs: {expected:#?}");
    }
    assert!(row_of(fixture.listener).is_none(), "ss -xp shows no listener: {expected:#?}");
    let [a, b] = fixture.stream_pair;
    let stream_b = row_of(b).unwrap();
    assert_eq!(stream_b[..3], ["u_str", "ESTAB", "5"], "five bytes wait: {stream_b:?}");
    assert_eq!(stream_b[5], format!("* {a}"));
    assert!(stream_b[6].starts_with("users:((\"kqlt-unix\",pid="), "{stream_b:?}");
    assert_eq!(row_of(fixture.seqpacket_pair[0]).unwrap()[0], "u_seq");
    let pending = row_of(fixture.pending_client).unwrap();
    assert_eq!(pending[5], "* 0", "its peer is not accepted yet, so has no inode: {pending:?}");
    let accepted = row_of(fixture.accepted_abstract).unwrap();
    assert_eq!(accepted[4], format!("@{} {}", fixture.abstract_name, fixture.accepted_abstract));
}

#[test]
fn unix_sockets_match_ss_xa_in_every_state() {
    let fixture = unix_fixture();
    let inodes: Vec<String> = fixture.inodes.iter().map(u64::to_string).collect();
    let sql = format!(
        "select 'u_' || type as \"Netid\", state as \"State\", recv_q as \"Recv-Q\", send_q as \"Send-Q\", \
         coalesce(path, '*') || ' ' || cast(inode as varchar) as \"Local Address:Port\", \
         '* ' || cast(coalesce(peer_inode, 0) as varchar) as \"Peer Address:Port\", '' as \"Process\" \
         from unix_sockets where inode in ({})",
        inodes.join(", ")
    );
    let actual = unix_rows_at(&kql_rows(&[&sql]), &fixture.inodes);
    let expected = ss_unix_rows("-Hxa", None, &fixture.inodes);
    assert_eq!(expected.len(), fixture.inodes.len(), "ss -xa shows every test socket: {expected:#?}");
    assert_eq!(actual, expected);
    let listener =
        expected.iter().find(|row| row[4] == format!("{} {}", fixture.path, fixture.listener)).unwrap();
    assert_eq!((listener[1].as_str(), listener[2].as_str()), ("LISTEN", "1"), "one pending: {listener:?}");
    let lone = format!("@{}-lone ", fixture.abstract_name);
    let unconnected = expected.iter().find(|row| row[4].starts_with(&lone)).unwrap();
    assert_eq!((unconnected[0].as_str(), unconnected[1].as_str()), ("u_dgr", "UNCONN"), "{unconnected:?}");
    assert!(ss_unix_rows("-Hxp", None, &fixture.inodes).iter().all(|row| !row[4].starts_with(&lone)));
}

#[test]
fn unix_procfs_source_matches_netlink_on_shared_columns() {
    let fixture = unix_fixture();
    let inodes: Vec<String> = fixture.inodes.iter().map(u64::to_string).collect();
    let sql = format!(
        "select netns, type, state, path, inode, recv_q, send_q, peer_inode, uid, cookie from unix_sockets \
         where inode in ({}) order by inode",
        inodes.join(", ")
    );
    let netlink = kql_rows(&["--source", "netlink", &sql]);
    let procfs = kql_rows(&["--source", "procfs", &sql]);
    assert_eq!(netlink.len(), fixture.inodes.len(), "{netlink:?}");
    let unknown = ["recv_q", "send_q", "peer_inode", "uid", "cookie"];
    assert!(procfs.iter().all(|row| unknown.iter().all(|c| row[*c].is_null())), "{procfs:?}");
    assert!(netlink.iter().all(|row| row["recv_q"].is_u64() && row["uid"].is_u64()), "{netlink:?}");
    let shared = |rows: Vec<Row>| -> Vec<Row> {
        rows.into_iter()
            .map(|mut row| {
                unknown.iter().for_each(|c| drop(row.remove(*c)));
                row
            })
            .collect()
    };
    assert_eq!(shared(procfs), shared(netlink));
}

#[test]
fn unix_sockets_of_another_namespace_are_its_own() {
    let ns = NetNs::add("unix");
    let ns_path = ns.path();
    let (a, b) = std::thread::spawn(move || {
        let file = std::fs::File::open(&ns_path).expect("open netns");
        // SAFETY: setns(2) on this helper thread only, with a namespace fd we own.
        assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
        UnixStream::pair().unwrap()
    })
    .join()
    .unwrap();
    let inodes: BTreeSet<u64> = [socket_inode(&a), socket_inode(&b)].into();
    let owned: [OwnedFd; 2] = [a.into(), b.into()];
    let _holder = Holder::start("kqlt-unixns", &[&owned[0], &owned[1]], false, Some(&ns.path()));
    drop(owned);

    let list: Vec<String> = inodes.iter().map(u64::to_string).collect();
    let sql = format!("select netns from unix_sockets where inode in ({})", list.join(", "));
    let rows = kql_rows(&[&sql]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|row| row["netns"] == inode_of(&ns.path())), "{rows:?}");
    assert!(unix_rows_at(&kql_rows(&["-q", "ss-xp"]), &inodes).is_empty(), "not in kql's namespace");
    assert!(ss_unix_rows("-Hxp", None, &inodes).is_empty(), "nor in ss's");

    // kql run inside the namespace shows what ss shows there.
    let output = Command::new("ip")
        .args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_kql"), "-q", "ss-xp", "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let inside: Vec<Row> = serde_json::from_slice(&output.stdout).unwrap();
    let expected = ss_unix_rows("-Hxp", Some(&ns.0), &inodes);
    assert_eq!(expected.len(), 2, "{expected:#?}");
    assert_eq!(unix_rows_at(&inside, &inodes), expected);
}
