//! `kql serve` queried by a real Flight SQL client: ADBC's Python driver (from PyPI, in a
//! venv cached under ~/.cache/kql) over TLS and mutual TLS with certificates the tests make,
//! and a bearer token. The Python scripts of tests/flight assert what each call returns;
//! here the server runs, and its log and memory are checked.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use crate::support::*;

/// The cached venv with the ADBC Flight SQL driver and pyarrow, made under a lock.
#[expect(
    clippy::incompatible_msrv,
    reason = "File::lock (1.89): the tests build with the pinned 1.95 toolchain"
)]
fn flight_venv() -> PathBuf {
    let cache = PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/kql");
    std::fs::create_dir_all(&cache).unwrap();
    let venv = cache.join("flight-venv");
    let lock = std::fs::File::create(cache.join("flight-venv.lock")).unwrap();
    lock.lock().unwrap();
    let python = venv.join("bin/python");
    let ready = Command::new(&python).args(["-c", "import adbc_driver_flightsql, pyarrow"]).status();
    if !ready.is_ok_and(|s| s.success()) {
        let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().unwrap();
        assert!(made.success(), "python3 -m venv");
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "adbc-driver-flightsql", "adbc-driver-manager", "pyarrow"])
            .status()
            .unwrap();
        assert!(pip.success(), "pip install of the ADBC driver");
    }
    python
}

/// What `script` of tests/flight printed and how it ended, run with `args` by `python`.
fn script_output(python: &Path, script: &str, args: &[&str]) -> Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flight").join(script);
    Command::new(python).arg(path).args(args).output().unwrap()
}

/// Runs `script` of tests/flight with `args` by `python`; its stdout, or a panic showing
/// what it printed.
fn run_script(python: &Path, script: &str, args: &[&str]) -> Vec<u8> {
    let out = script_output(python, script, args);
    assert!(
        out.status.success(),
        "{script} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Certificates made with openssl in a directory of the test's.
struct Pki<'a>(&'a Path);

impl Pki<'_> {
    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl").args(args).current_dir(self.0).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A self-signed CA: `NAME.pem`, its key `NAME.key`.
    fn ca(&self, name: &str) -> PathBuf {
        let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
        let subject = format!("/CN=kql test {name}");
        self.openssl(&[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &cert, "-days", "2",
            "-subj", &subject,
        ]);
        self.0.join(cert)
    }

    /// A certificate `NAME.pem` (key `NAME.key`) for `subject_alt_name` (if any) and `usage`
    /// (`serverAuth`, `clientAuth`), signed by the CA `ca`.
    fn issue(&self, ca: &str, name: &str, subject_alt_name: Option<&str>, usage: &str) -> (PathBuf, PathBuf) {
        let (cert, key, csr, ext) =
            (format!("{name}.pem"), format!("{name}.key"), format!("{name}.csr"), format!("{name}.cnf"));
        let subject = format!("/CN=kql test {name}");
        self.openssl(&[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject,
        ]);
        let alt = subject_alt_name.map(|san| format!("subjectAltName={san}\n")).unwrap_or_default();
        std::fs::write(self.0.join(&ext), format!("{alt}extendedKeyUsage={usage}\n")).unwrap();
        let (ca_cert, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
        (self.0.join(cert), self.0.join(key))
    }

    /// A CA `ca` and a server certificate for 127.0.0.1 it signed: (ca, cert, key).
    fn server(&self) -> (PathBuf, PathBuf, PathBuf) {
        let ca = self.ca("ca");
        let (cert, key) = self.issue("ca", "server", Some("IP:127.0.0.1"), "serverAuth");
        (ca, cert, key)
    }
}

/// A running `kql serve`, the port it listens on and the lines it logged; killed when
/// dropped.
struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kql"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let port = first.split("127.0.0.1:").nth(1).and_then(|rest| rest.split(' ').next()).unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let logged = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("{line}");
                logged.lock().unwrap().push(line);
            }
        });
        Server { child, port: port.parse().expect(&first), log }
    }

    fn uri(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The lines logged after the first, once one satisfies `wanted` (waiting for the
    /// server's stderr to be read, at most 10 s).
    fn log_once(&self, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        for _ in 0..100 {
            let lines = self.log.lock().unwrap().clone();
            if lines.iter().any(|line| wanted(line)) {
                return lines;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("no such log line in {:?}", self.log.lock().unwrap());
    }

    /// A field of the server's /proc/PID/status, in kB.
    fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|line| line.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long the server pauses before answering a failed authentication (`auth.rs`).
const FAILURE_PAUSE_SECONDS: &str = "0.5";

#[test]
fn adbc_queries_over_tls_with_a_token() {
    let python = flight_venv();
    let dir = TempDir::new();
    let (ca, cert, key) = Pki(&dir.0).server();
    let token = dir.0.join("token");
    std::fs::write(&token, "  s3cret-token\n").unwrap();
    let server = Server::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--token-file",
        token.to_str().unwrap(),
    ]);
    let listener = listen("127.0.0.1", ListenOptions::default()).unwrap();
    let port = local_port(&listener).to_string();
    let uri = server.uri("grpc+tls");
    run_script(
        &python,
        "basic.py",
        &[&uri, "s3cret-token", &port, FAILURE_PAUSE_SECONDS, ca.to_str().unwrap()],
    );
    let log = server.log_once(|line| line.contains("no token"));
    assert!(
        log.iter()
            .any(|line| line.contains("authentication failed for 127.0.0.1:")
                && line.ends_with(": wrong token")),
        "{log:?}"
    );
    let plain = script_output(&python, "query.py", &[&server.uri("grpc"), "select 1"]);
    assert!(!plain.status.success(), "plain TCP to a TLS port must fail");
}

#[test]
fn mutual_tls_lets_in_only_clients_the_ca_signed() {
    let python = flight_venv();
    let dir = TempDir::new();
    let pki = Pki(&dir.0);
    let (ca, cert, key) = pki.server();
    let (client, client_key) = pki.issue("ca", "client", None, "clientAuth");
    pki.ca("other");
    let (other, other_key) = pki.issue("other", "stranger", None, "clientAuth");
    let server = Server::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--client-ca",
        ca.to_str().unwrap(),
    ]);
    let paths =
        [&ca, &client, &client_key, &other, &other_key].map(|path| path.to_str().unwrap().to_string());
    let mut args = vec![server.uri("grpc+tls")];
    args.extend(paths);
    run_script(&python, "mtls.py", &args.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn each_limit_is_refused_by_name_and_value_and_logged_as_json() {
    let python = flight_venv();
    let limits = serde_json::json!({"timeout": 2, "rows": 10000, "bytes": 200000, "memory": 2000000});
    let server = Server::start(&[
        "--log-format",
        "json",
        "--statement-timeout",
        "2",
        "--max-statements",
        "1",
        "--max-rows",
        "10000",
        "--max-bytes",
        "200000",
        "--max-memory",
        "2000000",
    ]);
    run_script(&python, "limits.py", &[&server.uri("grpc"), &limits.to_string()]);
    let log = server.log_once(|line| line.contains("--statement-timeout"));
    let entries: Vec<serde_json::Value> =
        log.iter().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"))).collect();
    for entry in &entries {
        let keys: Vec<&str> = entry.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["client", "ms", "outcome", "rows", "sql_hash"], "{entry}");
        assert!(entry["client"].as_str().unwrap().starts_with("127.0.0.1:"), "{entry}");
        assert!(entry["sql_hash"].as_str().unwrap().len() == 16 && entry["ms"].is_number(), "{entry}");
    }
    let outcomes: Vec<&str> = entries.iter().map(|entry| entry["outcome"].as_str().unwrap()).collect();
    for limit in ["--statement-timeout", "--max-statements", "--max-rows", "--max-bytes", "--max-memory"] {
        assert!(outcomes.iter().any(|outcome| outcome.contains(limit)), "{limit} in {outcomes:?}");
    }
    assert!(entries.iter().any(|entry| entry["outcome"] == "ok" && entry["rows"] == 10000), "{entries:?}");
}

#[test]
fn a_big_result_streams_without_the_server_holding_it() {
    let python = flight_venv();
    let server = Server::start(&["--max-rows", "100000000", "--max-bytes", "100000000000"]);
    run_script(&python, "query.py", &[&server.uri("grpc"), "select 1"]);
    let before = server.status_kb("VmRSS:");
    let n: u64 = 3000;
    let read: serde_json::Value =
        serde_json::from_slice(&run_script(&python, "stream.py", &[&server.uri("grpc"), &n.to_string()]))
            .unwrap();
    assert_eq!(read["rows"], n * n);
    assert_eq!(read["sum"], n * (n * (n - 1) / 2));
    let result_kb = n * n * 16 / 1024;
    let grown = server.status_kb("VmHWM:").saturating_sub(before);
    assert!(grown < result_kb / 4, "the server grew {grown} kB for a result of {result_kb} kB");
}

#[test]
fn a_non_loopback_address_needs_tls_and_a_token() {
    let error = kql_failure(&["serve", "--listen", "0.0.0.0:0"]);
    assert!(error.contains("without TLS and a token"), "{error}");
}

#[test]
fn bad_serve_setups_are_one_line_errors() {
    let dir = TempDir::new();
    let empty = dir.0.join("token");
    std::fs::write(&empty, " \n").unwrap();
    let error = kql_failure(&["serve", "--listen", "127.0.0.1:0", "--token-file", empty.to_str().unwrap()]);
    assert!(error.contains("is empty"), "{error}");
    let error = kql_failure(&["serve", "--listen", "127.0.0.1:0", "--client-ca", empty.to_str().unwrap()]);
    assert!(error.contains("--client-ca needs --tls-cert"), "{error}");
    let missing = dir.0.join("missing.pem");
    let missing = missing.to_str().unwrap();
    let error =
        kql_failure(&["serve", "--listen", "127.0.0.1:0", "--tls-cert", missing, "--tls-key", missing]);
    assert!(error.contains("cannot read") && error.contains("missing.pem"), "{error}");
}

#[test]
fn twenty_clients_finish_while_a_cross_join_runs_and_rows_match_the_cli() {
    let python = flight_venv();
    let server = Server::start(&["--statement-timeout", "15"]);
    let listener = listen("127.0.0.1", ListenOptions::default()).unwrap();
    let port = local_port(&listener);
    let _holder = Holder::start("kql-flight", &[&listener], false, None);
    let out = run_script(&python, "concurrent.py", &[&server.uri("grpc"), &port.to_string()]);
    let served: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let sql = format!(
        "select local_port, inode, pid, fd from tcp_listeners join proc_fds using (inode) \
         where local_port = {port} order by pid, fd"
    );
    let cli = serde_json::to_value(kql_rows(&[&sql])).unwrap();
    assert!(served.as_array().is_some_and(|rows| rows.len() >= 2), "test process and holder: {served}");
    assert_eq!(served, cli);
}

#[test]
fn a_vmcore_is_served_with_a_kernel_table_declared_per_request() {
    let (vmcore, _) =
        kql_rig::vmcores::of(kql_rig::kernels::Series::Bookworm61, "basic").expect("the 6.1 vmcore");
    let python = flight_venv();
    let core = vmcore.to_str().unwrap();
    let server = Server::start(&["--core", core]);
    let uri = server.uri("grpc");
    let query = |sql: &str| {
        serde_json::from_slice::<serde_json::Value>(&run_script(&python, "query.py", &[&uri, sql])).unwrap()
    };
    let sql = "select local_addr, local_port, inode from tcp_listeners order by local_port, inode";
    let served = query(sql);
    assert!(served.as_array().is_some_and(|rows| !rows.is_empty()), "{served}");
    assert_eq!(served, serde_json::to_value(kql_rows(&["--core", core, sql])).unwrap());
    let declared = query(
        "CREATE KERNEL TABLE fs_types 'File system types' FROM LIST super_blocks OF struct super_block \
         VIA s_list COLUMNS (fstype TEXT KEY = s_type->name 'its type'); \
         select count(*) as n from fs_types where fstype = 'proc'",
    );
    assert!(declared[0]["n"].as_i64().is_some_and(|n| n >= 1), "{declared}");
    let later = script_output(&python, "query.py", &[&uri, "select * from fs_types"]);
    assert!(!later.status.success(), "a request's kernel table ends with it");
}
