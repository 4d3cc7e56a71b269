//! `unix_sockets`: every unix-domain socket of every network namespace.
//!
//! Sources, in order of preference: a libdrgn walk of the unix hash tables (the global
//! `unix_socket_table` before 6.0, each namespace's `net->unx.table` since; all namespaces at
//! once; also fills `sk_addr`); a netlink `unix_diag` dump run inside each network namespace
//! in use (entered from a helper thread; kql itself never moves); `/proc/net/unix` read the
//! same way, which has no queues, peer, uid or cookie (NULL). Every source leaves out the
//! server side of a connection not yet accepted (it has no inode, and `unix_diag` skips it;
//! the listener's `recv_q` counts it). States and names are as `ss -x` prints them.

use std::io;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray, UInt32Array, UInt64Array};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use kql_engine::{Column, ColumnType::*, ScanRequest, Scanned, Source, SourceKind, TableSpec};
use kql_kernel::Types;
use kql_kernel::tcp::state_name;
use kql_kernel::unix::UnixWalker;
use kql_sources::netns::{self, NetNamespace};
use kql_sources::unix_socket::{UnixSocket, UnixType};
use kql_sources::{proc_net_unix, unix_diag};

use crate::host_dump;
use crate::kernel_walk;
use crate::socket_keys::{self, SocketKeys};
use crate::table::TableScan;
use crate::target::{Binding, Target};

const SPEC: TableSpec = TableSpec {
    name: "unix_sockets",
    doc: "Unix-domain sockets of every network namespace, one row per socket, as ss -xa lists them.",
    columns: &[
        Column::new("netns", UInt64, "inode of the socket's network namespace").key(),
        Column::new("type", Utf8, "str, dgr or seq: stream, datagram or seqpacket (ss Netid u_str, u_dgr, u_seq)"),
        Column::new("state", Utf8, "as ss prints it: ESTAB (connected), LISTEN, UNCONN, SYN-SENT, …"),
        Column::new(
            "recv_q",
            UInt32,
            "listener: connections waiting to be accepted; else bytes to read (dgram: the first datagram's); NULL from procfs",
        )
        .nullable(),
        Column::new(
            "send_q",
            UInt32,
            "listener: the listen() backlog; else memory of what was sent and not yet read by the peer; NULL from procfs",
        )
        .nullable(),
        Column::new("path", Utf8, "bound address: a path, or an abstract name with a leading @ (each NUL as @); NULL if unbound")
            .nullable(),
        Column::new("inode", UInt64, "socket inode, as in socket:[N] of /proc/PID/fd").key(),
        Column::new(
            "peer_inode",
            UInt64,
            "inode of the connected peer (0 while it is a connection not accepted yet); NULL when not connected, and from procfs",
        )
        .nullable(),
        Column::new("uid", UInt32, "uid of the socket's owner; NULL from procfs (and netlink before Linux 5.3)")
            .nullable(),
        Column::new(
            "cookie",
            UInt64,
            "socket cookie (SO_COOKIE); NULL until the kernel assigns one, and from procfs",
        )
        .nullable(),
        Column::new("sk_addr", UInt64, "kernel address of the struct sock (kernel walk only)").nullable(),
    ],
    sources: &[
        Source {
            kind: SourceKind::Drgn,
            doc: "libdrgn walk of the unix hash tables (unix_socket_table, or each net->unx.table since 6.0), one read per struct unix_sock",
        },
        Source { kind: SourceKind::Netlink, doc: "netlink unix_diag dump, in each network namespace" },
        Source { kind: SourceKind::Procfs, doc: "/proc/net/unix, in each network namespace" },
    ],
};

/// Unix-domain sockets, one row per socket.
#[derive(Debug)]
pub struct UnixSockets;

impl TableScan for UnixSockets {
    fn spec() -> &'static TableSpec {
        &SPEC
    }

    fn probe(types: &Types) -> kql_drgn::Result<()> {
        UnixWalker::new(types)?;
        Ok(())
    }

    fn scan(target: &Target, binding: &Binding, request: &ScanRequest) -> Result<Scanned> {
        let keys = SocketKeys::of(request);
        let mut warnings = Vec::new();
        let mut rows = socket_keys::rows_from_source(
            target,
            binding,
            &mut warnings,
            |warnings| kernel_sockets(target, binding, warnings),
            |kind, warnings| host_sockets(target, kind, &keys, warnings),
        )?;
        rows.retain(|row| keys.wants(row.netns, None, row.socket.inode));
        Ok(Scanned { batch: to_batch(&rows)?, warnings })
    }
}

/// One socket with what only the kernel walk knows.
struct Row {
    netns: u64,
    socket: UnixSocket,
    sk_addr: Option<u64>,
}

/// Every unix socket of the kernel that has an inode and can be read, from one walk of its
/// hash tables; what could not be read is named in `warnings`.
fn kernel_sockets(target: &Target, binding: &Binding, warnings: &mut Vec<String>) -> Result<Vec<Row>> {
    let sockets = kernel_walk::tolerant("unix_sockets", target, binding, warnings, |types, mem, skipped| {
        UnixWalker::new(types)?.walk(mem, skipped)
    })?;
    Ok(sockets
        .into_iter()
        .filter(|sk| sk.has_socket && sk.inode != 0)
        .map(|sk| Row {
            netns: sk.netns,
            sk_addr: Some(sk.address),
            socket: UnixSocket {
                kind: UnixType::from_number(sk.sock_type as u8),
                state: sk.state,
                inode: sk.inode,
                name: sk.path,
                peer_inode: sk.peer_inode,
                recv_q: Some(sk.recv_q),
                send_q: Some(sk.send_q),
                pending_inodes: None,
                uid: Some(sk.uid),
                vfs: None,
                cookie: sk.cookie,
                skmem: None,
            },
        })
        .collect())
}

/// The sockets of every wanted network namespace of this host, dumped from inside each.
fn host_sockets(
    target: &Target,
    kind: SourceKind,
    keys: &SocketKeys,
    warnings: &mut Vec<String>,
) -> Result<Vec<Row>> {
    let procfs = "/proc/net/unix instead, which has no queues, peer, uid or cookie (NULL)";
    let wants = |netns| keys.wants_netns(netns);
    host_dump::each_namespace("unix_sockets", target, kind, wants, procfs, warnings, dump_namespace)
}

/// Every unix socket of `ns`, read from inside it with netlink or /proc/net/unix.
fn dump_namespace(kind: SourceKind, ns: &NetNamespace) -> io::Result<Vec<Row>> {
    let sockets = netns::run_in(ns, || match kind {
        SourceKind::Procfs => proc_net_unix::read_unix(),
        _ => unix_diag::dump_unix(),
    })??;
    Ok(sockets.into_iter().map(|socket| Row { netns: ns.inode, socket, sk_addr: None }).collect())
}

/// The type as `ss` names it after `u_`.
fn type_name(kind: UnixType) -> String {
    match kind {
        UnixType::Stream => "str".to_string(),
        UnixType::Dgram => "dgr".to_string(),
        UnixType::SeqPacket => "seq".to_string(),
        UnixType::Other(number) => number.to_string(),
    }
}

fn to_batch(rows: &[Row]) -> Result<RecordBatch> {
    let sockets = || rows.iter().map(|r| &r.socket);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.netns))),
        Arc::new(StringArray::from_iter_values(sockets().map(|s| type_name(s.kind)))),
        Arc::new(StringArray::from_iter_values(sockets().map(|s| state_name(s.state)))),
        Arc::new(UInt32Array::from_iter(sockets().map(|s| s.recv_q))),
        Arc::new(UInt32Array::from_iter(sockets().map(|s| s.send_q))),
        Arc::new(StringArray::from_iter(sockets().map(|s| s.name.as_deref()))),
        Arc::new(UInt64Array::from_iter_values(sockets().map(|s| s.inode))),
        Arc::new(UInt64Array::from_iter(sockets().map(|s| s.peer_inode))),
        Arc::new(UInt32Array::from_iter(sockets().map(|s| s.uid))),
        Arc::new(UInt64Array::from_iter(sockets().map(|s| s.cookie.filter(|&c| c != 0)))),
        Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.sk_addr))),
    ];
    Ok(RecordBatch::try_new(SPEC.schema(), columns)?)
}
