//! Booting a guest: `qemu-system-x86_64 -accel tcg -cpu max` with a Debian kernel, our
//! initramfs, a QMP socket, `-device vmcoreinfo`, a 9p share and optionally a read-only 9p
//! `tools` share, waiting for the workload's ready marker, running commands in it (see
//! [`exec`]), dumping it, and always tearing it down.
//!
//! A [`Guest`] owns exactly the QEMU process it started: dropping it kills that PID (never
//! anything else) and removes the run directory, so a failing test leaves no QEMU behind.
//! QEMU also gets SIGKILL if the thread that booted it dies (`PR_SET_PDEATHSIG`), so even an
//! aborted test run cannot leak a guest; keep a `Guest` on the thread that booted it.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use crate::agent_protocol::AGENT_DIR;
use crate::kernels::Kernel;
use crate::qmp::Qmp;
use crate::truth::Truth;
use crate::{Result, initramfs, rig_error};

mod exec;

pub use crate::agent_protocol::GuestCommand;
pub use exec::GuestOutput;

/// How long a guest may take to boot and set its scenario up (TCG on a busy 2-core machine).
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// Guest memory unless [`BootOptions::memory_mb`] says otherwise; the ELF vmcore is about
/// this size.
const MEMORY_MB: u32 = 320;

/// Debian packages the rig runs, by the command that proves each is installed.
const PACKAGES: &[(&str, &str)] = &[("qemu-system-x86_64", "qemu-system-x86"), ("busybox", "busybox-static")];

/// What to boot.
#[derive(Debug, Clone)]
pub struct BootOptions<'a> {
    /// The kernel (with its modules and debug vmlinux).
    pub kernel: &'a Kernel,
    /// Workload scenario: `basic`, `many`, `many20k`, `idle`, `sockets` or `churn`.
    pub scenario: &'a str,
    /// Host path of the `kql-rig-workload` binary; `kql-rig-agent` must be next to it (both are
    /// binaries of this package, built together).
    pub workload: &'a Path,
    /// A host directory the guest mounts read-only at `/tools`, page-cached (`cache=loose`: it
    /// must not change while the guest runs), for big files the guest reads, such as a vmlinux.
    pub tools: Option<&'a Path>,
    /// Host binaries whose shared libraries go into the initramfs at their host paths, so that
    /// the guest can run them (say from `/tools`) as they are.
    pub libraries_for: &'a [&'a Path],
    /// Guest memory in MiB (320 if `None`).
    pub memory_mb: Option<u32>,
}

impl<'a> BootOptions<'a> {
    /// `scenario` on `kernel` with `workload`: no tools share, no extra libraries, 320 MiB.
    pub fn new(kernel: &'a Kernel, scenario: &'a str, workload: &'a Path) -> BootOptions<'a> {
        BootOptions { kernel, scenario, workload, tools: None, libraries_for: &[], memory_mb: None }
    }
}

/// A running guest.
pub struct Guest {
    /// Locked only to poll whether QEMU exited, so [`Guest::exec`] can work from `&self`.
    qemu: Mutex<Child>,
    run_dir: PathBuf,
    kernel: Kernel,
    /// Number of the next request to the guest agent.
    next_request: AtomicU32,
}

impl Guest {
    /// Boot a guest and wait until its workload reports ready.
    pub fn boot(options: &BootOptions) -> Result<Guest> {
        ensure_packages()?;
        let agent = options.workload.with_file_name("kql-rig-agent");
        if !agent.is_file() {
            return Err(rig_error!("{} is missing: cargo build -p kql-rig", agent.display()));
        }
        let run_dir = new_run_dir()?;
        let programs =
            [(initramfs::GUEST_WORKLOAD, options.workload), (initramfs::GUEST_AGENT, agent.as_path())];
        initramfs::build(options.kernel, &programs, options.libraries_for, &run_dir.join("initramfs.cpio"))?;
        fs::create_dir_all(run_dir.join("share").join(AGENT_DIR))?;
        let qemu = qemu_command(options, &run_dir)?
            .spawn()
            .map_err(|e| rig_error!("cannot start qemu-system-x86_64: {e}"))?;
        let guest = Guest {
            qemu: Mutex::new(qemu),
            run_dir,
            kernel: options.kernel.clone(),
            next_request: AtomicU32::new(0),
        };
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
        self.qemu.lock().unwrap_or_else(PoisonError::into_inner).id()
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

    fn wait_ready(&self) -> Result<()> {
        let share = self.share();
        let started = Instant::now();
        loop {
            if share.join("ready").exists() {
                return Ok(());
            }
            if let Ok(message) = fs::read_to_string(share.join("failed")) {
                return Err(self.failure(&format!("the guest workload failed: {}", message.trim())));
            }
            if let Some(status) = self.qemu_exit()? {
                return Err(self.failure(&format!("QEMU exited ({status}) before the guest was ready")));
            }
            if started.elapsed() > BOOT_TIMEOUT {
                return Err(self.failure(&format!("the guest was not ready after {BOOT_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// How QEMU exited, if it did.
    fn qemu_exit(&self) -> Result<Option<ExitStatus>> {
        Ok(self.qemu.lock().unwrap_or_else(PoisonError::into_inner).try_wait()?)
    }

    fn failure(&self, what: &str) -> crate::Error {
        rig_error!("{} {what}; console: {}", self.kernel.release, self.console_tail())
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let qemu = self.qemu.get_mut().unwrap_or_else(PoisonError::into_inner);
        let _ = qemu.kill();
        let _ = qemu.wait();
        if std::env::var_os("KQL_RIG_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.run_dir);
        }
    }
}

fn qemu_command(options: &BootOptions, run_dir: &Path) -> Result<Command> {
    let share = run_dir.join("share");
    let stderr = fs::File::create(run_dir.join("qemu.stderr"))?;
    let memory_mb = options.memory_mb.unwrap_or(MEMORY_MB);
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", &memory_mb.to_string()])
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
        .args(options.tools.iter().flat_map(|tools| ["-virtfs".to_string(), tools_virtfs(tools)]))
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

/// The `-virtfs` of the read-only `tools` share of host directory `tools`.
fn tools_virtfs(tools: &Path) -> String {
    // QEMU reads `,,` as a comma inside an option value.
    let path = tools.display().to_string().replace(',', ",,");
    format!("local,path={path},mount_tag=tools,security_model=none,readonly=on,id=tools")
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

/// Makes `dir` a fresh tools directory (for [`BootOptions::tools`]) holding `files` under the
/// given names: hard links, or copies where the file is on another filesystem.
pub fn tools_dir(dir: &Path, files: &[(&Path, &str)]) -> Result<()> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    for (file, name) in files {
        let to = dir.join(name);
        if fs::hard_link(file, &to).is_err() {
            fs::copy(file, &to)
                .map_err(|e| rig_error!("cannot copy {} to {}: {e}", file.display(), to.display()))?;
        }
    }
    Ok(())
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
