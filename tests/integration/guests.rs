//! kql on real kernels: Debian 6.1, 6.12 and 5.10 guests under QEMU (the rig), each read
//! every way kql can read a kernel — from the host live over QMP and from a vmcore of the same
//! guest, and from inside the guest on its own `/proc/kcore` — with DWARF and with the BTF and
//! kallsyms the kernel carries, and compared with what the guest reported about itself (its
//! /proc/net/tcp{,6} per namespace, /proc/PID/fd, /proc/PID/stat, /proc/PID/task, and for
//! the declared tables what [`crate::kernel_tables`] lists).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use kql_rig::guest::{BootOptions, Guest, GuestCommand, tools_dir};
use kql_rig::kernels::{self, Series};
use kql_rig::truth::{Family, TcpEntry, Truth};
use serde_json::{Value, json};

use crate::kernel_tables::assert_kernel_tables;
use crate::socket_tables::assert_socket_tables;
use crate::support::{kql, kql_failure, rig_workload};

/// Guest RAM for runs inside the guest: kql indexing DWARF peaks at about 300 MB resident,
/// and the debug vmlinux it reads through the page cache wants room too (512 MB works at
/// half the speed; 384 MB thrashes for minutes).
const INSIDE_MEMORY_MB: u32 = 768;
/// How long one kql run inside the guest may take (TCG, debug build: 5–15 s).
const INSIDE_TIMEOUT: Duration = Duration::from_secs(300);

type Row = BTreeMap<String, Value>;

/// One guest at a time: a TCG guest keeps a host core busy, and kql runs inside it too, so
/// guests side by side on this 2-core machine starve each other and every other test (the
/// REPL's Ctrl-C test among them).
static ONE_GUEST: Mutex<()> = Mutex::new(());

/// A booted guest with kql and its kernel's debug vmlinux on its `/tools` share, its ground
/// truth, and a vmcore dumped from it.
pub(crate) struct Booted {
    pub(crate) guest: Guest,
    pub(crate) truth: Truth,
    vmcore: PathBuf,
    tools: PathBuf,
    _turn: MutexGuard<'static, ()>,
}

impl Booted {
    pub(crate) fn new(series: Series, scenario: &str) -> Booted {
        let turn = ONE_GUEST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let kernel = kernels::fetch(series).unwrap_or_else(|e| panic!("fetch {}: {e}", series.name()));
        let workload = rig_workload();
        let name = format!("kql-test-{}-{scenario}-{}", series.name(), std::process::id());
        let tools = std::env::temp_dir().join(format!("{name}-tools"));
        let kql = Path::new(env!("CARGO_BIN_EXE_kql"));
        tools_dir(&tools, &[(kql, "kql"), (&kernel.vmlinux, "vmlinux")]).expect("the tools directory");
        let libraries = [kql];
        let options = BootOptions {
            tools: Some(&tools),
            libraries_for: &libraries,
            memory_mb: Some(INSIDE_MEMORY_MB),
            ..BootOptions::new(&kernel, scenario, &workload)
        };
        let guest = Guest::boot(&options).unwrap_or_else(|e| panic!("boot {}: {e}", series.name()));
        let truth = guest.truth().expect("the guest's ground truth");
        let vmcore = std::env::temp_dir().join(format!("{name}.vmcore"));
        guest.dump(&vmcore).expect("dump-guest-memory");
        let booted = Booted { guest, truth, vmcore, tools, _turn: turn };
        booted.shell("mkdir -p /usr/local/bin && ln -s /tools/kql /usr/local/bin/kql");
        booted
    }

    pub(crate) fn vmlinux(&self) -> String {
        self.guest.kernel().vmlinux.display().to_string()
    }

    pub(crate) fn qmp(&self) -> String {
        self.guest.qmp_socket().display().to_string()
    }

    fn core(&self) -> String {
        self.vmcore.display().to_string()
    }

    /// kql on the host reading this guest with `flags`.
    fn host(&self, flags: &[&str]) -> Kql<'_> {
        Kql::Host(flags.iter().map(|f| f.to_string()).collect())
    }

    /// kql inside the guest, as root, with `flags`.
    fn inside(&self, flags: &[&str]) -> Kql<'_> {
        Kql::Inside { guest: &self.guest, flags: flags.iter().map(|f| f.to_string()).collect(), uid: None }
    }

    /// kql inside the guest as `nobody`.
    fn inside_as_nobody(&self) -> Kql<'_> {
        Kql::Inside { guest: &self.guest, flags: Vec::new(), uid: Some(65534) }
    }

    /// Runs a shell script inside the guest as root; it must succeed.
    pub(crate) fn shell(&self, script: &str) -> String {
        let output = self.guest.shell(script).expect("the guest agent runs the script");
        assert!(output.success(), "{script}: {output:?}");
        output.stdout
    }

    /// Makes libdrgn's standard search find the debug vmlinux inside the guest.
    fn install_debug_vmlinux(&self) {
        self.shell(
            "mkdir -p /usr/lib/debug/boot && ln -sf /tools/vmlinux /usr/lib/debug/boot/vmlinux-$(uname -r)",
        );
    }

    fn remove_debug_vmlinux(&self) {
        self.shell("rm -f /usr/lib/debug/boot/vmlinux-$(uname -r)");
    }

    /// Whether the kernel exports its kallsyms tables in VMCOREINFO (Linux 6.0 and later), as
    /// the vmcore itself says.
    fn exports_kallsyms(&self) -> bool {
        let info = kql_rig::elf::vmcoreinfo(&self.vmcore).expect("the vmcore's VMCOREINFO");
        info.contains_key("SYMBOL(kallsyms_names)")
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.vmcore);
        let _ = std::fs::remove_dir_all(&self.tools);
    }
}

/// How a test runs kql against a guest's kernel.
enum Kql<'g> {
    /// On the host, with these target flags.
    Host(Vec<String>),
    /// Inside the guest, as `uid` (root if `None`), with these flags.
    Inside { guest: &'g Guest, flags: Vec<String>, uid: Option<u32> },
}

/// What one kql run did.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Kql<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kql::Host(flags) => write!(f, "host kql {}", flags.join(" ")),
            Kql::Inside { flags, uid, .. } => {
                write!(f, "kql {} inside the guest as uid {}", flags.join(" "), uid.unwrap_or(0))
            }
        }
    }
}

impl Kql<'_> {
    /// Runs kql with `args`, then the target flags (after, so `tables` stays a subcommand).
    fn run(&self, args: &[&str]) -> Run {
        match self {
            Kql::Host(flags) => {
                let all: Vec<&str> = args.iter().copied().chain(flags.iter().map(String::as_str)).collect();
                let output = kql(&all);
                Run {
                    success: output.status.success(),
                    stdout: String::from_utf8_lossy(&output.stdout).into(),
                    stderr: String::from_utf8_lossy(&output.stderr).into(),
                }
            }
            Kql::Inside { guest, flags, uid } => {
                let argv =
                    ["kql"].into_iter().chain(args.iter().copied()).chain(flags.iter().map(String::as_str));
                let mut command = GuestCommand::new(argv).timeout(INSIDE_TIMEOUT);
                if let Some(uid) = uid {
                    command = command.uid(*uid);
                }
                let output = guest.exec(&command).expect("the guest agent runs kql");
                Run { success: output.success(), stdout: output.stdout, stderr: output.stderr }
            }
        }
    }

    /// The rows of each statement, run in one kql process; panics with stderr if it fails.
    fn batch(&self, statements: &[&str]) -> (Vec<Vec<Row>>, String) {
        self.try_batch(statements).unwrap_or_else(|stderr| panic!("{self:?} failed: {stderr}"))
    }

    /// [`Kql::batch`], or kql's stderr if it fails.
    fn try_batch(&self, statements: &[&str]) -> Result<(Vec<Vec<Row>>, String), String> {
        let sql = statements.join(";\n");
        let run = self.run(&["--format", "json", &sql]);
        if !run.success {
            return Err(run.stderr);
        }
        let results: Vec<Vec<Row>> = serde_json::Deserializer::from_str(&run.stdout)
            .into_iter::<Vec<Row>>()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{self:?} printed no JSON arrays ({e}): {}", run.stdout));
        assert_eq!(results.len(), statements.len(), "one result per statement from {self:?}");
        Ok((results, run.stderr))
    }

    /// A run that must fail with one `kql: ` line, which is returned.
    fn failure(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(!run.success && run.stdout.is_empty(), "{self:?} {args:?} should fail: {}", run.stdout);
        assert_eq!(run.stderr.lines().count(), 1, "one line from {self:?}: {:?}", run.stderr);
        assert!(run.stderr.starts_with("kql: "), "{}", run.stderr);
        run.stderr
    }

    /// `kql tables` as (table, source, types).
    fn tables(&self) -> Vec<(String, String, String)> {
        let run = self.run(&["tables", "--format", "json"]);
        assert!(run.success, "{self:?} tables: {}", run.stderr);
        let rows: Vec<Row> = serde_json::from_str(&run.stdout).expect("kql tables prints JSON");
        let text = |row: &Row, key: &str| row[key].as_str().unwrap_or_default().to_string();
        rows.iter().map(|r| (text(r, "table"), text(r, "source"), text(r, "types"))).collect()
    }

    /// Every table is a kernel walk with `types` (`btf` or `dwarf`), or DWARF where BTF
    /// cannot fill it.
    fn assert_walks_with(&self, types: &str) {
        for (table, source, used) in self.tables() {
            assert_eq!(source, "drgn", "{table} from {self:?}");
            // A table whose walk BTF cannot type (5.10's BTF lacks per-cpu variables) falls back.
            let fell_back =
                types == "btf" && used.starts_with("dwarf: ") && used.contains("BTF cannot fill it");
            assert!(
                used.starts_with(&format!("{types}: ")) || fell_back,
                "{table} from {self:?} uses {used}"
            );
        }
    }
}

const LISTENERS: &str =
    "select netns, family, local_port, inode, recv_q, send_q, uid, v6only, reuseport from tcp_listeners";
/// kql's own process (inside the guest, `kql`) came after the guest's truth was written.
const SOCKET_FDS: &str = "select pid, comm, fd, inode from proc_fds where kind = 'socket' and comm <> 'kql'";
const PROCESSES: &str = "select pid, ppid, comm, netns from processes";
const UNCOUNTED_THREADS: &str = "select p.pid, p.threads, count(t.tid) as listed from processes p \
     left join threads t using (pid) where p.comm <> 'kql' group by p.pid, p.threads having count(t.tid) <> p.threads";
const WORKLOAD_THREADS: &str =
    "select t.pid, t.tid, t.comm from threads t join processes p using (pid) where p.comm like 'kqlw%'";
const SS_NLPT: &str = "select * from ss_nlpt";

/// Every table and `ss-nlpt` read by `kql` (in one process) equal the guest's own truth.
fn assert_every_table(kql: &Kql, truth: &Truth) {
    let statements = [LISTENERS, SOCKET_FDS, PROCESSES, UNCOUNTED_THREADS, WORKLOAD_THREADS, SS_NLPT];
    let (results, stderr) = kql.batch(&statements);
    assert!(stderr.is_empty(), "no warnings from {kql:?}: {stderr}");
    let [listeners, fds, processes, uncounted, threads, ss] = &results[..] else { unreachable!() };
    assert_eq!(as_json_set(listeners), expected_listeners(truth), "tcp_listeners from {kql:?}");
    assert_eq!(socket_fds(fds), expected_socket_fds(truth), "socket fds from {kql:?}");
    assert_processes(processes, truth, kql);
    assert_eq!(uncounted, &Vec::<Row>::new(), "thread lists match nr_threads from {kql:?}");
    assert_workload_threads(threads, truth, kql);
    let expected_ss: BTreeSet<String> =
        truth.listeners().map(|entry| expected_ss_line(truth, entry).to_string()).collect();
    assert_eq!(as_json_set(ss), expected_ss, "ss-nlpt from {kql:?}");
}

fn as_json_set(rows: &[Row]) -> BTreeSet<String> {
    rows.iter().map(|r| json!(r).to_string()).collect()
}

/// The scenario's record of the listener with `inode`.
fn scenario_listener(truth: &Truth, inode: u64) -> &Value {
    let listeners = truth.scenario["listeners"].as_array().expect("scenario listeners");
    listeners
        .iter()
        .find(|l| l["inode"].as_u64() == Some(inode))
        .unwrap_or_else(|| panic!("listener inode {inode} is not one the workload made"))
}

/// `tcp_listeners` rows as the guest's /proc/net/tcp{,6} of every namespace says, with the
/// backlog, v6only and SO_REUSEPORT the workload set.
fn expected_listeners(truth: &Truth) -> BTreeSet<String> {
    let expected: BTreeSet<String> = truth
        .listeners()
        .map(|entry| {
            let made = scenario_listener(truth, entry.inode);
            let v6 = entry.family == Family::Inet6;
            json!({
                "netns": entry.netns,
                "family": if v6 { "inet6" } else { "inet" },
                "local_port": entry.local_port,
                "inode": entry.inode,
                "recv_q": entry.rx_queue,
                "send_q": made["backlog"],
                "uid": entry.uid,
                "v6only": if v6 { made["v6only"].clone() } else { Value::Null },
                "reuseport": made["reuseport"],
            })
            .to_string()
        })
        .collect();
    assert!(expected.len() >= truth.scenario["listeners"].as_array().map_or(0, Vec::len));
    expected
}

type SocketFd = (i64, String, i64, u64);

fn socket_fds(rows: &[Row]) -> BTreeSet<SocketFd> {
    rows.iter()
        .map(|r| {
            let comm = r["comm"].as_str().unwrap().to_string();
            (r["pid"].as_i64().unwrap(), comm, r["fd"].as_i64().unwrap(), r["inode"].as_u64().unwrap())
        })
        .collect()
}

/// The socket fds the guest's /proc/PID/fd shows.
fn expected_socket_fds(truth: &Truth) -> BTreeSet<SocketFd> {
    truth.socket_fds.iter().map(|f| (i64::from(f.pid), f.comm.clone(), i64::from(f.fd), f.inode)).collect()
}

/// Every workload process and PID 1 with the guest's ppid, comm and netns, and no others
/// named like the workload.
fn assert_processes(rows: &[Row], truth: &Truth, kql: &Kql) {
    let got: BTreeMap<i64, (i64, String, u64)> = rows
        .iter()
        .map(|r| {
            let row = (
                r["ppid"].as_i64().unwrap(),
                r["comm"].as_str().unwrap().to_string(),
                r["netns"].as_u64().unwrap(),
            );
            (r["pid"].as_i64().unwrap(), row)
        })
        .collect();
    let ours = truth.processes.iter().filter(|p| p.pid == 1 || p.comm.starts_with("kqlw"));
    for process in ours {
        let expected = (i64::from(process.ppid), process.comm.clone(), process.netns);
        assert_eq!(got.get(&i64::from(process.pid)), Some(&expected), "pid {} from {kql:?}", process.pid);
    }
    let kql_workers = got.values().filter(|(_, comm, _)| comm.starts_with("kqlw")).count();
    let guest_workers = truth.processes.iter().filter(|p| p.comm.starts_with("kqlw")).count();
    assert_eq!(kql_workers, guest_workers, "no extra workload processes from {kql:?}");
}

/// The workload's threads — `kqlw-alpha` runs two named ones — as the guest's /proc/PID/task.
fn assert_workload_threads(rows: &[Row], truth: &Truth, kql: &Kql) {
    let listed: BTreeSet<(i64, i64, String)> = rows
        .iter()
        .map(|r| {
            (r["pid"].as_i64().unwrap(), r["tid"].as_i64().unwrap(), r["comm"].as_str().unwrap().to_string())
        })
        .collect();
    let ours: BTreeSet<i32> =
        truth.processes.iter().filter(|p| p.comm.starts_with("kqlw")).map(|p| p.pid).collect();
    let expected: BTreeSet<(i64, i64, String)> = truth
        .threads
        .iter()
        .filter(|t| ours.contains(&t.pid))
        .map(|t| (i64::from(t.pid), i64::from(t.tid), t.comm.clone()))
        .collect();
    assert!(expected.iter().any(|(_, _, comm)| comm == "kqlw-alpha-t2"), "the guest has the named threads");
    assert_eq!(listed, expected, "workload threads from {kql:?}");
}

/// An address:port as `ss -n` prints it.
fn ss_endpoint(addr: IpAddr, port: Option<u16>, v6only: bool) -> String {
    let port = port.map_or("*".to_string(), |p| p.to_string());
    match addr {
        IpAddr::V6(v6) if v6.is_unspecified() && !v6only => format!("*:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        IpAddr::V4(v4) => format!("{v4}:{port}"),
    }
}

/// What `ss -nlpt` run in the listener's namespace prints for it, from the guest's /proc.
fn expected_ss_line(truth: &Truth, entry: &TcpEntry) -> Value {
    let made = scenario_listener(truth, entry.inode);
    let v6only = made["v6only"].as_bool().unwrap_or(false);
    let mut holders: Vec<_> = truth.socket_fds.iter().filter(|f| f.inode == entry.inode).collect();
    holders.sort_by_key(|f| std::cmp::Reverse((f.pid, f.fd)));
    let users: Vec<String> =
        holders.iter().map(|f| format!("(\"{}\",pid={},fd={})", f.comm, f.pid, f.fd)).collect();
    json!({
        "State": "LISTEN",
        "Recv-Q": entry.rx_queue,
        "Send-Q": made["backlog"],
        "Local Address:Port": ss_endpoint(entry.local_addr, Some(entry.local_port), v6only),
        "Peer Address:Port": ss_endpoint(entry.remote_addr, None, v6only),
        "Process": format!("users:({})", users.join(",")),
    })
}

/// One guest read every way: DWARF and BTF, live from the host over QMP, from its vmcore, and
/// from inside on its own /proc/kcore — where plain `kql` finds its types by itself.
fn every_way(series: Series) -> Booted {
    let booted = Booted::new(series, "basic");
    let truth = &booted.truth;
    let (qmp, core, vmlinux) = (booted.qmp(), booted.core(), booted.vmlinux());
    let (qmp, core, vmlinux) = (qmp.as_str(), core.as_str(), vmlinux.as_str());

    // BTF and kallsyms only: no vmlinux anywhere.
    let inside = booted.inside(&[]);
    inside.assert_walks_with("btf");
    assert_every_table(&inside, truth);
    assert_kernel_tables(
        &|statements| inside.try_batch(statements).map(|r| r.0),
        truth,
        &format!("{inside:?}"),
    );
    assert_socket_tables(
        &|statements| inside.try_batch(statements).map(|r| r.0),
        truth,
        &format!("{inside:?}"),
    );
    if booted.exports_kallsyms() {
        for flags in [["--qmp", qmp], ["--core", core]] {
            let host = booted.host(&flags);
            host.assert_walks_with("btf");
            assert_every_table(&host, truth);
            assert_kernel_tables(
                &|statements| host.try_batch(statements).map(|r| r.0),
                truth,
                &format!("{host:?}"),
            );
            assert_socket_tables(
                &|statements| host.try_batch(statements).map(|r| r.0),
                truth,
                &format!("{host:?}"),
            );
        }
    } else {
        for flags in [["--qmp", qmp], ["--core", core]] {
            let error = booted.host(&flags).failure(&["-q", "ss-nlpt"]);
            assert!(error.contains("VMCOREINFO does not locate the kallsyms tables"), "{error}");
            assert!(error.contains("--vmlinux"), "{error}");
        }
    }

    // DWARF: given on the host, found by libdrgn's search inside the guest.
    assert_every_table(&booted.host(&["--qmp", qmp, "--vmlinux", vmlinux]), truth);
    let dwarf_core = booted.host(&["--core", core, "--vmlinux", vmlinux]);
    assert_every_table(&dwarf_core, truth);
    assert_kernel_tables(
        &|statements| dwarf_core.try_batch(statements).map(|r| r.0),
        truth,
        &format!("{dwarf_core:?}"),
    );
    assert_socket_tables(
        &|statements| dwarf_core.try_batch(statements).map(|r| r.0),
        truth,
        &format!("{dwarf_core:?}"),
    );
    booted.install_debug_vmlinux();
    let dwarf_inside = booted.inside(&["--types", "dwarf"]);
    dwarf_inside.assert_walks_with("dwarf");
    assert_every_table(&dwarf_inside, truth);
    booted.inside(&[]).assert_walks_with("btf");
    booted
}

#[test]
fn debian_6_1_every_way() {
    let booted = every_way(Series::Bookworm61);
    type_source_errors_and_fallbacks(&booted);
    per_table_fallback(&booted);
}

#[test]
fn debian_6_12_every_way() {
    every_way(Series::Bookworm612);
}

#[test]
fn debian_5_10_every_way() {
    every_way(Series::Bullseye510);
}

/// Inside the guest, each thing a kernel walk needs taken away in turn: the explicit choice
/// fails in one line naming the file and the fix; plain kql says why and uses what remains.
fn type_source_errors_and_fallbacks(booted: &Booted) {
    let truth = &booted.truth;
    booted.shell("mount -t tmpfs none /sys/kernel/btf");
    let error = booted.inside(&["--types", "btf"]).failure(&["-q", "ss-nlpt"]);
    assert!(
        error.contains("/sys/kernel/btf/vmlinux does not exist") && error.contains("CONFIG_DEBUG_INFO_BTF"),
        "{error}"
    );
    let plain = booted.inside(&[]);
    for (table, _, types) in plain.tables() {
        assert!(types.starts_with("dwarf: ") && types.contains("no usable BTF"), "{table}: {types}");
    }
    assert_every_table(&plain, truth);
    booted.shell("umount /sys/kernel/btf");

    booted.shell("grep -i ' t ' /proc/kallsyms > /tmp/kallsyms-text && mount -o bind /tmp/kallsyms-text /proc/kallsyms");
    let error = booted.inside(&["--types", "btf"]).failure(&["-q", "ss-nlpt"]);
    assert!(
        error.contains("/proc/kallsyms lists no data symbols") && error.contains("CONFIG_KALLSYMS_ALL"),
        "{error}"
    );
    booted.shell("umount /proc/kallsyms");

    booted.shell("echo 2 > /proc/sys/kernel/kptr_restrict");
    let error = booted.inside(&["--types", "btf"]).failure(&["-q", "ss-nlpt"]);
    booted.shell("echo 0 > /proc/sys/kernel/kptr_restrict");
    assert!(
        error.contains("/proc/kallsyms shows every address as 0") && error.contains("kptr_restrict"),
        "{error}"
    );

    let error = booted.inside(&["--source", "netlink"]).failure(&["-q", "ss-nlpt"]);
    assert!(error.contains("tcp_diag"), "{error}");
    not_root_falls_back_to_procfs(booted);
}

/// As `nobody`, /proc/kcore is closed: kql says so and uses netlink, which in this guest has
/// no tcp_diag, so it says that too and reads /proc/net/tcp — never an empty table.
fn not_root_falls_back_to_procfs(booted: &Booted) {
    let run = booted.inside_as_nobody().run(&[
        "--format",
        "json",
        "select local_port, inode, recv_q from tcp_listeners",
    ]);
    assert!(run.success, "{}", run.stderr);
    assert!(run.stderr.contains("/proc/kcore") && run.stderr.contains("Permission denied"), "{}", run.stderr);
    assert!(run.stderr.contains("tcp_diag") && run.stderr.contains("/proc/net/tcp"), "{}", run.stderr);
    let rows: Vec<Row> = serde_json::from_str(&run.stdout).expect("JSON rows");
    let init_netns = booted.truth.processes.iter().find(|p| p.pid == 1).expect("PID 1").netns;
    let got: BTreeSet<String> = rows.iter().map(|r| json!(r).to_string()).collect();
    let expected: BTreeSet<String> = booted
        .truth
        .listeners()
        .filter(|entry| entry.netns == init_netns)
        .map(|entry| {
            json!({"local_port": entry.local_port, "inode": entry.inode, "recv_q": entry.rx_queue})
                .to_string()
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected, "tcp_listeners of kql's own namespace, from /proc/net/tcp");
}

/// The guest's BTF with `struct fdtable` renamed, so only proc_fds' walk lacks a type: that
/// table alone falls back — to DWARF where libdrgn finds it, else to procfs — and says so;
/// the rows stay right.
fn per_table_fallback(booted: &Booted) {
    booted.shell("cp /sys/kernel/btf/vmlinux /share/btf");
    let path = booted.guest.share().join("btf");
    let mut btf = std::fs::read(&path).unwrap();
    let at = find(&btf, b"\0fdtable\0").expect("BTF names struct fdtable");
    btf[at + 7] = b'X';
    std::fs::write(booted.guest.share().join("btf-without-fdtable"), &btf).unwrap();
    booted.shell("mount -o bind /share/btf-without-fdtable /sys/kernel/btf/vmlinux");
    let plain = booted.inside(&[]);
    for (table, source, types) in plain.tables() {
        let want = if table == "proc_fds" { "dwarf: " } else { "btf: " };
        assert_eq!(source, "drgn", "{table}");
        assert!(types.starts_with(want), "{table}: {types}");
    }
    let (results, stderr) = plain.batch(&[SOCKET_FDS]);
    assert_eq!(socket_fds(&results[0]), expected_socket_fds(&booted.truth));
    assert!(stderr.contains("proc_fds: BTF cannot fill it") && stderr.contains("struct fdtable"), "{stderr}");
    assert!(stderr.contains("walked with DWARF"), "{stderr}");

    booted.remove_debug_vmlinux();
    let (results, stderr) = plain.batch(&[SOCKET_FDS]);
    assert_eq!(socket_fds(&results[0]), expected_socket_fds(&booted.truth), "socket fds from /proc");
    assert!(stderr.contains("no DWARF either") && stderr.contains("comes from procfs"), "{stderr}");
    booted.shell("umount /sys/kernel/btf/vmlinux");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[test]
fn five_thousand_listeners_every_way_from_the_host() {
    let booted = Booted::new(Series::Bookworm61, "many");
    assert!(booted.truth.listeners().count() >= 5000);
    let (qmp, core, vmlinux) = (booted.qmp(), booted.core(), booted.vmlinux());
    let targets = [
        vec!["--qmp", &qmp, "--vmlinux", &vmlinux],
        vec!["--core", &core, "--vmlinux", &vmlinux],
        vec!["--qmp", &qmp],
        vec!["--core", &core],
    ];
    for flags in targets {
        let kql = booted.host(&flags);
        let (results, _) = kql.batch(&[LISTENERS, SS_NLPT]);
        assert_eq!(as_json_set(&results[0]), expected_listeners(&booted.truth), "tcp_listeners from {kql:?}");
        let expected_ss: BTreeSet<String> = booted
            .truth
            .listeners()
            .map(|entry| expected_ss_line(&booted.truth, entry).to_string())
            .collect();
        assert_eq!(as_json_set(&results[1]), expected_ss, "ss-nlpt from {kql:?}");
    }
}

#[test]
fn bad_targets_fail_in_one_line() {
    let booted = Booted::new(Series::Bookworm61, "idle");
    let vmcore = booted.core();
    let right = booted.vmlinux();
    let other = kernels::fetch(Series::Bookworm612).expect("fetch 6.12");
    let wrong = other.vmlinux.display().to_string();

    let error = kql_failure(&["--core", &vmcore, "--vmlinux", &wrong, "-q", "ss-nlpt"]);
    assert!(error.contains("does not match"), "{error}");
    assert!(error.contains(&booted.guest.kernel().build_id) && error.contains(&other.build_id), "{error}");
    assert!(error.contains(&wrong), "{error}");

    let missing = "/nonexistent/vmlinux";
    let error = kql_failure(&["--core", &vmcore, "--vmlinux", missing, "-q", "ss-nlpt"]);
    assert!(error.contains(missing), "{error}");

    let truncated = truncated_copy(&booted.vmcore, 64 << 20);
    let path = truncated.display().to_string();
    let error = kql_failure(&["--core", &path, "--vmlinux", &right, "-q", "ss-nlpt"]);
    let _ = std::fs::remove_file(&truncated);
    assert!(error.contains("truncated") && error.contains(&path), "{error}");

    let dead = dead_qmp_socket();
    let error = kql_failure(&["--qmp", &dead, "--vmlinux", &right, "-q", "ss-nlpt"]);
    let _ = std::fs::remove_file(&dead);
    assert!(error.contains(&dead) && error.contains("refused"), "{error}");

    let error = kql_failure(&["--core", &vmcore, "--source", "procfs", "-q", "ss-nlpt"]);
    assert!(error.contains("procfs"), "{error}");

    let not_btf = "/etc/hostname";
    let error = kql_failure(&["--core", &vmcore, "--btf", not_btf, "-q", "ss-nlpt"]);
    assert!(error.contains(not_btf) && error.contains("not usable BTF"), "{error}");
    let error = kql_failure(&["--core", &vmcore, "--types", "btf", "--vmlinux", &right, "-q", "ss-nlpt"]);
    assert!(error.contains("--types btf") && error.contains("--vmlinux"), "{error}");
}

fn truncated_copy(vmcore: &Path, len: u64) -> PathBuf {
    use std::io::Read;
    let path = vmcore.with_extension("truncated");
    let mut head = Vec::new();
    std::fs::File::open(vmcore).unwrap().take(len).read_to_end(&mut head).unwrap();
    std::fs::write(&path, head).unwrap();
    path
}

/// A socket file nobody listens on any more, as a QEMU that died leaves behind.
fn dead_qmp_socket() -> String {
    let path = std::env::temp_dir().join(format!("kql-test-dead-{}.qmp", std::process::id()));
    let _ = std::fs::remove_file(&path);
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    path.display().to_string()
}
