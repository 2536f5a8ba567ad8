//! How each file of a download or a resource stream ended: its report, or
//! the error that failed it. One bad file never loses the others (issue 10
//! §2): a per-file failure is recorded here and the call goes on; only
//! Ctrl-C, an exception from Python code, or a stop ends the whole call.

use crate::convert::to_py;
use crate::errors::{core_error, download_error, raise, Failure};
use fhir_async::{DownloadAction, DownloadError, Error, FileDownload, FileKind, FileReport, PlannedFile};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::Path;

/// Why one file failed (the others are unaffected).
#[derive(Debug)]
pub enum FileError {
    /// The engine ended the file (HTTP, count, blocked, retries, invalid line...).
    Download(DownloadError),
    /// The manifest refresh the file needed failed.
    Core(Error),
    /// Writing or reading the file on disk failed.
    Io(String),
    /// The file was refused by the binding (an unsafe name).
    Usage(String),
}

impl FileError {
    /// A per-file failure, or the failure that ends the whole call.
    pub fn split(f: Failure) -> Result<FileError, Failure> {
        match f {
            Failure::Download(e) => Ok(FileError::Download(e)),
            Failure::Core(e) => Ok(FileError::Core(e)),
            Failure::Io(m) => Ok(FileError::Io(m)),
            Failure::Usage(m) => Ok(FileError::Usage(m)),
            other @ (Failure::Py(_) | Failure::Stopped) => Err(other),
        }
    }

    /// The typed exception (not raised).
    pub fn exception(&self, py: Python<'_>) -> PyErr {
        match self {
            FileError::Download(e) => download_error(py, e),
            FileError::Core(e) => core_error(py, e),
            FileError::Io(m) => raise(py, "DownloadError", m, "io", None),
            FileError::Usage(m) => raise(py, "UsageError", m, "usage", None),
        }
    }

    /// One line for a warning.
    pub fn message(&self) -> String {
        match self {
            FileError::Download(e) => e.to_string(),
            FileError::Core(e) => e.to_string(),
            FileError::Io(m) | FileError::Usage(m) => m.clone(),
        }
    }
}

/// How one planned file ended.
#[derive(Debug)]
pub enum FileEnd {
    /// Complete; the report without the strings the plan already holds.
    Done(Box<FileReport>),
    /// Failed; nothing of it was kept on disk.
    Failed(FileError),
}

impl FileEnd {
    /// Keeps a report without copies of the plan's strings: with 100,000
    /// files (issue 10 §3, memory on hostile input) they would be the bulk.
    pub fn done(mut report: FileReport, file: &PlannedFile) -> FileEnd {
        if report.url == file.url {
            report.url = String::new();
        }
        report.file_name = String::new();
        report.resource_type = None;
        FileEnd::Done(Box::new(report))
    }

    /// Whether the file completed.
    pub fn is_done(&self) -> bool {
        matches!(self, FileEnd::Done(_))
    }

    /// The report as a dict (`path` added when given); a failed file has the
    /// plan's fields and `error`, the typed exception.
    pub fn to_py(&self, py: Python<'_>, file: &PlannedFile, path: Option<&Path>) -> PyResult<Py<PyAny>> {
        let d = match self {
            FileEnd::Done(r) => {
                let mut r = (**r).clone();
                if r.url.is_empty() {
                    r.url = file.url.clone();
                }
                r.file_name = file.file_name.clone();
                r.resource_type = file.resource_type.clone();
                let d = to_py(py, &r)?;
                let d = d.bind(py).downcast::<PyDict>()?.clone();
                if let Some(p) = path {
                    d.set_item("path", p)?;
                }
                d
            }
            FileEnd::Failed(e) => {
                let d = PyDict::new(py);
                d.set_item("url", &file.url)?;
                d.set_item("kind", kind_name(file.kind))?;
                d.set_item("resourceType", &file.resource_type)?;
                d.set_item("fileName", &file.file_name)?;
                d.set_item("expected", file.expected_count)?;
                d.set_item("error", e.exception(py).into_value(py))?;
                d
            }
        };
        Ok(d.into_any().unbind())
    }
}

/// The manifest list's name, as in the engine's JSON.
pub fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Output => "output",
        FileKind::Error => "error",
        FileKind::Deleted => "deleted",
    }
}

/// The report of a finished download.
pub fn report_of(dl: &mut FileDownload) -> Result<FileReport, Failure> {
    match dl.next_action(crate::now_ms())? {
        DownloadAction::Done { report } => Ok(report),
        other => Err(Failure::Usage(format!("the download is not finished: {other:?}"))),
    }
}

/// With `on_invalid_line="raise"`, a file whose report has invalid lines fails
/// with the engine's `InvalidLine` error for the first of them.
pub fn strict_lines(report: &FileReport) -> Result<(), DownloadError> {
    let Some(line) = report.first_invalid_line else {
        return Ok(());
    };
    let message = report.invalid.iter().find(|l| l.line == line).map(|l| l.message.clone()).unwrap_or_default();
    Err(DownloadError::InvalidLine { url: report.url.clone(), line, message })
}
