//! Raising the exception hierarchy declared once in `fhir_async/errors.py`.
//!
//! Work done without the GIL returns a [`Failure`]; it becomes a Python
//! exception only once the GIL is held again.

use crate::convert::to_py;
use fhir_async::{DownloadError, Error};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Why a native call stopped, before it is turned into a Python exception.
#[derive(Debug)]
pub enum Failure {
    /// The engine refused (misuse) or the server broke the protocol.
    Core(Error),
    /// A file download failed for good.
    Download(DownloadError),
    /// Writing to disk failed.
    Io(String),
    /// The API was used wrongly in the binding itself.
    Usage(String),
    /// An exception raised by Python code (a token callable, Ctrl-C).
    Py(PyErr),
    /// Another part of the same call failed or was interrupted.
    Stopped,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Core(e)
    }
}

impl From<DownloadError> for Failure {
    fn from(e: DownloadError) -> Self {
        Failure::Download(e)
    }
}

impl From<PyErr> for Failure {
    fn from(e: PyErr) -> Self {
        Failure::Py(e)
    }
}

impl Failure {
    /// The Python exception.
    pub fn into_py(self, py: Python<'_>) -> PyErr {
        match self {
            Failure::Core(e) => core_error(py, &e),
            Failure::Download(e) => download_error(py, &e),
            Failure::Io(m) => raise(py, "DownloadError", &m, "io", None),
            Failure::Usage(m) => raise(py, "UsageError", &m, "usage", None),
            Failure::Py(e) => e,
            Failure::Stopped => raise(py, "Cancelled", "stopped", "cancelled", None),
        }
    }
}

/// An exception of class `class` from `fhir_async.errors`.
pub fn raise(py: Python<'_>, class: &str, message: &str, code: &str, details: Option<Py<PyAny>>) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let module = ERRORS.get_or_try_init(py, || py.import("fhir_async.errors").map(Bound::unbind))?;
        let cls = module.bind(py).getattr(class)?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("code", code)?;
        if let Some(d) = details {
            kwargs.set_item("details", d)?;
        }
        let exc = cls.call((message,), Some(&kwargs))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

/// The Python exception for an engine error (its class follows the code).
pub fn core_error(py: Python<'_>, e: &Error) -> PyErr {
    let class = match e {
        Error::Usage { .. } => "UsageError",
        Error::Protocol { .. } => "ProtocolError",
        Error::InsecureUrl { .. } => "InsecureUrl",
        Error::DeadlineExceeded { .. } => "DeadlineExceeded",
        Error::RetriesExhausted { .. } => "RetriesExhausted",
        Error::Unauthorized { .. } => "Unauthorized",
        Error::KickoffIndeterminate { .. } => "KickoffIndeterminate",
        _ => "FhirAsyncError",
    };
    raise(py, class, &e.to_string(), e.code(), to_py(py, e).ok())
}

/// The Python exception for a failed file download (`DownloadError`, `.code` says why).
pub fn download_error(py: Python<'_>, e: &DownloadError) -> PyErr {
    let class = match e {
        DownloadError::Usage(_) => "UsageError",
        DownloadError::InvalidLine { .. } => "InvalidLineError",
        _ => "DownloadError",
    };
    raise(py, class, &e.to_string(), e.code(), to_py(py, e).ok())
}

/// Emits a `fhir_async.FhirAsyncWarning` (an error where warnings are errors).
pub fn warn(py: Python<'_>, message: &str) -> PyResult<()> {
    let module = ERRORS.get_or_try_init(py, || py.import("fhir_async.errors").map(Bound::unbind))?;
    let category = module.bind(py).getattr("FhirAsyncWarning")?;
    let text = std::ffi::CString::new(message.replace('\0', " ")).unwrap_or_default();
    PyErr::warn(py, &category, &text, 2)
}
