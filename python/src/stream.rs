//! Resource streams: the lines of a job's files (the native client's
//! [`Lines`], downloaded in parallel in the background) or of local NDJSON
//! files (`read_ndjson`, read on a background thread), handed to Python in
//! batches of ~256 KiB and parsed there.
//!
//! Issue 10 §1-2: a line that does not parse is skipped and reported; with
//! `on_invalid_line="raise"` it raises `InvalidLineError` instead. For a
//! job's files the engine checks every line (`Validation::Json`) and owns
//! the policy (issue 20, `InvalidLines`): it counts a bad line once in the
//! file's report, or fails the file at it, whose error the stream then
//! raises. Any other file that fails is a report entry and the stream goes
//! on with the next file.

use crate::convert::LineParser;
use crate::errors::{download_error, raise, warn};
use crate::reports::FileEnd;
use crate::signals::{Caller, Host};
use fhir_async::attachments::AttachmentReport;
use fhir_async::download::MAX_INVALID_REPORTED;
use fhir_async::origin::{redact_text, redact_url};
use fhir_async::{DownloadError, FileResult, InvalidLine, InvalidLines, LineSplitter, PlannedFile};
use fhir_async_client::{ClientError, LineEvent, Lines};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

const BATCH_BYTES: usize = 256 * 1024;
const TICK: Duration = Duration::from_millis(50);

/// What a local reader sends.
enum Local {
    Batch { data: Vec<u8>, ends: Vec<usize>, file: usize },
    FileDone { file: usize },
    End,
    Failed(String),
}

/// Where the lines come from.
enum Feed {
    Job { lines: Mutex<Box<Lines>>, host: Host },
    Local { rx: Mutex<Receiver<Local>>, stop: Arc<AtomicBool> },
    Closed,
}

/// What the feed produced next.
enum Event {
    Batch { data: Vec<u8>, ends: Vec<usize>, file: usize },
    JobFile(Box<FileResult>),
    LocalFile(usize),
    End,
}

/// The report of a file the stream finished.
enum StreamReport {
    Job(Box<PlannedFile>, FileEnd),
    Local { file: usize, resources: u64, invalid_lines: u64, invalid: Vec<InvalidLine> },
}

/// Resources of a stream's files.
#[pyclass(module = "fhir_async._native", name = "ResourceIterator")]
pub struct ResourceIter {
    feed: Feed,
    /// The URL (or path) of each file, by index.
    labels: Vec<String>,
    batch: Vec<u8>,
    ends: Vec<usize>,
    pos: usize,
    start: usize,
    batch_file: usize,
    batch_first_line: u64,
    /// Line number of the first line the last `next_raw_batch` returned.
    raw_first_line: u64,
    /// Lines handed out per file so far (line numbers across batches).
    lines_seen: HashMap<usize, u64>,
    /// Local files: lines that did not parse, per file: (line, message).
    local_invalid: HashMap<usize, Vec<(u64, String)>>,
    reports: Vec<StreamReport>,
    /// A job's stream with attachments (protocol M), once it ended: one report per attachment.
    attachments: Vec<AttachmentReport>,
    parser: LineParser,
    bytes: u64,
    done: bool,
    raw: bool,
    /// `InvalidLines::Raise`: a file failed at an invalid line (or a local
    /// line that does not parse) ends the stream with its error.
    raise_invalid: bool,
}

impl std::fmt::Debug for ResourceIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceIter").field("bytes", &self.bytes).field("done", &self.done).finish_non_exhaustive()
    }
}

impl Drop for ResourceIter {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// A stream of the job's files.
pub fn from_lines(lines: Lines, labels: Vec<String>, host: Host, raw: bool, raise_invalid: bool) -> ResourceIter {
    ResourceIter::new(Feed::Job { lines: Mutex::new(Box::new(lines)), host }, labels, raw, raise_invalid)
}

impl ResourceIter {
    fn new(feed: Feed, labels: Vec<String>, raw: bool, raise_invalid: bool) -> Self {
        ResourceIter {
            feed,
            labels,
            batch: Vec::new(),
            ends: Vec::new(),
            pos: 0,
            start: 0,
            batch_file: 0,
            batch_first_line: 1,
            raw_first_line: 1,
            lines_seen: HashMap::new(),
            local_invalid: HashMap::new(),
            reports: Vec::new(),
            attachments: Vec::new(),
            parser: LineParser::new(),
            bytes: 0,
            done: false,
            raw,
            raise_invalid,
        }
    }

    fn label(&self, file: usize) -> String {
        self.labels.get(file).cloned().unwrap_or_default()
    }

    /// The next event of the feed, without the GIL, Ctrl-C watched.
    fn next_event(&mut self, py: Python<'_>) -> PyResult<Event> {
        match &mut self.feed {
            Feed::Closed => Ok(Event::End),
            Feed::Job { lines, host } => {
                let lines = lines.get_mut().unwrap_or_else(|p| p.into_inner());
                let r = py.detach(|| {
                    let _caller = Caller::enter();
                    loop {
                        match lines.next_timeout(TICK) {
                            Poll::Ready(r) => return r,
                            Poll::Pending if host.stop.is_stopped() => return Some(Err(ClientError::Stopped)),
                            Poll::Pending => {}
                        }
                    }
                });
                match r {
                    None => {
                        self.attachments = lines.attachments().to_vec();
                        Ok(Event::End)
                    }
                    Some(Ok(LineEvent::Lines(b))) => {
                        let mut data = Vec::with_capacity(BATCH_BYTES + 4096);
                        let mut ends = Vec::with_capacity(b.len());
                        for l in b.lines() {
                            data.extend_from_slice(l);
                            ends.push(data.len());
                        }
                        Ok(Event::Batch { data, ends, file: b.file })
                    }
                    Some(Ok(LineEvent::File(f))) => Ok(Event::JobFile(f)),
                    Some(Err(e)) => {
                        let host = host.clone();
                        self.stop_now();
                        Err(host.error(py, &e))
                    }
                }
            }
            Feed::Local { rx, .. } => {
                let rx = rx.get_mut().unwrap_or_else(|p| p.into_inner());
                let r = py.detach(move || {
                    let _caller = Caller::enter();
                    loop {
                        match rx.recv_timeout(TICK) {
                            Ok(m) => return Ok(m),
                            Err(RecvTimeoutError::Disconnected) => return Ok(Local::End),
                            Err(RecvTimeoutError::Timeout) => Python::attach(|py| py.check_signals())?,
                        }
                    }
                });
                match r {
                    Ok(Local::Batch { data, ends, file }) => Ok(Event::Batch { data, ends, file }),
                    Ok(Local::FileDone { file }) => Ok(Event::LocalFile(file)),
                    Ok(Local::End) => Ok(Event::End),
                    Ok(Local::Failed(m)) => {
                        self.stop_now();
                        Err(raise(py, "io", &m, None))
                    }
                    Err(e) => {
                        self.stop_now();
                        Err(e)
                    }
                }
            }
        }
    }

    /// The next line (range in the batch, line number); `None` at the end.
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
            match self.next_event(py)? {
                Event::Batch { data, ends, file } => {
                    let seen = self.lines_seen.entry(file).or_insert(0);
                    self.batch_first_line = *seen + 1;
                    *seen += ends.len() as u64;
                    self.bytes += data.len() as u64;
                    self.batch = data;
                    self.ends = ends;
                    self.pos = 0;
                    self.start = 0;
                    self.batch_file = file;
                }
                Event::JobFile(f) => self.job_file_done(py, *f)?,
                Event::LocalFile(file) => self.local_file_done(py, file)?,
                Event::End => {
                    self.done = true;
                    self.feed = Feed::Closed;
                }
            }
        }
    }

    /// A line that did not parse: the `InvalidLineError` (not raised); a
    /// local file's report records it (a job's file: the engine already did).
    fn invalid(&mut self, py: Python<'_>, line: u64, message: String) -> PyErr {
        let file = self.batch_file;
        let label = self.label(file);
        let local = matches!(self.feed, Feed::Local { .. });
        // A signed URL's query is a credential (K10): the error names the file without it,
        // as the engine's own errors do.
        let shown = if local { label.clone() } else { redact_url(&label) };
        let details = PyDict::new(py);
        let _ = details.set_item(if local { "path" } else { "url" }, &shown);
        let _ = details.set_item("line", line);
        let _ = details.set_item("message", &message);
        let text = format!("{shown}: line {line} is not a FHIR resource: {message}");
        if local {
            self.local_invalid.entry(file).or_default().push((line, message));
        }
        raise(py, "invalid_line", &text, Some(details.into_any().unbind()))
    }

    fn job_file_done(&mut self, py: Python<'_>, result: FileResult) -> PyResult<()> {
        let (file, end) = FileEnd::of(result);
        if let (true, FileEnd::Failed(e @ DownloadError::InvalidLine { .. })) = (self.raise_invalid, &end) {
            // on_invalid_line="raise": the core failed the file at its first invalid line
            // (the lines before it were handed out); the stream raises that error and ends.
            let exc = download_error(py, e);
            self.reports.push(StreamReport::Job(Box::new(file), end));
            self.stop_now();
            return Err(exc);
        }
        let note = match &end {
            FileEnd::Failed(e) => Some(format!(
                "{} failed, the stream goes on with the next file: {}",
                redact_url(&file.url),
                redact_text(&e.to_string())
            )),
            FileEnd::Done(r) if r.invalid_lines > 0 => Some(format!(
                "{}: {} line(s) are not JSON and were skipped (first: line {}); see the stream's reports",
                redact_url(&file.url),
                r.invalid_lines,
                r.first_invalid_line.unwrap_or(0)
            )),
            FileEnd::Done(_) => None,
        };
        self.reports.push(StreamReport::Job(Box::new(file), end));
        if let Some(n) = note {
            warn(py, &n)?;
        }
        Ok(())
    }

    fn local_file_done(&mut self, py: Python<'_>, file: usize) -> PyResult<()> {
        let bad = self.local_invalid.remove(&file).unwrap_or_default();
        let resources = self.lines_seen.get(&file).copied().unwrap_or(0);
        let note = (!bad.is_empty() && !self.raise_invalid).then(|| {
            format!(
                "{}: {} line(s) are not JSON and were skipped (first: line {}); see the stream's reports",
                self.label(file),
                bad.len(),
                bad[0].0
            )
        });
        let invalid = bad
            .iter()
            .take(MAX_INVALID_REPORTED)
            .map(|(line, message)| InvalidLine { line: *line, message: message.clone() })
            .collect();
        self.reports.push(StreamReport::Local { file, resources, invalid_lines: bad.len() as u64, invalid });
        if let Some(n) = note {
            warn(py, &n)?;
        }
        Ok(())
    }

    fn report_to_py(&self, py: Python<'_>, report: &StreamReport) -> PyResult<Py<PyAny>> {
        match report {
            StreamReport::Job(file, end) => end.to_py(py, file, None),
            StreamReport::Local { file, resources, invalid_lines, invalid } => {
                let d = PyDict::new(py);
                d.set_item("path", self.label(*file))?;
                d.set_item("resources", resources)?;
                d.set_item("invalidLines", invalid_lines)?;
                d.set_item("firstInvalidLine", invalid.first().map(|l| l.line))?;
                d.set_item("invalid", crate::convert::to_py(py, invalid)?)?;
                Ok(d.into_any().unbind())
            }
        }
    }

    fn stop_now(&mut self) {
        if let Feed::Local { stop, .. } = &self.feed {
            stop.store(true, Ordering::Relaxed);
        }
        // Dropping the client's stream ends its downloads.
        self.feed = Feed::Closed;
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
    /// says why): returns the `InvalidLineError` to raise (and stops the
    /// stream) with `on_invalid_line="raise"`, None otherwise.
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
        self.reports.iter().map(|r| self.report_to_py(py, r)).collect()
    }

    /// One report per attachment of a job's stream with attachments (protocol M), once the
    /// stream ended (empty before): `url`, `fileName` (the path written in `files` mode),
    /// `contentType`, `size`, `sha1`, or `error` (the typed exception).
    fn attachments(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        crate::download::attachment_reports(py, &self.attachments)
    }

    /// Line bytes handed over so far.
    #[getter]
    fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Stops the background download.
    fn close(&mut self) {
        self.stop_now();
    }

    fn __repr__(&self) -> String {
        format!(
            "<fhir_async._native.ResourceIterator bytes={} files_done={} done={}>",
            self.bytes,
            self.reports.len(),
            self.done
        )
    }
}

/// Lines batched for the consumer: one message per ~256 KiB, never two files.
struct LocalBatcher {
    tx: SyncSender<Local>,
    data: Vec<u8>,
    ends: Vec<usize>,
    file: usize,
}

impl LocalBatcher {
    fn flush(&mut self) -> bool {
        if self.ends.is_empty() {
            return true;
        }
        let data = std::mem::replace(&mut self.data, Vec::with_capacity(BATCH_BYTES + 4096));
        let ends = std::mem::take(&mut self.ends);
        self.tx.send(Local::Batch { data, ends, file: self.file }).is_ok()
    }

    fn line(&mut self, l: &[u8]) -> bool {
        self.data.extend_from_slice(l);
        self.ends.push(self.data.len());
        self.data.len() < BATCH_BYTES || self.flush()
    }
}

/// Reads one local file into the batcher; `Err` with a message on a read error.
fn read_local(path: &PathBuf, out: &mut LocalBatcher, stop: &AtomicBool) -> Result<bool, String> {
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = File::open(path).map_err(io)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut splitter = LineSplitter::new(usize::MAX);
    let mut open = true;
    loop {
        if stop.load(Ordering::Relaxed) || !open {
            return Ok(false);
        }
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        splitter.feed(&buf[..n], |l: &[u8]| open = open && out.line(l)).map_err(|e| e.to_string())?;
    }
    splitter.finish(|l: &[u8]| open = open && out.line(l)).map_err(|e| e.to_string())?;
    Ok(open && out.flush())
}

/// Streams the resources of local NDJSON files (as `download()` wrote them),
/// read and split on a background thread. A file that cannot be read ends
/// the stream with `DownloadError` (code `io`).
#[pyfunction]
#[pyo3(signature = (paths, raw=false, on_invalid_line=None))]
pub fn read_ndjson(
    py: Python<'_>,
    paths: Vec<PathBuf>,
    raw: bool,
    on_invalid_line: Option<&str>,
) -> PyResult<ResourceIter> {
    let raise_invalid = crate::run::invalid_mode(py, on_invalid_line)? == InvalidLines::Raise;
    let paths = Arc::new(paths);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::sync_channel::<Local>(8);
    let (stop2, paths2) = (stop.clone(), paths.clone());
    std::thread::spawn(move || {
        let mut out = LocalBatcher { tx, data: Vec::with_capacity(BATCH_BYTES + 4096), ends: Vec::new(), file: 0 };
        for (i, path) in paths2.iter().enumerate() {
            out.file = i;
            match read_local(path, &mut out, &stop2) {
                Ok(true) => {}
                Ok(false) => return,
                Err(m) => {
                    let _ = out.tx.send(Local::Failed(m));
                    return;
                }
            }
            if out.tx.send(Local::FileDone { file: i }).is_err() {
                return;
            }
        }
        let _ = out.tx.send(Local::End);
    });
    let labels = paths.iter().map(|p| p.display().to_string()).collect();
    Ok(ResourceIter::new(Feed::Local { rx: Mutex::new(rx), stop }, labels, raw, raise_invalid))
}
