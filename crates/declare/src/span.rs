//! The bytes of a row's object that its columns read directly (members before any pointer
//! hop): found once per plan, fetched once per row, each member then decoded from them —
//! as kql-kernel's `Layout` does for the hand-written walks — instead of one memory lookup
//! per member. On a mapped vmcore the fetch is a borrow; on a live kernel one copy that is
//! also a consistent snapshot of the object's members.

use std::borrow::Cow;

use crate::bind::{BExpr, BoundColumn, Op, Place, Scalar};

/// Objects spanning more than this are read member by member.
const MAX_SPAN: usize = 4096;

/// A byte range relative to a row's object address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ObjectSpan {
    pub start: i64,
    pub len: usize,
}

impl ObjectSpan {
    /// The smallest span covering every direct read of `columns` and the `extra` range;
    /// `None` if they read nothing directly or would span more than [`MAX_SPAN`] bytes.
    pub fn of(columns: &[BoundColumn], extra: Option<(i64, i64)>) -> Option<ObjectSpan> {
        let mut ranges: Vec<(i64, i64)> = extra.into_iter().collect();
        for column in columns {
            direct_reads(&column.expr, &mut ranges);
        }
        let start = ranges.iter().map(|r| r.0).min()?;
        let end = ranges.iter().map(|r| r.1).max()?;
        let len = usize::try_from(end - start).ok().filter(|&len| len <= MAX_SPAN)?;
        Some(ObjectSpan { start, len })
    }
}

/// The byte ranges `expr` reads from the object itself, relative to its address.
fn direct_reads(expr: &BExpr, ranges: &mut Vec<(i64, i64)>) {
    match expr {
        BExpr::Read(place, scalar) => ranges.extend(first_read(place, scalar_size(*scalar))),
        BExpr::Bytes(place, len, _) => ranges.extend(first_read(place, *len)),
        BExpr::Binary(left, _, right) => {
            direct_reads(left, ranges);
            direct_reads(right, ranges);
        }
        BExpr::Enum(value, _) | BExpr::Flags(value, _) | BExpr::Symbol(value) => direct_reads(value, ranges),
        BExpr::Rust(_, args) => args.iter().for_each(|arg| direct_reads(arg, ranges)),
        BExpr::If(cond, then, otherwise) => {
            direct_reads(cond, ranges);
            direct_reads(then, ranges);
            direct_reads(otherwise, ranges);
        }
        BExpr::Addr(place) | BExpr::Sum(place, _) => ranges.extend(first_read(place, 0)),
        BExpr::Const(_) | BExpr::Text(_) | BExpr::Null | BExpr::Bound(_) => {}
    }
}

/// The range of the first read along an object-based `place` whose last read is `size`
/// bytes: the pointer of its first hop, or the value itself when it has no hop.
fn first_read(place: &Place, size: usize) -> Option<(i64, i64)> {
    if place.base != crate::bind::Base::Object {
        return None;
    }
    let mut offset = 0i64;
    for op in &place.ops {
        match *op {
            Op::Add(n) => offset = offset.checked_add(n)?,
            Op::Deref | Op::First { .. } => return Some((offset, offset.checked_add(8)?)),
            Op::Spread { .. } => return None,
        }
    }
    (size > 0).then(|| (offset, offset.saturating_add(size as i64)))
}

/// The bytes a read of `scalar` takes.
fn scalar_size(scalar: Scalar) -> usize {
    let bit_bytes = |bits: Option<(u32, u32)>, size: usize| {
        bits.map_or(size, |(shift, width)| (shift + width).div_ceil(8) as usize)
    };
    match scalar {
        Scalar::Int { size, bits, .. } => bit_bytes(bits, size),
        Scalar::Bool { bits } => bit_bytes(bits, 1),
        Scalar::Pointer | Scalar::CharPointer(_) => 8,
        Scalar::Chars(len) => len,
    }
}

/// The fetched span of the current row's object.
pub(crate) struct Window<'k> {
    start: u64,
    bytes: Cow<'k, [u8]>,
}

impl<'k> Window<'k> {
    pub fn new(start: u64, bytes: Cow<'k, [u8]>) -> Self {
        Window { start, bytes }
    }

    /// Whether this is `span` of the object at `object`.
    pub fn holds(&self, object: u64, span: ObjectSpan) -> bool {
        self.start == object.wrapping_add_signed(span.start) && self.bytes.len() == span.len
    }

    /// The `len` bytes at `address`, if all of them are in the window.
    #[inline(always)]
    pub fn get(&self, address: u64, len: usize) -> Option<&[u8]> {
        let offset = usize::try_from(address.checked_sub(self.start)?).ok()?;
        self.bytes.get(offset..offset.checked_add(len)?)
    }
}
