//! `kql`: SQL over live kernel objects — the command line.
//!
//! `kql "SQL"`, `kql -f FILE.sql`, `kql -q NAME` run SQL; `kql queries`, `kql tables`,
//! `kql describe TABLE` and `kql reference` answer questions about kql itself; `kql serve`
//! serves the tables over Arrow Flight SQL; `kql
//! completions SHELL` and `kql man` print a completion script and the man page; `kql` alone
//! opens a REPL on a terminal and reads SQL from standard input otherwise.

mod catalog;
mod depth;
mod error;
mod format;
mod helper;
mod input;
mod memory;
mod meta;
mod progress;
mod repl;
mod session;

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::error::{CliError, Level};
use crate::format::Format;
use crate::session::Session;
use kql_engine::{Policy, SourceKind};

use kql_tables::declared::Declarations;
use kql_tables::queries;
use kql_tables::target::{Target, TargetOptions, TypeSource};

/// SQL over live kernel objects: sockets, processes and their file descriptors as tables.
#[derive(Debug, Parser)]
#[command(name = "kql", version)]
struct Cli {
    /// SQL to run; several statements may be separated by `;`.
    #[arg(group = "input")]
    sql: Option<String>,
    /// Run the SQL in FILE.
    #[arg(short = 'f', long = "file", value_name = "FILE", group = "input")]
    file: Option<PathBuf>,
    /// Run the saved query NAME (`kql queries` lists them).
    #[arg(short = 'q', long = "query", value_name = "NAME", group = "input")]
    query: Option<String>,
    /// A parameter of the saved query: `--param port=22` (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Output format of results.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    format: Format,
    /// Write results to FILE instead of standard output (any format; parquet to a file or a pipe).
    #[arg(short = 'o', long, value_name = "FILE", global = true)]
    output: Option<PathBuf>,
    /// Inspect this vmcore (ELF or kdump) instead of the live kernel.
    #[arg(long, value_name = "FILE", global = true, conflicts_with = "qmp")]
    core: Option<PathBuf>,
    /// Inspect the running QEMU guest behind this QMP socket (reads its RAM live).
    #[arg(long, value_name = "SOCKET", global = true)]
    qmp: Option<PathBuf>,
    /// Debug info (vmlinux with DWARF) of the target's kernel; kernel walks then use DWARF.
    #[arg(long, value_name = "FILE", global = true)]
    vmlinux: Option<PathBuf>,
    /// Where kernel walks get the kernel's types: btf (the BTF and kallsyms the kernel
    /// carries) or dwarf (its debug vmlinux). Default: --vmlinux if given, else BTF where the
    /// kernel has it, else DWARF found by libdrgn's search.
    #[arg(long, value_enum, value_name = "SOURCE", global = true)]
    types: Option<TypesArg>,
    /// Use this BTF file (e.g. from BTFHub) instead of the kernel's own.
    #[arg(long, value_name = "FILE", global = true)]
    btf: Option<PathBuf>,
    /// Also read the kernel-table declarations (`CREATE KERNEL TABLE …;`) of the `.sql`
    /// files in DIR (repeatable; `$XDG_CONFIG_HOME/kql/tables/` is always read).
    #[arg(long = "tables", value_name = "DIR", global = true)]
    tables: Vec<PathBuf>,
    /// Fill every table this source can fill with it: drgn (kernel memory), netlink or
    /// procfs (this host only).
    #[arg(long, value_enum, value_name = "SOURCE", global = true)]
    source: Option<SourceArg>,
    /// The most memory one statement may hold (sorts, joins, its result), e.g. 512M or 8G.
    /// Default: half of this machine's memory (or of its cgroup's limit).
    #[arg(long, value_name = "SIZE", value_parser = memory::parse_size, global = true)]
    memory_limit: Option<usize>,
    /// Let SQL write files and change kql's names (COPY … TO, INSERT, DROP, CREATE VIEW
    /// over a kql table); without it they are refused.
    #[arg(long)]
    allow_writes: bool,
    /// Print how long each statement took on stderr (`Time: 12.345 ms`), as the REPL's
    /// `\timing` does.
    #[arg(long, global = true)]
    timing: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// `--source` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SourceArg {
    Drgn,
    Netlink,
    Procfs,
}

/// `--types` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TypesArg {
    Btf,
    Dwarf,
}

impl Cli {
    fn target_options(&self) -> TargetOptions {
        TargetOptions {
            core: self.core.clone(),
            qmp: self.qmp.clone(),
            vmlinux: self.vmlinux.clone(),
            source: self.source.map(|source| match source {
                SourceArg::Drgn => SourceKind::Drgn,
                SourceArg::Netlink => SourceKind::Netlink,
                SourceArg::Procfs => SourceKind::Procfs,
            }),
            types: self.types.map(|types| match types {
                TypesArg::Btf => TypeSource::Btf,
                TypesArg::Dwarf => TypeSource::Dwarf,
            }),
            btf: self.btf.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the saved queries.
    Queries,
    /// List the tables.
    Tables,
    /// Show the columns of TABLE.
    Describe {
        /// Table name.
        table: String,
    },
    /// Print the Markdown reference of every table and function.
    Reference,
    /// Print a shell completion script: `kql completions bash > /etc/bash_completion.d/kql`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print kql's man page (roff): `kql man | man -l -`.
    Man,
    /// Serve the target's tables over Arrow Flight SQL (read-only) to ADBC, JDBC, Grafana.
    Serve(ServeArgs),
}

/// `kql serve` flags.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address and port to listen on; anything but loopback needs TLS and a token.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:32010")]
    listen: std::net::SocketAddr,
    /// PEM certificate (chain) of the server: serve TLS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA: clients must present a certificate it signed (mutual TLS).
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// File holding the token clients present (`authorization: Bearer TOKEN`, or as the
    /// password of a Basic handshake).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// One log line per statement on stderr, as text or JSON.
    #[arg(long, value_enum, default_value_t = LogFormatArg::Text)]
    log_format: LogFormatArg,
    /// Longest a statement may run, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    statement_timeout: f64,
    /// Statements running at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_statements: usize,
    /// Rows of one result.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    max_rows: usize,
    /// Bytes (Arrow memory) of one result.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    max_bytes: usize,
    /// DataFusion memory pool of one statement (joins, sorts, aggregates), in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
    max_memory: usize,
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

impl ServeArgs {
    fn options(&self) -> Result<kql_serve::Options, CliError> {
        if !(self.statement_timeout.is_finite() && self.statement_timeout > 0.0) {
            return Err(CliError::new("--statement-timeout must be a positive number of seconds".into()));
        }
        Ok(kql_serve::Options {
            listen: self.listen,
            tls: self.tls_cert.clone().zip(self.tls_key.clone()),
            client_ca: self.client_ca.clone(),
            token_file: self.token_file.clone(),
            limits: kql_serve::Limits {
                timeout: std::time::Duration::from_secs_f64(self.statement_timeout),
                concurrent: self.max_statements.max(1),
                rows: self.max_rows,
                bytes: self.max_bytes,
                memory: self.max_memory,
            },
            log_format: match self.log_format {
                LogFormatArg::Text => kql_serve::LogFormat::Text,
                LogFormatArg::Json => kql_serve::LogFormat::Json,
            },
        })
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&CliError::new(usage_error(&e))),
    };
    match depth::on_big_stack("kql", move || run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.broken_pipe => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(error: &CliError) -> ExitCode {
    error::report(Level::Error, &error.to_string());
    ExitCode::FAILURE
}

/// clap's complaint without its usage block, with a pointer to `--help`.
fn usage_error(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    format!("{} (see kql --help)", first.trim_start_matches("error: "))
}

fn run(cli: Cli) -> Result<(), CliError> {
    let input = cli.sql.is_some() || cli.file.is_some() || cli.query.is_some() || !cli.params.is_empty();
    if cli.command.is_some() && input {
        return Err(CliError::new(
            "a subcommand takes no SQL, -f, -q or --param (flags such as --format may go anywhere)".into(),
        ));
    }
    match &cli.command {
        Some(Command::Queries) => return list_queries(&mut output(&cli)?),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(*shell, &mut Cli::command(), "kql", &mut output(&cli)?);
            return Ok(());
        }
        Some(Command::Man) => {
            clap_mangen::Man::new(Cli::command()).render(&mut output(&cli)?)?;
            return Ok(());
        }
        Some(Command::Reference) => {
            let target = Target::host_sources();
            let tables = kql_tables::tables(&target, &Declarations::shipped());
            let functions = kql_tables::functions::functions(&target);
            output(&cli)?.write_all(catalog::reference(&tables, &functions).as_bytes())?;
            return Ok(());
        }
        _ => {}
    }
    let target = Target::open(&cli.target_options()).map_err(CliError::new)?;
    let (declarations, problems) = Declarations::load(&cli.tables).map_err(CliError::new)?;
    for problem in problems {
        error::report(Level::Warning, &format!("warning: {problem}"));
    }
    if let Some(Command::Serve(serve)) = &cli.command {
        return kql_serve::run(serve.options()?, target, declarations).map_err(CliError::new);
    }
    let policy = if cli.allow_writes { Policy::AllowWrites } else { Policy::Cli };
    let mut session = Session::new(cli.format, &target, declarations, policy)?;
    if let Some(bytes) = cli.memory_limit {
        session.limit_memory(bytes)?;
    }
    session.timing = cli.timing;
    reject_unbound_tables(&session, &cli.tables)?;
    let mut out = output(&cli)?;
    match &cli.command {
        Some(Command::Tables) => session.print(&catalog::tables(&session.engine().tables())?, &mut out),
        Some(Command::Describe { table }) => {
            let table = session
                .engine()
                .table(table)
                .ok_or_else(|| CliError::new(format!("unknown table '{table}' (`kql tables` lists them)")))?;
            session.print(&catalog::describe(table.as_ref())?, &mut out)
        }
        _ => run_input(&cli, session, &mut out),
    }
}

/// A table declared in a `--tables` directory that this kernel's types cannot fill (a
/// member or type it lacks, as a typo makes) is an error: the user named that file.
fn reject_unbound_tables(session: &Session, dirs: &[PathBuf]) -> Result<(), CliError> {
    for table in session.engine().tables() {
        let origin = table.origin();
        let explicit = dirs.iter().any(|dir| std::path::Path::new(&origin).starts_with(dir));
        if let (true, Some(failure)) = (explicit, table.bind_failure()) {
            return Err(CliError::new(format!("--tables: {origin}: {failure}")));
        }
    }
    Ok(())
}

fn run_input(cli: &Cli, mut session: Session, out: &mut dyn Write) -> Result<(), CliError> {
    if !cli.params.is_empty() && cli.query.is_none() {
        return Err(CliError::new("--param gives a parameter of a saved query: use it with -q NAME".into()));
    }
    if let Some(sql) = &cli.sql {
        input::check_text(sql)?;
        session.run_sql(sql, out)
    } else if let Some(path) = &cli.file {
        session.run_sql(&input::read_file(path)?, out)
    } else if let Some(name) = &cli.query {
        let query = queries::find(name).ok_or_else(|| {
            CliError::new(format!("unknown saved query '{name}' (`kql queries` lists them)"))
        })?;
        let given = cli.params.iter().map(|p| split_param(p)).collect::<Result<Vec<_>, _>>()?;
        session.run_bound(query.sql, &query.bind(&given).map_err(CliError::new)?, out)
    } else if std::io::stdin().is_terminal() {
        repl::run(session)
    } else {
        session.run_sql(&input::read_stdin()?, out)
    }
}

/// Where results go: `--output FILE`, else standard output — which must not be a terminal
/// for parquet.
fn output(cli: &Cli) -> Result<Box<dyn Write>, CliError> {
    match &cli.output {
        Some(path) => File::create(path)
            .map(|file| Box::new(std::io::BufWriter::new(file)) as Box<dyn Write>)
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display()))),
        None if cli.format == Format::Parquet && std::io::stdout().is_terminal() => {
            Err(CliError::new("parquet is binary: give --output FILE (or pipe it)".into()))
        }
        None => Ok(Box::new(std::io::stdout().lock())),
    }
}

fn list_queries(out: &mut dyn Write) -> Result<(), CliError> {
    writeln!(out, "{}", meta::saved_queries())?;
    Ok(())
}

/// `NAME=VALUE` of `--param` and `\run` as its two halves.
fn split_param(text: &str) -> Result<(String, String), CliError> {
    let (name, value) =
        text.split_once('=').ok_or_else(|| CliError::new(format!("parameter '{text}' is not NAME=VALUE")))?;
    Ok((name.trim().to_string(), value.to_string()))
}
