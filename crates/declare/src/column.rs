//! [`Column`]: an Arrow column built while a scan computes its values, each value converted
//! to the column's type as it arrives (no table of intermediate values); a value that does
//! not fit the type is NULL and reported to the caller.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, StringBuilder, TimestampNanosecondBuilder,
    UInt16Builder, UInt32Builder, UInt64Builder,
};
use kql_engine::ColumnType;

use crate::walk::Value;

/// One output column being built.
pub(crate) struct Column {
    name: String,
    ty: ColumnType,
    builder: Builder,
}

enum Builder {
    UInt16(UInt16Builder),
    Int32(Int32Builder),
    UInt32(UInt32Builder),
    Int64(Int64Builder),
    UInt64(UInt64Builder),
    Timestamp(TimestampNanosecondBuilder),
    Boolean(BooleanBuilder),
    Utf8(StringBuilder),
}

impl Column {
    /// An empty column `name` of `ty` with room for `rows` values.
    pub fn new(name: &str, ty: ColumnType, rows: usize) -> Column {
        let builder = match ty {
            ColumnType::UInt16 => Builder::UInt16(UInt16Builder::with_capacity(rows)),
            ColumnType::Int32 => Builder::Int32(Int32Builder::with_capacity(rows)),
            ColumnType::UInt32 => Builder::UInt32(UInt32Builder::with_capacity(rows)),
            ColumnType::Int64 => Builder::Int64(Int64Builder::with_capacity(rows)),
            ColumnType::UInt64 => Builder::UInt64(UInt64Builder::with_capacity(rows)),
            ColumnType::Timestamp => {
                Builder::Timestamp(TimestampNanosecondBuilder::with_capacity(rows).with_data_type(ty.arrow()))
            }
            ColumnType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(rows)),
            ColumnType::Utf8 => Builder::Utf8(StringBuilder::with_capacity(rows, rows * 16)),
        };
        Column { name: name.to_string(), ty, builder }
    }

    /// Appends `value`; `Err` says why it became NULL when it does not fit the type.
    #[inline]
    pub fn push(&mut self, value: Value) -> Result<(), String> {
        let int = match &value {
            Value::Int(n) => Some(*n),
            Value::Bool(b) => Some(i128::from(*b)),
            Value::Null | Value::Text(_) => None,
        };
        let null = matches!(value, Value::Null);
        let fits = match &mut self.builder {
            Builder::UInt16(b) => append(b, null, int.and_then(|n| u16::try_from(n).ok())),
            Builder::Int32(b) => append(b, null, int.and_then(|n| i32::try_from(n).ok())),
            Builder::UInt32(b) => append(b, null, int.and_then(|n| u32::try_from(n).ok())),
            Builder::Int64(b) => append(b, null, int.and_then(|n| i64::try_from(n).ok())),
            Builder::UInt64(b) => append(b, null, int.and_then(|n| u64::try_from(n).ok())),
            Builder::Timestamp(b) => append(b, null, int.and_then(|n| i64::try_from(n).ok())),
            Builder::Boolean(b) => {
                b.append_option(int.map(|n| n != 0));
                true
            }
            Builder::Utf8(b) => {
                match value {
                    Value::Null => b.append_null(),
                    Value::Text(ref text) => b.append_value(text),
                    Value::Int(n) => b.append_value(n.to_string()),
                    Value::Bool(v) => b.append_value(v.to_string()),
                }
                true
            }
        };
        match fits {
            true => Ok(()),
            false => Err(format!("column {}: {value:?} is not a {}", self.name, self.ty.sql_name())),
        }
    }

    /// Appends the integer `n` (a `_Bool` as 0 or 1), as [`Column::push`] would
    /// `Value::Int(n)` but without building the `Value`.
    #[inline]
    pub fn push_int(&mut self, n: i128) -> Result<(), String> {
        let fits = match &mut self.builder {
            Builder::UInt16(b) => append(b, false, u16::try_from(n).ok()),
            Builder::Int32(b) => append(b, false, i32::try_from(n).ok()),
            Builder::UInt32(b) => append(b, false, u32::try_from(n).ok()),
            Builder::Int64(b) => append(b, false, i64::try_from(n).ok()),
            Builder::UInt64(b) => append(b, false, u64::try_from(n).ok()),
            Builder::Timestamp(b) => append(b, false, i64::try_from(n).ok()),
            Builder::Boolean(b) => {
                b.append_value(n != 0);
                true
            }
            Builder::Utf8(b) => {
                b.append_value(n.to_string());
                true
            }
        };
        match fits {
            true => Ok(()),
            false => Err(format!("column {}: Int({n}) is not a {}", self.name, self.ty.sql_name())),
        }
    }

    /// Appends `text`, as [`Column::push`] would `Value::Text`, without owning it.
    #[inline]
    pub fn push_text(&mut self, text: &str) -> Result<(), String> {
        match &mut self.builder {
            Builder::Utf8(b) => {
                b.append_value(text);
                Ok(())
            }
            _ => self.push(Value::Text(text.to_string())),
        }
    }

    /// The finished Arrow array.
    pub fn finish(self) -> ArrayRef {
        match self.builder {
            Builder::UInt16(mut b) => Arc::new(b.finish()),
            Builder::Int32(mut b) => Arc::new(b.finish()),
            Builder::UInt32(mut b) => Arc::new(b.finish()),
            Builder::Int64(mut b) => Arc::new(b.finish()),
            Builder::UInt64(mut b) => Arc::new(b.finish()),
            Builder::Timestamp(mut b) => Arc::new(b.finish()),
            Builder::Boolean(mut b) => Arc::new(b.finish()),
            Builder::Utf8(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Appends `fitted`, or NULL; false when a value that is not NULL did not fit.
#[inline(always)]
fn append<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
    builder: &mut datafusion::arrow::array::PrimitiveBuilder<T>,
    null: bool,
    fitted: Option<T::Native>,
) -> bool {
    builder.append_option(fitted);
    null || fitted.is_some()
}
