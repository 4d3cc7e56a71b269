//! Worker processes: fork, take a name, do some work, report over a pipe, then sleep forever.
//!
//! A worker writes exactly one line of JSON to its parent: `{"ok": REPORT}` once its work is
//! done, or `{"error": "MESSAGE"}` (and exits). The parent waits for that line with a timeout,
//! so a worker that dies or hangs fails the workload instead of blocking it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use kql_rig::{Result, rig_error};
use nix::poll::{PollFd, PollFlags};
use serde_json::{Value, json};

use crate::sys;

/// How long a parent waits for a worker's report (guests run under TCG, which is slow).
const REPORT_TIMEOUT: Duration = Duration::from_secs(120);

/// A worker that reported success.
#[derive(Debug)]
pub struct Worker {
    pub pid: i32,
    /// What the worker's body returned.
    pub report: Value,
}

/// Forks a worker named `name` (its `comm`) that runs `body`, reports, and sleeps until
/// killed; it also dies with its parent. Returns once the worker has reported.
pub fn spawn(name: &str, body: impl FnOnce() -> Result<Value>) -> Result<Worker> {
    spawn_then(name, body, || {
        sys::pause_forever();
    })
}

/// [`spawn`], but once it has reported the worker runs `then` instead of sleeping; if `then`
/// ends, the worker prints why and exits.
pub fn spawn_then(
    name: &str,
    body: impl FnOnce() -> Result<Value>,
    then: impl FnOnce() -> Result<()>,
) -> Result<Worker> {
    let parent = sys::getpid();
    let (read_end, write_end) = sys::pipe()?;
    let Some(pid) = sys::fork()? else {
        drop(read_end);
        let outcome = sys::die_with_parent(parent).and_then(|()| sys::set_name(name)).and_then(|()| body());
        let (line, failed) = match outcome {
            Ok(report) => (json!({ "ok": report }), false),
            Err(error) => (json!({ "error": format!("{name}: {}", error.0) }), true),
        };
        let mut pipe = File::from(write_end);
        let written = writeln!(pipe, "{line}");
        drop(pipe);
        if failed || written.is_err() {
            sys::exit_now(1);
        }
        let ended = then();
        eprintln!("kql-rig-workload: {name} stopped: {}", ended.err().map_or("done".into(), |e| e.0));
        sys::exit_now(1);
    };
    drop(write_end);
    let line =
        read_line(read_end, REPORT_TIMEOUT).map_err(|e| rig_error!("worker {name:?} (pid {pid}): {e}"))?;
    let message: Value = serde_json::from_str(&line)
        .map_err(|e| rig_error!("worker {name:?} (pid {pid}): bad report {line:?}: {e}"))?;
    if let Some(error) = message.get("error") {
        return Err(rig_error!("worker {}", error.as_str().unwrap_or("failed")));
    }
    let report =
        message.get("ok").cloned().ok_or_else(|| rig_error!("worker {name:?}: bad report {line:?}"))?;
    Ok(Worker { pid, report })
}

/// Reads one `\n`-terminated line from a pipe, giving up after `timeout`.
fn read_line(pipe: OwnedFd, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    let mut file = File::from(pipe);
    let mut line = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = line.iter().position(|&b| b == b'\n') {
            line.truncate(end);
            return String::from_utf8(line).map_err(|_| rig_error!("report is not UTF-8"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(rig_error!("no report after {} s", timeout.as_secs()));
        }
        let millis = left.as_millis().clamp(1, u128::from(u16::MAX)) as u16;
        let mut poll = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut poll, millis) {
            Err(nix::errno::Errno::EINTR) | Ok(0) => continue,
            Err(error) => return Err(rig_error!("poll: {error}")),
            Ok(_) => {}
        }
        let n = match file.read(&mut chunk) {
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(rig_error!("read: {error}")),
        };
        if n == 0 {
            return Err(rig_error!("exited without reporting"));
        }
        line.extend_from_slice(&chunk[..n]);
    }
}
