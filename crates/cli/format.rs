//! Printing query results: an aligned table for people, CSV, JSON, NDJSON and Parquet for
//! programs.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, StringArray};
use arrow::compute::cast;
use arrow::csv::WriterBuilder as CsvWriterBuilder;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::WriterBuilder as JsonWriterBuilder;
use arrow::json::writer::{JsonArray, LineDelimited};
use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches_with_schema;
use parquet::arrow::ArrowWriter;

/// Longest text the table format shows in one cell; csv and json keep every character.
const MAX_CELL_CHARS: usize = 100;

/// Output format of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned table with a header; text longer than 100 characters is cut with `…`.
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet, one file per statement; only to a file (`--output`) or a pipe.
    Parquet,
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
            let shortened = batches.iter().map(shorten_text).collect::<Result<Vec<_>, _>>()?;
            let table = pretty_format_batches_with_schema(schema.clone(), &shortened)?;
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
        Format::Parquet => out.write_all(&parquet(schema, batches)?)?,
    }
    out.flush()?;
    Ok(())
}

/// The rows as one Parquet file (built in memory: the writer wants `Send`, `out` is not).
fn parquet(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let external = |e: parquet::errors::ParquetError| ArrowError::ExternalError(Box::new(e));
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), None).map_err(external)?;
    for batch in batches {
        writer.write(batch).map_err(external)?;
    }
    writer.into_inner().map_err(external)
}

/// `batch` with every text cell longer than [`MAX_CELL_CHARS`] cut short with `…`.
fn shorten_text(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .map(|column| match column.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let text = cast(column, &DataType::Utf8)?;
                let shortened: StringArray = text.as_string::<i32>().iter().map(|v| v.map(shorten)).collect();
                Ok(Arc::new(shortened) as ArrayRef)
            }
            _ => Ok(Arc::clone(column)),
        })
        .collect::<Result<Vec<_>, ArrowError>>()?;
    let names = batch.schema().fields().iter().map(|field| field.name().clone()).collect::<Vec<_>>();
    RecordBatch::try_from_iter(names.into_iter().zip(columns))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_CELL_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}
