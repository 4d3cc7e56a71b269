"""Reads a big cross join from kql serve batch by batch through ADBC, holding none of it,
and prints its row count and the sum of its first column as JSON. argv: URI N."""
import json
import sys

import adbc_driver_flightsql.dbapi as flight
import pyarrow.compute as pc

uri, n = sys.argv[1], int(sys.argv[2])
cur = flight.connect(uri).cursor()
cur.execute(f"select a.value as a, b.value as b from range({n}) a, range({n}) b")
rows = total = 0
for batch in cur.fetch_record_batch():
    rows += batch.num_rows
    total += pc.sum(batch.column(0)).as_py() or 0
print(json.dumps({"rows": rows, "sum": total}))
