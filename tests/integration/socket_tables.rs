//! `tcp_sockets`, `udp_sockets` and `unix_sockets` read from a guest kernel checked against
//! what the guest itself said just before: every namespace's `/proc/net/{tcp,tcp6,udp,udp6,
//! unix}` (the rig's truth). Every socket the guest listed with a file (inode ≠ 0) must be a
//! row with the same namespace, state, ports or path (the `basic` scenario has listeners and
//! the guest's own unix sockets; the `sockets` scenario's every state is checked on vmcores by
//! kql-kernel's tests/sockets.rs). Sockets made after the truth was
//! written (the rig's own agent traffic) may add rows; none may go missing or change.

use std::collections::{BTreeMap, BTreeSet};

use kql_kernel::tcp::state_name;
use kql_rig::truth::Truth;
use serde_json::Value;

use crate::kernel_tables::{Run, number, text};

type Row = BTreeMap<String, Value>;

const TCP: &str = "select netns, state, local_port, peer_port, inode from tcp_sockets";
const UDP: &str = "select netns, state, local_port, peer_port, inode from udp_sockets";
const UNIX: &str = "select netns, path, inode from unix_sockets";

/// Every socket of the guest's truth is a row of `run`'s socket tables.
pub fn assert_socket_tables(run: Run, truth: &Truth, who: &str) {
    let results = run(&[TCP, UDP, UNIX]).unwrap_or_else(|stderr| panic!("{who}: {stderr}"));
    let [tcp, udp, unix] = &results[..] else { panic!("{who}: one result per statement") };
    let tcp_truth = truth.tcp_sockets().expect("tcp truth");
    assert!(tcp_truth.iter().any(|s| s.inode != 0), "{who}: the guest's truth has no TCP socket with a file");
    let expected = tcp_truth
        .iter()
        .filter(|s| s.inode != 0)
        .map(|s| inet_key(s.netns, state_name(s.state), s.local_port, s.remote_port, s.inode));
    assert_contains(tcp, expected.collect(), "tcp_sockets", who);
    let udp_truth = truth.udp_sockets().expect("udp truth");
    let expected = udp_truth
        .iter()
        .filter(|s| s.inode != 0)
        .map(|s| inet_key(s.netns, state_name(s.state), s.local_port, s.remote_port, s.inode));
    assert_contains(udp, expected.collect(), "udp_sockets", who);
    let unix_truth = truth.unix_sockets().expect("unix truth");
    let expected: BTreeSet<String> = unix_truth
        .iter()
        .filter(|s| s.inode != 0)
        .map(|s| format!("{} {} {}", s.netns, s.inode, s.path.as_deref().unwrap_or("NULL")))
        .collect();
    let listed: BTreeSet<String> = unix
        .iter()
        .map(|r| format!("{} {} {}", number(r, "netns"), number(r, "inode"), text(r, "path")))
        .collect();
    let missing: Vec<_> = expected.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "{who}: unix_sockets lacks {} of /proc/net/unix's: {missing:?}",
        missing.len()
    );
}

fn inet_key(netns: u64, state: &str, local_port: u16, peer_port: u16, inode: u64) -> String {
    format!("{netns} {state} {local_port} {peer_port} {inode}")
}

fn assert_contains(rows: &[Row], expected: BTreeSet<String>, table: &str, who: &str) {
    let listed: BTreeSet<String> = rows
        .iter()
        .map(|r| {
            let port = |key| u16::try_from(number(r, key)).expect("a port");
            inet_key(
                number(r, "netns"),
                &text(r, "state"),
                port("local_port"),
                port("peer_port"),
                number(r, "inode"),
            )
        })
        .collect();
    let missing: Vec<_> = expected.difference(&listed).collect();
    assert!(missing.is_empty(), "{who}: {table} lacks {} of /proc/net's sockets: {missing:?}", missing.len());
}
