//! `Session.download`: a finished job's files to disk, in parallel threads,
//! without the GIL. Each file is written to `NAME.tmp` and renamed once the
//! engine says it is complete; a file that fails is a report entry and
//! leaves nothing behind, and every good file is kept (issue 10 §2).
//!
//! Memory stays bounded by the concurrency, not the number of files (issue
//! 10 §3): the plan is read by index from one shared vector, each finished
//! file keeps only its figures, and the Python objects (reports, paths) are
//! built when asked for, one at a time ([`DownloadReports`]).

use crate::drive::{check_signals, Fetcher, Sink, TICK_MS};
use crate::errors::Failure;
use crate::reports::{report_of, strict_lines, FileEnd, FileError};
use fhir_async::{FileReport, PlannedFile};
use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `dir/name`, refusing any name that could leave `dir` (the plan's names
/// are already safe; this is the belt to those braces).
fn safe_join(dir: &Path, name: &str) -> Result<PathBuf, Failure> {
    let p = Path::new(name);
    let mut comps = p.components();
    let ok = matches!(comps.next(), Some(Component::Normal(_)))
        && comps.next().is_none()
        && !name.contains(['/', '\\', '\0'])
        && !name.is_empty();
    if !ok {
        return Err(Failure::Usage(format!("refusing file name {name:?}: it would leave the target directory")));
    }
    Ok(dir.join(p))
}

struct FileSink {
    w: BufWriter<File>,
}

impl Sink for FileSink {
    #[inline]
    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        self.w.write_all(line)?;
        self.w.write_all(b"\n")
    }
}

/// Temp files not yet renamed, so an interrupted download can remove them.
#[derive(Debug, Default)]
struct Temps(Mutex<HashSet<PathBuf>>);

impl Temps {
    fn add(&self, p: &Path) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(p.to_owned());
    }
    fn remove(&self, p: &Path) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(p);
    }
    fn clean(&self) {
        for p in self.0.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// One file to disk: `name.tmp`, then renamed once the engine says the file
/// is complete (and, with strict lines, has no invalid line); removed on any failure.
fn download_one(
    f: &Fetcher,
    temps: &Temps,
    dir: &Path,
    file: PlannedFile,
    strict: bool,
) -> Result<FileReport, Failure> {
    let target = safe_join(dir, &file.file_name)?;
    let tmp = safe_join(dir, &format!("{}.tmp", file.file_name))?;
    if f.stop.load(Ordering::Relaxed) {
        return Err(Failure::Stopped);
    }
    temps.add(&tmp);
    let result = (|| {
        let out = File::create(&tmp).map_err(|e| Failure::Io(format!("{}: {e}", tmp.display())))?;
        let mut sink = FileSink { w: BufWriter::with_capacity(256 * 1024, out) };
        let mut dl = f.fetch(file, &mut sink)?;
        let report = report_of(&mut dl)?;
        if strict {
            strict_lines(&report)?;
        }
        sink.w.flush().map_err(|e| Failure::Io(format!("{}: {e}", tmp.display())))?;
        drop(sink);
        std::fs::rename(&tmp, &target).map_err(|e| Failure::Io(format!("{}: {e}", target.display())))?;
        Ok(report)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    temps.remove(&tmp);
    result
}

/// What one call of `download` needs besides the fetcher.
pub struct DiskJob {
    pub plan: Vec<PlannedFile>,
    pub directory: PathBuf,
    pub concurrency: usize,
    pub strict_lines: bool,
    pub progress: Option<Py<PyAny>>,
}

/// Runs the download without the GIL (call inside `py.detach`). Returns
/// one end per file, or the failure that ended the whole call (Ctrl-C, an
/// exception from the progress callback or the token callable).
pub fn run(fetcher: Arc<Fetcher>, job: DiskJob) -> Result<DownloadReports, Failure> {
    let DiskJob { plan, directory, concurrency, strict_lines: strict, progress } = job;
    let plan = Arc::new(plan);
    let total = plan.len();
    let temps = Arc::new(Temps::default());
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel::<(usize, Result<FileReport, Failure>)>();
    let workers = concurrency.clamp(1, 64).min(total.max(1));
    for _ in 0..workers {
        let (fetcher, temps, next, tx, dir, plan) =
            (fetcher.clone(), temps.clone(), next.clone(), tx.clone(), directory.clone(), plan.clone());
        std::thread::spawn(move || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(file) = plan.get(i) else { return };
            let r = download_one(&fetcher, &temps, &dir, file.clone(), strict);
            if tx.send((i, r)).is_err() {
                return;
            }
        });
    }
    drop(tx);
    let mut ends: Vec<Option<FileEnd>> = (0..total).map(|_| None).collect();
    let mut finished = 0usize;
    let mut failure: Option<Failure> = None;
    let mut last_report = 0u64;
    while finished < total {
        match rx.recv_timeout(Duration::from_millis(TICK_MS)) {
            Ok((i, r)) => {
                finished += 1;
                match r.map_err(FileError::split) {
                    Ok(report) => ends[i] = Some(FileEnd::done(report, &plan[i])),
                    Err(Ok(e)) => ends[i] = Some(FileEnd::Failed(e)),
                    Err(Err(f)) => {
                        // Stopped by another failure: keep the one that stopped it.
                        if failure.is_none() || matches!(failure, Some(Failure::Stopped)) {
                            failure = Some(f);
                        }
                        fetcher.stop.store(true, Ordering::Relaxed);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Err(e) = check_signals() {
            fetcher.stop.store(true, Ordering::Relaxed);
            failure = Some(e);
            break;
        }
        if failure.is_some() {
            break;
        }
        let now = crate::now_ms();
        if let Some(cb) = &progress {
            if now.saturating_sub(last_report) >= 100 || finished == total {
                last_report = now;
                let args =
                    (fetcher.bytes.load(Ordering::Relaxed), fetcher.resources.load(Ordering::Relaxed), finished, total);
                if let Err(e) = Python::attach(|py| cb.bind(py).call1(args).map(|_| ())) {
                    fetcher.stop.store(true, Ordering::Relaxed);
                    failure = Some(Failure::Py(e));
                    break;
                }
            }
        }
    }
    if let Some(f) = failure {
        // Give the workers a moment to notice the stop and remove their
        // temp files; whatever is left is removed here.
        let deadline = crate::now_ms() + 500;
        while finished < total && crate::now_ms() < deadline {
            if rx.recv_timeout(Duration::from_millis(20)).is_ok() {
                finished += 1;
            }
        }
        temps.clean();
        return Err(f);
    }
    let ends: Vec<FileEnd> = ends
        .into_iter()
        .map(|e| e.unwrap_or_else(|| FileEnd::Failed(FileError::Usage("the download thread died".into()))))
        .collect();
    let ok = ends.iter().enumerate().filter(|(_, e)| e.is_done()).map(|(i, _)| i as u32).collect();
    Ok(DownloadReports { directory, plan, ends, ok })
}

/// The files of one `download()`: one report per planned file (in plan
/// order), and the paths of the files written. Dicts and paths are built
/// when asked for, so 100,000 files cost no 100,000 Python objects.
#[pyclass(module = "fhir_async._native", name = "DownloadReports", frozen)]
pub struct DownloadReports {
    directory: PathBuf,
    plan: Arc<Vec<PlannedFile>>,
    ends: Vec<FileEnd>,
    ok: Vec<u32>,
}

impl std::fmt::Debug for DownloadReports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadReports").field("files", &self.ends.len()).field("ok", &self.ok.len()).finish()
    }
}

impl DownloadReports {
    fn path(&self, i: usize) -> PathBuf {
        self.directory.join(&self.plan[i].file_name)
    }
}

#[pymethods]
impl DownloadReports {
    /// Planned files (good and failed).
    fn __len__(&self) -> usize {
        self.ends.len()
    }

    /// The report of planned file `i`: the engine's figures and `path`, or,
    /// for a file that failed, its plan entry and `error` (the exception).
    fn report(&self, py: Python<'_>, i: usize) -> PyResult<Py<PyAny>> {
        let end = self.ends.get(i).ok_or_else(|| PyIndexError::new_err("report index out of range"))?;
        let path = end.is_done().then(|| self.path(i));
        end.to_py(py, &self.plan[i], path.as_deref())
    }

    /// Files written.
    #[getter]
    fn ok_count(&self) -> usize {
        self.ok.len()
    }

    /// The path of the `i`-th file written (plan order).
    fn ok_path(&self, i: usize) -> PyResult<PathBuf> {
        let at = self.ok.get(i).ok_or_else(|| PyIndexError::new_err("path index out of range"))?;
        Ok(self.path(*at as usize))
    }

    /// The reports of the files that failed.
    fn failed(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        (0..self.ends.len()).filter(|&i| !self.ends[i].is_done()).map(|i| self.report(py, i)).collect()
    }

    /// How many files failed or had invalid lines, and a line about each of
    /// the first `limit` of them (for one warning).
    fn problems(&self, limit: usize) -> (usize, Vec<String>) {
        let mut count = 0;
        let mut lines = Vec::new();
        for (i, end) in self.ends.iter().enumerate() {
            let line = match end {
                FileEnd::Failed(e) => format!("{} failed: {}", self.plan[i].file_name, e.message()),
                FileEnd::Done(r) if r.invalid_lines > 0 => format!(
                    "{}: {} invalid line(s), kept as the server sent them (first: line {})",
                    self.plan[i].file_name,
                    r.invalid_lines,
                    r.first_invalid_line.unwrap_or(0)
                ),
                FileEnd::Done(_) => continue,
            };
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
