//! The one error type of the front end: a single line for the user, and the exit code.
//!
//! Every failure, from bad SQL to an unreadable file, ends as one `kql: …` line on stderr
//! and a non-zero exit status.

use std::fmt;

use datafusion::error::DataFusionError;
use kql_engine::Refused;

/// A failure, already worded for the user.
#[derive(Debug)]
pub struct CliError {
    message: String,
    /// The output went to a closed pipe (e.g. `kql … | head`): exit quietly.
    pub broken_pipe: bool,
}

impl CliError {
    /// An error with this message.
    pub fn new(message: String) -> Self {
        CliError { message: one_line(&message), broken_pipe: false }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<DataFusionError> for CliError {
    fn from(error: DataFusionError) -> Self {
        if let Some(refused) = Refused::find(&error) {
            return CliError::new(refused.to_string());
        }
        match error.find_root() {
            DataFusionError::SQL(parse, _) => {
                let message = parse.to_string();
                let detail = message.trim_start_matches("sql parser error: ");
                CliError::new(format!("syntax error: {detail}"))
            }
            DataFusionError::ResourcesExhausted(message) => CliError::new(out_of_memory(message)),
            root => CliError::new(describe(root)),
        }
    }
}

impl From<arrow::error::ArrowError> for CliError {
    fn from(error: arrow::error::ArrowError) -> Self {
        match error {
            arrow::error::ArrowError::IoError(_, io) => CliError::from(io),
            other => CliError::new(other.to_string()),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        let broken_pipe = error.kind() == std::io::ErrorKind::BrokenPipe;
        CliError { broken_pipe, ..CliError::new(format!("cannot write the output: {error}")) }
    }
}

/// DataFusion's message, with the unknown-table case pointed at `kql tables`; a scan's own
/// failure (kql's words already) and Arrow's (`Divide by zero error`) without DataFusion's
/// "Execution error:" or "Arrow error:" in front.
fn describe(error: &DataFusionError) -> String {
    match error {
        DataFusionError::Execution(message) => return message.clone(),
        DataFusionError::ArrowError(arrow, _) => return arrow.to_string(),
        _ => {}
    }
    let message = error.to_string();
    match unknown_table(&message) {
        Some(table) => format!("unknown table '{table}' (`kql tables` lists them)"),
        None => message,
    }
}

/// A statement that outgrew the memory pool, with the pool's size from DataFusion's words.
fn out_of_memory(message: &str) -> String {
    let pool = message.split_once("pool_size: ").and_then(|(_, rest)| rest.split_once(')'));
    match pool {
        Some((size, _)) => {
            format!("the statement needs more than its {size} of memory: narrow it or raise --memory-limit")
        }
        None => "the statement needs more memory than it may have: narrow it or raise --memory-limit".into(),
    }
}

/// The table name in DataFusion's "table '…' not found" planning error.
fn unknown_table(message: &str) -> Option<&str> {
    let rest = message.split_once("table '")?.1;
    let (qualified, tail) = rest.split_once('\'')?;
    tail.starts_with(" not found").then(|| qualified.rsplit('.').next().unwrap_or(qualified))
}

/// The longest message printed: a message quoting huge input (a 100 KB parameter, a
/// 1 MB token) is cut here.
const MAX_MESSAGE_CHARS: usize = 1_000;

/// `message` folded onto one line of at most [`MAX_MESSAGE_CHARS`].
fn one_line(message: &str) -> String {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}… ({} bytes in all)", &line[..end], line.len()),
        None => line,
    }
}

/// How bad a line on stderr is; it decides the colour of its `kql:` prefix.
#[derive(Debug, Clone, Copy)]
pub enum Level {
    /// A failure (red).
    Error,
    /// Something skipped or worth knowing (yellow).
    Warning,
}

/// Prints `kql: MESSAGE` on stderr, the prefix coloured when stderr is a terminal and
/// `NO_COLOR` is unset (<https://no-color.org>).
pub fn report(level: Level, message: &str) {
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let prefix = match (colour, level) {
        (false, _) => "kql:",
        (true, Level::Error) => "\x1b[1;31mkql:\x1b[0m",
        (true, Level::Warning) => "\x1b[1;33mkql:\x1b[0m",
    };
    eprintln!("{prefix} {message}");
}
