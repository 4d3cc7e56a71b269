//! `kql-rig`: boot a Debian kernel with debug info under QEMU by hand and poke at it.
//!
//! ```text
//! kql-rig fetch SERIES                      download and cache a kernel; print its files
//! kql-rig boot SERIES [SCENARIO]            boot it; print the QMP socket; Enter tears it down
//! kql-rig dump SERIES OUT.vmcore [SCENARIO] boot it, dump it to an ELF vmcore, tear it down
//! kql-rig vmcore SERIES [SCENARIO]          the cached vmcore of SCENARIO (dumped once)
//! ```
//! SERIES is 6.1, 6.12 or 5.10; SCENARIO is basic (default), many, many20k, idle, sockets or churn.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kql_rig::guest::{BootOptions, Guest};
use kql_rig::kernels::{self, Kernel, Series};
use kql_rig::{Result, rig_error, vmcores};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kql-rig: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[&str]) -> Result<()> {
    match args {
        ["fetch", series] => print_kernel(&fetch(series)?),
        ["boot", series, rest @ ..] if rest.len() <= 1 => boot(series, rest.first().copied()),
        ["dump", series, out, rest @ ..] if rest.len() <= 1 => {
            let kernel = fetch(series)?;
            let guest = start(&kernel, rest.first().copied())?;
            guest.dump(Path::new(out))?;
            println!("vmcore:  {out}\nvmlinux: {}", kernel.vmlinux.display());
            Ok(())
        }
        ["vmcore", series, rest @ ..] if rest.len() <= 1 => {
            let kernel = fetch(series)?;
            let vmcore = vmcores::cached(&kernel, rest.first().copied().unwrap_or("basic"), &workload()?)?;
            println!("vmcore:  {}\nvmlinux: {}", vmcore.display(), kernel.vmlinux.display());
            Ok(())
        }
        _ => Err(rig_error!(
            "usage: kql-rig fetch SERIES | boot SERIES [SCENARIO] | dump SERIES OUT [SCENARIO] | vmcore SERIES [SCENARIO]"
        )),
    }
}

fn fetch(series: &str) -> Result<Kernel> {
    let series = Series::all()
        .into_iter()
        .find(|s| s.name() == series)
        .ok_or_else(|| rig_error!("unknown kernel series {series} (6.1, 6.12 or 5.10)"))?;
    kernels::fetch(series)
}

fn print_kernel(kernel: &Kernel) -> Result<()> {
    println!("release:  {}", kernel.release);
    println!("vmlinuz:  {}", kernel.vmlinuz.display());
    println!("vmlinux:  {}", kernel.vmlinux.display());
    println!("build id: {}", kernel.build_id);
    Ok(())
}

fn start(kernel: &Kernel, scenario: Option<&str>) -> Result<Guest> {
    let workload = workload()?;
    Guest::boot(&BootOptions::new(kernel, scenario.unwrap_or("basic"), &workload))
}

fn boot(series: &str, scenario: Option<&str>) -> Result<()> {
    let kernel = fetch(series)?;
    let guest = start(&kernel, scenario)?;
    print_kernel(&kernel)?;
    println!("qmp:      {}", guest.qmp_socket().display());
    println!("share:    {} (ground truth in truth/)", guest.share().display());
    println!(
        "try:      kql --qmp {} --vmlinux {} -q ss-nlpt",
        guest.qmp_socket().display(),
        kernel.vmlinux.display()
    );
    println!("press Enter to tear the guest down");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(())
}

/// The workload binary, built next to this one.
fn workload() -> Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name("kql-rig-workload");
    match path.exists() {
        true => Ok(path),
        false => Err(rig_error!("{} is missing: cargo build -p kql-rig", path.display())),
    }
}
