//! `kql-rig-agent DIR`: runs commands inside the guest for the host, one at a time, through
//! files in `DIR` (`/share/agent`, a 9p share the guest mounts without caching, so each side
//! sees the other's files at once). `/init` starts it before the workload.
//!
//! The protocol (names and JSON in `kql_rig::agent_protocol`, shared with the host):
//!
//! 1. The host writes `DIR/<N>.request.json.tmp`, then renames it to `DIR/<N>.request.json`:
//!    `{"argv": ["/bin/sh", "-c", "..."], "env": {"K": "V"}, "uid": 65534, "timeout_secs": 600}`
//!    (`env`, `uid` and `timeout_secs` may be left out: none, root, 600 s).
//! 2. The agent polls `DIR` every 20 ms and takes the smallest `N` it has not served. It runs
//!    `argv` in a new process group with stdin `/dev/null`, stdout to `DIR/<N>.stdout`, stderr
//!    to `DIR/<N>.stderr`, the environment `PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`,
//!    `HOME=/root` plus `env`, as `uid` (uid and gid, no supplementary groups) if given. Past
//!    `timeout_secs` it SIGKILLs the process group.
//! 3. It writes `DIR/<N>.result.json` (through `.tmp` and a rename):
//!    `{"code": 0, "signal": null, "timed_out": false, "wall_ms": 12.5}`, then removes the
//!    request. A request it cannot read, parse or start gets `"code": null` and an `"error"`.
//!
//! The agent never exits on a bad request and never panics; what it cannot report in a result
//! it prints to stderr (the guest's console).

use std::collections::HashSet;
use std::fs::{self, File};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use kql_rig::agent_protocol::{self, GuestCommand, Outcome};
use kql_rig::{Result, rig_error};

/// How often the agent looks for a new request.
const POLL: Duration = Duration::from_millis(20);

/// How long a killed process group may take to be reaped before the agent gives up on it.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// The guest's `PATH` for every command.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

fn main() {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: kql-rig-agent DIR");
        std::process::exit(2);
    };
    if let Err(error) = fs::create_dir_all(&dir) {
        eprintln!("kql-rig-agent: {}: {error}", dir.display());
    }
    eprintln!("kql-rig-agent: serving {}", dir.display());
    let mut served = HashSet::new();
    loop {
        match next_request(&dir, &served) {
            Some(n) => {
                served.insert(n);
                serve(&dir, n);
            }
            None => std::thread::sleep(POLL),
        }
    }
}

/// The smallest request number in `dir` not served yet.
fn next_request(dir: &Path, served: &HashSet<u32>) -> Option<u32> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| agent_protocol::request_number(entry.ok()?.file_name().to_str()?))
        .filter(|n| !served.contains(n))
        .min()
}

/// Runs request `n` and leaves its result.
fn serve(dir: &Path, n: u32) {
    let arrived = Instant::now();
    let request = agent_protocol::request_path(dir, n);
    let outcome = read_request(&request)
        .and_then(|command| run(dir, n, &command, arrived))
        .unwrap_or_else(|error| Outcome::failed(error.0, arrived.elapsed()));
    let json = outcome.to_json().to_string();
    if let Err(error) =
        agent_protocol::write_atomically(&agent_protocol::result_path(dir, n), json.as_bytes())
    {
        eprintln!("kql-rig-agent: request {n}: {error}");
    }
    if let Err(error) = fs::remove_file(&request) {
        eprintln!("kql-rig-agent: {}: {error}", request.display());
    }
}

fn read_request(path: &Path) -> Result<GuestCommand> {
    let text = fs::read_to_string(path).map_err(|e| rig_error!("{}: {e}", path.display()))?;
    let json = serde_json::from_str(&text).map_err(|e| rig_error!("{}: not JSON: {e}", path.display()))?;
    GuestCommand::from_json(&json)
}

/// Runs `command` to its end or its timeout.
fn run(dir: &Path, n: u32, command: &GuestCommand, arrived: Instant) -> Result<Outcome> {
    let output = |path: PathBuf| File::create(&path).map_err(|e| rig_error!("{}: {e}", path.display()));
    let (program, args) = command.argv.split_first().ok_or_else(|| rig_error!("empty argv"))?;
    let mut process = Command::new(program);
    process
        .args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", "/root")
        .envs(command.env.iter().map(|(key, value)| (key, value)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(output(agent_protocol::stdout_path(dir, n))?)
        .stderr(output(agent_protocol::stderr_path(dir, n))?)
        .process_group(0);
    if let Some(uid) = command.uid {
        // std drops the supplementary groups too when root changes uid.
        process.uid(uid).gid(uid);
    }
    let mut child = process.spawn().map_err(|e| rig_error!("cannot run {:?}: {e}", command.argv))?;
    let group = child.id() as libc::pid_t;
    let (sender, ended) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("wait-{n}"))
        .spawn(move || sender.send(child.wait()))
        .map_err(|e| rig_error!("cannot start a thread to wait for {:?}: {e}", command.argv))?;
    let (status, timed_out) = match ended.recv_timeout(command.timeout) {
        Ok(status) => (status, false),
        Err(RecvTimeoutError::Timeout) => {
            kill_group(group);
            (
                ended
                    .recv_timeout(REAP_TIMEOUT)
                    .map_err(|_| rig_error!("process group {group} survived SIGKILL"))?,
                true,
            )
        }
        Err(RecvTimeoutError::Disconnected) => {
            return Err(rig_error!("lost the wait for {:?}", command.argv));
        }
    };
    let status: ExitStatus = status.map_err(|e| rig_error!("wait for {:?}: {e}", command.argv))?;
    Ok(Outcome {
        code: status.code(),
        signal: status.signal(),
        timed_out,
        wall: arrived.elapsed(),
        error: None,
    })
}

/// SIGKILLs every process of group `group` (the command's, which it leads).
fn kill_group(group: libc::pid_t) {
    // `group` names the command's process group (started with process_group(0), so its pgid
    // is the command's pid, which Linux does not reuse while the group has members).
    if let Err(error) = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), nix::sys::signal::SIGKILL)
    {
        eprintln!("kql-rig-agent: kill(-{group}): {error}");
    }
}
