"""Each limit of kql serve reached through ADBC: the refusal names the limit and its value.
argv: URI LIMITS, LIMITS a JSON object of timeout (s), rows, bytes and memory; the server
allows one statement at a time."""
import json
import sys
import threading

import adbc_driver_flightsql.dbapi as flight

uri, limits = sys.argv[1], json.loads(sys.argv[2])
cur = flight.connect(uri).cursor()


def refusal(sql, cursor=cur):
    """The error of running `sql` and the rows that arrived before it."""
    cursor.execute(sql)
    rows = 0
    try:
        for batch in cursor.fetch_record_batch():
            rows += batch.num_rows
    except (flight.Error, OSError) as e:  # an error in mid-stream comes through pyarrow's reader
        return str(e), rows
    raise SystemExit(f"not refused: {sql} ({rows} rows)")


def refused(sql, *words):
    error, rows = refusal(sql)
    assert all(word in error for word in words), (sql, words, error)
    return rows


rows = limits["rows"]
cur.execute(f"select * from range({rows})")
assert len(cur.fetch_arrow_table()) == rows, "a result of exactly the row limit passes"
# Batches of 8,192 rows: the first arrives, the stream ends with the refusal.
arrived = refused(f"select * from range({2 * rows})", "row limit", f"({rows}, --max-rows)")
assert 0 < arrived <= rows, arrived
width = 1000
refused(f"select repeat('x', {width}) as s from range({limits['bytes'] // width + 1})",
        "byte limit", f"({limits['bytes']} bytes, --max-bytes)")
side = limits["memory"] // 4  # 8-byte values: each side twice the memory limit
refused(f"select count(*) as n from range({side}) a join range({side}) b on a.value = b.value",
        "memory limit", f"({limits['memory']} bytes, --max-memory)")

# One statement at a time: while a cross join runs into the timeout, another is refused.
cross_join = "select count(*) as n from range(100000) a, range(100000) b"
timed_out, others = [], []


def run_long():
    """The cross join, again while it met the other client's statement holding the limit."""
    long_cur = flight.connect(uri).cursor()
    error = refusal(cross_join, long_cur)[0]
    while "--max-statements" in error:
        error = refusal(cross_join, long_cur)[0]
    timed_out.append(error)


long = threading.Thread(target=run_long)
long.start()
while long.is_alive():
    try:
        cur.execute("select 1 as one")
        cur.fetchall()
    except flight.Error as e:
        others.append(str(e))
long.join()
seconds = limits["timeout"]
assert "statement timeout" in timed_out[0] and f"({seconds:g} s, --statement-timeout)" in timed_out[0], timed_out
assert others and all("concurrent statement limit is 1 (--max-statements)" in e for e in others), others
cur.execute("select 1 as one")
assert cur.fetchall() == [(1,)], "the limit is free again"
print("ok")
