//! `fhir_async._native`: the pyo3 extension under the `fhir_async` Python
//! package. The engine (`fhir-async`) decides and the native client
//! (`fhir-async-client`) does the HTTP, the files and the threads; this
//! crate only converts values, releases the GIL while it waits, and turns
//! Ctrl-C into a stop. The typed Python API lives in `fhir_async/`.
#![cfg(not(target_family = "wasm"))]

mod client;
mod convert;
mod download;
mod errors;
mod job;
mod outcome;
mod reports;
mod run;
mod signals;
mod stream;
mod tables;
mod token;

use pyo3::prelude::*;

/// Unix time in milliseconds: the only clock the engine ever sees.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Checks a callback's `X-Signature: sha256=<hex>` over the exact body
/// bytes and parses it; raises `CallbackError` (code `bad_signature` or
/// `malformed`, the core's) if either fails.
#[pyfunction]
#[pyo3(signature = (body, signature, secret))]
fn verify_callback(py: Python<'_>, body: &[u8], signature: Option<&str>, secret: &str) -> PyResult<Py<PyAny>> {
    match fhir_async::verify_callback(body, signature, secret.as_bytes()) {
        Ok(p) => convert::to_py(py, &p),
        Err(e) => Err(errors::callback_error(py, &e)),
    }
}

/// The current time as the engine sees it (Unix ms).
#[pyfunction(name = "now_ms")]
fn py_now_ms() -> u64 {
    now_ms()
}

/// `DownloadOptions::default()` as the engine's camelCase JSON: the defaults
/// `fhir_async` gives its options (`maxPerOrigin`, `kinds`, `countCheck`,
/// `maxLine`, ...), so no default is kept in Python (issue 20).
#[pyfunction]
fn download_defaults(py: Python<'_>) -> PyResult<Py<PyAny>> {
    convert::to_py(py, &fhir_async::DownloadOptions::default())
}

/// `RetryPolicy::default()` as the engine's camelCase JSON: its names are the
/// retry options `Client(retry=...)` takes, its values their defaults.
#[pyfunction]
fn retry_defaults(py: Python<'_>) -> PyResult<Py<PyAny>> {
    convert::to_py(py, &fhir_async::RetryPolicy::default())
}

/// Parses one NDJSON line into Python objects (the parser `resources()` uses).
#[pyfunction]
fn parse_json(py: Python<'_>, line: &[u8]) -> PyResult<Py<PyAny>> {
    convert::LineParser::new().parse(py, line)
}

/// The `fhir-async` command line (`docs/cli.md`) with these arguments (the
/// first is the program name): the console script of `pip install
/// fhir-async` runs the same code as `cargo install --path cli`. Returns the
/// exit code. Ctrl-C is the command's own (a first stops cleanly, a second exits).
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| fhir_async_cli::main_with_args(argv))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<job::PyJob>()?;
    m.add_class::<client::PyClient>()?;
    m.add_class::<run::PyRun>()?;
    m.add_class::<stream::ResourceIter>()?;
    m.add_class::<download::DownloadReports>()?;
    m.add_class::<tables::ArrowStream>()?;
    m.add_function(wrap_pyfunction!(tables::ndjson_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(tables::ndjson_to_parquet, m)?)?;
    m.add_function(wrap_pyfunction!(tables::folder_to_parquet, m)?)?;
    m.add_function(wrap_pyfunction!(verify_callback, m)?)?;
    m.add_function(wrap_pyfunction!(py_now_ms, m)?)?;
    m.add_function(wrap_pyfunction!(parse_json, m)?)?;
    m.add_function(wrap_pyfunction!(download_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(retry_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(stream::read_ndjson, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
