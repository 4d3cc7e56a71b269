#!/usr/bin/env bash
# 50 ADBC Flight SQL clients each running the saved query ss-nlpt-all (ROUNDS times) against
# `kql serve` with 20,000 listening sockets held by 4 processes (5,000 each); prints
# statements/s and p50/p99 latency next to the one-shot `kql -q ss-nlpt-all`.
# Usage: benches/vs-flight.sh [ROUNDS]   (default 4; KQL=path uses that binary instead of a
# release build; the ADBC venv is the tests' ~/.cache/kql/flight-venv)
set -euo pipefail
rounds=${1:-4}
cd "$(dirname "$0")/.."
if [ -z "${KQL:-}" ]; then cargo build --release --quiet -p kql; KQL=$(realpath "${CARGO_TARGET_DIR:-target}")/release/kql; fi
python=$HOME/.cache/kql/flight-venv/bin/python
[ -x "$python" ] || { python3 -m venv "${python%/bin/python}" && "${python%python}pip" install -q adbc-driver-flightsql adbc-driver-manager pyarrow; }

source benches/listeners.sh
hold_listeners 4

log=$(mktemp)
"$KQL" serve --listen 127.0.0.1:0 2> "$log" &
children+=($!)
until grep -q listening "$log"; do sleep 0.1; done
port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$log" | head -1)

"$python" - "$rounds" "$KQL" "$port" <<'PY'
import statistics, subprocess, sys, threading, time
import adbc_driver_flightsql.dbapi as flight
rounds, kql, port = int(sys.argv[1]), sys.argv[2], sys.argv[3]
one_shot = []
for _ in range(5):
    start = time.perf_counter()
    subprocess.run([kql, "-q", "ss-nlpt-all", "--format", "csv"], stdout=subprocess.DEVNULL, check=True)
    one_shot.append(time.perf_counter() - start)
latencies, rows, lock = [], [], threading.Lock()
def client():
    conn = flight.connect(f"grpc://127.0.0.1:{port}")
    cur = conn.cursor()
    for _ in range(rounds):
        start = time.perf_counter()
        cur.execute("select * from ss_nlpt_all")
        n = len(cur.fetch_arrow_table())
        with lock:
            latencies.append(time.perf_counter() - start)
            rows.append(n)
    conn.close()
threads = [threading.Thread(target=client) for _ in range(50)]
start = time.perf_counter()
for t in threads: t.start()
for t in threads: t.join()
wall = time.perf_counter() - start
latencies.sort()
p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
print(f"rows per statement: {min(rows)}..{max(rows)}, statements: {len(latencies)} by 50 clients")
print(f"Flight SQL: {len(latencies) / wall:.1f} statements/s, p50 {p(0.5):.0f} ms, p99 {p(0.99):.0f} ms")
print(f"one-shot kql -q ss-nlpt-all: median {statistics.median(one_shot) * 1000:.0f} ms")
PY
