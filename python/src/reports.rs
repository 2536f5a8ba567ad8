//! How each file of a download or a resource stream ended, as Python sees
//! it: the engine's report, or the error that failed it (the other files
//! are unaffected, issue 10 §2). Reports are kept without copies of the
//! plan's strings: with 100,000 files those would be the bulk.

use crate::convert::to_py;
use crate::errors::download_error;
use fhir_async::origin::redact_text;
use fhir_async::{DownloadError, FileKind, FileReport, FileResult, PlannedFile};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::Path;

/// How one selected file ended.
#[derive(Debug)]
pub enum FileEnd {
    /// Complete; the report without the strings the plan already holds.
    Done(Box<FileReport>),
    /// Failed; nothing of it was kept on disk.
    Failed(DownloadError),
}

impl FileEnd {
    /// The plan entry and the end of a file the client finished.
    pub fn of(result: FileResult) -> (PlannedFile, FileEnd) {
        let FileResult { file, report, error } = result;
        let end = match (error, report) {
            (Some(e), _) => FileEnd::Failed(e),
            (None, Some(mut r)) => {
                if r.url == file.url {
                    r.url = String::new();
                }
                r.file_name = String::new();
                r.resource_type = None;
                FileEnd::Done(Box::new(r))
            }
            (None, None) => FileEnd::Failed(DownloadError::Usage("the file ended without a report".into())),
        };
        (file, end)
    }

    /// Whether the file completed.
    pub fn is_done(&self) -> bool {
        matches!(self, FileEnd::Done(_))
    }

    /// One line for a warning, when the file failed or had invalid lines.
    pub fn problem(&self, name: &str) -> Option<String> {
        match self {
            // The error's text without any URL's query (K10; the core's messages are already so).
            FileEnd::Failed(e) => Some(format!("{name} failed: {}", redact_text(&e.to_string()))),
            FileEnd::Done(r) if r.invalid_lines > 0 => Some(format!(
                "{name}: {} invalid line(s), kept as the server sent them (first: line {})",
                r.invalid_lines,
                r.first_invalid_line.unwrap_or(0)
            )),
            FileEnd::Done(_) => None,
        }
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
                d.set_item("error", download_error(py, e).into_value(py))?;
                d
            }
        };
        Ok(d.into_any().unbind())
    }
}

/// The manifest list's name, as in the engine's JSON.
fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Output => "output",
        FileKind::Error => "error",
        FileKind::Deleted => "deleted",
        FileKind::Attachment => "attachment",
    }
}
