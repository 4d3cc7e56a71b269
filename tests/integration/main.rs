//! Integration tests of the `kql` binary against independent truths: `ss`, `/proc`, `ip netns`.
//!
//! Every test creates its own sockets and processes and compares only those; the machine's
//! own listeners (port 2024) and PID 1 are never touched.

mod bad_input;
mod churn;
mod cli;
mod damage;
mod damaged;
mod declared;
mod guests;
mod kernel_tables;
mod net_interfaces;
mod netns;
mod procfs_tables;
mod readme;
mod repl;
mod serve;
mod socket_tables;
mod sockets_udp_unix;
mod sources;
mod ss_nlpt;
mod support;
mod tcp_sockets;
mod writes;
