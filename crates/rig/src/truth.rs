//! The ground truth a guest writes about itself, read back on the host.
//!
//! The workload (`kql-rig-workload`) leaves, once everything it created is in place,
//! `SHARE_DIR/truth/` with:
//!
//! - `uname-r`: the kernel release;
//! - `kernel-notes`: a byte copy of `/sys/kernel/notes` (ELF notes, among them the GNU build id);
//! - `netns/<inode>/tcp` and `netns/<inode>/tcp6`: `/proc/<pid>/net/tcp{,6}` of one process per
//!   network namespace (and `udp`, `udp6`, `unix` beside them: parsed, with every column of
//!   `tcp` and `tcp6` too, by [`crate::kernel_truth`]'s socket accessors);
//! - `processes.tsv`: `pid ppid comm netns` of every process;
//! - `socket-fds.tsv`: `pid comm fd inode` of every file descriptor that is a socket;
//! - `scenario.json`: what the workload created (listeners, processes), see the workload's docs;
//! - kernel objects (modules, mounts, slab caches, network devices, cgroups, BPF objects,
//!   workqueues, network namespaces) and the parts the guest skipped: read here as they are,
//!   parsed by the accessors of [`crate::kernel_truth`].
//!
//! Then it creates `SHARE_DIR/ready`, or `SHARE_DIR/failed` holding the reason it gave up.
//! [`Truth::load`] reads all of it back; [`vmcore_with_truth`] keeps a cached vmcore together
//! with the truth its guest wrote before the dump.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use crate::kernel_truth::KernelFiles;
use crate::{Result, rig_error};

/// TCP state `LISTEN` as printed in `/proc/net/tcp` (`st` column).
pub const TCP_LISTEN: u8 = 0x0A;

/// ELF note type of the GNU build id.
const NT_GNU_BUILD_ID: u32 = 3;

/// Address family of a TCP socket table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `AF_INET`, from `/proc/net/tcp`.
    Inet,
    /// `AF_INET6`, from `/proc/net/tcp6`.
    Inet6,
}

/// One line of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEntry {
    /// Inode of the network namespace the table was read in.
    pub netns: u64,
    pub family: Family,
    pub local_addr: IpAddr,
    pub local_port: u16,
    pub remote_addr: IpAddr,
    pub remote_port: u16,
    /// Kernel TCP state (`0x0A` is LISTEN, `0x01` ESTABLISHED).
    pub state: u8,
    pub tx_queue: u32,
    /// For a LISTEN socket: the accept-queue length (the backlog is not in this table).
    pub rx_queue: u32,
    pub uid: u32,
    /// Socket inode, 0 for sockets with no file (e.g. not yet accepted connections).
    pub inode: u64,
}

/// A file descriptor that is a socket: `/proc/<pid>/fd/<fd> -> socket:[<inode>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketFd {
    pub pid: i32,
    pub comm: String,
    pub fd: i32,
    pub inode: u64,
}

/// A thread of a guest process (`/proc/<pid>/task/<tid>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestThread {
    pub pid: i32,
    pub tid: i32,
    pub comm: String,
}

/// A process of the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestProcess {
    pub pid: i32,
    pub ppid: i32,
    pub comm: String,
    /// Inode of its network namespace.
    pub netns: u64,
}

/// Everything the guest wrote about itself.
#[derive(Debug, Clone)]
pub struct Truth {
    /// `uname -r`.
    pub release: String,
    /// The kernel's GNU build id, lowercase hex, if its notes have one.
    pub build_id: Option<String>,
    /// All TCP sockets of every network namespace, IPv4 and IPv6.
    pub tcp: Vec<TcpEntry>,
    pub socket_fds: Vec<SocketFd>,
    pub processes: Vec<GuestProcess>,
    pub threads: Vec<GuestThread>,
    /// `scenario.json` as written by the workload.
    pub scenario: serde_json::Value,
    /// The kernel-object files, unparsed (see [`crate::kernel_truth`] for their accessors).
    pub kernel: KernelFiles,
}

impl Truth {
    /// Reads `share_dir/truth/`. Fails with the workload's own message if it wrote
    /// `share_dir/failed`, and fails if `share_dir/ready` is missing.
    pub fn load(share_dir: &Path) -> Result<Truth> {
        let failed = share_dir.join("failed");
        if failed.exists() {
            let message = fs::read_to_string(&failed).unwrap_or_default();
            return Err(rig_error!("guest workload failed: {}", message.trim()));
        }
        if !share_dir.join("ready").exists() {
            return Err(rig_error!(
                "{}: no `ready` file, the guest workload did not finish",
                share_dir.display()
            ));
        }
        let dir = share_dir.join("truth");
        let read = |name: &str| -> Result<Vec<u8>> {
            let path = dir.join(name);
            fs::read(&path).map_err(|e| rig_error!("{}: {e}", path.display()))
        };
        let text = |name: &str| -> Result<String> {
            String::from_utf8(read(name)?).map_err(|_| rig_error!("{}: not UTF-8", dir.join(name).display()))
        };

        let release = text("uname-r")?.trim().to_string();
        let build_id = parse_build_id(&read("kernel-notes")?)?;

        let mut tcp = Vec::new();
        let netns_dir = dir.join("netns");
        let mut namespaces = Vec::new();
        for entry in fs::read_dir(&netns_dir).map_err(|e| rig_error!("{}: {e}", netns_dir.display()))? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let inode = name
                .parse::<u64>()
                .map_err(|_| rig_error!("{}: `{name}` is not a namespace inode", netns_dir.display()))?;
            namespaces.push(inode);
        }
        namespaces.sort_unstable();
        for netns in namespaces {
            for (file, family) in [("tcp", Family::Inet), ("tcp6", Family::Inet6)] {
                let name = format!("netns/{netns}/{file}");
                let table = text(&name)?;
                let entries = parse_tcp_table(&table, netns, family)
                    .map_err(|e| rig_error!("{}: {e}", dir.join(&name).display()))?;
                tcp.extend(entries);
            }
        }

        let processes = parse_processes(&text("processes.tsv")?)
            .map_err(|e| rig_error!("{}: {e}", dir.join("processes.tsv").display()))?;
        let socket_fds = parse_socket_fds(&text("socket-fds.tsv")?)
            .map_err(|e| rig_error!("{}: {e}", dir.join("socket-fds.tsv").display()))?;
        let threads = parse_threads(&text("threads.tsv")?)
            .map_err(|e| rig_error!("{}: {e}", dir.join("threads.tsv").display()))?;
        let scenario = serde_json::from_slice(&read("scenario.json")?)
            .map_err(|e| rig_error!("{}: {e}", dir.join("scenario.json").display()))?;

        let kernel = KernelFiles::load(&dir)?;

        Ok(Truth { release, build_id, tcp, socket_fds, processes, threads, scenario, kernel })
    }

    /// The LISTEN sockets of every network namespace.
    pub fn listeners(&self) -> impl Iterator<Item = &TcpEntry> {
        self.tcp.iter().filter(|entry| entry.state == TCP_LISTEN)
    }

    /// The pids holding a file descriptor on socket `inode`, sorted, without duplicates.
    pub fn pids_holding(&self, inode: u64) -> Vec<i32> {
        let mut pids: Vec<i32> =
            self.socket_fds.iter().filter(|fd| fd.inode == inode).map(|fd| fd.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// The process `pid`, if it was alive when the truth was taken.
    pub fn process(&self, pid: i32) -> Option<&GuestProcess> {
        self.processes.iter().find(|process| process.pid == pid)
    }
}

/// What the workload's scenarios make, as a number: `scenario.json`'s `workload_version`.
/// Bump it when a scenario changes what the guest holds, so that vmcores kept by
/// [`vmcore_with_truth`] are dumped again.
pub const WORKLOAD_VERSION: u64 = 1;

/// A vmcore kept in the cache with the ground truth of the guest it was dumped from.
#[derive(Debug, Clone)]
pub struct VmcoreWithTruth {
    /// `<cache>/vmcores/<release>-<scenario>.vmcore` (the path [`crate::vmcores::cached`] uses).
    pub vmcore: PathBuf,
    /// The kernel's debug vmlinux.
    pub vmlinux: PathBuf,
    /// What the guest wrote about itself just before it was dumped.
    pub truth: Truth,
}

/// The cached vmcore of a `series` kernel running `scenario` and the truth its guest wrote,
/// kept next to it in `<cache>/vmcores/<release>-<scenario>.truth/` (a copy of the share's
/// `ready` and `truth/`). A vmcore without that truth (dumped by [`crate::vmcores::cached`]),
/// or whose truth is of another [`WORKLOAD_VERSION`], is dumped again with it. Must run under cargo, which
/// builds the workload. Callers in other processes are serialised by a lock file, so a vmcore and its truth always belong
/// together.
pub fn vmcore_with_truth(series: crate::kernels::Series, scenario: &str) -> Result<VmcoreWithTruth> {
    let kernel = crate::kernels::fetch(series)?;
    let dir = crate::cache_dir().join("vmcores");
    fs::create_dir_all(&dir).map_err(|e| rig_error!("{}: {e}", dir.display()))?;
    let stem = format!("{}-{scenario}", kernel.release);
    let (vmcore, kept) = (dir.join(format!("{stem}.vmcore")), dir.join(format!("{stem}.truth")));
    let lock_path = dir.join(format!("{stem}.lock"));
    let _lock = crate::kernels::Lock::exclusive(&lock_path)?;
    if vmcore.is_file() && kept.join("ready").is_file() {
        let truth = Truth::load(&kept)?;
        if truth.scenario["workload_version"].as_u64() == Some(WORKLOAD_VERSION) {
            return Ok(VmcoreWithTruth { vmcore, vmlinux: kernel.vmlinux, truth });
        }
    }
    let workload = crate::binaries::workload()?;
    let guest = crate::guest::Guest::boot(&crate::guest::BootOptions::new(&kernel, scenario, &workload))?;
    let partial_truth = dir.join(format!("{stem}.truth.partial.{}", std::process::id()));
    let _ = fs::remove_dir_all(&partial_truth);
    copy_dir(&guest.share().join("truth"), &partial_truth.join("truth"))?;
    fs::copy(guest.share().join("ready"), partial_truth.join("ready"))?;
    let partial_vmcore = vmcore.with_extension(format!("partial.{}", std::process::id()));
    guest.dump(&partial_vmcore)?;
    drop(guest);
    match fs::remove_dir_all(&kept) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(rig_error!("{}: {e}", kept.display()));
        }
        _ => {}
    }
    fs::rename(&partial_truth, &kept)?;
    fs::rename(&partial_vmcore, &vmcore)?;
    let truth = Truth::load(&kept)?;
    Ok(VmcoreWithTruth { vmcore, vmlinux: kernel.vmlinux, truth })
}

/// Copies the directory tree `from` to `to` (files and directories only).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| rig_error!("{}: {e}", to.display()))?;
    for entry in fs::read_dir(from).map_err(|e| rig_error!("{}: {e}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target).map_err(|e| rig_error!("{}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Parses a `/proc/net/tcp` or `/proc/net/tcp6` table read in namespace `netns`.
///
/// Addresses are the in-kernel big-endian words printed with `%08X` as host integers, so on
/// the little-endian machines the rig runs (x86_64) each 32-bit word has its bytes reversed:
/// `0100007F` is 127.0.0.1. Ports are plain hex.
pub fn parse_tcp_table(text: &str, netns: u64, family: Family) -> Result<Vec<TcpEntry>> {
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() || fields[0] == "sl" {
            continue;
        }
        let entry = parse_tcp_line(&fields, netns, family)
            .map_err(|e| rig_error!("line {}: {e}: `{line}`", number + 1))?;
        entries.push(entry);
    }
    Ok(entries)
}

fn parse_tcp_line(fields: &[&str], netns: u64, family: Family) -> Result<TcpEntry> {
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
    if fields.len() < 10 {
        return Err(rig_error!("{} fields, expected at least 10", fields.len()));
    }
    let (local_addr, local_port) = parse_endpoint(fields[1], family)?;
    let (remote_addr, remote_port) = parse_endpoint(fields[2], family)?;
    let state = u8::from_str_radix(fields[3], 16).map_err(|_| rig_error!("bad state `{}`", fields[3]))?;
    let (tx, rx) = fields[4].split_once(':').ok_or_else(|| rig_error!("bad queues `{}`", fields[4]))?;
    let tx_queue = u32::from_str_radix(tx, 16).map_err(|_| rig_error!("bad tx_queue `{tx}`"))?;
    let rx_queue = u32::from_str_radix(rx, 16).map_err(|_| rig_error!("bad rx_queue `{rx}`"))?;
    let uid = fields[7].parse().map_err(|_| rig_error!("bad uid `{}`", fields[7]))?;
    let inode = fields[9].parse().map_err(|_| rig_error!("bad inode `{}`", fields[9]))?;
    Ok(TcpEntry {
        netns,
        family,
        local_addr,
        local_port,
        remote_addr,
        remote_port,
        state,
        tx_queue,
        rx_queue,
        uid,
        inode,
    })
}

/// Parses `ADDR:PORT` as printed by the kernel (see [`parse_tcp_table`]).
pub(crate) fn parse_endpoint(text: &str, family: Family) -> Result<(IpAddr, u16)> {
    let (addr, port) = text.split_once(':').ok_or_else(|| rig_error!("bad endpoint `{text}`"))?;
    let port = u16::from_str_radix(port, 16).map_err(|_| rig_error!("bad port `{port}`"))?;
    let words = match family {
        Family::Inet => 1,
        Family::Inet6 => 4,
    };
    if addr.len() != 8 * words || !addr.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(rig_error!("bad address `{addr}`"));
    }
    let mut bytes = Vec::with_capacity(4 * words);
    for word in 0..words {
        let hex = &addr[8 * word..8 * word + 8];
        let value = u32::from_str_radix(hex, 16).map_err(|_| rig_error!("bad address `{addr}`"))?;
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    let addr = match family {
        Family::Inet => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes.as_slice()).expect("4 bytes"))),
        Family::Inet6 => {
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes.as_slice()).expect("16 bytes")))
        }
    };
    Ok((addr, port))
}

/// Finds the GNU build id (note name `GNU`, type 3) in a blob of ELF notes such as
/// `/sys/kernel/notes`, as lowercase hex. Notes are `namesz, descsz, type` (32-bit words of
/// the guest, little-endian on x86_64), then the name and the descriptor, each padded to 4 bytes.
pub fn parse_build_id(notes: &[u8]) -> Result<Option<String>> {
    let align4 = |n: usize| n.div_ceil(4) * 4;
    let word = |at: usize| u32::from_le_bytes(notes[at..at + 4].try_into().expect("4 bytes")) as usize;
    let mut at = 0;
    while at < notes.len() {
        if notes.len() - at < 12 {
            return Err(rig_error!("kernel notes: truncated note header at offset {at}"));
        }
        let (namesz, descsz, kind) = (word(at), word(at + 4), word(at + 8) as u32);
        let name_at = at + 12;
        let desc_at =
            name_at.checked_add(align4(namesz)).ok_or_else(|| rig_error!("kernel notes: bad namesz"))?;
        let end =
            desc_at.checked_add(align4(descsz)).ok_or_else(|| rig_error!("kernel notes: bad descsz"))?;
        if desc_at + descsz > notes.len() {
            return Err(rig_error!(
                "kernel notes: note at offset {at} runs past the end ({} bytes)",
                notes.len()
            ));
        }
        let name = &notes[name_at..name_at + namesz];
        let name = name.strip_suffix(b"\0").unwrap_or(name);
        if name == b"GNU" && kind == NT_GNU_BUILD_ID {
            let hex = notes[desc_at..desc_at + descsz].iter().map(|b| format!("{b:02x}")).collect();
            return Ok(Some(hex));
        }
        at = end;
    }
    Ok(None)
}

/// Parses `processes.tsv`: a header line, then `pid ppid comm netns` separated by tabs.
pub fn parse_processes(text: &str) -> Result<Vec<GuestProcess>> {
    tsv(text, |line, [pid, ppid, comm, netns]| {
        Ok(GuestProcess {
            pid: line.parse(pid, "pid")?,
            ppid: line.parse(ppid, "ppid")?,
            comm: comm.to_string(),
            netns: line.parse(netns, "netns")?,
        })
    })
}

/// Parses `threads.tsv`: a header line, then `pid tid comm` separated by tabs.
pub fn parse_threads(text: &str) -> Result<Vec<GuestThread>> {
    tsv(text, |line, [pid, tid, comm]| {
        Ok(GuestThread { pid: line.parse(pid, "pid")?, tid: line.parse(tid, "tid")?, comm: comm.to_string() })
    })
}

/// Parses `socket-fds.tsv`: a header line, then `pid comm fd inode` separated by tabs.
pub fn parse_socket_fds(text: &str) -> Result<Vec<SocketFd>> {
    tsv(text, |line, [pid, comm, fd, inode]| {
        Ok(SocketFd {
            pid: line.parse(pid, "pid")?,
            comm: comm.to_string(),
            fd: line.parse(fd, "fd")?,
            inode: line.parse(inode, "inode")?,
        })
    })
}

/// One line of a TSV file, for error messages that name it.
pub(crate) struct Line<'a> {
    number: usize,
    text: &'a str,
}

impl Line<'_> {
    /// `value`, the field called `what`, parsed; an error names the field and the line.
    pub(crate) fn parse<T: std::str::FromStr>(&self, value: &str, what: &str) -> Result<T> {
        value.parse().map_err(|_| self.error(what))
    }

    /// `line N: bad WHAT: `LINE``.
    pub(crate) fn error(&self, what: &str) -> crate::Error {
        rig_error!("line {}: bad {what}: `{}`", self.number, self.text)
    }
}

/// Every line of `text` after its header, split into exactly `N` tab-separated fields and
/// turned into a `T` by `row`.
pub(crate) fn tsv<const N: usize, T>(
    text: &str,
    row: impl Fn(&Line, [&str; N]) -> Result<T>,
) -> Result<Vec<T>> {
    let rows = text.lines().enumerate().skip(1).map(|(index, text)| {
        let line = Line { number: index + 1, text };
        let fields: [&str; N] =
            text.split('\t').collect::<Vec<_>>().try_into().map_err(|_| {
                rig_error!("line {}: expected {N} tab-separated fields: `{text}`", line.number)
            })?;
        row(&line, fields)
    });
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Copied from /proc/net/tcp on a 6.18 x86_64 host: listeners on 0.0.0.0:47002 and
    // 127.0.0.1:47001 (one connection queued), and that connection's two halves.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     
   0: 00000000:B79A 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 503978 1 0000000005f96139 100 0 0 10 0                    
   1: 0100007F:B799 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 503977 2 0000000013d88733 100 0 0 10 0                    
   2: 0100007F:B799 0100007F:D54E 01 00000000:00000000 00:00000000 00000000     0        0 0 1 000000003fd34d49 20 0 0 10 -1                         
   3: 0100007F:D54E 0100007F:B799 01 00000000:00000000 00:00000000 00000000     0        0 503979 2 00000000cce7870f 20 0 0 10 -1                    
";

    // Same host, /proc/net/tcp6: listeners on :: (dual-stack) 47004, ::ffff:127.0.0.1 47005,
    // ::1 47003 (one connection queued), that connection's two halves, and a listener of
    // uid 65534 on 2001:db8::1234:5678 47010.
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:B79C 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 503976 1 0000000041f1758c 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:B79D 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 503981 1 00000000eb7cc830 100 0 0 10 0
   2: 00000000000000000000000001000000:B79B 00000000000000000000000000000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 503975 2 00000000c8c2e2c0 100 0 0 10 0
   3: 00000000000000000000000001000000:D800 00000000000000000000000001000000:B79B 01 00000000:00000000 00:00000000 00000000     0        0 503980 2 0000000053485372 20 0 0 10 -1
   4: 00000000000000000000000001000000:B79B 00000000000000000000000001000000:D800 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000093e8d51e 20 0 0 10 -1
   5: B80D0120000000000000000078563412:B7A2 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 504052 1 00000000eb7cc830 100 0 0 10 0
";

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn parses_ipv4_table() {
        let entries = parse_tcp_table(TCP, 4026531840, Family::Inet).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(
            entries[0],
            TcpEntry {
                netns: 4026531840,
                family: Family::Inet,
                local_addr: ip("0.0.0.0"),
                local_port: 47002,
                remote_addr: ip("0.0.0.0"),
                remote_port: 0,
                state: TCP_LISTEN,
                tx_queue: 0,
                rx_queue: 0,
                uid: 0,
                inode: 503978,
            }
        );
        assert_eq!((entries[1].local_addr, entries[1].local_port), (ip("127.0.0.1"), 47001));
        assert_eq!((entries[1].state, entries[1].rx_queue, entries[1].inode), (TCP_LISTEN, 1, 503977));
        // The queued connection, not accepted yet: no inode.
        assert_eq!((entries[2].remote_addr, entries[2].remote_port), (ip("127.0.0.1"), 54606));
        assert_eq!((entries[2].state, entries[2].inode), (1, 0));
        assert_eq!((entries[3].local_port, entries[3].remote_port, entries[3].inode), (54606, 47001, 503979));
    }

    #[test]
    fn parses_ipv6_table() {
        let entries = parse_tcp_table(TCP6, 7, Family::Inet6).unwrap();
        assert_eq!(entries.len(), 6);
        assert!(entries.iter().all(|e| e.netns == 7 && e.family == Family::Inet6));
        let local: Vec<(IpAddr, u16, u8, u32, u32, u64)> = entries
            .iter()
            .map(|e| (e.local_addr, e.local_port, e.state, e.rx_queue, e.uid, e.inode))
            .collect();
        assert_eq!(
            local,
            [
                (ip("::"), 47004, TCP_LISTEN, 0, 0, 503976),
                (ip("::ffff:127.0.0.1"), 47005, TCP_LISTEN, 0, 0, 503981),
                (ip("::1"), 47003, TCP_LISTEN, 1, 0, 503975),
                (ip("::1"), 55296, 1, 0, 0, 503980),
                (ip("::1"), 47003, 1, 0, 0, 0),
                (ip("2001:db8::1234:5678"), 47010, TCP_LISTEN, 0, 65534, 504052),
            ]
        );
        assert_eq!((entries[3].remote_addr, entries[3].remote_port), (ip("::1"), 47003));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_tcp_table("   0: 0100007F:B799 00000000:0000 0A\n", 1, Family::Inet).is_err());
        let v6_line_in_v4_table = TCP6.lines().nth(1).unwrap();
        assert!(parse_tcp_table(v6_line_in_v4_table, 1, Family::Inet).is_err());
    }

    fn unhex(hex: &str) -> Vec<u8> {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn finds_build_id() {
        // /sys/kernel/notes of a 6.1 x86_64 kernel (GNU build id, Linux, Xen notes).
        let notes = unhex(concat!(
            "040000001400000003000000474e550048dc540c8b76393804ca8088dbfa7d42911a944406000000",
            "04000000010100004c696e757800000000000000060000001e000000000100004c696e7578000000",
            "362e312e3130322d312e3138322e616d7a6e323032332e7838365f3634000000040000000c000000",
            "1300000058656e000000000100000001ffffff3f04000000080000001200000058656e0000fe7803",
            "00000000",
        ));
        assert_eq!(notes.len(), 164);
        assert_eq!(
            parse_build_id(&notes).unwrap().as_deref(),
            Some("48dc540c8b76393804ca8088dbfa7d42911a9444")
        );
        // The build id after other notes, and no build id at all.
        let linux_note = &notes[36..60];
        let gnu_note = &notes[..36];
        assert_eq!(
            parse_build_id(&[linux_note, gnu_note].concat()).unwrap(),
            parse_build_id(&notes).unwrap()
        );
        assert_eq!(parse_build_id(linux_note).unwrap(), None);
        assert_eq!(parse_build_id(&[]).unwrap(), None);
        assert!(parse_build_id(&notes[..30]).is_err());
    }

    #[test]
    fn threads_parse_and_bad_lines_are_errors() {
        let threads = parse_threads("pid\ttid\tcomm\n101\t109\tkqlw-alpha-t1\n").unwrap();
        assert_eq!(threads, [GuestThread { pid: 101, tid: 109, comm: "kqlw-alpha-t1".into() }]);
        assert!(parse_threads("pid\ttid\tcomm\n101\tx\tname\n").is_err());
        assert!(parse_threads("pid\ttid\tcomm\n101\t109\n").is_err());
    }

    #[test]
    fn parses_tsv_files() {
        let processes =
            parse_processes("pid\tppid\tcomm\tnetns\n1\t0\tinit\t4026531840\n42\t1\tkqlw beta\t4026532000\n")
                .unwrap();
        assert_eq!(
            processes[1],
            GuestProcess { pid: 42, ppid: 1, comm: "kqlw beta".into(), netns: 4026532000 }
        );
        let fds = parse_socket_fds("pid\tcomm\tfd\tinode\n42\tkqlw beta\t3\t12345\n").unwrap();
        assert_eq!(fds, [SocketFd { pid: 42, comm: "kqlw beta".into(), fd: 3, inode: 12345 }]);
        assert!(parse_processes("pid\tppid\tcomm\tnetns\n1\t0\tinit\n").is_err());
    }
}
