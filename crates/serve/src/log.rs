//! What the server logs on stderr, as text or JSON: one line per statement — the client, a
//! hash of its SQL (not the text, which may carry data), the rows returned, the time taken
//! and the outcome — and one per failed authentication.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

use tonic::Status;

/// Shape of the log lines (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `key=value` words.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A statement under way, whose line [`StatementLog::finish`] prints.
pub struct StatementLog {
    format: LogFormat,
    client: String,
    sql_hash: String,
    started: Instant,
}

impl StatementLog {
    /// Starts timing the statement `sql` of `client`.
    pub fn start(format: LogFormat, client: &str, sql: &str) -> StatementLog {
        StatementLog { format, client: client.to_string(), sql_hash: sql_hash(sql), started: Instant::now() }
    }

    /// Prints the statement's line: `rows` returned, and `error` unless it succeeded.
    pub fn finish(self, rows: usize, error: Option<&Status>) {
        let ms = self.started.elapsed().as_secs_f64() * 1e3;
        let outcome = match error {
            None => "ok".to_string(),
            Some(status) => {
                let message = status.message().split_whitespace().collect::<Vec<_>>().join(" ");
                format!("{:?}: {message}", status.code())
            }
        };
        let line = match self.format {
            LogFormat::Text => format!(
                "kql serve: client={} sql={} rows={rows} ms={ms:.1} outcome={outcome}",
                self.client, self.sql_hash
            ),
            LogFormat::Json => serde_json::json!({
                "client": self.client,
                "sql_hash": self.sql_hash,
                "rows": rows,
                "ms": (ms * 10.0).round() / 10.0,
                "outcome": outcome,
            })
            .to_string(),
        };
        eprintln!("{line}");
    }
}

/// Prints that `client` failed to authenticate, and `why`.
pub fn auth_failure(format: LogFormat, client: &str, why: &str) {
    match format {
        LogFormat::Text => eprintln!("kql serve: authentication failed for {client}: {why}"),
        LogFormat::Json => {
            eprintln!("{}", serde_json::json!({"client": client, "authentication_failed": why}))
        }
    }
}

/// A short stable hash of `sql`, to tell statements apart in the log.
fn sql_hash(sql: &str) -> String {
    let mut hasher = DefaultHasher::new();
    sql.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
