//! The ground truth: what the kernel itself says about the guest, copied into
//! `SHARE_DIR/truth/` for the host to compare kql's answers with (read back by
//! `kql_rig::truth::Truth::load`).
//!
//! Files: `uname-r`, `kernel-notes`, `netns/<inode>/tcp` and `tcp6`, `processes.tsv`,
//! `threads.tsv`, `socket-fds.tsv` and `scenario.json`. Processes of others may exit while /proc is read
//! (on a host); they are skipped. The workload's own processes must all be seen, else this fails.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CStr;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use kql_rig::{Result, rig_error};
use serde_json::Value;

/// One process of `/proc`.
#[derive(Debug, Clone)]
struct ProcEntry {
    pid: i32,
    ppid: i32,
    comm: String,
    netns: u64,
}

/// Writes `SHARE_DIR/truth/` (`dir`). `ours` are the workload's own pids.
pub fn write(dir: &Path, scenario: &Value, ours: &[i32]) -> Result<()> {
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

    let json = serde_json::to_vec_pretty(scenario).map_err(|e| rig_error!("scenario.json: {e}"))?;
    write_file(&dir.join("scenario.json"), &json)?;
    Ok(())
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
    // SAFETY: utsname is plain old data; all zeroes is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uts is a live, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(rig_error!("uname: {}", io::Error::last_os_error()));
    }
    // SAFETY: uname(2) NUL-terminates every field, and the field lives as long as `uts`.
    let release = unsafe { CStr::from_ptr(uts.release.as_ptr()) };
    Ok(release.to_string_lossy().into_owned())
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

/// `(tid, comm)` of every thread of `pid`, by tid.
fn threads(pid: i32) -> io::Result<Vec<(i32, String)>> {
    let mut threads = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        let Some(tid) = entry?.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
            continue;
        };
        let comm = fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))?;
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
