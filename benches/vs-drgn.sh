#!/usr/bin/env bash
# Times `kql -q ss-nlpt-all --core VMCORE`, with the debug vmlinux's DWARF and with the BTF
# and kallsyms in the vmcore's own memory, against the same listing done with drgn's Python
# helpers (benches/ss_nlpt_drgn.py), over a vmcore of a 6.1 guest holding 5,000 listeners
# (the rig's `many` scenario), alternating runs; prints the medians, row counts and ratios.
# Usage: benches/vs-drgn.sh [RUNS]   (default 5)
# Caches, under ~/.cache/kql (or $KQL_CACHE): venv-drgn/ (pip drgn==0.3.0) and
# vmcores/<release>-many.vmcore (made once by `kql-rig vmcore 6.1 many`: needs QEMU and root).
set -euo pipefail
runs=${1:-5}
cd "$(dirname "$0")/.."
cache=${KQL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kql}

venv=$cache/venv-drgn
if ! "$venv/bin/python" -c 'import drgn, sys; sys.exit(drgn.__version__ != "0.3.0")' 2>/dev/null; then
  echo "vs-drgn: installing drgn 0.3.0 into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet drgn==0.3.0
fi

cargo build --quiet -p kql-rig
echo "vs-drgn: the cached vmcore of a 6.1 guest running the many scenario (dumped on first use)" >&2
dumped=$(./target/debug/kql-rig vmcore 6.1 many)
vmcore=$(awk '$1 == "vmcore:" { print $2 }' <<<"$dumped")
vmlinux=$(awk '$1 == "vmlinux:" { print $2 }' <<<"$dumped")

cargo build --release --quiet --bin kql
kql=$PWD/target/release/kql

"$venv/bin/python" - "$runs" "$vmcore" "$vmlinux" "$kql" <<'PY'
import statistics, subprocess, sys, time
runs, vmcore, vmlinux, kql = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
commands = {
    "drgn (python)": [sys.executable, "benches/ss_nlpt_drgn.py", "-c", vmcore, "-s", vmlinux],
    "kql (DWARF)": [kql, "-q", "ss-nlpt-all", "--core", vmcore, "--vmlinux", vmlinux, "--format", "csv"],
    "kql (BTF)": [kql, "-q", "ss-nlpt-all", "--core", vmcore, "--types", "btf", "--format", "csv"],
}

# One untimed run each: warms the page cache and gives the outputs to count.
outputs = {name: subprocess.run(argv, capture_output=True, text=True, check=True).stdout
           for name, argv in commands.items()}
rows = {name: len(out.splitlines()) - 1 for name, out in outputs.items()}  # minus the header
listen_lines = sum(" LISTEN " in line for line in outputs["drgn (python)"].splitlines())
if listen_lines < 5000:
    sys.exit(f"vs-drgn: the drgn script printed {listen_lines} listeners, expected at least 5000")
if sorted(outputs["kql (BTF)"].splitlines()) != sorted(outputs["kql (DWARF)"].splitlines()):
    sys.exit("vs-drgn: kql printed different rows with BTF and with DWARF")

times = {name: [] for name in commands}
for _ in range(runs):
    for name, argv in commands.items():
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        times[name].append(time.perf_counter() - start)
print(f"vmcore: {vmcore}, runs: {runs}")
for name in commands:
    print(f"{name:>14}: median {statistics.median(times[name]) * 1000:8.1f} ms, rows {rows[name]}")
median = {name: statistics.median(times[name]) for name in commands}
print(f"ratio drgn/kql (DWARF): {median['drgn (python)'] / median['kql (DWARF)']:.1f}")
print(f"ratio drgn/kql (BTF):   {median['drgn (python)'] / median['kql (BTF)']:.1f}")
print(f"ratio kql BTF/DWARF:    {median['kql (BTF)'] / median['kql (DWARF)']:.2f}")
PY
