//! One BTF type record (`struct btf_type` plus its kind-specific data) and the views a
//! caller needs of it: [`Member`]s of structs and unions, [`Array`], [`Int`] and
//! [`Enumerator`]s. Everything is decoded from the blob's bytes on demand, bounds-checked.

use crate::{Btf, Result, TypeId, error};

/// `BTF_KIND_*`: what a type is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Type id 0.
    Void,
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    Datasec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
}

impl Kind {
    fn from_raw(raw: u32) -> Result<Kind> {
        const KINDS: [Kind; 20] = [
            Kind::Void,
            Kind::Int,
            Kind::Ptr,
            Kind::Array,
            Kind::Struct,
            Kind::Union,
            Kind::Enum,
            Kind::Fwd,
            Kind::Typedef,
            Kind::Volatile,
            Kind::Const,
            Kind::Restrict,
            Kind::Func,
            Kind::FuncProto,
            Kind::Var,
            Kind::Datasec,
            Kind::Float,
            Kind::DeclTag,
            Kind::TypeTag,
            Kind::Enum64,
        ];
        match KINDS.get(raw as usize) {
            Some(Kind::Void) | None => Err(error(format!("unknown BTF kind {raw}"))),
            Some(&kind) => Ok(kind),
        }
    }
}

/// The 12-byte `struct btf_type` that starts every record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    pub(crate) name_off: u32,
    info: u32,
    /// `size` for sized kinds, `type` for the others.
    size_or_type: u32,
}

impl Record {
    pub(crate) fn read(data: &[u8], at: usize) -> Result<Record> {
        let word = |i: usize| read_u32(data, at + 4 * i);
        Ok(Record { name_off: word(0)?, info: word(1)?, size_or_type: word(2)? })
    }

    pub(crate) fn kind(&self) -> Result<Kind> {
        Kind::from_raw((self.info >> 24) & 0x1f)
    }

    fn vlen(&self) -> usize {
        (self.info & 0xffff) as usize
    }

    fn kind_flag(&self) -> bool {
        self.info >> 31 != 0
    }

    /// Bytes of kind-specific data after the 12-byte header.
    pub(crate) fn extra_len(&self) -> Result<usize> {
        Ok(match self.kind()? {
            Kind::Int | Kind::Var | Kind::DeclTag => 4,
            Kind::Array => 12,
            Kind::Struct | Kind::Union | Kind::Datasec | Kind::Enum64 => 12 * self.vlen(),
            Kind::Enum | Kind::FuncProto => 8 * self.vlen(),
            _ => 0,
        })
    }
}

/// One type of a [`Btf`]: its kind, name, size or target, and its members or elements.
#[derive(Clone, Copy)]
pub struct Type<'b> {
    btf: &'b Btf,
    id: TypeId,
    kind: Kind,
    record: Record,
    /// Offset in the blob of the kind-specific data.
    extra: usize,
}

/// A member of a struct or union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'b> {
    /// Its name; empty for an anonymous struct or union member.
    pub name: &'b str,
    /// Its type.
    pub type_id: TypeId,
    /// Offset of its first bit from the start of the containing type.
    pub bit_offset: u32,
    /// Width of a bit-field, 0 for an ordinary member.
    pub bitfield_size: u32,
}

/// An array: element type and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Array {
    pub element: TypeId,
    pub len: u32,
}

/// An integer type's encoding (`BTF_INT_*`) and, for old-style bit-fields, its bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int {
    pub signed: bool,
    pub char: bool,
    pub bool: bool,
    /// Bit offset of the value within the integer's storage (old-style bit-fields).
    pub offset: u32,
    /// Bits of value.
    pub bits: u32,
}

/// A parameter of a function prototype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'b> {
    /// Its name; empty when the prototype does not name it.
    pub name: &'b str,
    /// Its type; 0 (with no name) for the `...` that ends a variadic prototype.
    pub type_id: TypeId,
}

/// A named value of an enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enumerator<'b> {
    pub name: &'b str,
    pub value: i64,
}

impl<'b> Type<'b> {
    pub(crate) fn void(btf: &'b Btf) -> Type<'b> {
        Type {
            btf,
            id: 0,
            kind: Kind::Void,
            record: Record { name_off: 0, info: 0, size_or_type: 0 },
            extra: 0,
        }
    }

    pub(crate) fn read(btf: &'b Btf, id: TypeId, at: usize) -> Result<Type<'b>> {
        let record = Record::read(btf.bytes(), at)?;
        Ok(Type { btf, id, kind: record.kind()?, record, extra: at + crate::TYPE_HEADER_LEN })
    }

    /// Its id.
    pub fn id(&self) -> TypeId {
        self.id
    }

    /// What it is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Its name, empty if anonymous.
    pub fn name(&self) -> Result<&'b str> {
        match self.record.name_off {
            0 => Ok(""),
            offset => self.btf.string(offset),
        }
    }

    /// Size in bytes of an integer, float, struct, union, enum or section.
    pub fn size(&self) -> Option<u32> {
        match self.kind {
            Kind::Int
            | Kind::Float
            | Kind::Struct
            | Kind::Union
            | Kind::Enum
            | Kind::Enum64
            | Kind::Datasec => Some(self.record.size_or_type),
            _ => None,
        }
    }

    /// The type a pointer, typedef, qualifier, tag, function or variable refers to.
    pub fn target(&self) -> Result<TypeId> {
        match self.kind {
            Kind::Ptr
            | Kind::Typedef
            | Kind::Volatile
            | Kind::Const
            | Kind::Restrict
            | Kind::Func
            | Kind::FuncProto
            | Kind::Var
            | Kind::DeclTag
            | Kind::TypeTag => Ok(self.record.size_or_type),
            kind => Err(error(format!("type {} is a {kind:?}, which refers to no type", self.id))),
        }
    }

    /// How many members, parameters, enumerators or section entries the type lists.
    pub fn vlen(&self) -> usize {
        self.record.vlen()
    }

    /// The members of a struct or union, in order.
    pub fn members(&self) -> Result<impl Iterator<Item = Result<Member<'b>>> + use<'b>> {
        if !matches!(self.kind, Kind::Struct | Kind::Union) {
            return Err(error(format!("type {} is a {:?}, not a struct or union", self.id, self.kind)));
        }
        let (btf, extra, kind_flag) = (self.btf, self.extra, self.record.kind_flag());
        Ok((0..self.record.vlen()).map(move |i| {
            let at = extra + 12 * i;
            let word = |j: usize| read_u32(btf.bytes(), at + 4 * j);
            let (name_off, type_id, offset) = (word(0)?, word(1)?, word(2)?);
            let (bit_offset, bitfield_size) =
                if kind_flag { (offset & 0xff_ffff, offset >> 24) } else { (offset, 0) };
            let name = if name_off == 0 { "" } else { btf.string(name_off)? };
            Ok(Member { name, type_id, bit_offset, bitfield_size })
        }))
    }

    /// Whether a forward declaration declares a union (else it declares a struct).
    pub fn is_union_fwd(&self) -> bool {
        self.kind == Kind::Fwd && self.record.kind_flag()
    }

    /// The parameters of a function prototype, in order.
    pub fn params(&self) -> Result<Vec<Param<'b>>> {
        if self.kind != Kind::FuncProto {
            return Err(error(format!("type {} is a {:?}, not a function prototype", self.id, self.kind)));
        }
        let bytes = self.btf.bytes();
        (0..self.record.vlen())
            .map(|i| {
                let at = self.extra + 8 * i;
                let (name_off, type_id) = (read_u32(bytes, at)?, read_u32(bytes, at + 4)?);
                let name = if name_off == 0 { "" } else { self.btf.string(name_off)? };
                Ok(Param { name, type_id })
            })
            .collect()
    }

    /// Element type and length of an array.
    pub fn array(&self) -> Result<Array> {
        if self.kind != Kind::Array {
            return Err(error(format!("type {} is a {:?}, not an array", self.id, self.kind)));
        }
        let bytes = self.btf.bytes();
        Ok(Array { element: read_u32(bytes, self.extra)?, len: read_u32(bytes, self.extra + 8)? })
    }

    /// Encoding and bits of an integer.
    pub fn int(&self) -> Result<Int> {
        if self.kind != Kind::Int {
            return Err(error(format!("type {} is a {:?}, not an integer", self.id, self.kind)));
        }
        let raw = read_u32(self.btf.bytes(), self.extra)?;
        let encoding = (raw >> 24) & 0xf;
        Ok(Int {
            signed: encoding & 1 != 0,
            char: encoding & 2 != 0,
            bool: encoding & 4 != 0,
            offset: (raw >> 16) & 0xff,
            bits: raw & 0xff,
        })
    }

    /// Whether an enum's values are signed.
    pub fn is_signed_enum(&self) -> bool {
        matches!(self.kind, Kind::Enum | Kind::Enum64) && self.record.kind_flag()
    }

    /// The named values of an enum (32- or 64-bit).
    pub fn enumerators(&self) -> Result<Vec<Enumerator<'b>>> {
        let (stride, wide) = match self.kind {
            Kind::Enum => (8, false),
            Kind::Enum64 => (12, true),
            kind => return Err(error(format!("type {} is a {kind:?}, not an enum", self.id))),
        };
        let bytes = self.btf.bytes();
        let signed = self.is_signed_enum();
        (0..self.record.vlen())
            .map(|i| {
                let at = self.extra + stride * i;
                let name = self.btf.string(read_u32(bytes, at)?)?;
                let low = read_u32(bytes, at + 4)?;
                let value = match (wide, signed) {
                    (false, true) => i64::from(low as i32),
                    (false, false) => i64::from(low),
                    (true, _) => ((u64::from(read_u32(bytes, at + 8)?) << 32) | u64::from(low)) as i64,
                };
                Ok(Enumerator { name, value })
            })
            .collect()
    }
}

impl std::fmt::Debug for Type<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Type")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("name", &self.name())
            .finish()
    }
}

fn read_u32(data: &[u8], at: usize) -> Result<u32> {
    let bytes = at.checked_add(4).and_then(|end| data.get(at..end));
    let bytes = bytes.ok_or_else(|| error(format!("read at {at} is past the BTF blob's end")))?;
    Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
}
