//! [`Type`]: a kernel type, with member-existence checks and [`Field`] layouts, so a struct
//! read in one `read_memory` can be decoded without going back to libdrgn per field.

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
    fn unaliased(&self) -> *mut sys::drgn_type {
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
        let unaliased = self.unaliased();
        // SAFETY: `unaliased` is a valid type; drgn_type_type is only called for kinds that have one.
        let kind = unsafe { sys::drgn_type_kind(unaliased) };
        match kind {
            sys::DRGN_TYPE_POINTER | sys::DRGN_TYPE_ARRAY | sys::DRGN_TYPE_ENUM | sys::DRGN_TYPE_FUNCTION => {
                // SAFETY: as above: this kind has a referenced type.
                Ok(Type::from_raw(self.program, unsafe { sys::drgn_type_type(unaliased) }))
            }
            _ => Err(Error::new(ErrorKind::Type, "type has no target type")),
        }
    }

    /// Whether a struct or union has a member `name` (kernel-version differences).
    pub fn has_member(&self, name: &str) -> Result<bool> {
        let mut has = false;
        // SAFETY: valid type; `name` is passed with its length, no NUL needed.
        Error::check(unsafe {
            sys::drgn_type_has_member_len(self.unaliased(), name.as_ptr().cast(), name.len(), &mut has)
        })?;
        Ok(has)
    }

    /// `offsetof(type, designator)` in bytes, e.g. `__sk_common.skc_nulls_node`.
    pub fn offset_of(&self, designator: &str) -> Result<usize> {
        Ok(self.field(designator)?.offset)
    }

    /// Layout of the member at `designator` (`a.b.c`), bit-fields included.
    pub fn field(&self, designator: &str) -> Result<Field> {
        let mut container = self.unaliased();
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
