//! The scenarios: which processes the workload forks and which sockets each one holds.
//!
//! `basic` (fixed ports 7001..7009, one distinctive backlog each):
//!
//! | port | role               | address   | process(es)                 | backlog | notes                  |
//! |------|--------------------|-----------|-----------------------------|---------|------------------------|
//! | 7001 | `v4-loopback`      | 127.0.0.1 | `kqlw-alpha`                | 11      | 2 more threads         |
//! | 7002 | `v4-any`           | 0.0.0.0   | `kqlw-alpha`                | 12      |                        |
//! | 7003 | `v6-loopback`      | ::1       | `kqlw beta`                 | 13      | v6only set by kernel   |
//! | 7004 | `v6-any-dualstack` | ::        | `kqlw beta`                 | 14      | `IPV6_V6ONLY=0`        |
//! | 7005 | `v6-any-v6only`    | ::        | `kqlw beta`                 | 15      | `IPV6_V6ONLY=1`        |
//! | 7006 | `shared`           | 127.0.0.1 | `kqlw-gamma` + `kqlw-gamma-kid` | 16  | fd inherited by fork   |
//! | 7007 | `reuseport-a`      | 127.0.0.1 | `kqlw-rp-a`                 | 17      | `SO_REUSEPORT` group   |
//! | 7007 | `reuseport-b`      | 127.0.0.1 | `kqlw-rp-b`                 | 18      | `SO_REUSEPORT` group   |
//! | 7008 | `queued`           | 127.0.0.1 | `kqlw-delta`                | 7       | 3 connections queued   |
//! | 7009 | `netns`            | 0.0.0.0   | `kqlw-netns`                | 19      | in its own netns       |
//!
//! `kqlw-delta` also holds the 3 client sockets of the queued connections (`clients`);
//! `kqlw-alpha` runs two more threads, named `kqlw-alpha-t1` and `kqlw-alpha-t2`.
//! `kqlw-netns` brings `lo` up in its namespace and adds a `dummy` device there,
//! [`NETNS_DEVICE`] (MTU [`NETNS_DEVICE_MTU`], MAC [`NETNS_DEVICE_MAC`], up); if the kernel
//! cannot (no `dummy` module), it warns and the part `netns-device` is skipped. Other
//! scenarios skip that part: they make no second network namespace.
//!
//! `many` and `many20k`: loopback listeners on consecutive ports from 20000, split evenly
//! among processes in port order, role `many`, backlog `10 + port % 90`:
//!
//! | scenario  | listeners | address   | ports          | processes (listeners each)                 |
//! |-----------|-----------|-----------|----------------|--------------------------------------------|
//! | `many`    | 5,000     | 127.0.0.1 | 20000..=24999  | `kqlw-many-a`, `kqlw-many-b` (2,500)       |
//! | `many20k` | 20,000    | 127.0.0.1 | 20000..=39999  | `kqlw-huge-a` .. `kqlw-huge-d` (5,000)     |
//!
//! (`kqlw-many-a` holds 20000..=22499, `kqlw-huge-b` 25000..=29999, and so on.) The workload
//! raises `RLIMIT_NOFILE` as far as one process needs before it forks them.
//!
//! `idle`: nothing; only the main process (`kqlw-main`).
//!
//! `sockets`: TCP, UDP and unix sockets in every state a guest can hold, in the initial and
//! in a second network namespace, plus many established loopback connections: see
//! [`crate::sockets`]. Its second namespace has no `dummy` device (part `netns-device` is
//! skipped).
//!
//! `churn`: listeners, TCP connections, UDP and unix sockets made and closed all the time in
//! two network namespaces, and short-lived processes and threads, each logged: see
//! [`crate::churn`]. Its second namespace has no `dummy` device either.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use kql_rig::kernel_truth::Part;
use kql_rig::{Result, rig_error};
use serde_json::{Value, json};

use crate::process;
use crate::sys::{self, ListenSpec};

/// The `dummy` device `kqlw-netns` adds to its network namespace.
pub const NETNS_DEVICE: &str = "kqlw-dummy";
/// Its MTU.
pub const NETNS_DEVICE_MTU: u32 = 1400;
/// Its MAC address (locally administered: `02:…`).
pub const NETNS_DEVICE_MAC: [u8; 6] = [0x02, 0x6b, 0x71, 0x6c, 0x77, 0x01];

/// A process the workload created (or is).
#[derive(Debug, Clone)]
pub struct Proc {
    pub name: String,
    pub pid: i32,
    pub ppid: i32,
}

/// A listener the workload created.
#[derive(Debug, Clone)]
pub struct ListenerRecord {
    pub role: String,
    /// Name of the process that created it.
    pub process: String,
    /// Every process holding a descriptor on it.
    pub pids: Vec<i32>,
    pub spec: ListenSpec,
    pub inode: u64,
    /// `IPV6_V6ONLY` as the kernel reports it, `None` for IPv4.
    pub v6only: Option<bool>,
    /// Connections in its accept queue.
    pub queued: u32,
}

/// A connected client socket the workload keeps open.
#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub role: String,
    pub process: String,
    pub pid: i32,
    pub inode: u64,
    pub remote_addr: IpAddr,
    pub remote_port: u16,
}

/// Everything a scenario created.
#[derive(Debug, Default)]
pub struct Created {
    pub processes: Vec<Proc>,
    pub listeners: Vec<ListenerRecord>,
    pub clients: Vec<ClientRecord>,
    /// Optional parts it could not make, with the reason.
    pub skipped: Vec<(Part, String)>,
    /// What the `sockets` scenario made (`scenario.json`'s `sockets`), `None` for the others.
    pub sockets: Option<Value>,
    /// Where the `churn` scenario logs what it makes (`scenario.json`'s `churn`).
    pub churn: Option<Value>,
}

/// What a worker does besides opening its listeners.
#[derive(Debug, Clone, Copy)]
enum Extra {
    None,
    /// Fork a child with this name that keeps the worker's descriptors.
    SharedWithKid(&'static str),
    /// Queue this many connections on the first listener, never accepted.
    Queue(u32),
    /// Move to a new network namespace first.
    NewNetns,
    /// Start threads with these names that wait forever.
    Threads(&'static [&'static str]),
}

const LOOPBACK4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const ANY4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
const LOOPBACK6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
const ANY6: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

fn spec(addr: IpAddr, port: u16, backlog: u32) -> ListenSpec {
    ListenSpec { addr, port, backlog, v6only: None, reuseport: false }
}

/// Runs scenario `name` in the calling (main) process.
pub fn run(name: &str, main: Proc) -> Result<Created> {
    let mut created = Created { processes: vec![main], ..Created::default() };
    match name {
        "basic" => basic(&mut created)?,
        "many" => many(&mut created, &MANY)?,
        "many20k" => many(&mut created, &MANY20K)?,
        "idle" => {}
        "sockets" => crate::sockets::run(&mut created)?,
        "churn" => crate::churn::run(&mut created)?,
        _ => {
            return Err(rig_error!(
                "unknown scenario {name:?} (expected basic, many, many20k, idle, sockets or churn)"
            ));
        }
    }
    if name == "sockets" || name == "churn" {
        let reason = format!("scenario {name} adds no dummy device to its second network namespace");
        created.skipped.push((Part::NetnsDevice, reason));
    } else if name != "basic" {
        let reason = format!("scenario {name} makes no second network namespace");
        created.skipped.push((Part::NetnsDevice, reason));
    }
    Ok(created)
}

fn basic(created: &mut Created) -> Result<()> {
    let v6 = |addr, port, backlog, v6only| ListenSpec { v6only, ..spec(addr, port, backlog) };
    let reuseport = |port, backlog| ListenSpec { reuseport: true, ..spec(LOOPBACK4, port, backlog) };
    worker(
        created,
        "kqlw-alpha",
        vec![("v4-loopback", spec(LOOPBACK4, 7001, 11)), ("v4-any", spec(ANY4, 7002, 12))],
        Extra::Threads(&["kqlw-alpha-t1", "kqlw-alpha-t2"]),
    )?;
    worker(
        created,
        "kqlw beta",
        vec![
            ("v6-loopback", v6(LOOPBACK6, 7003, 13, None)),
            ("v6-any-dualstack", v6(ANY6, 7004, 14, Some(false))),
            ("v6-any-v6only", v6(ANY6, 7005, 15, Some(true))),
        ],
        Extra::None,
    )?;
    worker(
        created,
        "kqlw-gamma",
        vec![("shared", spec(LOOPBACK4, 7006, 16))],
        Extra::SharedWithKid("kqlw-gamma-kid"),
    )?;
    worker(created, "kqlw-rp-a", vec![("reuseport-a", reuseport(7007, 17))], Extra::None)?;
    worker(created, "kqlw-rp-b", vec![("reuseport-b", reuseport(7007, 18))], Extra::None)?;
    worker(created, "kqlw-delta", vec![("queued", spec(LOOPBACK4, 7008, 7))], Extra::Queue(3))?;
    worker(created, "kqlw-netns", vec![("netns", spec(ANY4, 7009, 19))], Extra::NewNetns)?;
    Ok(())
}

/// A scenario of many loopback listeners on consecutive ports, split evenly among processes.
struct Many {
    ports: std::ops::Range<u16>,
    processes: &'static [&'static str],
}

/// `many`: 5,000 listeners in 2 processes.
const MANY: Many = Many { ports: 20000..25000, processes: &["kqlw-many-a", "kqlw-many-b"] };

/// `many20k`: 20,000 listeners in 4 processes.
const MANY20K: Many =
    Many { ports: 20000..40000, processes: &["kqlw-huge-a", "kqlw-huge-b", "kqlw-huge-c", "kqlw-huge-d"] };

fn many(created: &mut Created, scenario: &Many) -> Result<()> {
    let per_process = scenario.ports.len().div_ceil(scenario.processes.len());
    // Each worker holds its share of the listeners, plus stdio, pipes and some slack.
    sys::ensure_nofile(per_process as u64 + 64)?;
    let ports: Vec<u16> = scenario.ports.clone().collect();
    for (name, ports) in scenario.processes.iter().zip(ports.chunks(per_process)) {
        let specs =
            ports.iter().map(|&port| ("many", spec(LOOPBACK4, port, 10 + u32::from(port) % 90))).collect();
        worker(created, name, specs, Extra::None)?;
    }
    Ok(())
}

/// Forks worker `name`, which opens `listeners` and does `extra`, and records what it made.
fn worker(created: &mut Created, name: &str, listeners: Vec<(&str, ListenSpec)>, extra: Extra) -> Result<()> {
    let specs: Vec<ListenSpec> = listeners.iter().map(|(_, spec)| spec.clone()).collect();
    let queued = match extra {
        Extra::Queue(count) => count,
        _ => 0,
    };
    let body = || -> Result<Value> {
        let mut report = json!({});
        if let Extra::NewNetns = extra {
            sys::unshare_net()?;
            // Not needed for a listener on 0.0.0.0; nice to have for anyone connecting.
            if let Err(error) = sys::loopback_up() {
                eprintln!("kql-rig-workload: warning: {name}: lo stays down in the new netns: {error}");
            }
            let device = sys::create_dummy(NETNS_DEVICE, NETNS_DEVICE_MTU, NETNS_DEVICE_MAC)
                .and_then(|()| sys::link_up(NETNS_DEVICE));
            if let Err(error) = device {
                eprintln!("kql-rig-workload: warning: {name}: no {NETNS_DEVICE} in the new netns: {error}");
                report["device_error"] = json!(error.0);
            }
        }
        let mut opened = Vec::new();
        for spec in &specs {
            opened.push(sys::listen(spec)?);
        }
        report["listeners"] =
            opened.iter().map(|l| json!({ "inode": l.inode, "v6only": l.v6only })).collect();
        match extra {
            Extra::SharedWithKid(kid_name) => {
                let kid = process::spawn(kid_name, || Ok(json!({})))?;
                report["kid"] = json!(kid.pid);
            }
            Extra::Queue(count) => {
                let (listener, spec) = (opened[0], &specs[0]);
                let mut clients = Vec::new();
                for _ in 0..count {
                    let (_fd, inode) = sys::connect(spec.addr, spec.port)?;
                    clients.push(inode);
                }
                wait_accept_queue(listener.fd, count)?;
                report["clients"] = json!(clients);
            }
            Extra::Threads(names) => start_threads(names)?,
            Extra::None | Extra::NewNetns => {}
        }
        Ok(report)
    };
    let worker = process::spawn(name, body)?;

    let report = &worker.report;
    let bad = || rig_error!("worker {name:?}: bad report {report}");
    let opened = report["listeners"].as_array().ok_or_else(bad)?;
    if opened.len() != listeners.len() {
        return Err(bad());
    }
    let main_pid = sys::getpid();
    created.processes.push(Proc { name: name.to_string(), pid: worker.pid, ppid: main_pid });
    let mut pids = vec![worker.pid];
    if let Extra::SharedWithKid(kid_name) = extra {
        let kid = report["kid"].as_i64().ok_or_else(bad)? as i32;
        created.processes.push(Proc { name: kid_name.to_string(), pid: kid, ppid: worker.pid });
        pids.push(kid);
    }
    let first_spec = listeners.first().map(|(_, spec)| spec.clone()).ok_or_else(bad)?;
    for (index, ((role, spec), opened)) in listeners.into_iter().zip(opened).enumerate() {
        created.listeners.push(ListenerRecord {
            role: role.to_string(),
            process: name.to_string(),
            pids: pids.clone(),
            inode: opened["inode"].as_u64().ok_or_else(bad)?,
            v6only: opened["v6only"].as_bool(),
            // Connections are queued on the worker's first listener only.
            queued: if index == 0 { queued } else { 0 },
            spec,
        });
    }
    if let Some(error) = report.get("device_error") {
        created.skipped.push((Part::NetnsDevice, error.as_str().ok_or_else(bad)?.to_string()));
    }
    if let Some(clients) = report.get("clients") {
        for inode in clients.as_array().ok_or_else(bad)? {
            created.clients.push(ClientRecord {
                role: "queued-client".to_string(),
                process: name.to_string(),
                pid: worker.pid,
                inode: inode.as_u64().ok_or_else(bad)?,
                remote_addr: first_spec.addr,
                remote_port: first_spec.port,
            });
        }
    }
    Ok(())
}

/// Waits until the listener's accept queue holds `count` connections (loopback handshakes
/// complete almost at once, but not necessarily before `connect` returns).
/// Starts a thread per name that parks forever; returns once each runs under its name.
fn start_threads(names: &[&str]) -> Result<()> {
    let (started, running) = std::sync::mpsc::channel();
    for name in names {
        let started = started.clone();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let _ = started.send(());
                loop {
                    std::thread::park();
                }
            })
            .map_err(|e| rig_error!("thread {name}: {e}"))?;
    }
    for name in names {
        running
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| rig_error!("thread {name} never started"))?;
    }
    Ok(())
}

fn wait_accept_queue(fd: libc::c_int, count: u32) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, queued) = sys::listen_queue(fd)?;
        if queued == count {
            return Ok(());
        }
        if queued > count || Instant::now() > deadline {
            return Err(rig_error!("accept queue holds {queued} connections, expected {count}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
