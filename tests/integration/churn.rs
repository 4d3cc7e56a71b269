//! kql on a kernel that never holds still: the 6.1 guest's `churn` workload opens and closes
//! listeners, TCP connections, UDP and unix sockets in two network namespaces and starts and
//! reaps short-lived processes and threads all the time, logging each object it makes (see
//! the workload's `churn` module). Every table and `ss-nlpt-all` are read over and over — from
//! the host over QMP (BTF and DWARF) and inside the guest on `/proc/kcore` — many statements
//! to a kql process, each process killed (a failure) past its time.
//!
//! Required of every statement: it ends, without an error; its only warnings are the
//! documented "changed while read" ones (counted: the objects skipped); and every row is
//! plausible against the workload's log — ports in the ranges it uses (or the kernel's
//! ephemeral range for the client end of a connection), pids and tids it logged, socket
//! inodes it logged, no key twice in one result, text valid UTF-8 with bytes that are not
//! escaped (no U+FFFD) and no NUL. Per-statement times, skipped objects and the churn rate achieved are printed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::time::Duration;

use kql_rig::guest::GuestCommand;
use kql_rig::kernels::Series;
use serde_json::Value;

use crate::guests::Booted;
use crate::support::kql_within;

/// Rounds (each statement once per round) per kql process, and processes, from the host and
/// inside the guest.
const HOST_ROUNDS: usize = 10;
const HOST_RUNS: usize = 5;
const INSIDE_ROUNDS: usize = 2;
const INSIDE_RUNS: usize = 1;
/// Longest one statement may take on average in a run before the run is killed (a hang):
/// generous, as TCG inside the guest and the churn compete for one host core.
const PER_STATEMENT: Duration = Duration::from_secs(20);
/// At least this many statements in all, as the issue asks.
const MIN_STATEMENTS: usize = 1000;

type Row = BTreeMap<String, Value>;

#[test]
fn a_churning_guest_read_a_thousand_times_gives_only_plausible_rows() {
    let booted = Booted::new(Series::Bookworm61, "churn");
    let qmp = booted.qmp();
    let vmlinux = booted.vmlinux();
    let tables = table_names(&["--qmp", &qmp]);
    let round: Vec<String> = tables
        .iter()
        .map(|t| format!("select * from {t}"))
        .chain(["select * from ss_nlpt_all".to_string()])
        .collect();
    let names: Vec<&str> = tables.iter().map(String::as_str).chain(["ss_nlpt_all"]).collect();

    let mut runs = Vec::new();
    for run in 0..HOST_RUNS {
        let flags: Vec<&str> =
            if run % 2 == 0 { vec!["--qmp", &qmp] } else { vec!["--qmp", &qmp, "--vmlinux", &vmlinux] };
        runs.push((format!("host {}", flags.join(" ")), host_run(&flags, &round, HOST_ROUNDS)));
    }
    for _ in 0..INSIDE_RUNS {
        runs.push(("inside on /proc/kcore".to_string(), inside_run(&booted, &round, INSIDE_ROUNDS)));
    }

    booted.shell("rm -rf /share/churn-logs && cp -r /tmp/kqlw-churn /share/churn-logs");
    let log = ChurnLog::read(&booted.guest.share().join("churn-logs"));
    let known = Known::new(&log, &booted);

    let mut report = Report::default();
    let mut failures = Vec::new();
    for (who, run) in &runs {
        let known = known.and_sockets_of_kql(run, &names);
        for (index, statement) in run.iter().enumerate() {
            let table = names[index % names.len()];
            let problems = implausible(table, &statement.rows, &known);
            if let Some(first) = problems.first() {
                failures.push(format!("{who}: {table}: {} implausible rows, first: {first}", problems.len()));
            }
            report.add(who, table, statement);
        }
    }
    report.print(&log);
    assert!(
        failures.is_empty(),
        "{} statements with implausible rows:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let statements = report.times.len();
    assert!(statements >= MIN_STATEMENTS, "{statements} statements");
}

/// The tables kql has on this target.
fn table_names(flags: &[&str]) -> Vec<String> {
    let args: Vec<&str> =
        ["tables", "--format", "json"].iter().copied().chain(flags.iter().copied()).collect();
    let run = kql_within(&args, PER_STATEMENT);
    assert!(run.success, "kql tables: {}", run.stderr);
    let rows: Vec<Row> = serde_json::from_slice(&run.stdout).expect("JSON rows");
    rows.iter().map(|r| r["table"].as_str().expect("a table name").to_string()).collect()
}

/// What one statement gave.
struct Statement {
    rows: Vec<Row>,
    millis: f64,
    /// Objects its warnings say were skipped as changed under the walk.
    skipped: u64,
    warnings: Vec<String>,
}

/// `round` `rounds` times in one kql process on the host with `flags`.
fn host_run(flags: &[&str], round: &[String], rounds: usize) -> Vec<Statement> {
    let sql = vec![round.join(";\n"); rounds].join(";\n");
    let args: Vec<&str> = flags.iter().copied().chain(["--format", "json", "--timing", &sql]).collect();
    let run = kql_within(&args, PER_STATEMENT * (round.len() * rounds) as u32);
    assert!(run.success, "kql {flags:?}: {}", run.stderr);
    statements(&String::from_utf8(run.stdout).expect("UTF-8 output"), &run.stderr, round.len() * rounds)
}

/// `round` `rounds` times in one kql process inside the guest, on its `/proc/kcore`.
fn inside_run(booted: &Booted, round: &[String], rounds: usize) -> Vec<Statement> {
    let sql = vec![round.join(";\n"); rounds].join(";\n");
    let count = round.len() * rounds;
    let command = GuestCommand::new(["kql", "--format", "json", "--timing", &sql])
        .timeout(PER_STATEMENT * count as u32);
    let output = booted.guest.exec(&command).expect("the guest agent runs kql");
    assert!(!output.timed_out, "kql inside the guest ran past {:?}", PER_STATEMENT * count as u32);
    assert!(output.success(), "kql inside the guest: {output:?}");
    statements(&output.stdout, &output.stderr, count)
}

/// The statements of one run: the JSON arrays of `stdout`, and from `stderr` each one's
/// warnings and `Time:` line. Any other line fails the test.
fn statements(stdout: &str, stderr: &str, count: usize) -> Vec<Statement> {
    let results: Vec<Vec<Row>> = serde_json::Deserializer::from_str(stdout)
        .into_iter::<Vec<Row>>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("kql printed no JSON arrays ({e})"));
    assert_eq!(results.len(), count, "one result per statement; stderr: {stderr}");
    let mut statements = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    for line in stderr.lines() {
        if let Some(time) = line.strip_prefix("Time: ").and_then(|t| t.strip_suffix(" ms")) {
            let millis = time.parse().expect("a time in ms");
            let skipped = warnings.iter().map(|w| skipped_count(w)).sum();
            statements.push((millis, skipped, std::mem::take(&mut warnings)));
        } else {
            let warning =
                line.strip_prefix("kql: warning: ").unwrap_or_else(|| panic!("not a warning: {line}"));
            assert!(is_changed_warning(warning), "a warning other than 'changed while read': {line}");
            warnings.push(warning.to_string());
        }
    }
    assert_eq!(statements.len(), count, "a Time: line per statement");
    results
        .into_iter()
        .zip(statements)
        .map(|(rows, (millis, skipped, warnings))| Statement { rows, millis, skipped, warnings })
        .collect()
}

/// The warnings a walk of a running kernel may give: objects (or buckets, or chains) that
/// changed while it read them, skipped (hand-written walks) or left out (declared tables).
fn is_changed_warning(warning: &str) -> bool {
    let Some((_table, text)) = warning.split_once(": ") else { return false };
    (text.starts_with("skipped ") && text.contains("(changing while read?)"))
        || text.starts_with("skipped ") // one line per place named
        || (text.starts_with("and ") && text.ends_with("more places skipped"))
        || (text.starts_with("left out ") && text.contains("changed while being read"))
}

/// How many objects (or containers) a warning's summary line counts; 0 for the lines that
/// name places (`skipped bucket 17 of …`).
fn skipped_count(warning: &str) -> u64 {
    let text = warning.split_once(": ").map_or("", |(_, text)| text);
    let number = match text.split_whitespace().collect::<Vec<_>>()[..] {
        ["left", "out", n, ..] | ["skipped", n, ..] => n.parse().ok(),
        _ => None,
    };
    number.unwrap_or(0)
}

/// The ports a net worker uses in its namespace, as it logged them.
#[derive(Debug, Clone)]
struct Ranges {
    listen: RangeInclusive<u16>,
    pair: u16,
    udp: RangeInclusive<u16>,
    ephemeral: RangeInclusive<u16>,
}

/// The workload's logs.
struct ChurnLog {
    /// Every line, split on tabs, with its worker.
    lines: Vec<(String, Vec<String>)>,
}

impl ChurnLog {
    fn read(dir: &std::path::Path) -> ChurnLog {
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(dir).expect("the churn logs") {
            let path = entry.unwrap().path();
            let worker = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            lines.extend(text.lines().map(|l| (worker.clone(), l.split('\t').map(String::from).collect())));
        }
        assert!(!lines.is_empty(), "the churn workers logged nothing");
        ChurnLog { lines }
    }

    /// The fields after `<ms>\t<kind>` of each line of `kind`.
    fn of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a [String]> + 'a {
        self.lines
            .iter()
            .filter(move |(_, f)| f.get(1).map(String::as_str) == Some(kind))
            .map(|(_, f)| &f[2..])
    }

    /// Lines of `kind` per second, over each worker's logging time, summed over workers.
    fn rate(&self, kind: &str) -> f64 {
        let mut spans: HashMap<&str, (u64, u64, u64)> = HashMap::new();
        for (worker, fields) in &self.lines {
            let ms: u64 = fields[0].parse().unwrap();
            let span = spans.entry(worker).or_insert((ms, ms, 0));
            span.0 = span.0.min(ms);
            span.1 = span.1.max(ms);
            span.2 += u64::from(fields.get(1).map(String::as_str) == Some(kind));
        }
        spans
            .values()
            .filter(|s| s.2 > 0)
            .map(|&(first, last, n)| n as f64 * 1000.0 / (last - first).max(1) as f64)
            .fold(0.0, |sum, rate| sum + rate)
    }
}

fn number<T: std::str::FromStr>(field: &str) -> T {
    field.parse().unwrap_or_else(|_| panic!("a number in the churn log: {field:?}"))
}

/// What the workload made, from its logs and the guest's truth at ready.
#[derive(Clone)]
struct Known {
    ranges: HashMap<u64, Ranges>,
    inodes: HashSet<u64>,
    pids: HashSet<i64>,
    tids: HashSet<i64>,
    /// `kqlw-churn-proc`, the parent of the short-lived processes.
    kid_parent: i64,
    /// Ports of listeners the guest's /proc/net/tcp showed at ready, per namespace.
    listening: HashSet<(u64, u16)>,
}

impl Known {
    fn new(log: &ChurnLog, booted: &Booted) -> Known {
        let truth = &booted.truth;
        let mut ranges = HashMap::new();
        for f in log.of("ranges") {
            let range = |lo: &str, hi: &str| number(lo)..=number(hi);
            let r = Ranges {
                listen: range(&f[1], &f[2]),
                pair: number(&f[3]),
                udp: range(&f[4], &f[5]),
                ephemeral: range(&f[6], &f[7]),
            };
            ranges.insert(number(&f[0]), r);
        }
        assert_eq!(ranges.len(), 2, "two network namespaces churn");
        let mut inodes: HashSet<u64> = truth.socket_fds.iter().map(|f| f.inode).collect();
        inodes.extend(truth.tcp.iter().map(|e| e.inode));
        for kind in ["listen", "udp"] {
            inodes.extend(log.of(kind).map(|f| number::<u64>(&f[2])));
        }
        inodes.extend(log.of("pair").flat_map(|f| [number::<u64>(&f[2]), number(&f[3])]));
        inodes.extend(log.of("unix").flat_map(|f| [number::<u64>(&f[1]), number(&f[2])]));
        let mut pids: HashSet<i64> = truth.processes.iter().map(|p| i64::from(p.pid)).collect();
        pids.extend(log.of("proc").map(|f| number::<i64>(&f[0])));
        let mut tids: HashSet<i64> = truth.threads.iter().map(|t| i64::from(t.tid)).collect();
        tids.extend(pids.iter().copied());
        tids.extend(log.of("thread").map(|f| number::<i64>(&f[1])));
        let listening = truth.listeners().map(|e| (e.netns, e.local_port)).collect();
        let processes = truth.scenario["processes"].as_array().expect("the scenario's processes");
        let kid_parent = processes
            .iter()
            .find(|p| p["name"] == "kqlw-churn-proc")
            .and_then(|p| p["pid"].as_i64())
            .expect("kqlw-churn-proc in scenario.json");
        Known { ranges, inodes, pids, tids, kid_parent, listening }
    }

    /// These, and the sockets of kql itself in `run` (inside the guest, its runtime holds a
    /// unix socket pair), as its `proc_fds` results show them.
    fn and_sockets_of_kql(&self, run: &[Statement], names: &[&str]) -> Known {
        let mut known = self.clone();
        let fds = run.iter().enumerate().filter(|(index, _)| names[index % names.len()] == "proc_fds");
        for row in fds.flat_map(|(_, statement)| &statement.rows) {
            if text_of(row, "comm") == "kql" && text_of(row, "kind") == "socket" {
                known.inodes.insert(u64_of(row, "inode"));
            }
        }
        known
    }

    /// A TCP port the workload listens on in `netns`.
    fn listens_on(&self, netns: u64, port: u16) -> bool {
        self.ranges.get(&netns).is_some_and(|r| r.listen.contains(&port) || r.pair == port)
            || self.listening.contains(&(netns, port))
    }

    /// A TCP port a socket of `netns` may have: a listener's, or the client end's ephemeral one.
    fn tcp_port(&self, netns: u64, port: u16) -> bool {
        self.listens_on(netns, port) || self.ranges.get(&netns).is_some_and(|r| r.ephemeral.contains(&port))
    }

    fn udp_port(&self, netns: u64, port: u16) -> bool {
        self.ranges.get(&netns).is_some_and(|r| r.udp.contains(&port))
    }

    /// A socket inode the workload made (0: no file holds the socket).
    fn inode(&self, inode: u64) -> bool {
        inode == 0 || self.inodes.contains(&inode)
    }
}

fn u64_of(row: &Row, column: &str) -> u64 {
    row.get(column).and_then(Value::as_u64).unwrap_or_else(|| panic!("no {column} in {row:?}"))
}

fn i64_of(row: &Row, column: &str) -> i64 {
    row.get(column).and_then(Value::as_i64).unwrap_or_else(|| panic!("no {column} in {row:?}"))
}

fn text_of<'r>(row: &'r Row, column: &str) -> &'r str {
    row.get(column).and_then(Value::as_str).unwrap_or("")
}

/// Whether a row's key columns identify it within one result, per table.
fn key(table: &str, row: &Row) -> Option<String> {
    let columns: &[&str] = match table {
        "tcp_listeners" | "tcp_sockets" | "udp_sockets" | "unix_sockets" => &["sk_addr"],
        "processes" => &["pid"],
        "threads" => &["tid"],
        "proc_fds" => &["pid", "fd"],
        "ss_nlpt_all" => return Some(serde_json::to_string(row).unwrap()),
        _ => &["address"],
    };
    let values: Vec<&Value> = columns.iter().filter_map(|c| row.get(*c)).collect();
    (values.len() == columns.len()).then(|| serde_json::to_string(&values).unwrap())
}

/// The rows of `table` that the workload's log cannot account for, described.
fn implausible(table: &str, rows: &[Row], known: &Known) -> Vec<String> {
    let mut problems = Vec::new();
    let mut keys = HashSet::new();
    for row in rows {
        if let Some(key) = key(table, row)
            && !keys.insert(key.clone())
        {
            problems.push(format!("key {key} twice"));
        }
        for value in row.values() {
            if let Some(text) = value.as_str()
                && text.chars().any(|c| c == '\u{fffd}' || c == '\0')
            {
                problems.push(format!("text with a NUL or an unescaped byte: {text:?}"));
            }
        }
        if !plausible(table, row, known) {
            problems.push(format!("{row:?}"));
        }
    }
    problems
}

/// Whether one row is something the workload (or the guest at ready) made.
fn plausible(table: &str, row: &Row, known: &Known) -> bool {
    let ours = || text_of(row, "comm").starts_with("kqlw");
    match table {
        "tcp_listeners" => {
            let netns = u64_of(row, "netns");
            known.listens_on(netns, u64_of(row, "local_port") as u16) && known.inode(u64_of(row, "inode"))
        }
        "tcp_sockets" => {
            let netns = u64_of(row, "netns");
            known.tcp_port(netns, u64_of(row, "local_port") as u16) && known.inode(u64_of(row, "inode"))
        }
        "udp_sockets" => {
            known.udp_port(u64_of(row, "netns"), u64_of(row, "local_port") as u16)
                && known.inode(u64_of(row, "inode"))
        }
        "unix_sockets" => known.inode(u64_of(row, "inode")),
        "processes" => {
            let kid = i64_of(row, "ppid") == known.kid_parent;
            !(ours() || kid) || known.pids.contains(&i64_of(row, "pid"))
        }
        "threads" => !ours() || known.tids.contains(&i64_of(row, "tid")),
        "proc_fds" => !ours() || text_of(row, "kind") != "socket" || known.inode(u64_of(row, "inode")),
        "ss_nlpt_all" => {
            let port = text_of(row, "Local Address:Port").rsplit(':').next().and_then(|p| p.parse().ok());
            port.is_some_and(|port| known.listens_on(u64_of(row, "Netns"), port))
        }
        _ => true,
    }
}

/// Per-statement times, skipped objects and warnings, per table.
#[derive(Default)]
struct Report {
    times: Vec<f64>,
    per_table: BTreeMap<String, (Vec<f64>, u64, usize)>,
    /// Times by where kql ran.
    per_reader: BTreeMap<String, Vec<f64>>,
    first_warnings: Vec<String>,
}

impl Report {
    fn add(&mut self, reader: &str, table: &str, statement: &Statement) {
        self.times.push(statement.millis);
        self.per_reader.entry(reader.to_string()).or_default().push(statement.millis);
        let entry = self.per_table.entry(table.to_string()).or_default();
        entry.0.push(statement.millis);
        entry.1 += statement.skipped;
        entry.2 += statement.rows.len();
        if self.first_warnings.len() < 10 {
            self.first_warnings.extend(statement.warnings.iter().take(2).cloned());
        }
    }

    fn print(&self, log: &ChurnLog) {
        let (median, max) = median_max(&self.times);
        let skipped: u64 = self.per_table.values().map(|t| t.1).sum();
        eprintln!(
            "churn: {} statements, per statement median {median:.1} ms, max {max:.1} ms; {skipped} objects skipped as changed",
            self.times.len()
        );
        for (reader, times) in &self.per_reader {
            let (median, max) = median_max(times);
            eprintln!(
                "churn:   {reader}: {} statements, median {median:.1} ms, max {max:.1} ms",
                times.len()
            );
        }
        for (table, (times, skipped, rows)) in &self.per_table {
            let (median, max) = median_max(times);
            eprintln!(
                "churn:   {table}: {} runs, median {median:.1} ms, max {max:.1} ms, {rows} rows, {skipped} skipped",
                times.len()
            );
        }
        for warning in &self.first_warnings {
            eprintln!("churn:   warning seen: {warning}");
        }
        let rates: Vec<String> = ["listen", "pair", "udp", "unix", "proc", "thread", "error"]
            .iter()
            .map(|kind| format!("{kind} {:.0}/s", log.rate(kind)))
            .collect();
        eprintln!("churn: workload rates: {}", rates.join(", "));
    }
}

fn median_max(times: &[f64]) -> (f64, f64) {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    (sorted[sorted.len() / 2], sorted[sorted.len() - 1])
}
