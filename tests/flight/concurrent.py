"""20 concurrent ADBC clients against kql serve: one runs a cross join longer than the
statement timeout, the other 19 query the test's listener and must all finish first.
Prints the join rows of that listener as JSON for the caller to compare with the CLI.
argv: URI PORT."""
import json
import sys
import threading
import time

import adbc_driver_flightsql.dbapi as flight

uri, port = sys.argv[1], int(sys.argv[2])
join = f"select local_port, inode, pid, fd from tcp_listeners join proc_fds using (inode) where local_port = {port} order by pid, fd"
finished, results, errors = {}, [], []


def quick(i):
    try:
        cur = flight.connect(uri).cursor()
        cur.execute(join)
        results.append(cur.fetch_arrow_table().to_pylist())
        finished[i] = time.monotonic()
    except Exception as e:
        errors.append(repr(e))


def long():
    try:
        cur = flight.connect(uri).cursor()
        cur.execute("select count(*) from range(100000) a, range(100000) b")
        cur.fetchall()
        errors.append("the long cross join finished within the timeout")
    except flight.Error as e:
        if "statement timeout" not in str(e):
            errors.append(f"long: {e}")
    finished["long"] = time.monotonic()


threads = [threading.Thread(target=long)]
threads[0].start()
time.sleep(0.5)
threads += [threading.Thread(target=quick, args=(i,)) for i in range(19)]
for t in threads[1:]:
    t.start()
for t in threads:
    t.join()
assert not errors, errors
assert len(results) == 19 and all(r == results[0] for r in results), results
assert all(at < finished["long"] for key, at in finished.items() if key != "long"), finished
print(json.dumps(results[0]))
