//! `_native.Job`: the engine's `Job` as is, for Python code that does its own
//! I/O (the shared vectors, custom transports). The native client drives
//! its own jobs (`_native.Run`).

use crate::convert::to_py;
use crate::errors::{callback_error, core_error, usage};
use fhir_async::{parse_callback, Job, JobConfig, Response, TransportErrorKind};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use std::sync::{Mutex, MutexGuard};

/// Body given as `bytes` or `str`.
pub fn body_bytes(body: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<u8>> {
    match body {
        None => Ok(Vec::new()),
        Some(b) if b.is_none() => Ok(Vec::new()),
        Some(b) => {
            if let Ok(bytes) = b.downcast::<PyBytes>() {
                Ok(bytes.as_bytes().to_vec())
            } else if let Ok(s) = b.downcast::<PyString>() {
                // to_cow: the abi3 wheel's limited API has no borrowed UTF-8 before 3.10.
                Ok(s.to_cow()?.as_bytes().to_vec())
            } else {
                Err(pyo3::exceptions::PyTypeError::new_err("body must be bytes or str"))
            }
        }
    }
}

/// A FHIR asynchronous job, driven by hand: `next_action(now_ms)` says what
/// to do, `handle_response` / `handle_transport_error` report what happened.
/// Every value crosses as the engine's camelCase JSON (dicts).
#[pyclass(module = "fhir_async._native", name = "Job", frozen)]
#[derive(Debug)]
pub struct PyJob {
    job: Mutex<Job>,
}

impl PyJob {
    fn job(&self) -> MutexGuard<'_, Job> {
        self.job.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl PyJob {
    /// Creates a job from a JobConfig given as JSON text.
    #[new]
    fn new(py: Python<'_>, config: &str) -> PyResult<Self> {
        let config: JobConfig =
            serde_json::from_str(config).map_err(|e| usage(py, &format!("invalid job configuration: {e}")))?;
        let job = Job::new(config).map_err(|e| core_error(py, &e))?;
        Ok(PyJob { job: Mutex::new(job) })
    }

    /// Restores a job saved with `to_json()`.
    #[staticmethod]
    fn from_json(py: Python<'_>, state: &str) -> PyResult<Self> {
        let job = Job::from_json(state).map_err(|e| core_error(py, &e))?;
        Ok(PyJob { job: Mutex::new(job) })
    }

    /// The whole state as JSON text (no token in it).
    fn to_json(&self) -> String {
        self.job().to_json()
    }

    /// The next action: `{"type": "send"|"wait"|"refreshToken"|"done", ...}`.
    fn next_action(&self, py: Python<'_>, now_ms: u64) -> PyResult<Py<PyAny>> {
        let a = self.job().next_action(now_ms);
        match a {
            Ok(a) => to_py(py, &a),
            Err(e) => Err(core_error(py, &e)),
        }
    }

    /// Hands back the response to request `request_id`.
    #[pyo3(signature = (request_id, status, headers, body, now_ms, url=None))]
    #[allow(clippy::too_many_arguments)] // mirrors the engine's Response fields one by one
    fn handle_response(
        &self,
        py: Python<'_>,
        request_id: u64,
        status: u16,
        headers: Vec<(String, String)>,
        body: Option<&Bound<'_, PyAny>>,
        now_ms: u64,
        url: Option<String>,
    ) -> PyResult<()> {
        let response = Response { status, headers, body: body_bytes(body)?, url };
        let r = self.job().handle_response(request_id, response, now_ms);
        r.map_err(|e| core_error(py, &e))
    }

    /// Reports that request `request_id` got no response: `kind` is
    /// `"connect"` (never reached the server) or `"afterSend"`.
    fn handle_transport_error(
        &self,
        py: Python<'_>,
        request_id: u64,
        kind: &str,
        message: &str,
        now_ms: u64,
    ) -> PyResult<()> {
        let kind = match kind {
            "connect" => TransportErrorKind::Connect,
            "afterSend" | "after_send" => TransportErrorKind::AfterSend,
            other => return Err(usage(py, &format!("unknown transport error kind {other:?}"))),
        };
        let r = self.job().handle_transport_error(request_id, kind, message, now_ms);
        r.map_err(|e| core_error(py, &e))
    }

    /// Asks for the job to be cancelled (wakes a waiting driver).
    fn cancel(&self, now_ms: u64) {
        self.job().cancel(now_ms);
    }

    /// Asks for a DELETE of the status URL once the files are downloaded.
    fn cleanup(&self, py: Python<'_>) -> PyResult<()> {
        let r = self.job().cleanup();
        r.map_err(|e| core_error(py, &e))
    }

    /// Re-fetches the manifest (expired file URLs).
    fn refresh_manifest(&self, py: Python<'_>, now_ms: u64) -> PyResult<()> {
        let r = self.job().refresh_manifest(now_ms);
        r.map_err(|e| core_error(py, &e))
    }

    /// Handles a (verified) callback body; returns the effect.
    fn handle_callback(&self, py: Python<'_>, payload: &Bound<'_, PyAny>, now_ms: u64) -> PyResult<Py<PyAny>> {
        let bytes = body_bytes(Some(payload))?;
        let payload = parse_callback(&bytes).map_err(|e| callback_error(py, &e))?;
        let effect = self.job().handle_callback(&payload, now_ms);
        to_py(py, &effect)
    }

    /// A progress snapshot.
    fn progress(&self, py: Python<'_>, now_ms: u64) -> PyResult<Py<PyAny>> {
        let p = self.job().progress(now_ms);
        to_py(py, &p)
    }

    /// The planned file downloads.
    fn download_plan(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let p = self.job().download_plan();
        to_py(py, &p)
    }

    /// What the cancel achieved, once answered.
    fn cancel_result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let c = self.job().cancel_result().cloned();
        to_py(py, &c)
    }

    /// What `cleanup()` achieved, once answered.
    fn cleanup_result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let c = self.job().cleanup_result().cloned();
        to_py(py, &c)
    }

    /// Warnings that did not stop the job.
    fn warnings(&self) -> Vec<String> {
        self.job().warnings().to_vec()
    }

    /// The status URL, once the kick-off was accepted.
    #[getter]
    fn status_url(&self) -> Option<String> {
        self.job().status_url().map(str::to_owned)
    }

    /// The outcome, once done.
    #[getter]
    fn outcome(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let o = self.job().outcome().cloned();
        to_py(py, &o)
    }

    /// The outcome without its payload (see `outcome::summary`).
    pub fn outcome_summary(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        crate::outcome::summary(py, self.job().outcome())
    }

    /// The error that stopped the job, as `{code, ...}`, if any.
    #[getter]
    fn error(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let e = self.job().error().cloned();
        to_py(py, &e)
    }

    /// The error that stopped the job as an exception object (not raised), if any.
    fn exception(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        let e = self.job().error().cloned()?;
        Some(core_error(py, &e).into_value(py).into_any())
    }

    /// Whether the job is over.
    #[getter]
    fn is_finished(&self) -> bool {
        self.job().is_finished()
    }

    /// `Preference-Applied` tokens the server echoed.
    #[getter]
    fn preference_applied(&self) -> Vec<String> {
        self.job().preference_applied().to_vec()
    }

    /// The configuration, as a dict.
    #[getter]
    fn config(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let c = self.job().config().clone();
        to_py(py, &c)
    }

    fn __repr__(&self) -> String {
        let job = self.job();
        let now = crate::now_ms();
        let phase = serde_json::to_value(job.progress(now).phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        format!("<fhir_async._native.Job phase={phase} status_url={:?}>", job.status_url().unwrap_or(""))
    }
}
