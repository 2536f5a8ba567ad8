//! An outcome for Python without its payload: cheap whatever the manifest's
//! size, so a `Result` builds the payload's dicts only when asked for
//! (issue 10 §3: 100,000 files).

use crate::convert::to_py;
use fhir_async::{Outcome, ResultBody};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Every field of the outcome but `result`, plus `resultKind`, `files` (the
/// manifest's entries), `ok` (the engine's `is_success`) and
/// `operationOutcome` (the server's, wherever the result holds it).
pub fn summary(py: Python<'_>, outcome: Option<&Outcome>) -> PyResult<Py<PyAny>> {
    let Some(o) = outcome else {
        return Ok(py.None());
    };
    let d = PyDict::new(py);
    d.set_item("status", to_py(py, &o.status)?)?;
    d.set_item("ok", o.is_success())?;
    d.set_item("delivery", to_py(py, &o.delivery)?)?;
    d.set_item("httpStatus", o.http_status)?;
    d.set_item("message", &o.message)?;
    d.set_item("expires", &o.expires)?;
    d.set_item("expiresAtMs", o.expires_at_ms)?;
    d.set_item("resultUrl", &o.result_url)?;
    if !o.warnings.is_empty() {
        d.set_item("warnings", &o.warnings)?;
    }
    let kind = match &o.result {
        ResultBody::Manifest { .. } => "manifest",
        ResultBody::Bundle { .. } => "bundle",
        ResultBody::AsyncJob { .. } => "asyncJob",
        ResultBody::OperationOutcome { .. } => "operationOutcome",
        ResultBody::Resource { .. } => "resource",
        ResultBody::Text { .. } => "text",
        ResultBody::Empty => "empty",
    };
    d.set_item("resultKind", kind)?;
    let files = o.manifest().map_or(0, |m| m.output.len() + m.error.len() + m.outcome.len() + m.deleted.len());
    d.set_item("files", files)?;
    d.set_item("operationOutcome", to_py(py, &o.operation_outcome())?)?;
    Ok(d.into_any().unbind())
}
