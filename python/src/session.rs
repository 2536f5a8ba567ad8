//! `_native.Session`: one HTTP client and token; drives jobs, downloads
//! files in parallel and streams resources, all without holding the GIL.

use crate::convert::{to_py, LineParser};
use crate::drive::{check_signals, drive, Ctx, Driven, Fetcher, Sink, TICK_MS};
use crate::errors::Failure;
use crate::job::PyJob;
use crate::net::Http;
use crate::token::Token;
use fhir_async::{FileKind, FileReport, PlannedFile};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// One file to disk: `name.tmp`, then renamed once the engine says the
/// file is complete (count checked); removed on any failure.
fn download_one(f: &Fetcher, temps: &Temps, dir: &Path, file: PlannedFile) -> Result<(FileReport, PathBuf), Failure> {
    let target = safe_join(dir, &file.file_name)?;
    let tmp = safe_join(dir, &format!("{}.tmp", file.file_name))?;
    if f.stop.load(Ordering::Relaxed) {
        return Err(Failure::Stopped);
    }
    temps.add(&tmp);
    let result = (|| {
        let out = File::create(&tmp).map_err(|e| Failure::Io(format!("{}: {e}", tmp.display())))?;
        let mut sink = FileSink { w: BufWriter::with_capacity(256 * 1024, out) };
        let report = f.fetch(file, &mut sink)?;
        sink.w.flush().map_err(|e| Failure::Io(format!("{}: {e}", tmp.display())))?;
        drop(sink);
        std::fs::rename(&tmp, &target).map_err(|e| Failure::Io(format!("{}: {e}", target.display())))?;
        Ok((report, target))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    temps.remove(&tmp);
    result
}

enum Msg {
    Batch(Vec<u8>, Vec<usize>),
    End,
    Failed(Failure),
}

/// Lines batched for the consumer: one channel message per ~256 KiB.
struct BatchSink {
    tx: SyncSender<Msg>,
    buf: Vec<u8>,
    ends: Vec<usize>,
}

const BATCH_BYTES: usize = 256 * 1024;

impl BatchSink {
    fn flush(&mut self) -> io::Result<()> {
        if self.ends.is_empty() {
            return Ok(());
        }
        let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH_BYTES + 4096));
        let ends = std::mem::take(&mut self.ends);
        self.tx
            .send(Msg::Batch(buf, ends))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the iterator was dropped"))
    }
}

impl Sink for BatchSink {
    #[inline]
    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(line);
        self.ends.push(self.buf.len());
        if self.buf.len() >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }
}

/// Resources of a finished job's files, parsed into dicts as they arrive.
/// Files are fetched one after the other on a background thread.
#[pyclass(module = "fhir_async._native", name = "ResourceIterator")]
pub struct ResourceIter {
    rx: Mutex<Receiver<Msg>>,
    stop: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    batch: Vec<u8>,
    ends: Vec<usize>,
    pos: usize,
    start: usize,
    parser: LineParser,
    done: bool,
    raw: bool,
}

impl std::fmt::Debug for ResourceIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceIter").field("bytes", &self.bytes).field("done", &self.done).finish_non_exhaustive()
    }
}

impl Drop for ResourceIter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl ResourceIter {
    /// An iterator over the batches a producer thread sends on `rx`.
    fn new(rx: Receiver<Msg>, stop: Arc<AtomicBool>, bytes: Arc<AtomicU64>, raw: bool) -> Self {
        ResourceIter {
            rx: Mutex::new(rx),
            stop,
            bytes,
            batch: Vec::new(),
            ends: Vec::new(),
            pos: 0,
            start: 0,
            parser: LineParser::new(),
            done: false,
            raw,
        }
    }

    /// The next line, waiting for the next batch if needed; `None` at the end.
    fn next_line(&mut self, py: Python<'_>) -> PyResult<Option<(usize, usize)>> {
        loop {
            if self.pos < self.ends.len() {
                let end = self.ends[self.pos];
                let r = (self.start, end);
                self.start = end;
                self.pos += 1;
                return Ok(Some(r));
            }
            if self.done {
                return Ok(None);
            }
            let msg = {
                let rx = &self.rx;
                py.detach(|| loop {
                    let r = rx.lock().unwrap_or_else(|e| e.into_inner()).recv_timeout(Duration::from_millis(TICK_MS));
                    match r {
                        Ok(m) => return Ok(m),
                        Err(RecvTimeoutError::Disconnected) => return Ok(Msg::End),
                        Err(RecvTimeoutError::Timeout) => check_signals()?,
                    }
                })
            };
            match msg.map_err(|f: Failure| f.into_py(py))? {
                Msg::Batch(buf, ends) => {
                    self.batch = buf;
                    self.ends = ends;
                    self.pos = 0;
                    self.start = 0;
                }
                Msg::End => self.done = true,
                Msg::Failed(f) => {
                    self.done = true;
                    return Err(f.into_py(py));
                }
            }
        }
    }
}

#[pymethods]
impl ResourceIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let Some((a, b)) = self.next_line(py)? else {
            return Ok(None);
        };
        let line = &self.batch[a..b];
        if self.raw {
            return Ok(Some(pyo3::types::PyBytes::new(py, line).into_any().unbind()));
        }
        self.parser.parse(py, line).map(Some)
    }

    /// Up to `n` more resources at once (an empty list at the end).
    fn next_batch(&mut self, py: Python<'_>, n: usize) -> PyResult<Vec<Py<PyAny>>> {
        let mut out = Vec::with_capacity(n.min(4096));
        while out.len() < n {
            match self.__next__(py)? {
                Some(v) => out.push(v),
                None => break,
            }
        }
        Ok(out)
    }

    /// The remaining lines of the current batch (or of the next one) as
    /// `bytes`, unparsed; an empty list at the end. Lets a caller hand lines
    /// to another JSON parser in bulk.
    fn next_raw_batch(&mut self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        let Some((a, b)) = self.next_line(py)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(self.ends.len() - self.pos + 1);
        out.push(pyo3::types::PyBytes::new(py, &self.batch[a..b]).into_any().unbind());
        while self.pos < self.ends.len() {
            let end = self.ends[self.pos];
            out.push(pyo3::types::PyBytes::new(py, &self.batch[self.start..end]).into_any().unbind());
            self.start = end;
            self.pos += 1;
        }
        Ok(out)
    }

    /// Bytes received so far.
    #[getter]
    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Stops the background download.
    fn close(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.done = true;
        self.ends.clear();
        self.pos = 0;
    }

    fn __repr__(&self) -> String {
        format!("<fhir_async._native.ResourceIterator bytes={} done={}>", self.bytes.load(Ordering::Relaxed), self.done)
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

    /// Runs `job` until it is done (`("done", outcome)`) or has to wait
    /// longer than `block_ms` from now (`("wait", delay_ms)`). Releases the
    /// GIL; checks for Ctrl-C every 50 ms.
    #[pyo3(signature = (job, block_ms))]
    fn drive(&self, py: Python<'_>, job: &PyJob, block_ms: u64) -> PyResult<(String, Py<PyAny>)> {
        let cell = job.cell.clone();
        let ctx = self.ctx.clone();
        let r = py.detach(move || drive(&ctx, &cell, block_ms, true));
        match r {
            Ok(Driven::Done(o)) => Ok(("done".into(), to_py(py, &*o)?)),
            Ok(Driven::Wait(ms)) => Ok(("wait".into(), ms.into_pyobject(py)?.into_any().unbind())),
            Err(f) => Err(f.into_py(py)),
        }
    }

    /// Downloads the files of a finished job into `directory` with
    /// `concurrency` threads. Returns one report per file (with `path`).
    /// `progress(bytes, resources, files_done, files_total)` is called about
    /// ten times a second. On any failure or Ctrl-C, no `.tmp` file remains.
    #[pyo3(signature = (job, directory, concurrency=8, types=None, kinds=None, gzip=true, progress=None))]
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
    ) -> PyResult<Vec<Py<PyAny>>> {
        let kinds = kinds.unwrap_or_else(|| vec!["output".into(), "error".into(), "deleted".into()]);
        let plan = select(job.cell.lock().download_plan(), types.as_deref(), &kinds);
        let total = plan.len();
        let fetcher = Arc::new(Fetcher::new(self.ctx.clone(), job.cell.clone(), gzip));
        let temps = Arc::new(Temps::default());
        let queue = Arc::new(Mutex::new(plan.into_iter().enumerate().collect::<VecDeque<_>>()));
        let (tx, rx) = mpsc::channel::<(usize, Result<(FileReport, PathBuf), Failure>)>();
        let workers = concurrency.clamp(1, 64).min(total.max(1));
        for _ in 0..workers {
            let (fetcher, temps, queue, tx, dir) =
                (fetcher.clone(), temps.clone(), queue.clone(), tx.clone(), directory.clone());
            std::thread::spawn(move || loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some((i, file)) = next else { return };
                let r = download_one(&fetcher, &temps, &dir, file);
                if tx.send((i, r)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        let f2 = fetcher.clone();
        let temps2 = temps.clone();
        let result = py.detach(move || {
            let mut done: Vec<Option<(FileReport, PathBuf)>> = (0..total).map(|_| None).collect();
            let mut finished = 0usize;
            let mut failure: Option<Failure> = None;
            let mut last_report = 0u64;
            while finished < total {
                match rx.recv_timeout(Duration::from_millis(TICK_MS)) {
                    Ok((i, Ok(r))) => {
                        done[i] = Some(r);
                        finished += 1;
                    }
                    Ok((_, Err(f))) => {
                        finished += 1;
                        if failure.is_none() || matches!(failure, Some(Failure::Stopped)) {
                            failure = Some(f);
                        }
                        f2.stop.store(true, Ordering::Relaxed);
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                if let Err(e) = check_signals() {
                    f2.stop.store(true, Ordering::Relaxed);
                    failure = Some(e);
                    break;
                }
                if failure.is_some() && f2.stop.load(Ordering::Relaxed) && finished >= total {
                    break;
                }
                let now = crate::now_ms();
                if let Some(cb) = &progress {
                    if now.saturating_sub(last_report) >= 100 || finished == total {
                        last_report = now;
                        let args =
                            (f2.bytes.load(Ordering::Relaxed), f2.resources.load(Ordering::Relaxed), finished, total);
                        if let Err(e) = Python::attach(|py| cb.bind(py).call1(args).map(|_| ())) {
                            f2.stop.store(true, Ordering::Relaxed);
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
                temps2.clean();
                return Err(f);
            }
            Ok(done.into_iter().flatten().collect::<Vec<_>>())
        });
        match result {
            Err(f) => Err(f.into_py(py)),
            Ok(files) => files
                .into_iter()
                .map(|(report, path)| {
                    let d = to_py(py, &report)?;
                    d.bind(py).downcast::<PyDict>()?.set_item("path", path)?;
                    Ok(d)
                })
                .collect(),
        }
    }

    /// Streams the resources (dicts; `raw=True`: bytes) of the job's files,
    /// one file after the other, downloading ahead in the background.
    #[pyo3(signature = (job, types=None, kinds=None, gzip=true, raw=false))]
    fn resources(
        &self,
        job: &PyJob,
        types: Option<Vec<String>>,
        kinds: Option<Vec<String>>,
        gzip: bool,
        raw: bool,
    ) -> ResourceIter {
        let kinds = kinds.unwrap_or_else(|| vec!["output".into()]);
        let plan = select(job.cell.lock().download_plan(), types.as_deref(), &kinds);
        let fetcher = Arc::new(Fetcher::new(self.ctx.clone(), job.cell.clone(), gzip));
        let (tx, rx) = mpsc::sync_channel::<Msg>(8);
        let f2 = fetcher.clone();
        std::thread::spawn(move || {
            let mut sink = BatchSink { tx: tx.clone(), buf: Vec::with_capacity(BATCH_BYTES + 4096), ends: Vec::new() };
            for file in plan {
                let r = f2.fetch(file, &mut sink).and_then(|_| sink.flush().map_err(|e| Failure::Io(e.to_string())));
                if let Err(f) = r {
                    if !matches!(f, Failure::Stopped) {
                        let _ = tx.send(Msg::Failed(f));
                    }
                    return;
                }
            }
            let _ = tx.send(Msg::End);
        });
        ResourceIter::new(rx, fetcher.stop.clone(), fetcher.bytes.clone(), raw)
    }

    fn __repr__(&self) -> String {
        "<fhir_async._native.Session>".into()
    }
}

/// Streams the resources of local NDJSON files (as `download()` wrote them),
/// read and split on a background thread, like `Session.resources`.
#[pyfunction]
#[pyo3(signature = (paths, raw=false))]
pub fn read_ndjson(paths: Vec<PathBuf>, raw: bool) -> ResourceIter {
    let stop = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::sync_channel::<Msg>(8);
    let (stop2, bytes2) = (stop.clone(), bytes.clone());
    std::thread::spawn(move || {
        let mut sink = BatchSink { tx: tx.clone(), buf: Vec::with_capacity(BATCH_BYTES + 4096), ends: Vec::new() };
        let mut buf = vec![0u8; 256 * 1024];
        for path in paths {
            let r = (|| -> Result<(), Failure> {
                let io = |e: io::Error| Failure::Io(format!("{}: {e}", path.display()));
                let mut f = File::open(&path).map_err(io)?;
                let mut splitter = fhir_async::LineSplitter::new(usize::MAX);
                // Only fails once the iterator was dropped; remembered for after the chunk.
                let werr: std::cell::Cell<Option<io::Error>> = std::cell::Cell::new(None);
                let mut on_line = |l: &[u8]| {
                    if let Err(e) = sink.line(l) {
                        werr.set(Some(e));
                    }
                };
                loop {
                    if stop2.load(Ordering::Relaxed) {
                        return Err(Failure::Stopped);
                    }
                    let n = std::io::Read::read(&mut f, &mut buf).map_err(io)?;
                    if n == 0 {
                        break;
                    }
                    bytes2.fetch_add(n as u64, Ordering::Relaxed);
                    splitter.feed(&buf[..n], &mut on_line).map_err(|e| Failure::Io(e.to_string()))?;
                    if let Some(e) = werr.take() {
                        return Err(io(e));
                    }
                }
                splitter.finish(&mut on_line).map_err(|e| Failure::Io(e.to_string()))?;
                if let Some(e) = werr.take() {
                    return Err(io(e));
                }
                Ok(())
            })();
            if let Err(f) = r {
                if !matches!(f, Failure::Stopped) {
                    let _ = tx.send(Msg::Failed(f));
                }
                return;
            }
        }
        if sink.flush().is_ok() {
            let _ = tx.send(Msg::End);
        }
    });
    ResourceIter::new(rx, stop, bytes, raw)
}
