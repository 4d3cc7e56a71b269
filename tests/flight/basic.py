"""kql serve over ADBC Flight SQL: a query, catalog calls, a prepared statement with a
parameter, Grafana's call sequence, refusals (also of a ticket forged for DoGet) and bad
tokens, answered only after the server's pause. argv: URI TOKEN PORT PAUSE_SECONDS [CA]."""
import sys
import time

import adbc_driver_flightsql.dbapi as flight
import pyarrow.flight as pf
from adbc_driver_flightsql import DatabaseOptions

uri, token, port, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
ca = open(sys.argv[5]).read() if len(sys.argv) > 5 else None
opts = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
if ca:
    opts[DatabaseOptions.TLS_ROOT_CERTS.value] = ca

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
views = conn.adbc_get_objects(depth="tables", table_types_filter=["VIEW"]).read_all().to_pylist()
views = {t["table_name"]: t["table_type"] for c in views for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]}
assert set(views.values()) == {"VIEW"} and "ss_nlpt_all" in views and "tcp_listeners" not in views, views
named = conn.adbc_get_objects(depth="tables", table_name_filter="tcp_%").read_all().to_pylist()
named = {t["table_name"] for c in named for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]}
assert "tcp_listeners" in named and all(n.startswith("tcp_") for n in named), named
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


def protobuf_bytes(field, data):
    """Field `field` of a protobuf message holding `data` (length-delimited)."""
    size, length = len(data), b""
    while True:
        length += bytes([(size & 0x7F) | (0x80 if size > 0x7F else 0)])
        size >>= 7
        if not size:
            return bytes([field << 3 | 2]) + length + data


def forged_do_get(sql):
    """DoGet of a ticket made by hand, as the server's own tickets are (the SQL text), with no
    GetFlightInfo before: the server must check the statement again here."""
    query = protobuf_bytes(1, sql.encode())
    ticket = protobuf_bytes(1, b"type.googleapis.com/arrow.flight.protocol.sql.TicketStatementQuery") + protobuf_bytes(2, query)
    client = pf.FlightClient(uri, tls_root_certs=ca.encode() if ca else None)
    call = pf.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])
    return client.do_get(pf.Ticket(ticket), call).read_all()


assert forged_do_get("select 1 as one").to_pylist() == [{"one": 1}], "a well-formed ticket runs"
for sql in ["copy (select 1) to '/tmp/kql-serve-forged.csv'", "create view v as select 1"]:
    try:
        forged_do_get(sql)
        raise SystemExit(f"not refused at DoGet: {sql}")
    except pf.FlightError as e:
        assert "refused" in str(e), (sql, e)


def timed_select_one(db_kwargs):
    """Seconds a `select 1` takes on a new connection with `db_kwargs`, and its error."""
    cur = flight.connect(uri, db_kwargs=db_kwargs).cursor()
    start = time.monotonic()
    try:
        cur.execute("select 1")
        cur.fetchall()
        return time.monotonic() - start, None
    except flight.Error as e:
        return time.monotonic() - start, e


good = min(timed_select_one(opts)[0] for _ in range(3))
assert good < pause, f"a good token is not paused: {good:.3f} s"
for bad in [{**opts, DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer wrong"},
            {k: v for k, v in opts.items() if "authorization" not in k}]:
    seconds, error = timed_select_one(bad)
    assert error is not None, "bad token accepted"
    assert "token" in str(error).lower() or "unauthenticated" in str(error).lower(), error
    assert seconds >= pause, f"a failed authentication answered after {seconds:.3f} s, before the pause"
print("ok")
