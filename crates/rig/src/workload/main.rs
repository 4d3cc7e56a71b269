//! `kql-rig-workload SCENARIO SHARE_DIR`: the program the rig's guests run.
//!
//! It creates the sockets and processes of `SCENARIO` (see [`scenarios`]), waits until every
//! worker process has reported ready, makes a few more kernel objects (a BPF program and map,
//! cgroups: see [`kernel_objects`]), writes the ground truth into `SHARE_DIR/truth/` (see
//! [`ground_truth`]) and the list of what it created into `SHARE_DIR/truth/scenario.json`, then
//! creates `SHARE_DIR/ready` last and sleeps forever: the guest is torn down from outside.
//!
//! On any failure it prints one line to stderr, writes it to `SHARE_DIR/failed` instead of
//! `ready`, and exits, so the host fails fast with that message.
//!
//! `scenario.json`:
//!
//! ```json
//! {
//!   "scenario": "basic",
//!   "workload_version": 1,
//!   "workload_pid": 123,
//!   "processes": [{"name": "kqlw-main", "pid": 123, "ppid": 1, "netns": 4026531840}, ...],
//!   "listeners": [{"role": "v4-loopback", "process": "kqlw-alpha", "pids": [124],
//!                  "family": "inet", "address": "127.0.0.1", "port": 7001, "v6only": null,
//!                  "backlog": 11, "queued": 0, "netns": 4026531840, "reuseport": false,
//!                  "inode": 5678}, ...],
//!   "clients": [{"role": "queued-client", "process": "kqlw-delta", "pid": 130, "inode": 5690,
//!                "family": "inet", "remote_address": "127.0.0.1", "remote_port": 7008,
//!                "netns": 4026531840}, ...]
//! }
//! ```
//!
//! The `churn` scenario adds `"churn": {"log_dir": "/tmp/kqlw-churn"}` (see [`churn`]).
//! The `sockets` scenario adds `"sockets": {"records": [...], "bulk_pairs": 500,
//! "bulk_port": 7110, "child_tables": {"tcp": true, "udp": false}}`, each record one socket
//! (see [`sockets`]) with its worker's `process`, `pid` and `netns`.

mod churn;
mod ground_truth;
mod kernel_objects;
mod process;
mod scenarios;
mod sockets;
mod sys;

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use kql_rig::{Result, rig_error};
use serde_json::{Value, json};

use scenarios::{Created, Proc};

/// `SHARE_DIR`, for [`fail`].
static SHARE_DIR: OnceLock<PathBuf> = OnceLock::new();

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [scenario, share_dir] = &args[..] else {
        eprintln!("usage: kql-rig-workload basic|many|many20k|idle|sockets|churn SHARE_DIR");
        std::process::exit(2);
    };
    let share_dir = PathBuf::from(share_dir);
    SHARE_DIR.get_or_init(|| share_dir.clone());
    // No unwinding anywhere: a forked worker must never return into its parent's code.
    std::panic::set_hook(Box::new(|info| fail(&format!("panic: {info}"))));
    match run(scenario, &share_dir) {
        Ok(()) => sys::pause_forever(),
        Err(error) => fail(&error.0),
    }
}

/// Prints `message`, leaves it in `SHARE_DIR/failed` (the first failure wins) and exits.
fn fail(message: &str) -> ! {
    eprintln!("kql-rig-workload: error: {message}");
    if let Some(share_dir) = SHARE_DIR.get() {
        let path = share_dir.join("failed");
        let write = || -> io::Result<()> {
            use std::io::Write;
            let mut file = fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
            writeln!(file, "{message}")?;
            file.sync_all()
        };
        match write() {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => eprintln!("kql-rig-workload: error: {}: {error}", path.display()),
        }
    }
    sys::exit_now(1)
}

fn run(scenario: &str, share_dir: &Path) -> Result<()> {
    let start = Instant::now();
    // Leftovers of an earlier run would fool the host.
    for name in ["ready", "failed"] {
        match fs::remove_file(share_dir.join(name)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                return Err(rig_error!("{}: {error}", share_dir.join(name).display()));
            }
            _ => {}
        }
    }
    let truth_dir = share_dir.join("truth");
    match fs::remove_dir_all(&truth_dir) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            return Err(rig_error!("{}: {error}", truth_dir.display()));
        }
        _ => {}
    }

    sys::set_name("kqlw-main")?;
    let ppid = sys::getppid();
    let main = Proc { name: "kqlw-main".into(), pid: sys::getpid(), ppid };
    let created = scenarios::run(scenario, main)?;
    // After the workers are forked, so that only the main process holds the BPF objects.
    let objects = kernel_objects::setup();

    let json = scenario_json(scenario, &created)?;
    let ours: Vec<i32> = created.processes.iter().map(|p| p.pid).collect();
    let skipped = [&created.skipped[..], &objects.skipped[..]].concat();
    ground_truth::write(&truth_dir, &json, &ours, &objects, skipped)?;

    let seconds = start.elapsed().as_secs_f64();
    ground_truth::write_file(&share_dir.join("ready"), format!("ready after {seconds:.3} s\n").as_bytes())?;
    // Best effort: 9p may not support fsync on a directory, and the file itself is synced.
    if let Ok(dir) = fs::File::open(share_dir) {
        let _ = dir.sync_all();
    }
    eprintln!("kql-rig-workload: {scenario}: ready after {seconds:.3} s");
    Ok(())
}

/// Inode of the network namespace of `pid`.
fn netns_of(pid: i32) -> Result<u64> {
    let path = format!("/proc/{pid}/ns/net");
    Ok(fs::metadata(&path).map_err(|e| rig_error!("{path}: {e}"))?.ino())
}

fn family(addr: std::net::IpAddr) -> &'static str {
    if addr.is_ipv4() { "inet" } else { "inet6" }
}

/// `scenario.json` (see the module documentation).
fn scenario_json(scenario: &str, created: &Created) -> Result<Value> {
    let mut processes = Vec::new();
    for p in &created.processes {
        processes.push(json!({ "name": p.name, "pid": p.pid, "ppid": p.ppid, "netns": netns_of(p.pid)? }));
    }
    let mut listeners = Vec::new();
    for l in &created.listeners {
        listeners.push(json!({
            "role": l.role,
            "process": l.process,
            "pids": l.pids,
            "family": family(l.spec.addr),
            "address": l.spec.addr.to_string(),
            "port": l.spec.port,
            "v6only": l.v6only,
            "backlog": l.spec.backlog,
            "queued": l.queued,
            "netns": netns_of(l.pids[0])?,
            "reuseport": l.spec.reuseport,
            "inode": l.inode,
        }));
    }
    let mut clients = Vec::new();
    for c in &created.clients {
        clients.push(json!({
            "role": c.role,
            "process": c.process,
            "pid": c.pid,
            "inode": c.inode,
            "family": family(c.remote_addr),
            "remote_address": c.remote_addr.to_string(),
            "remote_port": c.remote_port,
            "netns": netns_of(c.pid)?,
        }));
    }
    let mut json = json!({
        "scenario": scenario,
        "workload_version": kql_rig::truth::WORKLOAD_VERSION,
        "workload_pid": sys::getpid(),
        "processes": processes,
        "listeners": listeners,
        "clients": clients,
    });
    if let Some(churn) = &created.churn {
        json["churn"] = churn.clone();
    }
    if let Some(sockets) = &created.sockets {
        let mut sockets = sockets.clone();
        for record in sockets["records"].as_array_mut().into_iter().flatten() {
            let pid =
                record["pid"].as_i64().ok_or_else(|| rig_error!("socket record without a pid: {record}"))?;
            record["netns"] = json!(netns_of(pid as i32)?);
        }
        json["sockets"] = sockets;
    }
    Ok(json)
}
