//! Arrow and Parquet from NDJSON files (issue 15). The client's `tables`
//! module reads, infers and writes (its schema rule: no field is lost, what
//! does not fit its column goes to `_extra`); this file only hands the
//! result to Python.
//!
//! Arrow crosses through the Arrow PyCapsule interface: [`ArrowStream`]'s
//! `__arrow_c_stream__` exports the Rust `RecordBatchReader` as an
//! `FFI_ArrowArrayStream` in a capsule named `arrow_array_stream`, so
//! pyarrow (`RecordBatchReader.from_stream`), polars and DuckDB take the
//! batches Rust built without a copy. A small export rather than the
//! `pyo3-arrow` crate: its releases follow pyo3 0.30 (we are on 0.26) and
//! bring numpy and chrono-tz into the build.

use crate::errors::raise;
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::RecordBatchReader;
use fhir_async_client::tables::{self, TableError, TableOptions, TableReport};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::Mutex;

type Reader = Box<dyn RecordBatchReader + Send>;

/// The exception for a table error: its code decides the class (`io`:
/// `DownloadError`, `invalid_line`: `InvalidLineError`, `arrow` and
/// `parquet`: `TableError`).
fn table_error(py: Python<'_>, e: &TableError) -> PyErr {
    raise(py, e.code(), &e.to_string(), None)
}

/// The options Python passes (None: the client's defaults).
fn options(row_group_rows: Option<usize>, infer_rows: Option<usize>) -> TableOptions {
    let mut o = TableOptions::default();
    if let Some(n) = row_group_rows {
        o.row_group_rows = n.max(1);
    }
    if let Some(n) = infer_rows {
        o.infer_rows = n.max(1);
    }
    o
}

fn report(py: Python<'_>, r: &TableReport) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item("rows", r.rows)?;
    d.set_item("row_groups", r.row_groups)?;
    d.set_item("bytes", r.bytes)?;
    d.set_item("extra_rows", r.extra_rows)?;
    Ok(d.into_any().unbind())
}

/// A stream of Arrow record batches, read once through the PyCapsule
/// interface (`pyarrow.RecordBatchReader.from_stream(s)`, `polars.from_arrow`
/// of that, DuckDB).
#[pyclass(module = "fhir_async._native", name = "ArrowStream", frozen)]
pub struct ArrowStream {
    reader: Mutex<Option<Reader>>,
}

impl std::fmt::Debug for ArrowStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrowStream").finish_non_exhaustive()
    }
}

#[pymethods]
impl ArrowStream {
    /// The Arrow C stream in a capsule (the consumer takes the stream out of
    /// it; an untaken stream is released with the capsule). A stream is read
    /// once: a second call is a `UsageError`. `requested_schema` is ignored,
    /// as the interface allows.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let reader = self
            .reader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| crate::errors::usage(py, "this Arrow stream was already read"))?;
        let stream = FFI_ArrowArrayStream::new(reader);
        let name = CString::new("arrow_array_stream").expect("no NUL in the name");
        PyCapsule::new(py, stream, Some(name))
    }

    /// The schema of the batches (as the Arrow C stream carries it), as text.
    fn schema(&self, py: Python<'_>) -> PyResult<String> {
        let g = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let r = g.as_ref().ok_or_else(|| crate::errors::usage(py, "this Arrow stream was already read"))?;
        Ok(format!("{:?}", r.schema()))
    }

    fn __repr__(&self) -> String {
        let read = self.reader.lock().unwrap_or_else(|p| p.into_inner()).is_none();
        format!("<fhir_async._native.ArrowStream{}>", if read { " (read)" } else { "" })
    }
}

/// NDJSON (or `.ndjson.gz`) files of one resource type as Arrow batches,
/// inferred and read by the client's `tables::ndjson_reader` as they are
/// consumed.
#[pyfunction]
#[pyo3(signature = (paths, row_group_rows=None, infer_rows=None))]
pub fn ndjson_arrow(
    py: Python<'_>,
    paths: Vec<PathBuf>,
    row_group_rows: Option<usize>,
    infer_rows: Option<usize>,
) -> PyResult<ArrowStream> {
    let o = options(row_group_rows, infer_rows);
    let reader = py.detach(|| tables::ndjson_reader(&paths, o)).map_err(|e| table_error(py, &e))?;
    Ok(ArrowStream { reader: Mutex::new(Some(reader)) })
}

/// NDJSON files of one type into one Parquet file (zstd, row groups bounded
/// in memory); returns `{rows, row_groups, bytes, extra_rows}`.
#[pyfunction]
#[pyo3(signature = (paths, out, row_group_rows=None, infer_rows=None))]
pub fn ndjson_to_parquet(
    py: Python<'_>,
    paths: Vec<PathBuf>,
    out: PathBuf,
    row_group_rows: Option<usize>,
    infer_rows: Option<usize>,
) -> PyResult<Py<PyAny>> {
    let o = options(row_group_rows, infer_rows);
    let r = py.detach(|| tables::ndjson_to_parquet(&paths, &out, o)).map_err(|e| table_error(py, &e))?;
    report(py, &r)
}

/// `(type, path)` pairs into `<out_dir>/<Type>.parquet` each; returns
/// `[(type, {rows, row_groups, bytes, extra_rows})]`.
#[pyfunction]
#[pyo3(signature = (files, out_dir, row_group_rows=None, infer_rows=None))]
pub fn folder_to_parquet(
    py: Python<'_>,
    files: Vec<(String, PathBuf)>,
    out_dir: PathBuf,
    row_group_rows: Option<usize>,
    infer_rows: Option<usize>,
) -> PyResult<Vec<(String, Py<PyAny>)>> {
    let o = options(row_group_rows, infer_rows);
    let done = py.detach(|| tables::folder_to_parquet(&files, &out_dir, o)).map_err(|e| table_error(py, &e))?;
    done.iter().map(|(t, r)| Ok((t.clone(), report(py, r)?))).collect()
}
