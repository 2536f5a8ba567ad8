//! Resource streams: the lines of a job's files (`Session.resources`) or of
//! local NDJSON files (`read_ndjson`), read and split on a background thread
//! and handed to Python in batches of ~256 KiB, parsed there.
//!
//! Issue 10 §1-2: a line that does not parse is skipped and reported (file,
//! line, message) through the engine's `report_invalid_line`, so the file's
//! report counts it once; with `on_invalid_line="raise"` it raises
//! `InvalidLineError` instead. A file that fails is a report entry and the
//! stream goes on with the next file.

use crate::convert::LineParser;
use crate::drive::{check_signals, Fetcher, Sink, TICK_MS};
use crate::errors::{raise, warn, Failure};
use crate::reports::{report_of, FileEnd, FileError};
use fhir_async::download::MAX_INVALID_REPORTED;
use fhir_async::{FileDownload, InvalidLine, PlannedFile};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How file `file` of the stream ended, as the producer saw it.
enum Finished {
    /// A download; the consumer adds the lines it could not parse, then takes its report.
    Download(Box<FileDownload>),
    /// A local file read to its end.
    Local { resources: u64 },
    /// The file failed; the stream goes on.
    Failed(FileError),
}

enum Msg {
    /// Lines of one file; `first_line` is the 1-based number of the first.
    Batch {
        buf: Vec<u8>,
        ends: Vec<usize>,
        file: usize,
        first_line: u64,
    },
    /// Every line of `file` was sent.
    FileDone {
        file: usize,
        finished: Finished,
    },
    End,
    /// The stream stops (an exception from Python code, a local read error).
    Failed(Failure),
}

/// Lines batched for the consumer: one channel message per ~256 KiB, never
/// spanning two files (so a line number always names one file).
struct BatchSink {
    tx: SyncSender<Msg>,
    buf: Vec<u8>,
    ends: Vec<usize>,
    file: usize,
    lines: u64,
    first_line: u64,
    closed: bool,
}

const BATCH_BYTES: usize = 256 * 1024;

impl BatchSink {
    fn new(tx: SyncSender<Msg>) -> Self {
        BatchSink {
            tx,
            buf: Vec::with_capacity(BATCH_BYTES + 4096),
            ends: Vec::new(),
            file: 0,
            lines: 0,
            first_line: 1,
            closed: false,
        }
    }

    fn start_file(&mut self, file: usize) {
        self.file = file;
        self.lines = 0;
        self.first_line = 1;
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.ends.is_empty() {
            return Ok(());
        }
        let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH_BYTES + 4096));
        let ends = std::mem::take(&mut self.ends);
        let msg = Msg::Batch { buf, ends, file: self.file, first_line: self.first_line };
        self.first_line = self.lines + 1;
        self.send(msg)
    }

    fn send(&mut self, msg: Msg) -> io::Result<()> {
        self.tx.send(msg).map_err(|_| {
            self.closed = true;
            io::Error::new(io::ErrorKind::BrokenPipe, "the iterator was dropped")
        })
    }
}

impl Sink for BatchSink {
    #[inline]
    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(line);
        self.ends.push(self.buf.len());
        self.lines += 1;
        if self.buf.len() >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }
}

/// What the stream's files are.
#[derive(Debug)]
enum Source {
    Plan(Arc<Vec<PlannedFile>>),
    Paths(Arc<Vec<PathBuf>>),
}

/// The report of a local file.
#[derive(Debug)]
struct LocalReport {
    resources: u64,
    invalid_lines: u64,
    invalid: Vec<InvalidLine>,
}

#[derive(Debug)]
enum StreamReport {
    Download(FileEnd),
    Local(LocalReport),
    LocalFailed(FileError),
}

/// Resources of a stream's files, in file order.
#[pyclass(module = "fhir_async._native", name = "ResourceIterator")]
pub struct ResourceIter {
    rx: Mutex<Receiver<Msg>>,
    stop: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    source: Source,
    batch: Vec<u8>,
    ends: Vec<usize>,
    pos: usize,
    start: usize,
    batch_file: usize,
    batch_first_line: u64,
    /// Line number of the first line the last `next_raw_batch` returned.
    raw_first_line: u64,
    /// Lines of the current file that did not parse: (line, message).
    pending: Vec<(u64, String)>,
    pending_file: usize,
    reports: Vec<(usize, StreamReport)>,
    parser: LineParser,
    done: bool,
    raw: bool,
    raise_invalid: bool,
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
    fn new(
        rx: Receiver<Msg>,
        stop: Arc<AtomicBool>,
        bytes: Arc<AtomicU64>,
        source: Source,
        opts: StreamOptions,
    ) -> Self {
        ResourceIter {
            rx: Mutex::new(rx),
            stop,
            bytes,
            source,
            batch: Vec::new(),
            ends: Vec::new(),
            pos: 0,
            start: 0,
            batch_file: 0,
            batch_first_line: 1,
            raw_first_line: 1,
            pending: Vec::new(),
            pending_file: 0,
            reports: Vec::new(),
            parser: LineParser::new(),
            done: false,
            raw: opts.raw,
            raise_invalid: opts.raise_invalid,
        }
    }

    /// The URL or path of file `file`.
    fn label(&self, file: usize) -> String {
        match &self.source {
            Source::Plan(p) => p.get(file).map(|f| f.url.clone()).unwrap_or_default(),
            Source::Paths(p) => p.get(file).map(|f| f.display().to_string()).unwrap_or_default(),
        }
    }

    /// The next line (range in the batch, line number), waiting for the
    /// next batch if needed; `None` at the end.
    fn next_line(&mut self, py: Python<'_>) -> PyResult<Option<(usize, usize, u64)>> {
        loop {
            if self.pos < self.ends.len() {
                let end = self.ends[self.pos];
                let r = (self.start, end, self.batch_first_line + self.pos as u64);
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
                Msg::Batch { buf, ends, file, first_line } => {
                    self.batch = buf;
                    self.ends = ends;
                    self.pos = 0;
                    self.start = 0;
                    self.batch_file = file;
                    self.batch_first_line = first_line;
                }
                Msg::FileDone { file, finished } => self.file_done(py, file, finished)?,
                Msg::End => self.done = true,
                Msg::Failed(f) => {
                    self.done = true;
                    return Err(f.into_py(py));
                }
            }
        }
    }

    /// Records a line that did not parse; returns the `InvalidLineError` (not raised).
    fn invalid(&mut self, py: Python<'_>, line: u64, message: String) -> PyErr {
        let file = self.batch_file;
        if self.pending_file != file {
            self.pending.clear();
            self.pending_file = file;
        }
        let label = self.label(file);
        let details = PyDict::new(py);
        let key = if matches!(self.source, Source::Paths(_)) { "path" } else { "url" };
        let _ = details.set_item(key, &label);
        let _ = details.set_item("line", line);
        let _ = details.set_item("message", &message);
        let text = format!("{label}: line {line} is not a FHIR resource: {message}");
        self.pending.push((line, message));
        raise(py, "InvalidLineError", &text, "invalid_line", Some(details.into_any().unbind()))
    }

    /// File `file` is over: its report, with the lines Python could not parse.
    fn file_done(&mut self, py: Python<'_>, file: usize, finished: Finished) -> PyResult<()> {
        let pending = if self.pending_file == file { std::mem::take(&mut self.pending) } else { Vec::new() };
        let report = match finished {
            Finished::Download(mut dl) => {
                for (line, message) in &pending {
                    dl.report_invalid_line(*line, message);
                }
                let end = match report_of(&mut dl) {
                    Ok(mut r) => {
                        merge_late_invalid(&mut r, &pending);
                        let plan = match &self.source {
                            Source::Plan(p) => p.clone(),
                            Source::Paths(_) => Arc::new(Vec::new()),
                        };
                        match plan.get(file) {
                            Some(f) => FileEnd::done(r, f),
                            None => FileEnd::Done(Box::new(r)),
                        }
                    }
                    Err(f) => FileEnd::Failed(FileError::split(f).map_err(|f| f.into_py(py))?),
                };
                StreamReport::Download(end)
            }
            Finished::Local { resources } => StreamReport::Local(LocalReport {
                resources,
                invalid_lines: pending.len() as u64,
                invalid: pending
                    .iter()
                    .take(MAX_INVALID_REPORTED)
                    .map(|(line, message)| InvalidLine { line: *line, message: message.clone() })
                    .collect(),
            }),
            Finished::Failed(e) => match &self.source {
                Source::Plan(_) => StreamReport::Download(FileEnd::Failed(e)),
                Source::Paths(_) => StreamReport::LocalFailed(e),
            },
        };
        let note = match &report {
            StreamReport::Download(FileEnd::Failed(e)) | StreamReport::LocalFailed(e) => {
                Some(format!("{} failed, the stream goes on with the next file: {}", self.label(file), e.message()))
            }
            _ if !pending.is_empty() && !self.raise_invalid => Some(format!(
                "{}: {} line(s) are not JSON and were skipped (first: line {}); see the stream's reports",
                self.label(file),
                pending.len(),
                pending[0].0
            )),
            _ => None,
        };
        self.reports.push((file, report));
        if let Some(n) = note {
            warn(py, &n)?;
        }
        Ok(())
    }

    fn report_to_py(&self, py: Python<'_>, file: usize, report: &StreamReport) -> PyResult<Py<PyAny>> {
        match (report, &self.source) {
            (StreamReport::Download(end), Source::Plan(plan)) => match plan.get(file) {
                Some(f) => end.to_py(py, f, None),
                None => Ok(py.None()),
            },
            (StreamReport::Local(r), _) => {
                let d = PyDict::new(py);
                d.set_item("path", self.label(file))?;
                d.set_item("resources", r.resources)?;
                d.set_item("invalidLines", r.invalid_lines)?;
                d.set_item("firstInvalidLine", r.invalid.first().map(|l| l.line))?;
                d.set_item("invalid", crate::convert::to_py(py, &r.invalid)?)?;
                Ok(d.into_any().unbind())
            }
            (StreamReport::LocalFailed(e), _) => {
                let d = PyDict::new(py);
                d.set_item("path", self.label(file))?;
                d.set_item("error", e.exception(py).into_value(py))?;
                Ok(d.into_any().unbind())
            }
            (StreamReport::Download(_), Source::Paths(_)) => Ok(py.None()),
        }
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.done = true;
        self.ends.clear();
        self.pos = 0;
    }
}

#[pymethods]
impl ResourceIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        loop {
            let Some((a, b, line)) = self.next_line(py)? else {
                return Ok(None);
            };
            let bytes = &self.batch[a..b];
            if self.raw {
                return Ok(Some(PyBytes::new(py, bytes).into_any().unbind()));
            }
            match self.parser.parse(py, bytes) {
                Ok(v) => return Ok(Some(v)),
                Err(e) => {
                    let message = e.value(py).to_string();
                    let exc = self.invalid(py, line, message);
                    if self.raise_invalid {
                        self.stop_now();
                        return Err(exc);
                    }
                }
            }
        }
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
    /// `bytes`, unparsed, all from one file; an empty list at the end. Lets a
    /// caller hand lines to another JSON parser in bulk (and report the ones
    /// that fail with `report_invalid`).
    fn next_raw_batch(&mut self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        let Some((a, b, line)) = self.next_line(py)? else {
            return Ok(Vec::new());
        };
        self.raw_first_line = line;
        let mut out = Vec::with_capacity(self.ends.len() - self.pos + 1);
        out.push(PyBytes::new(py, &self.batch[a..b]).into_any().unbind());
        while self.pos < self.ends.len() {
            let end = self.ends[self.pos];
            out.push(PyBytes::new(py, &self.batch[self.start..end]).into_any().unbind());
            self.start = end;
            self.pos += 1;
        }
        Ok(out)
    }

    /// Line `index` of the last `next_raw_batch` did not parse (`message`
    /// says why): recorded in its file's report; returns the
    /// `InvalidLineError` to raise (and stops the stream) when asked for
    /// strict lines, None otherwise.
    fn report_invalid(&mut self, py: Python<'_>, index: u64, message: String) -> Option<Py<PyAny>> {
        let exc = self.invalid(py, self.raw_first_line + index, message);
        if self.raise_invalid {
            self.stop_now();
            return Some(exc.into_value(py).into_any());
        }
        None
    }

    /// The reports of the files finished so far (stream order).
    fn reports(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        self.reports.iter().map(|(file, r)| self.report_to_py(py, *file, r)).collect()
    }

    /// Bytes received so far.
    #[getter]
    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Stops the background download.
    fn close(&mut self) {
        self.stop_now();
    }

    fn __repr__(&self) -> String {
        format!(
            "<fhir_async._native.ResourceIterator bytes={} files_done={} done={}>",
            self.bytes.load(Ordering::Relaxed),
            self.reports.len(),
            self.done
        )
    }
}

/// The engine builds a file's report when the body ends; lines parsed
/// later by Python and reported after that are added here, once (a no-op
/// when the engine already counted them).
fn merge_late_invalid(r: &mut fhir_async::FileReport, pending: &[(u64, String)]) {
    if pending.is_empty() || r.invalid_lines >= pending.len() as u64 {
        return;
    }
    r.invalid_lines += pending.len() as u64;
    let first = pending.iter().map(|(l, _)| *l).min();
    r.first_invalid_line = r.first_invalid_line.min(first).or(first);
    for (line, message) in pending {
        if r.invalid.len() >= MAX_INVALID_REPORTED {
            break;
        }
        r.invalid.push(InvalidLine { line: *line, message: message.clone() });
    }
    r.warnings.push(format!(
        "{} line(s) are not FHIR resources (first: line {})",
        r.invalid_lines,
        r.first_invalid_line.unwrap_or(0)
    ));
}

/// How a stream hands out lines.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// Lines as `bytes`, unparsed.
    pub raw: bool,
    /// `on_invalid_line="raise"`.
    pub raise_invalid: bool,
}

/// Streams the lines of `plan`'s files, fetched one after the other on a
/// background thread. A file that fails is reported and skipped.
pub fn download_stream(fetcher: Arc<Fetcher>, plan: Vec<PlannedFile>, opts: StreamOptions) -> ResourceIter {
    let plan = Arc::new(plan);
    let (tx, rx) = mpsc::sync_channel::<Msg>(8);
    let (f2, plan2) = (fetcher.clone(), plan.clone());
    std::thread::spawn(move || {
        let mut sink = BatchSink::new(tx);
        for (i, file) in plan2.iter().enumerate() {
            sink.start_file(i);
            let r = f2.fetch(file.clone(), &mut sink);
            // The file's last lines go before its end.
            let flushed = sink.flush();
            if flushed.is_err() || sink.closed || f2.stop.load(Ordering::Relaxed) {
                return;
            }
            let finished = match r.map_err(FileError::split) {
                Ok(dl) => Finished::Download(dl),
                Err(Ok(e)) => Finished::Failed(e),
                Err(Err(f)) => {
                    if !matches!(f, Failure::Stopped) {
                        let _ = sink.send(Msg::Failed(f));
                    }
                    return;
                }
            };
            if sink.send(Msg::FileDone { file: i, finished }).is_err() {
                return;
            }
        }
        let _ = sink.send(Msg::End);
    });
    ResourceIter::new(rx, fetcher.stop.clone(), fetcher.bytes.clone(), Source::Plan(plan), opts)
}

/// Reads one local file into the sink; the number of lines.
fn read_local(path: &PathBuf, sink: &mut BatchSink, stop: &AtomicBool, bytes: &AtomicU64) -> Result<u64, Failure> {
    let io = |e: io::Error| Failure::Io(format!("{}: {e}", path.display()));
    let mut f = File::open(path).map_err(io)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut splitter = fhir_async::LineSplitter::new(usize::MAX);
    // Only fails once the iterator was dropped; remembered for after the chunk.
    let werr: std::cell::Cell<Option<io::Error>> = std::cell::Cell::new(None);
    let before = sink.lines;
    let mut on_line = |l: &[u8]| {
        if let Err(e) = sink.line(l) {
            werr.set(Some(e));
        }
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(Failure::Stopped);
        }
        let n = std::io::Read::read(&mut f, &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        splitter.feed(&buf[..n], &mut on_line).map_err(|e| Failure::Io(e.to_string()))?;
        if let Some(e) = werr.take() {
            return Err(io(e));
        }
    }
    splitter.finish(&mut on_line).map_err(|e| Failure::Io(e.to_string()))?;
    if let Some(e) = werr.take() {
        return Err(io(e));
    }
    Ok(sink.lines - before)
}

/// Streams the resources of local NDJSON files (as `download()` wrote them),
/// read and split on a background thread, like `Session.resources`. A file
/// that cannot be read ends the stream with `DownloadError` (code `io`).
#[pyfunction]
#[pyo3(signature = (paths, raw=false, on_invalid_line="report"))]
pub fn read_ndjson(py: Python<'_>, paths: Vec<PathBuf>, raw: bool, on_invalid_line: &str) -> PyResult<ResourceIter> {
    let raise_invalid = invalid_mode(py, on_invalid_line)?;
    let paths = Arc::new(paths);
    let stop = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::sync_channel::<Msg>(8);
    let (stop2, bytes2, paths2) = (stop.clone(), bytes.clone(), paths.clone());
    std::thread::spawn(move || {
        let mut sink = BatchSink::new(tx);
        for (i, path) in paths2.iter().enumerate() {
            sink.start_file(i);
            let r = read_local(path, &mut sink, &stop2, &bytes2);
            if sink.flush().is_err() {
                return;
            }
            let msg = match r {
                Ok(resources) => Msg::FileDone { file: i, finished: Finished::Local { resources } },
                Err(Failure::Stopped) => return,
                Err(f) => {
                    let _ = sink.send(Msg::Failed(f));
                    return;
                }
            };
            if sink.send(msg).is_err() {
                return;
            }
        }
        let _ = sink.send(Msg::End);
    });
    Ok(ResourceIter::new(rx, stop, bytes, Source::Paths(paths), StreamOptions { raw, raise_invalid }))
}

/// `on_invalid_line`: `"report"` (false) or `"raise"` (true).
pub fn invalid_mode(py: Python<'_>, on_invalid_line: &str) -> PyResult<bool> {
    match on_invalid_line {
        "report" => Ok(false),
        "raise" => Ok(true),
        other => Err(raise(
            py,
            "UsageError",
            &format!("on_invalid_line must be \"report\" or \"raise\", not {other:?}"),
            "usage",
            None,
        )),
    }
}
