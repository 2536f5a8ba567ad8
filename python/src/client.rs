//! `_native.Client`: the native client (`fhir-async-client`) with the
//! token Python gave it and a stop switch that sees Ctrl-C.

use crate::errors::{client_error, core_error, raise, usage};
use crate::run::PyRun;
use crate::signals::{Host, Pending};
use crate::token::{provider, Boxed};
use fhir_async::{BackendServices, Job, JobConfig};
use fhir_async_client::{BackendServicesAuth, Client, PrivateKey, TokenProvider, TokenUnavailable};
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

/// SMART Backend Services from the dict `fhir_async.BackendServices` hands
/// over: `client_id`, `scope`, `token_url`, `kid`, and `key_path` or `key_jwk` (JSON text).
fn backend_services(
    py: Python<'_>,
    base_url: &str,
    auth: &Bound<'_, PyDict>,
    pending: &Pending,
) -> PyResult<Box<dyn TokenProvider>> {
    let get = |k: &str| -> PyResult<Option<String>> {
        match auth.get_item(k)? {
            Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
            _ => Ok(None),
        }
    };
    let client_id = get("client_id")?.ok_or_else(|| usage(py, "BackendServices needs a client_id"))?;
    let scope = get("scope")?.unwrap_or_default();
    let kid = get("kid")?;
    let key = match (get("key_path")?, get("key_jwk")?) {
        (Some(path), _) => PrivateKey::from_file(&PathBuf::from(path), kid.as_deref()),
        (None, Some(text)) => {
            let jwk: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| usage(py, &format!("the key is not JSON: {e}")))?;
            if jwk.get("keys").is_some() {
                PrivateKey::from_jwks(&jwk, kid.as_deref())
            } else {
                PrivateKey::from_jwk(&jwk)
            }
        }
        (None, None) => return Err(usage(py, "BackendServices needs a key (a PEM or JWK file path, or a JWK dict)")),
    }
    .map_err(|e| client_error(py, &e))?;
    let config = BackendServices { client_id, scope, token_url: get("token_url")?, alg: key.alg(), kid, jku: None };
    let auth = BackendServicesAuth::new(base_url, config, key).map_err(|e| client_error(py, &e))?;
    Ok(Box::new(Smart { auth, pending: pending.clone() }))
}

/// SMART Backend Services whose failure reaches Python as `AuthError` (code
/// `auth`, the server's words in the message) rather than only as the
/// `unauthorized` the engine makes of a missing token.
struct Smart {
    auth: BackendServicesAuth,
    pending: Pending,
}

impl std::fmt::Debug for Smart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.auth.fmt(f)
    }
}

impl Smart {
    fn typed(&self, e: TokenUnavailable) -> TokenUnavailable {
        self.pending.set(Python::attach(|py| raise(py, "auth", &e.0, None)));
        e
    }
}

impl TokenProvider for Smart {
    fn token(&self) -> Result<Option<String>, TokenUnavailable> {
        self.auth.token().map_err(|e| self.typed(e))
    }
    fn refresh(&self) -> Result<(), TokenUnavailable> {
        self.auth.refresh().map_err(|e| self.typed(e))
    }
}

#[pymethods]
impl PyClient {
    /// `token`: None, a str, or a callable returning a str; `auth`: SMART
    /// Backend Services settings (see `fhir_async.BackendServices`).
    #[new]
    #[pyo3(signature = (base_url, token=None, auth=None))]
    fn new(
        py: Python<'_>,
        base_url: &str,
        token: Option<&Bound<'_, PyAny>>,
        auth: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let host = Host::new();
        let token = match auth {
            Some(a) => backend_services(py, base_url, a, &host.pending)?,
            None => provider(token, &host.pending)?,
        };
        let client = Client::builder(base_url)
            .token(Boxed(token))
            .binding("python")
            .stop(host.stop.clone())
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

    /// A job saved with `Run.to_json()`: no second kick-off.
    fn resume(&self, py: Python<'_>, state: &str) -> PyResult<PyRun> {
        let run = self.client.resume(state).map_err(|e| client_error(py, &e))?;
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
