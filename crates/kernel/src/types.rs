//! The kernel's types as the walks see them, from either source: DWARF through libdrgn, or
//! BTF ([`kql_btf`]). A [`KernelType`] answers the three questions a walk asks of a struct —
//! its size, whether it has a member (kernel-version differences), and where a member lives
//! ([`Field`], by designator such as `__sk_common.skc_family`, looking through anonymous
//! structs and unions as C does) — the same way whichever source it came from.
//!
//! For code that binds member paths at run time it also describes a type fully, again the
//! same way from either source: what it is ([`Shape`]), its C name, its members
//! ([`MemberInfo`], bit-fields included) and its enumerators. One difference between the
//! sources is smoothed over: BTF writes `x[0]` and `x[]` alike, so both are an array of
//! unknown length, named `[]`.

use std::fmt;

use kql_btf::{Btf, Kind, Member, TypeId};
use kql_drgn::{Error, ErrorKind, Field, Result, TypeKind};

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

impl fmt::Debug for KernelType<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KernelType({})", self.name())
    }
}

/// What a type is, typedefs and cv-qualifiers peeled off.
#[derive(Debug, Clone, Copy)]
pub enum Shape<'k> {
    /// A struct (complete or not).
    Struct,
    /// A union (complete or not).
    Union,
    /// A pointer, to this type; `void *` points to a type whose shape is [`Shape::Void`].
    Pointer(KernelType<'k>),
    /// An array of `length` elements; `None` for a flexible or zero-length one (`x[]`, `x[0]`).
    Array { element: KernelType<'k>, length: Option<u64> },
    /// An integer of `size` bytes; `char` if the C type is `char`, `signed char` or
    /// `unsigned char` (text).
    Int { size: usize, signed: bool, char: bool },
    /// `_Bool`.
    Bool,
    /// An enum, stored as an integer of `size` bytes.
    Enum { size: usize, signed: bool },
    /// A floating-point number of `size` bytes.
    Float { size: usize },
    /// A function.
    Function,
    /// `void`.
    Void,
}

/// One member of a struct or union.
#[derive(Debug, Clone)]
pub struct MemberInfo<'k> {
    /// Its name.
    pub name: String,
    /// Its type, as declared (typedef names kept).
    pub ty: KernelType<'k>,
    /// Offset of its first bit from the start of the type it was looked up in.
    pub bit_offset: u64,
    /// Its width if it is a bit-field.
    pub bit_size: Option<u32>,
}

/// A member as its struct or union lists it: the name ("" if anonymous) and bit offset are
/// read at once, the type only when needed.
struct ListedMember<'k> {
    name: String,
    bit_offset: u64,
    source: ListedSource<'k>,
}

enum ListedSource<'k> {
    Dwarf(kql_drgn::Member<'k>),
    Btf(&'k Btf, Member<'k>),
}

impl<'k> ListedMember<'k> {
    /// The member with its type, offset from the start of the struct or union listing it.
    fn info(self) -> Result<MemberInfo<'k>> {
        let (ty, extra, bit_size) = match self.source {
            ListedSource::Dwarf(member) => {
                let (ty, bits) = member.type_()?;
                (KernelType::dwarf(ty), 0, bits)
            }
            ListedSource::Btf(btf, member) => {
                let (extra, bits) = btf_bits(btf, &member)?;
                (KernelType::btf(btf, member.type_id), extra, bits)
            }
        };
        Ok(MemberInfo { name: self.name, ty, bit_offset: self.bit_offset + extra, bit_size })
    }
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

    /// What the type is, typedefs and qualifiers peeled off.
    pub fn shape(&self) -> Result<Shape<'k>> {
        match self.inner {
            Inner::Dwarf(ty) => dwarf_shape(ty),
            Inner::Btf(btf, id) => btf_shape(btf, id),
        }
    }

    /// The type as C writes it: `struct sock`, `unsigned int`, `struct list_head *`,
    /// `char [16]`, `u32` (typedef names kept; [`KernelType::shape`] looks through them).
    pub fn name(&self) -> String {
        let name = match self.inner {
            Inner::Dwarf(ty) => ty.name().map(|name| name.replace("[0]", "[]")),
            Inner::Btf(btf, id) => btf.type_name(id).map_err(btf_error),
        };
        name.unwrap_or_else(|e| format!("<type without a name: {}>", e.message))
    }

    /// The member `name`, looking through anonymous struct and union members (its offset
    /// is then from the start of this type). `Ok(None)` if there is none; an error if this
    /// is not a struct or union.
    pub fn member(&self, name: &str) -> Result<Option<MemberInfo<'k>>> {
        self.find_listed(name, 0)
    }

    /// Every member name reachable as `x.name`, anonymous members flattened, in order.
    pub fn member_names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        self.collect_names(&mut names, 0)?;
        Ok(names)
    }

    /// The enumerators of an enum type (name, value), in declaration order.
    pub fn enumerators(&self) -> Result<Vec<(String, i64)>> {
        let not_enum = || Error::new(ErrorKind::Type, format!("{} is not an enum", self.name()));
        match self.inner {
            Inner::Dwarf(ty) => {
                ty.enumerators().map_err(|e| if e.kind == ErrorKind::Type { not_enum() } else { e })
            }
            Inner::Btf(btf, id) => {
                let ty = btf.resolve(id).map_err(btf_error)?;
                if !matches!(ty.kind(), Kind::Enum | Kind::Enum64) {
                    return Err(not_enum());
                }
                let enumerators = ty.enumerators().map_err(btf_error)?;
                Ok(enumerators.into_iter().map(|e| (e.name.to_string(), e.value)).collect())
            }
        }
    }

    /// The members of a struct or union as it lists them; none if it is only declared.
    fn listed_members(&self) -> Result<Vec<ListedMember<'k>>> {
        let not_compound =
            || Error::new(ErrorKind::Type, format!("{} is not a struct or union", self.name()));
        match self.inner {
            Inner::Dwarf(ty) => {
                let members = ty.members().map_err(|_| not_compound())?;
                let listed = members.into_iter().map(|member| ListedMember {
                    name: member.name().to_string(),
                    bit_offset: member.bit_offset(),
                    source: ListedSource::Dwarf(member),
                });
                Ok(listed.collect())
            }
            Inner::Btf(btf, id) => {
                let ty = btf.resolve(id).map_err(btf_error)?;
                match ty.kind() {
                    Kind::Struct | Kind::Union => {}
                    Kind::Fwd => return Ok(Vec::new()),
                    _ => return Err(not_compound()),
                }
                let members = ty.members().map_err(btf_error)?;
                members
                    .map(|member| {
                        let member = member.map_err(btf_error)?;
                        Ok(ListedMember {
                            name: member.name.to_string(),
                            bit_offset: u64::from(member.bit_offset),
                            source: ListedSource::Btf(btf, member),
                        })
                    })
                    .collect()
            }
        }
    }

    /// [`KernelType::member`], `depth` anonymous members down.
    fn find_listed(&self, name: &str, depth: usize) -> Result<Option<MemberInfo<'k>>> {
        check_depth(depth, self)?;
        for member in self.listed_members()? {
            if member.name == name {
                return member.info().map(Some);
            }
            if let Some(anonymous) = anonymous_compound(member)?
                && let Some(found) = anonymous.ty.find_listed(name, depth + 1)?
            {
                return Ok(Some(MemberInfo { bit_offset: anonymous.bit_offset + found.bit_offset, ..found }));
            }
        }
        Ok(None)
    }

    /// [`KernelType::member_names`], `depth` anonymous members down.
    fn collect_names(&self, names: &mut Vec<String>, depth: usize) -> Result<()> {
        check_depth(depth, self)?;
        for member in self.listed_members()? {
            if !member.name.is_empty() {
                names.push(member.name);
            } else if let Some(anonymous) = anonymous_compound(member)? {
                anonymous.ty.collect_names(names, depth + 1)?;
            }
        }
        Ok(())
    }
}

/// An anonymous struct or union member, to look inside; `None` for a named member (or an
/// unnamed one of another type, such as padding).
fn anonymous_compound(member: ListedMember<'_>) -> Result<Option<MemberInfo<'_>>> {
    if !member.name.is_empty() {
        return Ok(None);
    }
    let info = member.info()?;
    Ok(matches!(info.ty.shape()?, Shape::Struct | Shape::Union).then_some(info))
}

/// An error once anonymous members of `ty` nest deeper than [`MAX_ANONYMOUS_DEPTH`].
fn check_depth(depth: usize, ty: &KernelType) -> Result<()> {
    match depth > MAX_ANONYMOUS_DEPTH {
        true => {
            Err(Error::new(ErrorKind::BadData, format!("{}: anonymous members nest too deep", ty.name())))
        }
        false => Ok(()),
    }
}

/// [`KernelType::shape`] for DWARF.
fn dwarf_shape(ty: kql_drgn::Type<'_>) -> Result<Shape<'_>> {
    let ty = ty.unaliased();
    Ok(match ty.kind() {
        TypeKind::Struct | TypeKind::Class => Shape::Struct,
        TypeKind::Union => Shape::Union,
        TypeKind::Pointer => Shape::Pointer(KernelType::dwarf(ty.target()?)),
        TypeKind::Array => {
            Shape::Array { element: KernelType::dwarf(ty.target()?), length: ty.length().filter(|&n| n > 0) }
        }
        TypeKind::Int => {
            Shape::Int { size: ty.size()?, signed: ty.is_signed(), char: is_char(ty.base_name()) }
        }
        TypeKind::Bool => Shape::Bool,
        TypeKind::Enum => Shape::Enum { size: ty.size()?, signed: ty.is_signed() },
        TypeKind::Float => Shape::Float { size: ty.size()? },
        TypeKind::Function => Shape::Function,
        TypeKind::Void | TypeKind::Typedef => Shape::Void,
    })
}

/// [`KernelType::shape`] for BTF.
fn btf_shape(btf: &Btf, id: TypeId) -> Result<Shape<'_>> {
    let ty = btf.resolve(id).map_err(btf_error)?;
    let size = || ty.size().unwrap_or(0) as usize;
    Ok(match ty.kind() {
        Kind::Struct => Shape::Struct,
        Kind::Union => Shape::Union,
        Kind::Fwd if ty.is_union_fwd() => Shape::Union,
        Kind::Fwd => Shape::Struct,
        Kind::Ptr => Shape::Pointer(KernelType::btf(btf, ty.target().map_err(btf_error)?)),
        Kind::Array => {
            let array = ty.array().map_err(btf_error)?;
            let length = (array.len > 0).then_some(u64::from(array.len));
            Shape::Array { element: KernelType::btf(btf, array.element), length }
        }
        Kind::Int if ty.int().map_err(btf_error)?.bool => Shape::Bool,
        Kind::Int => {
            let signed = ty.int().map_err(btf_error)?.signed;
            Shape::Int { size: size(), signed, char: is_char(ty.name().ok()) }
        }
        Kind::Enum | Kind::Enum64 => Shape::Enum { size: size(), signed: ty.is_signed_enum() },
        Kind::Float => Shape::Float { size: size() },
        Kind::FuncProto | Kind::Func => Shape::Function,
        Kind::Void => Shape::Void,
        kind => return Err(Error::new(ErrorKind::Type, format!("BTF type {id} is a {kind:?}, not a type"))),
    })
}

/// Whether an integer type's name is one of C's character types.
fn is_char(name: Option<&str>) -> bool {
    matches!(name, Some("char" | "signed char" | "unsigned char"))
}

/// Where a BTF member's bits are beyond its offset, and its width if it is a bit-field: one
/// is either flagged in its struct (`kind_flag`) or, in older BTF, an integer type narrower
/// than its storage.
fn btf_bits(btf: &Btf, member: &Member) -> Result<(u64, Option<u32>)> {
    if member.bitfield_size != 0 {
        return Ok((0, Some(member.bitfield_size)));
    }
    let ty = btf.resolve(member.type_id).map_err(btf_error)?;
    if ty.kind() != Kind::Int {
        return Ok((0, None));
    }
    let int = ty.int().map_err(btf_error)?;
    let storage = ty.size().unwrap_or(0) * 8;
    Ok(match int.bits < storage || int.offset != 0 {
        true => (u64::from(int.offset), Some(int.bits)),
        false => (0, None),
    })
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

/// [`KernelType::field`] for BTF: descends the designator, then sizes the last member
/// ([`btf_bits`] tells a bit-field).
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
    let (shift, width) = match btf_bits(btf, &member)? {
        (_, None) => {
            let size = btf.size_of(member.type_id).map_err(btf_error)? as usize;
            return Ok(Field { offset: (bit_offset / 8) as usize, size, bits: None });
        }
        (extra, Some(bits)) => (bit_offset + extra, bits),
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

    fn live_btf() -> Btf {
        Btf::parse(std::fs::read("/sys/kernel/btf/vmlinux").expect("kernel BTF")).unwrap()
    }

    fn member<'b>(ty: KernelType<'b>, name: &str) -> MemberInfo<'b> {
        ty.member(name).unwrap().unwrap_or_else(|| panic!("{} has no {name}", ty.name()))
    }

    #[test]
    fn members_of_struct_sock_are_described() {
        let btf = live_btf();
        let sock = find_btf_type(&btf, "struct sock").unwrap();
        assert!(matches!(sock.shape().unwrap(), Shape::Struct));
        assert_eq!(sock.name(), "struct sock");
        let common = member(sock, "__sk_common");
        assert!(matches!(common.ty.shape().unwrap(), Shape::Struct));
        assert_eq!((common.bit_offset, common.ty.name().as_str()), (0, "struct sock_common"));
        let socket = member(sock, "sk_socket");
        assert_eq!(socket.ty.name(), "struct socket *");
        let Shape::Pointer(target) = socket.ty.shape().unwrap() else { panic!("sk_socket is a pointer") };
        assert_eq!(target.name(), "struct socket");
        assert!(sock.member("no_such_member").unwrap().is_none());
        let names = sock.member_names().unwrap();
        assert!(names.iter().any(|n| n == "sk_socket") && !names.iter().any(String::is_empty));
        let error = socket.ty.member("x").unwrap_err();
        assert!(error.kind == ErrorKind::Type && error.message.contains("struct socket *"), "{error}");
    }

    /// Members of `struct sock_common` — a 1-bit field (`skc_ipv6only`), plain members, and
    /// members of anonymous structs and unions (`skc_daddr`) — sit where
    /// [`KernelType::field`] puts them.
    #[test]
    fn bit_fields_and_anonymous_members_agree_with_field() {
        let btf = live_btf();
        let common = find_btf_type(&btf, "struct sock_common").unwrap();
        for name in ["skc_ipv6only", "skc_family", "skc_daddr", "skc_dport", "skc_state"] {
            let info = member(common, name);
            let field = common.field(name).unwrap();
            let start = (field.offset * 8) as u64 + field.bits.map_or(0, |(shift, _)| u64::from(shift));
            assert_eq!(
                (info.bit_offset, info.bit_size),
                (start, field.bits.map(|(_, width)| width)),
                "{name}"
            );
        }
        assert_eq!(member(common, "skc_ipv6only").bit_size, Some(1));
        assert!(common.member_names().unwrap().iter().any(|n| n == "skc_daddr"), "flattened");
    }

    #[test]
    fn enums_arrays_integers_and_variables_are_described() {
        let btf = live_btf();
        let state = find_btf_type(&btf, "enum module_state").unwrap();
        assert!(matches!(state.shape().unwrap(), Shape::Enum { size: 4, .. }));
        let enumerators = state.enumerators().unwrap();
        assert!(enumerators.iter().any(|(name, value)| name == "MODULE_STATE_LIVE" && *value == 0));
        let comm = member(find_btf_type(&btf, "struct task_struct").unwrap(), "comm");
        assert_eq!(comm.ty.name(), "char [16]");
        let Shape::Array { element, length: Some(16) } = comm.ty.shape().unwrap() else { panic!("comm") };
        assert!(matches!(element.shape().unwrap(), Shape::Int { size: 1, char: true, .. }));
        let u32_ = find_btf_type(&btf, "u32").unwrap();
        assert_eq!(u32_.name(), "u32");
        assert!(matches!(u32_.shape().unwrap(), Shape::Int { size: 4, signed: false, char: false }));
        assert!(u32_.enumerators().is_err());
        let runqueues = btf.variable_type("runqueues").map(|id| KernelType::btf(&btf, id)).unwrap();
        assert_eq!(runqueues.name(), "struct rq");
        let timer = find_btf_type(&btf, "struct timer_list").unwrap();
        let function = member(timer, "function");
        assert_eq!(function.ty.name(), "void (*)(struct timer_list *)");
        let Shape::Pointer(target) = function.ty.shape().unwrap() else { panic!("a function pointer") };
        assert!(matches!(target.shape().unwrap(), Shape::Function));
    }
}
