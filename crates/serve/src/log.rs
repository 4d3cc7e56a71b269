//! One stderr line per statement: the client, a hash of its SQL (not the text, which may
//! carry data), the rows returned, the time taken and the outcome — as text or JSON.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

/// Shape of the log lines (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `key=value` words.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What one statement did.
pub struct StatementLog<'a> {
    pub client: &'a str,
    pub sql: &'a str,
    pub rows: usize,
    pub elapsed: Duration,
    pub outcome: &'a str,
}

/// A short stable hash of `sql`, to tell statements apart in the log.
fn sql_hash(sql: &str) -> String {
    let mut hasher = DefaultHasher::new();
    sql.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// Prints `entry` on stderr in `format`.
pub fn statement(format: LogFormat, entry: &StatementLog) {
    let ms = entry.elapsed.as_secs_f64() * 1e3;
    let hash = sql_hash(entry.sql);
    let line = match format {
        LogFormat::Text => format!(
            "kql serve: client={} sql={hash} rows={} ms={ms:.1} outcome={}",
            entry.client, entry.rows, entry.outcome
        ),
        LogFormat::Json => serde_json::json!({
            "client": entry.client,
            "sql_hash": hash,
            "rows": entry.rows,
            "ms": (ms * 10.0).round() / 10.0,
            "outcome": entry.outcome,
        })
        .to_string(),
    };
    eprintln!("{line}");
}
