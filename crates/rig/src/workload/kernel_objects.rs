//! Kernel objects the workload's main process makes for kql's kernel tables to see, besides
//! the scenario's sockets and processes (every scenario):
//!
//! - a BPF array map `kqlw_map` (key 4 bytes, value 8, 4 entries) and a socket-filter program
//!   `kqlw_prog` (`r0 = 0; exit`, license GPL), made with the raw `bpf(2)` system call; the
//!   main process keeps both descriptors open until it is killed;
//! - cgroup2 at `/sys/fs/cgroup` (mounted if nothing is mounted there) and, in a rig guest
//!   only, the cgroups `kqlw`, `kqlw/a` and `kqlw/b` (on a host the cgroup tree is left alone).
//!
//! Each is optional: a failure prints one warning line and is recorded as a skipped
//! [`Part`] with its reason, for the host's tests to skip with.

use std::fs;
use std::io;

use kql_rig::kernel_truth::Part;
use kql_rig::{Result, rig_error};
use libc::c_int;

use crate::sys;

/// Name of the BPF program (at most 15 bytes: `BPF_OBJ_NAME_LEN` is 16 with the NUL).
pub const PROG_NAME: &str = "kqlw_prog";
/// Name of the BPF map.
pub const MAP_NAME: &str = "kqlw_map";
/// Where the cgroup2 hierarchy is (or gets) mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The cgroups made under [`CGROUP_ROOT`], parents first.
const CGROUPS: [&str; 3] = ["kqlw", "kqlw/a", "kqlw/b"];

/// The workload's BPF objects.
#[derive(Debug, Clone)]
pub struct Bpf {
    pub prog_fd: c_int,
    pub map_fd: c_int,
    /// The names as the kernel keeps them (`BPF_OBJ_GET_INFO_BY_FD`).
    pub prog_name: String,
    pub map_name: String,
}

/// What [`setup`] made, and what it had to skip.
#[derive(Debug, Default)]
pub struct KernelObjects {
    pub bpf: Option<Bpf>,
    pub skipped: Vec<(Part, String)>,
}

/// Makes the BPF objects and the cgroups (see the module documentation).
pub fn setup() -> KernelObjects {
    let mut objects = KernelObjects::default();
    let mut skip = |part: Part, reason: String| {
        eprintln!("kql-rig-workload: warning: no {part}: {reason}");
        objects.skipped.push((part, reason));
    };
    let bpf = match load_bpf() {
        Ok(bpf) => Some(bpf),
        Err(error) => {
            skip(Part::Bpf, error.0);
            None
        }
    };
    match mount_cgroup2() {
        Err(error) => {
            skip(Part::Cgroups, error.0.clone());
            skip(Part::KqlwCgroups, error.0);
        }
        Ok(()) if !in_rig_guest() => skip(
            Part::KqlwCgroups,
            "not in a rig guest (no kql.scenario= on /proc/cmdline): the host's cgroups are left alone"
                .into(),
        ),
        Ok(()) => {
            if let Err(error) = make_cgroups() {
                skip(Part::KqlwCgroups, error.0);
            }
        }
    }
    objects.bpf = bpf;
    objects
}

/// Whether this is a rig guest, whose kernel command line names the scenario.
fn in_rig_guest() -> bool {
    fs::read_to_string("/proc/cmdline")
        .is_ok_and(|line| line.split_whitespace().any(|w| w.starts_with("kql.scenario=")))
}

const BPF_MAP_CREATE: c_int = 0;
const BPF_PROG_LOAD: c_int = 5;
const BPF_OBJ_GET_INFO_BY_FD: c_int = 15;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
/// Size of the `union bpf_attr` we pass: more than any command here uses, zero beyond.
const ATTR_SIZE: usize = 128;

fn put_u32(attr: &mut [u8], at: usize, value: u32) {
    attr[at..at + 4].copy_from_slice(&value.to_ne_bytes());
}

fn put_u64(attr: &mut [u8], at: usize, value: u64) {
    attr[at..at + 8].copy_from_slice(&value.to_ne_bytes());
}

/// Copies `name` into a 16-byte `BPF_OBJ_NAME_LEN` field at `at` (NUL-terminated).
fn put_name(attr: &mut [u8], at: usize, name: &str) {
    assert!(name.len() < 16, "BPF object names have at most 15 bytes");
    attr[at..at + name.len()].copy_from_slice(name.as_bytes());
}

/// The NUL-terminated name in the 16 bytes at `at`.
fn get_name(info: &[u8], at: usize) -> String {
    let field = &info[at..at + 16];
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// `bpf(cmd)` with `attr`; a failure names the command.
fn bpf(cmd: c_int, what: &str, attr: &mut [u8]) -> Result<c_int> {
    sys::bpf(cmd, attr).map_err(|e| rig_error!("bpf({what}): {e}"))
}

/// The `name` field of the `bpf_prog_info` (name at offset 64) or `bpf_map_info` (at 24) of `fd`.
fn kernel_name(fd: c_int, name_at: usize) -> Result<String> {
    let mut info = [0u8; 96];
    let mut attr = [0u8; ATTR_SIZE];
    // info: bpf_fd (u32), info_len (u32), info (u64 pointer).
    put_u32(&mut attr, 0, fd as u32);
    put_u32(&mut attr, 4, info.len() as u32);
    put_u64(&mut attr, 8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, "BPF_OBJ_GET_INFO_BY_FD", &mut attr)?;
    Ok(get_name(&info, name_at))
}

/// Makes the array map and loads the socket filter; both descriptors stay open for good.
fn load_bpf() -> Result<Bpf> {
    // map_type, key_size, value_size, max_entries, map_flags, inner_map_fd, numa_node, map_name[16]
    let mut attr = [0u8; ATTR_SIZE];
    put_u32(&mut attr, 0, BPF_MAP_TYPE_ARRAY);
    put_u32(&mut attr, 4, 4);
    put_u32(&mut attr, 8, 8);
    put_u32(&mut attr, 12, 4);
    put_name(&mut attr, 28, MAP_NAME);
    let map_fd = bpf(BPF_MAP_CREATE, "BPF_MAP_CREATE array", &mut attr)?;

    // r0 = 0 (BPF_ALU64 | BPF_MOV | BPF_K), then exit (BPF_JMP | BPF_EXIT): struct bpf_insn is
    // code (u8), dst_reg:4 src_reg:4 (u8), off (s16), imm (s32).
    let insns: [u64; 2] =
        [u64::from_le_bytes([0xb7, 0, 0, 0, 0, 0, 0, 0]), u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0])];
    let license = c"GPL";
    // prog_type, insn_cnt, insns (u64), license (u64), log_level, log_size, log_buf (u64),
    // kern_version, prog_flags, prog_name[16]
    let mut attr = [0u8; ATTR_SIZE];
    put_u32(&mut attr, 0, BPF_PROG_TYPE_SOCKET_FILTER);
    put_u32(&mut attr, 4, insns.len() as u32);
    put_u64(&mut attr, 8, insns.as_ptr() as u64);
    put_u64(&mut attr, 16, license.as_ptr() as u64);
    put_name(&mut attr, 48, PROG_NAME);
    let prog_fd = bpf(BPF_PROG_LOAD, "BPF_PROG_LOAD socket filter", &mut attr)?;

    Ok(Bpf { prog_fd, map_fd, prog_name: kernel_name(prog_fd, 64)?, map_name: kernel_name(map_fd, 24)? })
}

/// The filesystem type mounted at `path` in this mount namespace (the last mount there wins).
fn mounted_at(path: &str) -> Result<Option<String>> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").map_err(|e| rig_error!("/proc/self/mountinfo: {e}"))?;
    let mut found = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let dash = fields.iter().position(|f| *f == "-");
        if let (Some(point), Some(dash)) = (fields.get(4), dash)
            && *point == path
        {
            found = fields.get(dash + 1).map(|f| f.to_string());
        }
    }
    Ok(found)
}

/// Mounts cgroup2 at [`CGROUP_ROOT`] unless it is there already.
fn mount_cgroup2() -> Result<()> {
    match mounted_at(CGROUP_ROOT)?.as_deref() {
        Some("cgroup2") => Ok(()),
        Some(other) => Err(rig_error!("{CGROUP_ROOT} holds {other}, not cgroup2 (cgroup v1?)")),
        None => sys::mount(Some("cgroup2"), CGROUP_ROOT, Some("cgroup2"), 0),
    }
}

/// Makes `kqlw`, `kqlw/a`, `kqlw/b` (those already there are fine).
fn make_cgroups() -> Result<()> {
    for cgroup in CGROUPS {
        let path = format!("{CGROUP_ROOT}/{cgroup}");
        match fs::create_dir(&path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(rig_error!("mkdir {path}: {e}"));
            }
            _ => {}
        }
    }
    Ok(())
}
