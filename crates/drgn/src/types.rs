//! [`Type`]: a kernel type, with member-existence checks and [`Field`] layouts, so a struct
//! read in one `read_memory` can be decoded without going back to libdrgn per field, and a
//! full description for tools that bind names at run time: its [`TypeKind`], C name,
//! [`Member`]s, enumerators, signedness and array length.

use std::ffi::{CStr, c_char};
use std::ptr;

use drgn_sys as sys;

use crate::{Error, ErrorKind, Program, Result};

/// A type of the kernel's debug info, e.g. `struct sock`.
#[derive(Clone, Copy)]
pub struct Type<'p> {
    raw: sys::drgn_qualified_type,
    program: &'p Program,
}

/// Where a member lives in its struct: byte offset and size, and its bits if a bit-field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Offset of the member's first byte from the start of the struct.
    pub offset: usize,
    /// Bytes to read from `offset` (for a bit-field: the bytes spanning it).
    pub size: usize,
    /// For a bit-field: its first bit within the bytes at `offset`, and its width.
    pub bits: Option<(u32, u32)>,
}

impl Field {
    /// The member's value, zero-extended, from `bytes` holding the struct (little-endian).
    /// Members wider than 8 bytes give their first 8 bytes.
    pub fn read_u64(&self, bytes: &[u8]) -> Result<u64> {
        let end = self.offset + self.size;
        let raw = bytes.get(self.offset..end).ok_or_else(|| {
            Error::new(
                ErrorKind::Other,
                format!("field at {}..{end} is outside a {}-byte read", self.offset, bytes.len()),
            )
        })?;
        let mut word = [0; 8];
        let n = raw.len().min(8);
        word[..n].copy_from_slice(&raw[..n]);
        let value = u64::from_le_bytes(word);
        Ok(match self.bits {
            Some((shift, width)) => (value >> shift) & (u64::MAX >> (64 - width)),
            None => value,
        })
    }

    /// The member's bytes inside `bytes` (for arrays such as an IPv6 address).
    pub fn slice<'b>(&self, bytes: &'b [u8]) -> Result<&'b [u8]> {
        bytes.get(self.offset..self.offset + self.size).ok_or_else(|| {
            Error::new(
                ErrorKind::Other,
                format!("field at {} is outside a {}-byte read", self.offset, bytes.len()),
            )
        })
    }

    /// One past the member's last byte.
    pub fn end(&self) -> usize {
        self.offset + self.size
    }
}

impl<'p> Type<'p> {
    pub(crate) fn from_raw(program: &'p Program, raw: sys::drgn_qualified_type) -> Self {
        Type { raw, program }
    }

    pub(crate) fn raw(&self) -> sys::drgn_qualified_type {
        self.raw
    }

    /// The type with typedefs peeled off.
    fn unaliased_raw(&self) -> *mut sys::drgn_type {
        // SAFETY: the type belongs to a live program; unaliasing only follows typedefs.
        unsafe { sys::drgn_qualified_type_unaliased(self.raw).type_ }
    }

    /// `sizeof(type)`.
    pub fn size(&self) -> Result<usize> {
        let mut size = 0;
        // SAFETY: valid type of a live program; `size` receives the result.
        Error::check(unsafe { sys::drgn_type_sizeof(self.raw.type_, &mut size) })?;
        Ok(size as usize)
    }

    /// The type a pointer, array or typedef refers to.
    pub fn target(&self) -> Result<Type<'p>> {
        let unaliased = self.unaliased_raw();
        // SAFETY: `unaliased` is a valid type; drgn_type_type is only called for kinds that have one.
        let kind = unsafe { sys::drgn_type_kind(unaliased) };
        match kind {
            sys::DRGN_TYPE_POINTER | sys::DRGN_TYPE_ARRAY | sys::DRGN_TYPE_ENUM | sys::DRGN_TYPE_FUNCTION => {
                // SAFETY: as above: this kind has a referenced type.
                let target = unsafe { sys::drgn_type_type(unaliased) };
                match target.type_.is_null() {
                    // An incomplete enum has no compatible integer type.
                    true => Err(Error::new(ErrorKind::Type, "incomplete enum has no integer type")),
                    false => Ok(Type::from_raw(self.program, target)),
                }
            }
            _ => Err(Error::new(ErrorKind::Type, "type has no target type")),
        }
    }

    /// Whether a struct or union has a member `name` (kernel-version differences).
    pub fn has_member(&self, name: &str) -> Result<bool> {
        let mut has = false;
        // SAFETY: valid type; `name` is passed with its length, no NUL needed.
        Error::check(unsafe {
            sys::drgn_type_has_member_len(self.unaliased_raw(), name.as_ptr().cast(), name.len(), &mut has)
        })?;
        Ok(has)
    }

    /// `offsetof(type, designator)` in bytes, e.g. `__sk_common.skc_nulls_node`.
    pub fn offset_of(&self, designator: &str) -> Result<usize> {
        Ok(self.field(designator)?.offset)
    }

    /// Layout of the member at `designator` (`a.b.c`), bit-fields included.
    pub fn field(&self, designator: &str) -> Result<Field> {
        let mut container = self.unaliased_raw();
        let mut bit_offset = 0u64;
        let mut member_type = sys::drgn_qualified_type { type_: ptr::null_mut(), qualifiers: 0 };
        let mut bit_field_size = 0u64;
        for name in designator.split('.') {
            let mut member = ptr::null_mut();
            let mut member_offset = 0;
            // SAFETY: `container` is a valid type of a live program; the member pointer
            // returned is owned by that type and valid while the program lives.
            unsafe {
                Error::check(sys::drgn_type_find_member_len(
                    container,
                    name.as_ptr().cast(),
                    name.len(),
                    &mut member,
                    &mut member_offset,
                ))
                .map_err(|e| e.context(format!("member {designator}")))?;
                Error::check(sys::drgn_member_type(member, &mut member_type, &mut bit_field_size))?;
                container = sys::drgn_qualified_type_unaliased(member_type).type_;
            }
            bit_offset += member_offset;
        }
        if bit_field_size == 0 {
            let size = Type::from_raw(self.program, member_type).size()?;
            return Ok(Field { offset: (bit_offset / 8) as usize, size, bits: None });
        }
        let first_byte = bit_offset / 8;
        let shift = (bit_offset % 8) as u32;
        let size = (u64::from(shift) + bit_field_size).div_ceil(8) as usize;
        Ok(Field { offset: first_byte as usize, size, bits: Some((shift, bit_field_size as u32)) })
    }
}

/// What a type is (`enum drgn_type_kind`), typedefs not peeled off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKind {
    Void,
    Int,
    Bool,
    Float,
    Struct,
    Union,
    Class,
    Enum,
    Typedef,
    Pointer,
    Array,
    Function,
}

/// A member of a struct or union as libdrgn lists it (anonymous members not looked into).
#[derive(Clone, Copy)]
pub struct Member<'p> {
    raw: *mut sys::drgn_type_member,
    program: &'p Program,
}

impl<'p> Member<'p> {
    /// Its name; empty for an anonymous struct or union member.
    pub fn name(&self) -> &'p str {
        // SAFETY: `raw` points into the member array of a type of the live program `'p`
        // borrows; its name is NULL or a NUL-terminated string owned by that type.
        unsafe { c_str((*self.raw).name) }
    }

    /// Offset of its first bit from the start of the struct or union listing it.
    pub fn bit_offset(&self) -> u64 {
        // SAFETY: as in `name`: `raw` is a valid member of a live type.
        unsafe { (*self.raw).bit_offset }
    }

    /// Its type, and its width if it is a bit-field (libdrgn evaluates the type on first use).
    pub fn type_(&self) -> Result<(Type<'p>, Option<u32>)> {
        let mut ty = sys::drgn_qualified_type { type_: ptr::null_mut(), qualifiers: 0 };
        let mut bits = 0u64;
        // SAFETY: `raw` is a valid member of a live type; both outputs are written on success.
        Error::check(unsafe { sys::drgn_member_type(self.raw, &mut ty, &mut bits) })?;
        Ok((Type::from_raw(self.program, ty), (bits != 0).then_some(bits as u32)))
    }
}

impl<'p> Type<'p> {
    /// What this type is; a typedef is [`TypeKind::Typedef`].
    pub fn kind(&self) -> TypeKind {
        // SAFETY: `raw.type_` is a valid type of the live program.
        kind_of(unsafe { sys::drgn_type_kind(self.raw.type_) })
    }

    /// The type with typedefs peeled off (qualifiers kept).
    pub fn unaliased(&self) -> Type<'p> {
        // SAFETY: the type belongs to a live program; unaliasing only follows typedefs.
        Type::from_raw(self.program, unsafe { sys::drgn_qualified_type_unaliased(self.raw) })
    }

    /// The type as C writes it, qualifiers and typedef names kept: `const struct cred *`.
    pub fn name(&self) -> Result<String> {
        let mut text: *mut c_char = ptr::null_mut();
        // SAFETY: valid type of a live program; on success `text` is a malloc'd NUL-terminated
        // string this function owns: copied, then freed once.
        unsafe {
            Error::check(sys::drgn_format_type_name(self.raw, &mut text))?;
            let name = CStr::from_ptr(text).to_string_lossy().into_owned();
            libc::free(text.cast());
            Ok(name)
        }
    }

    /// The name of an integer, boolean, floating-point or typedef type (`unsigned char`,
    /// `u32`); `None` for other kinds.
    pub fn base_name(&self) -> Option<&'p str> {
        let has_name =
            matches!(self.kind(), TypeKind::Int | TypeKind::Bool | TypeKind::Float | TypeKind::Typedef);
        // SAFETY: these kinds have a name, a NUL-terminated string owned by the type.
        has_name.then(|| unsafe { c_str(sys::drgn_type_name(self.raw.type_)) })
    }

    /// Whether an integer type is signed; for an enum, whether its integer type is.
    pub fn is_signed(&self) -> bool {
        let ty = self.unaliased();
        match ty.kind() {
            // SAFETY: an integer type has a signedness.
            TypeKind::Int => unsafe { sys::drgn_type_is_signed(ty.raw.type_) },
            TypeKind::Enum => ty.target().is_ok_and(|int| int.is_signed()),
            _ => false,
        }
    }

    /// The element count of an array type, `None` if it is incomplete (`x[]`).
    pub fn length(&self) -> Option<u64> {
        let ty = self.unaliased_raw();
        // SAFETY: `ty` is a valid type; the length is only read from a complete array.
        unsafe {
            (sys::drgn_type_kind(ty) == sys::DRGN_TYPE_ARRAY && sys::drgn_type_is_complete(ty))
                .then(|| sys::drgn_type_length(ty))
        }
    }

    /// The members of a struct or union, in order, anonymous ones as they are; none if the
    /// type is incomplete.
    pub fn members(&self) -> Result<Vec<Member<'p>>> {
        let ty = self.unaliased();
        if !matches!(ty.kind(), TypeKind::Struct | TypeKind::Union | TypeKind::Class) {
            return Err(Error::new(ErrorKind::Type, "type is not a struct or union"));
        }
        let ty = ty.raw.type_;
        // SAFETY: a struct or union type has a member array of `num_members` entries, owned
        // by the type and valid while the program lives.
        let (first, count) = unsafe { (sys::drgn_type_members(ty), sys::drgn_type_num_members(ty)) };
        // SAFETY: `i < count`, so each pointer stays inside the array.
        Ok((0..count).map(|i| Member { raw: unsafe { first.add(i) }, program: self.program }).collect())
    }

    /// The enumerators of an enum type (name, value), in declaration order.
    pub fn enumerators(&self) -> Result<Vec<(String, i64)>> {
        let ty = self.unaliased();
        if ty.kind() != TypeKind::Enum {
            return Err(Error::new(ErrorKind::Type, "type is not an enum"));
        }
        let (signed, ty) = (ty.is_signed(), ty.raw.type_);
        // SAFETY: an enum type has an enumerator array of `num_enumerators` entries, owned by
        // the type; each name is a NUL-terminated string and the value is read as the
        // signedness of the enum's integer type says it was stored.
        unsafe {
            let (first, count) = (sys::drgn_type_enumerators(ty), sys::drgn_type_num_enumerators(ty));
            Ok((0..count)
                .map(|i| {
                    let entry = &*first.add(i);
                    let value = if signed { entry.value.svalue } else { entry.value.uvalue as i64 };
                    (c_str(entry.name).to_string(), value)
                })
                .collect())
        }
    }
}

fn kind_of(raw: sys::drgn_type_kind) -> TypeKind {
    match raw {
        sys::DRGN_TYPE_INT => TypeKind::Int,
        sys::DRGN_TYPE_BOOL => TypeKind::Bool,
        sys::DRGN_TYPE_FLOAT => TypeKind::Float,
        sys::DRGN_TYPE_STRUCT => TypeKind::Struct,
        sys::DRGN_TYPE_UNION => TypeKind::Union,
        sys::DRGN_TYPE_CLASS => TypeKind::Class,
        sys::DRGN_TYPE_ENUM => TypeKind::Enum,
        sys::DRGN_TYPE_TYPEDEF => TypeKind::Typedef,
        sys::DRGN_TYPE_POINTER => TypeKind::Pointer,
        sys::DRGN_TYPE_ARRAY => TypeKind::Array,
        sys::DRGN_TYPE_FUNCTION => TypeKind::Function,
        _ => TypeKind::Void,
    }
}

/// A C string owned by a type of a live program, as `&str` ("" if NULL or not UTF-8).
///
/// # Safety
/// `text` is NULL or a NUL-terminated string that lives at least as long as `'p`.
unsafe fn c_str<'p>(text: *const c_char) -> &'p str {
    if text.is_null() {
        return "";
    }
    // SAFETY: the caller guarantees a NUL-terminated string living for `'p`.
    unsafe { CStr::from_ptr(text) }.to_str().unwrap_or("")
}
