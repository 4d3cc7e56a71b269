//! Files: a task's open files and what they are.
//!
//! Structures walked: `struct files_struct` → `fdt` (`struct fdtable`: `max_fds`, the `fd`
//! array of `struct file *`, the `open_fds` bitmap); `struct file` (`f_inode`, `f_path`);
//! `struct inode` (`i_mode`, `i_ino`, `i_sb` → `s_type->name`); and for paths, `struct
//! dentry` (`d_name`, `d_parent`) and `struct mount` (`mnt`, `mnt_parent`, `mnt_mountpoint`)
//! as `d_path()` climbs them. A set `open_fds` bit whose `fd[i]` is still NULL (reserved by
//! `get_unused_fd`, not yet installed) is skipped.

use std::collections::HashMap;

use kql_drgn::{Error, ErrorKind, Result};

use crate::net::{container_at, member_at};
use crate::{Layout, Memory, Types};

/// The most fds kql believes a task can have (`fs.nr_open` is at most 2^30; real tables are
/// far smaller); a larger `max_fds` means a corrupt or changing table.
const MAX_FDS: u64 = 1 << 24;
const PAGE_SIZE: u64 = 4096;

/// One open file descriptor of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFile {
    /// The descriptor number.
    pub fd: i32,
    /// Address of the `struct file`.
    pub file: u64,
    /// `f_inode->i_ino`.
    pub inode: u64,
    /// `f_inode->i_mode`.
    pub mode: u32,
    /// What `readlink /proc/PID/fd/N` shows: `socket:[N]`, `pipe:[N]`,
    /// `anon_inode:[eventfd]`, or the path.
    pub target: String,
}

/// Offsets for fd-table walks, looked up once.
pub struct FileWalker {
    files_fdt: u64,
    fdtable: Layout,
    file: Layout,
    inode: Layout,
    sb_type: u64,
    fstype_name: u64,
    dentry: Layout,
    mount_mnt: u64,
    mnt_root: u64,
    mount: Layout,
}

/// Per-walk cache: filesystem type name per `struct super_block`.
#[derive(Default)]
pub struct FileCaches {
    fstypes: HashMap<u64, String>,
}

impl FileWalker {
    /// Looks up every offset the walk needs.
    pub fn new(types: &Types) -> Result<FileWalker> {
        Ok(FileWalker {
            files_fdt: types.find_type("struct files_struct")?.offset_of("fdt")? as u64,
            fdtable: Layout::new(types, "struct fdtable", &["max_fds", "fd", "open_fds"], &[])?,
            file: Layout::new(types, "struct file", &["f_inode", "f_path.mnt", "f_path.dentry"], &[])?,
            inode: Layout::new(types, "struct inode", &["i_mode", "i_ino", "i_sb"], &[])?,
            sb_type: types.find_type("struct super_block")?.offset_of("s_type")? as u64,
            fstype_name: types.find_type("struct file_system_type")?.offset_of("name")? as u64,
            dentry: Layout::new(types, "struct dentry", &["d_name.name", "d_parent"], &[])?,
            mount_mnt: types.find_type("struct mount")?.offset_of("mnt")? as u64,
            mnt_root: types.find_type("struct vfsmount")?.offset_of("mnt_root")? as u64,
            mount: Layout::new(types, "struct mount", &["mnt_parent", "mnt_mountpoint"], &[])?,
        })
    }

    /// The open files of the `struct files_struct` at `files` (a task's `files`), by fd.
    pub fn open_files(&self, mem: &Memory, files: u64, caches: &mut FileCaches) -> Result<Vec<OpenFile>> {
        if files == 0 {
            return Ok(Vec::new());
        }
        let fdt = mem.read_u64(member_at(files, self.files_fdt, "files")?)?;
        let table = self.fdtable.read(mem, fdt)?;
        let max_fds = self.fdtable.u64(&table, 0)? & 0xffff_ffff;
        if max_fds > MAX_FDS {
            return Err(Error::new(
                ErrorKind::BadData,
                format!("fdtable at {fdt:#x}: max_fds {max_fds} is implausible"),
            ));
        }
        let open = self.open_fds(mem, self.fdtable.u64(&table, 2)?, max_fds)?;
        let Some(&highest) = open.last() else { return Ok(Vec::new()) };
        let mut pointers = vec![0u8; (highest as usize + 1) * 8];
        mem.read(self.fdtable.u64(&table, 1)?, &mut pointers)?;
        let mut result = Vec::with_capacity(open.len());
        for fd in open {
            let at = fd as usize * 8;
            let file = u64::from_le_bytes(pointers[at..at + 8].try_into().expect("8 bytes"));
            if file != 0 {
                result.push(self.read_file(mem, fd as i32, file, caches)?);
            }
        }
        Ok(result)
    }

    /// The set bits of the `open_fds` bitmap, in increasing order.
    fn open_fds(&self, mem: &Memory, bitmap: u64, max_fds: u64) -> Result<Vec<u64>> {
        let mut words = vec![0u8; max_fds.div_ceil(64) as usize * 8];
        mem.read(bitmap, &mut words)?;
        let mut open = Vec::new();
        for (index, word) in words.chunks_exact(8).enumerate() {
            let mut bits = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            while bits != 0 {
                open.push(index as u64 * 64 + u64::from(bits.trailing_zeros()));
                bits &= bits - 1;
            }
        }
        Ok(open)
    }

    fn read_file(&self, mem: &Memory, fd: i32, file: u64, caches: &mut FileCaches) -> Result<OpenFile> {
        let bytes = self.file.read(mem, file)?;
        let (inode_address, mnt, dentry) =
            (self.file.u64(&bytes, 0)?, self.file.u64(&bytes, 1)?, self.file.u64(&bytes, 2)?);
        let inode = self.inode.read(mem, inode_address)?;
        let (mode, ino) = (self.inode.u64(&inode, 0)? as u32, self.inode.u64(&inode, 1)?);
        let fstype = self.fstype(mem, self.inode.u64(&inode, 2)?, caches)?;
        let target = match fstype.as_str() {
            "sockfs" => format!("socket:[{ino}]"),
            "pipefs" => format!("pipe:[{ino}]"),
            "anon_inodefs" => format!("anon_inode:{}", self.dentry_name(mem, dentry)?),
            _ => self.d_path(mem, mnt, dentry)?,
        };
        Ok(OpenFile { fd, file, inode: ino, mode: mode & 0xffff, target })
    }

    /// `inode->i_sb->s_type->name`, cached per super block.
    fn fstype(&self, mem: &Memory, sb: u64, caches: &mut FileCaches) -> Result<String> {
        if let Some(name) = caches.fstypes.get(&sb) {
            return Ok(name.clone());
        }
        let fstype = mem.read_u64(member_at(sb, self.sb_type, "i_sb")?)?;
        let name = read_c_string(mem, mem.read_u64(member_at(fstype, self.fstype_name, "s_type")?)?, 64)?;
        caches.fstypes.insert(sb, name.clone());
        Ok(name)
    }

    fn dentry_name(&self, mem: &Memory, dentry: u64) -> Result<String> {
        let bytes = self.dentry.read(mem, dentry)?;
        read_c_string(mem, self.dentry.u64(&bytes, 0)?, 256)
    }

    /// `d_path()`: the path of (`mnt`, `dentry`) from the root of the mount tree, climbing
    /// `d_parent` inside a mount and `mnt_mountpoint` across mounts.
    pub fn d_path(&self, mem: &Memory, vfsmount: u64, dentry: u64) -> Result<String> {
        let mut mount = container_at(vfsmount, self.mount_mnt, "f_path.mnt")?;
        let mut dentry = dentry;
        let mut names = Vec::new();
        for _ in 0..4096 {
            let root = mem.read_u64(member_at(mount, self.mount_mnt + self.mnt_root, "mnt_parent")?)?;
            if dentry == root {
                let links = self.mount.read(mem, mount)?;
                let parent = self.mount.u64(&links, 0)?;
                if parent == mount || parent == 0 {
                    break;
                }
                dentry = self.mount.u64(&links, 1)?;
                mount = parent;
                continue;
            }
            let bytes = self.dentry.read(mem, dentry)?;
            let parent = self.dentry.u64(&bytes, 1)?;
            if parent == dentry {
                break;
            }
            names.push(read_c_string(mem, self.dentry.u64(&bytes, 0)?, 256)?);
            dentry = parent;
        }
        names.reverse();
        Ok(format!("/{}", names.join("/")))
    }
}

impl FileWalker {
    /// `dentry_path_raw()`: the path of `dentry` from the root of its file system, climbing
    /// `d_parent` until a dentry that is its own parent (as mountinfo's root field shows it).
    pub fn dentry_path(&self, mem: &Memory, dentry: u64) -> Result<String> {
        let mut dentry = dentry;
        let mut names = Vec::new();
        for _ in 0..4096 {
            let bytes = self.dentry.read(mem, dentry)?;
            let parent = self.dentry.u64(&bytes, 1)?;
            if parent == dentry || parent == 0 {
                break;
            }
            names.push(read_c_string(mem, self.dentry.u64(&bytes, 0)?, 256)?);
            dentry = parent;
        }
        names.reverse();
        Ok(format!("/{}", names.join("/")))
    }
}

/// A NUL-terminated string of at most `max` bytes at `address`, read a page piece at a time
/// (never across into a page the string does not reach).
pub fn read_c_string(mem: &Memory, address: u64, max: usize) -> Result<String> {
    let mut text = Vec::new();
    let mut at = address;
    while text.len() < max {
        let to_page_end = (PAGE_SIZE - at % PAGE_SIZE) as usize;
        let mut chunk = vec![0; to_page_end.min(max - text.len()).min(64)];
        mem.read(at, &mut chunk)?;
        if let Some(end) = chunk.iter().position(|&b| b == 0) {
            text.extend_from_slice(&chunk[..end]);
            break;
        }
        at += chunk.len() as u64;
        text.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&text).into_owned())
}
