//! `kql serve` queried by a real Flight SQL client: ADBC's Python driver (from PyPI, in a
//! venv cached under ~/.cache/kql) over TLS with a certificate the test makes, and a
//! bearer token. The Python script asserts what each call returns; here the server runs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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

/// A CA and a certificate for 127.0.0.1 signed by it, in `dir`: (ca, cert, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=kql test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

/// A running `kql serve` and the port it listens on; killed when dropped.
struct Server(Child, u16);

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
        std::thread::spawn(move || lines.for_each(|line| eprintln!("{}", line.unwrap_or_default())));
        Server(child, port.parse().expect(&first))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn adbc_queries_over_tls_with_a_token() {
    let python = flight_venv();
    let dir = TempDir::new();
    let (ca, cert, key) = certificates(&dir.0);
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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/flight/basic.py");
    let uri = format!("grpc+tls://127.0.0.1:{}", server.1);
    let out = Command::new(&python)
        .args([script, &uri, "s3cret-token", &port, ca.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = format!("grpc://127.0.0.1:{}", server.1);
    let out = Command::new(&python).args([script, &plain, "s3cret-token", &port]).output().unwrap();
    assert!(!out.status.success(), "plain TCP to a TLS port must fail");
}

#[test]
fn a_non_loopback_address_needs_tls_and_a_token() {
    let error = kql_failure(&["serve", "--listen", "0.0.0.0:0"]);
    assert!(error.contains("without TLS and a token"), "{error}");
}

#[test]
fn twenty_clients_finish_while_a_cross_join_runs_and_rows_match_the_cli() {
    let python = flight_venv();
    let server = Server::start(&["--statement-timeout", "15"]);
    let listener = listen("127.0.0.1", ListenOptions::default()).unwrap();
    let port = local_port(&listener);
    let _holder = Holder::start("kql-flight", &[&listener], false, None);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/flight/concurrent.py");
    let uri = format!("grpc://127.0.0.1:{}", server.1);
    let out = Command::new(&python).args([script, &uri, &port.to_string()]).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let served: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
    let uri = format!("grpc://127.0.0.1:{}", server.1);
    let query = |sql: &str| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/flight/query.py");
        let out = Command::new(&python).args([script, &uri, sql]).output().unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
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
    let later = Command::new(&python)
        .args([concat!(env!("CARGO_MANIFEST_DIR"), "/tests/flight/query.py"), &uri, "select * from fs_types"])
        .output()
        .unwrap();
    assert!(!later.status.success(), "a request's kernel table ends with it");
}
