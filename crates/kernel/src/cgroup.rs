//! Control groups: a `struct cgroup`'s id and path, from its `struct kernfs_node`
//! (`cgroup->kn`: `id`, `name`, and `parent` — `__parent` on kernels after 6.14).

use kql_drgn::Result;

use crate::net::member_at;
use crate::{Layout, Memory, Types};

/// Offsets to go from a `struct cgroup *` to its kernfs node's id, name and parent.
pub struct CgroupIds {
    kn: u64,
    node: Layout,
}

impl CgroupIds {
    /// Looks up `cgroup.kn` and `kernfs_node.{id,name,parent}`.
    pub fn new(types: &Types) -> Result<CgroupIds> {
        let kernfs_node = types.find_type("struct kernfs_node")?;
        let parent = if kernfs_node.has_member("parent")? { "parent" } else { "__parent" };
        Ok(CgroupIds {
            kn: types.find_type("struct cgroup")?.offset_of("kn")? as u64,
            node: Layout::new(types, "struct kernfs_node", &["id", "name", parent], &[])?,
        })
    }

    /// `cgroup_id(cgrp)`, i.e. `cgrp->kn->id`; `None` without a kernfs node.
    pub fn id(&self, mem: &Memory, cgroup: u64) -> Result<Option<u64>> {
        match mem.read_u64(member_at(cgroup, self.kn, "cgroup")?)? {
            0 => Ok(None),
            kn => Ok(Some(self.node.u64(&self.node.read(mem, kn)?, 0)?)),
        }
    }

    /// The cgroup's path from the root of its hierarchy, as `/proc/PID/cgroup` shows it.
    pub fn path(&self, mem: &Memory, cgroup: u64) -> Result<String> {
        self.kernfs_path(mem, mem.read_u64(member_at(cgroup, self.kn, "cgroup")?)?)
    }

    /// The path of the `struct kernfs_node` at `kn` from the root of its kernfs (a cgroup's
    /// path within its hierarchy, a sysfs node's within /sys; the root itself is `/`).
    pub fn kernfs_path(&self, mem: &Memory, kn: u64) -> Result<String> {
        let mut names = Vec::new();
        let mut kn = kn;
        while kn != 0 && names.len() < 4096 {
            let bytes = self.node.read(mem, kn)?;
            let parent = self.node.u64(&bytes, 2)?;
            if parent != 0 {
                let name = self.node.u64(&bytes, 1)?;
                names.push(crate::fs::read_c_string(mem, name, 256)?);
            }
            kn = parent;
        }
        names.reverse();
        Ok(format!("/{}", names.join("/")))
    }
}
