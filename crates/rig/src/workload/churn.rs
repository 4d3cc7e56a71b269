//! The `churn` scenario: kernel objects made and destroyed all the time, for walks of a
//! running kernel to be checked against (see `tests/integration/churn.rs`).
//!
//! Workers (each keeps churning until the guest is torn down):
//!
//! - `kqlw-churn-net` in the initial network namespace and `kqlw-churn-ns` in a second one
//!   (made like `basic`'s `kqlw-netns`, with `lo` up): every [`TICK`] each opens
//!   [`LISTENERS_PER_TICK`] TCP listeners on the next ports of its listener range, closing
//!   the oldest once [`OPEN_LISTENERS`] are open; and every [`OTHERS_EVERY`] ticks connects
//!   [`PAIRS_PER_TICK`] loopback TCP pairs to its pair listener, accepts them and closes the oldest pair past
//!   [`OPEN_PAIRS`] (the client with `SO_LINGER` 0: a reset, no `TIME_WAIT`); binds and
//!   closes [`DATAGRAMS_PER_TICK`] UDP sockets on its UDP range; makes and closes
//!   [`DATAGRAMS_PER_TICK`] unix socket pairs;
//! - `kqlw-churn-proc`: every [`KID_EVERY`] ticks starts [`KIDS_PER_TICK`] short-lived
//!   processes (`/bin/sleep`, gone after [`KID_LIFE`]) and [`KIDS_PER_TICK`] threads named
//!   `kqlw-churn-thr` that end after [`KID_LIFE`], and reaps them.
//!
//! Each worker appends what it made to its own log, `/tmp/kqlw-churn/<worker>.log` in the
//! guest, one line per object, the lines of a tick written together at its end:
//! `<ms>\t<kind>\t<fields…>` where `<ms>` is `CLOCK_MONOTONIC` in milliseconds:
//!
//! | kind | fields |
//! |------|--------|
//! | `ranges` | `netns`, listener ports `lo`, `hi` (inclusive), pair port, UDP `lo`, `hi`, ephemeral `lo`, `hi` (first line of a net worker) |
//! | `listen` | `netns`, `port`, `inode` |
//! | `pair` | `netns`, client `port`, client `inode`, server `inode` |
//! | `udp` | `netns`, `port`, `inode` |
//! | `unix` | `netns`, `inode` of each end |
//! | `proc` | `pid` |
//! | `thread` | `pid`, `tid` |
//! | `error` | what failed (the worker goes on) |
//!
//! The pair listener itself is a `listen` line too. Sockets come
//! from std, processes from `std::process::Command`, the rest from nix: no raw libc calls.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kql_rig::{Result, rig_error};
use nix::sys::socket::{setsockopt, sockopt};
use nix::time::{ClockId, clock_gettime};
use serde_json::{Value, json};

use crate::process;
use crate::scenarios::{Created, Proc};
use crate::sys;

/// Directory of the workers' logs in the guest.
pub const LOG_DIR: &str = "/tmp/kqlw-churn";
/// What a short-lived kid runs (busybox: small and static, quick to start under TCG).
const KID: &str = "/bin/sleep";
/// One round of churn.
const TICK: Duration = Duration::from_millis(10);
/// The least a worker sleeps between rounds.
const REST: Duration = Duration::from_millis(3);
/// TCP listeners each net worker opens (and closes) per tick: 1,200/s each, 2,400/s in all
/// where the guest keeps up (a 6.1 TCG guest manages about half).
const LISTENERS_PER_TICK: usize = 12;
/// Listeners a net worker keeps open at once.
const OPEN_LISTENERS: usize = 64;
/// Loopback TCP connections each net worker makes (and closes) per tick.
const PAIRS_PER_TICK: usize = 1;
/// Connections it keeps open at once.
const OPEN_PAIRS: usize = 16;
/// UDP sockets, and unix socket pairs, each net worker makes (and closes) per tick.
const DATAGRAMS_PER_TICK: usize = 1;
/// The connections, UDP and unix sockets come every this many ticks.
const OTHERS_EVERY: u64 = 4;
/// Processes, and threads, `kqlw-churn-proc` starts every [`KID_EVERY`] ticks: 50/s each,
/// while fewer than [`LIVE_KIDS`] of each are alive (a kid exec'd under TCG takes a while).
const KIDS_PER_TICK: usize = 1;
const KID_EVERY: u64 = 2;
const LIVE_KIDS: usize = 4;
/// How long a kid process or thread lives.
const KID_LIFE: Duration = Duration::from_millis(30);
/// Most errors a worker logs word for word.
const LOGGED_ERRORS: usize = 20;

/// The ports a net worker uses.
#[derive(Debug, Clone, Copy)]
struct Ports {
    /// Listener ports `listen.0..=listen.1`, used in turn.
    listen: (u16, u16),
    /// The listener the worker's TCP pairs connect to.
    pair: u16,
    /// UDP ports, used in turn.
    udp: (u16, u16),
}

/// `kqlw-churn-net`'s ports.
const INITIAL_PORTS: Ports = Ports { listen: (7500, 7999), pair: 7490, udp: (9000, 9499) };
/// `kqlw-churn-ns`'s ports.
const SECOND_PORTS: Ports = Ports { listen: (8500, 8999), pair: 8490, udp: (9500, 9999) };

/// Forks the three workers; each reports once its log is open and its first objects exist.
pub fn run(created: &mut Created) -> Result<()> {
    fs::create_dir_all(LOG_DIR).map_err(|e| rig_error!("{LOG_DIR}: {e}"))?;
    sys::ensure_nofile(4 * (OPEN_LISTENERS + 2 * OPEN_PAIRS) as u64 + 64)?;
    let mut workers = Vec::new();
    workers.push(("kqlw-churn-net", net_worker("kqlw-churn-net", INITIAL_PORTS, false)?));
    workers.push(("kqlw-churn-ns", net_worker("kqlw-churn-ns", SECOND_PORTS, true)?));
    let proc_worker =
        process::spawn_then("kqlw-churn-proc", || Ok(json!({})), || churn_forever(ProcChurn::new))?;
    workers.push(("kqlw-churn-proc", proc_worker));
    for (name, worker) in workers {
        created.processes.push(Proc { name: name.into(), pid: worker.pid, ppid: sys::getpid() });
    }
    created.churn = Some(json!({ "log_dir": LOG_DIR }));
    Ok(())
}

/// Forks a net worker named `name` on `ports`, in a new network namespace if `new_netns`.
fn net_worker(name: &'static str, ports: Ports, new_netns: bool) -> Result<process::Worker> {
    let body = move || -> Result<Value> {
        if new_netns {
            sys::unshare_net()?;
            sys::loopback_up()?;
        }
        Ok(json!({}))
    };
    process::spawn_then(name, body, move || churn_forever(|log| NetChurn::new(log, ports)))
}

/// What a worker does each tick.
trait Churn {
    fn tick(&mut self, tick: u64) -> Result<()>;
}

/// Opens the calling worker's log, builds its churn with `make`, then runs a tick every
/// [`TICK`] until killed; after a tick that overran, it still rests [`REST`], so a guest too
/// slow for the rates asked (TCG) gets lower rates, not a CPU with no time for anyone else.
fn churn_forever<C: Churn>(make: impl FnOnce(Log) -> Result<C>) -> Result<()> {
    let log = Log::open()?;
    let mut churn = make(log.clone())?;
    let mut errors = 0;
    for tick in 0.. {
        let started = Instant::now();
        if let Err(error) = churn.tick(tick) {
            errors += 1;
            if errors <= LOGGED_ERRORS {
                log.line(&format!("error\t{}", error.0.replace(['\t', '\n'], " ")));
            }
        }
        log.flush();
        let left = (started + TICK).saturating_duration_since(Instant::now());
        std::thread::sleep(left.max(REST));
    }
    Ok(())
}

/// A worker's log file (see the module documentation): lines gather in memory and go to
/// the file in one `write(2)` per tick (each syscall is dear under TCG).
#[derive(Clone)]
struct Log(Arc<LogFile>);

struct LogFile {
    file: File,
    pending: Mutex<String>,
}

impl Log {
    /// `LOG_DIR/<comm>.log`, created.
    fn open() -> Result<Log> {
        let comm = fs::read_to_string("/proc/self/comm").map_err(|e| rig_error!("/proc/self/comm: {e}"))?;
        let path = format!("{LOG_DIR}/{}.log", comm.trim());
        let file = File::create(&path).map_err(|e| rig_error!("{path}: {e}"))?;
        Ok(Log(Arc::new(LogFile { file, pending: Mutex::new(String::new()) })))
    }

    /// Adds `<ms>\t<text>\n`.
    fn line(&self, text: &str) {
        let now = clock_gettime(ClockId::CLOCK_MONOTONIC)
            .map_or(0, |t| t.tv_sec() * 1000 + t.tv_nsec() / 1_000_000);
        let mut pending = self.0.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.push_str(&format!("{now}\t{text}\n"));
    }

    /// Writes the lines added since the last flush.
    fn flush(&self) {
        let lines = std::mem::take(&mut *self.0.pending.lock().unwrap_or_else(PoisonError::into_inner));
        // A full log is not worth stopping the churn for; the test counts what is there.
        let _ = (&self.0.file).write_all(lines.as_bytes());
    }
}

/// Inode of a socket (as `socket:[N]` and the tables show it).
fn inode(socket: impl AsFd) -> Result<u64> {
    let stat = nix::sys::stat::fstat(socket).map_err(|e| rig_error!("fstat: {e}"))?;
    Ok(stat.st_ino)
}

/// The inode of this process's network namespace.
fn own_netns() -> Result<u64> {
    Ok(fs::metadata("/proc/self/ns/net").map_err(|e| rig_error!("/proc/self/ns/net: {e}"))?.ino())
}

/// The kernel's ephemeral port range in this namespace.
fn ephemeral_ports() -> Result<(u16, u16)> {
    let path = "/proc/sys/net/ipv4/ip_local_port_range";
    let text = fs::read_to_string(path).map_err(|e| rig_error!("{path}: {e}"))?;
    let mut parts = text.split_whitespace().map(str::parse::<u16>);
    match (parts.next(), parts.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) => Ok((lo, hi)),
        _ => Err(rig_error!("{path}: {text:?}")),
    }
}

/// Port `turn` of `lo..=hi`, round and round.
fn port_in(range: (u16, u16), turn: u64) -> u16 {
    range.0 + (turn % u64::from(range.1 - range.0 + 1)) as u16
}

/// A net worker's sockets.
struct NetChurn {
    log: Log,
    netns: u64,
    ports: Ports,
    pair_listener: TcpListener,
    listeners: VecDeque<TcpListener>,
    pairs: VecDeque<(TcpStream, TcpStream)>,
    /// Listener and UDP ports used so far.
    turns: (u64, u64),
}

impl NetChurn {
    fn new(log: Log, ports: Ports) -> Result<NetChurn> {
        let netns = own_netns()?;
        let ephemeral = ephemeral_ports()?;
        log.line(&format!(
            "ranges\t{netns}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            ports.listen.0, ports.listen.1, ports.pair, ports.udp.0, ports.udp.1, ephemeral.0, ephemeral.1
        ));
        let pair_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, ports.pair))
            .map_err(|e| rig_error!("pair listener on port {}: {e}", ports.pair))?;
        log.line(&format!("listen\t{netns}\t{}\t{}", ports.pair, inode(&pair_listener)?));
        let (listeners, pairs) = (VecDeque::new(), VecDeque::new());
        Ok(NetChurn { log, netns, ports, pair_listener, listeners, pairs, turns: (0, 0) })
    }

    fn listener(&mut self) -> Result<()> {
        let port = port_in(self.ports.listen, self.turns.0);
        self.turns.0 += 1;
        if self.listeners.len() >= OPEN_LISTENERS {
            self.listeners.pop_front();
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .map_err(|e| rig_error!("listener on port {port}: {e}"))?;
        self.log.line(&format!("listen\t{}\t{port}\t{}", self.netns, inode(&listener)?));
        self.listeners.push_back(listener);
        Ok(())
    }

    fn pair(&mut self) -> Result<()> {
        if self.pairs.len() >= OPEN_PAIRS
            && let Some((client, _server)) = self.pairs.pop_front()
        {
            setsockopt(&client, sockopt::Linger, &nix::libc::linger { l_onoff: 1, l_linger: 0 })
                .map_err(|e| rig_error!("SO_LINGER: {e}"))?;
        }
        let client = TcpStream::connect((Ipv4Addr::LOCALHOST, self.ports.pair))
            .map_err(|e| rig_error!("connect to port {}: {e}", self.ports.pair))?;
        let (server, _) = self.pair_listener.accept().map_err(|e| rig_error!("accept: {e}"))?;
        let port = client.local_addr().map_err(|e| rig_error!("getsockname: {e}"))?.port();
        self.log.line(&format!("pair\t{}\t{port}\t{}\t{}", self.netns, inode(&client)?, inode(&server)?));
        self.pairs.push_back((client, server));
        Ok(())
    }

    fn datagrams(&mut self) -> Result<()> {
        let port = port_in(self.ports.udp, self.turns.1);
        self.turns.1 += 1;
        let udp =
            UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).map_err(|e| rig_error!("udp port {port}: {e}"))?;
        self.log.line(&format!("udp\t{}\t{port}\t{}", self.netns, inode(&udp)?));
        let (a, b) = UnixStream::pair().map_err(|e| rig_error!("socketpair: {e}"))?;
        self.log.line(&format!("unix\t{}\t{}\t{}", self.netns, inode(&a)?, inode(&b)?));
        Ok(())
    }
}

impl Churn for NetChurn {
    fn tick(&mut self, tick: u64) -> Result<()> {
        (0..LISTENERS_PER_TICK).try_for_each(|_| self.listener())?;
        if tick.is_multiple_of(OTHERS_EVERY) {
            (0..PAIRS_PER_TICK).try_for_each(|_| self.pair())?;
            (0..DATAGRAMS_PER_TICK).try_for_each(|_| self.datagrams())?;
        }
        Ok(())
    }
}

/// `kqlw-churn-proc`'s kids and threads.
struct ProcChurn {
    log: Log,
    kids: VecDeque<Child>,
    threads: VecDeque<JoinHandle<()>>,
}

impl ProcChurn {
    fn new(log: Log) -> Result<ProcChurn> {
        Ok(ProcChurn { log, kids: VecDeque::new(), threads: VecDeque::new() })
    }

    fn kid(&mut self) -> Result<()> {
        let kid = Command::new(KID)
            .arg(format!("{}", KID_LIFE.as_secs_f64()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| rig_error!("spawn {KID}: {e}"))?;
        self.log.line(&format!("proc\t{}", kid.id()));
        self.kids.push_back(kid);
        Ok(())
    }

    fn thread(&mut self) -> Result<()> {
        let log = self.log.clone();
        let pid = sys::getpid();
        let thread = std::thread::Builder::new()
            .name("kqlw-churn-thr".into())
            .spawn(move || {
                log.line(&format!("thread\t{pid}\t{}", nix::unistd::gettid()));
                std::thread::sleep(KID_LIFE);
            })
            .map_err(|e| rig_error!("spawn a thread: {e}"))?;
        self.threads.push_back(thread);
        Ok(())
    }

    /// Reaps the kids and threads that are done.
    fn reap(&mut self) -> Result<()> {
        while let Some(kid) = self.kids.front_mut() {
            match kid.try_wait().map_err(|e| rig_error!("wait for kid {}: {e}", kid.id()))? {
                Some(_) => drop(self.kids.pop_front()),
                None => break,
            }
        }
        while self.threads.front().is_some_and(JoinHandle::is_finished) {
            if let Some(thread) = self.threads.pop_front() {
                thread.join().map_err(|_| rig_error!("a churn thread panicked"))?;
            }
        }
        Ok(())
    }
}

impl Churn for ProcChurn {
    fn tick(&mut self, tick: u64) -> Result<()> {
        self.reap()?;
        if tick.is_multiple_of(KID_EVERY) {
            let kids = KIDS_PER_TICK.min(LIVE_KIDS.saturating_sub(self.kids.len()));
            (0..kids).try_for_each(|_| self.kid())?;
            let threads = KIDS_PER_TICK.min(LIVE_KIDS.saturating_sub(self.threads.len()));
            (0..threads).try_for_each(|_| self.thread())?;
        }
        Ok(())
    }
}
