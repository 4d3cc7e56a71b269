"""kql serve over ADBC Flight SQL: a query, catalog calls, a prepared statement with a
parameter, Grafana's call sequence, refusals and bad tokens. argv: URI TOKEN PORT."""
import sys

import adbc_driver_flightsql.dbapi as flight
from adbc_driver_flightsql import DatabaseOptions

uri, token, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
opts = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
if len(sys.argv) > 4:
    opts[DatabaseOptions.TLS_ROOT_CERTS.value] = open(sys.argv[4]).read()

conn = flight.connect(uri, db_kwargs=opts)
cur = conn.cursor()
cur.execute("select 1 as one")
assert cur.fetchall() == [(1,)]
cur.execute("select local_port from tcp_listeners where local_port = $1", parameters=(port,))
assert cur.fetchall() == [(port,)], "prepared statement with an int bound against UInt16"
info = conn.adbc_get_info()
assert info["vendor_name"] == "kql", info
objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
tables = {t["table_name"]: t["table_type"] for c in objects for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]}
assert tables["tcp_listeners"] == "BASE TABLE" and tables["ss_nlpt_all"] == "VIEW", tables
# Grafana: GetSqlInfo (get_info above), GetTables of BASE TABLE, GetTables with schemas, select 1.
based = conn.adbc_get_objects(depth="all", table_types_filter=["BASE TABLE"]).read_all().to_pylist()
kinds = {t["table_type"] for c in based for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]}
columns = {t["table_name"]: [col["column_name"] for col in t["table_columns"]] for c in based for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]}
assert kinds == {"BASE TABLE"} and "local_port" in columns["tcp_listeners"], (kinds, columns)
cur.execute("select 1")
assert cur.fetchall() == [(1,)]
schema = conn.adbc_get_table_schema("tcp_listeners")
assert "local_port" in schema.names
for sql in ["copy (select 1) to '/tmp/kql-serve-x.csv'", "create external table t stored as csv location '/etc/passwd'",
            "create view v as select 1", "set datafusion.execution.batch_size = 1", "drop table tcp_listeners",
            "insert into tcp_listeners select * from tcp_listeners"]:
    try:
        cur.execute(sql)
        cur.fetchall()
        raise SystemExit(f"not refused: {sql}")
    except flight.Error as e:
        assert "refused" in str(e), (sql, e)
for bad in [{DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer wrong"}, {}]:
    try:
        c = flight.connect(uri, db_kwargs={**opts, **bad} if bad else {k: v for k, v in opts.items() if "authorization" not in k})
        c.cursor().execute("select 1")
        raise SystemExit("bad token accepted")
    except flight.Error as e:
        assert "token" in str(e).lower() or "unauthenticated" in str(e).lower(), e
print("ok")
