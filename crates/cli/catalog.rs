//! What kql can be asked about itself: the table list, one table's columns, and the
//! Markdown table reference that the README embeds.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, StringArray};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use kql_engine::KernelTable;
use kql_tables::functions::Function;

/// `kql tables`: name, source on this target (what it reads, and for a kernel walk where
/// its types come from and why), where it is defined, description of every table.
pub fn tables(tables: &[Arc<dyn KernelTable>]) -> Result<RecordBatch, ArrowError> {
    let types: Vec<Option<String>> = tables.iter().map(|t| t.types()).collect();
    let origins: Vec<String> = tables.iter().map(|t| t.origin()).collect();
    RecordBatch::try_from_iter([
        ("table", text(tables.iter().map(|t| t.spec().name))),
        ("source", text(tables.iter().map(|t| t.source().kind.name()))),
        ("reads", text(tables.iter().map(|t| t.source().doc))),
        ("types", Arc::new(StringArray::from_iter(types.iter().map(Option::as_deref))) as ArrayRef),
        ("defined", text(origins.iter().map(String::as_str))),
        ("description", text(tables.iter().map(|t| t.spec().doc))),
    ])
}

/// `kql describe TABLE`: the columns of `table`.
pub fn describe(table: &dyn KernelTable) -> Result<RecordBatch, ArrowError> {
    let columns = table.spec().columns;
    RecordBatch::try_from_iter([
        ("column", text(columns.iter().map(|c| c.name))),
        ("type", text(columns.iter().map(|c| c.data_type.sql_name()))),
        ("nullable", flags(columns.iter().map(|c| c.nullable))),
        ("key", flags(columns.iter().map(|c| c.key))),
        ("description", text(columns.iter().map(|c| c.doc))),
    ])
}

/// The Markdown reference of every table and function, as the README carries it.
pub fn reference(tables: &[Arc<dyn KernelTable>], functions: &[Function]) -> String {
    let mut md = String::new();
    for table in tables {
        let _ = writeln!(
            md,
            "### `{}`\n\n{}\n\nDefined: {}. Sources, preferred first:\n",
            table.spec().name,
            table.spec().doc,
            table.origin()
        );
        for source in table.spec().sources {
            let _ = writeln!(md, "- `{}`: {}", source.kind.name(), source.doc);
        }
        md.push('\n');
        md.push_str("| column | type | description |\n|---|---|---|\n");
        for column in table.spec().columns {
            let mut notes = Vec::new();
            if column.key {
                notes.push("key: `=`/`IN` narrow the scan");
            }
            if column.nullable {
                notes.push("nullable");
            }
            let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
            let _ = writeln!(
                md,
                "| `{}` | {} | {}{} |",
                column.name,
                column.data_type.sql_name(),
                column.doc,
                notes
            );
        }
        md.push('\n');
    }
    md.push_str("### Functions\n\n");
    for function in functions {
        let _ = writeln!(md, "- {}", function.doc);
    }
    md
}

fn text<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn flags(values: impl Iterator<Item = bool>) -> ArrayRef {
    Arc::new(BooleanArray::from_iter(values.map(Some)))
}
