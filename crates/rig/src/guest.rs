//! Booting a guest: `qemu-system-x86_64 -accel tcg -cpu max` with a Debian kernel, our
//! initramfs, a QMP socket, `-device vmcoreinfo` and a 9p share, waiting for the workload's
//! ready marker, dumping it, and always tearing it down.
//!
//! A [`Guest`] owns exactly the QEMU process it started: dropping it kills that PID (never
//! anything else) and removes the run directory, so a failing test leaves no QEMU behind.
//! QEMU also gets SIGKILL if the thread that booted it dies (`PR_SET_PDEATHSIG`), so even an
//! aborted test run cannot leak a guest; keep a `Guest` on the thread that booted it.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::kernels::Kernel;
use crate::qmp::Qmp;
use crate::truth::Truth;
use crate::{Result, initramfs, rig_error};

/// How long a guest may take to boot and set its scenario up (TCG on a busy 2-core machine).
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// Guest memory; the ELF vmcore is about this size.
const MEMORY_MB: u32 = 320;

/// Debian packages the rig runs, by the command that proves each is installed.
const PACKAGES: &[(&str, &str)] = &[("qemu-system-x86_64", "qemu-system-x86"), ("busybox", "busybox-static")];

/// What to boot.
#[derive(Debug, Clone)]
pub struct BootOptions<'a> {
    /// The kernel (with its modules and debug vmlinux).
    pub kernel: &'a Kernel,
    /// Workload scenario: `basic`, `many` or `idle`.
    pub scenario: &'a str,
    /// Host path of the `kql-rig-workload` binary.
    pub workload: &'a Path,
}

/// A running guest.
pub struct Guest {
    qemu: Child,
    run_dir: PathBuf,
    kernel: Kernel,
}

impl Guest {
    /// Boot a guest and wait until its workload reports ready.
    pub fn boot(options: &BootOptions) -> Result<Guest> {
        ensure_packages()?;
        let run_dir = new_run_dir()?;
        let initrd = run_dir.join("initramfs.cpio");
        initramfs::build(options.kernel, options.workload, &initrd)?;
        fs::create_dir_all(run_dir.join("share"))?;
        let qemu = qemu_command(options, &run_dir)?
            .spawn()
            .map_err(|e| rig_error!("cannot start qemu-system-x86_64: {e}"))?;
        let mut guest = Guest { qemu, run_dir, kernel: options.kernel.clone() };
        guest.wait_ready()?;
        Ok(guest)
    }

    /// Path of the guest's QMP socket (what `kql --qmp` takes).
    pub fn qmp_socket(&self) -> PathBuf {
        self.run_dir.join("qmp.sock")
    }

    /// The directory shared with the guest over 9p.
    pub fn share(&self) -> PathBuf {
        self.run_dir.join("share")
    }

    /// The kernel the guest runs.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// PID of the QEMU process.
    pub fn qemu_pid(&self) -> u32 {
        self.qemu.id()
    }

    /// The ground truth the guest wrote about itself.
    pub fn truth(&self) -> Result<Truth> {
        Truth::load(&self.share())
    }

    /// Dump the running guest's memory to `path` as an ELF vmcore.
    pub fn dump(&self, path: &Path) -> Result<()> {
        Qmp::connect(&self.qmp_socket())?.dump_guest_memory(path)
    }

    /// The last lines QEMU's serial console printed, for error messages.
    pub fn console_tail(&self) -> String {
        console_tail(&self.run_dir)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let share = self.share();
        let started = Instant::now();
        loop {
            if share.join("ready").exists() {
                return Ok(());
            }
            if let Ok(message) = fs::read_to_string(share.join("failed")) {
                return Err(self.failure(&format!("the guest workload failed: {}", message.trim())));
            }
            if let Some(status) = self.qemu.try_wait()? {
                return Err(self.failure(&format!("QEMU exited ({status}) before the guest was ready")));
            }
            if started.elapsed() > BOOT_TIMEOUT {
                return Err(self.failure(&format!("the guest was not ready after {BOOT_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn failure(&self, what: &str) -> crate::Error {
        rig_error!("{} {what}; console: {}", self.kernel.release, self.console_tail())
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        if std::env::var_os("KQL_RIG_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.run_dir);
        }
    }
}

fn qemu_command(options: &BootOptions, run_dir: &Path) -> Result<Command> {
    let share = run_dir.join("share");
    let stderr = fs::File::create(run_dir.join("qemu.stderr"))?;
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", &MEMORY_MB.to_string()])
        .args(["-nodefaults", "-display", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(&options.kernel.vmlinuz)
        .arg("-initrd")
        .arg(run_dir.join("initramfs.cpio"))
        .args(["-append", &format!("console=ttyS0 panic=-1 quiet kql.scenario={}", options.scenario)])
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", run_dir.join("qmp.sock").display()))
        .args(["-device", "vmcoreinfo"])
        .arg("-virtfs")
        .arg(format!("local,path={},mount_tag=host0,security_model=none,id=share", share.display()))
        .arg("-serial")
        .arg(format!("file:{}", run_dir.join("console.log").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    // SAFETY: prctl(2) is async-signal-safe; it only sets this child's parent-death signal.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    Ok(command)
}

fn console_tail(run_dir: &Path) -> String {
    let console = fs::read_to_string(run_dir.join("console.log")).unwrap_or_default();
    let stderr = fs::read_to_string(run_dir.join("qemu.stderr")).unwrap_or_default();
    let lines: Vec<&str> = console.lines().chain(stderr.lines()).collect();
    lines[lines.len().saturating_sub(8)..].join(" | ")
}

/// A fresh directory for one guest's files (initramfs, sockets, share, console log).
fn new_run_dir() -> Result<PathBuf> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("kql-rig-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let dir = std::env::temp_dir().join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Install QEMU and busybox-static with apt if they are missing (tried once per process).
pub fn ensure_packages() -> Result<()> {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let missing = missing_packages();
        if !missing.is_empty() {
            apt_install(&missing);
        }
    });
    let missing = missing_packages();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(rig_error!("missing packages {} and apt-get could not install them", missing.join(" "))),
    }
}

fn missing_packages() -> Vec<&'static str> {
    PACKAGES.iter().filter(|(tool, _)| !on_path(tool)).map(|&(_, package)| package).collect()
}

/// `apt-get install`, refreshing the package lists first if the plain install fails.
fn apt_install(packages: &[&str]) -> bool {
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=300", "-y", "-qq"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|status| status.success())
    };
    let install = [&["install"][..], packages].concat();
    apt(&install) || (apt(&["update"]) && apt(&install))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}
