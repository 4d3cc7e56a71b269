//! The interactive shell: statements end with `;` and may span lines; history persists in
//! `$XDG_STATE_HOME/kql/history` (default `~/.local/state/kql/history`).

use std::path::PathBuf;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::error::CliError;
use crate::session::Session;

const PROMPT: &str = "kql> ";
const CONTINUATION: &str = "  -> ";

/// Read statements until `\q` or end of input, printing each result.
pub fn run(session: &Session) -> Result<(), CliError> {
    let mut editor =
        DefaultEditor::new().map_err(|e| CliError::new(format!("cannot start the REPL: {e}")))?;
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    eprintln!("kql on the {}: end statements with ;, \\q quits", session.target().description());
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() { PROMPT } else { CONTINUATION };
        match editor.readline(prompt) {
            Ok(line) if pending.is_empty() && line.trim() == "\\q" => break,
            Ok(line) => {
                pending.push_str(&line);
                pending.push('\n');
                if line.trim_end().ends_with(';') {
                    let _ = editor.add_history_entry(pending.trim());
                    run_statements(session, &pending);
                    pending.clear();
                }
            }
            Err(ReadlineError::Interrupted) => pending.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(CliError::new(format!("cannot read input: {e}"))),
        }
    }
    if let Some(path) = &history {
        let _ = path.parent().map(std::fs::create_dir_all);
        let _ = editor.save_history(path);
    }
    Ok(())
}

/// Run what was typed; an error is printed and the session goes on.
fn run_statements(session: &Session, sql: &str) {
    if let Err(e) = session.run_sql(sql, &mut std::io::stdout().lock()) {
        eprintln!("kql: {e}");
    }
}

fn history_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))?;
    Some(state.join("kql").join("history"))
}
