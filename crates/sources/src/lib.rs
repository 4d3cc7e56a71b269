//! Readers of live-host kernel state, free of any SQL or Arrow concern.
//!
//! Each module owns one way of asking the running kernel something:
//! - [`proc_scan`]: parallel scans of `/proc` (processes, their open file descriptors);
//! - [`proc_threads`]: the threads of those processes;
//! - [`inet_socket`], [`unix_socket`]: what kql knows of a TCP/UDP or a unix socket;
//! - [`inet_diag`], [`unix_diag`]: netlink `NETLINK_SOCK_DIAG` dumps of them (over
//!   `sock_diag`, the netlink conversation itself);
//! - [`proc_net_inet`], [`proc_net_unix`]: the procfs view of the same sockets,
//!   `/proc/net/{tcp,udp}{,6}` and `/proc/net/unix`;
//! - [`interfaces`]: interface names, for sockets bound to a device;
//! - [`proc_modules`]: `/proc/modules`, the loaded kernel modules;
//! - [`mountinfo`]: `/proc/PID/mountinfo` mounts, and the mount namespaces in use;
//! - [`netns`]: finding the network namespaces in use and running code inside one.
//!
//! The tables in `kql-tables` turn what these return into Arrow record batches.

pub mod inet_diag;
pub mod inet_socket;
pub mod interfaces;
mod lines;
pub mod mountinfo;
pub mod netns;
pub mod proc_modules;
pub mod proc_net_inet;
pub mod proc_net_unix;
pub mod proc_scan;
pub mod proc_threads;
pub mod rtnetlink;
mod sock_diag;
pub mod unix_diag;
pub mod unix_socket;
mod wire;
