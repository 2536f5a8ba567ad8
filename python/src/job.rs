//! `_native.Job`: the engine's `Job` as is, for Python code that does its own
//! I/O (the shared vectors, custom transports). Shared with the native driver
//! through [`JobCell`], so a `cancel()` from another thread wakes a waiting loop.

use crate::convert::to_py;
use crate::errors::{core_error, raise};
use fhir_async::{parse_callback, Job, JobConfig, Response, ResultBody, TransportErrorKind};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The job plus what threads need to share it.
#[derive(Debug)]
pub struct JobCell {
    job: Mutex<Job>,
    wake_gen: Mutex<u64>,
    wake: Condvar,
    /// Held by whoever drives the job (sends its requests), so two threads never do.
    pub driver: Mutex<()>,
}

impl JobCell {
    pub fn new(job: Job) -> Arc<Self> {
        Arc::new(JobCell {
            job: Mutex::new(job),
            wake_gen: Mutex::new(0),
            wake: Condvar::new(),
            driver: Mutex::new(()),
        })
    }

    /// The job (a poisoned lock only means a panic elsewhere; the state is still usable).
    pub fn lock(&self) -> MutexGuard<'_, Job> {
        self.job.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes whoever sleeps in [`JobCell::sleep`].
    pub fn notify(&self) {
        *self.wake_gen.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.wake.notify_all();
    }

    /// Sleeps up to `ms`, or until [`JobCell::notify`].
    pub fn sleep(&self, ms: u64) {
        let g = self.wake_gen.lock().unwrap_or_else(|e| e.into_inner());
        let start = *g;
        let _ = self.wake.wait_timeout_while(g, Duration::from_millis(ms), |gen| *gen == start);
    }
}

/// Body given as `bytes` or `str`.
fn body_bytes(body: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<u8>> {
    match body {
        None => Ok(Vec::new()),
        Some(b) if b.is_none() => Ok(Vec::new()),
        Some(b) => {
            if let Ok(bytes) = b.downcast::<PyBytes>() {
                Ok(bytes.as_bytes().to_vec())
            } else if let Ok(s) = b.downcast::<PyString>() {
                Ok(s.to_str()?.as_bytes().to_vec())
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
    pub cell: Arc<JobCell>,
}

impl PyJob {
    fn job(&self) -> MutexGuard<'_, Job> {
        self.cell.lock()
    }
}

fn usage(py: Python<'_>, msg: String) -> PyErr {
    raise(py, "UsageError", &msg, "usage", None)
}

#[pymethods]
impl PyJob {
    /// Creates a job from a JobConfig given as JSON text.
    #[new]
    fn new(py: Python<'_>, config: &str) -> PyResult<Self> {
        let config: JobConfig =
            serde_json::from_str(config).map_err(|e| usage(py, format!("invalid job configuration: {e}")))?;
        let job = Job::new(config).map_err(|e| core_error(py, &e))?;
        Ok(PyJob { cell: JobCell::new(job) })
    }

    /// Restores a job saved with `to_json()`.
    #[staticmethod]
    fn from_json(py: Python<'_>, state: &str) -> PyResult<Self> {
        let job = Job::from_json(state).map_err(|e| core_error(py, &e))?;
        Ok(PyJob { cell: JobCell::new(job) })
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
        self.cell.notify();
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
            other => return Err(usage(py, format!("unknown transport error kind {other:?}"))),
        };
        let r = self.job().handle_transport_error(request_id, kind, message, now_ms);
        r.map_err(|e| core_error(py, &e))
    }

    /// Asks for the job to be cancelled (wakes a waiting driver).
    fn cancel(&self, now_ms: u64) {
        self.job().cancel(now_ms);
        self.cell.notify();
    }

    /// Asks for a DELETE of the status URL once the files are downloaded.
    fn cleanup(&self, py: Python<'_>) -> PyResult<()> {
        let r = self.job().cleanup();
        self.cell.notify();
        r.map_err(|e| core_error(py, &e))
    }

    /// Re-fetches the manifest (expired file URLs).
    fn refresh_manifest(&self, py: Python<'_>, now_ms: u64) -> PyResult<()> {
        let r = self.job().refresh_manifest(now_ms);
        self.cell.notify();
        r.map_err(|e| core_error(py, &e))
    }

    /// Handles a (verified) callback body; returns the effect.
    fn handle_callback(&self, py: Python<'_>, payload: &Bound<'_, PyAny>, now_ms: u64) -> PyResult<Py<PyAny>> {
        let bytes = body_bytes(Some(payload))?;
        let payload =
            parse_callback(&bytes).map_err(|e| raise(py, "ProtocolError", &e.to_string(), "callback", None))?;
        let effect = self.job().handle_callback(&payload, now_ms);
        self.cell.notify();
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

    /// The outcome without its payload (`result`): every other field, plus
    /// `resultKind` and `files` (the manifest's entries). Cheap whatever the
    /// manifest's size, so a `Result` builds the payload's dicts only when
    /// asked for (issue 10 §3: 100,000 files).
    pub fn outcome_summary(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let job = self.job();
        let Some(o) = job.outcome() else {
            return Ok(py.None());
        };
        let d = PyDict::new(py);
        d.set_item("status", to_py(py, &o.status)?)?;
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
        Ok(d.into_any().unbind())
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
