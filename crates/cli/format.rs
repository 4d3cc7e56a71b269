//! Printing query results: an aligned table for people, CSV, JSON and NDJSON for programs.

use std::io::Write;

use arrow::csv::WriterBuilder as CsvWriterBuilder;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::json::WriterBuilder as JsonWriterBuilder;
use arrow::json::writer::{JsonArray, LineDelimited};
use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches_with_schema;

/// Output format of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned table with a header.
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// Write `batches` (rows of `schema`) to `out` in `format`.
pub fn write(
    out: &mut dyn Write,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), ArrowError> {
    match format {
        Format::Table => {
            let table = pretty_format_batches_with_schema(schema.clone(), batches)?;
            writeln!(out, "{table}")?;
        }
        Format::Csv => {
            let mut writer = CsvWriterBuilder::new().with_header(true).build(&mut *out);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for batch in batches {
                writer.write(batch)?;
            }
        }
        Format::Json => {
            let mut writer =
                JsonWriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(&mut *out);
            writer.write_batches(&batches.iter().collect::<Vec<_>>())?;
            writer.finish()?;
            drop(writer);
            writeln!(out)?;
        }
        Format::Ndjson => {
            let mut writer =
                JsonWriterBuilder::new().with_explicit_nulls(true).build::<_, LineDelimited>(&mut *out);
            writer.write_batches(&batches.iter().collect::<Vec<_>>())?;
            writer.finish()?;
        }
    }
    out.flush()?;
    Ok(())
}
