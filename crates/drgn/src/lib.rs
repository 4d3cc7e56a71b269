//! Safe Rust over libdrgn (through `drgn-sys`): this crate is the only place kql says `unsafe`
//! about libdrgn, and every such block states the invariant it relies on.
//!
//! A [`Program`] is one kernel being inspected — the live one (`/proc/kcore`), a vmcore, or a
//! QEMU guest read over QMP — with its debug info ([`Program::load_debug_info`]). From it come
//! [`Type`]s (with member-existence checks for kernel-version differences, and
//! [`Field`] layouts to decode a struct read in one go) and [`Object`]s (member, `->`,
//! subscript, `container_of`, cast, reads). Errors carry libdrgn's code, message and fault
//! address ([`Error`]). Following libdrgn's rule, a `Program` is `Send` but not `Sync`; its
//! objects and types borrow it and stay on its thread.

mod core_file;
mod error;
mod object;
mod program;
mod types;

pub use core_file::CoreImage;
pub use error::{Error, ErrorKind, Result};
pub use object::Object;
pub use program::{DebugInfo, Program, Target};
pub use types::{Field, Member, Type, TypeKind};
