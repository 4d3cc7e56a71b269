//! Mounts read from `/proc/PID/mountinfo`, and the mount namespaces in use on the host.
//!
//! Each line is printed by the kernel's `show_mountinfo` (`fs/proc_namespace.c`) as
//!
//! ```text
//! MNT_ID PARENT_ID MAJOR:MINOR ROOT MOUNT_POINT MNT_OPTIONS [TAG[:VALUE] ...] - FSTYPE SOURCE SUPER_OPTIONS
//! ```
//!
//! - `ROOT`, `MOUNT_POINT`, `FSTYPE` and `SOURCE` escape space, tab, newline and backslash
//!   as three octal digits (`\040`, `\011`, `\012`, `\134`); [`MountRow`] holds them
//!   decoded. Other bytes are printed raw, so a path that is not UTF-8 has its invalid
//!   bytes replaced by U+FFFD;
//! - the optional fields (`shared:N`, `master:N`, `propagate_from:N`, `unbindable`) end at
//!   the ` - ` separator; they are checked but not kept;
//! - `MNT_OPTIONS` (per mount: `rw,nosuid,relatime`) and `SUPER_OPTIONS` (per superblock)
//!   stay as printed, with their escapes (a `,` or `=` inside a value is `\054`/`\075`),
//!   so that splitting them on `,` and `=` stays unambiguous;
//! - `SOURCE` is what the filesystem reports, or the `mount(2)` source, possibly empty
//!   (hence two spaces after `FSTYPE`); `none` when the kernel has no name for it.
//!
//! The mounts shown are those of the process's mount namespace that are reachable from
//! its root directory: a `chroot`ed process does not list the mounts outside its root, and
//! paths are relative to that root.
//!
//! The `procfs` crate's `MountInfo` is not used: it keeps the options as `HashMap`s, which
//! lose their order (and with it the text that `mount` and `findmnt` show).
//!
//! [`mount_namespaces`] finds the mount namespaces the way [`crate::netns`] finds network
//! namespaces, through the `/proc/PID/ns/mnt` link of every process.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt;

use crate::lines;
use crate::proc_scan::target_pids;

/// One mount, one line of `/proc/PID/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRow {
    /// Unique id of the mount (reused after unmount).
    pub mount_id: u32,
    /// Id of the parent mount; the mount's own id, or one outside the listing, for the root
    /// of the namespace (or of the reader's `chroot`).
    pub parent_id: u32,
    /// Major number of the superblock's device (`st_dev` of files on this mount).
    pub major: u32,
    /// Minor number of the superblock's device.
    pub minor: u32,
    /// Directory of the filesystem mounted here (`/` unless a bind mount of a subtree).
    pub root: String,
    /// Where the mount is, relative to the reading process's root.
    pub mount_point: String,
    /// Per-mount options as printed (`rw,nosuid,nodev,relatime`).
    pub options: String,
    /// Filesystem type, with its subtype if any (`ext4`, `fuse.sshfs`).
    pub fstype: String,
    /// Mount source (`/dev/sda1`, `tmpfs`, `none`), possibly empty.
    pub source: String,
    /// Per-superblock options as printed (`rw,size=1024k`).
    pub super_options: String,
}

/// The mounts of process `pid`'s mount namespace, from `/proc/PID/mountinfo`, in the
/// kernel's order (parents before their children).
///
/// Errors: the file cannot be read (the process exited: `NotFound`; it may not be
/// inspected: `PermissionDenied`), or a line of it is malformed (`InvalidData`); the error
/// names the file.
pub fn read_mountinfo(pid: i32) -> io::Result<Vec<MountRow>> {
    read_path(&format!("/proc/{pid}/mountinfo"))
}

/// The mounts of the calling thread's mount namespace (`/proc/thread-self/mountinfo`: a
/// thread that unshared its mount namespace sees its own, not the main thread's).
///
/// Errors: as [`read_mountinfo`].
pub fn read_own_mountinfo() -> io::Result<Vec<MountRow>> {
    read_path("/proc/thread-self/mountinfo")
}

/// Every mount namespace in use, as `(nsfs inode, pid)`: the inode is the `N` of
/// `mnt:[N]` shown by `readlink /proc/PID/ns/mnt` (what `lsns` compares) and `pid` the
/// lowest pid of a process inside it, whose [`read_mountinfo`] lists the namespace.
/// Sorted by inode. Processes that vanish or deny access are skipped.
///
/// Not seen: namespaces held alive only by an open file descriptor, a bind mount of an
/// nsfs file, or a non-leader thread that switched namespace. The pid may exit (and be
/// reused) before it is read: callers that must be sure check `/proc/PID/ns/mnt` again.
pub fn mount_namespaces() -> Vec<(u64, i32)> {
    let mut found: BTreeMap<u64, i32> = BTreeMap::new();
    // Ascending pids: the first one seen in a namespace is its lowest.
    for pid in target_pids(None) {
        // Fails for processes that exited since readdir, or that we may not inspect.
        let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        found.entry(meta.ino()).or_insert(pid);
    }
    found.into_iter().collect()
}

/// Parse the whole text of a `mountinfo` file, one mount per line.
///
/// Errors: a malformed line (`InvalidData`, naming the line number and its text).
pub fn parse_mountinfo(text: &str) -> io::Result<Vec<MountRow>> {
    parse_text(text, "mountinfo")
}

/// Read and parse the `mountinfo` file at `path`, naming it in errors.
fn read_path(path: &str) -> io::Result<Vec<MountRow>> {
    let bytes = std::fs::read(path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    parse_text(&String::from_utf8_lossy(&bytes), path)
}

/// Parse `text`, read from `path` (named in errors).
fn parse_text(text: &str, path: &str) -> io::Result<Vec<MountRow>> {
    lines::parse_each(text, path, parse_mount)
}

/// Decode one line of `mountinfo`, `None` if it is malformed.
fn parse_mount(line: &str) -> Option<MountRow> {
    // Spaces inside fields are escaped, so the first " - " is the separator.
    let (head, tail) = line.split_once(" - ")?;
    let mut fields = head.split(' ');
    let mount_id = decimal(fields.next()?)?;
    let parent_id = decimal(fields.next()?)?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let root = non_empty(fields.next()?)?;
    let mount_point = non_empty(fields.next()?)?;
    let options = non_empty(fields.next()?)?;
    if !fields.all(optional_field) {
        return None;
    }
    // The source may be empty; super options are the rest of the line.
    let mut tail = tail.splitn(3, ' ');
    let fstype = non_empty(tail.next()?)?;
    let source = tail.next()?;
    let super_options = non_empty(tail.next()?)?;
    Some(MountRow {
        mount_id,
        parent_id,
        major: decimal(major)?,
        minor: decimal(minor)?,
        root: unescape(root),
        mount_point: unescape(mount_point),
        options: options.to_owned(),
        fstype: unescape(fstype),
        source: unescape(source),
        super_options: super_options.to_owned(),
    })
}

/// `text` unless it is empty.
fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// Value of `text` read as unsigned decimal digits only (no sign), `None` otherwise.
fn decimal(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// An optional field: `TAG` or `TAG:VALUE`, a lowercase tag and a decimal value.
fn optional_field(field: &str) -> bool {
    let (tag, value) = match field.split_once(':') {
        Some((tag, value)) => (tag, Some(value)),
        None => (field, None),
    };
    !tag.is_empty()
        && tag.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        && value.is_none_or(|v| decimal(v).is_some())
}

/// `field` with its `\ooo` escapes decoded.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match octal_escape(&bytes[i..]) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            // A backslash the kernel did not write as an escape is kept as is.
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The byte written as `\ooo` at the start of `bytes`, if there is one.
fn octal_escape(bytes: &[u8]) -> Option<u8> {
    let [b'\\', digits @ ..] = bytes.get(..4)? else {
        return None;
    };
    let mut value: u32 = 0;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        value = value * 8 + u32::from(d - b'0');
    }
    u8::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::{Duration, Instant};

    /// Lines as printed by a 6.x kernel: the root with a shared peer group, a slave mount
    /// with several optional fields, a mount point and a source with escaped spaces, tab,
    /// newline and backslash, a bind mount of a subtree, an unbindable mount without
    /// optional fields' values, an empty source, and a FUSE subtype.
    const SAMPLE: &str = concat!(
        "29 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro\n",
        "30 29 0:26 / /sys rw,nosuid,nodev,noexec,relatime master:2 propagate_from:3 - sysfs sysfs rw\n",
        "31 29 0:40 / /mnt/My\\040Disk\\011x\\012y\\134z ro,relatime - vfat /dev/sdb\\0401 ro,fmask=0022\n",
        "32 29 259:2 /srv/data /data rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n",
        "33 29 0:41 / /private rw unbindable - tmpfs  rw,size=1024k\n",
        "34 29 0:42 / /home/u/remote rw,nosuid,nodev - fuse.sshfs u@host:/ rw,user_id=1000\n",
    );

    #[test]
    fn parses_sample() {
        let rows = parse_mountinfo(SAMPLE).unwrap();
        assert_eq!(
            rows[0],
            MountRow {
                mount_id: 29,
                parent_id: 1,
                major: 259,
                minor: 2,
                root: "/".into(),
                mount_point: "/".into(),
                options: "rw,relatime".into(),
                fstype: "ext4".into(),
                source: "/dev/nvme0n1p2".into(),
                super_options: "rw,errors=remount-ro".into(),
            }
        );
        let sys = &rows[1];
        assert_eq!((sys.mount_id, sys.parent_id, sys.major, sys.minor), (30, 29, 0, 26));
        assert_eq!((sys.mount_point.as_str(), sys.fstype.as_str()), ("/sys", "sysfs"));
        assert_eq!(
            (sys.options.as_str(), sys.super_options.as_str()),
            ("rw,nosuid,nodev,noexec,relatime", "rw")
        );
        let escaped = &rows[2];
        assert_eq!(escaped.mount_point, "/mnt/My Disk\tx\ny\\z");
        assert_eq!(escaped.source, "/dev/sdb 1");
        assert_eq!(escaped.super_options, "ro,fmask=0022");
        assert_eq!((rows[3].root.as_str(), rows[3].mount_point.as_str()), ("/srv/data", "/data"));
        assert_eq!((rows[4].fstype.as_str(), rows[4].source.as_str()), ("tmpfs", ""));
        assert_eq!(rows[4].super_options, "rw,size=1024k");
        assert_eq!((rows[5].fstype.as_str(), rows[5].source.as_str()), ("fuse.sshfs", "u@host:/"));
        assert_eq!(rows.iter().map(|r| r.mount_id).collect::<Vec<_>>(), [29, 30, 31, 32, 33, 34]);
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("\\134\\040"), "\\ ");
        // Not an escape: kept.
        assert_eq!(unescape("a\\9b\\04"), "a\\9b\\04");
        assert_eq!(unescape("\\400"), "\\400");
        // Bytes that are not UTF-8.
        assert_eq!(unescape("\\377x"), "\u{fffd}x");
        assert_eq!(unescape(""), "");
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let good = SAMPLE.lines().next().unwrap();
        let bad = [
            "",
            "garbage",
            "29 1 259:2 / / rw,relatime shared:1",        // no separator
            "29 1 259:2 / / rw,relatime shared:1 - ext4", // truncated after it
            "29 1 259:2 / / rw,relatime - ext4 /dev/sda", // no super options
            "x 1 259:2 / / rw - ext4 /dev/sda rw",        // mount id
            "-29 1 259:2 / / rw - ext4 /dev/sda rw",      // negative id
            "29 1 2592 / / rw - ext4 /dev/sda rw",        // device
            "29 1 259:x / / rw - ext4 /dev/sda rw",       // minor
            "29 1 259:2 / rw - ext4 /dev/sda rw",         // missing mount point
            "29 1 259:2 / / rw shared: - ext4 /dev/sda rw", // optional field value
            "29 1 259:2 / / rw Shared:1 - ext4 /dev/sda rw", // optional field tag
            "29 1 259:2 / / rw - /dev/sda rw",            // fstype missing: source empty
            "29 1 259:2 / /  rw - ext4 /dev/sda rw",      // double space
        ];
        for bad_line in bad {
            let err = parse_mountinfo(&format!("{good}\n{bad_line}\n")).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            let text = err.to_string();
            assert!(text.starts_with("mountinfo line 2: malformed: "), "{text} for {bad_line:?}");
            assert!(text.contains(&format!("{bad_line:?}")), "{text}");
        }
        assert!(parse_mountinfo("").unwrap().is_empty());
    }

    #[test]
    fn reads_this_host() {
        let own = read_own_mountinfo().expect("read_own_mountinfo");
        assert!(own.iter().any(|m| m.mount_point == "/"), "{own:?}");
        assert!(own.iter().any(|m| m.mount_point == "/proc" && m.fstype == "proc"), "{own:?}");
        let by_pid = read_mountinfo(std::process::id() as i32).expect("read_mountinfo");
        assert!(by_pid.iter().any(|m| m.mount_point == "/"), "{by_pid:?}");
        // As many rows as lines (nothing mounted meanwhile by this test).
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert_eq!(by_pid.len(), text.lines().count());

        let err = read_mountinfo(i32::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().starts_with(&format!("/proc/{}/mountinfo: ", i32::MAX)), "{err}");
    }

    fn mnt_ns(pid: impl std::fmt::Display) -> u64 {
        std::fs::metadata(format!("/proc/{pid}/ns/mnt")).unwrap().ino()
    }

    #[test]
    fn own_namespace_is_listed_with_its_lowest_pid() {
        let own = mnt_ns("self");
        let all = mount_namespaces();
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "{all:?}");
        let &(_, lowest) = all.iter().find(|(ino, _)| *ino == own).expect("own namespace listed");
        assert!(lowest <= std::process::id() as i32);
        for pid in target_pids(None) {
            if let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/ns/mnt")) {
                assert!(meta.ino() != own || pid >= lowest, "pid {pid} below {lowest}");
            }
        }
    }

    #[test]
    fn unshared_namespace_of_a_process_is_listed() {
        // Private tmpfs mounts inside the child's own mount namespace only, the second on a
        // directory whose name has a space (printed escaped, `\040`).
        let script = "mount -t tmpfs kql-outer /mnt && mkdir '/mnt/a b' && \
                      mount -t tmpfs 'kql test' '/mnt/a b' && exec sleep 30";
        let mut child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script])
            .spawn()
            .expect("spawn unshare");
        let pid = child.id() as i32;
        let host = mnt_ns("self");
        // unshare(2), mount, then exec: wait until the child's mount is there.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mounts = loop {
            let mounts = read_mountinfo(pid);
            let done = mounts.as_ref().is_ok_and(|m| m.iter().any(|m| m.source == "kql test"));
            if done || Instant::now() > deadline {
                break mounts;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let inode = mnt_ns(pid);
        let all = mount_namespaces();
        let _ = child.kill();
        let _ = child.wait();
        assert_ne!(inode, host, "child never left the host namespace");
        assert!(all.contains(&(inode, pid)), "{all:?}");
        let mounts = mounts.unwrap();
        let tmp = mounts.iter().find(|m| m.source == "kql test").expect("child's tmpfs listed");
        assert_eq!((tmp.mount_point.as_str(), tmp.fstype.as_str()), ("/mnt/a b", "tmpfs"));
        let outer = mounts.iter().find(|m| m.source == "kql-outer").expect("outer tmpfs listed");
        assert_eq!((outer.mount_point.as_str(), tmp.parent_id), ("/mnt", outer.mount_id));
        // The host namespace does not have it.
        assert!(!read_own_mountinfo().unwrap().iter().any(|m| m.source == "kql test"));
    }
}
