//! kql inside a guest, on its own `/proc/kcore`, at 20,000 listeners: a Debian 6.1 guest (the
//! rig's `many20k` scenario, 1 GiB, TCG) with this build of kql and the kernel's debug vmlinux
//! on its read-only `/tools` share. Runs each command inside the guest, alternating, and prints
//! medians of the wall time the guest measured (the commands taking turns) and the split:
//!
//! - start: `kql --source procfs "select 1"` — the process and its SQL engine, no kernel;
//! - ready: `kql tables --types T` — plus libdrgn's attach to /proc/kcore and the types
//!   (BTF + kallsyms, or DWARF indexed from the vmlinux libdrgn's search finds);
//! - query: `kql --types T -q ss-nlpt-all` — plus both walks and the join.
//!
//! `cargo bench --bench inside_guest [-- RUNS]` (default 5). Under `cargo test` it does nothing:
//! it boots a guest for minutes.

use std::path::Path;
use std::time::Duration;

use kql_rig::guest::{BootOptions, Guest, GuestCommand, tools_dir};
use kql_rig::kernels::{self, Series};

const MEMORY_MB: u32 = 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let runs = args.iter().filter_map(|a| a.parse::<usize>().ok()).next().unwrap_or(5);
    let kernel = kernels::fetch(Series::Bookworm61).expect("fetch 6.1");
    let workload = kql_rig::binaries::workload().expect("the guest workload");
    let kql = Path::new(env!("CARGO_BIN_EXE_kql"));
    let tools = std::env::temp_dir().join(format!("kql-bench-tools-{}", std::process::id()));
    tools_dir(&tools, &[(kql, "kql"), (&kernel.vmlinux, "vmlinux")]).expect("the tools directory");
    let libraries = [kql];
    let options = BootOptions {
        tools: Some(&tools),
        libraries_for: &libraries,
        memory_mb: Some(MEMORY_MB),
        ..BootOptions::new(&kernel, "many20k", &workload)
    };
    let guest = Guest::boot(&options).expect("boot 6.1 many20k");
    let setup = "mkdir -p /usr/local/bin /usr/lib/debug/boot && ln -s /tools/kql /usr/local/bin/kql && \
                 ln -s /tools/vmlinux /usr/lib/debug/boot/vmlinux-$(uname -r)";
    assert!(guest.shell(setup).expect("setup").success());
    let listeners = run(&guest, "kql --types btf -q ss-nlpt-all --format csv").stdout.lines().count() - 1;
    assert!(listeners >= 20_000, "ss-nlpt-all lists {listeners} listeners inside the guest");
    println!(
        "inside a Debian {} guest ({MEMORY_MB} MiB, TCG), {listeners} listeners, {runs} runs each",
        kernel.release
    );
    let commands = [
        "kql --source procfs 'select 1'".to_string(),
        "kql tables --types btf".into(),
        "kql --types btf -q ss-nlpt-all".into(),
        "kql tables --types dwarf".into(),
        "kql --types dwarf -q ss-nlpt-all".into(),
    ];
    let times = medians(&guest, &commands, runs);
    println!("  start (no kernel):          {:8.0} ms", times[0]);
    for (types, ready, query) in [("btf", times[1], times[2]), ("dwarf", times[3], times[4])] {
        println!(
            "  {types:5}: whole query {query:8.0} ms = start {:.0} + attach and types {:.0} + walks and query {:.0}",
            times[0],
            ready - times[0],
            query - ready
        );
    }
    let _ = std::fs::remove_dir_all(&tools);
}

/// Runs `script` inside the guest, which must succeed.
fn run(guest: &Guest, script: &str) -> kql_rig::guest::GuestOutput {
    let command = GuestCommand::new(["/bin/sh", "-c", script]);
    let output = guest.exec(&command.timeout(Duration::from_secs(600))).expect("the agent runs it");
    assert!(output.success(), "{script}: {output:?}");
    output
}

/// Median wall time of each command inside the guest, in ms, the commands taking turns.
fn medians(guest: &Guest, commands: &[String], runs: usize) -> Vec<f64> {
    let mut times = vec![Vec::new(); commands.len()];
    for _ in 0..runs {
        for (command, times) in commands.iter().zip(&mut times) {
            times.push(run(guest, &format!("{command} >/dev/null")).wall.as_secs_f64() * 1e3);
        }
    }
    times
        .into_iter()
        .map(|mut times| {
            times.sort_by(f64::total_cmp);
            times[runs / 2]
        })
        .collect()
}
