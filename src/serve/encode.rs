//! Query results as response bodies, written while the result is read: JSON and CSV row by
//! row from DuckDB's own text and JSON of each value, Arrow IPC and Parquet batch by batch
//! with DuckDB's column types, into the response's [`BodyWriter`], which sends it in blocks:
//! a large result is never held as one string.

use crate::error::{Error, Result};
use crate::http::BodyWriter;
use std::io::Write;

/// How a query's rows are returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Arrow,
    Parquet,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "json" => Format::Json,
            "csv" => Format::Csv,
            "arrow" => Format::Arrow,
            "parquet" => Format::Parquet,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// A response body being written in one of the formats; it owns the body's writing end.
pub enum Encoder {
    /// `{"build_id", "columns", "rows": [...], "truncated"}`, a row at a time.
    Json {
        out: BodyWriter,
        names: Vec<String>,
        first: bool,
        truncated: bool,
    },
    /// A header line, then a line per row; NULL is an empty field.
    Csv(BodyWriter),
    Arrow(
        arrow::datatypes::SchemaRef,
        Box<arrow::ipc::writer::StreamWriter<BodyWriter>>,
    ),
    Parquet(
        arrow::datatypes::SchemaRef,
        Box<parquet::arrow::ArrowWriter<BodyWriter>>,
    ),
}

fn encode_err(e: impl std::fmt::Display) -> Error {
    Error::new("LF606", format!("cannot encode the result: {e}"))
}

impl Encoder {
    /// A JSON or CSV body of rows with these column names; its head is written.
    pub fn rows(
        format: Format,
        mut out: BodyWriter,
        build_id: &str,
        names: &[String],
        truncated: bool,
    ) -> Result<Encoder> {
        if format == Format::Csv {
            csv_line(&mut out, names.iter().map(|n| Some(n.as_str())))?;
            return Ok(Encoder::Csv(out));
        }
        write!(
            out,
            "{{\"build_id\":{},\"columns\":{},\"rows\":[",
            serde_json::Value::from(build_id),
            serde_json::Value::from(names.to_vec())
        )
        .map_err(encode_err)?;
        Ok(Encoder::Json {
            out,
            names: names.to_vec(),
            first: true,
            truncated,
        })
    }

    /// An Arrow IPC stream or a Parquet file of batches with DuckDB's `schema`, which
    /// carries the build id as metadata (`lakeflow.build_id`).
    pub fn batches(
        format: Format,
        out: BodyWriter,
        schema: &duckdb::arrow::datatypes::Schema,
        build_id: &str,
    ) -> Result<Encoder> {
        let schema = std::sync::Arc::new(
            convert_schema(schema)?.with_metadata(
                [("lakeflow.build_id".to_string(), build_id.to_string())]
                    .into_iter()
                    .collect(),
            ),
        );
        Ok(match format {
            Format::Parquet => {
                let w = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), None)
                    .map_err(encode_err)?;
                Encoder::Parquet(schema, Box::new(w))
            }
            _ => {
                let w =
                    arrow::ipc::writer::StreamWriter::try_new(out, &schema).map_err(encode_err)?;
                Encoder::Arrow(schema, Box::new(w))
            }
        })
    }

    /// One row, each value as DuckDB's text and JSON of it (JSON and CSV bodies).
    pub fn row(&mut self, cells: &[(Option<String>, Option<String>)]) -> Result<()> {
        match self {
            Encoder::Json {
                out, names, first, ..
            } => {
                let sep = if *first { "" } else { "," };
                *first = false;
                let object = crate::query::json_object(names, cells);
                write!(out, "{sep}{object}").map_err(encode_err)
            }
            Encoder::Csv(out) => csv_line(out, cells.iter().map(|(text, _)| text.as_deref())),
            _ => Err(encode_err("rows given to a body of batches")),
        }
    }

    /// One of DuckDB's record batches (Arrow and Parquet bodies).
    pub fn batch(&mut self, batch: duckdb::arrow::record_batch::RecordBatch) -> Result<()> {
        let columns = convert_batch(batch)?.columns().to_vec();
        match self {
            Encoder::Arrow(schema, w) => w.write(&rebuild(schema, columns)?).map_err(encode_err),
            Encoder::Parquet(schema, w) => w.write(&rebuild(schema, columns)?).map_err(encode_err),
            _ => Err(encode_err("a batch given to a body of rows")),
        }
    }

    /// Writes the end of the body and tells the reader it is complete.
    pub fn finish(self) -> Result<()> {
        let out = match self {
            Encoder::Json {
                mut out, truncated, ..
            } => {
                write!(out, "],\"truncated\":{truncated}}}").map_err(encode_err)?;
                out
            }
            Encoder::Csv(out) => out,
            Encoder::Arrow(_, w) => w.into_inner().map_err(encode_err)?,
            Encoder::Parquet(_, w) => w.into_inner().map_err(encode_err)?,
        };
        out.finish().map_err(encode_err)
    }
}

fn rebuild(
    schema: &arrow::datatypes::SchemaRef,
    columns: Vec<arrow::array::ArrayRef>,
) -> Result<arrow::record_batch::RecordBatch> {
    arrow::record_batch::RecordBatch::try_new(schema.clone(), columns).map_err(encode_err)
}

fn csv_line<'a>(out: &mut BodyWriter, cells: impl Iterator<Item = Option<&'a str>>) -> Result<()> {
    let line: Vec<String> = cells
        .map(|c| crate::query::csv_cell(c.unwrap_or("")))
        .collect();
    writeln!(out, "{}", line.join(",")).map_err(encode_err)
}

// DuckDB's Rust binding and the Arrow/Parquet writers use two releases of the arrow crate.
// Batches cross between them the way Arrow data crosses any two libraries: DuckDB's side
// exports them through the Arrow C data interface and the writers' side imports them, so
// no buffer is copied.

fn ffi_err(e: impl std::fmt::Display) -> Error {
    Error::new(
        "LF606",
        format!("cannot hand the result to the Arrow writer: {e}"),
    )
}

fn convert_schema(schema: &duckdb::arrow::datatypes::Schema) -> Result<arrow::datatypes::Schema> {
    let exported = duckdb::arrow::ffi::FFI_ArrowSchema::try_from(schema).map_err(ffi_err)?;
    let raw = Box::into_raw(Box::new(exported));
    // SAFETY: `raw` holds a C data interface schema exported just above; `from_raw` moves it
    // out and leaves a released (empty) one behind, which the box then drops as a no-op.
    let imported = unsafe {
        let imported = arrow::ffi::FFI_ArrowSchema::from_raw(raw.cast());
        drop(Box::from_raw(raw));
        imported
    };
    arrow::datatypes::Schema::try_from(&imported).map_err(ffi_err)
}

fn convert_batch(
    batch: duckdb::arrow::record_batch::RecordBatch,
) -> Result<arrow::record_batch::RecordBatch> {
    let data =
        duckdb::arrow::array::Array::into_data(duckdb::arrow::array::StructArray::from(batch));
    let (array, schema) = duckdb::arrow::ffi::to_ffi(&data).map_err(ffi_err)?;
    let (raw_array, raw_schema) = (
        Box::into_raw(Box::new(array)),
        Box::into_raw(Box::new(schema)),
    );
    // SAFETY: both hold C data interface structs exported just above; `from_raw` moves each
    // out (the imported array now owns the buffers through its release callback) and leaves
    // released ones behind, which the boxes drop as no-ops.
    let (array, schema) = unsafe {
        let array = arrow::ffi::FFI_ArrowArray::from_raw(raw_array.cast());
        let schema = arrow::ffi::FFI_ArrowSchema::from_raw(raw_schema.cast());
        drop(Box::from_raw(raw_array));
        drop(Box::from_raw(raw_schema));
        (array, schema)
    };
    // SAFETY: `array` and `schema` are a matching pair from `to_ffi`.
    let data = unsafe { arrow::ffi::from_ffi(array, &schema) }.map_err(ffi_err)?;
    Ok(arrow::record_batch::RecordBatch::from(
        arrow::array::StructArray::from(data),
    ))
}
