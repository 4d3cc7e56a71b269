//! kql inside a guest, on its own `/proc/kcore`, at 20,000 listeners: a Debian 6.1 guest (the
//! rig's `many20k` scenario, 1 GiB, TCG) with this build of kql and the kernel's debug vmlinux
//! on its read-only `/tools` share. Runs each command inside the guest, alternating, and prints
//! medians of the wall time the guest measured and the split:
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

use kql_rig::guest::{BootOptions, Guest, GuestCommand};
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
    std::fs::create_dir_all(&tools).unwrap();
    for (file, name) in [(kql, "kql"), (kernel.vmlinux.as_path(), "vmlinux")] {
        if std::fs::hard_link(file, tools.join(name)).is_err() {
            std::fs::copy(file, tools.join(name)).unwrap();
        }
    }
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
    let start = median(&guest, "kql --source procfs 'select 1'", runs);
    println!("  start (no kernel):          {start:8.0} ms");
    for types in ["btf", "dwarf"] {
        let ready = median(&guest, &format!("kql tables --types {types}"), runs);
        let query = median(&guest, &format!("kql --types {types} -q ss-nlpt-all"), runs);
        println!(
            "  {types:5}: whole query {query:8.0} ms = start {start:.0} + attach and types {:.0} + walks and query {:.0}",
            ready - start,
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

/// Median wall time of `script` inside the guest, in ms.
fn median(guest: &Guest, script: &str, runs: usize) -> f64 {
    let mut times: Vec<f64> =
        (0..runs).map(|_| run(guest, &format!("{script} >/dev/null")).wall.as_secs_f64() * 1e3).collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}
