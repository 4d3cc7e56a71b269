//! A column's expression compiled once per scan for the row loop: a number member of the row
//! object (no pointer hop) is decoded from the fetched window straight into the column's
//! builder, without the general evaluator's dispatch and `Value`s; anything else, or a
//! member the window does not hold, is evaluated.

use crate::bind::{BExpr, Base, Op, Place, Scalar};
use crate::column::Column;
use crate::eval::{decode_int, read_width};
use crate::walk::{Frame, Scan};

/// How one column's value is computed for a row.
pub(crate) struct Reader<'p> {
    expr: &'p BExpr,
    /// When `expr` is an integer, `_Bool` or pointer member of the row object: where.
    member: Option<Member>,
}

/// A number member `offset` bytes into the row object.
#[derive(Clone, Copy)]
pub(crate) struct Member {
    offset: i64,
    size: usize,
    signed: bool,
    bits: Option<(u32, u32)>,
}

impl<'p> Reader<'p> {
    pub fn of(expr: &'p BExpr) -> Reader<'p> {
        let member = match expr {
            BExpr::Read(place, scalar) => Member::of(place, *scalar),
            _ => None,
        };
        Reader { expr, member }
    }
}

impl Member {
    /// The member `place` names when it is a number in the row object itself (no hop).
    #[inline(always)]
    pub fn of(place: &Place, scalar: Scalar) -> Option<Member> {
        let offset = match (place.base, place.ops.as_slice()) {
            (Base::Object, []) => 0,
            (Base::Object, [Op::Add(n)]) => *n,
            _ => return None,
        };
        match scalar {
            Scalar::Int { size, signed, bits } => Some(Member { offset, size, signed, bits }),
            Scalar::Bool { bits } => Some(Member { offset, size: 1, signed: false, bits }),
            Scalar::Pointer => Some(Member { offset, size: 8, signed: false, bits: None }),
            Scalar::Chars(_) | Scalar::CharPointer(_) => None,
        }
    }
}

impl Scan<'_, '_> {
    /// Appends `reader`'s value for `frame`'s object to `column`; `Err` says why a value
    /// became NULL when it did not fit the column's type.
    #[inline]
    pub(crate) fn read_into(
        &mut self,
        reader: &Reader,
        frame: &Frame,
        column: &mut Column,
    ) -> Result<(), String> {
        if let Some(n) = reader.member.and_then(|member| self.member_int(member, frame)) {
            return column.push_int(n);
        }
        let value = self.eval(reader.expr, frame);
        column.push(value)
    }

    /// `member` of `frame`'s object decoded from the window, if the window holds it.
    #[inline(always)]
    pub(crate) fn member_int(&self, member: Member, frame: &Frame) -> Option<i128> {
        let Member { offset, size, signed, bits } = member;
        let bytes = self.in_window(frame.object.wrapping_add_signed(offset), read_width(size, bits))?;
        decode_int(bytes, size, signed, bits)
    }
}
