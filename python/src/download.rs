//! `Run.download`: the native client writes a finished job's files into a
//! folder (`JobRun::download_events`: temp file, renamed once complete) on
//! a thread of its own, while the calling thread watches for Ctrl-C and
//! calls the progress callback. The results become [`DownloadReports`],
//! whose dicts and paths are built when asked for (issue 10 §3: 100,000
//! files cost no 100,000 Python objects).

use crate::convert::to_py;
use crate::errors::usage;
use crate::reports::FileEnd;
use crate::signals::{Caller, Host};
use fhir_async::attachments::{AttachmentMode, AttachmentOptions, AttachmentReport};
use fhir_async::{table_name, DownloadOptions, DownloadProgress, FileKind, PlannedFile};
use fhir_async_client::{ClientError, DownloadEvent, DownloadSummary, JobRun};
use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `attachments=`, `attachment_types=`, `attachment_max_size=` (protocol M) as the core's
/// [`AttachmentOptions`]: the core's defaults where Python gave None; the mode by its core
/// name (`"off"`, `"inline"`, `"files"`).
pub fn attachment_options(
    py: Python<'_>,
    mode: Option<&str>,
    types: Option<Vec<String>>,
    max_size: Option<u64>,
) -> PyResult<AttachmentOptions> {
    let defaults = AttachmentOptions::default();
    let mode: AttachmentMode = match mode {
        None => defaults.mode,
        Some(m) => crate::run::core_name(m)
            .map_err(|_| usage(py, &format!("attachments must be \"off\", \"inline\" or \"files\", not {m:?}")))?,
    };
    if max_size == Some(0) {
        return Err(usage(py, "attachment_max_size must be at least 1 (bytes)"));
    }
    Ok(AttachmentOptions {
        mode,
        types: types.unwrap_or(defaults.types.clone()),
        max_size: max_size.unwrap_or(defaults.max_size),
        ..defaults
    })
}

/// The attachment reports as dicts (the core's camelCase fields); a failed one's `error` is
/// the typed exception of its code (`details`: `url`).
pub fn attachment_reports(py: Python<'_>, reports: &[AttachmentReport]) -> PyResult<Vec<Py<PyAny>>> {
    reports
        .iter()
        .map(|r| {
            let d = to_py(py, r)?;
            if let Some(e) = &r.error {
                // An attachment's error is a download's: `retries_exhausted`, `unauthorized`
                // are a `DownloadError` here, not the job's (`errors.for_code(file=True)`).
                let details = PyDict::new(py);
                details.set_item("url", &r.url)?;
                let kwargs = PyDict::new(py);
                kwargs.set_item("file", true)?;
                kwargs.set_item("details", details)?;
                let exc =
                    py.import("fhir_async.errors")?.getattr("for_code")?.call((&e.code, &e.message), Some(&kwargs))?;
                d.bind(py).set_item("error", exc)?;
            }
            Ok(d)
        })
        .collect()
}

/// What the worker threads report, read by the calling thread for the progress bar.
#[derive(Default)]
struct Totals {
    wire: AtomicU64,
    latest: Mutex<DownloadProgress>,
}

/// Runs the download; Ctrl-C (or an exception of the progress callback)
/// stops it, and the client removes every temporary file.
pub fn run(
    py: Python<'_>,
    run: Arc<Mutex<JobRun>>,
    host: &Host,
    directory: PathBuf,
    options: DownloadOptions,
    progress: Option<Py<PyAny>>,
) -> PyResult<DownloadReports> {
    let totals = Arc::new(Totals::default());
    let (tx, rx) = mpsc::channel::<Result<DownloadSummary, ClientError>>();
    let rx = Mutex::new(rx);
    let (t2, dir2, host2) = (totals.clone(), directory.clone(), host.clone());
    std::thread::spawn(move || {
        let r = crate::run::lock_run(&run, &host2).and_then(|mut g| {
            g.download_events(&dir2, options, |e| match e {
                DownloadEvent::Bytes { wire_bytes } => t2.wire.store(wire_bytes, Ordering::Relaxed),
                DownloadEvent::Progress { totals, wire_bytes } => {
                    t2.wire.store(wire_bytes, Ordering::Relaxed);
                    *t2.latest.lock().unwrap_or_else(|p| p.into_inner()) = totals.clone();
                }
                _ => {}
            })
        });
        let _ = tx.send(r);
    });
    let mut last = Instant::now() - Duration::from_secs(1);
    let mut callback_error: Option<PyErr> = None;
    let result = loop {
        let got = py.detach(|| {
            let _caller = Caller::enter();
            loop {
                let r = rx.lock().unwrap_or_else(|p| p.into_inner()).recv_timeout(Duration::from_millis(50));
                match r {
                    Ok(r) => return Some(r),
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return Some(Err(ClientError::Io {
                            path: String::new(),
                            message: "the download thread ended without an answer".into(),
                        }))
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // Asks Python's signal handlers (Ctrl-C); the workers see the stop.
                        let _ = host.stop.is_stopped();
                        if last.elapsed() >= Duration::from_millis(100) {
                            return None;
                        }
                    }
                }
            }
        });
        if let Some(r) = got {
            break r;
        }
        last = Instant::now();
        if let (Some(cb), None) = (&progress, &callback_error) {
            let p = totals.latest.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let args = (totals.wire.load(Ordering::Relaxed), p.resources, p.files_done + p.files_failed, p.files);
            if let Err(e) = cb.bind(py).call1(args) {
                callback_error = Some(e);
                host.stop.stop();
            }
        }
    };
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            return Err(match callback_error {
                Some(cb) => {
                    host.stop.reset();
                    cb
                }
                None => host.error(py, &e),
            })
        }
    };
    if let Some(cb) = &progress {
        let p = totals.latest.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let done = summary.files.len();
        cb.bind(py).call1((summary.wire_bytes, p.resources, done, done))?;
    }
    Ok(DownloadReports::new(directory, summary))
}

/// The files of one `download()`: one report per selected file (manifest
/// order), and the paths of the files written. Dicts and paths are built
/// when asked for.
#[pyclass(module = "fhir_async._native", name = "DownloadReports", frozen)]
pub struct DownloadReports {
    directory: PathBuf,
    plan: Vec<PlannedFile>,
    ends: Vec<FileEnd>,
    ok: Vec<u32>,
    attachments: Vec<AttachmentReport>,
}

impl std::fmt::Debug for DownloadReports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadReports").field("files", &self.ends.len()).field("ok", &self.ok.len()).finish()
    }
}

impl DownloadReports {
    fn new(directory: PathBuf, summary: DownloadSummary) -> Self {
        let mut plan = Vec::with_capacity(summary.files.len());
        let mut ends = Vec::with_capacity(summary.files.len());
        for f in summary.files {
            let (file, end) = FileEnd::of(f.result);
            plan.push(file);
            ends.push(end);
        }
        let ok = ends.iter().enumerate().filter(|(_, e)| e.is_done()).map(|(i, _)| i as u32).collect();
        DownloadReports { directory, plan, ends, ok, attachments: summary.attachments }
    }

    fn path(&self, i: usize) -> PathBuf {
        self.directory.join(&self.plan[i].file_name)
    }
}

#[pymethods]
impl DownloadReports {
    /// Selected files (good and failed).
    fn __len__(&self) -> usize {
        self.ends.len()
    }

    /// The report of file `i`: the engine's figures and `path`, or, for a
    /// file that failed, its plan entry and `error` (the exception).
    fn report(&self, py: Python<'_>, i: usize) -> PyResult<Py<PyAny>> {
        let end = self.ends.get(i).ok_or_else(|| PyIndexError::new_err("report index out of range"))?;
        let path = end.is_done().then(|| self.path(i));
        end.to_py(py, &self.plan[i], path.as_deref())
    }

    /// One report per attachment (protocol M; none with attachments off): `url`,
    /// `fileName` (`attachments/<name>` in the folder), `contentType`, `size`, `sha1`, or
    /// `error` (the typed exception) for one that failed.
    fn attachments(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        attachment_reports(py, &self.attachments)
    }

    /// Files written.
    #[getter]
    fn ok_count(&self) -> usize {
        self.ok.len()
    }

    /// The path of the `i`-th file written (manifest order).
    fn ok_path(&self, i: usize) -> PyResult<PathBuf> {
        let at = self.ok.get(i).ok_or_else(|| PyIndexError::new_err("path index out of range"))?;
        Ok(self.path(*at as usize))
    }

    /// The reports of the files that failed.
    fn failed(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        (0..self.ends.len()).filter(|&i| !self.ends[i].is_done()).map(|i| self.report(py, i)).collect()
    }

    /// The output files written, as `(table, path)` for `folder_to_parquet`:
    /// the table is named as the CLI names it, by the core's [`table_name`]
    /// (a sanitized type; organized output, which has no type, is one
    /// `output` table).
    fn tables(&self) -> Vec<(String, PathBuf)> {
        self.ok
            .iter()
            .map(|&i| i as usize)
            .filter(|&i| self.plan[i].kind == FileKind::Output)
            .map(|i| (table_name(self.plan[i].resource_type.as_deref().unwrap_or_default()), self.path(i)))
            .collect()
    }

    /// How many files failed or had invalid lines, and a line about each of
    /// the first `limit` of them (for one warning).
    fn problems(&self, limit: usize) -> (usize, Vec<String>) {
        let mut count = 0;
        let mut lines = Vec::new();
        for (i, end) in self.ends.iter().enumerate() {
            let Some(line) = end.problem(&self.plan[i].file_name) else { continue };
            count += 1;
            if lines.len() < limit {
                lines.push(line);
            }
        }
        (count, lines)
    }

    fn __repr__(&self) -> String {
        format!("<fhir_async._native.DownloadReports files={} ok={}>", self.ends.len(), self.ok.len())
    }
}
