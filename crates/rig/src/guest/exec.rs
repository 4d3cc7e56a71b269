//! Running commands inside a guest: [`Guest::exec`] hands a [`GuestCommand`] to the guest's
//! `kql-rig-agent` through the share (see [`crate::agent_protocol`]) and waits for its result.
//!
//! Requests are numbered by the guest, so several threads may `exec` on the same guest; the
//! agent runs them one at a time.

use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Guest, GuestCommand};
use crate::agent_protocol::{self, AGENT_DIR, Outcome};
use crate::{Result, rig_error};

/// How much longer than the command's timeout the host waits for its result (the agent may be
/// busy with an earlier request, and TCG is slow).
const RESULT_GRACE: Duration = Duration::from_secs(60);

/// How often the host looks for the result.
const POLL: Duration = Duration::from_millis(5);

/// What a command run in the guest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestOutput {
    /// Exit code, `None` if a signal killed it.
    pub code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// Killed by the agent for running past its timeout.
    pub timed_out: bool,
    /// Its standard output (invalid UTF-8 replaced).
    pub stdout: String,
    /// Its standard error (invalid UTF-8 replaced).
    pub stderr: String,
    /// How long it ran, as the agent measured it.
    pub wall: Duration,
}

impl GuestOutput {
    /// It exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl Guest {
    /// Runs `command` inside the guest and returns what it did. Fails if the agent could not
    /// start it, or if no result came within its timeout plus a minute (with the console's tail).
    pub fn exec(&self, command: &GuestCommand) -> Result<GuestOutput> {
        let dir = self.share().join(AGENT_DIR);
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        let request = command.to_json().to_string();
        agent_protocol::write_atomically(&agent_protocol::request_path(&dir, n), request.as_bytes())?;
        let outcome = self.wait_outcome(&dir, n, command.timeout + RESULT_GRACE);
        let stdout = take_text(&agent_protocol::stdout_path(&dir, n));
        let stderr = take_text(&agent_protocol::stderr_path(&dir, n));
        let outcome = outcome?;
        if let Some(error) = outcome.error {
            return Err(rig_error!("{} guest agent: {error}", self.kernel.release));
        }
        Ok(GuestOutput {
            code: outcome.code,
            signal: outcome.signal,
            timed_out: outcome.timed_out,
            stdout,
            stderr,
            wall: outcome.wall,
        })
    }

    /// Runs `/bin/sh -c script` inside the guest as root.
    pub fn shell(&self, script: &str) -> Result<GuestOutput> {
        self.exec(&GuestCommand::new(["/bin/sh", "-c", script]))
    }

    /// Waits for the result of request `n` and removes it.
    fn wait_outcome(&self, dir: &Path, n: u32, patience: Duration) -> Result<Outcome> {
        let path = agent_protocol::result_path(dir, n);
        let started = Instant::now();
        loop {
            if let Ok(text) = fs::read_to_string(&path) {
                let _ = fs::remove_file(&path);
                let json = serde_json::from_str(&text).map_err(|e| rig_error!("{}: {e}", path.display()))?;
                return Outcome::from_json(&json);
            }
            if let Some(status) = self.qemu_exit()? {
                return Err(self.failure(&format!("QEMU exited ({status}) while running request {n}")));
            }
            if started.elapsed() > patience {
                return Err(
                    self.failure(&format!("the guest agent gave no result for request {n} in {patience:?}"))
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

/// The text of an output file, which is then removed (empty if the agent never wrote it).
fn take_text(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let _ = fs::remove_file(path);
    String::from_utf8_lossy(&bytes).into_owned()
}
