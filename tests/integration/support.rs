//! Test fixtures: listening sockets made with raw syscalls, processes with chosen names that
//! hold them, and running `kql` / `ss`.

use std::collections::BTreeMap;
use std::io;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, killpg};
use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, sockopt};
use nix::unistd::Pid;
use serde_json::Value;

/// Run the `kql` binary under test.
pub fn kql(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kql")).args(args).output().expect("kql runs")
}

/// How a kql run bounded by [`kql_within`] ended.
pub struct Bounded {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs kql with `args`, killing it after `timeout`, which fails the test (a hang); so does
/// a signal ending it.
pub fn kql_within(args: &[&str], timeout: Duration) -> Bounded {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kql"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kql runs");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        out.read_to_end(&mut bytes).map(|_| bytes)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > timeout {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("kql {args:?} ran longer than {timeout:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    err.read_to_string(&mut stderr).unwrap();
    assert!(status.code().is_some(), "kql {args:?} was killed by a signal ({status}): {stderr}");
    Bounded { success: status.success(), stdout: reader.join().unwrap().unwrap(), stderr }
}

/// Run kql expecting failure: no output, a non-zero exit and one `kql: ` line on stderr,
/// which is returned.
pub fn kql_failure(args: &[&str]) -> String {
    let output = kql(args);
    assert!(!output.status.success(), "kql {args:?} should fail");
    assert!(output.stdout.is_empty(), "no output on failure");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("kql: "), "{stderr}");
    stderr
}

/// Run `kql ARGS --format json` and return its rows; panics with stderr if it fails.
pub fn kql_rows(args: &[&str]) -> Vec<BTreeMap<String, Value>> {
    let mut args = args.to_vec();
    args.extend(["--format", "json"]);
    let output = kql(&args);
    assert!(output.status.success(), "kql {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("kql prints a JSON array")
}

/// The rig's guest workload binary.
pub fn rig_workload() -> PathBuf {
    kql_rig::binaries::workload().unwrap_or_else(|e| panic!("{e}"))
}

/// Run a command and return its stdout; panics if it fails.
pub fn command_stdout(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().expect("command runs");
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// How a test listener is set up.
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    pub backlog: i32,
    pub reuseport: bool,
    /// IPV6_V6ONLY for IPv6 sockets.
    pub v6only: bool,
    /// Port to bind, 0 for an ephemeral one.
    pub port: u16,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions { backlog: 128, reuseport: false, v6only: false, port: 0 }
    }
}

/// A listening TCP socket bound to `ip`.
pub fn listen(ip: &str, options: ListenOptions) -> io::Result<OwnedFd> {
    let ip: IpAddr = ip.parse().expect("test address parses");
    let family = if ip.is_ipv6() { AddressFamily::Inet6 } else { AddressFamily::Inet };
    let socket = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    socket::setsockopt(&socket, sockopt::ReuseAddr, &true)?;
    if options.reuseport {
        socket::setsockopt(&socket, sockopt::ReusePort, &true)?;
    }
    if ip.is_ipv6() {
        socket::setsockopt(&socket, sockopt::Ipv6V6Only, &options.v6only)?;
    }
    socket::bind(socket.as_raw_fd(), &SockaddrStorage::from(SocketAddr::new(ip, options.port)))?;
    socket::listen(&socket, Backlog::new(options.backlog)?)?;
    Ok(socket)
}

/// The local port of a bound socket.
pub fn local_port(socket: &OwnedFd) -> u16 {
    let name: SockaddrStorage = socket::getsockname(socket.as_raw_fd()).expect("getsockname");
    name.as_sockaddr_in()
        .map(|v4| v4.port())
        .or(name.as_sockaddr_in6().map(|v6| v6.port()))
        .expect("an inet socket")
}

/// Open `count` connections to `port` on `ip` that the listener never accepts.
pub fn queue_connections(ip: &str, port: u16, count: usize) -> Vec<TcpStream> {
    let addr = SocketAddr::new(ip.parse().unwrap(), port);
    (0..count).map(|_| TcpStream::connect(addr).expect("connect to test listener")).collect()
}

/// A process of ours, killed with its process group when dropped.
pub struct Holder {
    child: Child,
    _dir: TempDir,
}

impl Holder {
    /// Start a process whose name (comm) is `name` that holds `sockets` at their current fd
    /// numbers. With `forks`, it forks a child (`sleep`) that holds them too. With `netns`,
    /// the process lives in the network namespace at that path.
    pub fn start(name: &str, sockets: &[&OwnedFd], forks: bool, netns: Option<&str>) -> Holder {
        let dir = TempDir::new();
        let program = dir.0.join(name);
        std::os::unix::fs::symlink("/bin/sh", &program).expect("symlink to sh");
        // `read` blocks on the stdin pipe without forking; `sleep &` forks the child.
        let script = if forks { "sleep 1000 & read line" } else { "read line" };
        let raw: Vec<RawFd> = sockets.iter().map(|s| s.as_raw_fd()).collect();
        let ns_fd: Option<OwnedFd> = netns.map(|path| std::fs::File::open(path).expect("open netns").into());
        let ns_raw = ns_fd.as_ref().map(|fd| fd.as_raw_fd());
        let mut command = Command::new(&program);
        command.arg("-c").arg(script).stdin(Stdio::piped());
        command.process_group(0);
        // SAFETY: the closure only makes async-signal-safe system calls (fcntl, setns).
        unsafe {
            command.pre_exec(move || {
                for &fd in &raw {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if let Some(ns) = ns_raw
                    && libc::setns(ns, libc::CLONE_NEWNET) < 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn holder");
        let holder = Holder { child, _dir: dir };
        holder.wait_until(|| comm(holder.pid()).as_deref() == Some(&name[..name.len().min(15)]));
        // Settled: the shell blocks reading its stdin pipe, its fds no longer change.
        holder.wait_until(|| {
            std::fs::read_to_string(format!("/proc/{}/syscall", holder.pid()))
                .is_ok_and(|s| s.starts_with("0 "))
        });
        if forks {
            holder.wait_until(|| holder.children().iter().any(|&c| comm(c).as_deref() == Some("sleep")));
        }
        holder
    }

    /// The holder's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Pids of the holder's children.
    pub fn children(&self) -> Vec<i32> {
        let path = format!("/proc/{0}/task/{0}/children", self.pid());
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    fn wait_until(&self, ready: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready() {
            assert!(Instant::now() < deadline, "holder {} never became ready", self.pid());
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // The process group we created; failure only means it is gone.
        let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The comm of `pid`, if it exists.
pub fn comm(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|s| s.trim_end().to_string())
}

/// A private directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        TempDir(nix::unistd::mkdtemp(&std::env::temp_dir().join("kqlt-XXXXXX")).expect("mkdtemp"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct NetNs(pub String);

impl NetNs {
    pub fn add(tag: &str) -> NetNs {
        let name = format!("kqlt-{tag}-{}", std::process::id());
        command_stdout("ip", &["netns", "add", &name]);
        let ns = NetNs(name);
        command_stdout("ip", &["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A listener created inside the network namespace at `ns_path` (from a helper thread).
pub fn listen_in(ns_path: &str, ip: &str, options: ListenOptions) -> OwnedFd {
    let ns_path = ns_path.to_string();
    let ip = ip.to_string();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&ns_path).expect("open netns");
        // On this helper thread only.
        setns(ns, CloneFlags::CLONE_NEWNET).expect("setns");
        listen(&ip, options).expect("listen in netns")
    })
    .join()
    .expect("netns thread")
}

/// Rows of `ss -nlpt` (run in `netns` if given) whose local endpoint is in `endpoints`, as
/// [State, Recv-Q, Send-Q, Local, Peer, Process].
pub fn ss_rows(endpoints: &[String], netns: Option<&str>) -> Vec<Vec<String>> {
    let output = match netns {
        Some(ns) => command_stdout("ip", &["netns", "exec", ns, "ss", "-Hnlpt"]),
        None => command_stdout("ss", &["-Hnlpt"]),
    };
    let mut rows: Vec<Vec<String>> =
        output.lines().map(split_ss_line).filter(|row| endpoints.contains(&row[3])).collect();
    rows.sort();
    rows
}

fn split_ss_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut rest = line.trim_start();
    for _ in 0..5 {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        fields.push(rest[..end].to_string());
        rest = rest[end..].trim_start();
    }
    fields.push(rest.trim_end().to_string());
    fields
}

/// The local endpoint of a listener as `ss -n` prints it: `127.0.0.1:P`, `[::1]:P`, `*:P` for a
/// dual-stack `::`, `[::]:P` for a v6-only one.
pub fn endpoint(ip: &str, socket: &OwnedFd) -> String {
    let port = local_port(socket);
    match ip {
        "::" if !v6only(socket) => format!("*:{port}"),
        ip if ip.contains(':') => format!("[{ip}]:{port}"),
        ip => format!("{ip}:{port}"),
    }
}

fn v6only(socket: &OwnedFd) -> bool {
    socket::getsockopt(socket, sockopt::Ipv6V6Only).unwrap_or(false)
}

/// The rows of a kql ss-style result whose local endpoint is in `endpoints`.
pub fn rows_at(rows: Vec<BTreeMap<String, Value>>, endpoints: &[String]) -> Vec<BTreeMap<String, Value>> {
    rows.into_iter()
        .filter(|row| row["Local Address:Port"].as_str().is_some_and(|e| endpoints.iter().any(|x| x == e)))
        .collect()
}

/// The six ss columns of a kql `ss-nlpt` row.
pub fn ss_columns(row: &BTreeMap<String, Value>) -> Vec<String> {
    ["State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process"]
        .iter()
        .map(|column| match &row[*column] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// Inode of a file, as stat(2) reports it.
pub fn inode_of(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("stat").ino()
}
