# Sourced by the benches that need many listening sockets.
# `hold_listeners N` starts N processes each holding 5,000 listeners on 127.0.0.1 (the hard
# fd limit is 20,000 per process), waits until all listen, and at exit kills them and whatever
# else the script adds to `children`.
children=()
kill_children() { for pid in "${children[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap kill_children EXIT

hold_listeners() {
  for _ in $(seq "$1"); do
    local fifo
    fifo=$(mktemp -u); mkfifo "$fifo"
    (ulimit -n 6000 && exec python3 -c '
import signal, socket, sys
held = []
for _ in range(5000):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    held.append(s)
open(sys.argv[1], "w").write("ready\n")
signal.pause()
' "$fifo") &
    children+=($!)
    read -r _ < "$fifo"; rm -f "$fifo"
  done
}
