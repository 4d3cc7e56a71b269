//! Bad input at every entry point kql has — command-line arguments, SQL text, saved-query
//! parameters, `-f` files, standard input, `\i` in the REPL, `--core`, `--qmp`, `--vmlinux`,
//! `--btf` and `--tables` directories — each fed the same kinds of trouble: empty, huge,
//! binary garbage, invalid UTF-8, NUL bytes, a FIFO, `/dev/zero`, a directory, a socket that
//! never answers or never ends a line, a sparse 1 TB vmcore.
//!
//! Every case must end in exactly one `kql: …` line of kql's own words on stderr (no panic,
//! no DataFusion "Execution error:") and a non-zero exit, within [`BOUND`]: a hang kills kql
//! and fails the case instead of blocking the suite. Every kql runs under an address-space
//! limit (`prlimit --as`), so a runaway allocation fails the case instead of the machine.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use kql_rig::kernels::Series;

use crate::repl::Terminal;
use crate::support::TempDir;

/// The longest any bad input may take (a debug build on a loaded CI machine).
const BOUND: Duration = Duration::from_secs(90);
/// Address space each kql may map: a runaway allocation fails instead of the OOM killer.
const ADDRESS_SPACE: u64 = 3 << 30;

/// What goes to kql's standard input.
enum Stdin {
    Null,
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// One bad input: kql's arguments, its standard input and a phrase its one line must hold.
struct Case {
    name: String,
    args: Vec<OsString>,
    stdin: Stdin,
    expect: &'static str,
}

impl Case {
    fn new(name: &str, args: &[&str], expect: &'static str) -> Case {
        Case {
            name: name.into(),
            args: args.iter().map(OsString::from).collect(),
            stdin: Stdin::Null,
            expect,
        }
    }

    fn stdin(mut self, stdin: Stdin) -> Case {
        self.stdin = stdin;
        self
    }
}

/// How one run of kql ended.
struct Finished {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
    took: Duration,
}

/// Runs kql with `args` under the address-space limit, killing it (and failing) after `bound`.
fn run_kql(args: &[OsString], stdin: &Stdin, bound: Duration) -> Result<Finished, String> {
    let mut command = Command::new("prlimit");
    command.arg(format!("--as={ADDRESS_SPACE}")).arg("--").arg(env!("CARGO_BIN_EXE_kql")).args(args);
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).env("NO_COLOR", "1");
    command.stdin(match stdin {
        Stdin::Null => Stdio::null(),
        Stdin::File(path) => std::fs::File::open(path).map_err(|e| e.to_string())?.into(),
        Stdin::Bytes(_) => Stdio::piped(),
    });
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("cannot start kql: {e}"))?;
    if let (Stdin::Bytes(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let bytes = bytes.clone();
        std::thread::spawn(move || pipe.write_all(&bytes));
    }
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {} s: killed (a hang)", bound.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    Ok(Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        took,
    })
}

/// What is wrong with how `case` ended, if anything.
fn judge(case: &Case, finished: &Finished) -> Option<String> {
    let lines: Vec<&str> = finished.stderr.lines().collect();
    let line = lines.first().copied().unwrap_or_default();
    let foreign =
        ["panicked", "Execution error", "DataFusion error", "Error during planning", "RUST_BACKTRACE"];
    match () {
        _ if finished.status.success() => Some("exit status 0".into()),
        _ if finished.status.code() != Some(1) => Some(format!("ended by {:?}", finished.status)),
        _ if lines.len() != 1 => Some(format!("{} stderr lines", lines.len())),
        _ if !line.starts_with("kql: ") => Some("the line does not start with 'kql: '".into()),
        _ if foreign.iter().any(|word| line.contains(word)) => Some("the line is not in kql's words".into()),
        _ if !line.contains(case.expect) => Some(format!("the line does not say {:?}", case.expect)),
        _ if !finished.stdout.is_empty() => Some(format!("{} bytes on stdout", finished.stdout.len())),
        _ => None,
    }
    .map(|why| format!("{}: {why}; stderr: {:?}", case.name, finished.stderr))
}

/// Runs every case, prints each one's line and time, and fails listing every bad ending.
fn check_all(group: &str, cases: Vec<Case>) {
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    for case in &cases {
        match run_kql(&case.args, &case.stdin, BOUND) {
            Ok(finished) => {
                slowest = slowest.max(finished.took);
                eprintln!(
                    "{group}/{}: {:.2} s: {}",
                    case.name,
                    finished.took.as_secs_f64(),
                    finished.stderr.trim()
                );
                failures.extend(judge(case, &finished));
            }
            Err(why) => failures.push(format!("{}: {why}", case.name)),
        }
    }
    eprintln!("{group}: {} cases, slowest {:.2} s", cases.len(), slowest.as_secs_f64());
    assert!(
        failures.is_empty(),
        "{group}: {} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Bad files of every kind in one temporary directory.
struct Files {
    dir: TempDir,
    _socket: UnixListener,
}

impl Files {
    fn new() -> Files {
        let dir = TempDir::new();
        let socket = UnixListener::bind(dir.0.join("socket")).expect("a unix socket");
        let files = Files { dir, _socket: socket };
        files.write("empty.sql", b"");
        files.write("blank.sql", b"  \n ; \n");
        files.write("utf8.sql", b"select '\xff\xfe' as x");
        files.write("nul.sql", b"select 1\0");
        files.write("garbage.bin", &garbage(1 << 20));
        files.write("huge.sql", format!("select 1 -- {}", "x".repeat(3 << 20)).as_bytes());
        files.write("or.sql", or_chain(10_000).as_bytes());
        files.write("dense.sql", dense_sum(2 << 20).as_bytes());
        files.write("union.sql", union(2_000).as_bytes());
        files.write("parens.sql", format!("select {}1{}", "(".repeat(10_000), ")".repeat(10_000)).as_bytes());
        files.write("text.txt", b"this is not SQL at all\n");
        std::fs::create_dir(files.path("dir")).unwrap();
        let fifo = files.path("fifo");
        let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
        assert!(made.success(), "mkfifo {}", fifo.display());
        let sparse = std::fs::File::create(files.path("sparse.core")).unwrap();
        sparse.set_len(1 << 40).unwrap();
        files.write("elf1t.core", &elf_header());
        std::fs::OpenOptions::new()
            .write(true)
            .open(files.path("elf1t.core"))
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        files
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path(name), bytes).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// `n` bytes of seeded pseudo-random garbage (xorshift), with a NUL somewhere.
fn garbage(n: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn or_chain(terms: usize) -> String {
    let terms: Vec<String> = (0..terms).map(|i| format!("pid = {}", 1_000_000 + i)).collect();
    format!("select count(*) from processes where {}", terms.join(" or "))
}

/// `select 1+1+…` of about `bytes` bytes: the densest expression SQL allows.
fn dense_sum(bytes: usize) -> String {
    format!("select {}", vec!["1"; bytes / 2 - 4].join("+"))
}

fn union(arms: usize) -> String {
    (0..arms).map(|i| format!("select {i} as x")).collect::<Vec<_>>().join(" union all ")
}

/// The 64-byte header of an ELF64 core with one PT_LOAD segment of 512 GiB at offset 4 KiB.
fn elf_header() -> Vec<u8> {
    let mut header = vec![0u8; 4096];
    header[..4].copy_from_slice(b"\x7fELF");
    header[4] = 2; // 64-bit
    header[5] = 1; // little-endian
    header[6] = 1; // version
    header[0x10] = 4; // ET_CORE
    header[0x12] = 62; // EM_X86_64
    header[0x14] = 1;
    header[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    header[0x34] = 64; // e_ehsize
    header[0x36] = 56; // e_phentsize
    header[0x38] = 1; // e_phnum
    let load = &mut header[64..120];
    load[..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    load[0x08..0x10].copy_from_slice(&4096u64.to_le_bytes()); // p_offset
    load[0x20..0x28].copy_from_slice(&(1u64 << 39).to_le_bytes()); // p_filesz
    load[0x28..0x30].copy_from_slice(&(1u64 << 39).to_le_bytes()); // p_memsz
    header
}

/// SQL on the host's procfs source only, so that no fallback note joins the error line.
fn sql_case(name: &str, args: &[&str], expect: &'static str) -> Case {
    let mut all = vec!["--source", "procfs"];
    all.extend(args);
    Case::new(name, &all, expect)
}

#[test]
fn command_line_arguments_and_saved_query_parameters() {
    let invalid_utf8 = OsStr::from_bytes(b"select '\xff'").to_os_string();
    let huge_token = "x".repeat(120_000);
    let huge_param = format!("port={}", "7".repeat(120_000));
    let garbage_text: String = garbage(4096).into_iter().map(|b| char::from(b % 94 + 33)).collect();
    let mut utf8_case = sql_case("invalid UTF-8 argument", &[], "invalid UTF-8");
    utf8_case.args.push(invalid_utf8);
    check_all(
        "args",
        vec![
            sql_case("empty SQL", &[""], "no SQL statement given"),
            sql_case("only semicolons", &[" ; ;; "], "no SQL statement given"),
            utf8_case,
            sql_case("printable garbage", &[&garbage_text], "Line: 1"),
            sql_case("control characters", &["\u{1}\u{2}\u{7f}\u{1b}[31m"], "syntax error"),
            sql_case("a 120 KB token", &[&huge_token], "bytes in all"),
            sql_case("unknown flag", &["--no-such-flag", "select 1"], "see kql --help"),
            sql_case("bad format", &["--format", "xml", "select 1"], "--format"),
            sql_case("bad memory limit", &["--memory-limit", "lots", "select 1"], "is not a size"),
            sql_case("zero memory limit", &["--memory-limit", "0", "select 1"], "not a usable memory limit"),
            sql_case("two inputs", &["-f", "x.sql", "select 1"], "cannot be used with"),
            sql_case("a parameter without -q", &["--param", "port=22", "select 1"], "use it with -q NAME"),
            sql_case("unknown saved query", &["-q", "\u{1}\u{2}"], "unknown saved query"),
            sql_case("empty parameter", &["-q", "who-listens", "--param", "port="], "must be a port"),
            sql_case("text parameter", &["-q", "who-listens", "--param", "port=22 or 1=1"], "must be a port"),
            sql_case("negative port", &["-q", "who-listens", "--param", "port=-1"], "from 0 to 65535"),
            sql_case("port past 65535", &["-q", "who-listens", "--param", "port=65536"], "from 0 to 65535"),
            sql_case(
                "overflowing parameter",
                &["-q", "who-listens", "--param", "port=99999999999999999999"],
                "must be a port",
            ),
            sql_case("a 120 KB parameter", &["-q", "who-listens", "--param", &huge_param], "bytes in all"),
            sql_case("unknown parameter", &["-q", "who-listens", "--param", "nope=1"], "has no parameter"),
            sql_case("parameter without =", &["-q", "who-listens", "--param", "port"], "is not NAME=VALUE"),
            sql_case("a subcommand with SQL", &["tables", "select 1"], "unexpected argument"),
        ],
    );
}

#[test]
fn sql_text_too_deep_too_wide_or_too_big() {
    let files = Files::new();
    let cross = "select a.pid, b.pid, c.pid, d.pid from processes a, processes b, processes c, threads d";
    check_all(
        "sql",
        vec![
            sql_case("10,000-term OR chain", &["-f", &files.arg("or.sql")], "nests deeper than 1000"),
            sql_case("2 MiB of 1+1+…", &["-f", &files.arg("dense.sql")], "nests deeper than 1000"),
            sql_case("2,000-way UNION", &["-f", &files.arg("union.sql")], "more than 1000 UNION"),
            sql_case("10,000 nested parentheses", &["-f", &files.arg("parens.sql")], "recursion limit"),
            sql_case("plain words", &["-f", &files.arg("text.txt")], "syntax error"),
            sql_case("unknown table", &["select * from no_such_table"], "unknown table"),
            sql_case("division by zero", &["select 1/0"], "Divide by zero"),
            sql_case(
                "cross join sorted past the memory limit",
                &["--memory-limit", "64M", &format!("{cross} order by 1, 2, 3, 4")],
                "raise --memory-limit",
            ),
            sql_case(
                "cross join collected past the memory limit",
                &["--memory-limit", "64M", cross],
                "raise --memory-limit",
            ),
        ],
    );
}

#[test]
fn sql_files_and_standard_input() {
    let files = Files::new();
    let file = |name: &str, what: &str, expect: &'static str| {
        sql_case(&format!("-f {what}"), &["-f", &files.arg(name)], expect)
    };
    let stdin = |what: &str, input: Stdin, expect: &'static str| {
        sql_case(&format!("stdin {what}"), &[], expect).stdin(input)
    };
    check_all(
        "files",
        vec![
            file("empty.sql", "empty", "no SQL statement given"),
            file("blank.sql", "blank", "no SQL statement given"),
            file("utf8.sql", "invalid UTF-8", "not UTF-8"),
            file("nul.sql", "NUL byte", "NUL byte"),
            file("garbage.bin", "binary garbage", "NUL byte"),
            file("huge.sql", "3 MiB", "limit of 2 MiB"),
            file("dir", "directory", "a directory"),
            file("fifo", "FIFO", "a FIFO"),
            file("socket", "socket", "a socket"),
            file("missing.sql", "missing", "No such file"),
            sql_case("-f /dev/zero", &["-f", "/dev/zero"], "a device"),
            stdin("/dev/zero", Stdin::File("/dev/zero".into()), "NUL byte"),
            stdin("empty", Stdin::Null, "no SQL statement given"),
            stdin("invalid UTF-8", Stdin::Bytes(b"select '\xc3\x28'".to_vec()), "not UTF-8"),
            stdin("binary garbage", Stdin::Bytes(garbage(1 << 20)), "NUL byte"),
            stdin("3 MiB", Stdin::Bytes(vec![b' '; 3 << 20]), "limit of 2 MiB"),
            stdin("10,000-term OR chain", Stdin::Bytes(or_chain(10_000).into_bytes()), "nests deeper"),
        ],
    );
}

#[test]
fn targets_that_are_not_what_they_claim() {
    let files = Files::new();
    let target = |flag: &str, name: &str, expect: &'static str| {
        Case::new(&format!("{flag} {name}"), &[flag, &files.arg(name), "select 1"], expect)
    };
    check_all(
        "targets",
        vec![
            target("--core", "dir", "a directory, not a regular file"),
            target("--core", "fifo", "a FIFO, not a regular file"),
            target("--core", "socket", "a socket, not a regular file"),
            target("--core", "empty.sql", "not a vmcore"),
            target("--core", "garbage.bin", "not a vmcore"),
            target("--core", "sparse.core", "not a vmcore"),
            target("--core", "elf1t.core", ""),
            target("--core", "missing", "No such file"),
            Case::new("--core /dev/zero", &["--core", "/dev/zero", "select 1"], "a character device"),
            target("--vmlinux", "dir", "a directory, not a regular file"),
            target("--vmlinux", "fifo", "a FIFO, not a regular file"),
            Case::new("--vmlinux /dev/zero", &["--vmlinux", "/dev/zero", "select 1"], "a character device"),
            target("--btf", "fifo", "a FIFO, not a regular file"),
            target("--btf", "garbage.bin", "BTF"),
            target("--btf", "empty.sql", "BTF"),
            Case::new("--btf /dev/zero", &["--btf", "/dev/zero", "select 1"], "a character device"),
            target("--qmp", "garbage.bin", "not QEMU's QMP socket"),
            target("--qmp", "dir", "not QEMU's QMP socket"),
            target("--qmp", "fifo", "not QEMU's QMP socket"),
            target("--qmp", "missing", "No such file"),
        ],
    );
}

/// How a fake QMP peer behaves towards the one connection it accepts.
#[derive(Clone, Copy, Debug)]
enum Peer {
    /// Accepts and says nothing.
    Silent,
    /// Streams bytes without a newline.
    Streaming,
    /// Greets as QEMU does, then never answers `qmp_capabilities`.
    GreetsOnly,
    /// Speaks something other than QMP.
    Stranger,
    /// Closes the connection at once.
    Hangs,
}

/// A listener at `path` that treats its one connection as `peer` does, until kql leaves.
fn fake_qmp(path: &Path, peer: Peer) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(path).expect("a unix listener");
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else { return };
        let mut sink = Vec::new();
        match peer {
            Peer::Silent => {}
            Peer::Streaming => while stream.write_all(&[b'x'; 4096]).is_ok() {},
            Peer::GreetsOnly => {
                let _ = stream.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n");
            }
            Peer::Stranger => {
                let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
            }
            Peer::Hangs => return,
        }
        let _ = stream.read_to_end(&mut sink);
    })
}

#[test]
fn qmp_peers_that_never_answer_properly() {
    let dir = TempDir::new();
    let peers = [
        (Peer::Silent, "no reply within 5 s"),
        (Peer::Streaming, "without a newline"),
        (Peer::GreetsOnly, "did not answer qmp_capabilities"),
        (Peer::Stranger, "no \"QMP\" greeting"),
        (Peer::Hangs, "closed the connection"),
    ];
    let mut cases = Vec::new();
    let mut peer_threads = Vec::new();
    for (peer, expect) in peers {
        let path = dir.0.join(format!("{peer:?}.qmp"));
        peer_threads.push(fake_qmp(&path, peer));
        cases.push(Case::new(
            &format!("{peer:?} peer"),
            &["--qmp", path.to_str().unwrap(), "select 1"],
            expect,
        ));
    }
    let stale = dir.0.join("stale.qmp");
    drop(UnixListener::bind(&stale).unwrap());
    cases.push(Case::new("stale socket", &["--qmp", stale.to_str().unwrap(), "select 1"], "cannot connect"));
    check_all("qmp", cases);
    for thread in peer_threads {
        thread.join().expect("the fake peer ends when kql leaves");
    }
}

/// Bad declaration files in a `--tables` directory, which the user named on purpose: each
/// is one `kql: --tables: …` line naming the file and a non-zero exit, as is a declaration
/// whose member this kernel lacks (read on the 6.1 `basic` vmcore).
#[test]
fn bad_declaration_files_given_with_tables_are_one_error_each() {
    let files = Files::new();
    let tables = |name: &str, setup: &dyn Fn(&Path)| {
        let dir = files.path(&format!("tables-{name}"));
        std::fs::create_dir(&dir).unwrap();
        setup(&dir);
        dir
    };
    let write =
        |file: &'static str, text: &'static [u8]| move |d: &Path| std::fs::write(d.join(file), text).unwrap();
    let declarations = [
        (tables("garbage", &|d| std::fs::write(d.join("g.sql"), garbage(1 << 20)).unwrap()), "g.sql"),
        (tables("utf8", &write("u.sql", b"CREATE KERNEL TABLE \xff")), "u.sql"),
        (tables("nul", &write("n.sql", b"CREATE KERNEL\0 TABLE")), "n.sql: a NUL byte"),
        (tables("syntax", &write("s.sql", b"CREATE KERNEL TABLE s FROM LIST;")), "s.sql"),
        (
            tables("huge", &|d| std::fs::write(d.join("h.sql"), "-- x\n".repeat(1 << 20)).unwrap()),
            "h.sql: larger than",
        ),
        (
            tables("fifo", &|d| {
                assert!(Command::new("mkfifo").arg(d.join("f.sql")).status().unwrap().success());
            }),
            "f.sql: not a regular file",
        ),
        (tables("dir", &|d| std::fs::create_dir(d.join("d.sql")).unwrap()), "d.sql: not a regular file"),
        (files.path("missing"), "No such file"),
        (files.path("nul.sql"), "Not a directory"),
    ];
    let mut cases: Vec<Case> = declarations
        .iter()
        .map(|(dir, expect)| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            Case::new(
                &name,
                &["--source", "procfs", "--tables", dir.to_str().unwrap(), "select 7 as x"],
                expect,
            )
        })
        .collect();
    let (vmcore, _) = kql_rig::vmcores::of(Series::Bookworm61, "basic").expect("the 6.1 vmcore");
    let typo = tables(
        "member",
        &write(
            "m.sql",
            b"CREATE KERNEL TABLE typo FROM LIST modules OF struct module VIA list COLUMNS (n = nmae);",
        ),
    );
    let core_args = ["--core", vmcore.to_str().unwrap(), "--tables", typo.to_str().unwrap(), "select 7 as x"];
    cases.push(Case::new("unknown member", &core_args, "has no member 'nmae'"));
    check_all("tables", cases);
}

/// Declaration files of the user's own `$XDG_CONFIG_HOME/kql/tables` are read by every kql:
/// a bad one there is skipped with one warning naming it, and the statement still runs; a
/// valid but empty or very wide file in a `--tables` directory is no trouble at all.
#[test]
fn bad_declaration_files_of_the_users_directory_are_one_warning_each() {
    let files = Files::new();
    let user = files.path("config/kql/tables");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("bad.sql"), garbage(4096)).unwrap();
    let fine = files.path("fine");
    std::fs::create_dir(&fine).unwrap();
    std::fs::write(fine.join("empty.sql"), "").unwrap();
    let columns: Vec<String> = (0..10_000).map(|i| format!("c{i} = name")).collect();
    let wide = format!(
        "CREATE KERNEL TABLE wide FROM LIST modules OF struct module VIA list COLUMNS ({});",
        columns.join(", ")
    );
    std::fs::write(fine.join("wide.sql"), wide).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kql"))
        .args(["--source", "procfs", "--tables", fine.to_str().unwrap(), "select 7 as x"])
        .env("XDG_CONFIG_HOME", files.path("config"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && String::from_utf8_lossy(&output.stdout).contains('7'), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("kql: warning: ") && stderr.contains("bad.sql"), "{stderr}");
}

/// Huge but valid statements run to their end within the bound.
#[test]
fn huge_valid_statements_finish() {
    let wide: Vec<String> = (0..10_000).map(|i| format!("{i} as c{i}")).collect();
    let pids: Vec<String> = (0..140_000).map(|i| (1_000_000 + i).to_string()).collect();
    let statements = [
        ("10,000-column select", format!("select {}", wide.join(", "))),
        ("1,000-way UNION", union(1_000)),
        ("1 MB IN list", format!("select count(*) from processes where pid in ({})", pids.join(","))),
    ];
    let mut failures = Vec::new();
    for (name, sql) in &statements {
        let args: Vec<OsString> =
            ["--source", "procfs", "--format", "csv"].iter().map(OsString::from).collect();
        match run_kql(&args, &Stdin::Bytes(sql.clone().into_bytes()), Duration::from_secs(300)) {
            Err(why) => failures.push(format!("{name}: {why}")),
            Ok(finished) => {
                eprintln!("valid/{name}: {} bytes of SQL, {:.2} s", sql.len(), finished.took.as_secs_f64());
                if !finished.status.success() || !finished.stderr.is_empty() || finished.stdout.is_empty() {
                    failures.push(format!("{name}: {:?} {:?}", finished.status, finished.stderr));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `\i FILE` and `\target` in the REPL: the same bad files, each one `kql:` line, and the
/// session goes on (a hang fails: [`Terminal::run`] waits for the next prompt with a deadline).
#[test]
fn bad_files_in_the_repl_are_one_line_and_the_session_goes_on() {
    let files = Files::new();
    let state = TempDir::new();
    let terminal = Terminal::start("bad-input", &state.0);
    let peer = files.path("silent.qmp");
    let _silent = fake_qmp(&peer, Peer::Silent);
    let cases = [
        (format!("\\i {}", files.arg("empty.sql")), "no SQL statement given"),
        (format!("\\i {}", files.arg("utf8.sql")), "not UTF-8"),
        (format!("\\i {}", files.arg("nul.sql")), "NUL byte"),
        (format!("\\i {}", files.arg("garbage.bin")), "NUL byte"),
        (format!("\\i {}", files.arg("huge.sql")), "limit of 2 MiB"),
        (format!("\\i {}", files.arg("or.sql")), "nests deeper than 1000"),
        (format!("\\i {}", files.arg("union.sql")), "more than 1000 UNION"),
        (format!("\\i {}", files.arg("dir")), "a directory"),
        (format!("\\i {}", files.arg("fifo")), "a FIFO"),
        (format!("\\i {}", files.arg("socket")), "a socket"),
        ("\\i /dev/zero".to_string(), "a device"),
        ("\\run who-listens port=22x".to_string(), "must be a port"),
        (format!("\\target core {}", files.arg("sparse.core")), "not a vmcore"),
        ("\\target core /dev/zero".to_string(), "a character device"),
        (format!("\\target qmp {}", peer.display()), "no reply within 5 s"),
    ];
    let mut failures = Vec::new();
    for (line, expect) in &cases {
        let started = Instant::now();
        terminal.run(line);
        let took = started.elapsed();
        let screen = terminal.screen();
        let after = screen.rsplit_once(&format!("kql> {line}")).map(|(_, after)| after).unwrap_or_default();
        let said: Vec<&str> =
            after.lines().filter(|l| !l.trim().is_empty() && !l.trim_end().starts_with("kql>")).collect();
        eprintln!("repl/{line}: {:.2} s: {said:?}", took.as_secs_f64());
        let one_line = said.len() == 1 && said[0].starts_with("kql: ") && said[0].contains(expect);
        if !one_line {
            failures.push(format!("{line}: {said:?}"));
        }
    }
    terminal.run("select 6 * 7 as answer;");
    assert!(terminal.screen().contains("| 42     |"), "the session goes on:\n{}", terminal.screen());
    eprintln!("repl: {} cases", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `--vmlinux` and `--btf` that are files but not debug info, against a real vmcore (the 6.1
/// guest's, made by the rig), so that libdrgn's own reading of them is reached.
#[test]
fn debug_info_that_is_not_debug_info() {
    let files = Files::new();
    let (vmcore, _) =
        kql_rig::vmcores::of(kql_rig::kernels::Series::Bookworm61, "basic").expect("the 6.1 vmcore");
    let vmcore = vmcore.display().to_string();
    let with_core = |flag: &str, name: &str, expect: &'static str| {
        Case::new(&format!("{flag} {name}"), &["--core", &vmcore, flag, &files.arg(name), "select 1"], expect)
    };
    check_all(
        "debug info",
        vec![
            with_core("--vmlinux", "garbage.bin", "not an ELF file"),
            with_core("--vmlinux", "empty.sql", "not usable"),
            with_core("--vmlinux", "sparse.core", "not an ELF file"),
            with_core("--vmlinux", "elf1t.core", "no build id"),
            with_core("--vmlinux", "dir", "a directory"),
            with_core("--vmlinux", "fifo", "a FIFO"),
            with_core("--btf", "garbage.bin", "not usable BTF"),
            with_core("--btf", "sparse.core", "more than the 256 MiB"),
            with_core("--btf", "fifo", "a FIFO"),
        ],
    );
}
