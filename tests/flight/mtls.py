"""kql serve with --client-ca through ADBC: a client certificate the CA signed is let in;
none, or one of another CA, is refused. argv: URI CA CERT KEY OTHER_CERT OTHER_KEY."""
import sys

import adbc_driver_flightsql.dbapi as flight
from adbc_driver_flightsql import DatabaseOptions

uri, ca, cert, key, other_cert, other_key = sys.argv[1:7]
read = lambda path: open(path).read()


def select_one(cert_and_key):
    opts = {DatabaseOptions.TLS_ROOT_CERTS.value: read(ca)}
    if cert_and_key:
        opts[DatabaseOptions.MTLS_CERT_CHAIN.value] = read(cert_and_key[0])
        opts[DatabaseOptions.MTLS_PRIVATE_KEY.value] = read(cert_and_key[1])
    cur = flight.connect(uri, db_kwargs=opts).cursor()
    cur.execute("select 1 as one")
    return cur.fetchall()


assert select_one((cert, key)) == [(1,)]
for name, client in [("no client certificate", None), ("another CA's certificate", (other_cert, other_key))]:
    try:
        select_one(client)
        raise SystemExit(f"let in with {name}")
    except flight.Error as e:
        assert "unavailable" in str(e).lower() or "handshake" in str(e).lower() or "certificate" in str(e).lower(), (name, e)
print("ok")
