//! The ground truth: what the kernel itself says about the guest, copied into
//! `SHARE_DIR/truth/` for the host to compare kql's answers with (read back by
//! `kql_rig::truth::Truth::load`).
//!
//! Files: `uname-r`, `kernel-notes`, `netns/<inode>/tcp` and `tcp6` (and `udp`, `udp6`,
//! `unix`, `if_inet6`: copies of `/proc/<pid>/net/{udp,udp6,unix,if_inet6}` of the same
//! process, empty where the kernel has no such table), `processes.tsv`,
//! `threads.tsv`, `socket-fds.tsv` and `scenario.json`. Processes of others may exit while /proc is read
//! (on a host); they are skipped. The workload's own processes must all be seen, else this fails.
//!
//! Kernel objects (names in `kql_rig::kernel_truth::files`, parsed by the accessors there),
//! taken once the scenario and [`crate::kernel_objects`] are in place:
//!
//! - `modules`: a copy of `/proc/modules` (part `modules`, skipped where the kernel has none);
//! - `mountinfo`: a copy of `/proc/self/mountinfo` of the main process, and `mount-namespace`
//!   the inode of its mount namespace: in a rig guest that is the initial mount namespace,
//!   the one `/init` mounted everything in (cgroup2 included); under `ip netns exec` on a
//!   host, the private one `ip` made;
//! - `slabinfo`: a copy of `/proc/slabinfo` (part `slabinfo`), and `slab-object-sizes.tsv`
//!   (`name object_size`) from `/sys/kernel/slab/<name>/object_size` for each of its caches
//!   that SLUB's sysfs has;
//! - `netns/<inode>/dev`: a copy of `/proc/<pid>/net/dev` (the same process as `tcp`), and
//!   `netns/<inode>/devices.tsv`: `ifindex name mtu flags mac` of each device it names, read
//!   from sysfs by a child that entered the namespace (setns) and mounted a sysfs of its own
//!   in a private mount namespace (a sysfs shows the network namespace of whoever mounted
//!   it). `flags` is sysfs's hex `net_device.flags`; `mac` the `address` file. Only for the
//!   namespaces of the workload's processes: in a rig guest that is every namespace (the
//!   initial one holds the main process); on a host, the namespaces of others are not entered;
//! - `net-namespaces`: the inodes of every process's network namespace (`/proc/*/ns/net`),
//!   one a line;
//! - `cgroups.tsv`: `path id` of every directory of the cgroup2 hierarchy at `/sys/fs/cgroup`,
//!   parents first, `path` relative to it (`/`, `/kqlw`, `/kqlw/a`), `id` its inode number,
//!   which on cgroup2 is the cgroup id (part `cgroups`);
//! - `bpf.tsv` (`key value`: `pid`, `prog_fd`, `map_fd`, `prog_name`, `map_name`, the names
//!   as the kernel keeps them) and copies of `/proc/<pid>/fdinfo/<fd>` of the program
//!   (`bpf-prog.fdinfo`: `prog_type`, `prog_tag`, `prog_id`, …) and of the map
//!   (`bpf-map.fdinfo`: `map_type`, `key_size`, `value_size`, `max_entries`, `map_id`, …)
//!   (part `bpf`);
//! - `workqueues`: the workqueues of `/sys/devices/virtual/workqueue` (only those made with
//!   `WQ_SYSFS`), one a line (part `workqueues`);
//! - `skipped.tsv`: `part reason` of each part that could not be provided (always written).
//!
//! Timer-wheel timers get nothing: nothing in the guest lists them (`/proc/timer_list` lists
//! hrtimers).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use kql_rig::kernel_truth::{Part, files};
use kql_rig::{Result, rig_error};
use serde_json::Value;

use crate::kernel_objects::{self, KernelObjects};
use crate::sys;

/// One process of `/proc`.
#[derive(Debug, Clone)]
struct ProcEntry {
    pid: i32,
    ppid: i32,
    comm: String,
    netns: u64,
}

/// Writes `SHARE_DIR/truth/` (`dir`). `ours` are the workload's own pids, `objects` what
/// [`kernel_objects::setup`] made, `skipped` the parts already skipped (with their reasons).
pub fn write(
    dir: &Path,
    scenario: &Value,
    ours: &[i32],
    objects: &KernelObjects,
    mut skipped: Vec<(Part, String)>,
) -> Result<()> {
    fs::create_dir_all(dir.join("netns")).map_err(|e| rig_error!("{}: {e}", dir.display()))?;

    write_file(&dir.join("uname-r"), format!("{}\n", release()?).as_bytes())?;
    let notes = fs::read("/sys/kernel/notes").map_err(|e| rig_error!("/sys/kernel/notes: {e}"))?;
    write_file(&dir.join("kernel-notes"), &notes)?;

    let processes = scan_processes()?;
    for pid in ours {
        if !processes.iter().any(|p| p.pid == *pid) {
            return Err(rig_error!("own process {pid} is missing from /proc"));
        }
    }
    let mut text = String::from("pid\tppid\tcomm\tnetns\n");
    for p in &processes {
        text += &format!("{}\t{}\t{}\t{}\n", p.pid, p.ppid, p.comm, p.netns);
    }
    write_file(&dir.join("processes.tsv"), text.as_bytes())?;

    let mut text = String::from("pid\ttid\tcomm\n");
    for p in &processes {
        match threads(p.pid) {
            Ok(threads) => {
                for (tid, comm) in threads {
                    text += &format!("{}\t{tid}\t{comm}\n", p.pid);
                }
            }
            Err(e) if ours.contains(&p.pid) => return Err(rig_error!("/proc/{}/task: {e}", p.pid)),
            Err(_) => {} // exited meanwhile
        }
    }
    write_file(&dir.join("threads.tsv"), text.as_bytes())?;

    let mut text = String::from("pid\tcomm\tfd\tinode\n");
    for p in &processes {
        match socket_fds(p.pid) {
            Ok(fds) => {
                for (fd, inode) in fds {
                    text += &format!("{}\t{}\t{fd}\t{inode}\n", p.pid, p.comm);
                }
            }
            Err(e) if ours.contains(&p.pid) => return Err(rig_error!("/proc/{}/fd: {e}", p.pid)),
            Err(_) => {} // exited meanwhile
        }
    }
    write_file(&dir.join("socket-fds.tsv"), text.as_bytes())?;

    // One process per network namespace, the lowest pid that can be read.
    let mut namespaces: BTreeMap<u64, Vec<i32>> = BTreeMap::new();
    for p in &processes {
        namespaces.entry(p.netns).or_default().push(p.pid);
    }
    let our_namespaces: BTreeSet<u64> =
        processes.iter().filter(|p| ours.contains(&p.pid)).map(|p| p.netns).collect();
    for (netns, pids) in &namespaces {
        let mut last_error = None;
        for pid in pids {
            match tcp_tables(*pid) {
                Ok((tcp, tcp6)) => {
                    let netns_dir = dir.join("netns").join(netns.to_string());
                    fs::create_dir_all(&netns_dir).map_err(|e| rig_error!("{}: {e}", netns_dir.display()))?;
                    write_file(&netns_dir.join("tcp"), &tcp)?;
                    write_file(&netns_dir.join("tcp6"), &tcp6)?;
                    for name in [files::NET_UDP, files::NET_UDP6, files::NET_UNIX, files::NET_IF_INET6] {
                        let table = optional_net_table(*pid, name)
                            .map_err(|e| rig_error!("netns {netns}: /proc/{pid}/net/{name}: {e}"))?;
                        write_file(&netns_dir.join(name), &table)?;
                    }
                    // Only our namespaces: entering those of others (on a host) is not ours to do.
                    if our_namespaces.contains(netns) {
                        let (dev, devices) = net_devices(*pid)
                            .map_err(|e| rig_error!("devices of netns {netns} (pid {pid}): {}", e.0))?;
                        write_file(&netns_dir.join(files::NET_DEV), &dev)?;
                        write_file(&netns_dir.join(files::NET_DEVICES), devices.as_bytes())?;
                    }
                    last_error = None;
                    break;
                }
                Err(e) => last_error = Some(format!("/proc/{pid}/net: {e}")),
            }
        }
        if let Some(error) = last_error
            && our_namespaces.contains(netns)
        {
            return Err(rig_error!("netns {netns}: {error}"));
        }
    }

    let inodes: String = namespaces.keys().map(|netns| format!("{netns}\n")).collect();
    write_file(&dir.join(files::NET_NAMESPACES), inodes.as_bytes())?;

    write_kernel_objects(dir, objects, &mut skipped)?;
    let mut text = String::from("part\treason\n");
    for (part, reason) in &skipped {
        text += &format!("{part}\t{}\n", reason.replace(['\t', '\n'], " "));
    }
    write_file(&dir.join(files::SKIPPED), text.as_bytes())?;

    let json = serde_json::to_vec_pretty(scenario).map_err(|e| rig_error!("scenario.json: {e}"))?;
    write_file(&dir.join("scenario.json"), &json)?;
    Ok(())
}

/// Writes the kernel-object files other than the per-namespace ones (see the module
/// documentation); adds the parts it cannot provide to `skipped`.
fn write_kernel_objects(
    dir: &Path,
    objects: &KernelObjects,
    skipped: &mut Vec<(Part, String)>,
) -> Result<()> {
    match fs::read("/proc/modules") {
        Ok(modules) => write_file(&dir.join(files::MODULES), &modules)?,
        Err(e) => skip(skipped, Part::Modules, format!("/proc/modules: {e}")),
    }

    let mountinfo = fs::read("/proc/self/mountinfo").map_err(|e| rig_error!("/proc/self/mountinfo: {e}"))?;
    let mount_ns = fs::metadata("/proc/self/ns/mnt").map_err(|e| rig_error!("/proc/self/ns/mnt: {e}"))?.ino();
    write_file(&dir.join(files::MOUNTINFO), &mountinfo)?;
    write_file(&dir.join(files::MOUNT_NAMESPACE), format!("{mount_ns}\n").as_bytes())?;

    match fs::read_to_string("/proc/slabinfo") {
        Ok(slabinfo) => {
            write_file(&dir.join(files::SLABINFO), slabinfo.as_bytes())?;
            let mut text = String::from("name\tobject_size\n");
            let names = slabinfo.lines().skip(1).filter(|line| !line.starts_with('#'));
            for name in names.filter_map(|line| line.split_whitespace().next()) {
                if let Ok(size) = fs::read_to_string(format!("/sys/kernel/slab/{name}/object_size")) {
                    text += &format!("{name}\t{}\n", size.trim());
                }
            }
            write_file(&dir.join(files::SLAB_OBJECT_SIZES), text.as_bytes())?;
        }
        Err(e) => skip(skipped, Part::Slabinfo, format!("/proc/slabinfo: {e}")),
    }

    if !skipped.iter().any(|(part, _)| *part == Part::Cgroups) {
        let mut text = String::from("path\tid\n");
        match cgroup_tree(Path::new(kernel_objects::CGROUP_ROOT), "/", &mut text) {
            Ok(()) => write_file(&dir.join(files::CGROUPS), text.as_bytes())?,
            Err(e) => skip(skipped, Part::Cgroups, e.0),
        }
    }

    if let Some(bpf) = &objects.bpf {
        let pid = sys::getpid();
        let fdinfo = |fd: i32| {
            let path = format!("/proc/{pid}/fdinfo/{fd}");
            fs::read(&path).map_err(|e| rig_error!("{path}: {e}"))
        };
        write_file(&dir.join(files::BPF_PROG_FDINFO), &fdinfo(bpf.prog_fd)?)?;
        write_file(&dir.join(files::BPF_MAP_FDINFO), &fdinfo(bpf.map_fd)?)?;
        let text = format!(
            "key\tvalue\npid\t{pid}\nprog_fd\t{}\nmap_fd\t{}\nprog_name\t{}\nmap_name\t{}\n",
            bpf.prog_fd, bpf.map_fd, bpf.prog_name, bpf.map_name
        );
        write_file(&dir.join(files::BPF), text.as_bytes())?;
    }

    match workqueues() {
        Ok(names) => write_file(&dir.join(files::WORKQUEUES), names.as_bytes())?,
        Err(e) => skip(skipped, Part::Workqueues, e.0),
    }
    Ok(())
}

/// Records that `part` is skipped for `reason`, with a warning line.
fn skip(skipped: &mut Vec<(Part, String)>, part: Part, reason: String) {
    eprintln!("kql-rig-workload: warning: no {part}: {reason}");
    skipped.push((part, reason));
}

/// Appends `path id` of the cgroup directory `dir` (at `path` in the hierarchy) and of all the
/// cgroups below it, parents first, children by name.
fn cgroup_tree(dir: &Path, path: &str, text: &mut String) -> Result<()> {
    let error = |e: io::Error| rig_error!("{}: {e}", dir.display());
    *text += &format!("{path}\t{}\n", fs::metadata(dir).map_err(error)?.ino());
    let mut children = Vec::new();
    for entry in fs::read_dir(dir).map_err(error)? {
        let entry = entry.map_err(error)?;
        if entry.file_type().map_err(error)?.is_dir() {
            children.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    children.sort();
    for child in children {
        let child_path = if path == "/" { format!("/{child}") } else { format!("{path}/{child}") };
        cgroup_tree(&dir.join(&child), &child_path, text)?;
    }
    Ok(())
}

/// The workqueues sysfs lists (each a directory with `max_active`), one a line, sorted.
fn workqueues() -> Result<String> {
    let dir = Path::new("/sys/devices/virtual/workqueue");
    let error = |e: io::Error| rig_error!("{}: {e}", dir.display());
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(error)? {
        let entry = entry.map_err(error)?;
        if entry.path().join("max_active").exists() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names.iter().map(|name| format!("{name}\n")).collect())
}

/// `/proc/<pid>/net/dev`, and the `devices.tsv` of its namespace (see the module
/// documentation): the device names come from `net/dev`, their attributes from the sysfs of
/// a child that entered the namespace.
fn net_devices(pid: i32) -> Result<(Vec<u8>, String)> {
    let path = format!("/proc/{pid}/net/dev");
    let dev = fs::read_to_string(&path).map_err(|e| rig_error!("{path}: {e}"))?;
    // Two header lines, then `  name: counters…`.
    let names: Vec<String> = dev
        .lines()
        .skip(2)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .collect();
    let devices = sys::in_child(|| {
        sys::enter_netns_of(pid)?;
        sys::private_mount_namespace()?;
        // A tmpfs first: mounting the very sysfs already on /sys (that of the same namespace)
        // on top of itself fails with EBUSY.
        sys::mount(Some("tmpfs"), "/sys", Some("tmpfs"), 0)?;
        sys::mount(Some("sysfs"), "/sys", Some("sysfs"), 0)?;
        let mut text = String::from("ifindex\tname\tmtu\tflags\tmac\n");
        for name in &names {
            let attribute = |file: &str| {
                let path = format!("/sys/class/net/{name}/{file}");
                fs::read_to_string(&path)
                    .map(|value| value.trim().to_string())
                    .map_err(|e| rig_error!("{path}: {e}"))
            };
            let (ifindex, mtu, flags, mac) =
                (attribute("ifindex")?, attribute("mtu")?, attribute("flags")?, attribute("address")?);
            text += &format!("{ifindex}\t{name}\t{mtu}\t{flags}\t{mac}\n");
        }
        Ok(text.into_bytes())
    })?;
    let devices = String::from_utf8(devices).map_err(|_| rig_error!("devices of pid {pid}: not UTF-8"))?;
    Ok((dev.into_bytes(), devices))
}

/// Creates `path` with `bytes` and flushes it to its storage (a 9p share in the guest).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let write = || -> io::Result<()> {
        let mut file = fs::File::create(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(|e| rig_error!("{}: {e}", path.display()))
}

/// The kernel release, from uname(2).
fn release() -> Result<String> {
    let uts = nix::sys::utsname::uname().map_err(|e| rig_error!("uname: {e}"))?;
    Ok(uts.release().to_string_lossy().into_owned())
}

/// Every process of /proc, by pid; those that exit while being read are left out.
fn scan_processes() -> Result<Vec<ProcEntry>> {
    let mut processes = Vec::new();
    for entry in fs::read_dir("/proc").map_err(|e| rig_error!("/proc: {e}"))? {
        let entry = entry.map_err(|e| rig_error!("/proc: {e}"))?;
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(process) = read_process(pid) {
            processes.push(process);
        }
    }
    processes.sort_by_key(|p| p.pid);
    Ok(processes)
}

fn read_process(pid: i32) -> io::Result<ProcEntry> {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm"))?;
    // comm may hold any byte but NUL; keep the TSV well formed.
    let comm = comm.strip_suffix('\n').unwrap_or(&comm).replace(['\t', '\n'], " ");
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so split after the last `)`.
    let ppid = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|ppid| ppid.parse().ok())
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat: no ppid in {stat:?}")))?;
    let netns = fs::metadata(format!("/proc/{pid}/ns/net"))?.ino();
    Ok(ProcEntry { pid, ppid, comm, netns })
}

/// `(tid, comm)` of every thread of `pid`, by tid; threads that end while read are left out.
fn threads(pid: i32) -> io::Result<Vec<(i32, String)>> {
    let mut threads = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        let Some(tid) = entry?.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
            continue;
        };
        let comm = match fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")) {
            Ok(comm) => comm,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // the thread ended meanwhile
            Err(e) => return Err(e),
        };
        threads.push((tid, comm.strip_suffix('\n').unwrap_or(&comm).replace(['\t', '\n'], " ")));
    }
    threads.sort_unstable();
    Ok(threads)
}

/// `(fd, inode)` of every socket descriptor of `pid`.
fn socket_fds(pid: i32) -> io::Result<Vec<(i32, u64)>> {
    let mut fds = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fd"))? {
        let entry = entry?;
        let Some(fd) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
            continue;
        };
        let target = match fs::read_link(entry.path()) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // closed meanwhile
            Err(e) => return Err(e),
        };
        let inode = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<u64>().ok());
        if let Some(inode) = inode {
            fds.push((fd, inode));
        }
    }
    fds.sort_unstable();
    Ok(fds)
}

/// `/proc/<pid>/net/<name>`, empty if the kernel has no such table (no IPv6, no unix
/// sockets).
fn optional_net_table(pid: i32, name: &str) -> io::Result<Vec<u8>> {
    match fs::read(format!("/proc/{pid}/net/{name}")) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && Path::new(&format!("/proc/{pid}")).exists() => {
            Ok(Vec::new())
        }
        other => other,
    }
}

/// `/proc/<pid>/net/tcp` and `tcp6` (empty if the kernel has no IPv6).
fn tcp_tables(pid: i32) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let tcp = fs::read(format!("/proc/{pid}/net/tcp"))?;
    let tcp6 = match fs::read(format!("/proc/{pid}/net/tcp6")) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound && Path::new(&format!("/proc/{pid}")).exists() => {
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    Ok((tcp, tcp6))
}
