//! Runs `kql-rig-workload` on this host, inside a throwaway network namespace (so its fixed
//! ports cannot collide with anything), and checks the ground truth it writes against what
//! it says it created: every listener in the right namespace's TCP table with the right
//! address, port and accept queue, held by exactly the processes it names, which have the
//! right names.
//!
//! Needs root and iproute2 (`ip netns`), and fails without them. The workload's
//! process tree, the namespace and the share directory are always cleaned up by [`Run`]'s
//! `Drop` (the share directory is kept when a test fails, for inspection).

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use kql_rig::truth::{self, Family, TCP_LISTEN, TcpEntry, Truth};
use serde_json::Value;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const WORKLOAD: &str = env!("CARGO_BIN_EXE_kql-rig-workload");

/// One workload run: a network namespace, a share directory and the workload's process.
struct Run {
    scenario: &'static str,
    netns: String,
    netns_added: bool,
    share: PathBuf,
    child: Option<Child>,
}

impl Run {
    /// Starts `scenario` in a new network namespace. Needs root and `ip`: without them the
    /// test fails, it is never skipped.
    fn start(scenario: &'static str) -> Run {
        assert!(nix::unistd::geteuid().is_root(), "the rig tests need root (ip netns)");
        let iproute2 = Command::new("ip").arg("-V").stdout(Stdio::null()).status();
        assert!(iproute2.is_ok(), "the rig tests need `ip` (iproute2)");
        let tag = format!("kqlwl-test-{}-{scenario}", std::process::id());
        let share = std::env::temp_dir().join(format!("{tag}-share"));
        let mut run = Run { scenario, netns: tag.clone(), netns_added: false, share, child: None };
        let _ = fs::remove_dir_all(&run.share);
        fs::create_dir_all(&run.share).unwrap();
        ip(&["netns", "add", &tag]);
        run.netns_added = true;
        ip(&["-n", &tag, "link", "set", "lo", "up"]);
        let child = Command::new("ip")
            .args(["netns", "exec", &tag, WORKLOAD, scenario])
            .arg(&run.share)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn ip netns exec kql-rig-workload");
        run.child = Some(child);
        run
    }

    /// Waits for `SHARE/ready`; panics with the workload's message if it failed.
    fn wait_ready(&mut self) -> Duration {
        let start = Instant::now();
        loop {
            if self.share.join("ready").exists() {
                let elapsed = start.elapsed();
                eprintln!("{}: ready after {elapsed:.2?}", self.scenario);
                return elapsed;
            }
            if let Ok(message) = fs::read_to_string(self.share.join("failed")) {
                panic!("workload {} failed: {}", self.scenario, message.trim());
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("workload {} exited ({status}) before it was ready", self.scenario);
            }
            assert!(
                start.elapsed() < READY_TIMEOUT,
                "workload {} not ready after {READY_TIMEOUT:?}",
                self.scenario
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn truth(&self) -> Truth {
        Truth::load(&self.share).unwrap_or_else(|e| panic!("Truth::load: {e}"))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            kill_tree(child.id() as i32);
            let _ = child.wait();
        }
        if self.netns_added {
            let _ = Command::new("ip").args(["netns", "del", &self.netns]).status();
        }
        if thread::panicking() {
            eprintln!("kept {} for inspection", self.share.display());
        } else {
            let _ = fs::remove_dir_all(&self.share);
        }
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {}: {status}", args.join(" "));
}

/// `pid -> ppid` of every process.
fn parents() -> HashMap<i32, i32> {
    let mut parents = HashMap::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
        if let Some(ppid) = ppid {
            parents.insert(pid, ppid);
        }
    }
    parents
}

/// `root` and all its descendants.
fn tree(root: i32) -> BTreeSet<i32> {
    let parents = parents();
    let mut tree = BTreeSet::from([root]);
    loop {
        let more: Vec<i32> = parents
            .iter()
            .filter(|(pid, ppid)| tree.contains(ppid) && !tree.contains(pid))
            .map(|(pid, _)| *pid)
            .collect();
        if more.is_empty() {
            return tree;
        }
        tree.extend(more);
    }
}

/// Kills `root` (a child of this test) and all its descendants: stops the whole tree first
/// (so nothing forks or gets reparented meanwhile), then SIGKILLs it.
fn kill_tree(root: i32) {
    let me = std::process::id() as i32;
    let mut stopped = BTreeSet::new();
    for _ in 0..100 {
        let new: Vec<i32> = tree(root).into_iter().filter(|pid| !stopped.contains(pid)).collect();
        if new.is_empty() {
            break;
        }
        for pid in new {
            if pid > 1 && pid != me {
                // A pid of our own process tree; failure only means it is gone.
                let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
            }
            stopped.insert(pid);
        }
    }
    for pid in stopped {
        if pid > 1 && pid != me {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Checks what every scenario must satisfy; returns the main process's netns.
fn check_common(truth: &Truth, scenario: &str) -> u64 {
    let json = &truth.scenario;
    assert_eq!(json["scenario"], scenario);
    assert_eq!(truth.release, fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim());
    let host_build_id = truth::parse_build_id(&fs::read("/sys/kernel/notes").unwrap()).unwrap();
    assert_eq!(truth.build_id, host_build_id);

    // Every process the workload made: alive, named, parented and namespaced as it says.
    let processes = json["processes"].as_array().unwrap();
    assert_eq!(processes[0]["name"], "kqlw-main");
    assert_eq!(processes[0]["pid"], json["workload_pid"]);
    for p in processes {
        let pid = p["pid"].as_i64().unwrap() as i32;
        let seen = truth.process(pid).unwrap_or_else(|| panic!("process {p} not in processes.tsv"));
        assert_eq!(seen.comm, p["name"].as_str().unwrap(), "{p}");
        assert_eq!(i64::from(seen.ppid), p["ppid"].as_i64().unwrap(), "{p}");
        assert_eq!(seen.netns, p["netns"].as_u64().unwrap(), "{p}");
    }
    let main_netns = processes[0]["netns"].as_u64().unwrap();

    // Every listener: in its namespace's table, where it says, held by exactly its pids.
    let by_inode: HashMap<u64, &TcpEntry> = truth.listeners().map(|e| (e.inode, e)).collect();
    for l in json["listeners"].as_array().unwrap() {
        let inode = l["inode"].as_u64().unwrap();
        let entry =
            by_inode.get(&inode).unwrap_or_else(|| panic!("listener {l}: inode not in any LISTEN row"));
        assert_eq!(entry.netns, l["netns"].as_u64().unwrap(), "{l}");
        assert_eq!(entry.local_port, l["port"].as_u64().unwrap() as u16, "{l}");
        assert_eq!(entry.local_addr, l["address"].as_str().unwrap().parse::<IpAddr>().unwrap(), "{l}");
        let family = if l["family"] == "inet" { Family::Inet } else { Family::Inet6 };
        assert_eq!(entry.family, family, "{l}");
        assert_eq!(u64::from(entry.rx_queue), l["queued"].as_u64().unwrap(), "{l}");
        let mut pids: Vec<i32> =
            l["pids"].as_array().unwrap().iter().map(|p| p.as_i64().unwrap() as i32).collect();
        pids.sort_unstable();
        assert_eq!(truth.pids_holding(inode), pids, "{l}");
        let first = l["pids"][0].as_i64().unwrap() as i32;
        assert_eq!(truth.process(first).unwrap().comm, l["process"].as_str().unwrap(), "{l}");
    }

    // Every client socket the workload keeps: connected where it says.
    for c in json["clients"].as_array().unwrap() {
        let inode = c["inode"].as_u64().unwrap();
        let entry =
            truth.tcp.iter().find(|e| e.inode == inode).unwrap_or_else(|| panic!("client {c} not found"));
        assert_eq!(entry.state, 0x01, "{c}: not ESTABLISHED");
        assert_eq!(entry.remote_port, c["remote_port"].as_u64().unwrap() as u16, "{c}");
        assert_eq!(entry.netns, c["netns"].as_u64().unwrap(), "{c}");
        assert_eq!(truth.pids_holding(inode), [c["pid"].as_i64().unwrap() as i32], "{c}");
    }
    main_netns
}

fn listener<'a>(json: &'a Value, role: &str) -> &'a Value {
    let mut found = json["listeners"].as_array().unwrap().iter().filter(|l| l["role"] == role);
    let l = found.next().unwrap_or_else(|| panic!("no listener {role}"));
    assert!(found.next().is_none(), "two listeners {role}");
    l
}

/// A listener `basic` must make: role, process, address, port, backlog, queued, v6only, reuseport.
type Expected = (&'static str, &'static str, &'static str, u16, u64, u64, Option<bool>, bool);

/// What `basic` must have made.
/// (Binding a specific IPv6 address, like ::1, makes the kernel set IPV6_V6ONLY itself.)
#[rustfmt::skip]
const BASIC: &[Expected] = &[
    ("v4-loopback",      "kqlw-alpha", "127.0.0.1", 7001, 11, 0, None,        false),
    ("v4-any",           "kqlw-alpha", "0.0.0.0",   7002, 12, 0, None,        false),
    ("v6-loopback",      "kqlw beta",  "::1",       7003, 13, 0, Some(true),  false),
    ("v6-any-dualstack", "kqlw beta",  "::",        7004, 14, 0, Some(false), false),
    ("v6-any-v6only",    "kqlw beta",  "::",        7005, 15, 0, Some(true),  false),
    ("shared",           "kqlw-gamma", "127.0.0.1", 7006, 16, 0, None,        false),
    ("reuseport-a",      "kqlw-rp-a",  "127.0.0.1", 7007, 17, 0, None,        true),
    ("reuseport-b",      "kqlw-rp-b",  "127.0.0.1", 7007, 18, 0, None,        true),
    ("queued",           "kqlw-delta", "127.0.0.1", 7008, 7,  3, None,        false),
    ("netns",            "kqlw-netns", "0.0.0.0",   7009, 19, 0, None,        false),
];

#[test]
fn basic() {
    let mut run = Run::start("basic");
    run.wait_ready();
    let truth = run.truth();
    let main_netns = check_common(&truth, "basic");
    let json = &truth.scenario;

    assert_eq!(json["listeners"].as_array().unwrap().len(), BASIC.len());
    for &(role, process, address, port, backlog, queued, v6only, reuseport) in BASIC {
        let l = listener(json, role);
        assert_eq!(l["process"], process, "{l}");
        assert_eq!(l["address"], address, "{l}");
        assert_eq!(l["port"], port, "{l}");
        assert_eq!(l["backlog"], backlog, "{l}");
        assert_eq!(l["queued"], queued, "{l}");
        assert_eq!(l["v6only"].as_bool(), v6only, "{l}");
        assert_eq!(l["reuseport"], reuseport, "{l}");
        let netns = l["netns"].as_u64().unwrap();
        assert_eq!(netns == main_netns, role != "netns", "{l}: netns {netns}, main {main_netns}");
    }

    // The process with a space in its name, as /proc shows it.
    assert!(truth.processes.iter().any(|p| p.comm == "kqlw beta"));
    // The shared listener: parent and forked child hold the same socket.
    let shared = listener(json, "shared");
    let pids = shared["pids"].as_array().unwrap();
    assert_eq!(pids.len(), 2);
    let kid = truth.process(pids[1].as_i64().unwrap() as i32).unwrap();
    assert_eq!((kid.comm.as_str(), i64::from(kid.ppid)), ("kqlw-gamma-kid", pids[0].as_i64().unwrap()));
    // The SO_REUSEPORT group: two sockets on one port, in two processes.
    let group: Vec<&TcpEntry> =
        truth.listeners().filter(|e| e.netns == main_netns && e.local_port == 7007).collect();
    assert_eq!(group.len(), 2);
    assert_ne!(group[0].inode, group[1].inode);
    assert_ne!(truth.pids_holding(group[0].inode), truth.pids_holding(group[1].inode));
    // The queued listener: 3 connections in the accept queue, not accepted (no inode yet).
    let queued = truth.listeners().find(|e| e.netns == main_netns && e.local_port == 7008).unwrap();
    assert_eq!(queued.rx_queue, 3);
    let pending =
        truth.tcp.iter().filter(|e| e.netns == main_netns && e.local_port == 7008 && e.state == 0x01);
    assert_eq!(pending.filter(|e| e.inode == 0).count(), 3);
    assert_eq!(json["clients"].as_array().unwrap().len(), 3);
    // The dual-stack and v6-only listeners are both in tcp6 as `::`.
    for port in [7004, 7005] {
        let e = truth.listeners().find(|e| e.netns == main_netns && e.local_port == port).unwrap();
        assert_eq!((e.family, e.local_addr), (Family::Inet6, "::".parse().unwrap()));
    }
    assert!(truth.listeners().all(|e| e.state == TCP_LISTEN));
}

/// Checks a `many`-like scenario: `processes` each hold an equal run of the loopback ports
/// `ports`, in order.
fn check_many(scenario: &'static str, ports: std::ops::Range<u16>, processes: &[&str]) {
    let mut run = Run::start(scenario);
    run.wait_ready();
    let truth = run.truth();
    let main_netns = check_common(&truth, scenario);
    let listeners = truth.scenario["listeners"].as_array().unwrap();
    assert_eq!(listeners.len(), ports.len());
    let made: BTreeSet<u64> = listeners.iter().map(|l| l["port"].as_u64().unwrap()).collect();
    assert_eq!(made, ports.clone().map(u64::from).collect());
    let in_table: BTreeSet<u16> = truth
        .listeners()
        .filter(|e| e.netns == main_netns && e.local_addr == IpAddr::from([127, 0, 0, 1]))
        .map(|e| e.local_port)
        .collect();
    assert_eq!(in_table, ports.clone().collect());
    let each = ports.len() / processes.len();
    for (index, name) in processes.iter().enumerate() {
        let held: Vec<u64> =
            listeners.iter().filter(|l| l["process"] == *name).map(|l| l["port"].as_u64().unwrap()).collect();
        let first = u64::from(ports.start) + (index * each) as u64;
        assert_eq!(held, (first..first + each as u64).collect::<Vec<_>>(), "{name}");
        assert!(truth.processes.iter().any(|p| p.comm == *name), "{name}");
    }
    for l in listeners {
        assert_eq!(l["role"], "many", "{l}");
        assert_eq!(l["backlog"], 10 + l["port"].as_u64().unwrap() % 90, "{l}");
    }
}

#[test]
fn many() {
    check_many("many", 20000..25000, &["kqlw-many-a", "kqlw-many-b"]);
}

#[test]
fn many20k() {
    check_many("many20k", 20000..40000, &["kqlw-huge-a", "kqlw-huge-b", "kqlw-huge-c", "kqlw-huge-d"]);
}

#[test]
fn idle() {
    let mut run = Run::start("idle");
    run.wait_ready();
    let truth = run.truth();
    check_common(&truth, "idle");
    assert!(truth.scenario["listeners"].as_array().unwrap().is_empty());
    assert!(run.share.join("truth/kernel-notes").exists());
}
