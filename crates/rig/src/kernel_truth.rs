//! Ground truth about kernel objects beyond listeners and processes (modules, mounts, slab
//! caches, network devices, cgroups, BPF objects, workqueues, network namespaces, and every
//! TCP, UDP and unix socket with all the columns of `/proc/net/{tcp,tcp6,udp,udp6,unix}`), read back
//! on the host from what the workload left in `SHARE_DIR/truth/` (its `ground_truth` module
//! documents each file and how it was taken).
//!
//! [`Truth::load`] only reads these files; each accessor on [`Truth`] here parses its own and
//! fails with one line naming the file and the line it could not parse. Parts the guest could
//! not provide (a kernel without `/proc/modules`, a refused `bpf(2)`, …) are listed in
//! `skipped.tsv` with the reason: [`Truth::skipped`] returns it, and the accessor of a skipped
//! part fails with it. Timer-wheel timers have no truth at all: nothing in the guest lists them
//! (`/proc/timer_list` lists hrtimers only).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::Path;

use crate::truth::{Family, Line, Truth, parse_endpoint, tsv};
use crate::{Result, rig_error};

/// Names of the files, relative to `SHARE_DIR/truth/`, shared by the workload that writes
/// them and the host that reads them.
pub mod files {
    /// Copy of `/proc/modules`.
    pub const MODULES: &str = "modules";
    /// Copy of `/proc/self/mountinfo` of the workload's main process.
    pub const MOUNTINFO: &str = "mountinfo";
    /// Inode of the mount namespace `mountinfo` was read in (`/proc/self/ns/mnt`).
    pub const MOUNT_NAMESPACE: &str = "mount-namespace";
    /// Copy of `/proc/slabinfo`.
    pub const SLABINFO: &str = "slabinfo";
    /// `name object_size` of every cache of `slabinfo`, from `/sys/kernel/slab/<name>/object_size`.
    pub const SLAB_OBJECT_SIZES: &str = "slab-object-sizes.tsv";
    /// In `netns/<inode>/`: copy of `/proc/<pid>/net/dev` of a process of that namespace.
    pub const NET_DEV: &str = "dev";
    /// In `netns/<inode>/`: `ifindex name mtu flags mac` of every device of that namespace.
    pub const NET_DEVICES: &str = "devices.tsv";
    /// One network namespace inode per line: every namespace of a process (`/proc/*/ns/net`).
    pub const NET_NAMESPACES: &str = "net-namespaces";
    /// `path id` of every cgroup of the cgroup2 hierarchy at `/sys/fs/cgroup`.
    pub const CGROUPS: &str = "cgroups.tsv";
    /// `key value` lines: `pid`, `prog_fd`, `map_fd`, `prog_name`, `map_name` of the workload's
    /// BPF objects.
    pub const BPF: &str = "bpf.tsv";
    /// Copy of `/proc/<pid>/fdinfo/<prog_fd>`.
    pub const BPF_PROG_FDINFO: &str = "bpf-prog.fdinfo";
    /// Copy of `/proc/<pid>/fdinfo/<map_fd>`.
    pub const BPF_MAP_FDINFO: &str = "bpf-map.fdinfo";
    /// One workqueue name per line: `/sys/devices/virtual/workqueue/*` (`WQ_SYSFS` ones only).
    pub const WORKQUEUES: &str = "workqueues";
    /// `part reason` of every part the guest could not provide.
    pub const SKIPPED: &str = "skipped.tsv";
    /// In `netns/<inode>/`: copy of `/proc/<pid>/net/tcp` (also parsed into `Truth::tcp`).
    pub const NET_TCP: &str = "tcp";
    /// In `netns/<inode>/`: copy of `/proc/<pid>/net/tcp6`.
    pub const NET_TCP6: &str = "tcp6";
    /// In `netns/<inode>/`: copy of `/proc/<pid>/net/udp`.
    pub const NET_UDP: &str = "udp";
    /// In `netns/<inode>/`: copy of `/proc/<pid>/net/udp6`.
    pub const NET_UDP6: &str = "udp6";
    /// In `netns/<inode>/`: copy of `/proc/<pid>/net/unix`.
    pub const NET_UNIX: &str = "unix";
    /// In `netns/<inode>/`: copy of `/proc/<pid>/net/if_inet6` (empty without IPv6).
    pub const NET_IF_INET6: &str = "if_inet6";
}

/// An optional part of the ground truth, which a guest may have had to skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// `/proc/modules` (absent on a kernel without module support).
    Modules,
    /// `/proc/slabinfo` (SLUB with `CONFIG_SLUB_DEBUG`, or SLAB).
    Slabinfo,
    /// The `dummy` device the workload adds to its second network namespace (`basic` only).
    NetnsDevice,
    /// The cgroup2 tree at `/sys/fs/cgroup`.
    Cgroups,
    /// The cgroups `kqlw/a` and `kqlw/b` the workload makes (in a rig guest only: it leaves a
    /// host's cgroup tree alone).
    KqlwCgroups,
    /// The workload's BPF program and map.
    Bpf,
    /// `/sys/devices/virtual/workqueue`.
    Workqueues,
}

impl Part {
    /// Every part.
    pub const ALL: [Part; 7] = [
        Part::Modules,
        Part::Slabinfo,
        Part::NetnsDevice,
        Part::Cgroups,
        Part::KqlwCgroups,
        Part::Bpf,
        Part::Workqueues,
    ];

    /// The part's name in `skipped.tsv`.
    pub fn name(self) -> &'static str {
        match self {
            Part::Modules => "modules",
            Part::Slabinfo => "slabinfo",
            Part::NetnsDevice => "netns-device",
            Part::Cgroups => "cgroups",
            Part::KqlwCgroups => "kqlw-cgroups",
            Part::Bpf => "bpf",
            Part::Workqueues => "workqueues",
        }
    }

    /// The part called `name` in `skipped.tsv`.
    pub fn from_name(name: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|part| part.name() == name)
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A loaded module: one line of `/proc/modules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleTruth {
    pub name: String,
    /// Bytes of its core and init layout.
    pub size: u64,
    /// `None` where the kernel prints `-` (no `CONFIG_MODULE_UNLOAD`).
    pub refcount: Option<i64>,
    /// Modules that use this one (the kernel's `source_list`), in the kernel's order.
    pub used_by: Vec<String>,
    /// `Live`, `Loading` or `Unloading`.
    pub state: String,
    /// Address of its core layout (0 where `kptr_restrict` hides it).
    pub address: u64,
    /// Taint flags, as in `(OE)`, without the parentheses.
    pub taints: Option<String>,
}

/// A mount: one line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountTruth {
    /// `mnt_id` (the legacy 32-bit id).
    pub mount_id: u32,
    pub parent_id: u32,
    /// `st_dev` of the superblock (`s_dev`).
    pub major: u32,
    pub minor: u32,
    /// Path of the mount's root inside its filesystem (octal escapes undone).
    pub root: String,
    /// Where it is mounted, seen from the reading process (octal escapes undone).
    pub mount_point: String,
    /// Per-mount options (`rw,relatime`).
    pub options: String,
    /// Optional fields (`shared:1`, `master:2`), possibly none.
    pub optional: Vec<String>,
    /// Filesystem type, with its subtype if any (`fuse.sshfs`).
    pub fstype: String,
    /// The mount source (`none` if the filesystem has none; octal escapes undone).
    pub source: String,
    /// Superblock options.
    pub super_options: String,
}

/// A superblock seen through a mount: [`Truth::mounted_super_blocks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperBlockTruth {
    pub major: u32,
    pub minor: u32,
    pub fstype: String,
    pub source: String,
}

/// A slab cache: one line of `/proc/slabinfo` (version 2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlabTruth {
    pub name: String,
    pub active_objs: u64,
    pub num_objs: u64,
    /// The `<objsize>` column: `kmem_cache.size`, an object with its metadata and alignment
    /// (task_struct: 5888 on a 6.18 host, where `object_size` is 5840).
    pub size: u32,
    /// `kmem_cache.object_size`, from `/sys/kernel/slab/<name>/object_size` (SLUB with sysfs).
    pub object_size: Option<u32>,
    pub objects_per_slab: u32,
    pub pages_per_slab: u32,
}

/// A network device of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDeviceTruth {
    /// Inode of its network namespace.
    pub netns: u64,
    pub ifindex: i32,
    pub name: String,
    pub mtu: u32,
    /// `net_device.flags` as is (`/sys/class/net/<name>/flags`), not the `dev_get_flags()`
    /// that `SIOCGIFFLAGS` and `ip link` show (those add `IFF_RUNNING`, `IFF_LOWER_UP`, …
    /// from the operational state): lo up is `0x9`.
    pub flags: u32,
    /// Hardware address, lowercase hex bytes joined by `:` (`00:00:00:00:00:00` for lo).
    pub mac: String,
}

/// An IPv6 address of a device, as `/proc/net/if_inet6` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inet6AddressTruth {
    /// Inode of its network namespace.
    pub netns: u64,
    pub ifindex: i32,
    /// Compressed (RFC 5952), as `ip` prints it.
    pub address: String,
    pub prefix_len: u32,
    /// The address type's scope bits: 0 global, 0x10 loopback, 0x20 link-local, 0x40 site-local.
    pub scope: u32,
    /// The low eight bits of its `IFA_F_*` flags (all that `if_inet6` shows).
    pub flags: u32,
    /// Its device's name.
    pub device: String,
}

/// A cgroup of the cgroup2 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupTruth {
    /// Path under `/sys/fs/cgroup`: `/` for the root, `/kqlw/a`.
    pub path: String,
    /// Inode number of its directory, which on cgroup2 is the cgroup id (`kernfs_node.id`;
    /// 1 for the root).
    pub id: u64,
}

/// The BPF program and map the workload's main process keeps open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpfTruth {
    /// The process holding both descriptors.
    pub pid: i32,
    pub prog_fd: i32,
    pub prog_id: u32,
    /// `BPF_PROG_TYPE_SOCKET_FILTER` = 1.
    pub prog_type: u32,
    /// `prog_tag` of fdinfo: 16 hex digits.
    pub prog_tag: String,
    /// As the kernel keeps it (`BPF_OBJ_GET_INFO_BY_FD`): `kqlw_prog`.
    pub prog_name: String,
    pub map_fd: i32,
    pub map_id: u32,
    /// `BPF_MAP_TYPE_ARRAY` = 2.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// As the kernel keeps it: `kqlw_map`.
    pub map_name: String,
}

/// The raw text of the files of this module, read by [`Truth::load`].
#[derive(Debug, Clone, Default)]
pub struct KernelFiles {
    /// By path relative to `truth/`; a file the workload did not write is absent.
    files: BTreeMap<String, String>,
}

impl KernelFiles {
    /// Reads the files of [`files`] that exist in `truth_dir` (and `netns/*/` ones).
    pub fn load(truth_dir: &Path) -> Result<KernelFiles> {
        let mut names: Vec<String> = [
            files::MODULES,
            files::MOUNTINFO,
            files::MOUNT_NAMESPACE,
            files::SLABINFO,
            files::SLAB_OBJECT_SIZES,
            files::NET_NAMESPACES,
            files::CGROUPS,
            files::BPF,
            files::BPF_PROG_FDINFO,
            files::BPF_MAP_FDINFO,
            files::WORKQUEUES,
            files::SKIPPED,
        ]
        .map(String::from)
        .to_vec();
        let netns_dir = truth_dir.join("netns");
        match fs::read_dir(&netns_dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(|e| rig_error!("{}: {e}", netns_dir.display()))?;
                    let netns = entry.file_name().to_string_lossy().into_owned();
                    names.push(format!("netns/{netns}/{}", files::NET_DEVICES));
                    names.push(format!("netns/{netns}/{}", files::NET_IF_INET6));
                    for table in
                        [files::NET_TCP, files::NET_TCP6, files::NET_UDP, files::NET_UDP6, files::NET_UNIX]
                    {
                        names.push(format!("netns/{netns}/{table}"));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(rig_error!("{}: {e}", netns_dir.display())),
        }
        let mut loaded = BTreeMap::new();
        for name in names {
            let path = truth_dir.join(&name);
            match fs::read(&path) {
                Ok(bytes) => {
                    loaded.insert(name, String::from_utf8_lossy(&bytes).into_owned());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(rig_error!("{}: {e}", path.display())),
            }
        }
        Ok(KernelFiles { files: loaded })
    }

    /// The text of `name`, which must exist.
    fn text(&self, name: &str) -> Result<&str> {
        self.files
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| rig_error!("truth/{name} is missing (written by a workload older than this rig?)"))
    }

    /// `(netns, path, text)` of every `netns/<netns>/<file>`, by namespace.
    fn per_netns(&self, file: &str) -> Result<Vec<(u64, &str, &str)>> {
        let mut found = Vec::new();
        for (name, text) in &self.files {
            let Some((netns, rest)) = name.strip_prefix("netns/").and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            if rest != file {
                continue;
            }
            let netns = netns.parse().map_err(|_| rig_error!("truth/{name}: bad namespace inode"))?;
            found.push((netns, name.as_str(), text.as_str()));
        }
        found.sort_by_key(|(netns, _, _)| *netns);
        Ok(found)
    }

    /// `parse` applied to file `name`; its errors name the file.
    fn parse<T>(&self, name: &str, parse: impl FnOnce(&str) -> Result<T>) -> Result<T> {
        parse(self.text(name)?).map_err(|e| rig_error!("truth/{name}: {e}"))
    }
}

impl Truth {
    /// Why the guest skipped `part`, if it did (`None` too if `skipped.tsv` does not parse:
    /// [`Truth::skipped_parts`] and every accessor report that).
    pub fn skipped(&self, part: Part) -> Option<String> {
        let text = self.kernel.files.get(files::SKIPPED)?;
        parse_skipped(text).ok()?.remove(&part)
    }

    /// Every part the guest skipped, with its reason; fails if `skipped.tsv` does not parse.
    pub fn skipped_parts(&self) -> Result<BTreeMap<Part, String>> {
        match self.kernel.files.get(files::SKIPPED) {
            Some(text) => parse_skipped(text).map_err(|e| rig_error!("truth/{}: {e}", files::SKIPPED)),
            None => Ok(BTreeMap::new()),
        }
    }

    /// Fails with the reason if the guest skipped `part`.
    fn require(&self, part: Part) -> Result<()> {
        match self.skipped_parts()?.remove(&part) {
            Some(reason) => Err(rig_error!("the guest skipped {part}: {reason}")),
            None => Ok(()),
        }
    }

    /// The loaded modules, in `/proc/modules` order (newest first).
    pub fn modules(&self) -> Result<Vec<ModuleTruth>> {
        self.require(Part::Modules)?;
        self.kernel.parse(files::MODULES, parse_modules)
    }

    /// The mounts of the workload main process's mount namespace ([`Truth::mount_namespace`]),
    /// in mountinfo order.
    pub fn mounts(&self) -> Result<Vec<MountTruth>> {
        self.kernel.parse(files::MOUNTINFO, parse_mountinfo)
    }

    /// Inode of the mount namespace [`Truth::mounts`] lists.
    pub fn mount_namespace(&self) -> Result<u64> {
        self.kernel.parse(files::MOUNT_NAMESPACE, |text| {
            text.trim().parse().map_err(|_| rig_error!("not an inode: `{}`", text.trim()))
        })
    }

    /// The superblocks that [`Truth::mounts`] reach, one per device, in first-mount order: a
    /// subset of the kernel's `super_blocks` (unmounted ones such as sockfs or pipefs, and
    /// those mounted only in other mount namespaces, are not here).
    pub fn mounted_super_blocks(&self) -> Result<Vec<SuperBlockTruth>> {
        let mut blocks: Vec<SuperBlockTruth> = Vec::new();
        for mount in self.mounts()? {
            if !blocks.iter().any(|b| (b.major, b.minor) == (mount.major, mount.minor)) {
                blocks.push(SuperBlockTruth {
                    major: mount.major,
                    minor: mount.minor,
                    fstype: mount.fstype,
                    source: mount.source,
                });
            }
        }
        Ok(blocks)
    }

    /// The slab caches of `/proc/slabinfo`, with `object_size` where sysfs had it. Object
    /// counts move all the time; names and sizes do not.
    pub fn slab_caches(&self) -> Result<Vec<SlabTruth>> {
        self.require(Part::Slabinfo)?;
        let mut caches = self.kernel.parse(files::SLABINFO, parse_slabinfo)?;
        if self.kernel.files.contains_key(files::SLAB_OBJECT_SIZES) {
            let sizes = self.kernel.parse(files::SLAB_OBJECT_SIZES, parse_slab_object_sizes)?;
            for cache in &mut caches {
                cache.object_size = sizes.get(&cache.name).copied();
            }
        }
        Ok(caches)
    }

    /// The network devices of every namespace of the workload's processes (in a rig guest,
    /// every namespace), by namespace then ifindex.
    pub fn net_devices(&self) -> Result<Vec<NetDeviceTruth>> {
        let mut devices = Vec::new();
        for (netns, name, text) in self.kernel.per_netns(files::NET_DEVICES)? {
            devices.extend(parse_net_devices(text, netns).map_err(|e| rig_error!("truth/{name}: {e}"))?);
        }
        if devices.is_empty() {
            return Err(rig_error!("truth/netns/*/{} are missing", files::NET_DEVICES));
        }
        devices.sort_by_key(|d| (d.netns, d.ifindex));
        Ok(devices)
    }

    /// The IPv6 addresses of every namespace (`if_inet6`), by namespace, in the kernel's order.
    pub fn inet6_addresses(&self) -> Result<Vec<Inet6AddressTruth>> {
        let mut addresses = Vec::new();
        for (netns, name, text) in self.kernel.per_netns(files::NET_IF_INET6)? {
            addresses.extend(parse_if_inet6(text, netns).map_err(|e| rig_error!("truth/{name}: {e}"))?);
        }
        Ok(addresses)
    }

    /// Inodes of the network namespaces of all processes, sorted.
    pub fn net_namespaces(&self) -> Result<Vec<u64>> {
        self.kernel.parse(files::NET_NAMESPACES, |text| {
            let mut inodes = lines(text, |line| line.parse().ok())?;
            inodes.sort_unstable();
            Ok(inodes)
        })
    }

    /// The cgroups of the cgroup2 hierarchy, parents before children.
    pub fn cgroups(&self) -> Result<Vec<CgroupTruth>> {
        self.require(Part::Cgroups)?;
        self.kernel.parse(files::CGROUPS, parse_cgroups)
    }

    /// The workload's BPF program and map.
    pub fn bpf(&self) -> Result<BpfTruth> {
        self.require(Part::Bpf)?;
        let names = self.kernel.parse(files::BPF, parse_key_values)?;
        let prog = self.kernel.parse(files::BPF_PROG_FDINFO, parse_fdinfo)?;
        let map = self.kernel.parse(files::BPF_MAP_FDINFO, parse_fdinfo)?;
        bpf_truth(&names, &prog, &map)
    }

    /// The workqueues in sysfs (`WQ_SYSFS` ones: a subset of the kernel's `workqueues` list),
    /// sorted.
    pub fn workqueues(&self) -> Result<Vec<String>> {
        self.require(Part::Workqueues)?;
        self.kernel.parse(files::WORKQUEUES, |text| {
            let mut names = lines(text, |line| Some(line.to_string()))?;
            names.sort();
            Ok(names)
        })
    }
}

/// One line of `/proc/net/tcp` or `tcp6` with all its columns. The kernel prints three kinds
/// of line: full sockets (`get_tcp4_sock`), connection requests (`get_openreq4`: state
/// `SYN_RECV`, no inode, the listener's uid) and timewait sockets (`get_timewait4_sock`: the
/// state is `tw_substate`, `TIME_WAIT` or `FIN_WAIT2`, timer 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSocketTruth {
    /// Inode of the network namespace the table was read in.
    pub netns: u64,
    pub family: Family,
    pub local_addr: IpAddr,
    pub local_port: u16,
    pub remote_addr: IpAddr,
    pub remote_port: u16,
    /// The kernel's `TCP_*` state number (`st`).
    pub state: u8,
    pub tx_queue: u32,
    pub rx_queue: u32,
    /// `tr`: 0 none, 1 retransmit (a request's SYN-ACK timer too), 2 keepalive, 3 timewait,
    /// 4 zero-window probe.
    pub timer: u8,
    /// `tm->when`: time left on the timer, in clock ticks (`USER_HZ`, 1/100 s), 0 if none.
    pub timer_when: u64,
    /// `retrnsmt`: `icsk_retransmits`; a request's `num_timeout`.
    pub retransmits: u32,
    pub uid: u32,
    /// `timeout`: `icsk_probes_out` of a full socket, 0 otherwise.
    pub probes: i64,
    /// Socket inode, 0 if there is no file (requests, timewait, not accepted yet).
    pub inode: u64,
    /// The columns only full sockets have.
    pub full: Option<TcpFullTruth>,
}

/// The trailing columns of a full socket's line in `/proc/net/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFullTruth {
    /// `icsk_rto` in clock ticks (`USER_HZ`).
    pub rto: u64,
    /// `icsk_ack.ato` in clock ticks.
    pub ato: u64,
    /// `(icsk_ack.quick << 1) | pingpong`.
    pub quick_pingpong: u32,
    /// `snd_cwnd`.
    pub snd_cwnd: u32,
    /// `snd_ssthresh`, -1 while in initial slow start; a listener's fastopen queue length.
    pub ssthresh: i64,
}

/// One line of `/proc/net/udp` or `udp6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpSocketTruth {
    pub netns: u64,
    pub family: Family,
    pub local_addr: IpAddr,
    pub local_port: u16,
    pub remote_addr: IpAddr,
    pub remote_port: u16,
    /// `TCP_ESTABLISHED` (1) when connected, `TCP_CLOSE` (7) otherwise.
    pub state: u8,
    /// `sk_wmem_alloc - 1`.
    pub tx_queue: u32,
    /// `sk_rmem_alloc - forward_deficit`.
    pub rx_queue: u32,
    pub uid: u32,
    pub inode: u64,
    /// `sk_drops`.
    pub drops: u64,
}

/// One line of `/proc/net/unix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocketTruth {
    pub netns: u64,
    pub refcount: u32,
    /// `__SO_ACCEPTCON` (`0x10000`) for a listener, else 0.
    pub flags: u32,
    /// `SOCK_STREAM` 1, `SOCK_DGRAM` 2, `SOCK_SEQPACKET` 5.
    pub sock_type: u16,
    /// `SS_UNCONNECTED` 1, `SS_CONNECTING` 2 (no `struct socket`, established), `SS_CONNECTED`
    /// 3, `SS_DISCONNECTING` 4 (no `struct socket`, not established).
    pub state: u8,
    pub inode: u64,
    /// The bound name: a path, or an abstract name shown with a leading `@` (every NUL byte
    /// in it shown as `@` too); `None` if unbound.
    pub path: Option<String>,
}

impl Truth {
    /// Every line of every namespace's `/proc/net/tcp` and `tcp6`, all columns, by namespace.
    pub fn tcp_sockets(&self) -> Result<Vec<TcpSocketTruth>> {
        let mut sockets = Vec::new();
        for (file, family) in [(files::NET_TCP, Family::Inet), (files::NET_TCP6, Family::Inet6)] {
            for (netns, name, text) in self.kernel.per_netns(file)? {
                let parsed =
                    parse_proc_tcp(text, netns, family).map_err(|e| rig_error!("truth/{name}: {e}"))?;
                sockets.extend(parsed);
            }
        }
        if sockets.is_empty() && self.kernel.per_netns(files::NET_TCP)?.is_empty() {
            return Err(rig_error!("truth/netns/*/{} are missing", files::NET_TCP));
        }
        sockets.sort_by_key(|s| s.netns);
        Ok(sockets)
    }

    /// Every line of every namespace's `/proc/net/udp` and `udp6`, by namespace.
    pub fn udp_sockets(&self) -> Result<Vec<UdpSocketTruth>> {
        let mut sockets = Vec::new();
        let mut seen = false;
        for (file, family) in [(files::NET_UDP, Family::Inet), (files::NET_UDP6, Family::Inet6)] {
            for (netns, name, text) in self.kernel.per_netns(file)? {
                seen = true;
                sockets.extend(
                    parse_proc_udp(text, netns, family).map_err(|e| rig_error!("truth/{name}: {e}"))?,
                );
            }
        }
        if !seen {
            return Err(rig_error!(
                "truth/netns/*/{} are missing (written by an older workload?)",
                files::NET_UDP
            ));
        }
        sockets.sort_by_key(|s| s.netns);
        Ok(sockets)
    }

    /// Every line of every namespace's `/proc/net/unix`, by namespace.
    pub fn unix_sockets(&self) -> Result<Vec<UnixSocketTruth>> {
        let tables = self.kernel.per_netns(files::NET_UNIX)?;
        if tables.is_empty() {
            return Err(rig_error!(
                "truth/netns/*/{} are missing (written by an older workload?)",
                files::NET_UNIX
            ));
        }
        let mut sockets = Vec::new();
        for (netns, name, text) in tables {
            sockets.extend(parse_proc_unix(text, netns).map_err(|e| rig_error!("truth/{name}: {e}"))?);
        }
        Ok(sockets)
    }

    /// The sockets the `sockets` scenario made (`scenario.json`'s `sockets.records`: `role`,
    /// `kind`, `inode`, `netns`, ports, expected queues …), empty for other scenarios.
    pub fn socket_records(&self) -> Vec<serde_json::Value> {
        self.scenario["sockets"]["records"].as_array().cloned().unwrap_or_default()
    }
}

/// The whitespace-separated fields of a `/proc/net/{tcp,udp}` table's lines after the header.
fn proc_lines(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.split_whitespace().collect::<Vec<_>>()))
        .filter(|(_, fields)| !fields.is_empty() && fields[0] != "sl")
}

/// A hex column of `/proc/net/{tcp,udp}`.
fn hex<T: TryFrom<u64>>(number: usize, text: &str, what: &str) -> Result<T> {
    u64::from_str_radix(text, 16)
        .ok()
        .and_then(|value| T::try_from(value).ok())
        .ok_or_else(|| rig_error!("line {number}: bad {what} `{text}`"))
}

/// A decimal column.
fn dec<T: std::str::FromStr>(number: usize, text: &str, what: &str) -> Result<T> {
    text.parse().map_err(|_| rig_error!("line {number}: bad {what} `{text}`"))
}

/// The columns `/proc/net/tcp` and `udp` share: endpoints, state, queues, timer, uid, inode.
struct ProcCommon {
    local: (IpAddr, u16),
    remote: (IpAddr, u16),
    state: u8,
    tx_queue: u32,
    rx_queue: u32,
    timer: u8,
    timer_when: u64,
    retransmits: u32,
    uid: u32,
    probes: i64,
    inode: u64,
}

fn proc_common(number: usize, fields: &[&str], family: Family) -> Result<ProcCommon> {
    if fields.len() < 10 {
        return Err(rig_error!("line {number}: {} fields, expected at least 10", fields.len()));
    }
    let endpoint = |text| parse_endpoint(text, family).map_err(|e| rig_error!("line {number}: {e}"));
    let (tx, rx) = split_pair(number, fields[4], "queues")?;
    let (timer, when) = split_pair(number, fields[5], "timer")?;
    Ok(ProcCommon {
        local: endpoint(fields[1])?,
        remote: endpoint(fields[2])?,
        state: hex(number, fields[3], "state")?,
        tx_queue: hex(number, tx, "tx_queue")?,
        rx_queue: hex(number, rx, "rx_queue")?,
        timer: hex(number, timer, "timer")?,
        timer_when: hex(number, when, "tm->when")?,
        retransmits: hex(number, fields[6], "retrnsmt")?,
        uid: dec(number, fields[7], "uid")?,
        probes: dec(number, fields[8], "timeout")?,
        inode: dec(number, fields[9], "inode")?,
    })
}

/// `A:B` split at the colon.
fn split_pair<'t>(number: usize, text: &'t str, what: &str) -> Result<(&'t str, &'t str)> {
    text.split_once(':').ok_or_else(|| rig_error!("line {number}: bad {what} `{text}`"))
}

/// Parses a `/proc/net/tcp` or `tcp6` table read in namespace `netns`, every column.
pub fn parse_proc_tcp(text: &str, netns: u64, family: Family) -> Result<Vec<TcpSocketTruth>> {
    proc_lines(text)
        .map(|(number, fields)| {
            let common = proc_common(number, &fields, family)?;
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode refcnt sk rto ato qack cwnd ssthresh
            let full = match fields.len() >= 17 {
                true => Some(TcpFullTruth {
                    rto: dec(number, fields[12], "rto")?,
                    ato: dec(number, fields[13], "ato")?,
                    quick_pingpong: dec(number, fields[14], "quick/pingpong")?,
                    snd_cwnd: dec(number, fields[15], "snd_cwnd")?,
                    ssthresh: dec(number, fields[16], "ssthresh")?,
                }),
                false => None,
            };
            Ok(TcpSocketTruth {
                netns,
                family,
                local_addr: common.local.0,
                local_port: common.local.1,
                remote_addr: common.remote.0,
                remote_port: common.remote.1,
                state: common.state,
                tx_queue: common.tx_queue,
                rx_queue: common.rx_queue,
                timer: common.timer,
                timer_when: common.timer_when,
                retransmits: common.retransmits,
                uid: common.uid,
                probes: common.probes,
                inode: common.inode,
                full,
            })
        })
        .collect()
}

/// Parses a `/proc/net/udp` or `udp6` table read in namespace `netns`.
pub fn parse_proc_udp(text: &str, netns: u64, family: Family) -> Result<Vec<UdpSocketTruth>> {
    proc_lines(text)
        .map(|(number, fields)| {
            let common = proc_common(number, &fields, family)?;
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
            let drops = fields.get(12).ok_or_else(|| rig_error!("line {number}: no drops column"))?;
            Ok(UdpSocketTruth {
                netns,
                family,
                local_addr: common.local.0,
                local_port: common.local.1,
                remote_addr: common.remote.0,
                remote_port: common.remote.1,
                state: common.state,
                tx_queue: common.tx_queue,
                rx_queue: common.rx_queue,
                uid: common.uid,
                inode: common.inode,
                drops: dec(number, drops, "drops")?,
            })
        })
        .collect()
}

/// Parses a `/proc/net/unix` table read in namespace `netns`: `Num RefCount Protocol Flags
/// Type St Inode [Path]`, the path being the rest of the line (it may hold spaces).
pub fn parse_proc_unix(text: &str, netns: u64) -> Result<Vec<UnixSocketTruth>> {
    let mut sockets = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.starts_with("Num") || line.trim().is_empty() {
            continue;
        }
        let mut rest = line;
        let mut fields = Vec::new();
        for _ in 0..7 {
            rest = rest.trim_start_matches(' ');
            let end = rest.find(' ').unwrap_or(rest.len());
            fields.push(&rest[..end]);
            rest = &rest[end..];
        }
        if fields.iter().any(|f| f.is_empty()) {
            return Err(rig_error!("line {number}: fewer than 7 fields: `{line}`"));
        }
        let path = rest.strip_prefix(' ').filter(|p| !p.is_empty()).map(str::to_string);
        sockets.push(UnixSocketTruth {
            netns,
            refcount: hex(number, fields[1], "refcount")?,
            flags: hex(number, fields[3], "flags")?,
            sock_type: hex(number, fields[4], "type")?,
            state: hex(number, fields[5], "state")?,
            inode: dec(number, fields[6], "inode")?,
            path,
        });
    }
    Ok(sockets)
}

/// Every non-empty line of `text` turned into a `T` by `parse`; `None` is an error.
fn lines<T>(text: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<T>> {
    let mut values = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        values.push(parse(line.trim()).ok_or_else(|| rig_error!("line {}: bad value `{line}`", index + 1))?);
    }
    Ok(values)
}

/// Parses `skipped.tsv`: a header, then `part reason` separated by a tab.
pub fn parse_skipped(text: &str) -> Result<BTreeMap<Part, String>> {
    let rows = tsv(text, |line: &Line, [part, reason]| {
        let part = Part::from_name(part).ok_or_else(|| line.error("unknown part"))?;
        Ok((part, reason.to_string()))
    })?;
    Ok(rows.into_iter().collect())
}

/// Parses `/proc/modules`: `name size refcount used_by state address [(taints)]`, where
/// `used_by` is `-` or names each followed by `,`.
pub fn parse_modules(text: &str) -> Result<Vec<ModuleTruth>> {
    let mut modules = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| rig_error!("line {}: bad {what}: `{line}`", index + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !(6..=7).contains(&fields.len()) {
            return Err(rig_error!("line {}: {} fields, expected 6 or 7: `{line}`", index + 1, fields.len()));
        }
        let refcount = match fields[2] {
            "-" => None,
            count => Some(count.parse().map_err(|_| bad("refcount"))?),
        };
        let used_by = match fields[3] {
            "-" => Vec::new(),
            list => list.split(',').filter(|name| !name.is_empty()).map(String::from).collect(),
        };
        let address = fields[5].strip_prefix("0x").ok_or_else(|| bad("address"))?;
        let taints = match fields.get(6) {
            None => None,
            Some(taints) => Some(
                taints
                    .strip_prefix('(')
                    .and_then(|t| t.strip_suffix(')'))
                    .ok_or_else(|| bad("taints"))?
                    .to_string(),
            ),
        };
        modules.push(ModuleTruth {
            name: fields[0].to_string(),
            size: fields[1].parse().map_err(|_| bad("size"))?,
            refcount,
            used_by,
            state: fields[4].to_string(),
            address: u64::from_str_radix(address, 16).map_err(|_| bad("address"))?,
            taints,
        });
    }
    Ok(modules)
}

/// Undoes the octal escapes (`\040` for a space, `\134` for a backslash, …) of mountinfo.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let octal = bytes.get(at + 1..at + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[at], octal) {
            (b'\\', Some(digits)) => {
                let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                at += 4;
            }
            (byte, _) => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/<pid>/mountinfo`: `id parent major:minor root mount_point options
/// [optional…] - fstype source super_options`.
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountTruth>> {
    let mut mounts = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| rig_error!("line {}: bad {what}: `{line}`", index + 1);
        let fields: Vec<&str> = line.split(' ').collect();
        let dash = fields.iter().position(|f| *f == "-").ok_or_else(|| bad("line (no ` - `)"))?;
        if dash < 6 || fields.len() < dash + 3 {
            return Err(bad("line (too few fields)"));
        }
        let (major, minor) = fields[2].split_once(':').ok_or_else(|| bad("major:minor"))?;
        mounts.push(MountTruth {
            mount_id: fields[0].parse().map_err(|_| bad("mount id"))?,
            parent_id: fields[1].parse().map_err(|_| bad("parent id"))?,
            major: major.parse().map_err(|_| bad("major"))?,
            minor: minor.parse().map_err(|_| bad("minor"))?,
            root: unescape(fields[3]),
            mount_point: unescape(fields[4]),
            options: fields[5].to_string(),
            optional: fields[6..dash].iter().map(|f| f.to_string()).collect(),
            fstype: fields[dash + 1].to_string(),
            source: unescape(fields[dash + 2]),
            super_options: fields[dash + 3..].join(" "),
        });
    }
    Ok(mounts)
}

/// Parses `/proc/slabinfo` version 2.1 (`object_size` is left `None`).
pub fn parse_slabinfo(text: &str) -> Result<Vec<SlabTruth>> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim() == "slabinfo - version: 2.1" => {}
        other => return Err(rig_error!("line 1: expected `slabinfo - version: 2.1`, got {other:?}")),
    }
    let mut caches = Vec::new();
    for (index, line) in lines {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| rig_error!("line {}: bad {what}: `{line}`", index + 1);
        // name active num objsize objperslab pagesperslab : tunables l b s : slabdata a n s
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 16 || fields[6] != ":" || fields[7] != "tunables" || fields[11] != ":" {
            return Err(bad("line (expected 16 fields in the 2.1 layout)"));
        }
        caches.push(SlabTruth {
            name: fields[0].to_string(),
            active_objs: fields[1].parse().map_err(|_| bad("active_objs"))?,
            num_objs: fields[2].parse().map_err(|_| bad("num_objs"))?,
            size: fields[3].parse().map_err(|_| bad("objsize"))?,
            object_size: None,
            objects_per_slab: fields[4].parse().map_err(|_| bad("objperslab"))?,
            pages_per_slab: fields[5].parse().map_err(|_| bad("pagesperslab"))?,
        });
    }
    Ok(caches)
}

/// Parses `slab-object-sizes.tsv`: a header, then `name object_size`.
pub fn parse_slab_object_sizes(text: &str) -> Result<BTreeMap<String, u32>> {
    let rows =
        tsv(text, |line: &Line, [name, size]| Ok((name.to_string(), line.parse(size, "object_size")?)))?;
    Ok(rows.into_iter().collect())
}

/// Parses `netns/<netns>/devices.tsv`: a header, then `ifindex name mtu flags mac`, where
/// `flags` is sysfs's `0x…` hex.
pub fn parse_net_devices(text: &str, netns: u64) -> Result<Vec<NetDeviceTruth>> {
    tsv(text, |line: &Line, [ifindex, name, mtu, flags, mac]| {
        let flags = flags.strip_prefix("0x").and_then(|hex| u32::from_str_radix(hex, 16).ok());
        let mac_ok = mac.split(':').all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()));
        if !mac_ok {
            return Err(line.error("mac"));
        }
        Ok(NetDeviceTruth {
            netns,
            ifindex: line.parse(ifindex, "ifindex")?,
            name: name.to_string(),
            mtu: line.parse(mtu, "mtu")?,
            flags: flags.ok_or_else(|| line.error("flags"))?,
            mac: mac.to_ascii_lowercase(),
        })
    })
}

/// Parses `netns/<netns>/if_inet6`, a copy of `/proc/net/if_inet6`: per line the address as
/// 32 hex digits, then ifindex, prefix length, scope and flags in hex, then the device.
pub fn parse_if_inet6(text: &str, netns: u64) -> Result<Vec<Inet6AddressTruth>> {
    let mut addresses = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let bad = |what: &str| rig_error!("line {}: {what} in {line:?}", number + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [address, ifindex, prefix_len, scope, flags, device] = fields[..] else {
            return Err(bad("not six fields"));
        };
        let hex = |field: &str, what: &str| u32::from_str_radix(field, 16).map_err(|_| bad(what));
        let bits = u128::from_str_radix(address, 16).ok().filter(|_| address.len() == 32);
        addresses.push(Inet6AddressTruth {
            netns,
            ifindex: hex(ifindex, "ifindex")? as i32,
            address: std::net::Ipv6Addr::from(bits.ok_or_else(|| bad("address"))?).to_string(),
            prefix_len: hex(prefix_len, "prefix length")?,
            scope: hex(scope, "scope")?,
            flags: hex(flags, "flags")?,
            device: device.to_string(),
        });
    }
    Ok(addresses)
}

/// Parses `cgroups.tsv`: a header, then `path id`.
pub fn parse_cgroups(text: &str) -> Result<Vec<CgroupTruth>> {
    tsv(text, |line: &Line, [path, id]| {
        if !path.starts_with('/') {
            return Err(line.error("path"));
        }
        Ok(CgroupTruth { path: path.to_string(), id: line.parse(id, "id")? })
    })
}

/// Parses `key value` lines separated by a tab, after a header.
fn parse_key_values(text: &str) -> Result<BTreeMap<String, String>> {
    let rows = tsv(text, |_: &Line, [key, value]| Ok((key.to_string(), value.to_string())))?;
    Ok(rows.into_iter().collect())
}

/// Parses `/proc/<pid>/fdinfo/<fd>`: `key:\tvalue` lines (`pos`, `flags`, then what the file's
/// kind adds, e.g. `prog_id` or `map_id`).
pub fn parse_fdinfo(text: &str) -> Result<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) =
            line.split_once(':').ok_or_else(|| rig_error!("line {}: no `key:` in `{line}`", index + 1))?;
        values.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(values)
}

/// A [`BpfTruth`] from `bpf.tsv` and the two fdinfo files, parsed.
fn bpf_truth(
    names: &BTreeMap<String, String>,
    prog: &BTreeMap<String, String>,
    map: &BTreeMap<String, String>,
) -> Result<BpfTruth> {
    fn get<'a>(file: &str, values: &'a BTreeMap<String, String>, key: &str) -> Result<&'a str> {
        values.get(key).map(String::as_str).ok_or_else(|| rig_error!("truth/{file}: no `{key}`"))
    }
    fn number<T: std::str::FromStr>(file: &str, values: &BTreeMap<String, String>, key: &str) -> Result<T> {
        let value = get(file, values, key)?;
        value.parse().map_err(|_| rig_error!("truth/{file}: bad {key} `{value}`"))
    }
    let (prog_file, map_file) = (files::BPF_PROG_FDINFO, files::BPF_MAP_FDINFO);
    Ok(BpfTruth {
        pid: number(files::BPF, names, "pid")?,
        prog_fd: number(files::BPF, names, "prog_fd")?,
        prog_id: number(prog_file, prog, "prog_id")?,
        prog_type: number(prog_file, prog, "prog_type")?,
        prog_tag: get(prog_file, prog, "prog_tag")?.to_string(),
        prog_name: get(files::BPF, names, "prog_name")?.to_string(),
        map_fd: number(files::BPF, names, "map_fd")?,
        map_id: number(map_file, map, "map_id")?,
        map_type: number(map_file, map, "map_type")?,
        key_size: number(map_file, map, "key_size")?,
        value_size: number(map_file, map, "value_size")?,
        max_entries: number(map_file, map, "max_entries")?,
        map_name: get(files::BPF, names, "map_name")?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // /proc/modules of a 6.1.0-57 guest (the head), and a tainted out-of-tree module and a
    // kernel without CONFIG_MODULE_UNLOAD, which print `(OE)` and `-` refcounts.
    const MODULES: &str = "dummy 16384 0 - Live 0xffffffffc0590000
9p 81920 1 - Live 0xffffffffc060e000
fscache 380928 1 9p, Live 0xffffffffc05b0000
9pnet 98304 2 9p,9pnet_virtio, Live 0xffffffffc0577000
virtio_ring 49152 3 9pnet_virtio,virtio_pci,virtio, Live 0xffffffffc054b000
kqlmod 16384 - - Loading 0x0000000000000000 (OE)
";

    #[test]
    fn parses_modules() {
        let modules = parse_modules(MODULES).unwrap();
        assert_eq!(modules.len(), 6);
        assert_eq!(
            modules[3],
            ModuleTruth {
                name: "9pnet".into(),
                size: 98304,
                refcount: Some(2),
                used_by: vec!["9p".into(), "9pnet_virtio".into()],
                state: "Live".into(),
                address: 0xffffffffc0577000,
                taints: None,
            }
        );
        assert_eq!(modules[0].used_by, Vec::<String>::new());
        assert_eq!(modules[4].used_by.len(), 3);
        let tainted = &modules[5];
        assert_eq!((tainted.refcount, tainted.state.as_str(), tainted.address), (None, "Loading", 0));
        assert_eq!(tainted.taints.as_deref(), Some("OE"));
        assert!(parse_modules("dummy 16384 0 - Live\n").is_err());
        assert!(parse_modules("dummy big 0 - Live 0xffffffffc0590000\n").is_err());
        assert!(parse_modules("dummy 16384 0 - Live ffffffffc0590000\n").is_err());
    }

    // /proc/self/mountinfo of a 6.1 guest's workload, then a host line with optional fields, a
    // mount point with a space (`\040`) and a superblock option list.
    const MOUNTINFO: &str = r"1 1 0:2 / / rw - rootfs rootfs rw,size=121800k,nr_inodes=30450,inode64
22 1 0:20 / /proc rw,relatime - proc proc rw
23 1 0:21 / /sys rw,relatime - sysfs sys rw
24 1 0:5 / /dev rw,relatime - devtmpfs dev rw,size=121800k,nr_inodes=30450,mode=755,inode64
25 1 0:22 / /share rw,relatime - 9p host0 rw,sync,dirsync,access=client,msize=262144,trans=virtio
26 23 0:23 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw
87 29 259:3 /srv/my\040dir /mnt/a\040b rw,noatime shared:42 master:7 - ext4 /dev/nvme0n1p3 rw,errors=remount-ro
";

    #[test]
    fn parses_mountinfo() {
        let mounts = parse_mountinfo(MOUNTINFO).unwrap();
        assert_eq!(mounts.len(), 7);
        assert_eq!(
            mounts[5],
            MountTruth {
                mount_id: 26,
                parent_id: 23,
                major: 0,
                minor: 23,
                root: "/".into(),
                mount_point: "/sys/fs/cgroup".into(),
                options: "rw,relatime".into(),
                optional: vec![],
                fstype: "cgroup2".into(),
                source: "cgroup2".into(),
                super_options: "rw".into(),
            }
        );
        assert_eq!((mounts[0].mount_id, mounts[0].parent_id, mounts[0].fstype.as_str()), (1, 1, "rootfs"));
        let host = &mounts[6];
        assert_eq!((host.major, host.minor), (259, 3));
        assert_eq!((host.root.as_str(), host.mount_point.as_str()), ("/srv/my dir", "/mnt/a b"));
        assert_eq!(host.optional, ["shared:42", "master:7"]);
        assert_eq!((host.fstype.as_str(), host.source.as_str()), ("ext4", "/dev/nvme0n1p3"));
        assert_eq!(unescape(r"a\134b\011c\0"), "a\\b\tc\\0");
        assert!(parse_mountinfo("22 1 0:20 / /proc rw,relatime proc proc rw\n").is_err());
        assert!(parse_mountinfo("22 1 0-20 / /proc rw - proc proc rw\n").is_err());
    }

    // /proc/slabinfo of a 6.1 guest (SLUB: no tunables), a few caches.
    const SLABINFO: &str = "slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
9p-fcall-cache-1       0      0 262144    1   64 : tunables    0    0    0 : slabdata      0      0      0
v9fs_inode_cache      22     22    728   11    2 : tunables    0    0    0 : slabdata      2      2      0
dentry             11130  11130    192   21    1 : tunables    0    0    0 : slabdata    530    530      0
task_struct           60     60   8448    3    8 : tunables    0    0    0 : slabdata     20     20      0
kmalloc-8           1534   1536      8  512    1 : tunables    0    0    0 : slabdata      3      3      0
";

    #[test]
    fn parses_slabinfo_and_object_sizes() {
        let caches = parse_slabinfo(SLABINFO).unwrap();
        assert_eq!(caches.len(), 5);
        assert_eq!(
            caches[3],
            SlabTruth {
                name: "task_struct".into(),
                active_objs: 60,
                num_objs: 60,
                size: 8448,
                object_size: None,
                objects_per_slab: 3,
                pages_per_slab: 8,
            }
        );
        assert_eq!((caches[4].active_objs, caches[4].num_objs), (1534, 1536));
        assert!(parse_slabinfo(&SLABINFO.replace("2.1", "2.0")).is_err());
        assert!(parse_slabinfo(&SLABINFO.replace(" 8448 ", " big ")).is_err());
        assert!(parse_slabinfo(&SLABINFO.replace(": slabdata", "slabdata")).is_err());
        let sizes = parse_slab_object_sizes("name\tobject_size\ntask_struct\t8384\nkmalloc-8\t8\n").unwrap();
        assert_eq!((sizes["task_struct"], sizes["kmalloc-8"]), (8384, 8));
        assert!(parse_slab_object_sizes("name\tobject_size\ntask_struct\n").is_err());
    }

    // netns/<inode>/devices.tsv of kqlw-netns's namespace, 6.1 guest.
    const DEVICES: &str = "ifindex\tname\tmtu\tflags\tmac
1\tlo\t65536\t0x9\t00:00:00:00:00:00
2\tkqlw-dummy\t1400\t0x83\t02:6b:71:6c:77:01
";

    #[test]
    fn parses_if_inet6() {
        let text = "00000000000000000000000000000001 01 80 10 80       lo\n\
                    fe80000000000000006b71fffe6c7701 02 40 20 80 kqlw-dummy\n";
        let addresses = parse_if_inet6(text, 7).unwrap();
        assert_eq!(addresses.len(), 2);
        assert_eq!(
            addresses[1],
            Inet6AddressTruth {
                netns: 7,
                ifindex: 2,
                address: "fe80::6b:71ff:fe6c:7701".into(),
                prefix_len: 64,
                scope: 0x20,
                flags: 0x80,
                device: "kqlw-dummy".into(),
            }
        );
        assert_eq!(addresses[0].address, "::1");
        assert!(parse_if_inet6("0001 01 80 10 80 lo\n", 1).is_err(), "a short address");
        assert!(parse_if_inet6("00000000000000000000000000000001 01 80 10 80\n", 1).is_err(), "no device");
        assert!(parse_if_inet6("", 1).unwrap().is_empty());
    }

    #[test]
    fn parses_net_devices() {
        let devices = parse_net_devices(DEVICES, 4026532138).unwrap();
        assert_eq!(
            devices[1],
            NetDeviceTruth {
                netns: 4026532138,
                ifindex: 2,
                name: "kqlw-dummy".into(),
                mtu: 1400,
                flags: 0x83,
                mac: "02:6b:71:6c:77:01".into(),
            }
        );
        assert_eq!((devices[0].name.as_str(), devices[0].flags), ("lo", 0x9));
        assert!(parse_net_devices(&DEVICES.replace("0x83", "131"), 1).is_err());
        assert!(parse_net_devices(&DEVICES.replace("02:6b", "2:6b"), 1).is_err());
        assert!(parse_net_devices("ifindex\tname\tmtu\tflags\tmac\n1\tlo\t65536\t0x9\n", 1).is_err());
    }

    #[test]
    fn parses_cgroups() {
        let cgroups = parse_cgroups("path\tid\n/\t1\n/kqlw\t23\n/kqlw/a\t40\n/kqlw/b\t57\n").unwrap();
        assert_eq!(cgroups.len(), 4);
        assert_eq!(cgroups[2], CgroupTruth { path: "/kqlw/a".into(), id: 40 });
        assert!(parse_cgroups("path\tid\nkqlw\t23\n").is_err());
        assert!(parse_cgroups("path\tid\n/kqlw\tx\n").is_err());
    }

    // /proc/<pid>/fdinfo of the workload's BPF program and map, 5.10 guest (6.1 and 6.12 add
    // `ino`, `recursion_misses`, `verified_insns`, `map_extra`).
    const PROG_FDINFO: &str = "pos:\t0\nflags:\t02000002\nmnt_id:\t14\nprog_type:\t1\nprog_jited:\t1\n\
        prog_tag:\ta04f5eef06a7f555\nmemlock:\t4096\nprog_id:\t1\nrun_time_ns:\t0\nrun_cnt:\t0\n";
    const MAP_FDINFO: &str = "pos:\t0\nflags:\t02000002\nmnt_id:\t14\nmap_type:\t2\nkey_size:\t4\n\
        value_size:\t8\nmax_entries:\t4\nmap_flags:\t0x0\nmemlock:\t4096\nmap_id:\t1\nfrozen:\t0\n";
    const BPF_TSV: &str =
        "key\tvalue\npid\t102\nprog_fd\t4\nmap_fd\t3\nprog_name\tkqlw_prog\nmap_name\tkqlw_map\n";

    #[test]
    fn parses_bpf_fdinfo() {
        let prog = parse_fdinfo(PROG_FDINFO).unwrap();
        assert_eq!((prog["prog_tag"].as_str(), prog["flags"].as_str()), ("a04f5eef06a7f555", "02000002"));
        let map = parse_fdinfo(MAP_FDINFO).unwrap();
        let names = parse_key_values(BPF_TSV).unwrap();
        assert_eq!(
            bpf_truth(&names, &prog, &map).unwrap(),
            BpfTruth {
                pid: 102,
                prog_fd: 4,
                prog_id: 1,
                prog_type: 1,
                prog_tag: "a04f5eef06a7f555".into(),
                prog_name: "kqlw_prog".into(),
                map_fd: 3,
                map_id: 1,
                map_type: 2,
                key_size: 4,
                value_size: 8,
                max_entries: 4,
                map_name: "kqlw_map".into(),
            }
        );
        let no_id = parse_fdinfo(&PROG_FDINFO.replace("prog_id", "prog_no")).unwrap();
        let error = bpf_truth(&names, &no_id, &map).unwrap_err();
        assert_eq!(error.0, "truth/bpf-prog.fdinfo: no `prog_id`");
        assert!(parse_fdinfo("pos 0\n").is_err());
    }

    #[test]
    fn parts_round_trip_and_skipped_parses() {
        for part in Part::ALL {
            assert_eq!(Part::from_name(part.name()), Some(part));
        }
        let skipped =
            parse_skipped("part\treason\nbpf\tbpf(BPF_PROG_LOAD): Operation not permitted\n").unwrap();
        assert_eq!(skipped[&Part::Bpf], "bpf(BPF_PROG_LOAD): Operation not permitted");
        assert!(parse_skipped("part\treason\nfrobs\twhy\n").is_err());
    }

    fn truth(files: &[(&str, &str)]) -> Truth {
        Truth {
            release: String::new(),
            build_id: None,
            tcp: Vec::new(),
            socket_fds: Vec::new(),
            processes: Vec::new(),
            threads: Vec::new(),
            scenario: serde_json::Value::Null,
            kernel: KernelFiles {
                files: files.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect(),
            },
        }
    }

    // Lines as the kernel prints them (get_tcp4_sock, get_openreq4, get_timewait4_sock).
    const PROC_TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1BBD 0100007F:A1B2 01 00000000:00000064 02:0001B6F1 00000000     0        0 12345 2 00000000abcdef01 20 4 30 10 -1
   1: 0100007F:1BC1 0100007F:C350 03 00000000:00000000 01:00000064 00000002     0        0 0 0 0000000011111111
   2: 0100007F:1BC3 0100007F:D000 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000022222222
";

    #[test]
    fn parses_every_column_of_proc_net_tcp() {
        let sockets = parse_proc_tcp(PROC_TCP, 7, Family::Inet).unwrap();
        assert_eq!(sockets.len(), 3);
        let full = &sockets[0];
        assert_eq!((full.local_port, full.remote_port, full.state, full.rx_queue), (7101, 41394, 1, 100));
        assert_eq!((full.timer, full.timer_when, full.inode, full.netns), (2, 0x1B6F1, 12345, 7));
        assert_eq!(
            full.full,
            Some(TcpFullTruth { rto: 20, ato: 4, quick_pingpong: 30, snd_cwnd: 10, ssthresh: -1 })
        );
        let request = &sockets[1];
        assert_eq!((request.state, request.timer, request.retransmits, request.inode), (3, 1, 2, 0));
        assert_eq!(request.full, None);
        assert_eq!((sockets[2].state, sockets[2].timer, sockets[2].timer_when), (6, 3, 6000));
        assert!(parse_proc_tcp("   0: 0100007F:1BBD 0100007F:A1B2 01\n", 7, Family::Inet).is_err());
    }

    #[test]
    fn parses_proc_net_udp_and_unix() {
        let udp = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 0100007F:1C85 00000000:0000 07 00000000:00000C00 00:00000000 00000000     0        0 23456 2 0000000033333333 60
";
        let sockets = parse_proc_udp(udp, 9, Family::Inet).unwrap();
        assert_eq!(sockets.len(), 1);
        let s = &sockets[0];
        assert_eq!((s.local_port, s.state, s.rx_queue, s.inode, s.drops), (7301, 7, 0xC00, 23456, 60));
        let unix = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 34567 /tmp/kqlw sockets/listen.sock
0000000000000000: 00000002 00000000 00000000 0002 01 34568 @kqlw@nul
0000000000000000: 00000003 00000000 00000000 0005 03 34569
";
        let sockets = parse_proc_unix(unix, 9).unwrap();
        assert_eq!(sockets.len(), 3);
        assert_eq!((sockets[0].flags, sockets[0].sock_type, sockets[0].state), (0x10000, 1, 1));
        assert_eq!(sockets[0].path.as_deref(), Some("/tmp/kqlw sockets/listen.sock"));
        assert_eq!((sockets[1].inode, sockets[1].path.as_deref()), (34568, Some("@kqlw@nul")));
        assert_eq!((sockets[2].sock_type, sockets[2].state, sockets[2].path.as_deref()), (5, 3, None));
        assert!(parse_proc_unix("0000000000000000: 00000002 00000000\n", 9).is_err());
    }

    #[test]
    fn socket_accessors_read_every_namespace() {
        let truth = truth(&[
            ("netns/7/tcp", PROC_TCP),
            ("netns/7/tcp6", ""),
            ("netns/8/tcp", PROC_TCP),
            ("netns/7/udp", ""),
            ("netns/7/unix", "Num       RefCount Protocol Flags    Type St Inode Path\n"),
        ]);
        let tcp = truth.tcp_sockets().unwrap();
        assert_eq!(tcp.iter().filter(|s| s.netns == 8).count(), 3);
        assert_eq!(tcp.len(), 6);
        assert!(truth.udp_sockets().unwrap().is_empty());
        assert!(truth.unix_sockets().unwrap().is_empty());
        assert!(truth.socket_records().is_empty());
        assert!(self::truth(&[]).unix_sockets().is_err());
    }

    #[test]
    fn accessors_parse_skip_and_name_their_files() {
        let truth = truth(&[
            (
                files::SKIPPED,
                "part\treason\nmodules\t/proc/modules: No such file or directory (os error 2)\n",
            ),
            (files::MOUNTINFO, MOUNTINFO),
            (files::MOUNT_NAMESPACE, "4026531841\n"),
            (files::SLABINFO, SLABINFO),
            (files::SLAB_OBJECT_SIZES, "name\tobject_size\ntask_struct\t8384\n"),
            ("netns/4026532138/devices.tsv", DEVICES),
            ("netns/4026531840/devices.tsv", &DEVICES.replace("kqlw-dummy", "dummy0")),
            (files::NET_NAMESPACES, "4026532138\n4026531840\n"),
            (files::CGROUPS, "path\tid\n/\t1\n/kqlw\tnot-a-number\n"),
            (files::WORKQUEUES, "writeback\nblkcg_punt_bio\n"),
        ]);
        assert!(truth.skipped(Part::Modules).is_some_and(|why| why.contains("No such file")));
        assert_eq!(truth.skipped(Part::Bpf), None);
        let error = truth.modules().unwrap_err().0;
        assert!(error.starts_with("the guest skipped modules: /proc/modules"), "{error}");
        assert_eq!(truth.mount_namespace().unwrap(), 4026531841);
        // Seven mounts, each of its own device.
        assert_eq!(truth.mounted_super_blocks().unwrap().len(), 7);
        let slabs = truth.slab_caches().unwrap();
        assert_eq!(slabs.iter().filter_map(|s| s.object_size).collect::<Vec<_>>(), [8384]);
        let devices = truth.net_devices().unwrap();
        let names: Vec<(u64, &str)> = devices.iter().map(|d| (d.netns, d.name.as_str())).collect();
        assert_eq!(
            names,
            [(4026531840, "lo"), (4026531840, "dummy0"), (4026532138, "lo"), (4026532138, "kqlw-dummy")]
        );
        assert_eq!(truth.net_namespaces().unwrap(), [4026531840, 4026532138]);
        assert_eq!(truth.workqueues().unwrap(), ["blkcg_punt_bio", "writeback"]);
        let error = truth.cgroups().unwrap_err().0;
        assert_eq!(error, "truth/cgroups.tsv: line 3: bad id: `/kqlw\tnot-a-number`");
        let error = truth.bpf().unwrap_err().0;
        assert!(error.starts_with("truth/bpf.tsv is missing"), "{error}");
    }
}
