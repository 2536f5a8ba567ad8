//! `_native.Session`: one HTTP client and token; drives jobs, downloads
//! files in parallel (`download.rs`) and streams resources (`stream.rs`),
//! all without holding the GIL.

use crate::download::{self, DiskJob, DownloadReports};
use crate::drive::{drive, Ctx, Driven, Fetcher};
use crate::errors::{raise, Failure};
use crate::job::PyJob;
use crate::net::Http;
use crate::stream::{download_stream, invalid_mode, ResourceIter, StreamOptions};
use crate::token::Token;
use fhir_async::{CountCheck, FileKind, PlannedFile, Validation};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;

/// An HTTP client (connection pool) and a bearer token (none, a string, or
/// a callable asked again after a 401).
#[pyclass(module = "fhir_async._native", name = "Session", frozen)]
#[derive(Debug)]
pub struct Session {
    ctx: Ctx,
}

/// Which files of the plan to take.
fn select(plan: Vec<PlannedFile>, types: Option<&[String]>, kinds: &[String]) -> Vec<PlannedFile> {
    plan.into_iter()
        .filter(|f| {
            let kind = match f.kind {
                FileKind::Output => "output",
                FileKind::Error => "error",
                FileKind::Deleted => "deleted",
            };
            kinds.iter().any(|k| k == kind)
        })
        .filter(|f| match types {
            None => true,
            Some(ts) => f.resource_type.as_deref().is_some_and(|t| ts.iter().any(|x| x == t)),
        })
        .collect()
}

/// `count_check`: `"strict"` or `"lenient"`.
fn count_check(py: Python<'_>, value: &str) -> PyResult<CountCheck> {
    match value {
        "strict" => Ok(CountCheck::Strict),
        "lenient" => Ok(CountCheck::Lenient),
        other => Err(raise(
            py,
            "UsageError",
            &format!("count_check must be \"strict\" or \"lenient\", not {other:?}"),
            "usage",
            None,
        )),
    }
}

#[pymethods]
impl Session {
    /// `token`: None, a str, or a callable returning a str.
    #[new]
    #[pyo3(signature = (token=None))]
    fn new(token: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        Ok(Session { ctx: Ctx { http: Http::new(), token: Arc::new(Token::new(token)?) } })
    }

    /// Runs `job` until it is done (`("done", summary)`, the outcome without
    /// its payload: see `Job.outcome_summary`) or has to wait longer than
    /// `block_ms` from now (`("wait", delay_ms)`). Releases the GIL; checks
    /// for Ctrl-C every 50 ms.
    #[pyo3(signature = (job, block_ms))]
    fn drive(&self, py: Python<'_>, job: &PyJob, block_ms: u64) -> PyResult<(String, Py<PyAny>)> {
        let cell = job.cell.clone();
        let ctx = self.ctx.clone();
        let r = py.detach(move || drive(&ctx, &cell, block_ms, true));
        match r {
            Ok(Driven::Done) => Ok(("done".into(), job.outcome_summary(py)?)),
            Ok(Driven::Wait(ms)) => Ok(("wait".into(), ms.into_pyobject(py)?.into_any().unbind())),
            Err(f) => Err(f.into_py(py)),
        }
    }

    /// Downloads the files of a finished job into `directory` with
    /// `concurrency` threads. A file that fails is a report entry (its
    /// `error`) and leaves nothing behind; the others are kept. Returns the
    /// reports. `progress(bytes, resources, files_done, files_total)` is
    /// called about ten times a second. On Ctrl-C no `.tmp` file remains.
    #[pyo3(signature = (job, directory, concurrency=8, types=None, kinds=None, gzip=true, progress=None, count_check="strict", on_invalid_line="report"))]
    #[allow(clippy::too_many_arguments)]
    fn download(
        &self,
        py: Python<'_>,
        job: &PyJob,
        directory: PathBuf,
        concurrency: usize,
        types: Option<Vec<String>>,
        kinds: Option<Vec<String>>,
        gzip: bool,
        progress: Option<Py<PyAny>>,
        count_check: &str,
        on_invalid_line: &str,
    ) -> PyResult<DownloadReports> {
        let check = self::count_check(py, count_check)?;
        let strict_lines = invalid_mode(py, on_invalid_line)?;
        let kinds = kinds.unwrap_or_else(|| vec!["output".into(), "error".into(), "deleted".into()]);
        let plan = select(job.cell.lock().download_plan(), types.as_deref(), &kinds);
        // Lines go to disk as they are; the engine's structural check reports bad ones.
        let fetcher = Arc::new(Fetcher::new(self.ctx.clone(), job.cell.clone(), gzip, check, Validation::Structural));
        let disk = DiskJob { plan, directory, concurrency, strict_lines, progress };
        py.detach(move || download::run(fetcher, disk)).map_err(|f: Failure| f.into_py(py))
    }

    /// Streams the resources (dicts; `raw=True`: bytes) of the job's files,
    /// one file after the other, downloading ahead in the background. A line
    /// that does not parse is skipped and reported (`on_invalid_line="raise"`:
    /// raises `InvalidLineError`); a file that fails is reported and skipped.
    #[pyo3(signature = (job, types=None, kinds=None, gzip=true, raw=false, count_check="strict", on_invalid_line="report"))]
    #[allow(clippy::too_many_arguments)]
    fn resources(
        &self,
        py: Python<'_>,
        job: &PyJob,
        types: Option<Vec<String>>,
        kinds: Option<Vec<String>>,
        gzip: bool,
        raw: bool,
        count_check: &str,
        on_invalid_line: &str,
    ) -> PyResult<ResourceIter> {
        let check = self::count_check(py, count_check)?;
        let raise_invalid = invalid_mode(py, on_invalid_line)?;
        let kinds = kinds.unwrap_or_else(|| vec!["output".into()]);
        let plan = select(job.cell.lock().download_plan(), types.as_deref(), &kinds);
        // Python parses every line and reports the failures to the engine
        // (`report_invalid_line`), so the engine does not check them again.
        let validation = if raw { Validation::Structural } else { Validation::None };
        let fetcher = Arc::new(Fetcher::new(self.ctx.clone(), job.cell.clone(), gzip, check, validation));
        Ok(download_stream(fetcher, plan, StreamOptions { raw, raise_invalid }))
    }

    fn __repr__(&self) -> String {
        "<fhir_async._native.Session>".into()
    }
}
