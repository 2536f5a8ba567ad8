//! # Tables: NDJSON to Arrow and Parquet (feature `tables`)
//!
//! A Bulk Data export is NDJSON files, one or more per resource type. This
//! module turns the files of one type into one Parquet file (zstd), or into a
//! stream of Arrow record batches, without holding a file in memory: lines are
//! parsed and written a batch at a time, and a row group is bounded by
//! [`TableOptions::row_group_rows`] and [`TableOptions::row_group_bytes`].
//! [`TableWriter`] and [`ndjson_reader`] parse on [`TableOptions::threads`]
//! threads (one per core by default) in blocks of ~4 MiB of lines, and hand
//! the rows out in the files' order; the writer encodes and compresses on one
//! more thread. Memory: a few blocks per thread, their batches, and the row
//! group being written (about 100 MiB for a 1 GB export, see BENCHMARKS.md).
//!
//! ```no_run
//! use fhir_async_client::tables::{folder_to_parquet, TableOptions};
//! use std::path::PathBuf;
//!
//! let files = vec![
//!     ("Patient".to_string(), PathBuf::from("out/Patient-1.ndjson")),
//!     ("Observation".to_string(), PathBuf::from("out/Observation-1.ndjson.gz")),
//!     ("Observation".to_string(), PathBuf::from("out/Observation-2.ndjson")),
//! ];
//! // out/parquet/Patient.parquet and out/parquet/Observation.parquet
//! for (ty, report) in folder_to_parquet(&files, "out/parquet".as_ref(), TableOptions::default())? {
//!     println!("{ty}: {} rows, {} in _extra", report.rows, report.extra_rows);
//! }
//! # Ok::<(), fhir_async_client::tables::TableError>(())
//! ```
//!
//! ## The schema rule: no field is lost
//!
//! Resources of one type do not share one fixed set of fields, so the schema
//! is inferred (arrow-json's inference, line by line, merged) from the first
//! [`TableOptions::infer_rows`] lines of the type, then fixed. A row's
//! top-level field whose value does not fit its column exactly goes, as is,
//! into the Utf8 column [`EXTRA_COLUMN`] (`_extra`): a JSON object text of the
//! top-level fields that did not fit, null when all fit. A value does not fit
//! when it holds a key the sample never had (at any depth), when its type
//! differs (an object where the sample had a string), or when the column
//! would change it (a 36.6 in a column inferred as integers). So a row read
//! back is its non-null columns merged with its `_extra`: the original
//! resource, key order aside. Choice types (`valueQuantity`, `valueString`,
//! ...) are distinct keys, so each has its own column when the sample saw it,
//! and lands in `_extra` when it first appears later.
//!
//! The details of "exactly":
//! - **Numbers round-trip by value.** A column is Int64 when the sample held
//!   only integers, Float64 when it held any other number; an integer in a
//!   Float64 column reads back as the equal double (3 → 3.0) and must be exact
//!   in one (|n| ≤ 2^53), otherwise it goes to `_extra`. A decimal keeps its
//!   value, not its spelling: FHIR's `1.50` reads back as `1.5` (in `_extra`
//!   too). Compare numbers as numbers.
//! - **Nulls.** `null` inside an array stays a null item (FHIR's `_given:
//!   [null, {...}]`). A member whose value is `null` (not valid FHIR) is kept,
//!   with its whole top-level field, in `_extra`, so it does not read back as
//!   an absent key.
//! - **Empty arrays** stay empty lists, not nulls. An array that was always
//!   empty in the sample is a list of nulls: a later non-empty one goes to
//!   `_extra`. An object that was always empty in the sample has no column
//!   (Parquet cannot store a struct without fields): such values are in
//!   `_extra`. A bigger [`TableOptions::infer_rows`] sees more shapes.
//! - Dates and instants stay strings, as in the JSON.
//!
//! A line that is not a JSON object fails the conversion
//! ([`TableError::InvalidLine`], with the file and line number); blank lines
//! are skipped. Gzip files (one or more members) are read as they are,
//! recognised by their first bytes.

mod convert;
mod error;
mod fit;
mod pipeline;
mod reader;
mod schema;
mod source;
mod writer;

pub use error::TableError;
pub use schema::EXTRA_COLUMN;
pub use source::resource_type_of;
pub use writer::TableWriter;

// The Arrow and Parquet crates of our API, for callers that need their types
// (e.g. `arrow_array::ffi_stream` with the `ffi` feature for Python).
pub use arrow_array;
pub use arrow_schema;
pub use parquet;

use std::path::{Path, PathBuf};

/// How tables are made. The defaults suit exports of any size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOptions {
    /// Rows per Parquet row group at most (default 65,536).
    pub row_group_rows: usize,
    /// A row group is closed once the writer's memory for it (encoded pages,
    /// dictionaries and buffers: parquet's `ArrowWriter::memory_size`, checked
    /// every 1,024 rows) reaches this, whatever its rows (default 128 MiB):
    /// memory is bounded by the row group, not by the file, even for big
    /// resources.
    pub row_group_bytes: usize,
    /// Lines sampled to fix the schema (default 1,000).
    pub infer_rows: usize,
    /// zstd level, 1 to 22 (default 3).
    pub zstd_level: i32,
    /// Threads that parse lines (default 0: one per core); one more encodes and compresses.
    pub threads: usize,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            row_group_rows: 65_536,
            row_group_bytes: 128 << 20,
            infer_rows: 1_000,
            zstd_level: 3,
            threads: 0,
        }
    }
}

/// What a conversion wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    /// The Parquet file.
    pub path: PathBuf,
    /// Rows (resources) written.
    pub rows: u64,
    /// Rows with a non-null `_extra` (a field that did not fit the schema).
    pub extra_rows: u64,
    /// Parquet row groups.
    pub row_groups: usize,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Columns, `_extra` included.
    pub columns: usize,
}

/// A streaming Arrow reader over NDJSON / NDJSON.gz files of one resource
/// type, read in turn (same schema rule as Parquet), parsed on
/// [`TableOptions::threads`] threads, batches in file order. The first
/// [`TableOptions::infer_rows`] lines are read here, to fix the schema; an
/// error while reading later comes out of the iterator as an
/// `ArrowError::ExternalError` holding the [`TableError`] (`TableError::from`
/// takes it back).
pub fn ndjson_reader(
    paths: &[PathBuf],
    options: TableOptions,
) -> Result<Box<dyn arrow_array::RecordBatchReader + Send>, TableError> {
    Ok(Box::new(reader::NdjsonReader::open(paths, &options)?))
}

/// The NDJSON / NDJSON.gz files of one resource type into one Parquet file
/// at `out` (written as `out.tmp`, renamed when complete).
pub fn ndjson_to_parquet(paths: &[PathBuf], out: &Path, options: TableOptions) -> Result<TableReport, TableError> {
    let mut writer = TableWriter::create(out, options)?;
    writer.push_files(&mut source::Lines::new(paths))?;
    writer.finish()
}

/// The files of a download, `(resource type, path)`, into
/// `<out_dir>/<Type>.parquet`, one per type (`out_dir` is created), in the
/// order types first appear in `files`. One type at a time, each on every
/// core ([`TableOptions::threads`]), so memory is one type's pipeline. The
/// first error stops the conversion (the files already written stay).
pub fn folder_to_parquet(
    files: &[(String, PathBuf)],
    out_dir: &Path,
    options: TableOptions,
) -> Result<Vec<(String, TableReport)>, TableError> {
    let mut by_type: Vec<(&str, Vec<PathBuf>)> = Vec::new();
    for (ty, path) in files {
        if !is_plain_name(ty) {
            return Err(TableError::Io { path: ty.clone(), message: "not a resource type name".into() });
        }
        match by_type.iter_mut().find(|(t, _)| t == ty) {
            Some((_, paths)) => paths.push(path.clone()),
            None => by_type.push((ty, vec![path.clone()])),
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|e| TableError::io(out_dir, e))?;
    let mut out = Vec::with_capacity(by_type.len());
    for (ty, paths) in by_type {
        let report = ndjson_to_parquet(&paths, &out_dir.join(format!("{ty}.parquet")), options.clone())?;
        out.push((ty.to_string(), report));
    }
    Ok(out)
}

/// The completed data files of a download, `(resource type, path)`, for
/// [`folder_to_parquet`]: `output` files only (error and deleted files are
/// OperationOutcomes and Bundles, not the exported type), failed files left out.
pub fn summary_files(summary: &crate::DownloadSummary) -> Vec<(String, PathBuf)> {
    summary
        .files
        .iter()
        .filter(|f| f.result.error.is_none() && f.result.file.kind == fhir_async::FileKind::Output)
        .filter_map(|f| Some((f.result.file.resource_type.clone()?, f.path.clone()?)))
        .collect()
}

/// A resource type as a file name: letters, digits, `-` and `_`, nothing else.
fn is_plain_name(ty: &str) -> bool {
    !ty.is_empty() && ty.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
