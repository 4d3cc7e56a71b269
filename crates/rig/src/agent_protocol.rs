//! The file protocol between the host and `kql-rig-agent`, the guest's command runner (its
//! own documentation describes the protocol in full), shared by both sides: the names of the
//! files in the agent directory, a request ([`GuestCommand`]) and a result ([`Outcome`]) as JSON,
//! and atomic writes.
//!
//! The agent directory is `agent/` in the 9p share: `SHARE/agent` on the host, `/share/agent`
//! in the guest.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Result, rig_error};

/// Name of the agent directory inside the share.
pub const AGENT_DIR: &str = "agent";

/// Suffix of a request file: `<N>.request.json`.
const REQUEST_SUFFIX: &str = ".request.json";

/// How long a command may run unless told otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// `<dir>/<n>.request.json`.
pub fn request_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{n}{REQUEST_SUFFIX}"))
}

/// `<dir>/<n>.result.json`.
pub fn result_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{n}.result.json"))
}

/// `<dir>/<n>.stdout`.
pub fn stdout_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{n}.stdout"))
}

/// `<dir>/<n>.stderr`.
pub fn stderr_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{n}.stderr"))
}

/// The request number of a file name, if it names a complete request (`7.request.json`, not
/// `7.request.json.tmp`).
pub fn request_number(file_name: &str) -> Option<u32> {
    file_name.strip_suffix(REQUEST_SUFFIX)?.parse().ok()
}

/// Writes `bytes` to `<path>.tmp`, then renames it to `path`, so a reader polling for `path`
/// never sees it half written.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| rig_error!("{}: {e}", path.display()))
}

/// A command to run inside the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestCommand {
    /// Program and arguments; the program is looked up in the guest's `PATH`.
    pub argv: Vec<String>,
    /// Environment added to the agent's clean one (`PATH`, `HOME=/root`), overriding it.
    pub env: Vec<(String, String)>,
    /// Run as this uid and gid (with no supplementary groups) instead of root.
    pub uid: Option<u32>,
    /// The process group is killed after this long.
    pub timeout: Duration,
}

impl GuestCommand {
    /// `argv` as root, with no extra environment and a 600 s timeout.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> GuestCommand {
        GuestCommand {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            uid: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Adds `key=value` to the environment.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> GuestCommand {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs as `uid` (and gid `uid`).
    pub fn uid(mut self, uid: u32) -> GuestCommand {
        self.uid = Some(uid);
        self
    }

    /// Kills the command after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> GuestCommand {
        self.timeout = timeout;
        self
    }

    /// The request file's JSON.
    pub fn to_json(&self) -> Value {
        let env: serde_json::Map<String, Value> =
            self.env.iter().map(|(key, value)| (key.clone(), json!(value))).collect();
        json!({ "argv": self.argv, "env": env, "uid": self.uid, "timeout_secs": self.timeout.as_secs_f64() })
    }

    /// Parses a request file's JSON; `env`, `uid` and `timeout_secs` may be left out.
    pub fn from_json(json: &Value) -> Result<GuestCommand> {
        let bad = |what: &str| rig_error!("bad request: {what} in {json}");
        let argv = json["argv"].as_array().ok_or_else(|| bad("no argv array"))?;
        let argv = argv.iter().map(|arg| arg.as_str().map(String::from)).collect::<Option<Vec<_>>>();
        let argv = argv
            .filter(|argv| !argv.is_empty())
            .ok_or_else(|| bad("argv is not a non-empty list of strings"))?;
        let env = match &json["env"] {
            Value::Null => Vec::new(),
            Value::Object(env) => env
                .iter()
                .map(|(key, value)| value.as_str().map(|value| (key.clone(), value.to_string())))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("an env value is not a string"))?,
            _ => return Err(bad("env is not an object")),
        };
        let uid = match &json["uid"] {
            Value::Null => None,
            uid => Some(uid.as_u64().and_then(|uid| u32::try_from(uid).ok()).ok_or_else(|| bad("bad uid"))?),
        };
        let timeout = match &json["timeout_secs"] {
            Value::Null => DEFAULT_TIMEOUT,
            secs => secs
                .as_f64()
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .ok_or_else(|| bad("bad timeout_secs"))?,
        };
        Ok(GuestCommand { argv, env, uid, timeout })
    }
}

/// How a request ended: the result file.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Exit code, `None` if killed by a signal or never started.
    pub code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// Killed for running past its timeout.
    pub timed_out: bool,
    /// From the request's arrival to the command's end.
    pub wall: Duration,
    /// Why the agent could not run the request at all.
    pub error: Option<String>,
}

impl Outcome {
    /// The outcome of a request the agent could not run.
    pub fn failed(error: String, wall: Duration) -> Outcome {
        Outcome { code: None, signal: None, timed_out: false, wall, error: Some(error) }
    }

    /// The result file's JSON (`error` only when there is one).
    pub fn to_json(&self) -> Value {
        let mut json = json!({
            "code": self.code,
            "signal": self.signal,
            "timed_out": self.timed_out,
            "wall_ms": self.wall.as_secs_f64() * 1000.0,
        });
        if let Some(error) = &self.error {
            json["error"] = json!(error);
        }
        json
    }

    /// Parses a result file's JSON.
    pub fn from_json(json: &Value) -> Result<Outcome> {
        let bad = || rig_error!("bad agent result {json}");
        let int = |key: &str| json[key].as_i64().map(|n| i32::try_from(n).map_err(|_| bad())).transpose();
        let wall_ms = json["wall_ms"].as_f64().ok_or_else(bad)?;
        Ok(Outcome {
            code: int("code")?,
            signal: int("signal")?,
            timed_out: json["timed_out"].as_bool().ok_or_else(bad)?,
            wall: Duration::try_from_secs_f64(wall_ms / 1000.0).map_err(|_| bad())?,
            error: json["error"].as_str().map(String::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_json() {
        let command = GuestCommand::new(["/bin/sh", "-c", "id -u"])
            .env("A", "1")
            .uid(65534)
            .timeout(Duration::from_millis(2500));
        assert_eq!(GuestCommand::from_json(&command.to_json()).unwrap(), command);
    }

    #[test]
    fn a_minimal_request_gets_defaults() {
        let command = GuestCommand::from_json(&json!({ "argv": ["true"] })).unwrap();
        assert_eq!(command, GuestCommand::new(["true"]));
    }

    #[test]
    fn bad_requests_are_errors() {
        for json in [
            json!({}),
            json!({ "argv": [] }),
            json!({ "argv": [1] }),
            json!({ "argv": ["true"], "env": { "A": 1 } }),
            json!({ "argv": ["true"], "uid": -1 }),
            json!({ "argv": ["true"], "timeout_secs": "soon" }),
        ] {
            assert!(GuestCommand::from_json(&json).is_err(), "{json}");
        }
    }

    #[test]
    fn outcomes_round_trip_through_json() {
        let exited = Outcome {
            code: Some(3),
            signal: None,
            timed_out: false,
            wall: Duration::from_millis(12),
            error: None,
        };
        let killed = Outcome { code: None, signal: Some(9), timed_out: true, ..exited.clone() };
        let failed = Outcome::failed("no such file".into(), Duration::from_millis(1));
        for outcome in [exited, killed, failed] {
            assert_eq!(Outcome::from_json(&outcome.to_json()).unwrap(), outcome);
        }
    }

    #[test]
    fn only_complete_request_files_have_numbers() {
        assert_eq!(request_number("7.request.json"), Some(7));
        assert_eq!(request_number("7.request.json.tmp"), None);
        assert_eq!(request_number("7.result.json"), None);
        assert_eq!(request_number("x.request.json"), None);
    }
}
