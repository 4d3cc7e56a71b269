//! Walks of kernel data structures, in the spirit of drgn's `drgn.helpers.linux`: one module
//! per subsystem, each function naming the kernel structures it reads. Memory is read through
//! a [`kql_drgn::Program`]; types and globals come through a [`Types`] view of a [`Kernel`],
//! from DWARF (libdrgn) or from BTF plus kallsyms ([`types`], [`kallsyms`]), and a walk reads
//! the same whichever it is. Nothing here knows about SQL.
//!
//! Speed rule: a struct that is visited many times (a `struct sock`, a `struct file`) is read
//! with one read of the span of the members needed, whose offsets ([`Layout`]s) are looked up
//! once per walk; globals are found by address and read the same way.
//!
//! Kernel-version differences are found by member and symbol existence, never by version.

mod budget;
pub mod cgroup;
pub mod fs;
pub mod kallsyms;
mod kernel;
mod layout;
pub mod list;
mod memory;
pub mod net;
pub mod percpu;
pub mod rbtree;
pub mod sched;
mod skipped;
mod symbol_table;
pub mod tcp;
pub mod types;
pub mod udp;
pub mod unix;
mod vmcoreinfo;
pub mod xarray;

pub use budget::{MAX_ROWS, within_row_budget};
pub use kernel::{Kernel, KernelBtf, LIVE_BTF, LIVE_KALLSYMS, Types};
pub use layout::Layout;
pub use memory::{Memory, Patches};
pub use skipped::Skipped;
pub use types::{KernelType, MemberInfo, Shape, TypeName, TypeSource};
