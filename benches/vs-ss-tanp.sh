#!/usr/bin/env bash
# Times `kql -q ss-tanp` against `ss -tanp` with about 100,000 TCP sockets in mixed states in a
# private network namespace, alternating runs inside it, and prints both medians and their
# ratio. Each of 5 python processes (fewer than 20,000 fds each, the hard limit here)
# listens on its own 127.0.0.N and makes SOCKETS/5 sockets (18,000 fds for 20,000), of which
#   70 % established, both ends of pairs over loopback,
#   15 % half-closed pairs (FIN-WAIT-2 held by the client, CLOSE-WAIT by the server),
#   10 % pairs the client closed (orphaned FIN-WAIT-2, a time-wait socket; CLOSE-WAIT held),
#    5 % TIME-WAIT, pairs both closed (no fd).
# Time-wait sockets live 60 s, longer than setting up and the default runs take; the counts
# printed are taken after the runs.
# Usage: benches/vs-ss-tanp.sh [RUNS] [SOCKETS]   (default 11 runs, 100000 sockets; root)
set -euo pipefail
runs=${1:-11}
sockets=${2:-100000}
holders=5
cd "$(dirname "$0")/.."
cargo build --release --quiet
kql=$PWD/target/release/kql

ns=kql-bench-tanp-$$
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"

per_holder=$((sockets / holders))
for i in $(seq 1 "$holders"); do
  fifo=$(mktemp -u); mkfifo "$fifo"
  (ulimit -n 19900 && exec ip netns exec "$ns" python3 -c '
import signal, socket, sys, time
fifo, addr, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
units = total // 20          # one unit: 20 sockets of the mix below
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((addr, 0))
listener.listen(4096)
port = listener.getsockname()[1]
held = [listener]
def pair():
    client = socket.create_connection((addr, port))
    server, _ = listener.accept()
    return client, server
for _ in range(units * 7):               # 14 established sockets per unit
    held.extend(pair())
for _ in range(units * 3 // 2):          # 3 half-closed
    client, server = pair()
    client.shutdown(socket.SHUT_WR)
    held.extend((client, server))
for _ in range(units):                   # 1 orphaned FIN-WAIT-2 + 1 CLOSE-WAIT
    client, server = pair()
    client.close()
    held.append(server)
for _ in range(units):                   # 1 TIME-WAIT (the server side goes away)
    client, server = pair()
    client.close()
    server.close()
time.sleep(0.5)
open(fifo, "w").write("ready\n")
signal.pause()
' "$fifo" "127.0.0.$((i + 1))" "$per_holder") &
  pids+=($!)
  read -r _ < "$fifo"; rm -f "$fifo"
done

ip netns exec "$ns" python3 - "$runs" "$kql" <<'PY'
import collections, statistics, subprocess, sys, time
runs, kql = int(sys.argv[1]), sys.argv[2]
commands = {"ss -tanp": ["ss", "-tanp"], "kql -q ss-tanp": [kql, "-q", "ss-tanp", "--format", "csv"]}
times = {name: [] for name in commands}
for _ in range(runs):
    for name, argv in commands.items():
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times[name].append(time.perf_counter() - start)
lines = subprocess.run(["ss", "-Htan"], capture_output=True, text=True).stdout.splitlines()
states = collections.Counter(line.split()[0] for line in lines)
kql_rows = len(subprocess.run(commands["kql -q ss-tanp"], capture_output=True, text=True).stdout.splitlines()) - 1
print(f"sockets: {len(lines)} ({', '.join(f'{s} {n}' for s, n in states.most_common())}); kql rows: {kql_rows}; runs: {runs}")
medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
for name, ms in medians.items():
    print(f"{name:>16}: median {ms:.1f} ms")
print(f"ratio kql/ss: {medians['kql -q ss-tanp'] / medians['ss -tanp']:.2f}")
PY
