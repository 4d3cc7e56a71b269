//! `tcp_listeners`: listening TCP sockets of every network namespace on the host.
//!
//! Source on the live host: a netlink `sock_diag` dump of `TCP_LISTEN` sockets, run inside
//! each network namespace in use (entered from a helper thread; kql itself never moves).
//! Addresses are rendered as `ss` renders them. The kernel-walk source fills the same
//! columns plus those marked "kernel walk only".

use std::net::IpAddr;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, StringArray, UInt16Array, UInt32Array, UInt64Array};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use kql_engine::table::table_schema;
use kql_engine::{Column, ColumnType::*, KernelTable, ScanRequest, Scanned, TableSpec};
use kql_sources::netns::{self, NetNamespace};
use kql_sources::sock_diag::{self, TCP_LISTEN, TcpSocket};

const SPEC: TableSpec = TableSpec {
    name: "tcp_listeners",
    doc: "Listening TCP sockets (IPv4 and IPv6) of every network namespace, one row per socket.",
    columns: &[
        Column::new("netns", UInt64, "inode of the socket's network namespace").key(),
        Column::new("family", Utf8, "address family: inet or inet6"),
        Column::new("state", Utf8, "TCP state, always LISTEN"),
        Column::new("recv_q", UInt32, "connections waiting in the accept queue (ss Recv-Q)"),
        Column::new("send_q", UInt32, "accept-queue limit, the listen() backlog (ss Send-Q)"),
        Column::new(
            "local_addr",
            Utf8,
            "local address as ss prints it: 127.0.0.1, [::1], * for dual-stack ::",
        ),
        Column::new("local_port", UInt16, "local port").key(),
        Column::new("peer_addr", Utf8, "peer address as ss prints it (unspecified for a listener)"),
        Column::new("peer_port", UInt16, "peer port (0 for a listener; ss prints *)"),
        Column::new("inode", UInt64, "socket inode, as in socket:[N] of /proc/PID/fd").key(),
        Column::new("uid", UInt32, "uid of the socket's owner"),
        Column::new("v6only", Boolean, "IPV6_V6ONLY of an inet6 socket; NULL for inet").nullable(),
        Column::new("bound_dev", Utf8, "interface set with SO_BINDTODEVICE, NULL if none").nullable(),
        Column::new("cgroup_id", UInt64, "cgroup v2 id of the socket's cgroup").nullable(),
        Column::new("cookie", UInt64, "socket cookie (SO_COOKIE)").nullable(),
        Column::new("sk_addr", UInt64, "kernel address of the struct sock (kernel walk only)").nullable(),
        Column::new("reuseport", Boolean, "SO_REUSEPORT is set (kernel walk only)").nullable(),
    ],
};

/// Listening TCP sockets, one row per socket.
#[derive(Debug)]
pub struct TcpListeners;

impl KernelTable for TcpListeners {
    fn spec(&self) -> &'static TableSpec {
        &SPEC
    }

    fn source(&self) -> &'static str {
        "netlink sock_diag, in each network namespace"
    }

    fn scan(&self, request: &ScanRequest) -> Result<Scanned> {
        let wanted = request.keys.values::<u64>("netns");
        let mut rows = Vec::new();
        let mut warnings = Vec::new();
        for ns in netns::network_namespaces() {
            if wanted.as_ref().is_some_and(|w| !w.contains(&ns.inode)) {
                continue;
            }
            match dump_namespace(&ns) {
                Ok(listeners) => rows.extend(listeners),
                Err(e) => {
                    warnings.push(format!("tcp_listeners: skipped network namespace {}: {e}", ns.inode))
                }
            }
        }
        let ports = request.keys.values::<u16>("local_port");
        let inodes = request.keys.values::<u64>("inode");
        rows.retain(|row| {
            ports.as_ref().is_none_or(|p| p.contains(&row.socket.local_port))
                && inodes.as_ref().is_none_or(|i| i.contains(&row.socket.inode))
        });
        Ok(Scanned { batch: to_batch(self, &rows)?, warnings })
    }
}

/// One listener with the namespace it lives in and the name of its bound device.
struct Listener {
    netns: u64,
    socket: TcpSocket,
    bound_dev: Option<String>,
}

/// Every listener of `ns`, dumped from inside it.
fn dump_namespace(ns: &NetNamespace) -> std::io::Result<Vec<Listener>> {
    let sockets = netns::run_in(ns, || {
        let sockets = sock_diag::dump_tcp(1 << TCP_LISTEN)?;
        let named = sockets.into_iter().map(|socket| {
            let bound_dev = match socket.bound_ifindex {
                0 => None,
                index => sock_diag::interface_name(index),
            };
            (socket, bound_dev)
        });
        Ok::<_, std::io::Error>(named.collect::<Vec<_>>())
    })??;
    Ok(sockets
        .into_iter()
        .map(|(socket, bound_dev)| Listener { netns: ns.inode, socket, bound_dev })
        .collect())
}

/// An address as `ss -n` prints it: IPv6 in brackets, and `*` for the unspecified IPv6
/// address of a dual-stack socket.
fn ss_address(addr: IpAddr, v6only: bool) -> String {
    match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) if v6.is_unspecified() && !v6only => "*".to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

fn to_batch(table: &TcpListeners, rows: &[Listener]) -> Result<RecordBatch> {
    let sockets = || rows.iter().map(|r| &r.socket);
    let v6only = |s: &TcpSocket| s.v6only.unwrap_or(false);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.netns))),
        Arc::new(StringArray::from_iter_values(
            sockets().map(|s| if s.local_addr.is_ipv6() { "inet6" } else { "inet" }),
        )),
        Arc::new(StringArray::from_iter_values(sockets().map(|_| "LISTEN"))),
        Arc::new(UInt32Array::from_iter_values(sockets().map(|s| s.recv_q))),
        Arc::new(UInt32Array::from_iter_values(sockets().map(|s| s.send_q))),
        Arc::new(StringArray::from_iter_values(sockets().map(|s| ss_address(s.local_addr, v6only(s))))),
        Arc::new(UInt16Array::from_iter_values(sockets().map(|s| s.local_port))),
        Arc::new(StringArray::from_iter_values(sockets().map(|s| ss_address(s.peer_addr, v6only(s))))),
        Arc::new(UInt16Array::from_iter_values(sockets().map(|s| s.peer_port))),
        Arc::new(UInt64Array::from_iter_values(sockets().map(|s| s.inode))),
        Arc::new(UInt32Array::from_iter_values(sockets().map(|s| s.uid))),
        Arc::new(BooleanArray::from_iter(sockets().map(|s| s.v6only))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.bound_dev.as_deref()))),
        Arc::new(UInt64Array::from_iter(sockets().map(|s| s.cgroup_id))),
        Arc::new(UInt64Array::from_iter(sockets().map(|s| Some(s.cookie)))),
        Arc::new(UInt64Array::new_null(rows.len())),
        Arc::new(BooleanArray::new_null(rows.len())),
    ];
    Ok(RecordBatch::try_new(table_schema(table), columns)?)
}
