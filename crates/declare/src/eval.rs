//! Computing a bound expression's value for one object: member reads (bit-fields and sign
//! included), arithmetic, and the functions (`enum`, `flags`, `symbol`, `str`, `sum`,
//! `hex`, `mac`, `ipv4`, `ipv6`, `if`, and those written in Rust: `d_path`, `dentry_path`,
//! `kernfs_path`).
//! A read that fails is NULL, counted by the scan.

use kql_drgn::{Error, ErrorKind, Result};
use kql_kernel::cgroup::CgroupIds;
use kql_kernel::fs::{self, FileWalker};

use crate::ast::BinOp;
use crate::bind::{BExpr, Base, BytesFormat, Op, Place, RustPath, Scalar};
use crate::reader::Member;
use crate::walk::{Frame, Scan, Value};

impl Scan<'_, '_> {
    /// The value of `expr` for the object of `frame`.
    #[inline(always)]
    pub(crate) fn eval(&mut self, expr: &BExpr, frame: &Frame) -> Value {
        if let BExpr::Read(place, scalar) = expr
            && let Some(value) = self.member_in_window(place, *scalar, frame)
        {
            return value;
        }
        let value = self.try_eval(expr, frame);
        self.or_null(value)
    }

    /// The hot core: constants, member reads and arithmetic; functions go to
    /// [`Scan::try_eval_function`], kept apart so this stays small.
    fn try_eval(&mut self, expr: &BExpr, frame: &Frame) -> Result<Value> {
        Ok(match expr {
            BExpr::Const(n) => Value::Int(*n),
            BExpr::Null => Value::Null,
            BExpr::Read(place, scalar) => match self.member_in_window(place, *scalar, frame) {
                Some(value) => value,
                None => self.read_through(place, *scalar, frame)?,
            },
            BExpr::Bound(name) => self.bound(*name, frame),
            BExpr::Binary(left, op, right) => {
                match (self.try_eval(left, frame)?, self.try_eval(right, frame)?) {
                    (Value::Int(a), Value::Int(b)) => arithmetic(a, *op, b).map_or(Value::Null, Value::Int),
                    _ => Value::Null,
                }
            }
            _ => self.try_eval_function(expr, frame)?,
        })
    }

    /// `place`'s value when it is not a member in the window. A path that starts with a
    /// pointer of the row object (`sk->sk_net->ns.inum`) leads to the same value from the same
    /// pointer, so that value is kept for the scan, keyed by the place and the pointer.
    pub(crate) fn read_through(&mut self, place: &Place, scalar: Scalar, frame: &Frame) -> Result<Value> {
        let Some((first, rest)) = pointer_first(place) else {
            return Ok(match self.resolve(place, frame)? {
                Some(address) => self.read_scalar(address, scalar)?,
                None => Value::Null,
            });
        };
        let pointer = self.read_pointer(frame.object.wrapping_add_signed(first))?;
        if pointer == 0 {
            return Ok(Value::Null);
        }
        let key = std::ptr::from_ref(place) as usize;
        if let Some(value) = self.remembered.get(key, pointer) {
            return Ok(value.clone());
        }
        let value = match self.follow(pointer, rest)? {
            Some(address) => self.read_scalar(address, scalar)?,
            None => Value::Null,
        };
        self.remembered.put(key, pointer, value.clone());
        Ok(value)
    }

    #[inline(never)]
    fn try_eval_function(&mut self, expr: &BExpr, frame: &Frame) -> Result<Value> {
        Ok(match expr {
            BExpr::Text(text) => Value::Text(text.clone()),
            BExpr::Addr(place) => {
                self.resolve(place, frame)?.map_or(Value::Null, |a| Value::Int(i128::from(a)))
            }
            BExpr::Enum(value, names) => match self.try_eval(value, frame)? {
                Value::Int(n) => Value::Text(
                    names
                        .iter()
                        .find(|(v, _)| *v == n)
                        .map_or_else(|| n.to_string(), |(_, name)| name.clone()),
                ),
                _ => Value::Null,
            },
            BExpr::Flags(value, names) => match self.try_eval(value, frame)? {
                Value::Int(n) => Value::Text(flag_names(n as u64, names)),
                _ => Value::Null,
            },
            BExpr::Symbol(value) => match self.try_eval(value, frame)? {
                Value::Int(0) => Value::Null,
                Value::Int(address) => Value::Text(self.symbol(address as u64)),
                _ => Value::Null,
            },
            BExpr::Sum(place, scalar) => self.sum(place, *scalar, frame)?,
            BExpr::Bytes(place, len, format) => match self.resolve(place, frame)? {
                Some(address) => {
                    self.bytes += *len as u64;
                    let mut text = String::new();
                    format_bytes(&self.fetch(address, *len)?, *format, &mut text);
                    Value::Text(text)
                }
                None => Value::Null,
            },
            BExpr::Rust(function, args) => {
                let mut values = Vec::with_capacity(args.len());
                for arg in args {
                    match self.try_eval(arg, frame)? {
                        Value::Int(n) if n != 0 => values.push(n as u64),
                        _ => return Ok(Value::Null),
                    }
                }
                Value::Text(self.rust_function(*function, &values)?)
            }
            BExpr::If(cond, then, otherwise) => match self.try_eval(cond, frame)? {
                Value::Null => Value::Null,
                Value::Int(0) | Value::Bool(false) => self.try_eval(otherwise, frame)?,
                _ => self.try_eval(then, frame)?,
            },
            BExpr::Const(_) | BExpr::Null | BExpr::Read(..) | BExpr::Bound(_) | BExpr::Binary(..) => {
                self.try_eval(expr, frame)?
            }
        })
    }

    /// The scalar at `address`.
    fn read_scalar(&mut self, address: u64, scalar: Scalar) -> Result<Value> {
        Ok(match scalar {
            Scalar::Int { size, signed, bits } => Value::Int(self.read_int(address, size, signed, bits)?),
            Scalar::Bool { bits } => Value::Bool(self.read_int(address, 1, false, bits)? != 0),
            Scalar::Pointer => Value::Int(self.read_int(address, 8, false, None)?),
            Scalar::Chars(len) => {
                self.bytes += len as u64;
                let bytes = self.fetch(address, len)?;
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                Value::Text(String::from_utf8_lossy(&bytes[..end]).into_owned())
            }
            Scalar::CharPointer(max) => {
                self.bytes += 8;
                let pointer = u64::from_le_bytes(self.fetch(address, 8)?[..8].try_into().expect("8 bytes"));
                match pointer {
                    0 => Value::Null,
                    text if crate::walk::is_kernel_address(text) => {
                        let string = fs::read_c_string(&self.mem, text, max)?;
                        self.bytes += string.len() as u64;
                        Value::Text(string)
                    }
                    text => {
                        return Err(Error::new(
                            ErrorKind::BadData,
                            format!("char * {text:#x} is not a kernel address"),
                        ));
                    }
                }
            }
        })
    }

    /// A number member of the row object decoded from the object's window, if it is one and
    /// the window holds it.
    #[inline(always)]
    fn member_in_window(&self, place: &Place, scalar: Scalar, frame: &Frame) -> Option<Value> {
        let n = self.member_int(Member::of(place, scalar)?, frame)?;
        Some(match scalar {
            Scalar::Bool { .. } => Value::Bool(n != 0),
            _ => Value::Int(n),
        })
    }

    fn read_int(
        &mut self,
        address: u64,
        size: usize,
        signed: bool,
        bits: Option<(u32, u32)>,
    ) -> Result<i128> {
        let width = read_width(size, bits);
        self.bytes += width as u64;
        let bytes = self.fetch(address, width)?;
        decode_int(&bytes, size, signed, bits).ok_or_else(|| {
            Error::new(ErrorKind::Other, format!("a {width}-byte read gave {} bytes", bytes.len()))
        })
    }

    /// `sum()` over the elements a `[*]` in `place` spreads to.
    fn sum(&mut self, place: &Place, scalar: Scalar, frame: &Frame) -> Result<Value> {
        let split =
            place.ops.iter().position(|op| matches!(op, Op::Spread { .. })).unwrap_or(place.ops.len());
        let prefix = Place { base: place.base, ops: place.ops[..split].to_vec() };
        let Some(start) = self.resolve(&prefix, frame)? else { return Ok(Value::Null) };
        let Some(Op::Spread { count, stride }) = place.ops.get(split) else { return Ok(Value::Null) };
        let mut total = 0i128;
        for i in 0..*count {
            if let Some(address) = self.follow(start + i * stride, &place.ops[split + 1..])?
                && let Value::Int(n) = self.read_scalar(address, scalar)?
            {
                total += n;
            }
        }
        Ok(Value::Int(total))
    }

    /// `name` or `name+0xoffset` for a kernel address; the address in hex when no symbol has it.
    fn symbol(&self, address: u64) -> String {
        match self.types.symbol_at(address) {
            Some((name, 0)) => name,
            Some((name, offset)) => format!("{name}+{offset:#x}"),
            None => format!("{address:#x}"),
        }
    }

    fn rust_function(&mut self, function: RustPath, args: &[u64]) -> Result<String> {
        match function {
            RustPath::Kernfs => {
                if self.kernfs.is_none() {
                    self.kernfs = Some(CgroupIds::new(self.types)?);
                }
                self.kernfs.as_ref().expect("just set").kernfs_path(&self.mem, args[0])
            }
            RustPath::Mount | RustPath::Dentry => {
                if self.files.is_none() {
                    self.files = Some(FileWalker::new(self.types)?);
                }
                let files = self.files.as_ref().expect("just set");
                match function {
                    RustPath::Mount => files.d_path(&self.mem, args[0], args[1]),
                    _ => files.dentry_path(&self.mem, args[0]),
                }
            }
        }
    }
}

/// `a op b`; `None` (NULL) for a shift by a negative or too large count.
#[inline]
pub(crate) fn arithmetic(a: i128, op: BinOp, b: i128) -> Option<i128> {
    let shift = || u32::try_from(b).ok().filter(|&s| s < 127);
    Some(match op {
        BinOp::Add => a.wrapping_add(b),
        BinOp::Sub => a.wrapping_sub(b),
        BinOp::Mul => a.wrapping_mul(b),
        BinOp::And => a & b,
        BinOp::Shl => a.wrapping_shl(shift()?),
        BinOp::Shr => a >> shift()?,
    })
}

/// The names of the bits set in `value`, joined by `|`; bits without a name in hex.
fn flag_names(value: u64, names: &[(u64, String)]) -> String {
    let mut parts = Vec::new();
    let mut rest = value;
    for (mask, name) in names {
        if value & mask == *mask && rest & mask != 0 {
            parts.push(name.clone());
            rest &= !mask;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}

/// Appends `bytes` as `format` prints them to `text`.
pub(crate) fn format_bytes(bytes: &[u8], format: BytesFormat, text: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    if write_ip_address(bytes, format, text) {
        return;
    }
    let separator = format == BytesFormat::Mac;
    let mut first = true;
    // Printed in chunks through a buffer: ASCII only, so each chunk is valid UTF-8.
    for chunk in bytes.chunks(32) {
        let mut printed = [0u8; 32 * 3];
        let mut len = 0;
        for &byte in chunk {
            if separator && !std::mem::take(&mut first) {
                printed[len] = b':';
                len += 1;
            }
            printed[len] = DIGITS[usize::from(byte >> 4)];
            printed[len + 1] = DIGITS[usize::from(byte & 15)];
            len += 2;
        }
        text.push_str(std::str::from_utf8(&printed[..len]).expect("hex digits are ASCII"));
    }
}

/// `ipv4()`'s and `ipv6()`'s text: dotted IPv4, compressed IPv6 (RFC 5952, as `ip` prints
/// it), appended to `text`; false for the other formats or a wrong length.
fn write_ip_address(bytes: &[u8], format: BytesFormat, text: &mut String) -> bool {
    use std::fmt::Write;
    let written = match format {
        BytesFormat::Ipv4 => {
            <[u8; 4]>::try_from(bytes).map(|b| write!(text, "{}", std::net::Ipv4Addr::from(b)))
        }
        BytesFormat::Ipv6 => {
            <[u8; 16]>::try_from(bytes).map(|b| write!(text, "{}", std::net::Ipv6Addr::from(b)))
        }
        BytesFormat::Hex | BytesFormat::Mac => return false,
    };
    written.is_ok_and(|w| w.is_ok())
}

/// How many bytes hold an integer of `size` bytes, or the bit-field `bits` (shift, width).
#[inline(always)]
pub(crate) fn read_width(size: usize, bits: Option<(u32, u32)>) -> usize {
    bits.map_or(size, |(shift, width)| (shift + width).div_ceil(8) as usize).min(16)
}

/// The little-endian integer of `size` bytes (or bit-field `bits`) at the start of `bytes`;
/// `None` if `bytes` is too short.
#[inline(always)]
pub(crate) fn decode_int(bytes: &[u8], size: usize, signed: bool, bits: Option<(u32, u32)>) -> Option<i128> {
    let whole = |n: u64| {
        let shift = 64 - 8 * size as u32;
        match signed {
            true => i128::from(((n << shift) as i64) >> shift),
            false => i128::from(n),
        }
    };
    if bits.is_none() {
        match (size, bytes) {
            (1, [a, ..]) => return Some(whole(u64::from(*a))),
            (2, [a, b, ..]) => return Some(whole(u64::from(u16::from_le_bytes([*a, *b])))),
            (4, [a, b, c, d, ..]) => return Some(whole(u64::from(u32::from_le_bytes([*a, *b, *c, *d])))),
            (8, _) if bytes.len() >= 8 => {
                return Some(whole(u64::from_le_bytes(bytes[..8].try_into().ok()?)));
            }
            _ => {}
        }
    }
    let width = read_width(size, bits);
    let mut word = [0u8; 16];
    word[..width].copy_from_slice(bytes.get(..width)?);
    let raw = u128::from_le_bytes(word);
    let (value, bit_width) = match bits {
        Some((shift, width)) => ((raw >> shift) & ((1u128 << width) - 1), width),
        None => (raw, (size * 8).min(128) as u32),
    };
    if signed && (1..128).contains(&bit_width) && value >> (bit_width - 1) & 1 == 1 {
        return Some(value as i128 - (1i128 << bit_width));
    }
    Some(value as i128)
}

/// For an object-based `place` that starts by following a pointer member: the member's
/// offset and the hops after it.
pub(crate) fn pointer_first(place: &Place) -> Option<(i64, &[Op])> {
    match (place.base, place.ops.as_slice()) {
        (Base::Object, [Op::Deref, rest @ ..]) => Some((0, rest)),
        (Base::Object, [Op::Add(n), Op::Deref, rest @ ..]) => Some((*n, rest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(bytes: &[u8], format: BytesFormat) -> String {
        let mut text = String::new();
        format_bytes(bytes, format, &mut text);
        text
    }

    #[test]
    fn bytes_print_as_hex_mac_and_addresses() {
        assert_eq!(printed(&[0x00, 0xab, 0x0f], BytesFormat::Hex), "00ab0f");
        assert_eq!(printed(&[0x52, 0x54, 0x00, 0x12, 0x34, 0x56], BytesFormat::Mac), "52:54:00:12:34:56");
        assert_eq!(printed(&[127, 0, 0, 1], BytesFormat::Ipv4), "127.0.0.1");
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert_eq!(printed(&v6, BytesFormat::Ipv6), "::1");
        assert_eq!(printed(&[], BytesFormat::Hex), "");
    }

    #[test]
    fn long_byte_runs_print_whole_across_chunks() {
        let bytes: Vec<u8> = (0..70).collect();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(printed(&bytes, BytesFormat::Hex), hex);
        let mac: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(printed(&bytes, BytesFormat::Mac), mac.join(":"));
        // An address of the wrong length prints as hex.
        assert_eq!(printed(&[1, 2, 3], BytesFormat::Ipv4), "010203");
    }

    #[test]
    fn integers_and_bit_fields_decode_little_endian_with_their_sign() {
        assert_eq!(decode_int(&[0xfe, 0xff], 2, true, None), Some(-2));
        assert_eq!(decode_int(&[0xfe, 0xff], 2, false, None), Some(0xfffe));
        // A 4-bit field at bit 6, crossing into the second byte: 0b1011.
        let field = Some((6, 4));
        assert_eq!(decode_int(&[0b1100_0000, 0b0000_0010], 4, false, field), Some(0b1011));
        assert_eq!(decode_int(&[0b1100_0000, 0b0000_0010], 4, true, field), Some(-5));
        assert_eq!(decode_int(&[0xff; 16], 16, false, None), Some(u128::MAX as i128));
        assert_eq!(decode_int(&[0x01], 4, false, None), None, "too short");
        assert_eq!(decode_int(&[0x01], 4, false, field), None, "too short for the field");
    }

    #[test]
    fn shifts_out_of_range_are_null() {
        assert_eq!(arithmetic(0x1234, BinOp::Shr, 8), Some(0x12));
        assert_eq!(arithmetic(1, BinOp::Shl, 127), None);
        assert_eq!(arithmetic(1, BinOp::Shl, -1), None);
        assert_eq!(arithmetic(((0x34 & 0xff) << 8) + (0x1234 >> 8), BinOp::Add, 0), Some(0x3412));
    }
}
