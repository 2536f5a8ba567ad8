//! `_native.Client`: the native client (`fhir-async-client`) with the
//! token Python gave it and a stop switch that sees Ctrl-C.

use crate::errors::{client_error, connection_error, core_error, usage};
use crate::run::PyRun;
use crate::signals::Host;
use crate::token::{backend_services, provider, Boxed};
use fhir_async::{Job, JobConfig};
use fhir_async_client::{Client, Connection, Transport};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

#[pyclass(module = "fhir_async._native", name = "Client", frozen)]
#[derive(Debug)]
pub struct PyClient {
    client: Client,
    host: Host,
    base_url: String,
}

#[pymethods]
impl PyClient {
    /// `token`: None, a str, or a callable returning a str; `auth`: SMART
    /// Backend Services settings (see `fhir_async.BackendServices`).
    /// `ca_files`, `system_roots`, `proxy`: how servers are reached (the
    /// client's `Connection`), for the FHIR requests and SMART's discovery
    /// and token requests alike; a CA file or proxy URL that cannot be used
    /// is a `UsageError` naming it.
    #[new]
    #[pyo3(signature = (base_url, token=None, auth=None, ca_files=Vec::new(), system_roots=false, proxy=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        base_url: &str,
        token: Option<&Bound<'_, PyAny>>,
        auth: Option<&Bound<'_, PyDict>>,
        ca_files: Vec<PathBuf>,
        system_roots: bool,
        proxy: Option<String>,
    ) -> PyResult<Self> {
        let host = Host::new();
        let connection = Connection { ca_files, system_roots, proxy };
        // Checked once here, so a bad CA file or proxy is the caller's configuration error.
        let transport = Transport::with_connection("python", &connection)
            .map_err(|e| connection_error(py, &e, &connection.ca_files))?;
        let token = match auth {
            Some(a) => backend_services(py, base_url, a, &host.pending, transport)?,
            None => provider(token, &host.pending)?,
        };
        let client = Client::builder(base_url)
            .token(Boxed(token))
            .binding("python")
            .stop(host.stop.clone())
            .connection(connection)
            .build()
            .map_err(|e| client_error(py, &e))?;
        Ok(PyClient { client, host, base_url: base_url.to_owned() })
    }

    /// A job for the JobConfig given as JSON text, not started (its first
    /// `step` sends the kick-off).
    fn job(&self, py: Python<'_>, config: &str) -> PyResult<PyRun> {
        let config: JobConfig =
            serde_json::from_str(config).map_err(|e| usage(py, &format!("invalid job configuration: {e}")))?;
        let job = Job::new(config).map_err(|e| core_error(py, &e))?;
        Ok(PyRun::new(self.client.adopt(job), self.host.clone()))
    }

    /// A job saved with `Run.to_json()`: no second kick-off. `timeout_ms`
    /// is this run's own deadline from now (None: none); the first run's no
    /// longer applies (issue 19: a resumed run's waits, polls and manifest
    /// refreshes are bounded by the timeout of the client that resumes it).
    #[pyo3(signature = (state, timeout_ms=None))]
    fn resume(&self, py: Python<'_>, state: &str, timeout_ms: Option<u64>) -> PyResult<PyRun> {
        let mut run = self.client.resume(state).map_err(|e| client_error(py, &e))?;
        run.set_timeout(timeout_ms.map(std::time::Duration::from_millis));
        Ok(PyRun::new(run, self.host.clone()))
    }

    /// Stops every call of this client in progress (from any thread): each
    /// raises `StoppedError` (code `stopped`); the jobs stay usable.
    fn stop(&self) {
        self.host.stop.stop();
    }

    fn __repr__(&self) -> String {
        format!("<fhir_async._native.Client {:?}>", self.base_url)
    }
}
