//! `_native.Run`: a job of the native client. Python's own loop (a `wait`
//! with a progress bar, an asyncio task) steps it with a time budget; every
//! other thread may read it, cancel it or hand it a callback between steps.

use crate::convert::to_py;
use crate::download::{self, DownloadReports};
use crate::errors::{callback_error, core_error, usage};
use crate::job::body_bytes;
use crate::signals::Host;
use crate::stream::{self, ResourceIter};
use fhir_async::{
    parse_callback, CountCheck, DownloadOptions, Downloads, FileKind, InvalidLines, RetryPolicy, Validation,
};
use fhir_async_client::{ClientError, JobRun};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

/// Files of a download or a stream: the names Python passes (None: the core's default).
pub struct Selection {
    pub types: Option<Vec<String>>,
    /// None: the core's default (all three lists).
    pub kinds: Option<Vec<String>>,
    pub gzip: bool,
    /// None: the core's default ([`DownloadOptions::default`]).
    pub max_per_origin: Option<u32>,
    /// Files at once in all, whatever their origins (None: the core's default).
    pub max_total: Option<u32>,
    pub count_check: Option<String>,
    /// The longest NDJSON line accepted, bytes (K9; None: the core's default).
    pub max_line: Option<u64>,
}

impl Selection {
    /// The client's options: the core's defaults, with what Python gave;
    /// `usage` for a value that names nothing (the names are the core's JSON).
    pub fn options(&self, py: Python<'_>, validation: Validation) -> PyResult<DownloadOptions> {
        let defaults = DownloadOptions::default();
        let kinds = match &self.kinds {
            None => defaults.kinds.clone(),
            Some(kinds) => kinds
                .iter()
                .map(|k| core_name(k).map_err(|_| usage(py, &format!("unknown kind {k:?}: output, error or deleted"))))
                .collect::<PyResult<Vec<FileKind>>>()?,
        };
        let count_check: CountCheck = match &self.count_check {
            None => defaults.count_check,
            Some(c) => core_name(c)
                .map_err(|_| usage(py, &format!("count_check must be \"strict\" or \"lenient\", not {c:?}")))?,
        };
        if self.max_per_origin == Some(0) {
            return Err(usage(py, "max_per_origin must be at least 1"));
        }
        if self.max_total == Some(0) {
            return Err(usage(py, "max_total must be at least 1"));
        }
        if self.max_line == Some(0) {
            return Err(usage(py, "max_line must be at least 1 (bytes)"));
        }
        Ok(DownloadOptions {
            kinds,
            types: self.types.clone().unwrap_or_default(),
            max_per_origin: self.max_per_origin.unwrap_or(defaults.max_per_origin),
            max_total: self.max_total.unwrap_or(defaults.max_total),
            count_check,
            validation,
            gzip: self.gzip,
            max_line: self.max_line.unwrap_or(defaults.max_line),
            ..defaults
        })
    }
}

/// A value of the core's from its JSON name (`"output"`, `"strict"`, ...): the
/// names Python takes are the core's own.
pub fn core_name<T: serde::de::DeserializeOwned>(name: &str) -> Result<T, serde_json::Error> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
}

/// `on_invalid_line`: the core's [`InvalidLines`] by its JSON name
/// (`"report"`, `"raise"`; None: the core's default). The core counts,
/// lists and (with `Raise`) fails the file; the binding only passes it on.
pub fn invalid_mode(py: Python<'_>, on_invalid_line: Option<&str>) -> PyResult<InvalidLines> {
    match on_invalid_line {
        None => Ok(DownloadOptions::default().invalid_lines),
        Some(name) => core_name(name)
            .map_err(|_| usage(py, &format!("on_invalid_line must be \"report\" or \"raise\", not {name:?}"))),
    }
}

#[pyclass(module = "fhir_async._native", name = "Run", frozen)]
#[derive(Debug)]
pub struct PyRun {
    run: Arc<Mutex<JobRun>>,
    host: Host,
    /// Threads waiting for a quick look: a stepping loop lets them in first.
    waiting: Arc<AtomicUsize>,
}

/// Takes the job, watching for a stop while another thread steps it.
pub fn lock_run<'a>(run: &'a Mutex<JobRun>, host: &Host) -> Result<MutexGuard<'a, JobRun>, ClientError> {
    loop {
        match run.try_lock() {
            Ok(g) => return Ok(g),
            Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => {
                if host.stop.sleep(Duration::from_millis(5)) {
                    return Err(ClientError::Stopped);
                }
            }
        }
    }
}

impl PyRun {
    pub fn new(run: JobRun, host: Host) -> Self {
        PyRun { run: Arc::new(Mutex::new(run)), host, waiting: Arc::default() }
    }

    /// The job, for a quick look. Never blocks holding the GIL: the thread
    /// stepping the job may need it (Ctrl-C, a token callable).
    fn lock(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, JobRun>> {
        let mut announced = false;
        let r = loop {
            match self.run.try_lock() {
                Ok(g) => break Ok(g),
                Err(TryLockError::Poisoned(p)) => break Ok(p.into_inner()),
                Err(TryLockError::WouldBlock) => {
                    if !announced {
                        self.waiting.fetch_add(1, Ordering::SeqCst);
                        announced = true;
                    }
                    if let Err(e) = py.check_signals() {
                        break Err(e);
                    }
                    py.detach(|| std::thread::sleep(Duration::from_millis(1)));
                }
            }
        };
        if announced {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        r
    }
}

impl PyRun {
    /// The plan's file names other than `files` (for the core's `skip_files`);
    /// `usage` when one of `files` is not in the plan.
    fn others(&self, py: Python<'_>, files: &[String]) -> PyResult<Vec<String>> {
        let plan = self.lock(py)?.job().download_plan();
        let names: std::collections::HashSet<&str> = plan.iter().map(|f| f.file_name.as_str()).collect();
        if let Some(unknown) = files.iter().find(|n| !names.contains(n.as_str())) {
            return Err(usage(py, &format!("no file {unknown:?} in the download plan (see result.files' fileName)")));
        }
        let wanted: std::collections::HashSet<&str> = files.iter().map(String::as_str).collect();
        Ok(plan.iter().map(|f| f.file_name.clone()).filter(|n| !wanted.contains(n.as_str())).collect())
    }
}

#[pymethods]
impl PyRun {
    /// Does what is due, waiting at most `block_ms`: `("done", summary)` (the
    /// outcome without its payload, see `outcome_summary`) or
    /// `("wait", ms)` (the time to the next poll; 50 when the job waits for
    /// something else). Releases the GIL; Ctrl-C stops it within 50 ms.
    fn step(&self, py: Python<'_>, block_ms: u64) -> PyResult<(String, Py<PyAny>)> {
        let run = self.run.clone();
        let host = self.host.clone();
        let waiting = self.waiting.clone();
        let done = self.host.run(py, move || {
            // Another thread wants a look (a cancel, a callback, a progress
            // bar): let it in before the next step (bounded).
            for _ in 0..100 {
                if waiting.load(Ordering::SeqCst) == 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut g = lock_run(&run, &host)?;
            Ok(g.step(Duration::from_millis(block_ms))?.is_some())
        })?;
        let g = self.lock(py)?;
        if done {
            return Ok(("done".into(), crate::outcome::summary(py, g.outcome())?));
        }
        let next = g.progress().next_poll_in_ms.unwrap_or(50);
        Ok(("wait".into(), next.into_pyobject(py)?.into_any().unbind()))
    }

    /// The whole state as JSON text (no token in it).
    fn to_json(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.lock(py)?.to_json())
    }

    /// A progress snapshot (the engine's camelCase fields).
    fn progress(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let p = self.lock(py)?.progress();
        to_py(py, &p)
    }

    /// The planned file downloads.
    fn download_plan(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let p = self.lock(py)?.job().download_plan();
        to_py(py, &p)
    }

    /// What the cancel achieved, once answered.
    fn cancel_result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let c = self.lock(py)?.job().cancel_result().cloned();
        to_py(py, &c)
    }

    /// What `cleanup()` achieved, once answered.
    fn cleanup_result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let c = self.lock(py)?.job().cleanup_result().cloned();
        to_py(py, &c)
    }

    /// Warnings that did not stop the job.
    fn warnings(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        Ok(self.lock(py)?.job().warnings().to_vec())
    }

    /// The status URL, once the kick-off was accepted.
    fn status_url(&self, py: Python<'_>) -> PyResult<Option<String>> {
        Ok(self.lock(py)?.job().status_url().map(str::to_owned))
    }

    /// The whole outcome, once done.
    fn outcome(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let o = self.lock(py)?.job().outcome().cloned();
        to_py(py, &o)
    }

    /// The outcome without its payload (see `Job.outcome_summary`).
    fn outcome_summary(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let g = self.lock(py)?;
        crate::outcome::summary(py, g.job().outcome())
    }

    /// Whether the job is over.
    fn is_finished(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.lock(py)?.job().is_finished())
    }

    /// The error that stopped the job as an exception object (not raised), if any.
    fn exception(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let e = self.lock(py)?.job().error().cloned();
        Ok(e.map(|e| core_error(py, &e).into_value(py).into_any()))
    }

    /// Asks for the cancel; the next `step` sends it.
    fn request_cancel(&self, py: Python<'_>) -> PyResult<()> {
        self.lock(py)?.request_cancel();
        Ok(())
    }

    /// Brings the next poll forward to now (overrides `Retry-After` once).
    fn poll_now(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.lock(py)?.poll_now())
    }

    /// Hands the job a verified callback body; returns the effect
    /// (`{"kind": "woken" | "ignored", "reason"?}`).
    fn handle_callback(&self, py: Python<'_>, payload: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let bytes = body_bytes(Some(payload))?;
        let payload = parse_callback(&bytes).map_err(|e| callback_error(py, &e))?;
        let effect = self.lock(py)?.handle_callback(&payload);
        to_py(py, &effect)
    }

    /// DELETE of the status URL after the download (protocol F3); returns how the server answered.
    fn cleanup(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let run = self.run.clone();
        let host = self.host.clone();
        let r = self.host.run(py, move || lock_run(&run, &host)?.cleanup())?;
        to_py(py, &r)
    }

    /// Downloads the finished job's files into `directory` (see
    /// `Result.download`). `progress(bytes, resources, files_done,
    /// files_total)` is called about ten times a second. `files`: only the
    /// plan's files of these `fileName`s (the core's `skip_files` leaves the
    /// others out), e.g. one file per task of a cluster (`fhir_async.dask`).
    #[pyo3(signature = (directory, max_per_origin=None, types=None, kinds=None, gzip=true, progress=None, count_check=None, on_invalid_line=None, files=None, max_line=None, max_total=None, attachments=None, attachment_types=None, attachment_max_size=None))]
    #[allow(clippy::too_many_arguments)]
    fn download(
        &self,
        py: Python<'_>,
        directory: PathBuf,
        max_per_origin: Option<u32>,
        types: Option<Vec<String>>,
        kinds: Option<Vec<String>>,
        gzip: bool,
        progress: Option<Py<PyAny>>,
        count_check: Option<String>,
        on_invalid_line: Option<&str>,
        files: Option<Vec<String>>,
        max_line: Option<u64>,
        max_total: Option<u32>,
        attachments: Option<&str>,
        attachment_types: Option<Vec<String>>,
        attachment_max_size: Option<u64>,
    ) -> PyResult<DownloadReports> {
        let sel = Selection { types, kinds, gzip, max_per_origin, max_total, count_check, max_line };
        // Lines go to disk as they are; a line is a resource only if it parses as a JSON
        // object (issue 19): the engine checks each one, and reports (and counts) the
        // others, or fails the file at the first one (`InvalidLines::Raise`).
        let mut options = sel.options(py, Validation::Json)?;
        options.invalid_lines = invalid_mode(py, on_invalid_line)?;
        options.attachments = download::attachment_options(py, attachments, attachment_types, attachment_max_size)?;
        if let Some(files) = files {
            options.skip_files = self.others(py, &files)?;
        }
        download::run(py, self.run.clone(), &self.host, directory, options, progress)
    }

    /// Streams the resources (dicts; `raw=True`: bytes) of the job's files,
    /// downloaded in parallel in the background (see `Result.resources`).
    #[pyo3(signature = (types=None, kinds=None, gzip=true, raw=false, count_check=None, on_invalid_line=None, max_per_origin=None, max_line=None, max_total=None, attachments=None, attachment_types=None, attachment_max_size=None, attachments_dir=None))]
    #[allow(clippy::too_many_arguments)]
    fn resources(
        &self,
        py: Python<'_>,
        types: Option<Vec<String>>,
        kinds: Option<Vec<String>>,
        gzip: bool,
        raw: bool,
        count_check: Option<String>,
        on_invalid_line: Option<&str>,
        max_per_origin: Option<u32>,
        max_line: Option<u64>,
        max_total: Option<u32>,
        attachments: Option<&str>,
        attachment_types: Option<Vec<String>>,
        attachment_max_size: Option<u64>,
        attachments_dir: Option<PathBuf>,
    ) -> PyResult<ResourceIter> {
        // A stream takes the output files unless asked (as JS's `resources`): the
        // resources, not the OperationOutcomes and Bundles of the other lists.
        let kinds = Some(kinds.unwrap_or_else(|| vec!["output".into()]));
        let sel = Selection { types, kinds, gzip, max_per_origin, max_total, count_check, max_line };
        // The engine checks each line as JSON, so the file's report counts a bad
        // line once whatever parses it in Python (orjson or the native parser).
        let mut options = sel.options(py, Validation::Json)?;
        options.invalid_lines = invalid_mode(py, on_invalid_line)?;
        options.attachments = download::attachment_options(py, attachments, attachment_types, attachment_max_size)?;
        let raise_invalid = options.invalid_lines == InvalidLines::Raise;
        let g = self.lock(py)?;
        // The URL of each selected file, for an invalid line's error: the core's selection.
        let labels = Downloads::new(g.job().download_plan(), options.clone(), &RetryPolicy::default())
            .files()
            .iter()
            .map(|f| f.url.clone())
            .collect();
        // Protocol M: `files` mode writes each attachment into `attachments_dir`.
        let lines = match attachments_dir {
            Some(dir) => g.lines_with_attachments_dir(options, dir),
            None => g.lines(options),
        };
        Ok(stream::from_lines(lines, labels, self.host.clone(), raw, raise_invalid))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let g = self.lock(py)?;
        let phase = serde_json::to_value(g.progress().phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Ok(format!("<fhir_async._native.Run phase={phase} status_url={:?}>", g.job().status_url().unwrap_or("")))
    }
}
