//! Readers of live-host kernel state, free of any SQL or Arrow concern.
//!
//! Each module owns one way of asking the running kernel something:
//! - [`proc_scan`]: parallel scans of `/proc` (processes, their open file descriptors);
//! - [`proc_threads`]: the threads of those processes;
//! - [`proc_net_tcp`]: `/proc/net/tcp{,6}`, the procfs view of TCP sockets;
//! - [`proc_modules`]: `/proc/modules`, the loaded kernel modules;
//! - [`mountinfo`]: `/proc/PID/mountinfo` mounts, and the mount namespaces in use;
//! - [`sock_diag`]: netlink `NETLINK_SOCK_DIAG` dumps of TCP sockets;
//! - [`netns`]: finding the network namespaces in use and running code inside one.
//!
//! The tables in `kql-tables` turn what these return into Arrow record batches.

mod lines;
pub mod mountinfo;
pub mod netns;
pub mod proc_modules;
pub mod proc_net_tcp;
pub mod proc_scan;
pub mod proc_threads;
pub mod sock_diag;
