//! The interactive shell: statements end with `;` and may span lines; meta commands start
//! with `\` (see [`crate::meta`]); completion and highlighting come from [`crate::helper`];
//! Ctrl-C cancels a running query and keeps the session, Ctrl-D leaves. History persists in
//! `$XDG_STATE_HOME/kql/history` (default `~/.local/state/kql/history`).

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use kql_tables::queries;
use kql_tables::target::Target;
use rustyline::Editor;
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;

use crate::error::{CliError, Level, report};
use crate::format::Format;
use crate::helper::{Catalog, KqlHelper};
use crate::meta::{self, Flow};
use crate::session::{Outcome, Session, no_params};

const PROMPT: &str = "kql> ";

/// The REPL's state: the session and where results go.
pub struct Repl {
    /// The session statements run in.
    pub session: Session,
    /// `\o FILE`: results go to this file instead of standard output.
    output: Option<File>,
}

impl Repl {
    /// Runs `sql` as typed in the REPL: cancellable, timed, printed to the current output.
    pub fn run_sql(&mut self, sql: &str) -> Result<(), CliError> {
        self.run_bound(sql, &no_params())
    }

    /// [`Repl::run_sql`] with `$name` placeholders bound to `params`.
    pub fn run_bound(&mut self, sql: &str, params: &ParamValues) -> Result<(), CliError> {
        if self.session.format == Format::Parquet && self.output.is_none() && std::io::stdout().is_terminal()
        {
            return Err(CliError::new("parquet is binary: send it to a file with \\o FILE first".into()));
        }
        let outcome = match &mut self.output {
            Some(file) => self.session.run_interactive(sql, params, file)?,
            None => self.session.run_interactive(sql, params, &mut std::io::stdout().lock())?,
        };
        if let Outcome::Cancelled = outcome {
            report(Level::Warning, "query cancelled");
        }
        Ok(())
    }

    /// Prints a catalog listing in the session's format to the current output.
    pub fn print_batch(&mut self, batch: &RecordBatch) -> Result<(), CliError> {
        match &mut self.output {
            Some(file) => self.session.print(batch, file),
            None => self.session.print(batch, &mut std::io::stdout().lock()),
        }
    }

    /// Prints a line of text to the current output.
    pub fn print_text(&mut self, text: &str) -> Result<(), CliError> {
        match &mut self.output {
            Some(file) => writeln!(file, "{text}")?,
            None => println!("{text}"),
        }
        Ok(())
    }

    /// `\o`: send results to `path` from now on, or back to standard output.
    pub fn output_to(&mut self, path: Option<PathBuf>) -> Result<(), CliError> {
        self.output = match path {
            Some(path) => Some(
                File::create(&path)
                    .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?,
            ),
            None => None,
        };
        Ok(())
    }

    /// `\target`: inspect `target` from now on.
    pub fn switch_target(&mut self, target: Arc<Target>) -> Result<(), CliError> {
        self.session.switch_target(target)
    }
}

/// Read statements until `\q` or end of input, printing each result.
pub fn run(session: Session) -> Result<(), CliError> {
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut editor: Editor<KqlHelper, FileHistory> =
        Editor::new().map_err(|e| CliError::new(format!("cannot start the REPL: {e}")))?;
    editor.set_helper(Some(KqlHelper::new(catalog(&session), colour)));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    eprintln!(
        "kql on the {}: end statements with ;, \\? for help, \\q quits",
        session.target().description()
    );
    let mut repl = Repl { session, output: None };
    loop {
        match editor.readline(PROMPT) {
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => {
                let _ = editor.add_history_entry(text.trim());
                if let Some(path) = &history {
                    let _ = path.parent().map(std::fs::create_dir_all);
                    let _ = editor.save_history(path);
                }
                if let Flow::Quit = run_text(&mut repl, text.trim()) {
                    break;
                }
                if let Some(helper) = editor.helper_mut() {
                    helper.catalog = catalog(&repl.session);
                }
            }
            Err(ReadlineError::Interrupted) => {}
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(CliError::new(format!("cannot read input: {e}"))),
        }
    }
    Ok(())
}

/// Runs a meta command or SQL; an error is printed and the session goes on.
fn run_text(repl: &mut Repl, text: &str) -> Flow {
    let result = match text.starts_with('\\') {
        true => meta::run(repl, text),
        false => repl.run_sql(text).map(|()| Flow::Continue),
    };
    result.unwrap_or_else(|e| {
        report(Level::Error, &e.to_string());
        Flow::Continue
    })
}

/// Tables with their columns, saved-query views and names, for completion.
fn catalog(session: &Session) -> Catalog {
    let tables = session.engine().tables().into_iter().map(|table| {
        let columns = table.spec().columns.iter().map(|c| c.name.to_string()).collect();
        (table.spec().name.to_string(), columns)
    });
    let saved = queries::all();
    let views = saved.iter().map(|q| (q.view(), Vec::new()));
    Catalog {
        tables: tables.chain(views).collect(),
        queries: saved.iter().map(|q| q.name.to_string()).collect(),
    }
}

fn history_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))?;
    Some(state.join("kql").join("history"))
}
