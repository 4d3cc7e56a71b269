"""Runs one request's SQL through kql serve with ADBC and prints its rows as JSON.
argv: URI SQL."""
import json
import sys

import adbc_driver_flightsql.dbapi as flight

cur = flight.connect(sys.argv[1]).cursor()
cur.execute(sys.argv[2])
print(json.dumps(cur.fetch_arrow_table().to_pylist()))
