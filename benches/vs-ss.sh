#!/usr/bin/env bash
# Times `kql -q ss-nlpt` against `ss -nlpt` with 20,000 listening sockets held by 4 processes
# (5,000 each, on 127.0.0.1), alternating runs, and prints both medians and their ratio.
# Usage: benches/vs-ss.sh [RUNS]   (default 21; needs root for ss -p to see every process)
set -euo pipefail
runs=${1:-21}
cd "$(dirname "$0")/.."
cargo build --release --quiet
kql=$PWD/target/release/kql

source benches/listeners.sh
hold_listeners 4

python3 - "$runs" "$kql" <<'PY'
import statistics, subprocess, sys, time
runs, kql = int(sys.argv[1]), sys.argv[2]
commands = {"ss -nlpt": ["ss", "-nlpt"], "kql -q ss-nlpt": [kql, "-q", "ss-nlpt", "--format", "csv"]}
times = {name: [] for name in commands}
for _ in range(runs):
    for name, argv in commands.items():
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        times[name].append(time.perf_counter() - start)
medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
listeners = sum(1 for line in subprocess.run(["ss", "-Hnlt"], capture_output=True, text=True).stdout.splitlines())
print(f"listeners: {listeners}, runs: {runs}")
for name, ms in medians.items():
    print(f"{name:>16}: median {ms:.1f} ms")
print(f"ratio kql/ss: {medians['kql -q ss-nlpt'] / medians['ss -nlpt']:.2f}")
PY
