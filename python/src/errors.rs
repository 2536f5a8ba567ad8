//! Raising the exception hierarchy declared once in `fhir_async/errors.py`.
//! The class follows the error's code, which the core owns: the table of
//! codes to classes is `errors.CLASSES` (a test checks it against every code
//! in the core's sources, so a new code cannot fall through silently).

use crate::convert::to_py;
use fhir_async::origin::redact_text;
use fhir_async::{AuthError, CallbackError, DownloadError, Error};
use fhir_async_client::ClientError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    Ok(ERRORS.get_or_try_init(py, || py.import("fhir_async.errors").map(Bound::unbind))?.bind(py))
}

/// The exception for `code` (`errors.for_code`: the class the code names).
pub fn raise(py: Python<'_>, code: &str, message: &str, details: Option<Py<PyAny>>) -> PyErr {
    raise_for(py, code, message, details, false)
}

/// Like [`raise`]; `file`: a file's error (a `DownloadError` whatever its code).
fn raise_for(py: Python<'_>, code: &str, message: &str, details: Option<Py<PyAny>>, file: bool) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("file", file)?;
        if let Some(d) = details {
            kwargs.set_item("details", d)?;
        }
        let exc = module(py)?.getattr("for_code")?.call((code, message), Some(&kwargs))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

/// A `UsageError` (code `usage`).
pub fn usage(py: Python<'_>, message: &str) -> PyErr {
    raise(py, "usage", message, None)
}

/// The exception for an engine error. No message quotes a URL's query (a
/// signed URL's signature is a credential, K10).
pub fn core_error(py: Python<'_>, e: &Error) -> PyErr {
    raise(py, e.code(), &redact_text(&e.to_string()), to_py(py, e).ok())
}

/// The exception for a file's error.
pub fn download_error(py: Python<'_>, e: &DownloadError) -> PyErr {
    raise_for(py, e.code(), &redact_text(&e.to_string()), to_py(py, e).ok(), true)
}

/// The exception for a callback that failed its check.
pub fn callback_error(py: Python<'_>, e: &CallbackError) -> PyErr {
    raise(py, e.code(), &e.to_string(), None)
}

/// The exception for an authorization failure (SMART), with the server's words.
pub fn auth_error(py: Python<'_>, e: &AuthError) -> PyErr {
    raise(py, e.code(), &e.to_string(), to_py(py, e).ok())
}

/// The exception for a client error: its code decides the class.
pub fn client_error(py: Python<'_>, e: &ClientError) -> PyErr {
    match e {
        ClientError::Engine(e) => core_error(py, e),
        ClientError::Download(e) => download_error(py, e),
        ClientError::Auth(e) => auth_error(py, e),
        other => raise(py, other.code(), &redact_text(&other.to_string()), None),
    }
}

/// The exception for a connection setting that cannot be used (a CA file that cannot be read
/// or holds no certificate, a proxy URL ureq refuses): a `UsageError` naming the file or the
/// URL (its password hidden), with `details["path"]` (the CA file) or `details["proxy"]`.
pub fn connection_error(py: Python<'_>, e: &ClientError, ca_files: &[std::path::PathBuf]) -> PyErr {
    match e {
        ClientError::Io { path, message } => {
            let (what, key) = if ca_files.iter().any(|f| f.display().to_string() == *path) {
                ("ca_files", "path")
            } else {
                ("proxy", "proxy")
            };
            let details = PyDict::new(py);
            let details = details.set_item(key, path).map(|()| details.into_any().unbind()).ok();
            raise(py, "usage", &format!("{what}: {path}: {message}"), details)
        }
        other => client_error(py, other),
    }
}

/// Emits a `fhir_async.FhirAsyncWarning` (an error where warnings are errors),
/// without any URL's query (K10).
pub fn warn(py: Python<'_>, message: &str) -> PyResult<()> {
    let category = module(py)?.getattr("FhirAsyncWarning")?;
    let text = std::ffi::CString::new(redact_text(message).replace('\0', " ")).unwrap_or_default();
    PyErr::warn(py, &category, &text, 2)
}
