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

/// `/proc/kallsyms` as `uid` reads it: its first line's address, and whether it lists a
/// data symbol (`init_task`, listed only with CONFIG_KALLSYMS_ALL).
fn kallsyms_as(uid: u32) -> (u64, bool) {
    use std::os::unix::process::CommandExt;
    let output = std::process::Command::new("cat").arg("/proc/kallsyms").uid(uid).gid(uid).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.split_whitespace().next().and_then(|a| u64::from_str_radix(a, 16).ok()).unwrap();
    (first, text.lines().any(|line| line.ends_with(" init_task")))
}

/// kql as `uid`, expecting one `kql: ` line and a failure.
fn kql_failure_as(uid: u32, args: &[&str]) -> String {
    use std::os::unix::process::CommandExt;
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_kql")).args(args).uid(uid).gid(uid).output().unwrap();
    assert!(!output.status.success() && output.stdout.is_empty(), "kql {args:?} as {uid} should fail");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn asking_for_btf_names_what_is_missing_and_the_fix() {
    let error = kql_failure(&["--btf", "/nonexistent/vmlinux.btf", "-q", "ss-nlpt"]);
    assert!(error.contains("cannot read BTF /nonexistent/vmlinux.btf"), "{error}");
    let error = kql_failure(&["--btf", "/etc/hostname", "-q", "ss-nlpt"]);
    assert!(error.contains("/etc/hostname is not usable BTF"), "{error}");
    let error = kql_failure(&["--types", "btf", "--vmlinux", "/boot/vmlinux", "-q", "ss-nlpt"]);
    assert!(error.contains("--types btf") && error.contains("--vmlinux"), "{error}");

    let error = kql_failure(&["--types", "btf", "-q", "ss-nlpt"]);
    match kallsyms_as(0) {
        (_, false) => assert!(
            error.contains("/proc/kallsyms lists no data symbols") && error.contains("CONFIG_KALLSYMS_ALL"),
            "{error}"
        ),
        (_, true) => assert!(error.contains("/proc/kcore"), "{error}"),
    }
    if kallsyms_as(65534).0 == 0 {
        let error = kql_failure_as(65534, &["--types", "btf", "-q", "ss-nlpt"]);
        assert!(
            error.contains("/proc/kallsyms shows every address as 0") && error.contains("root"),
            "{error}"
        );
    }
}
