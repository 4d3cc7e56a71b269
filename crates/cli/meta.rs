//! The REPL's meta commands, in psql's spirit: `\dt`, `\d TABLE`, `\q`, `\timing`, `\format`,
//! `\i FILE`, `\o FILE`, `\target`, `\sources`, `\queries`, `\run NAME`, `\?`.

use std::path::PathBuf;

use kql_tables::queries;
use kql_tables::target::{Target, TargetOptions};

use crate::catalog;
use crate::error::CliError;
use crate::format::Format;
use crate::input;
use crate::repl::Repl;

/// Every meta command, for completion and `\?`.
pub const COMMANDS: [&str; 14] = [
    "\\?",
    "\\d",
    "\\d+",
    "\\dt",
    "\\format",
    "\\i",
    "\\o",
    "\\q",
    "\\queries",
    "\\run",
    "\\sources",
    "\\target",
    "\\timing",
    "\\help",
];

const HELP: &str = "\
\\dt                  list tables and their sources
\\d TABLE             columns of TABLE: types, keys, descriptions, source
\\d+ TABLE            the same, and a declared table's CREATE KERNEL TABLE statement
\\queries             list saved queries
\\run NAME [P=V ...]  run a saved query, giving its parameters
\\i FILE              run the SQL in FILE
\\o [FILE]            send results to FILE (no FILE: back to the terminal)
\\format FORMAT       table, csv, json, ndjson or parquet (parquet with \\o FILE)
\\timing [on|off]     print how long each statement took
\\target              show what is inspected
\\target live | core FILE [VMLINUX] | qmp SOCKET [VMLINUX]
                     inspect something else
\\sources             which source fills each table here, and why not the others
\\q                   quit (Ctrl-D too); Ctrl-C cancels a running query
\\?                   this help";

/// What the REPL does after a meta command.
pub enum Flow {
    /// Read the next statement.
    Continue,
    /// Leave the REPL.
    Quit,
}

/// Runs the meta command `line` (starting with `\`).
pub fn run(repl: &mut Repl, line: &str) -> Result<Flow, CliError> {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();
    match (command, args.as_slice()) {
        ("\\q", []) => return Ok(Flow::Quit),
        ("\\?" | "\\help", []) => repl.print_text(HELP)?,
        ("\\dt" | "\\d", []) => repl.print_batch(&catalog::tables(&repl.session.engine().tables())?)?,
        ("\\d", [table]) => describe(repl, table, false)?,
        ("\\d+", [table]) => describe(repl, table, true)?,
        ("\\queries", []) => repl.print_text(&saved_queries())?,
        ("\\run", [name, params @ ..]) => run_saved(repl, name, params)?,
        ("\\i", [file]) => run_file(repl, file)?,
        ("\\o", []) => repl.output_to(None)?,
        ("\\o", [file]) => repl.output_to(Some(PathBuf::from(file)))?,
        ("\\format", [format]) => repl.session.format = parse_format(format)?,
        ("\\timing", []) => toggle_timing(repl, !repl.session.timing),
        ("\\timing", ["on"]) => toggle_timing(repl, true),
        ("\\timing", ["off"]) => toggle_timing(repl, false),
        ("\\target", []) => {
            repl.print_text(&format!("inspecting the {}", repl.session.target().description()))?
        }
        ("\\target", [kind, rest @ ..]) => switch_target(repl, kind, rest)?,
        ("\\sources", []) => repl.print_text(&sources(repl.session.target(), repl))?,
        _ => {
            return Err(CliError::new(format!(
                "unknown or malformed meta command '{line}' (\\? lists them)"
            )));
        }
    }
    Ok(Flow::Continue)
}

fn describe(repl: &mut Repl, name: &str, declaration: bool) -> Result<(), CliError> {
    let table = repl
        .session
        .engine()
        .table(name)
        .ok_or_else(|| CliError::new(format!("unknown table '{name}' (\\dt lists them)")))?;
    let batch = catalog::describe(table.as_ref())?;
    let source = table.source();
    repl.print_batch(&batch)?;
    repl.print_text(&format!(
        "source: {} — {}\ndefined: {}",
        source.kind.name(),
        source.doc,
        table.origin()
    ))?;
    match (declaration, table.declaration()) {
        (true, Some(text)) => repl.print_text(text),
        _ => Ok(()),
    }
}

/// One line per saved query: name, description, parameters.
pub fn saved_queries() -> String {
    let all = queries::all();
    let width = all.iter().map(|q| q.name.len()).max().unwrap_or(0);
    all.iter()
        .map(|q| format!("{:width$}  {}{}", q.name, q.description, params_of(q)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `\run NAME [PARAM=VALUE ...]`.
/// ` (port port = 22, …)` for a query with parameters.
fn params_of(query: &queries::SavedQuery) -> String {
    let params: Vec<String> = query
        .params()
        .iter()
        .map(|p| match p.default {
            Some(default) => format!("{} {:?} = {default}", p.name, p.kind),
            None => format!("{} {:?}", p.name, p.kind),
        })
        .collect();
    if params.is_empty() { String::new() } else { format!(" ({})", params.join(", ").to_lowercase()) }
}

fn run_saved(repl: &mut Repl, name: &str, params: &[&str]) -> Result<(), CliError> {
    let query = queries::find(name)
        .ok_or_else(|| CliError::new(format!("unknown saved query '{name}' (\\queries lists them)")))?;
    let given = params.iter().map(|p| crate::split_param(p)).collect::<Result<Vec<_>, _>>()?;
    repl.run_bound(query.sql, &query.bind(&given).map_err(CliError::new)?)
}

fn run_file(repl: &mut Repl, file: &str) -> Result<(), CliError> {
    let sql = input::read_file(file.as_ref())?;
    repl.run_sql(&sql)
}

fn parse_format(name: &str) -> Result<Format, CliError> {
    <Format as clap::ValueEnum>::from_str(name, true)
        .map_err(|_| CliError::new(format!("unknown format '{name}': table, csv, json, ndjson or parquet")))
}

fn toggle_timing(repl: &mut Repl, on: bool) {
    repl.session.timing = on;
    eprintln!("Timing is {}.", if on { "on" } else { "off" });
}

/// `\target live`, `\target core FILE [VMLINUX]`, `\target qmp SOCKET [VMLINUX]`.
fn switch_target(repl: &mut Repl, kind: &str, rest: &[&str]) -> Result<(), CliError> {
    let path = |index: usize| rest.get(index).map(PathBuf::from);
    let options = match (kind, rest.len()) {
        ("live", 0) => TargetOptions::default(),
        ("core", 1 | 2) => TargetOptions { core: path(0), vmlinux: path(1), ..Default::default() },
        ("qmp", 1 | 2) => TargetOptions { qmp: path(0), vmlinux: path(1), ..Default::default() },
        _ => {
            return Err(CliError::new(
                "usage: \\target live | core FILE [VMLINUX] | qmp SOCKET [VMLINUX]".into(),
            ));
        }
    };
    let target = Target::open(&options).map_err(CliError::new)?;
    repl.switch_target(target)?;
    repl.print_text(&format!("inspecting the {}", repl.session.target().description()))
}

/// For every table, each of its sources and what it does here.
fn sources(target: &Target, repl: &Repl) -> String {
    let mut lines = Vec::new();
    for table in repl.session.engine().tables() {
        lines.push(table.spec().name.to_string());
        for (source, state) in target.source_states(table.spec()) {
            lines.push(format!("  {:8} {state}", source.kind.name()));
        }
    }
    lines.join("\n")
}
