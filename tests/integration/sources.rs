//! Choosing sources on the live host: the one-line note when libdrgn cannot attach, forcing
//! a source with `--source`, and the procfs source against netlink on the test's own sockets.

use std::path::Path;

use crate::support::*;

/// This machine has no /proc/kcore; the tests that depend on that say so and pass elsewhere.
fn without_kcore() -> bool {
    !Path::new("/proc/kcore").exists()
}

#[test]
fn live_host_without_libdrgn_says_why_once_and_falls_back() {
    if !without_kcore() {
        return;
    }
    let output = kql(&["-q", "ss-nlpt"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let notes: Vec<&str> = stderr.lines().filter(|line| line.contains("/proc/kcore")).collect();
    assert_eq!(notes.len(), 1, "one line says why: {stderr}");
    assert!(notes[0].contains("netlink") && notes[0].contains("procfs"), "and what is used: {stderr}");
    let tables = String::from_utf8(kql(&["tables", "--format", "csv"]).stdout).unwrap();
    assert!(tables.contains("tcp_listeners,netlink,"), "{tables}");
}

#[test]
fn forcing_drgn_where_it_cannot_attach_fails_in_one_line() {
    if !without_kcore() {
        return;
    }
    let error = kql_failure(&["--source", "drgn", "-q", "ss-nlpt"]);
    assert!(error.contains("/proc/kcore"), "{error}");
}

#[test]
fn procfs_source_matches_netlink_except_the_backlog() {
    let v4 = listen("127.0.0.1", ListenOptions { backlog: 21, ..Default::default() }).unwrap();
    let v6 = listen("::1", ListenOptions::default()).unwrap();
    let _queued = queue_connections("127.0.0.1", local_port(&v4), 2);
    let ports = format!("{}, {}", local_port(&v4), local_port(&v6));
    let sql = format!(
        "select netns, family, local_addr, local_port, inode, recv_q, send_q, uid from tcp_listeners \
         where local_port in ({ports}) order by local_port"
    );
    let netlink = kql_rows(&["--source", "netlink", &sql]);
    let procfs = kql_rows(&["--source", "procfs", &sql]);
    assert_eq!(netlink.len(), 2, "{netlink:?}");
    assert_eq!(netlink.iter().find(|r| r["local_port"] == local_port(&v4)).unwrap()["send_q"], 21);
    assert!(procfs.iter().all(|row| row["send_q"].is_null()), "{procfs:?}");
    let without_backlog = |rows: Vec<_>| -> Vec<_> {
        rows.into_iter()
            .map(|mut row: std::collections::BTreeMap<String, serde_json::Value>| {
                row.remove("send_q");
                row
            })
            .collect()
    };
    assert_eq!(without_backlog(procfs), without_backlog(netlink));
    let tables = String::from_utf8(kql(&["tables", "--source", "procfs", "--format", "csv"]).stdout).unwrap();
    assert!(tables.contains("tcp_listeners,procfs,"), "{tables}");
}
