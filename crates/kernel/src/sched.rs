//! Tasks: every process (thread-group leader) of the kernel and its identity, and its
//! threads when asked.
//!
//! Structures walked: `init_task.tasks` (the `struct list_head` chaining thread-group
//! leaders, as `for_each_process()`); `signal->thread_head` (each thread's `thread_node`, as
//! `for_each_thread()`); `struct task_struct` (one read of the members used);
//! `real_cred->uid`, `real_parent->tgid`, `signal->nr_threads`, `nsproxy->net_ns->ns.inum`,
//! `cgroups->dfl_cgrp` (`struct css_set`), `mm->{arg_start,arg_end,pgd}` for the command
//! line (read through the task's page tables), and `tk_core.timekeeper` for the wall clock.

use std::collections::HashMap;

use kql_drgn::Result;

use crate::cgroup::CgroupIds;
use crate::list::{list_nodes, list_nodes_tolerant};
use crate::net::{container_at, member_at};
use crate::{Layout, Memory, Skipped, TypeName, Types};

/// `PF_KTHREAD` of `include/linux/sched.h`.
const PF_KTHREAD: u64 = 0x0020_0000;
/// `TASK_IDLE` = `TASK_UNINTERRUPTIBLE | TASK_NOLOAD`.
const TASK_IDLE: u64 = 0x0402;
/// `TASK_REPORT`: the state bits `/proc/PID/stat` reports.
const TASK_REPORT: u64 = 0x7f;
/// Letters of `task_state_array` by `fls()` of the reported state; `I` is `TASK_IDLE`.
const STATE_LETTERS: [char; 8] = ['R', 'S', 'D', 'T', 't', 'X', 'Z', 'P'];
/// What `tk_core` is: a `struct tk_data` since 6.13, an anonymous struct before (BTF
/// describes no globals' types).
const TK_CORE: &[TypeName] =
    &[TypeName::Named("struct tk_data"), TypeName::AnonymousStruct(&["seq", "timekeeper"])];
/// The longest command line kql reads (`/proc/PID/cmdline` has no limit; ps cuts too).
const MAX_CMDLINE: u64 = 4096;

/// A process, as `/proc/PID/stat` and `status` would describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Address of the leader's `struct task_struct`.
    pub address: u64,
    /// `tgid`: the process id.
    pub pid: i32,
    /// `real_parent->tgid` (0 for the children of the idle task, PIDs 1 and 2).
    pub ppid: i32,
    /// `comm`.
    pub comm: String,
    /// Arguments from the user stack (`mm->arg_start..arg_end`) joined by spaces; empty for
    /// kernel threads or when the pages are not in memory.
    pub cmdline: String,
    /// `real_cred->uid`.
    pub uid: u32,
    /// State letter, as in `/proc/PID/stat`.
    pub state: char,
    /// `signal->nr_threads`.
    pub threads: i64,
    /// Start time, Unix epoch nanoseconds (`start_boottime` moved to the wall clock).
    pub start_time_ns: i64,
    /// `nsproxy->net_ns->ns.inum`; `None` for a task that is exiting.
    pub netns: Option<u64>,
    /// Path of the task's cgroup v2 (`cgroups->dfl_cgrp`).
    pub cgroup: Option<String>,
    /// `files`: its `struct files_struct`, 0 if none.
    pub files: u64,
}

/// A thread (task) of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    /// `tgid`: the process it belongs to.
    pub pid: i32,
    /// `pid`: the thread id.
    pub tid: i32,
    /// `comm` of the thread (threads can name themselves).
    pub comm: String,
    /// State letter, as in `/proc/PID/task/TID/stat`.
    pub state: char,
}

/// What an fd table walk needs of a process: who it is and where its files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesOwner {
    /// `tgid`: the process id.
    pub pid: i32,
    /// `comm`.
    pub comm: String,
    /// `real_cred->uid`.
    pub uid: u32,
    /// `files`: its `struct files_struct`, 0 if none.
    pub files: u64,
}

/// Member indexes of [`TaskWalker::task`].
mod t {
    pub const TGID: usize = 0;
    pub const COMM: usize = 1;
    pub const REAL_CRED: usize = 2;
    pub const REAL_PARENT: usize = 3;
    pub const STATE: usize = 4;
    pub const EXIT_STATE: usize = 5;
    pub const SIGNAL: usize = 6;
    pub const NSPROXY: usize = 7;
    pub const FILES: usize = 8;
    pub const MM: usize = 9;
    pub const START: usize = 10;
    pub const CGROUPS: usize = 11;
    pub const FLAGS: usize = 12;
    pub const PID: usize = 13;
}

/// Offsets for task walks, looked up once.
pub struct TaskWalker {
    task: Layout,
    /// Address of `init_task.tasks`, the head of the process list.
    process_list: u64,
    tasks: u64,
    thread_node: u64,
    thread_head: u64,
    cred_uid: u64,
    nr_threads: u64,
    net_ns: u64,
    net_inum: u64,
    dfl_cgrp: u64,
    mm: Layout,
    boot_to_wall_ns: i64,
    cgroups: CgroupIds,
}

/// Per-walk caches of what many tasks share.
#[derive(Default)]
pub struct TaskCaches {
    uids: HashMap<u64, u32>,
    netns: HashMap<u64, Option<u64>>,
    cgroups: HashMap<u64, Option<String>>,
}

impl TaskWalker {
    /// Looks up every offset the walk needs, and the boot time on the wall clock.
    pub fn new(types: &Types) -> Result<TaskWalker> {
        let task_struct = types.find_type("struct task_struct")?;
        let state = if task_struct.has_member("__state")? { "__state" } else { "state" };
        let start =
            if task_struct.has_member("start_boottime")? { "start_boottime" } else { "real_start_time" };
        let members = [
            "tgid",
            "comm",
            "real_cred",
            "real_parent",
            state,
            "exit_state",
            "signal",
            "nsproxy",
            "files",
            "mm",
            start,
            "cgroups",
            "flags",
            "pid",
        ];
        Ok(TaskWalker {
            task: Layout::new(types, "struct task_struct", &members, &["cgroups"])?,
            process_list: types.symbol("init_task")? + task_struct.offset_of("tasks")? as u64,
            tasks: task_struct.offset_of("tasks")? as u64,
            thread_node: task_struct.offset_of("thread_node")? as u64,
            thread_head: types.find_type("struct signal_struct")?.offset_of("thread_head")? as u64,
            cred_uid: types.find_type("struct cred")?.offset_of("uid")? as u64,
            nr_threads: types.find_type("struct signal_struct")?.offset_of("nr_threads")? as u64,
            net_ns: types.find_type("struct nsproxy")?.offset_of("net_ns")? as u64,
            net_inum: types.find_type("struct net")?.offset_of("ns.inum")? as u64,
            dfl_cgrp: types.find_type("struct css_set")?.offset_of("dfl_cgrp")? as u64,
            mm: Layout::new(types, "struct mm_struct", &["arg_start", "arg_end", "pgd"], &[])?,
            boot_to_wall_ns: boot_to_wall_ns(types)?,
            cgroups: CgroupIds::new(types)?,
        })
    }

    /// Addresses of every thread-group leader's `task_struct` (`for_each_process()`).
    pub fn leaders(&self, mem: &Memory) -> Result<Vec<u64>> {
        Ok(list_nodes(mem, self.process_list, "init_task.tasks")?
            .into_iter()
            .map(|node| node - self.tasks)
            .collect())
    }

    /// Addresses of every thread-group leader that can be reached, going past a damaged
    /// link of `init_task.tasks` (noted in `skipped`; the list is then walked backwards too).
    pub fn leaders_tolerant(&self, mem: &Memory, skipped: &mut Skipped) -> Vec<u64> {
        list_nodes_tolerant(mem, self.process_list, "init_task.tasks", skipped)
            .into_iter()
            .map(|node| node - self.tasks)
            .collect()
    }

    /// Addresses of every thread of the process led by `leader`, the leader included
    /// (`for_each_thread()`: `signal->thread_head`, linked through `thread_node`).
    pub fn threads(&self, mem: &Memory, leader: u64) -> Result<Vec<u64>> {
        let bytes = self.task.read(mem, leader)?;
        let head = member_at(self.task.u64(&bytes, t::SIGNAL)?, self.thread_head, "signal")?;
        list_nodes(mem, head, "signal->thread_head")?
            .into_iter()
            .map(|node| container_at(node, self.thread_node, "signal->thread_head"))
            .collect()
    }

    /// The thread at `address`: its id, name and state.
    pub fn thread(&self, mem: &Memory, address: u64) -> Result<Thread> {
        let bytes = self.task.read(mem, address)?;
        let get = |index| self.task.u64(&bytes, index);
        let comm = self.task.field(t::COMM).map(|f| f.slice(&bytes)).transpose()?.unwrap_or_default();
        Ok(Thread {
            pid: get(t::TGID)? as i32,
            tid: get(t::PID)? as i32,
            comm: c_bytes(comm),
            state: state_letter(get(t::STATE)?, get(t::EXIT_STATE)?),
        })
    }

    /// The process at `address` as an fd table walk needs it — without the command line,
    /// namespaces and cgroup a [`TaskWalker::read`] also fetches.
    pub fn files_owner(&self, mem: &Memory, address: u64, caches: &mut TaskCaches) -> Result<FilesOwner> {
        let bytes = self.task.read(mem, address)?;
        let get = |index| self.task.u64(&bytes, index);
        let comm = self.task.field(t::COMM).map(|f| f.slice(&bytes)).transpose()?.unwrap_or_default();
        Ok(FilesOwner {
            pid: get(t::TGID)? as i32,
            comm: c_bytes(comm),
            uid: self.uid(mem, get(t::REAL_CRED)?, caches)?,
            files: get(t::FILES)?,
        })
    }

    /// Reads the task at `address`.
    pub fn read(&self, mem: &Memory, address: u64, caches: &mut TaskCaches) -> Result<Task> {
        let bytes = self.task.read(mem, address)?;
        let get = |index| self.task.u64(&bytes, index);
        let comm = self.task.field(t::COMM).map(|f| f.slice(&bytes)).transpose()?.unwrap_or_default();
        let raw_state = get(t::STATE)?;
        let mm = get(t::MM)?;
        let kernel_thread = get(t::FLAGS)? & PF_KTHREAD != 0;
        Ok(Task {
            address,
            pid: get(t::TGID)? as i32,
            ppid: self.parent_tgid(mem, get(t::REAL_PARENT)?)?,
            comm: c_bytes(comm),
            cmdline: if kernel_thread || mm == 0 { String::new() } else { self.cmdline(mem, mm) },
            uid: self.uid(mem, get(t::REAL_CRED)?, caches)?,
            state: state_letter(raw_state, get(t::EXIT_STATE)?),
            threads: mem.read_u32(member_at(get(t::SIGNAL)?, self.nr_threads, "signal")?)? as i32 as i64,
            start_time_ns: get(t::START)? as i64 + self.boot_to_wall_ns,
            netns: self.netns(mem, get(t::NSPROXY)?, caches)?,
            cgroup: self.cgroup(mem, get(t::CGROUPS)?, caches)?,
            files: get(t::FILES)?,
        })
    }

    fn parent_tgid(&self, mem: &Memory, parent: u64) -> Result<i32> {
        let tgid = self.task.field(t::TGID).map(|f| f.offset as u64).unwrap_or(0);
        Ok(mem.read_u32(member_at(parent, tgid, "real_parent")?)? as i32)
    }

    fn uid(&self, mem: &Memory, cred: u64, caches: &mut TaskCaches) -> Result<u32> {
        if let Some(&uid) = caches.uids.get(&cred) {
            return Ok(uid);
        }
        let uid = mem.read_u32(member_at(cred, self.cred_uid, "real_cred")?)?;
        caches.uids.insert(cred, uid);
        Ok(uid)
    }

    fn netns(&self, mem: &Memory, nsproxy: u64, caches: &mut TaskCaches) -> Result<Option<u64>> {
        if nsproxy == 0 {
            return Ok(None);
        }
        if let Some(&inode) = caches.netns.get(&nsproxy) {
            return Ok(inode);
        }
        let net = mem.read_u64(member_at(nsproxy, self.net_ns, "nsproxy")?)?;
        let inode = match net {
            0 => None,
            net => Some(u64::from(mem.read_u32(member_at(net, self.net_inum, "nsproxy->net_ns")?)?)),
        };
        caches.netns.insert(nsproxy, inode);
        Ok(inode)
    }

    fn cgroup(&self, mem: &Memory, css_set: u64, caches: &mut TaskCaches) -> Result<Option<String>> {
        if css_set == 0 || self.task.field(t::CGROUPS).is_none() {
            return Ok(None);
        }
        if let Some(path) = caches.cgroups.get(&css_set) {
            return Ok(path.clone());
        }
        let path = match mem.read_u64(member_at(css_set, self.dfl_cgrp, "cgroups")?)? {
            0 => None,
            cgroup => Some(self.cgroups.path(mem, cgroup)?),
        };
        caches.cgroups.insert(css_set, path.clone());
        Ok(path)
    }

    /// The command line from the process's own memory; empty if it is not resident.
    fn cmdline(&self, mem: &Memory, mm: u64) -> String {
        let read = || -> Result<String> {
            let bytes = self.mm.read(mem, mm)?;
            let (start, end, pgd) =
                (self.mm.u64(&bytes, 0)?, self.mm.u64(&bytes, 1)?, self.mm.u64(&bytes, 2)?);
            let mut args = vec![0; end.saturating_sub(start).min(MAX_CMDLINE) as usize];
            mem.read_user(pgd, start, &mut args)?;
            let words: Vec<String> = args
                .split(|&b| b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            Ok(words.join(" "))
        };
        read().unwrap_or_default()
    }
}

/// `task_state_index()`: the letter `/proc/PID/stat` shows.
fn state_letter(state: u64, exit_state: u64) -> char {
    if state == TASK_IDLE {
        return 'I';
    }
    let reported = (state | exit_state) & TASK_REPORT;
    STATE_LETTERS[(64 - reported.leading_zeros()) as usize]
}

/// Nanoseconds to add to a `CLOCK_BOOTTIME` value to get the wall clock:
/// `tk_core.timekeeper.offs_real - offs_boot` (both offsets from `CLOCK_MONOTONIC`).
fn boot_to_wall_ns(types: &Types) -> Result<i64> {
    let (tk_core, ty) = types.global("tk_core", TK_CORE)?;
    let offset = |member| Ok::<_, kql_drgn::Error>(tk_core + ty.offset_of(member)? as u64);
    let offs_real = types.program().read_u64(offset("timekeeper.offs_real")?)? as i64;
    let offs_boot = types.program().read_u64(offset("timekeeper.offs_boot")?)? as i64;
    Ok(offs_real - offs_boot)
}

/// Text of a fixed-size `char[]` up to its first NUL.
fn c_bytes(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}
