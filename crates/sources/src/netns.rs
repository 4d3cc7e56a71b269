//! Network namespaces in use on the host, and running code inside one of them.
//!
//! This module owns two things: finding the network namespaces that exist (through the
//! `/proc/PID/ns/net` link of every process and the `ip netns` bind mounts under
//! `/run/netns`), and [`run_in`], which executes a closure on a helper thread that has
//! joined a namespace with `setns(2)`, so the caller's own thread never changes namespace.
//! Netlink dumps such as [`crate::inet_diag::dump_inet`] look at the namespace of the thread
//! that calls them, which makes `run_in` the way to inspect another namespace.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Directory where `ip netns add NAME` bind-mounts named network namespaces.
const NETNS_RUN_DIR: &str = "/run/netns";

/// One network namespace, identified by its nsfs inode number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetNamespace {
    /// Inode number of the namespace in nsfs: the `N` in `net:[N]` shown by
    /// `readlink /proc/PID/ns/net`, and what `ip netns identify` / `lsns` compare.
    pub inode: u64,
    /// A path that opens the namespace: `/run/netns/NAME` when it has an `ip netns`
    /// name, otherwise `/proc/PID/ns/net` of one process inside it.
    path: PathBuf,
}

impl NetNamespace {
    /// Describe the namespace that `path` opens (a `/proc/PID/ns/net` link, a
    /// `/run/netns/NAME` bind mount, or any other nsfs file of a network namespace).
    /// The path is kept and reopened by [`run_in`].
    pub fn from_path(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        let inode = std::fs::metadata(&path)?.ino();
        Ok(Self { inode, path })
    }

    /// The path this namespace is opened through.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `ip netns` name (`NAME` of `/run/netns/NAME`), if the namespace was found
    /// through such a bind mount.
    pub fn name(&self) -> Option<&str> {
        let rest = self.path.strip_prefix(NETNS_RUN_DIR).ok()?;
        rest.to_str().filter(|n| !n.is_empty())
    }
}

/// Every network namespace in use: the one of each process in `/proc` (stat of
/// `/proc/PID/ns/net`; processes that vanish or deny access are skipped) plus the bind
/// mounts under `/run/netns` (`ip netns add`), deduplicated by inode and sorted by inode.
/// When a namespace has an `ip netns` name, its `/run/netns` path is the one kept.
///
/// Not seen: namespaces held alive only by an open file descriptor, a socket, or a
/// non-leader thread that switched namespace (`/proc/PID/task/TID/ns/net`).
pub fn network_namespaces() -> Vec<NetNamespace> {
    let mut found: BTreeMap<u64, PathBuf> = BTreeMap::new();

    // Named namespaces first, so their stable path wins the deduplication. A file left in
    // /run/netns without a mount on it lives on tmpfs, not nsfs: compare the device with
    // that of a known nsfs file to drop such stale entries.
    let nsfs_dev = std::fs::metadata("/proc/self/ns/net").ok().map(|m| m.dev());
    if let Ok(dir) = std::fs::read_dir(NETNS_RUN_DIR) {
        for entry in dir.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if nsfs_dev.is_some_and(|dev| dev != meta.dev()) {
                continue;
            }
            found.entry(meta.ino()).or_insert(path);
        }
    }

    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str() else { continue };
            if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
            // Fails for processes that exited since readdir, or that we may not inspect.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            found.entry(meta.ino()).or_insert(path);
        }
    }

    found.into_iter().map(|(inode, path)| NetNamespace { inode, path }).collect()
}

/// Inode of the calling process's own network namespace (`/proc/self/ns/net`).
pub fn current_netns_inode() -> io::Result<u64> {
    Ok(std::fs::metadata("/proc/self/ns/net")?.ino())
}

/// Inode of the calling *thread's* network namespace, which can differ from the process's.
fn thread_netns_inode() -> io::Result<u64> {
    Ok(std::fs::metadata("/proc/thread-self/ns/net")?.ino())
}

/// Run `f` inside `ns` and return its result.
///
/// If `ns` is the calling thread's own namespace, `f` runs directly. Otherwise `ns` is
/// opened (and checked to still be the namespace with inode `ns.inode`, since a
/// `/proc/PID` path can be reused by another process), then a fresh helper thread joins
/// it with `setns(fd, CLONE_NEWNET)`, runs `f`, and exits; the caller's thread never
/// changes namespace. Only the helper thread is inside `ns`: work that `f` hands to other
/// threads (a rayon pool, for instance) runs in those threads' namespaces.
///
/// Errors: `ns` cannot be opened, now names another namespace (`NotFound`), the thread
/// cannot be spawned, or `setns` fails (e.g. `EPERM` without `CAP_SYS_ADMIN`). A panic in
/// `f` is propagated to the caller.
pub fn run_in<T: Send>(ns: &NetNamespace, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    if thread_netns_inode()? == ns.inode {
        return Ok(f());
    }
    let file = File::open(&ns.path)?;
    let inode = file.metadata()?.ino();
    if inode != ns.inode {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} now opens network namespace {inode}, not {}", ns.path.display(), ns.inode),
        ));
    }
    let fd = OwnedFd::from(file);
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new().name("kql-netns".into()).spawn_scoped(
            scope,
            move || -> io::Result<T> {
                // SAFETY: `fd` is an open nsfs descriptor owned by this closure for the
                // whole call; setns(2) with CLONE_NEWNET only changes the network
                // namespace of the calling thread, this short-lived helper.
                let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
                drop(fd);
                Ok(f())
            },
        )?;
        match helper.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inet_diag::dump_inet;
    use crate::inet_socket::{InetProtocol, TCP_LISTEN};
    use crate::interfaces::interface_name;
    use std::net::TcpListener;
    use std::process::Command;

    /// Deletes the `ip netns` namespace when the test ends, pass or fail.
    struct NetnsGuard(String);

    impl Drop for NetnsGuard {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }

    fn ip(args: &[&str]) {
        let status = Command::new("ip").args(args).status().expect("run ip");
        assert!(status.success(), "ip {args:?} failed");
    }

    fn fd_inode(fd: &impl AsRawFd) -> u64 {
        std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap().ino()
    }

    #[test]
    fn named_namespace_roundtrip() {
        let name = format!("kqltest-{}", std::process::id());
        ip(&["netns", "add", &name]);
        let _guard = NetnsGuard(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        let ns_path = format!("{NETNS_RUN_DIR}/{name}");
        let ns_inode = std::fs::metadata(&ns_path).unwrap().ino();
        let host = current_netns_inode().unwrap();
        assert_ne!(ns_inode, host);

        let all = network_namespaces();
        assert!(all.windows(2).all(|w| w[0].inode < w[1].inode), "{all:?}");
        let ns = all
            .iter()
            .find(|n| n.inode == ns_inode)
            .unwrap_or_else(|| panic!("{ns_path} ({ns_inode}) not listed: {all:?}"));
        assert_eq!(ns.name(), Some(name.as_str()));
        assert_eq!(ns.path(), Path::new(&ns_path));
        assert!(all.iter().any(|n| n.inode == host));
        assert_eq!(NetNamespace::from_path(&ns_path).unwrap(), *ns);

        let caller = std::thread::current().id();
        let (listener, seen_inside) = run_in(ns, || {
            assert_ne!(std::thread::current().id(), caller, "runs on a helper thread");
            assert_eq!(thread_netns_inode().unwrap(), ns_inode);
            assert_eq!(interface_name(1).as_deref(), Some("lo"));
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let inode = fd_inode(&listener);
            let socks = dump_inet(InetProtocol::Tcp, 1 << TCP_LISTEN).unwrap();
            let seen = socks.iter().any(|s| {
                s.inode == inode && Some(s.local_port) == listener.local_addr().ok().map(|a| a.port())
            });
            (listener, seen)
        })
        .unwrap();
        assert!(seen_inside, "listener not in its namespace's dump");
        // The caller's thread stayed home, and the host dump does not see the listener.
        assert_eq!(thread_netns_inode().unwrap(), host);
        let inode = fd_inode(&listener);
        let host_socks = dump_inet(InetProtocol::Tcp, 1 << TCP_LISTEN).unwrap();
        assert!(!host_socks.iter().any(|s| s.inode == inode));
        drop(listener);

        // The host namespace itself: run directly on the calling thread.
        let own = all.iter().find(|n| n.inode == host).unwrap();
        assert_eq!(run_in(own, || std::thread::current().id()).unwrap(), caller);
    }

    #[test]
    fn unnamed_namespace_of_a_process_is_listed() {
        let mut child =
            Command::new("unshare").args(["--net", "sleep", "30"]).spawn().expect("spawn unshare");
        let path = format!("/proc/{}/ns/net", child.id());
        // unshare(2) then exec: wait until the child has left our namespace.
        let host = current_netns_inode().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let inode = loop {
            let inode = std::fs::metadata(&path).unwrap().ino();
            if inode != host || std::time::Instant::now() > deadline {
                break inode;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let found = network_namespaces().into_iter().find(|n| n.inode == inode);
        let inside = found.as_ref().map(|ns| run_in(ns, thread_netns_inode));
        let _ = child.kill();
        let _ = child.wait();
        assert_ne!(inode, host, "child never left the host namespace");
        let ns = found.expect("child's namespace not listed");
        assert_eq!(ns.name(), None);
        assert_eq!(inside.unwrap().unwrap().unwrap(), inode);
    }

    #[test]
    fn stale_path_is_rejected() {
        // A path whose namespace is not the recorded inode (as after PID reuse).
        let ns = NetNamespace { inode: 1, path: PathBuf::from("/proc/self/ns/net") };
        let err = run_in(&ns, || ()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let missing = NetNamespace { inode: 2, path: PathBuf::from("/run/netns/kql-no-such-namespace") };
        assert!(run_in(&missing, || ()).is_err());
    }
}
