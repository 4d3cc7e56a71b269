//! The guest's initramfs: busybox, the kernel modules needed for 9p shares and for
//! `dump-guest-memory` (virtio, 9p, `qemu_fw_cfg`) and `dummy` (network devices for the
//! workload's namespaces; loading it also adds `dummy0`, down, to the initial one), our
//! programs (the workload and the agent) and the host shared libraries they and any other
//! binaries named need (at their host paths), and an `/init` that loads the modules, mounts
//! the shares, and starts the agent, then the workload.
//!
//! `/init` mounts the `host0` share at `/share` uncached (the host and the guest see each
//! other's files at once) and, if the guest has a `tools` 9p device, that one read-only at
//! `/tools` with `cache=loose`: the guest's page cache keeps what it read, so a big file read
//! again (a 630 MB vmlinux: ~0.2 s warm against ~1.5 s per uncached pass) or in small pieces
//! (4 KiB reads: ~40 µs against ~90 µs uncached) costs far less.
//!
//! Modules are loaded in dependency order computed from the kernel's own `modules.dep`, so
//! the same code serves kernels whose module split differs (6.1, 6.12, 5.10). The archive is
//! written directly in the `newc` cpio format the kernel unpacks.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::kernels::Kernel;
use crate::{Result, rig_error};

/// Path of busybox-static's binary on Debian.
pub const BUSYBOX: &str = "/bin/busybox";

/// Path of the workload inside the guest.
pub const GUEST_WORKLOAD: &str = "/bin/kql-rig-workload";

/// Path of the agent inside the guest.
pub const GUEST_AGENT: &str = "/bin/kql-rig-agent";

/// Modules the guest needs (their dependencies are added from `modules.dep`).
const WANTED_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "qemu_fw_cfg", "dummy"];

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
chmod 1777 /tmp
for module in $(cat /modules/order); do
  insmod "/modules/$module" || echo "kql-rig: insmod $module failed"
done
ip link set lo up
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none host0 /share || echo "kql-rig: 9p mount failed"
if grep -qs tools /sys/bus/virtio/drivers/9pnet_virtio/*/mount_tag; then
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro tools /tools || echo "kql-rig: tools mount failed"
fi
/bin/kql-rig-agent /share/agent &
scenario=$(sed -n 's/.*kql\.scenario=\([^ ]*\).*/\1/p' /proc/cmdline)
echo "kql-rig: starting workload ${scenario:-idle}"
/bin/kql-rig-workload "${scenario:-idle}" /share &
while :; do sleep 3600; done
"#;

/// `/etc/passwd` and `/etc/group`: root and nobody (65534), so names resolve in the guest.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// Write to `out` the initramfs for `kernel` with `programs` (`(guest path, host binary)`)
/// and the shared libraries of those programs, of busybox (none when it is busybox-static;
/// Debian's plain busybox is dynamic) and of `libraries_for` (host binaries that the guest
/// will run from elsewhere, such as `/tools`), each library once, at its host path.
pub fn build(kernel: &Kernel, programs: &[(&str, &Path)], libraries_for: &[&Path], out: &Path) -> Result<()> {
    let mut archive = Cpio::default();
    for dir in ["bin", "dev", "etc", "proc", "root", "sys", "share", "tools", "tmp", "modules"] {
        archive.dir(dir);
    }
    archive.file("init", INIT.as_bytes(), 0o755);
    archive.file("etc/passwd", PASSWD.as_bytes(), 0o644);
    archive.file("etc/group", GROUP.as_bytes(), 0o644);
    archive.file("bin/busybox", &read(Path::new(BUSYBOX))?, 0o755);
    for (guest_path, binary) in programs {
        archive.file(guest_path.trim_start_matches('/'), &read(binary)?, 0o755);
    }
    let binaries = programs
        .iter()
        .map(|(_, binary)| *binary)
        .chain(libraries_for.iter().copied())
        .chain([Path::new(BUSYBOX)]);
    for library in libraries_of(binaries)? {
        archive.parents(&library);
        archive.file(library.to_str().unwrap_or_default().trim_start_matches('/'), &read(&library)?, 0o755);
    }
    let order = module_order(&kernel.modules)?;
    for module in &order {
        let name = file_name(module);
        archive.file(&format!("modules/{name}"), &read(&kernel.modules.join(module))?, 0o644);
    }
    let names: Vec<String> = order.iter().map(|m| file_name(m)).collect();
    archive.file("modules/order", names.join("\n").as_bytes(), 0o644);
    fs::write(out, archive.finish())?;
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| rig_error!("cannot read {}: {e}", path.display()))
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// The shared libraries all of `binaries` load, each once.
fn libraries_of<'a>(binaries: impl Iterator<Item = &'a Path>) -> Result<BTreeSet<PathBuf>> {
    let mut libraries = BTreeSet::new();
    for binary in binaries {
        libraries.extend(shared_libraries(binary)?);
    }
    Ok(libraries)
}

/// Absolute paths of the shared libraries `binary` loads (the dynamic loader included), per `ldd`.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd").arg(binary).output().map_err(|e| rig_error!("cannot run ldd: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("not a dynamic executable") {
        return Ok(Vec::new());
    }
    Ok(text
        .lines()
        .filter_map(|line| line.split_whitespace().find(|word| word.starts_with('/')))
        .map(PathBuf::from)
        .collect())
}

/// The module files (relative to the modules directory) to load, dependencies first.
/// Modules built into the kernel do not appear in `modules.dep` and are skipped.
pub fn module_order(modules: &Path) -> Result<Vec<String>> {
    let dep_file = modules.join("modules.dep");
    let text =
        fs::read_to_string(&dep_file).map_err(|e| rig_error!("cannot read {}: {e}", dep_file.display()))?;
    let deps: Vec<(String, Vec<String>)> = text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(module, deps)| {
            let deps = deps.split_whitespace().map(uncompressed).collect();
            (uncompressed(module), deps)
        })
        .collect();
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for wanted in WANTED_MODULES {
        let found = deps.iter().find(|(module, _)| module_name(module) == *wanted);
        if let Some((module, _)) = found {
            visit(module, &deps, &mut seen, &mut order);
        }
    }
    Ok(order)
}

fn visit(module: &str, deps: &[(String, Vec<String>)], seen: &mut BTreeSet<String>, order: &mut Vec<String>) {
    if !seen.insert(module.to_string()) {
        return;
    }
    if let Some((_, requires)) = deps.iter().find(|(m, _)| m == module) {
        for required in requires {
            visit(required, deps, seen, order);
        }
    }
    order.push(module.to_string());
}

/// `kernel/fs/9p/9p.ko.xz` → `kernel/fs/9p/9p.ko` (the rig decompresses modules on extraction).
fn uncompressed(path: &str) -> String {
    let path = path.trim();
    [".xz", ".zst", ".gz"].iter().find_map(|ext| path.strip_suffix(ext)).unwrap_or(path).to_string()
}

/// `kernel/net/9p/9pnet_virtio.ko` → `9pnet_virtio` (modprobe treats `-` and `_` alike).
fn module_name(path: &str) -> String {
    file_name(path).trim_end_matches(".ko").replace('-', "_")
}

/// A `newc` cpio archive being written in memory.
#[derive(Default)]
struct Cpio {
    bytes: Vec<u8>,
    dirs: BTreeSet<String>,
    inode: u32,
}

impl Cpio {
    fn dir(&mut self, path: &str) {
        if self.dirs.insert(path.to_string()) {
            self.entry(path, 0o040755, &[]);
        }
    }

    /// Add the parent directories of an absolute host path.
    fn parents(&mut self, path: &Path) {
        let mut prefix = PathBuf::new();
        let parents: Vec<_> = path.parent().into_iter().flat_map(Path::components).collect();
        for component in parents.into_iter().skip(1) {
            prefix.push(component);
            self.dir(prefix.to_str().unwrap_or_default());
        }
    }

    fn file(&mut self, path: &str, data: &[u8], mode: u32) {
        self.entry(path, 0o100000 | mode, data);
    }

    fn entry(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.inode += 1;
        let name_len = path.len() + 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.inode,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name_len,
            0
        );
        self.bytes.extend_from_slice(header.as_bytes());
        self.bytes.extend_from_slice(path.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_come_after_their_dependencies_and_builtins_are_skipped() {
        let dir = std::env::temp_dir().join(format!("kql-rig-deps-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("modules.dep"),
            "kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz\n\
             kernel/net/9p/9pnet.ko.xz:\n\
             kernel/fs/netfs/netfs.ko.xz:\n\
             kernel/net/9p/9pnet_virtio.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz kernel/net/9p/9pnet.ko.xz\n\
             kernel/drivers/virtio/virtio_ring.ko.xz:\n\
             kernel/drivers/firmware/qemu_fw_cfg.ko.xz:\n",
        )
        .unwrap();
        let order = module_order(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let position = |name: &str| order.iter().position(|m| m.ends_with(name)).unwrap();
        assert!(position("/9pnet.ko") < position("/9p.ko"));
        assert!(position("/netfs.ko") < position("/9p.ko"));
        assert!(position("/virtio_ring.ko") < position("/9pnet_virtio.ko"));
        assert!(order.iter().all(|m| m.ends_with(".ko")));
        assert_eq!(order.len(), 6, "virtio_pci is built in here: {order:?}");
    }

    #[test]
    fn cpio_entries_are_newc_and_aligned() {
        let mut archive = Cpio::default();
        archive.dir("bin");
        archive.file("bin/x", b"hello", 0o755);
        let bytes = archive.finish();
        assert!(bytes.starts_with(b"070701"));
        assert_eq!(bytes.len() % 4, 0);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("bin/x\0") && text.contains("hello") && text.contains("TRAILER!!!"));
    }
}
