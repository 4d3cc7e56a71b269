//! Checks of what the user names as a target before libdrgn touches it, each failing in one
//! sentence: `--core`, `--vmlinux` and `--btf` must be regular files (a FIFO would block the
//! open forever, `/dev/zero` would be read without end), and a `--qmp` socket must greet as
//! QEMU's monitor does and answer `qmp_capabilities`, within [`QMP_TIMEOUT`] — libdrgn's own
//! QMP reads have no timeout, so a peer that never answers, or streams bytes without a
//! newline, would hang it.

use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::target::TargetOptions;

/// How long a QMP peer has to greet and to answer `qmp_capabilities`.
pub const QMP_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest QMP line read while checking (QEMU's greeting is about 150 bytes).
const MAX_QMP_LINE: usize = 64 << 10;
/// The largest `--btf` file read (a kernel's BTF is a few MiB).
const MAX_BTF_BYTES: u64 = 256 << 20;

/// Fails with one sentence if a file or socket `options` names cannot be a target.
pub fn check(options: &TargetOptions) -> Result<(), String> {
    if let Some(core) = &options.core {
        regular_file("--core", core, None)?;
    }
    if let Some(vmlinux) = &options.vmlinux {
        regular_file("--vmlinux", vmlinux, None)?;
    }
    if let Some(btf) = &options.btf {
        regular_file("--btf", btf, Some(MAX_BTF_BYTES))?;
    }
    match &options.qmp {
        Some(qmp) => check_qmp(qmp),
        None => Ok(()),
    }
}

/// `path` is a regular file of at most `max` bytes.
fn regular_file(flag: &str, path: &Path, max: Option<u64>) -> Result<(), String> {
    let name = path.display();
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        // A missing file is named by the reader of its kind, in its own words.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{flag} {name}: {e}")),
    };
    if !metadata.is_file() {
        return Err(format!("{flag} {name} is {}, not a regular file", kind_of(&metadata)));
    }
    match max {
        Some(max) if metadata.len() > max => Err(format!(
            "{flag} {name} is {} bytes, more than the {} MiB kql reads",
            metadata.len(),
            max >> 20
        )),
        _ => Ok(()),
    }
}

/// What a non-regular file is, in words.
fn kind_of(metadata: &std::fs::Metadata) -> &'static str {
    let kind = metadata.file_type();
    match () {
        _ if kind.is_dir() => "a directory",
        _ if kind.is_fifo() => "a FIFO",
        _ if kind.is_socket() => "a socket",
        _ if kind.is_char_device() => "a character device",
        _ if kind.is_block_device() => "a block device",
        _ if kind.is_file() => "a regular file",
        _ => "not a file",
    }
}

/// The socket at `path` greets as QEMU's monitor and accepts `qmp_capabilities` in time.
fn check_qmp(path: &Path) -> Result<(), String> {
    let name = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| format!("--qmp {name}: {e}"))?;
    if !metadata.file_type().is_socket() {
        return Err(format!("--qmp {name} is {}, not QEMU's QMP socket", kind_of(&metadata)));
    }
    let mut peer = QmpPeer::connect(path).map_err(|e| format!("--qmp {name}: cannot connect: {e}"))?;
    let greeting = peer.line().map_err(|e| format!("--qmp {name} did not greet as QEMU's monitor: {e}"))?;
    if !greeting.contains("\"QMP\"") {
        return Err(format!("--qmp {name} is not QEMU's monitor: its first line has no \"QMP\" greeting"));
    }
    peer.send("{\"execute\": \"qmp_capabilities\"}\n")
        .map_err(|e| format!("--qmp {name}: cannot send qmp_capabilities: {e}"))?;
    loop {
        let line = peer.line().map_err(|e| format!("--qmp {name} did not answer qmp_capabilities: {e}"))?;
        if line.contains("\"return\"") {
            return Ok(());
        }
        if line.contains("\"error\"") {
            return Err(format!("--qmp {name} refused qmp_capabilities: {}", line.trim()));
        }
    }
}

/// A QMP connection read line by line against one deadline.
struct QmpPeer {
    stream: UnixStream,
    deadline: Instant,
    pending: Vec<u8>,
}

impl QmpPeer {
    fn connect(path: &Path) -> std::io::Result<QmpPeer> {
        let stream = UnixStream::connect(path)?;
        stream.set_write_timeout(Some(QMP_TIMEOUT))?;
        Ok(QmpPeer { stream, deadline: Instant::now() + QMP_TIMEOUT, pending: Vec::new() })
    }

    fn send(&mut self, text: &str) -> std::io::Result<()> {
        self.stream.write_all(text.as_bytes())
    }

    /// The next line; the error is a phrase (timeout, closed, too long).
    fn line(&mut self) -> Result<String, String> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.pending.len() > MAX_QMP_LINE {
                return Err(format!("it sent {} bytes without a newline", self.pending.len()));
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no reply within {} s", QMP_TIMEOUT.as_secs()));
            }
            self.stream.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("it closed the connection".into()),
                Ok(got) => self.pending.extend_from_slice(&chunk[..got]),
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    return Err(format!("no reply within {} s", QMP_TIMEOUT.as_secs()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}
