//! The TCP, UDP and unix socket walks ([`kql_kernel::tcp`], [`kql_kernel::udp`],
//! [`kql_kernel::unix`]) on vmcores of guests running the rig's `sockets` scenario, against
//! what each guest's kernel said about itself just before it was dumped: every line of
//! `/proc/net/{tcp,tcp6,udp,udp6,unix}` of every network namespace, and what the workload
//! made (`scenario.json`'s `sockets.records`).
//!
//! - 6.1 (per-netns established hash; global UDP table; per-netns unix tables) with DWARF
//!   and with BTF, dumped if missing;
//! - 6.12 (per-netns established hash and UDP table) with DWARF and with BTF, and 5.10
//!   (global UDP and unix tables, `listening_hash`) with DWARF only (its VMCOREINFO does not
//!   locate kallsyms): dumped if missing too, as `kql_rig::truth::vmcore_with_truth` keeps
//!   each vmcore with its truth.
//!
//! The guest is idle between the truth and the dump (a few seconds), so states, ports,
//! inodes, uids, queues, drops and timer kinds must match exactly; time left on timers can
//! only have shrunk (or been re-armed, for retransmits).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::OnceLock;

use kql_drgn::{DebugInfo, Program, Target};
use kql_kernel::net::JiffiesSource;
use kql_kernel::tcp::{TcpSockKind, TcpSocket, TcpWalker, TimerKind};
use kql_kernel::udp::{UdpSocket, UdpWalker};
use kql_kernel::unix::{UnixSocket, UnixWalker};
use kql_kernel::{Kernel, Memory, TypeSource, Types};
use kql_rig::kernel_truth::{TcpSocketTruth, UdpSocketTruth, UnixSocketTruth};
use kql_rig::kernels::Series;
use kql_rig::truth::{Family, VmcoreWithTruth};
use serde_json::Value;

/// `CONFIG_HZ` of Debian's x86-64 kernels.
const DEBIAN_HZ: u64 = 250;
/// `TCP_ESTABLISHED`, `TCP_LISTEN`, `TCP_INFINITE_SSTHRESH`.
const ESTABLISHED: u8 = 1;
const LISTEN: u8 = 10;
const INFINITE_SSTHRESH: u32 = 0x7fff_ffff;

fn vmcore(series: Series) -> &'static VmcoreWithTruth {
    static VMCORES: [OnceLock<VmcoreWithTruth>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let index = Series::all().iter().position(|s| *s == series).expect("a series");
    VMCORES[index].get_or_init(|| {
        kql_rig::truth::vmcore_with_truth(series, "sockets")
            .unwrap_or_else(|e| panic!("the sockets vmcore of {}: {e}", series.name()))
    })
}

fn open(made: &VmcoreWithTruth, source: TypeSource) -> Kernel {
    let program = Program::attach(Target::CoreDump(made.vmcore.clone())).expect("open the vmcore");
    let mut kernel = Kernel::new(program);
    match source {
        TypeSource::Dwarf => kernel.load_dwarf(DebugInfo::Vmlinux(&made.vmlinux)).expect("DWARF"),
        TypeSource::Btf => kernel.load_btf(None).expect("BTF and kallsyms from the vmcore's memory"),
    }
    kernel
}

fn family(family: Family) -> u16 {
    match family {
        Family::Inet => 2,
        Family::Inet6 => 10,
    }
}

/// What identifies a TCP or UDP socket in both the walk and `/proc`.
type Key = (u64, u16, u8, IpAddr, u16, IpAddr, u16);

/// Pairs each truth line with the walk's row of the same key; both sides must have the same
/// multiset of keys. Rows of equal keys are paired in inode order.
fn pair_up<'a, T, W>(
    truth: &'a [T],
    walk: &'a [W],
    tkey: impl Fn(&T) -> (Key, u64),
    wkey: impl Fn(&W) -> (Key, u64),
) -> Vec<(&'a T, &'a W)> {
    let mut by_key: BTreeMap<(Key, u64), Vec<&W>> = BTreeMap::new();
    for row in walk {
        by_key.entry(wkey(row)).or_default().push(row);
    }
    let mut pairs = Vec::new();
    let mut missing = Vec::new();
    for line in truth {
        match by_key.get_mut(&tkey(line)).and_then(Vec::pop) {
            Some(row) => pairs.push((line, row)),
            None => missing.push(tkey(line)),
        }
    }
    let extra: Vec<_> = by_key.into_iter().filter(|(_, rows)| !rows.is_empty()).map(|(key, _)| key).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "in /proc but not walked: {missing:#?}\nwalked but not in /proc: {extra:#?}"
    );
    pairs
}

fn tcp_key(row: &TcpSocket) -> (Key, u64) {
    (
        (row.netns, row.family, row.state, row.local_addr, row.local_port, row.peer_addr, row.peer_port),
        row.inode,
    )
}

fn tcp_truth_key(line: &TcpSocketTruth) -> (Key, u64) {
    let key = (
        line.netns,
        family(line.family),
        line.state,
        line.local_addr,
        line.local_port,
        line.remote_addr,
        line.remote_port,
    );
    (key, line.inode)
}

/// Every TCP socket against `/proc/net/tcp{,6}` and the workload's records.
fn check_tcp(series: Series, types: &Types, made: &VmcoreWithTruth) -> Vec<TcpSocket> {
    let mem = Memory::new(types);
    let walker = TcpWalker::new(types).expect("TcpWalker::new");
    let rows = walker.walk(&mem, &mut kql_kernel::Skipped::default()).expect("the TCP walk");
    let jiffies = JiffiesSource::new(types).unwrap().read(&mem).unwrap();
    assert_eq!(jiffies.hz, DEBIAN_HZ, "HZ of a Debian kernel");

    let truth = made.truth.tcp_sockets().expect("TCP truth");
    assert!(truth.len() > 1000, "the bulk connections are in /proc: {}", truth.len());
    let pairs = pair_up(&truth, &rows, tcp_truth_key, tcp_key);
    for (line, row) in &pairs {
        let what = format!("{} {line:?}\n{row:#?}", series.name());
        assert_eq!((row.uid, row.recv_q), (line.uid, line.rx_queue), "uid, queues: {what}");
        // /proc prints `write_seq - snd_una` for listeners too (0); ss the backlog (the records check it).
        if row.state != LISTEN {
            assert_eq!(row.send_q, line.tx_queue, "send queue: {what}");
        }
        assert_eq!(row.timer.kind.code(), line.timer, "timer: {what}");
        // Time left can only have shrunk since /proc was read (re-armed retransmit timers aside).
        if matches!(row.timer.kind, TimerKind::TimeWait | TimerKind::Keepalive) {
            assert!(row.timer.expires_ms <= line.timer_when * 10 + 10, "expiry: {what}");
        }
        match row.kind {
            TcpSockKind::Full => {
                let info = row.info.as_ref().expect("tcp_info of a full socket");
                let full = line.full.expect("a full socket's columns");
                // jiffies_to_clock_t: USER_HZ is 100.
                let (rto, ato) = (info.rto_us / 10_000, info.ato_us / 10_000);
                let (retransmits, probes) = (u32::from(info.retransmits), i64::from(info.probes));
                if matches!(row.timer.kind, TimerKind::On | TimerKind::Persist) {
                    // Retransmits and probes go on between /proc and the dump, backing the rto off;
                    // but each ACK, such as the one answering a zero-window probe, sets the probe
                    // count back to 0 (tcp_ack), so under the persist timer it need not grow.
                    let persist = matches!(row.timer.kind, TimerKind::Persist);
                    assert!(
                        retransmits >= line.retransmits
                            && (probes >= line.probes || persist)
                            && rto >= full.rto,
                        "{what}"
                    );
                } else {
                    assert_eq!(
                        (retransmits, probes, rto),
                        (line.retransmits, line.probes, full.rto),
                        "{what}"
                    );
                }
                assert_eq!(ato, full.ato, "ato: {what}");
                // A retransmit timeout resets cwnd and ssthresh.
                let timed_out = row.timer.kind == TimerKind::On && retransmits > line.retransmits;
                if !timed_out {
                    assert_eq!(info.snd_cwnd, full.snd_cwnd, "cwnd: {what}");
                }
                if row.state != LISTEN && !timed_out {
                    let ssthresh = if info.snd_ssthresh >= INFINITE_SSTHRESH {
                        -1
                    } else {
                        i64::from(info.snd_ssthresh)
                    };
                    assert_eq!(ssthresh, full.ssthresh, "ssthresh: {what}");
                }
                assert_eq!(row.congestion.as_deref(), Some("cubic"), "{what}");
                let skmem = row.skmem.expect("skmem");
                assert!(skmem.rcvbuf > 0 && skmem.sndbuf > 0, "{what}");
            }
            TcpSockKind::TimeWait => {
                assert_eq!(
                    (row.timer.kind, row.inode, row.info.is_none()),
                    (TimerKind::TimeWait, 0, true),
                    "{what}"
                );
            }
            TcpSockKind::Request => {
                let request = row.request.expect("a request's columns");
                assert!(u32::from(request.num_timeout) <= line.retransmits + 2, "{what}");
                assert!(rows.iter().any(|r| r.address == request.listener && r.state == LISTEN), "{what}");
            }
        }
    }
    for kind in [TcpSockKind::Full, TcpSockKind::TimeWait, TcpSockKind::Request] {
        assert!(rows.iter().any(|r| r.kind == kind), "{}: no {kind:?} socket", series.name());
    }
    let states: std::collections::BTreeSet<u8> = rows.iter().map(|r| r.state).collect();
    for state in [1, 2, 3, 5, 6, 8, 10] {
        assert!(states.contains(&state), "{}: no socket in state {state}: {states:?}", series.name());
    }
    for kind in [TimerKind::Off, TimerKind::On, TimerKind::Keepalive, TimerKind::TimeWait, TimerKind::Persist]
    {
        assert!(rows.iter().any(|r| r.timer.kind == kind), "{}: no {kind:?} timer", series.name());
    }

    // What the workload made, by role.
    let records = made.truth.socket_records();
    let by_inode: BTreeMap<u64, &TcpSocket> =
        rows.iter().filter(|r| r.inode != 0).map(|r| (r.inode, r)).collect();
    for record in records.iter().filter(|r| r["kind"] == "tcp") {
        let inode = record["inode"].as_u64().unwrap();
        if inode == 0 {
            // The TIME_WAIT socket of the connection the record's client closed.
            let (client_port, server_port) = (port(&record["local_port"]), port(&record["remote_port"]));
            let timewait = rows.iter().find(|r| {
                r.kind == TcpSockKind::TimeWait && r.local_port == server_port && r.peer_port == client_port
            });
            assert!(timewait.is_some_and(|r| r.state == 6 && r.netns == record["netns"]), "{record}");
            continue;
        }
        let row = by_inode.get(&inode).unwrap_or_else(|| panic!("{}: not walked: {record}", series.name()));
        assert_eq!(Value::from(row.netns), record["netns"], "{record}");
        assert_eq!(
            (row.local_port, row.peer_port),
            (port(&record["local_port"]), port(&record["remote_port"])),
            "{record}"
        );
        if let Some(recv_q) = record["recv_q"].as_u64() {
            assert_eq!(u64::from(row.recv_q), recv_q, "{record}\n{row:#?}");
        }
        if let Some(send_q) = record["send_q"].as_u64() {
            assert_eq!(u64::from(row.send_q), send_q, "{record}\n{row:#?}");
        }
        let info = row.info.as_ref().unwrap();
        match record["role"].as_str().unwrap() {
            "est4-client" if record["process"] == "kqlw-sockets" => {
                assert_eq!(row.timer.kind, TimerKind::Keepalive, "{row:#?}");
                assert!(info.bytes_acked >= 100 && info.segs_out > 2 && info.rtt_us > 0, "{row:#?}");
                assert!(info.bytes_sent.is_none_or(|sent| sent >= 100), "{row:#?}");
            }
            "est4-server" if record["process"] == "kqlw-sockets" => {
                assert!(info.bytes_received >= 100 && info.data_segs_in >= 1, "{row:#?}");
            }
            "persist-client" => assert_eq!(row.timer.kind, TimerKind::Persist, "{row:#?}"),
            "syn-sent" | "backlog-syn-sent" => {
                assert_eq!((row.state, row.timer.kind), (2, TimerKind::On), "{row:#?}")
            }
            _ => {}
        }
    }

    // The listener walk (`net::tcp_listeners`, the same struct sock members through
    // `SockWalker`) gives the listeners this walk gives.
    let listeners = kql_kernel::net::tcp_listeners(types).expect("tcp_listeners");
    let as_listeners: Vec<_> = rows
        .iter()
        .filter(|r| r.state == LISTEN)
        .map(|r| (r.address, r.netns, r.local_addr, r.local_port, r.recv_q, r.send_q, r.inode, r.uid))
        .collect();
    let from_listeners: Vec<_> = listeners
        .iter()
        .map(|l| {
            (l.address, l.netns, l.local_addr, l.local_port, l.ack_backlog, l.max_ack_backlog, l.inode, l.uid)
        })
        .collect();
    assert_eq!(as_listeners, from_listeners, "{}: tcp_listeners", series.name());
    for (listener, row) in listeners.iter().zip(rows.iter().filter(|r| r.state == LISTEN)) {
        assert_eq!(
            (listener.cookie, listener.cgroup_id, &listener.bound_dev, listener.v6only, listener.reuseport),
            (row.cookie, row.cgroup_id, &row.bound_dev, row.v6only, row.reuseport)
        );
    }

    // A second established hash exactly where the namespace was made with its own.
    let hashes = walker.established_hashes(&mem).unwrap();
    let child = made.truth.scenario["sockets"]["child_tables"]["tcp"].as_bool().unwrap();
    assert_eq!(hashes.len(), if child { 2 } else { 1 }, "{}: {hashes:?}", series.name());
    rows
}

fn port(value: &Value) -> u16 {
    value.as_u64().unwrap() as u16
}

fn udp_key(row: &UdpSocket) -> (Key, u64) {
    (
        (row.netns, row.family, row.state, row.local_addr, row.local_port, row.peer_addr, row.peer_port),
        row.inode,
    )
}

fn udp_truth_key(line: &UdpSocketTruth) -> (Key, u64) {
    let key = (
        line.netns,
        family(line.family),
        line.state,
        line.local_addr,
        line.local_port,
        line.remote_addr,
        line.remote_port,
    );
    (key, line.inode)
}

/// Every UDP socket against `/proc/net/udp{,6}` and the workload's records.
fn check_udp(series: Series, types: &Types, made: &VmcoreWithTruth) -> Vec<UdpSocket> {
    let mem = Memory::new(types);
    let walker = UdpWalker::new(types).expect("UdpWalker::new");
    let mut skipped = kql_kernel::Skipped::default();
    let rows =
        walker.walk(&mem, &mut skipped).and_then(|rows| skipped.all_or_error(rows)).expect("the UDP walk");
    let truth = made.truth.udp_sockets().expect("UDP truth");
    for (line, row) in pair_up(&truth, &rows, udp_truth_key, udp_key) {
        let what = format!("{} {line:?}\n{row:#?}", series.name());
        assert_eq!((row.uid, row.recv_q, row.send_q), (line.uid, line.rx_queue, line.tx_queue), "{what}");
        assert_eq!(row.drops.map(u64::from), Some(line.drops), "{what}");
        assert!(row.skmem.is_some(), "{what}");
    }
    let records = made.truth.socket_records();
    for record in records.iter().filter(|r| r["kind"] == "udp") {
        let inode = record["inode"].as_u64().unwrap();
        let row = rows.iter().find(|r| r.inode == inode).unwrap_or_else(|| panic!("not walked: {record}"));
        assert_eq!(
            (Value::from(row.netns), row.local_port),
            (record["netns"].clone(), port(&record["local_port"])),
            "{record}"
        );
        match record["role"].as_str().unwrap() {
            "udp4-bound" if record["process"] == "kqlw-sockets" => {
                assert!(row.drops.unwrap() > 0 && row.recv_q > 0, "{row:#?}");
            }
            "udp4-lo" => {
                assert_eq!((row.bound_dev_if, row.bound_dev.as_deref()), (1, Some("lo")), "{row:#?}")
            }
            "udp4-connected" | "udp6-connected" => assert_eq!(row.state, ESTABLISHED, "{row:#?}"),
            _ => {}
        }
    }
    let tables = walker.tables(&mem).unwrap();
    let child = made.truth.scenario["sockets"]["child_tables"]["udp"].as_bool().unwrap();
    assert_eq!(tables.len(), if child { 2 } else { 1 }, "{}: {tables:?}", series.name());
    rows
}

/// `/proc/net/unix`'s `St` of a socket: `SS_CONNECTED` 3 or `SS_UNCONNECTED` 1 with a
/// `struct socket`, `SS_CONNECTING` 2 or `SS_DISCONNECTING` 4 without.
fn proc_state(row: &UnixSocket) -> u8 {
    match (row.has_socket, row.state == ESTABLISHED) {
        (true, true) => 3,
        (true, false) => 1,
        (false, true) => 2,
        (false, false) => 4,
    }
}

type UnixKey = (u64, u64, u16, u8, u32, Option<String>);

fn unix_key(row: &UnixSocket) -> UnixKey {
    let flags = if row.state == LISTEN { 0x10000 } else { 0 };
    (row.netns, row.inode, row.sock_type, proc_state(row), flags, row.path.clone())
}

fn unix_truth_key(line: &UnixSocketTruth) -> UnixKey {
    (line.netns, line.inode, line.sock_type, line.state, line.flags, line.path.clone())
}

/// Every unix socket against `/proc/net/unix` and the workload's records.
fn check_unix(series: Series, types: &Types, made: &VmcoreWithTruth) -> Vec<UnixSocket> {
    let mem = Memory::new(types);
    let mut skipped = kql_kernel::Skipped::default();
    let walker = UnixWalker::new(types).expect("UnixWalker::new");
    let rows =
        walker.walk(&mem, &mut skipped).and_then(|rows| skipped.all_or_error(rows)).expect("the unix walk");
    let mut walked: Vec<UnixKey> = rows.iter().map(unix_key).collect();
    let mut truth: Vec<UnixKey> =
        made.truth.unix_sockets().expect("unix truth").iter().map(unix_truth_key).collect();
    walked.sort();
    truth.sort();
    assert_eq!(walked, truth, "{}: the unix sockets of /proc/net/unix", series.name());

    let records = made.truth.socket_records();
    let role_inode = |process: &Value, role: &str| {
        records
            .iter()
            .find(|r| r["process"] == *process && r["role"] == role)
            .map(|r| r["inode"].as_u64().unwrap())
    };
    for record in records.iter().filter(|r| r["kind"] == "unix") {
        let inode = record["inode"].as_u64().unwrap();
        let row = rows.iter().find(|r| r.inode == inode).unwrap_or_else(|| panic!("not walked: {record}"));
        assert_eq!(Value::from(row.netns), record["netns"], "{record}");
        assert_eq!(Value::from(row.sock_type), record["type"], "{record}");
        if let Some(path) = record["path"].as_str() {
            assert_eq!(row.path.as_deref(), Some(path), "{record}");
        }
        if let Some(recv_q) = record["recv_q"].as_u64() {
            assert_eq!(u64::from(row.recv_q), recv_q, "{record}\n{row:#?}");
        }
        if let Some(send_q) = record["send_q"].as_u64() {
            assert_eq!(u64::from(row.send_q), send_q, "{record}\n{row:#?}");
        }
        if let Some(peer) = record["peer"].as_str() {
            assert_eq!(row.peer_inode, role_inode(&record["process"], peer), "{record}\n{row:#?}");
        }
        if record["role"] == "unix-stream-a" {
            assert!(row.send_q > 0, "bytes sent and not read are charged to the sender: {row:#?}");
        }
    }
    rows
}

/// All three walks on one vmcore with one type source.
fn check(series: Series, source: TypeSource) -> (Vec<TcpSocket>, Vec<UdpSocket>, Vec<UnixSocket>) {
    let made = vmcore(series);
    let kernel = open(made, source);
    let types = kernel.types(source).unwrap();
    let tcp = check_tcp(series, &types, made);
    let udp = check_udp(series, &types, made);
    let unix = check_unix(series, &types, made);
    (tcp, udp, unix)
}

#[test]
fn linux_6_1_with_dwarf_and_btf() {
    let dwarf = check(Series::Bookworm61, TypeSource::Dwarf);
    let btf = check(Series::Bookworm61, TypeSource::Btf);
    assert!(dwarf == btf, "6.1: BTF and DWARF walks differ");
}

#[test]
fn linux_6_12_with_dwarf_and_btf() {
    let dwarf = check(Series::Bookworm612, TypeSource::Dwarf);
    let btf = check(Series::Bookworm612, TypeSource::Btf);
    assert!(dwarf == btf, "6.12: BTF and DWARF walks differ");
}

#[test]
fn linux_5_10_with_dwarf() {
    check(Series::Bullseye510, TypeSource::Dwarf);
}

/// `HZ` from the monotonic clock, the fallback for kernels without `tick_nsec`, agrees.
#[test]
fn hz_from_the_monotonic_clock_agrees() {
    for series in [Series::Bookworm61, Series::Bookworm612, Series::Bullseye510] {
        let made = vmcore(series);
        let kernel = open(made, TypeSource::Dwarf);
        let types = kernel.types(TypeSource::Dwarf).unwrap();
        let program = types.program();
        let jiffies = program.read_u64(types.symbol("jiffies_64").unwrap()).unwrap();
        let tk_core = types.variable_type("tk_core").unwrap();
        let base = types.symbol("tk_core").unwrap()
            + tk_core.field("timekeeper.tkr_mono.base").unwrap().offset as u64;
        let monotonic = program.read_u64(base).unwrap();
        assert_eq!(kql_kernel::net::hz_from_uptime(jiffies, monotonic), DEBIAN_HZ, "{}", series.name());
    }
}
