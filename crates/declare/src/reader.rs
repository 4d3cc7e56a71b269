//! A column's expression compiled once per scan for the row loop, so that the common shapes
//! skip the general evaluator's dispatch and its `Value`s: a number member of the row
//! object is decoded from the fetched window straight into the column's builder; bytes of
//! the row object (`hex()`, `mac()`, `ipv4()`, `ipv6()`) are printed from the window into
//! a reused buffer; arithmetic over such members and constants is computed on integers; a
//! path through a pointer member goes straight to the remembered-value read. Anything
//! else, or a member the window does not hold, is evaluated.

use crate::ast::BinOp;
use crate::bind::{BExpr, Base, BytesFormat, Op, Place, Scalar};
use crate::column::Column;
use crate::eval::{arithmetic, decode_int, format_bytes, pointer_first, read_width};
use crate::walk::{Frame, Scan};

/// How one column's value is computed for a row.
pub(crate) struct Reader<'p> {
    expr: &'p BExpr,
    shape: Shape<'p>,
    /// The text of the last `Shape::Bytes` value (kept to reuse its allocation).
    text: String,
}

/// The shapes of expression the row loop computes without the general evaluator.
enum Shape<'p> {
    /// An integer, `_Bool` or pointer member of the row object.
    Member(Member),
    /// Bytes of the row object printed as text.
    Bytes { offset: i64, len: usize, format: BytesFormat },
    /// Arithmetic over number members of the row object and constants.
    Arithmetic(Arithmetic),
    /// A value behind a pointer member of the row object.
    Through(&'p Place, Scalar),
    /// Anything else.
    Other,
}

/// An arithmetic expression whose leaves are constants and number members of the row object.
enum Arithmetic {
    Const(i128),
    Member(Member),
    Binary(Box<Arithmetic>, BinOp, Box<Arithmetic>),
}

impl Arithmetic {
    fn of(expr: &BExpr) -> Option<Arithmetic> {
        Some(match expr {
            BExpr::Const(n) => Arithmetic::Const(*n),
            BExpr::Read(place, scalar @ (Scalar::Int { .. } | Scalar::Pointer)) => {
                Arithmetic::Member(Member::of(place, *scalar)?)
            }
            BExpr::Binary(left, op, right) => {
                Arithmetic::Binary(Box::new(Arithmetic::of(left)?), *op, Box::new(Arithmetic::of(right)?))
            }
            _ => return None,
        })
    }
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
        let shape = match expr {
            BExpr::Read(place, scalar) => match (Member::of(place, *scalar), pointer_first(place)) {
                (Some(member), _) => Shape::Member(member),
                (None, Some(_)) => Shape::Through(place, *scalar),
                (None, None) => Shape::Other,
            },
            BExpr::Binary(..) => Arithmetic::of(expr).map_or(Shape::Other, Shape::Arithmetic),
            BExpr::Bytes(place, len, format) => match object_offset(place) {
                Some(offset) => Shape::Bytes { offset, len: *len, format: *format },
                None => Shape::Other,
            },
            _ => Shape::Other,
        };
        Reader { expr, shape, text: String::new() }
    }
}

impl Member {
    /// The member `place` names when it is a number in the row object itself (no hop).
    #[inline(always)]
    pub fn of(place: &Place, scalar: Scalar) -> Option<Member> {
        let offset = object_offset(place)?;
        match scalar {
            Scalar::Int { size, signed, bits } => Some(Member { offset, size, signed, bits }),
            Scalar::Bool { bits } => Some(Member { offset, size: 1, signed: false, bits }),
            Scalar::Pointer => Some(Member { offset, size: 8, signed: false, bits: None }),
            Scalar::Chars(_) | Scalar::CharPointer(_) => None,
        }
    }
}

/// Where `place` is in the row object when it is in the object itself (no hop).
#[inline(always)]
fn object_offset(place: &Place) -> Option<i64> {
    match (place.base, place.ops.as_slice()) {
        (Base::Object, []) => Some(0),
        (Base::Object, [Op::Add(n)]) => Some(*n),
        _ => None,
    }
}

impl Scan<'_, '_> {
    /// Appends `reader`'s value for `frame`'s object to `column`; `Err` says why a value
    /// became NULL when it did not fit the column's type.
    #[inline]
    pub(crate) fn read_into(
        &mut self,
        reader: &mut Reader,
        frame: &Frame,
        column: &mut Column,
    ) -> Result<(), String> {
        match reader.shape {
            Shape::Member(member) => {
                if let Some(n) = self.member_int(member, frame) {
                    return column.push_int(n);
                }
            }
            Shape::Bytes { offset, len, format } => {
                if let Some(bytes) = self.in_window(frame.object.wrapping_add_signed(offset), len) {
                    reader.text.clear();
                    format_bytes(bytes, format, &mut reader.text);
                    self.bytes += len as u64;
                    return column.push_text(&reader.text);
                }
            }
            Shape::Arithmetic(ref arithmetic) => {
                if let Some(n) = self.arithmetic(arithmetic, frame) {
                    return column.push_int(n);
                }
            }
            Shape::Through(place, scalar) => {
                let value = self.read_through(place, scalar, frame);
                return column.push(self.or_null(value));
            }
            Shape::Other => {}
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

    /// `expr` for `frame`'s object; `None` when a member is not in the window or a shift
    /// is out of range (the general evaluator then gives the value or NULL).
    fn arithmetic(&self, expr: &Arithmetic, frame: &Frame) -> Option<i128> {
        match expr {
            Arithmetic::Const(n) => Some(*n),
            Arithmetic::Member(member) => self.member_int(*member, frame),
            Arithmetic::Binary(left, op, right) => {
                arithmetic(self.arithmetic(left, frame)?, *op, self.arithmetic(right, frame)?)
            }
        }
    }
}
