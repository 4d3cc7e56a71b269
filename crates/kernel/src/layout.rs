//! [`Layout`]: the offsets of the members a walk needs in one struct type, so each instance
//! is fetched with a single read and decoded locally.

use std::borrow::Cow;

use kql_drgn::{Field, Result};

use crate::{Memory, Types};

/// Members of one struct type and the byte span that covers them all.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The type's name, for error messages (e.g. `struct sock`).
    pub type_name: String,
    fields: Vec<Option<Field>>,
    span: usize,
}

impl Layout {
    /// Looks up `designators` in `type_name`; those in `optional` may be missing in this
    /// kernel (their [`Layout::field`] is then `None`).
    pub fn new(types: &Types, type_name: &str, designators: &[&str], optional: &[&str]) -> Result<Layout> {
        let ty = types.find_type(type_name)?;
        let mut fields = Vec::with_capacity(designators.len());
        for designator in designators {
            match ty.field(designator) {
                Ok(field) => fields.push(Some(field)),
                Err(_) if optional.contains(designator) => fields.push(None),
                Err(e) => return Err(e.context(type_name)),
            }
        }
        let span = fields.iter().flatten().map(Field::end).max().unwrap_or(0);
        Ok(Layout { type_name: type_name.to_string(), fields, span })
    }

    /// The `index`-th designator's field, `None` if optional and absent.
    pub fn field(&self, index: usize) -> Option<Field> {
        self.fields[index]
    }

    /// The struct at `address`, up to its last needed member, in one read (or none at all
    /// when the vmcore is mapped).
    pub fn read<'p>(&self, mem: &Memory<'p>, address: u64) -> Result<Cow<'p, [u8]>> {
        mem.bytes(address, self.span).map_err(|e| e.context(format!("{} at {address:#x}", self.type_name)))
    }

    /// The integer member `index` from bytes read by [`Layout::read`]; 0 if absent.
    pub fn u64(&self, bytes: &[u8], index: usize) -> Result<u64> {
        match self.fields[index] {
            Some(field) => field.read_u64(bytes),
            None => Ok(0),
        }
    }
}
