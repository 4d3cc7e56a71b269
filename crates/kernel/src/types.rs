//! The kernel's types as the walks see them, from either source: DWARF through libdrgn, or
//! BTF ([`kql_btf`]). A [`KernelType`] answers the three questions a walk asks of a struct —
//! its size, whether it has a member (kernel-version differences), and where a member lives
//! ([`Field`], by designator such as `__sk_common.skc_family`, looking through anonymous
//! structs and unions as C does) — the same way whichever source it came from.

use std::fmt;

use kql_btf::{Btf, Kind, Member, TypeId};
use kql_drgn::{Error, ErrorKind, Field, Result};

/// How deep anonymous structs and unions may nest before a designator lookup gives up.
const MAX_ANONYMOUS_DEPTH: usize = 16;

/// Where a kernel's types come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeSource {
    /// DWARF of the kernel's debug `vmlinux`, indexed by libdrgn.
    Dwarf,
    /// The BPF Type Format the kernel carries, plus kallsyms for the globals' addresses.
    Btf,
}

impl TypeSource {
    /// `dwarf` or `btf`, as `--types` takes it.
    pub fn name(self) -> &'static str {
        match self {
            TypeSource::Dwarf => "dwarf",
            TypeSource::Btf => "btf",
        }
    }
}

impl fmt::Display for TypeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TypeSource::Dwarf => "DWARF",
            TypeSource::Btf => "BTF",
        })
    }
}

/// How a walk names the type of a global when the type source cannot tell it: BTF describes
/// no variables but per-cpu ones, so the walk that reads `tcp_hashinfo` says it is a
/// `struct inet_hashinfo`.
#[derive(Debug, Clone, Copy)]
pub enum TypeName<'a> {
    /// A named type, as C writes it: `struct inet_hashinfo`.
    Named(&'a str),
    /// An anonymous struct with exactly these members, in order (`static struct { … } x`).
    AnonymousStruct(&'a [&'a str]),
}

impl fmt::Display for TypeName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeName::Named(name) => f.write_str(name),
            TypeName::AnonymousStruct(members) => write!(f, "struct {{ {}; }}", members.join("; ")),
        }
    }
}

/// A struct, union or other type of the kernel.
#[derive(Clone, Copy)]
pub struct KernelType<'k> {
    inner: Inner<'k>,
}

#[derive(Clone, Copy)]
enum Inner<'k> {
    Dwarf(kql_drgn::Type<'k>),
    Btf(&'k Btf, TypeId),
}

impl<'k> KernelType<'k> {
    pub(crate) fn dwarf(ty: kql_drgn::Type<'k>) -> Self {
        KernelType { inner: Inner::Dwarf(ty) }
    }

    pub(crate) fn btf(btf: &'k Btf, id: TypeId) -> Self {
        KernelType { inner: Inner::Btf(btf, id) }
    }

    /// `sizeof` the type.
    pub fn size(&self) -> Result<usize> {
        match self.inner {
            Inner::Dwarf(ty) => ty.size(),
            Inner::Btf(btf, id) => Ok(btf.size_of(id).map_err(btf_error)? as usize),
        }
    }

    /// Whether the struct or union has a member `name`, directly or in an anonymous member.
    pub fn has_member(&self, name: &str) -> Result<bool> {
        match self.inner {
            Inner::Dwarf(ty) => ty.has_member(name),
            Inner::Btf(btf, id) => Ok(find_member(btf, id, name, 0)?.is_some()),
        }
    }

    /// `offsetof(type, designator)` in bytes.
    pub fn offset_of(&self, designator: &str) -> Result<usize> {
        Ok(self.field(designator)?.offset)
    }

    /// Where the member at `designator` (`a.b.c`) lives, bit-fields included.
    pub fn field(&self, designator: &str) -> Result<Field> {
        match self.inner {
            Inner::Dwarf(ty) => ty.field(designator),
            Inner::Btf(btf, id) => btf_field(btf, id, designator),
        }
    }
}

/// The BTF type named as C writes it (`struct sock`, `pid_t`).
pub(crate) fn find_btf_type<'b>(btf: &'b Btf, name: &str) -> Result<KernelType<'b>> {
    let id = btf.find_named(name).ok_or_else(|| lookup(format!("BTF has no type {name}")))?;
    Ok(KernelType::btf(btf, id))
}

/// The anonymous struct whose members are exactly `members`, in order.
pub(crate) fn find_btf_anonymous_struct<'b>(btf: &'b Btf, members: &[&str]) -> Result<KernelType<'b>> {
    for &id in btf.anonymous_structs() {
        let ty = btf.type_by_id(id).map_err(btf_error)?;
        if ty.vlen() != members.len() {
            continue;
        }
        let names: Vec<&str> = ty
            .members()
            .map_err(btf_error)?
            .map(|m| m.map(|m| m.name))
            .collect::<kql_btf::Result<_>>()
            .map_err(btf_error)?;
        if names == members {
            return Ok(KernelType::btf(btf, id));
        }
    }
    Err(lookup(format!("BTF has no {}", TypeName::AnonymousStruct(members))))
}

/// The member `name` of the struct or union `id` and its bit offset, looking inside
/// anonymous members.
fn find_member<'b>(btf: &'b Btf, id: TypeId, name: &str, depth: usize) -> Result<Option<(Member<'b>, u64)>> {
    if depth > MAX_ANONYMOUS_DEPTH {
        return Err(Error::new(
            ErrorKind::BadData,
            format!("BTF type {id}: anonymous members nest too deep"),
        ));
    }
    let container = btf.resolve(id).map_err(btf_error)?;
    if !matches!(container.kind(), Kind::Struct | Kind::Union) {
        return Err(Error::new(
            ErrorKind::Type,
            format!("'{name}' is looked up in a {:?}, not a struct or union", container.kind()),
        ));
    }
    for member in container.members().map_err(btf_error)? {
        let member = member.map_err(btf_error)?;
        if member.name == name {
            let offset = u64::from(member.bit_offset);
            return Ok(Some((member, offset)));
        }
        if member.name.is_empty()
            && let Some((found, inner)) = find_member(btf, member.type_id, name, depth + 1)?
        {
            return Ok(Some((found, u64::from(member.bit_offset) + inner)));
        }
    }
    Ok(None)
}

/// [`KernelType::field`] for BTF: descends the designator, then sizes the last member; a
/// bit-field is either flagged in its struct (`kind_flag`) or, in older BTF, an integer
/// type narrower than its storage.
fn btf_field(btf: &Btf, id: TypeId, designator: &str) -> Result<Field> {
    let mut container = id;
    let mut bit_offset = 0u64;
    let mut last = None;
    for name in designator.split('.') {
        let (member, offset) = find_member(btf, container, name, 0)?.ok_or_else(|| {
            let type_name =
                btf.type_by_id(container).and_then(|t| t.name().map(str::to_string)).unwrap_or_default();
            lookup(format!("member {designator}: struct {type_name} has no member '{name}'"))
        })?;
        bit_offset += offset;
        container = member.type_id;
        last = Some(member);
    }
    let member = last.ok_or_else(|| lookup("empty member designator"))?;
    let old_style_bits = match btf.resolve(member.type_id).map_err(btf_error)? {
        ty if ty.kind() == Kind::Int => {
            let int = ty.int().map_err(btf_error)?;
            let storage = ty.size().unwrap_or(0) * 8;
            (int.bits < storage || int.offset != 0).then_some((int.offset, int.bits))
        }
        _ => None,
    };
    let (shift, width) = match (member.bitfield_size, old_style_bits) {
        (0, None) => {
            let size = btf.size_of(member.type_id).map_err(btf_error)? as usize;
            return Ok(Field { offset: (bit_offset / 8) as usize, size, bits: None });
        }
        (0, Some((extra, bits))) => (bit_offset + u64::from(extra), bits),
        (bits, _) => (bit_offset, bits),
    };
    let first_byte = shift / 8;
    let within = (shift % 8) as u32;
    let size = (u64::from(within) + u64::from(width)).div_ceil(8) as usize;
    Ok(Field { offset: first_byte as usize, size, bits: Some((within, width)) })
}

fn lookup(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Lookup, message)
}

/// A BTF decoding failure as a walk error.
pub(crate) fn btf_error(error: kql_btf::Error) -> Error {
    Error::new(ErrorKind::BadData, format!("BTF: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's kernel (6.18) is past 6.13, where `tk_core` became a `struct tk_data`:
    /// the layout the task walk names for it resolves in its BTF, bit-fields of `struct sock`
    /// too.
    #[test]
    fn this_machines_btf_resolves_what_the_walks_name() {
        let btf = Btf::parse(std::fs::read("/sys/kernel/btf/vmlinux").expect("kernel BTF")).unwrap();
        let tk_data = find_btf_type(&btf, "struct tk_data").unwrap();
        let real = tk_data.field("timekeeper.offs_real").unwrap();
        let boot = tk_data.field("timekeeper.offs_boot").unwrap();
        assert_eq!((real.size, boot.size, real.bits), (8, 8, None));
        assert!(boot.offset > real.offset);
        let sock = find_btf_type(&btf, "struct sock").unwrap();
        let v6only = sock.field("__sk_common.skc_ipv6only").unwrap();
        assert_eq!(v6only.bits.map(|(_, width)| width), Some(1), "skc_ipv6only is a 1-bit field");

        let error = sock.field("__sk_common.no_such_member").unwrap_err();
        assert!(error.kind == ErrorKind::Lookup && error.message.contains("no_such_member"), "{error}");
    }
}
