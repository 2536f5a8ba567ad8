//! A finished job's resources as a stream of raw NDJSON lines, downloaded
//! in parallel on background threads, in batches (one channel message per
//! ~256 KiB) so a consumer in another language pays per batch, not per line.
//!
//! With attachments (protocol M, `options.attachments.mode` not off) the
//! lines go through the core's [`Hydrator`]: a line without an attachment to
//! fetch is sent at once; a line with some is held. Once the NDJSON files are
//! in, the attachments the held lines point at are fetched (each URL once)
//! through the same coordinator as files (per-origin politeness, retries, the
//! token only where it may go), then the held lines are sent: hydrated
//! (`inline`, M7) or as they were (`files`, or a failed attachment, M9). In
//! `files` mode each attachment is written to the stream's attachments folder
//! (temp + rename) when it has one.

use crate::drive::Io;
use crate::files::{self, lock, write_atomic, Bodies, DownloadSummary, FileSink, LineWriter};
use crate::ClientError;
use fhir_async::attachments::{AttachmentMode, AttachmentReport, Hydrate, Hydrator};
use fhir_async::{DownloadOptions, FileResult, Job, PlannedFile};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

const BATCH_BYTES: usize = 256 * 1024;

/// Lines of one file, in order (a file's lines may come in several batches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineBatch {
    /// The file's index in the plan's selection (see [`FileResult`]s of the summary).
    pub file: usize,
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl LineBatch {
    /// The lines, without their newlines.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let l = &self.data[start..end];
            start = end;
            l
        })
    }

    /// How many lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// What the stream yields.
#[derive(Debug)]
pub enum LineEvent {
    /// Lines of a file.
    Lines(LineBatch),
    /// A file is over: complete, or failed (its lines so far were delivered).
    File(Box<FileResult>),
}

/// The stream returned by [`crate::JobRun::lines`]. Dropping it stops the downloads.
#[derive(Debug)]
pub struct Lines {
    rx: Receiver<LineEvent>,
    worker: Option<JoinHandle<Result<DownloadSummary, ClientError>>>,
    summary: Option<DownloadSummary>,
    /// Set when the stream is dropped: the attachments' fetches (which send nothing until
    /// the end) stop at their next request.
    closed: Arc<AtomicBool>,
}

impl Drop for Lines {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

impl Lines {
    pub(crate) fn start(io: Io, job: Job, options: DownloadOptions) -> Lines {
        Lines::start_with(io, job, options, None)
    }

    /// Like [`Lines::start`]; `attachments_dir`: where `files` mode writes the attachments.
    pub(crate) fn start_with(
        io: Io,
        mut job: Job,
        options: DownloadOptions,
        attachments_dir: Option<PathBuf>,
    ) -> Lines {
        let (tx, rx) = mpsc::sync_channel(8);
        let closed = Arc::new(AtomicBool::new(false));
        let closed2 = closed.clone();
        let worker = std::thread::spawn(move || {
            let held = (options.attachments.mode != AttachmentMode::Off).then(|| {
                Mutex::new(Held {
                    hydrator: Hydrator::new(job.token_policy(), options.attachments.clone()),
                    files: VecDeque::new(),
                })
            });
            let sink = ChannelSink { tx: &tx, held: held.as_ref() };
            let mut summary = files::run(&io, &mut job, files::Plan::Job, options.clone(), &sink, &|_| {})?;
            if let Some(held) = held {
                let to = Out { dir: attachments_dir.as_deref(), tx: &tx, closed: &closed2 };
                hydrate(&io, &mut job, &options, held, to, &mut summary)?;
            }
            Ok(summary)
        });
        Lines { rx, worker: Some(worker), summary: None, closed }
    }

    /// Like [`Iterator::next`], waiting at most `timeout` for the next event:
    /// [`Poll::Pending`] when none came in time, so a caller can check for
    /// a signal (Python's Ctrl-C) between waits.
    pub fn next_timeout(&mut self, timeout: Duration) -> Poll<Option<Result<LineEvent, ClientError>>> {
        match self.rx.recv_timeout(timeout) {
            Ok(ev) => Poll::Ready(Some(Ok(ev))),
            Err(RecvTimeoutError::Timeout) => Poll::Pending,
            Err(RecvTimeoutError::Disconnected) => Poll::Ready(self.next()),
        }
    }

    /// Once the stream is exhausted: what every file did.
    pub fn summary(&self) -> Option<&DownloadSummary> {
        self.summary.as_ref()
    }

    /// Once the stream is exhausted: one report per attachment its resources pointed at
    /// (protocol M; empty with attachments off): its size and SHA-1, where `files` mode
    /// wrote it (`fileName`: the path in the stream's attachments folder; none without
    /// one), or why it failed (its resource came unchanged, M9).
    pub fn attachments(&self) -> &[AttachmentReport] {
        self.summary.as_ref().map_or(&[], |s| s.attachments.as_slice())
    }
}

impl crate::JobRun {
    /// Like [`JobRun::lines`](crate::JobRun::lines), with `options.attachments.mode` `files`:
    /// each attachment is written to `dir/<fileName>` (decoded, hash checked, temp + rename;
    /// `dir` is created), its report's `fileName` that path. In other modes `dir` is unused.
    pub fn lines_with_attachments_dir(&self, options: DownloadOptions, dir: impl AsRef<Path>) -> Lines {
        Lines::start_with(self.client.inner.io.clone(), self.job.clone(), options, Some(dir.as_ref().to_owned()))
    }
}

impl Iterator for Lines {
    type Item = Result<LineEvent, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Ok(ev) = self.rx.recv() {
            return Some(Ok(ev));
        }
        // The sender is gone: the downloads ended.
        let worker = self.worker.take()?;
        match worker.join() {
            Ok(Ok(summary)) => {
                self.summary = Some(summary);
                None
            }
            Ok(Err(e)) => Some(Err(e)),
            Err(_) => Some(Err(ClientError::Io { path: String::new(), message: "a download thread panicked".into() })),
        }
    }
}

/// The hydrator, and the file of each line it holds (it releases them in arrival order).
struct Held {
    hydrator: Hydrator,
    files: VecDeque<usize>,
}

struct ChannelSink<'a> {
    tx: &'a SyncSender<LineEvent>,
    /// Attachments on: lines with some wait here.
    held: Option<&'a Mutex<Held>>,
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the line stream was dropped")
}

struct Batcher<'a> {
    tx: &'a SyncSender<LineEvent>,
    held: Option<&'a Mutex<Held>>,
    file: usize,
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl<'a> Batcher<'a> {
    fn new(tx: &'a SyncSender<LineEvent>, held: Option<&'a Mutex<Held>>, file: usize) -> Self {
        Batcher { tx, held, file, data: Vec::with_capacity(BATCH_BYTES + 4096), ends: Vec::new() }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.ends.is_empty() {
            return Ok(());
        }
        let batch = LineBatch {
            file: self.file,
            data: std::mem::replace(&mut self.data, Vec::with_capacity(BATCH_BYTES + 4096)),
            ends: std::mem::take(&mut self.ends),
        };
        self.tx.send(LineEvent::Lines(batch)).map_err(|_| gone())
    }
}

impl LineWriter for Batcher<'_> {
    #[inline]
    fn line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if let Some(held) = self.held {
            let mut g = lock(held);
            if g.hydrator.line(line) == Hydrate::Held {
                g.files.push_back(self.file);
                return Ok(());
            }
        }
        self.data.extend_from_slice(line);
        self.ends.push(self.data.len());
        if self.data.len() >= BATCH_BYTES {
            self.send()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl FileSink for ChannelSink<'_> {
    fn open(&self, file: usize, _keep: u64) -> std::io::Result<Box<dyn LineWriter + '_>> {
        Ok(Box::new(Batcher::new(self.tx, self.held, file)))
    }

    fn finished(&self, _file: usize, result: &FileResult) -> std::io::Result<Option<PathBuf>> {
        self.tx.send(LineEvent::File(Box::new(result.clone()))).map_err(|_| gone())?;
        Ok(None)
    }

    fn abandon(&self, _keep: &[String]) {}
}

/// Where the attachments' results go: the files mode folder, the stream, whether it was dropped.
struct Out<'a> {
    dir: Option<&'a Path>,
    tx: &'a SyncSender<LineEvent>,
    closed: &'a AtomicBool,
}

/// Once the NDJSON files are in: the attachments the held lines point at are fetched (each
/// once, through the coordinator as files are), then the held lines are sent, hydrated or as
/// they were; `summary` gets the attachments' reports and wire bytes.
fn hydrate(
    io: &Io,
    job: &mut Job,
    options: &DownloadOptions,
    held: Mutex<Held>,
    to: Out<'_>,
    summary: &mut DownloadSummary,
) -> Result<(), ClientError> {
    let Out { dir, tx, closed } = to;
    let pending = lock(&held).hydrator.take_pending();
    let dir = dir.filter(|_| options.attachments.mode == AttachmentMode::Files);
    if !pending.is_empty() {
        if let Some(d) = dir {
            std::fs::create_dir_all(d).map_err(|e| ClientError::io(d, e))?;
        }
        let sink = FetchSink::new(&held, &pending, dir, closed);
        let s = files::run(io, job, files::Plan::Files(pending.clone()), options.for_attachments(), &sink, &|_| {})?;
        summary.wire_bytes += s.wire_bytes;
        let failure = lock(&sink.failure).take();
        if let Some((path, e)) = failure {
            return Err(ClientError::io(&path, e));
        }
    }
    let mut held = held.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut batch: Option<Batcher<'_>> = None;
    for line in held.hydrator.release() {
        let file = held.files.pop_front().unwrap_or_default();
        let b = match &mut batch {
            Some(b) if b.file == file => b,
            _ => {
                if let Some(b) = &mut batch {
                    b.send().map_err(stream_gone)?;
                }
                batch.insert(Batcher::new(tx, None, file))
            }
        };
        b.line(&line).map_err(stream_gone)?;
    }
    if let Some(b) = &mut batch {
        b.send().map_err(stream_gone)?;
    }
    let files_mode = options.attachments.mode == AttachmentMode::Files;
    summary.attachments = held
        .hydrator
        .reports()
        .into_iter()
        .map(|mut r| {
            // The hydrator names `attachments/<name>`; the stream says where it really is.
            r.file_name = match (files_mode, dir, r.file_name.take()) {
                (true, Some(d), Some(name)) => {
                    let name = name.strip_prefix("attachments/").unwrap_or(&name).to_owned();
                    Some(d.join(name).display().to_string())
                }
                _ => None,
            };
            r
        })
        .collect();
    Ok(())
}

fn stream_gone(e: std::io::Error) -> ClientError {
    ClientError::Io { path: String::new(), message: e.to_string() }
}

/// Where the attachments' bodies go: kept whole (each is capped by `max_size`), then handed
/// to the hydrator (decoded, M5, and hash-checked) and, in files mode, written.
struct FetchSink<'a> {
    held: &'a Mutex<Held>,
    files: &'a [PlannedFile],
    dir: Option<&'a Path>,
    closed: &'a AtomicBool,
    bodies: Bodies,
    /// A write that failed (the disk's error ends the stream).
    failure: Mutex<Option<(PathBuf, std::io::Error)>>,
}

impl<'a> FetchSink<'a> {
    fn new(held: &'a Mutex<Held>, files: &'a [PlannedFile], dir: Option<&'a Path>, closed: &'a AtomicBool) -> Self {
        FetchSink { held, files, dir, closed, bodies: Bodies::new(files.len()), failure: Mutex::new(None) }
    }
}

impl FileSink for FetchSink<'_> {
    fn open(&self, file: usize, keep: u64) -> std::io::Result<Box<dyn LineWriter + '_>> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(gone());
        }
        self.bodies.open(file, keep)
    }

    fn headers(&self, file: usize, headers: &[(String, String)]) {
        self.bodies.headers(file, headers);
    }

    fn finished(&self, file: usize, result: &FileResult) -> std::io::Result<Option<PathBuf>> {
        let planned = &self.files[file];
        let (body, content_type) = self.bodies.take(file);
        if let Some(e) = &result.error {
            // The core's error carries the server's words of its last answer (an OperationOutcome).
            lock(self.held).hydrator.failed(planned.index, e.clone());
            return Ok(None);
        }
        let mut g = lock(self.held);
        let Ok(fetched) = g.hydrator.fetched(planned.index, body, content_type.as_deref()) else {
            // Recorded by the hydrator as the attachment's failure (M5, hash).
            return Ok(None);
        };
        let Some(dir) = self.dir else { return Ok(None) };
        let path = dir.join(&planned.file_name);
        match write_atomic(&path, &fetched.bytes) {
            Ok(()) => Ok(Some(path)),
            Err(e) => {
                let message = e.to_string();
                lock(&self.failure).get_or_insert((path, e));
                Err(std::io::Error::other(message))
            }
        }
    }

    fn abandon(&self, _keep: &[String]) {
        self.bodies.clear();
    }

    fn takes_bytes(&self) -> bool {
        true
    }
}
