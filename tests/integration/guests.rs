//! kql on real kernels: Debian 6.1, 6.12 and 5.10 guests under QEMU (the rig), read live
//! over QMP and from a vmcore of the same guest, each compared with what the guest reported
//! about itself (its /proc/net/tcp{,6} per namespace, /proc/PID/fd, /proc/PID/stat).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use kql_rig::guest::{BootOptions, Guest};
use kql_rig::kernels::{self, Series};
use kql_rig::truth::{Family, TcpEntry, Truth};
use serde_json::{Value, json};

use crate::support::{kql_failure, kql_rows, rig_workload};

/// A booted guest, its ground truth, and a vmcore dumped from it.
struct Booted {
    guest: Guest,
    truth: Truth,
    vmcore: PathBuf,
}

impl Booted {
    fn new(series: Series, scenario: &str) -> Booted {
        let kernel = kernels::fetch(series).unwrap_or_else(|e| panic!("fetch {}: {e}", series.name()));
        let workload = rig_workload();
        let options = BootOptions::new(&kernel, scenario, &workload);
        let guest = Guest::boot(&options).unwrap_or_else(|e| panic!("boot {}: {e}", series.name()));
        let truth = guest.truth().expect("the guest's ground truth");
        let vmcore = std::env::temp_dir().join(format!(
            "kql-test-{}-{scenario}-{}.vmcore",
            series.name(),
            std::process::id()
        ));
        guest.dump(&vmcore).expect("dump-guest-memory");
        Booted { guest, truth, vmcore }
    }

    fn vmlinux(&self) -> String {
        self.guest.kernel().vmlinux.display().to_string()
    }

    /// `--qmp SOCKET --vmlinux FILE`: the running guest.
    fn live(&self) -> Vec<String> {
        vec![
            "--qmp".into(),
            self.guest.qmp_socket().display().to_string(),
            "--vmlinux".into(),
            self.vmlinux(),
        ]
    }

    /// `--core FILE --vmlinux FILE`: its vmcore.
    fn dumped(&self) -> Vec<String> {
        vec!["--core".into(), self.vmcore.display().to_string(), "--vmlinux".into(), self.vmlinux()]
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.vmcore);
    }
}

fn rows(target: &[String], sql: &str) -> Vec<BTreeMap<String, Value>> {
    let mut args: Vec<&str> = target.iter().map(String::as_str).collect();
    args.push(sql);
    kql_rows(&args)
}

/// The scenario's record of the listener with `inode`.
fn scenario_listener(truth: &Truth, inode: u64) -> &Value {
    let listeners = truth.scenario["listeners"].as_array().expect("scenario listeners");
    listeners
        .iter()
        .find(|l| l["inode"].as_u64() == Some(inode))
        .unwrap_or_else(|| panic!("listener inode {inode} is not one the workload made"))
}

/// `tcp_listeners` equals the guest's /proc/net/tcp{,6} of every namespace, with the backlog,
/// v6only and SO_REUSEPORT the workload set.
fn assert_listeners(target: &[String], truth: &Truth) {
    let sql =
        "select netns, family, local_port, inode, recv_q, send_q, uid, v6only, reuseport from tcp_listeners";
    let got: BTreeSet<String> = rows(target, sql).iter().map(|r| json!(r).to_string()).collect();
    let expected: BTreeSet<String> = truth
        .listeners()
        .map(|entry| {
            let made = scenario_listener(truth, entry.inode);
            let v6 = entry.family == Family::Inet6;
            json!({
                "netns": entry.netns,
                "family": if v6 { "inet6" } else { "inet" },
                "local_port": entry.local_port,
                "inode": entry.inode,
                "recv_q": entry.rx_queue,
                "send_q": made["backlog"],
                "uid": entry.uid,
                "v6only": if v6 { made["v6only"].clone() } else { Value::Null },
                "reuseport": made["reuseport"],
            })
            .to_string()
        })
        .collect();
    assert!(expected.len() >= truth.scenario["listeners"].as_array().map_or(0, Vec::len));
    assert_eq!(got, expected, "tcp_listeners of {target:?}");
}

/// `proc_fds` has exactly the socket fds the guest's /proc/PID/fd shows.
fn assert_socket_fds(target: &[String], truth: &Truth) {
    let got: BTreeSet<(i64, String, i64, u64)> =
        rows(target, "select pid, comm, fd, inode from proc_fds where kind = 'socket'")
            .iter()
            .map(|r| {
                (
                    r["pid"].as_i64().unwrap(),
                    r["comm"].as_str().unwrap().to_string(),
                    r["fd"].as_i64().unwrap(),
                    r["inode"].as_u64().unwrap(),
                )
            })
            .collect();
    let expected: BTreeSet<(i64, String, i64, u64)> = truth
        .socket_fds
        .iter()
        .map(|f| (i64::from(f.pid), f.comm.clone(), i64::from(f.fd), f.inode))
        .collect();
    assert_eq!(got, expected, "socket fds of {target:?}");
}

/// `processes` has every workload process and PID 1 with the guest's ppid, comm and netns.
fn assert_processes(target: &[String], truth: &Truth) {
    let got: BTreeMap<i64, (i64, String, u64)> = rows(target, "select pid, ppid, comm, netns from processes")
        .iter()
        .map(|r| {
            let row = (
                r["ppid"].as_i64().unwrap(),
                r["comm"].as_str().unwrap().to_string(),
                r["netns"].as_u64().unwrap(),
            );
            (r["pid"].as_i64().unwrap(), row)
        })
        .collect();
    let ours = truth.processes.iter().filter(|p| p.pid == 1 || p.comm.starts_with("kqlw"));
    for process in ours {
        let expected = (i64::from(process.ppid), process.comm.clone(), process.netns);
        assert_eq!(got.get(&i64::from(process.pid)), Some(&expected), "pid {} of {target:?}", process.pid);
    }
    let kql_workers = got.values().filter(|(_, comm, _)| comm.starts_with("kqlw")).count();
    let guest_workers = truth.processes.iter().filter(|p| p.comm.starts_with("kqlw")).count();
    assert_eq!(kql_workers, guest_workers, "no extra workload processes in {target:?}");
}

/// An address:port as `ss -n` prints it.
fn ss_endpoint(addr: IpAddr, port: Option<u16>, v6only: bool) -> String {
    let port = port.map_or("*".to_string(), |p| p.to_string());
    match addr {
        IpAddr::V6(v6) if v6.is_unspecified() && !v6only => format!("*:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        IpAddr::V4(v4) => format!("{v4}:{port}"),
    }
}

/// What `ss -nlpt` run in the listener's namespace prints for it, from the guest's /proc.
fn expected_ss_line(truth: &Truth, entry: &TcpEntry) -> Value {
    let made = scenario_listener(truth, entry.inode);
    let v6only = made["v6only"].as_bool().unwrap_or(false);
    let mut holders: Vec<_> = truth.socket_fds.iter().filter(|f| f.inode == entry.inode).collect();
    holders.sort_by_key(|f| std::cmp::Reverse((f.pid, f.fd)));
    let users: Vec<String> =
        holders.iter().map(|f| format!("(\"{}\",pid={},fd={})", f.comm, f.pid, f.fd)).collect();
    json!({
        "State": "LISTEN",
        "Recv-Q": entry.rx_queue,
        "Send-Q": made["backlog"],
        "Local Address:Port": ss_endpoint(entry.local_addr, Some(entry.local_port), v6only),
        "Peer Address:Port": ss_endpoint(entry.remote_addr, None, v6only),
        "Process": format!("users:({})", users.join(",")),
    })
}

/// `kql -q ss-nlpt` shows every listener of every namespace as the guest's ss would.
fn assert_ss_nlpt(target: &[String], truth: &Truth) {
    let mut args: Vec<&str> = target.iter().map(String::as_str).collect();
    args.extend(["-q", "ss-nlpt"]);
    let got: BTreeSet<String> = kql_rows(&args).iter().map(|r| json!(r).to_string()).collect();
    let expected: BTreeSet<String> =
        truth.listeners().map(|entry| expected_ss_line(truth, entry).to_string()).collect();
    assert_eq!(got, expected, "ss-nlpt of {target:?}");
}

/// `threads` (walked through each process's thread list) agrees with the kernel's own
/// thread count of every process, and lists the workload's threads — `kqlw-alpha` runs two
/// named ones — as the guest's /proc/PID/task does.
fn assert_threads(target: &[String], truth: &Truth) {
    let sql = "select p.pid, p.threads, count(t.tid) as listed from processes p left join threads t using (pid) \
               group by p.pid, p.threads having count(t.tid) <> p.threads";
    assert_eq!(rows(target, sql), Vec::new(), "thread lists match nr_threads in {target:?}");
    let ours: BTreeSet<i32> =
        truth.processes.iter().filter(|p| p.comm.starts_with("kqlw")).map(|p| p.pid).collect();
    let pids = ours.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
    let listed: BTreeSet<(i64, i64, String)> =
        rows(target, &format!("select pid, tid, comm from threads where pid in ({pids})"))
            .iter()
            .map(|r| {
                (
                    r["pid"].as_i64().unwrap(),
                    r["tid"].as_i64().unwrap(),
                    r["comm"].as_str().unwrap().to_string(),
                )
            })
            .collect();
    let expected: BTreeSet<(i64, i64, String)> = truth
        .threads
        .iter()
        .filter(|t| ours.contains(&t.pid))
        .map(|t| (i64::from(t.pid), i64::from(t.tid), t.comm.clone()))
        .collect();
    assert!(expected.iter().any(|(_, _, comm)| comm == "kqlw-alpha-t2"), "the guest has the named threads");
    assert_eq!(listed, expected, "workload threads in {target:?}");
}

fn assert_every_table(target: &[String], truth: &Truth) {
    assert_listeners(target, truth);
    assert_socket_fds(target, truth);
    assert_processes(target, truth);
    assert_threads(target, truth);
    assert_ss_nlpt(target, truth);
}

fn live_and_dumped_guest_match_their_truth(series: Series) {
    let booted = Booted::new(series, "basic");
    assert_every_table(&booted.live(), &booted.truth);
    assert_every_table(&booted.dumped(), &booted.truth);
}

#[test]
fn debian_6_1_live_and_vmcore() {
    live_and_dumped_guest_match_their_truth(Series::Bookworm61);
}

#[test]
fn debian_6_12_live_and_vmcore() {
    live_and_dumped_guest_match_their_truth(Series::Bookworm612);
}

#[test]
fn debian_5_10_live_and_vmcore() {
    live_and_dumped_guest_match_their_truth(Series::Bullseye510);
}

#[test]
fn five_thousand_listeners_live_and_vmcore() {
    let booted = Booted::new(Series::Bookworm61, "many");
    assert!(booted.truth.listeners().count() >= 5000);
    for target in [booted.live(), booted.dumped()] {
        assert_listeners(&target, &booted.truth);
        assert_ss_nlpt(&target, &booted.truth);
    }
}

#[test]
fn bad_targets_fail_in_one_line() {
    let booted = Booted::new(Series::Bookworm61, "idle");
    let vmcore = booted.vmcore.display().to_string();
    let right = booted.vmlinux();
    let other = kernels::fetch(Series::Bookworm612).expect("fetch 6.12");
    let wrong = other.vmlinux.display().to_string();

    let error = kql_failure(&["--core", &vmcore, "--vmlinux", &wrong, "-q", "ss-nlpt"]);
    assert!(error.contains("does not match"), "{error}");
    assert!(error.contains(&booted.guest.kernel().build_id) && error.contains(&other.build_id), "{error}");
    assert!(error.contains(&wrong), "{error}");

    let missing = "/nonexistent/vmlinux";
    let error = kql_failure(&["--core", &vmcore, "--vmlinux", missing, "-q", "ss-nlpt"]);
    assert!(error.contains(missing), "{error}");

    let truncated = truncated_copy(&booted.vmcore, 64 << 20);
    let path = truncated.display().to_string();
    let error = kql_failure(&["--core", &path, "--vmlinux", &right, "-q", "ss-nlpt"]);
    let _ = std::fs::remove_file(&truncated);
    assert!(error.contains("truncated") && error.contains(&path), "{error}");

    let dead = dead_qmp_socket();
    let error = kql_failure(&["--qmp", &dead, "--vmlinux", &right, "-q", "ss-nlpt"]);
    let _ = std::fs::remove_file(&dead);
    assert!(error.contains(&dead) && error.contains("refused"), "{error}");

    let error = kql_failure(&["--core", &vmcore, "--source", "procfs", "-q", "ss-nlpt"]);
    assert!(error.contains("procfs"), "{error}");
}

fn truncated_copy(vmcore: &Path, len: u64) -> PathBuf {
    use std::io::Read;
    let path = vmcore.with_extension("truncated");
    let mut head = Vec::new();
    std::fs::File::open(vmcore).unwrap().take(len).read_to_end(&mut head).unwrap();
    std::fs::write(&path, head).unwrap();
    path
}

/// A socket file nobody listens on any more, as a QEMU that died leaves behind.
fn dead_qmp_socket() -> String {
    let path = std::env::temp_dir().join(format!("kql-test-dead-{}.qmp", std::process::id()));
    let _ = std::fs::remove_file(&path);
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    path.display().to_string()
}
