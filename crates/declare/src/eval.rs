//! Computing a bound expression's value for one object: member reads (bit-fields and sign
//! included), arithmetic, and the functions (`enum`, `flags`, `symbol`, `str`, `sum`,
//! `hex`, `mac`, `ipv4`, `ipv6`, `if`, and those written in Rust: `d_path`, `dentry_path`,
//! `kernfs_path`).
//! A read that fails is NULL, counted by the scan.

use kql_drgn::{Error, ErrorKind, Result};
use kql_kernel::cgroup::CgroupIds;
use kql_kernel::fs::{self, FileWalker};

use crate::ast::BinOp;
use crate::bind::{BExpr, BytesFormat, Op, Place, RustPath, Scalar};
use crate::walk::{Frame, Scan, Value};

impl Scan<'_, '_> {
    /// The value of `expr` for the object of `frame`.
    pub(crate) fn eval(&mut self, expr: &BExpr, frame: &Frame) -> Value {
        match self.try_eval(expr, frame) {
            Ok(value) => value,
            Err(error) => {
                self.fault(&error);
                Value::Null
            }
        }
    }

    fn try_eval(&mut self, expr: &BExpr, frame: &Frame) -> Result<Value> {
        Ok(match expr {
            BExpr::Const(n) => Value::Int(*n),
            BExpr::Text(text) => Value::Text(text.clone()),
            BExpr::Null => Value::Null,
            BExpr::Read(place, scalar) => match self.resolve(place, frame)? {
                Some(address) => self.read_scalar(address, *scalar)?,
                None => Value::Null,
            },
            BExpr::Addr(place) => {
                self.resolve(place, frame)?.map_or(Value::Null, |a| Value::Int(i128::from(a)))
            }
            BExpr::Bound(name) => self.bound(*name, frame),
            BExpr::Binary(left, op, right) => {
                match (self.try_eval(left, frame)?, self.try_eval(right, frame)?) {
                    (Value::Int(a), Value::Int(b)) => arithmetic(a, *op, b),
                    _ => Value::Null,
                }
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
                    Value::Text(format_bytes(&self.fetch(address, *len)?, *format))
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
        })
    }

    /// The scalar at `address`.
    fn read_scalar(&mut self, address: u64, scalar: Scalar) -> Result<Value> {
        Ok(match scalar {
            Scalar::Int { size, signed, bits } => Value::Int(self.read_int(address, size, signed, bits)?),
            Scalar::Bool { bits } => Value::Bool(self.read_int(address, 1, false, bits)? != 0),
            Scalar::Pointer => Value::Int(self.read_whole_int(address, 8, false)?),
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

    fn read_int(
        &mut self,
        address: u64,
        size: usize,
        signed: bool,
        bits: Option<(u32, u32)>,
    ) -> Result<i128> {
        if bits.is_none() && matches!(size, 1 | 2 | 4 | 8) {
            return self.read_whole_int(address, size, signed);
        }
        let width = bits.map_or(size, |(shift, width)| (shift + width).div_ceil(8) as usize);
        self.bytes += width as u64;
        let bytes = self.fetch(address, width.min(16))?;
        let mut word = [0u8; 16];
        word[..bytes.len()].copy_from_slice(&bytes);
        let raw = u128::from_le_bytes(word);
        let (value, bit_width) = match bits {
            Some((shift, width)) => ((raw >> shift) & ((1u128 << width) - 1), width),
            None => (raw, (size * 8) as u32),
        };
        if signed && bit_width < 128 && value >> (bit_width - 1) & 1 == 1 {
            return Ok(value as i128 - (1i128 << bit_width));
        }
        Ok(value as i128)
    }

    /// A 1-, 2-, 4- or 8-byte integer, decoded without copying.
    fn read_whole_int(&mut self, address: u64, size: usize, signed: bool) -> Result<i128> {
        self.bytes += size as u64;
        let bytes = self.fetch(address, size)?;
        let value = match *bytes {
            [a] => u64::from(a),
            [a, b] => u64::from(u16::from_le_bytes([a, b])),
            [a, b, c, d] => u64::from(u32::from_le_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
            _ => {
                return Err(Error::new(
                    ErrorKind::Other,
                    format!("a {size}-byte read gave {} bytes", bytes.len()),
                ));
            }
        };
        let shift = 64 - 8 * size as u32;
        Ok(match signed {
            true => i128::from(((value << shift) as i64) >> shift),
            false => i128::from(value),
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

fn arithmetic(a: i128, op: BinOp, b: i128) -> Value {
    let shift = |b: i128| u32::try_from(b).ok().filter(|&s| s < 127);
    Value::Int(match op {
        BinOp::Add => a.wrapping_add(b),
        BinOp::Sub => a.wrapping_sub(b),
        BinOp::Mul => a.wrapping_mul(b),
        BinOp::And => a & b,
        BinOp::Shl => return shift(b).map_or(Value::Null, |s| Value::Int(a.wrapping_shl(s))),
        BinOp::Shr => return shift(b).map_or(Value::Null, |s| Value::Int(a >> s)),
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

fn format_bytes(bytes: &[u8], format: BytesFormat) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    if let Some(address) = ip_address(bytes, format) {
        return address;
    }
    let mut text = String::with_capacity(bytes.len() * 3);
    for (i, byte) in bytes.iter().enumerate() {
        if format == BytesFormat::Mac && i > 0 {
            text.push(':');
        }
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
    text
}

/// `ipv4()`'s and `ipv6()`'s text: dotted IPv4, compressed IPv6 (RFC 5952, as `ip` prints it).
fn ip_address(bytes: &[u8], format: BytesFormat) -> Option<String> {
    match format {
        BytesFormat::Ipv4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        BytesFormat::Ipv6 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        BytesFormat::Hex | BytesFormat::Mac => None,
    }
}
