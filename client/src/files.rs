//! A finished job's files, downloaded in parallel: into a folder (temp file,
//! then rename once the engine says the file is complete) or as a stream of
//! raw lines. [`fhir_async::Downloads`] decides what runs; threads only move bytes.
//!
//! A folder keeps a progress journal while a download runs (see [`journal`]):
//! each file renamed into place, and every second or few MB where a part-way
//! file could continue (the engine's checkpoint, with the length of its
//! `.tmp`). A process killed mid-download leaves it behind; the next download
//! of the same job into the folder reads it, so it never fetches a finished
//! file again and continues a part-way one by range (protocol K5). A download
//! that settles every file removes it (the job then holds the records).

mod journal;

use crate::drive::{Io, Until};
use crate::{now_ms, ClientError};
use fhir_async::coordinator::{resume_decision, FileRecord};
use fhir_async::{
    DownloadError, DownloadOptions, DownloadProgress, DownloadStep, Downloads, FileDownload, FileResult, HeadDecision,
    Job, PlannedFile, Request,
};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A streamed file's checkpoint is journaled at most this often (K5)...
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// ...or after this many bytes on the wire, whichever comes first.
const CHECKPOINT_BYTES: u64 = 4 << 20;

/// One file of a download.
#[derive(Debug, Clone, PartialEq)]
pub struct DownloadedFile {
    /// The file's result: its report, or why it failed (the others are unaffected).
    pub result: FileResult,
    /// Where it was written, when it completed.
    pub path: Option<PathBuf>,
}

/// What a download did.
#[derive(Debug, Clone, PartialEq)]
pub struct DownloadSummary {
    /// One entry per selected file, in manifest order.
    pub files: Vec<DownloadedFile>,
    /// Bytes received on the wire (before gzip decoding), retries included.
    pub wire_bytes: u64,
}

impl DownloadSummary {
    /// Whether every file completed.
    pub fn is_complete(&self) -> bool {
        self.files.iter().all(|f| f.result.error.is_none())
    }
}

/// What a download reports as it goes (from its worker threads).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum DownloadEvent<'a> {
    /// A request for file `index` is sent (`attempt` 1 is the first; later ones are retries,
    /// redirects or a fresh link).
    Started {
        /// The file's index among the selected files.
        index: usize,
        /// The file.
        file: &'a PlannedFile,
        /// 1-based request number for this file.
        attempt: u64,
    },
    /// Bytes arrived on the wire (before gzip decoding), all files together.
    Bytes {
        /// Wire bytes so far.
        wire_bytes: u64,
    },
    /// Totals after a request ended.
    Progress {
        /// Files, resources and decoded bytes so far.
        totals: &'a DownloadProgress,
        /// Wire bytes so far.
        wire_bytes: u64,
    },
    /// An origin's limit of files at once changed (halved on 429/503, grown back: K3).
    Limit {
        /// The change.
        change: &'a fhir_async::LimitChange,
    },
    /// A file is over: its result, where it was written, and how long it took.
    Finished {
        /// The file's index among the selected files.
        index: usize,
        /// Its report, or why it failed (the other files are unaffected).
        result: &'a FileResult,
        /// Where it was written, when it completed.
        path: Option<&'a Path>,
        /// Milliseconds from its first request to its end.
        elapsed_ms: u64,
    },
}

/// Where one request's lines go (lines of one file arrive in order).
pub(crate) trait LineWriter {
    /// One line, without its newline.
    fn line(&mut self, line: &[u8]) -> std::io::Result<()>;
    /// The request is over (its lines are delivered).
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    /// The lines written so far end where `record` (the engine's checkpoint
    /// of this file) says the file can continue: a sink that keeps files notes
    /// it, so a process killed later continues from there (K5).
    fn checkpoint(&mut self, _record: FileRecord) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where lines go.
pub(crate) trait LineSink: Sync {
    /// A writer for file `file`, for one request (from the thread streaming it).
    /// `keep`: the bytes of the lines the engine handed out so far (each with
    /// its `\n`); a sink that can cut its copy keeps exactly those (after a
    /// change of the file, K7, it is 0: the file starts over).
    fn open(&self, file: usize, keep: u64) -> std::io::Result<Box<dyn LineWriter + '_>>;
    /// Whether this sink can cut its copy of a file back ([`LineSink::open`]'s
    /// `keep`): then a file that changed on the server starts over (K7);
    /// otherwise (a stream, whose consumer has the lines) it fails with `file_changed`.
    fn can_restart(&self) -> bool {
        false
    }
    /// A file completed (its lines are all delivered) or failed.
    fn finished(&self, file: usize, result: &FileResult) -> std::io::Result<Option<PathBuf>>;
    /// The download ended early: forget partial output, except the files in
    /// `keep`, which an earlier-process resume continues (K5).
    fn abandon(&self, keep: &[String]);
    /// Whether this sink holds the first part of file `name` from an earlier
    /// process, so it can continue from the file's checkpoint (K5).
    fn continues(&self, _name: &str) -> bool {
        false
    }
    /// Whether this sink already holds file `name` complete (a folder an
    /// earlier download finished it in), so a recorded done file is left out.
    /// A line stream holds nothing: it delivers every file again.
    fn holds(&self, _name: &str) -> bool {
        false
    }
    /// Before the download: what this sink recorded of `job` in an earlier
    /// process that did not end cleanly (K5), records it can back (a done file
    /// it holds, a part-way file whose first part it has ready to continue).
    fn restore(&self, _job: &Job) -> std::io::Result<Vec<FileRecord>> {
        Ok(Vec::new())
    }
    /// File `file` is complete in this sink (after [`LineSink::finished`]):
    /// the engine's record of it, for a sink that keeps files (K5).
    fn done(&self, _file: usize, _record: FileRecord) -> std::io::Result<()> {
        Ok(())
    }
    /// The files of the download, by the index the other methods get: the
    /// selection the sink was made for, less the files `run` left out because
    /// the sink already holds them.
    fn bind(&self, _files: &[&str]) -> std::io::Result<()> {
        Ok(())
    }
    /// After every worker: the download stopped early with files where
    /// `stopped` says (before [`LineSink::abandon`]), or (`None`) settled every
    /// file, and the job holds their records.
    fn ended(&self, _stopped: Option<&[FileRecord]>) {}
}

struct Shared<'j> {
    downloads: Downloads,
    job: &'j mut Job,
}

/// Runs every selected file of `job`'s plan through `sink` with worker threads.
pub(crate) fn run(
    io: &Io,
    job: &mut Job,
    options: DownloadOptions,
    sink: &dyn LineSink,
    on_event: &(dyn Fn(DownloadEvent<'_>) + Sync),
) -> Result<DownloadSummary, ClientError> {
    let plan = job.download_plan();
    let retry = job.config().retry.clone();
    // A process killed mid-download left its progress in the sink, not in the saved job (K5).
    let restored =
        sink.restore(job).map_err(|e| ClientError::Io { path: journal::NAME.to_owned(), message: e.to_string() })?;
    job.record_files(restored);
    // What an earlier process recorded (K5), as the core decides it: done files this sink still
    // holds are left out, files part-way continue when this sink still has their first part.
    let resume = resume_decision(&plan, job.file_records(), |n| sink.holds(n), |n| sink.continues(n));
    let mut skip_files = options.skip_files.clone();
    skip_files.extend(resume.skip_files);
    let mut continue_files = options.continue_files.clone();
    continue_files.extend(resume.continue_files);
    // Links about to expire are refreshed before files start (K4).
    let options = DownloadOptions {
        expires_at_ms: options.expires_at_ms.or_else(|| job.outcome().and_then(|o| o.expires_at_ms)),
        skip_files,
        continue_files,
        restart_changed: sink.can_restart(),
        ..options
    };
    let downloads = Downloads::new(plan, options.clone(), &retry);
    let bound: Vec<&str> = downloads.files().iter().map(|f| f.file_name.as_str()).collect();
    sink.bind(&bound).map_err(|e| ClientError::Io { path: String::new(), message: e.to_string() })?;
    let files = downloads.files().len();
    let origins = {
        let mut o: Vec<String> = downloads.files().iter().map(|f| origin_of(&f.url)).collect();
        o.sort();
        o.dedup();
        o.len().max(1)
    };
    // One thread per file at once: the core's limits (per origin, and in all) bound them.
    let workers =
        files.min(options.max_per_origin.max(1) as usize * origins).clamp(1, options.max_total.max(1) as usize);
    let run = Run {
        io,
        shared: Mutex::new(Shared { downloads, job }),
        changed: Condvar::new(),
        sink,
        wire: AtomicU64::new(0),
        settled: Mutex::new(vec![None; files]),
        started: Mutex::new(vec![None; files]),
        failure: Mutex::new(None),
        error_bodies: Mutex::new(vec![None; files]),
        on_event,
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                if let Err(e) = run.worker() {
                    lock(&run.failure).get_or_insert(e);
                    // Wake the others: they see the failure and end too.
                    run.changed.notify_all();
                }
            });
        }
    });
    let Run { shared, settled, failure, wire, started, error_bodies, .. } = run;
    let started = started.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut shared = shared.into_inner().unwrap_or_else(|p| p.into_inner());
    // The job saves where every file stands (K5), so a resume never fetches a finished file.
    let records = shared.downloads.records();
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        let keep: Vec<String> =
            records.iter().filter(|r| r.checkpoint.is_some()).map(|r| r.file_name.clone()).collect();
        sink.ended(Some(&records));
        sink.abandon(&keep);
        shared.job.record_files(records);
        return Err(e);
    }
    shared.job.record_files(records);
    let mut settled = settled.into_inner().unwrap_or_else(|p| p.into_inner());
    // A file that failed inside the coordinator (no new token after a 401, ...)
    // gets the words of the last error answer it went past.
    let error_bodies = error_bodies.into_inner().unwrap_or_else(|p| p.into_inner());
    for (i, body) in error_bodies.into_iter().enumerate() {
        if let (None, Some(body)) = (&settled[i], body) {
            shared.downloads.error_body(i, &body);
        }
    }
    let mut files = Vec::with_capacity(settled.len());
    // Taken out, not copied: a download of many files keeps one set of results.
    for (i, result) in shared.downloads.into_results().into_iter().enumerate() {
        // Files that ended inside the coordinator (blocked, no token, no fresh
        // link) were never handed back by a worker: settle their output here.
        let path = match settled[i].take() {
            Some(path) => path,
            None => {
                let path = sink
                    .finished(i, &result)
                    .map_err(|e| ClientError::Io { path: result.file.file_name.clone(), message: e.to_string() })?;
                let elapsed_ms = started[i].map_or(0, |t: Instant| t.elapsed().as_millis() as u64);
                on_event(DownloadEvent::Finished { index: i, result: &result, path: path.as_deref(), elapsed_ms });
                path
            }
        };
        files.push(DownloadedFile { result, path });
    }
    sink.ended(None);
    Ok(DownloadSummary { files, wire_bytes: wire.load(Ordering::Relaxed) })
}

fn lock<'a, T>(m: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the worker threads of one download share.
struct Run<'a, 'j> {
    io: &'a Io,
    shared: Mutex<Shared<'j>>,
    changed: Condvar,
    sink: &'a dyn LineSink,
    wire: AtomicU64,
    /// Per file, once its output was settled by a worker: where it was written.
    settled: Mutex<Vec<Option<Option<PathBuf>>>>,
    /// Per file, when its first request went out.
    started: Mutex<Vec<Option<Instant>>>,
    failure: Mutex<Option<ClientError>>,
    /// Per file, the start of the last error answer the engine went past
    /// (a 401 before a token refresh, a 503 before a retry).
    error_bodies: Mutex<Vec<Option<Vec<u8>>>>,
    on_event: &'a (dyn Fn(DownloadEvent<'_>) + Sync),
}

impl Run<'_, '_> {
    fn worker(&self) -> Result<(), ClientError> {
        let Run { io, shared, changed, sink, wire, settled, started, failure, on_event, error_bodies } = self;
        let (io, sink, on_event) = (*io, *sink, *on_event);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            if io.stop.is_stopped() {
                return Err(ClientError::Stopped);
            }
            if lock(failure).is_some() {
                return Ok(()); // another worker failed: the download ends with its error
            }
            let mut g = lock(shared);
            let now = now_ms();
            match g.downloads.next(now)? {
                DownloadStep::Send { file, request } => {
                    let Some(mut dl) = g.downloads.lend(file) else { continue };
                    drop(g);
                    let first = *lock(started)[file].get_or_insert_with(Instant::now);
                    on_event(DownloadEvent::Started { index: file, file: dl.file(), attempt: request.id });
                    let ended = fetch(io, &mut dl, &request, file, sink, wire, &mut buf, on_event);
                    let mut g = lock(shared);
                    let (ended, error_body) = match ended {
                        Ok(body) => (Ok(()), body),
                        Err(Fail::File(e)) => (Err(e), None),
                        Err(Fail::Client(e)) => {
                            g.downloads.give_back(file, dl, Ok(()));
                            return Err(e);
                        }
                    };
                    g.downloads.give_back(file, dl, ended);
                    if let Some(body) = &error_body {
                        lock(error_bodies)[file] = Some(body.clone());
                    }
                    if let Some(body) = error_body {
                        g.downloads.error_body(file, &body);
                    }
                    let finished = g.downloads.result(file).map(|r| (r.clone(), g.downloads.record(file)));
                    let changes = g.downloads.take_limit_changes();
                    let totals = g.downloads.progress();
                    // No file work and no user callback under the coordinator's lock: the
                    // other workers go on meanwhile (a callback may gzip a whole file).
                    drop(g);
                    changed.notify_all();
                    if let Some((result, record)) = finished {
                        let path = sink.finished(file, &result).map_err(|e| ClientError::Io {
                            path: result.file.file_name.clone(),
                            message: e.to_string(),
                        })?;
                        if let (Some(_), Some(record)) = (&path, record) {
                            sink.done(file, record).map_err(|e| ClientError::Io {
                                path: journal::NAME.to_owned(),
                                message: e.to_string(),
                            })?;
                        }
                        let elapsed_ms = first.elapsed().as_millis() as u64;
                        lock(settled)[file] = Some(path.clone());
                        on_event(DownloadEvent::Finished {
                            index: file,
                            result: &result,
                            path: path.as_deref(),
                            elapsed_ms,
                        });
                    }
                    for change in &changes {
                        on_event(DownloadEvent::Limit { change });
                    }
                    on_event(DownloadEvent::Progress { totals: &totals, wire_bytes: wire.load(Ordering::Relaxed) });
                }
                DownloadStep::RefreshToken => {
                    match io.token.refresh() {
                        Ok(()) => g.downloads.token_refreshed(),
                        Err(reason) => g.downloads.token_unavailable(&reason.reason()),
                    }
                    changed.notify_all();
                }
                DownloadStep::RefreshManifest => {
                    // One refresh for all files (E4), driven without the coordinator's lock
                    // (K8): the other files go on; the ones that need it wait for it.
                    let mut refreshing = g.job.clone();
                    drop(g);
                    let refreshed = refreshing.refresh_manifest(now).map_err(ClientError::from).and_then(|()| {
                        io.drive(&mut refreshing, Until::Done, &mut |_| {})?;
                        Ok(())
                    });
                    let mut g = lock(shared);
                    let Shared { downloads, job } = &mut *g;
                    // A refresh that failed leaves the job done with its old result (K8).
                    let refreshed = match (refreshed, refreshing.refresh_error()) {
                        (Ok(()), Some(e)) => Err(ClientError::from(e.clone())),
                        (r, _) => r,
                    };
                    match refreshed {
                        Ok(()) => {
                            **job = refreshing;
                            downloads.manifest_refreshed(job.download_plan());
                        }
                        Err(ClientError::Stopped) => {
                            downloads.manifest_refresh_failed("stopped");
                            drop(g);
                            changed.notify_all();
                            return Err(ClientError::Stopped);
                        }
                        Err(e) => {
                            // The job keeps its result (K8): only the files that needed fresh links fail.
                            downloads.manifest_refresh_failed(&e.to_string());
                        }
                    }
                    drop(g);
                    changed.notify_all();
                }
                DownloadStep::Wait { delay_ms, .. } => {
                    let _ = changed.wait_timeout(g, Duration::from_millis(delay_ms).min(crate::stop::TICK));
                }
                DownloadStep::Idle => {
                    let _ = changed.wait_timeout(g, crate::stop::TICK);
                }
                DownloadStep::Done => {
                    drop(g);
                    changed.notify_all();
                    return Ok(());
                }
            }
        }
    }
}

enum Fail {
    /// This file failed (a result, the others go on).
    File(DownloadError),
    /// The whole download stops (a stop, a disk error).
    Client(ClientError),
}

impl From<DownloadError> for Fail {
    fn from(e: DownloadError) -> Self {
        Fail::File(e)
    }
}

/// One request of one file: head, body through the engine into the sink.
/// Returns the start of an error answer (status >= 400) the engine went past, for the file's error should it fail later.
#[allow(clippy::too_many_arguments)] // the worker's parts, passed once per request
fn fetch(
    io: &Io,
    dl: &mut FileDownload,
    request: &Request,
    file: usize,
    sink: &dyn LineSink,
    wire: &AtomicU64,
    buf: &mut [u8],
    on_event: &(dyn Fn(DownloadEvent<'_>) + Sync),
) -> Result<Option<Vec<u8>>, Fail> {
    let id = request.id;
    let token = match io.token_for(request) {
        Ok(t) => t,
        Err(reason) => return Err(Fail::File(dl.token_unavailable(&reason.reason()))),
    };
    let mut s = match io.transport.open(request, token.as_deref()) {
        Ok(s) => s,
        Err(f) => {
            dl.handle_transport_error(id, &f.message, now_ms())?;
            return Ok(None);
        }
    };
    match dl.handle_head(id, s.status, &s.headers, false, now_ms()) {
        Ok(HeadDecision::Discard) if s.status >= 400 => {
            // Kept for the file's error, should the file fail without another answer.
            let mut body = Vec::new();
            let _ = (&mut s.body).take(fhir_async::download::MAX_ERROR_BODY as u64).read_to_end(&mut body);
            return Ok(Some(body));
        }
        Ok(HeadDecision::Discard) => return Ok(None),
        Ok(HeadDecision::Stream) => {}
        Err(e) => {
            // Keep the server's words for the error (bounded).
            let mut body = Vec::new();
            let _ = (&mut s.body).take(fhir_async::download::MAX_ERROR_BODY as u64).read_to_end(&mut body);
            return Err(Fail::File(e.with_body(&body)));
        }
    }
    let mut out = Tee { out: sink.open(file, dl.taken_bytes()).map_err(|e| io_fail(dl, e))?, err: None };
    // The file's own failure (a count mismatch at the end, ...): the lines the
    // engine handed out before it are still delivered (flushed below).
    let mut failed: Option<DownloadError> = None;
    // Since the last checkpoint journaled (K5): when, and wire bytes.
    let (mut mark, mut since) = (Instant::now(), 0u64);
    loop {
        if io.stop.is_stopped() {
            let _ = dl.handle_transport_error(id, "stopped", now_ms());
            return Err(Fail::Client(ClientError::Stopped));
        }
        match s.body.read(buf) {
            Ok(0) => {
                failed = dl.finish(id, now_ms(), |l| out.line(l)).err();
                break;
            }
            Ok(n) => {
                let wire_bytes = wire.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
                on_event(DownloadEvent::Bytes { wire_bytes });
                match dl.feed(id, &buf[..n], now_ms(), |l| out.line(l)) {
                    // A corrupt gzip stream: Discard, the engine already scheduled the retry.
                    Ok(HeadDecision::Discard) => break,
                    Ok(HeadDecision::Stream) => {
                        since += n as u64;
                        if out.err.is_none() && (since >= CHECKPOINT_BYTES || mark.elapsed() >= CHECKPOINT_EVERY) {
                            checkpoint(dl, &mut out).map_err(|e| io_fail(dl, e))?;
                            (mark, since) = (Instant::now(), 0);
                        }
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                failed = dl.handle_transport_error(id, &format!("the body broke: {e}"), now_ms()).err();
                break;
            }
        }
        if out.err.is_some() {
            break;
        }
    }
    if let Some(e) = out.err.take() {
        return Err(io_fail(dl, e));
    }
    out.out.flush().map_err(|e| io_fail(dl, e))?;
    // The body broke and the engine retries: where it stands, should the process end meanwhile.
    if failed.is_none() && dl.report().is_none() {
        checkpoint(dl, &mut out).map_err(|e| io_fail(dl, e))?;
    }
    match failed {
        Some(e) => Err(Fail::File(e)),
        None => Ok(None),
    }
}

/// Hands the engine's checkpoint of `dl` (if it has one: identity body, ranges, a validator) to the writer (K5).
fn checkpoint(dl: &FileDownload, out: &mut Tee<'_>) -> std::io::Result<()> {
    match dl.checkpoint() {
        Some(c) => out.out.checkpoint(FileRecord::partial(dl.file(), c)),
        None => Ok(()),
    }
}

/// A writer that keeps its first error (the engine's callbacks return nothing).
struct Tee<'a> {
    out: Box<dyn LineWriter + 'a>,
    err: Option<std::io::Error>,
}

impl Tee<'_> {
    #[inline]
    fn line(&mut self, l: &[u8]) {
        if self.err.is_none() {
            if let Err(e) = self.out.line(l) {
                self.err = Some(e);
            }
        }
    }
}

fn io_fail(dl: &FileDownload, e: std::io::Error) -> Fail {
    Fail::Client(ClientError::Io { path: dl.file().file_name.clone(), message: e.to_string() })
}

fn origin_of(url: &str) -> String {
    fhir_async::origin::Origin::parse(url).map(|o| format!("{}://{}:{}", o.scheme, o.host, o.port)).unwrap_or_default()
}

/// Files in a folder: `name.tmp` while downloading, renamed to `name` once
/// complete (count checked); removed when the file fails or the download stops,
/// or kept as `name.part` when it can continue (K5). Progress goes to the
/// folder's journal as it happens.
pub(crate) struct FolderSink {
    dir: PathBuf,
    names: Vec<String>,
    open: Vec<Mutex<Option<BufWriter<File>>>>,
    /// This job's journal, once [`LineSink::restore`] knew the job (none for a job with no identity).
    journal: OnceLock<journal::Journal>,
    /// The download's file index → index in `names` (see [`LineSink::bind`]).
    bound: OnceLock<Vec<usize>>,
}

impl FolderSink {
    fn part(&self, file: usize) -> PathBuf {
        self.dir.join(format!("{}.part", self.names[file]))
    }

    pub fn new(dir: &Path, names: Vec<String>) -> Result<Self, ClientError> {
        std::fs::create_dir_all(dir).map_err(|e| ClientError::io(dir, e))?;
        for n in &names {
            safe_name(n).map_err(|m| ClientError::Io { path: n.clone(), message: m })?;
        }
        let open = names.iter().map(|_| Mutex::new(None)).collect();
        Ok(FolderSink { dir: dir.to_owned(), names, open, journal: OnceLock::new(), bound: OnceLock::new() })
    }

    /// Index in `names` of the download's file `file`.
    fn slot(&self, file: usize) -> usize {
        self.bound.get().and_then(|b| b.get(file).copied()).unwrap_or(file)
    }

    fn tmp(&self, file: usize) -> PathBuf {
        self.dir.join(format!("{}.tmp", self.names[file]))
    }

    /// The first `len` bytes of file `file`'s `.tmp` (or `.part`) hold its lines up to a journaled
    /// checkpoint: cut what came after and leave them as the `.part` that continues (K5). False
    /// when neither is that long (the file starts over).
    fn prepare_part(&self, file: usize, len: u64) -> std::io::Result<bool> {
        let part = self.part(file);
        for from in [self.tmp(file), part.clone()] {
            if std::fs::metadata(&from).is_ok_and(|m| m.is_file() && m.len() >= len) {
                std::fs::OpenOptions::new().write(true).open(&from)?.set_len(len)?;
                if from != part {
                    std::fs::rename(&from, &part)?;
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether file `file`'s `.part` holds exactly the lines of `taken` (K7). A checkpoint from
    /// before K7 has no digests: its length was checked, and the engine continues it only by a 206.
    fn part_is(&self, file: usize, taken: &[fhir_async::taken::TakenSegment]) -> std::io::Result<bool> {
        if taken.is_empty() {
            return Ok(true);
        }
        let mut proof = fhir_async::taken::Proof::new(taken.to_vec());
        let mut f = File::open(self.part(file))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if proof.update(&buf[..n]) == fhir_async::taken::Verdict::Changed {
                break;
            }
        }
        Ok(proof.finish() == fhir_async::taken::Verdict::Proven)
    }

    /// The length of a `.tmp` once its writer is flushed.
    fn flushed_len(w: &mut BufWriter<File>) -> std::io::Result<u64> {
        w.flush()?;
        Ok(w.get_ref().metadata()?.len())
    }
}

struct FolderWriter<'a> {
    w: std::sync::MutexGuard<'a, Option<BufWriter<File>>>,
    journal: Option<&'a journal::Journal>,
}

impl LineWriter for FolderWriter<'_> {
    #[inline]
    fn line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let w = self.w.as_mut().ok_or_else(|| std::io::Error::other("closed"))?;
        w.write_all(line)?;
        w.write_all(b"\n")
    }

    fn checkpoint(&mut self, record: FileRecord) -> std::io::Result<()> {
        let (Some(journal), Some(w)) = (self.journal, self.w.as_mut()) else { return Ok(()) };
        // The `.tmp` up to here holds exactly the lines up to the checkpoint, on disk before the
        // journal says so (a power loss cannot leave a journal ahead of the file; the next
        // process also proves the `.part` against the checkpoint's digest, K7).
        let tmp_bytes = Some(FolderSink::flushed_len(w)?);
        w.get_ref().sync_data()?;
        journal.append(&journal::Entry { record, tmp_bytes })
    }
}

impl LineSink for FolderSink {
    fn open(&self, file: usize, keep: u64) -> std::io::Result<Box<dyn LineWriter + '_>> {
        let file = self.slot(file);
        let mut w = lock(&self.open[file]);
        if w.is_none() {
            // An earlier process's first part continues (K5); otherwise a new file.
            // Lines already handed out before a retry are never repeated: append.
            let f = if self.part(file).is_file() {
                std::fs::rename(self.part(file), self.tmp(file))?;
                std::fs::OpenOptions::new().append(true).open(self.tmp(file))?
            } else {
                File::create(self.tmp(file))?
            };
            *w = Some(BufWriter::with_capacity(256 * 1024, f));
        }
        if let Some(writer) = w.as_mut() {
            // The copy holds exactly the lines the engine handed out: after a change of the
            // file on the server (K7) that is nothing, and the file starts over.
            let len = FolderSink::flushed_len(writer)?;
            if len > keep {
                writer.get_ref().set_len(keep)?;
                writer.seek(std::io::SeekFrom::Start(keep))?;
            } else if len < keep {
                return Err(std::io::Error::other(format!(
                    "{} holds {len} bytes, short of the {keep} the engine handed out",
                    self.names[file]
                )));
            }
        }
        Ok(Box::new(FolderWriter { w, journal: self.journal.get() }))
    }

    fn can_restart(&self) -> bool {
        true
    }

    fn finished(&self, file: usize, result: &FileResult) -> std::io::Result<Option<PathBuf>> {
        let file = self.slot(file);
        let w = lock(&self.open[file]).take();
        let tmp = self.tmp(file);
        if result.error.is_some() {
            drop(w);
            let _ = std::fs::remove_file(&tmp);
            return Ok(None);
        }
        match w {
            Some(mut w) => w.flush()?,
            None => drop(File::create(&tmp)?), // a file with no lines
        }
        let target = self.dir.join(&self.names[file]);
        std::fs::rename(&tmp, &target)?;
        Ok(Some(target))
    }

    fn done(&self, _file: usize, record: FileRecord) -> std::io::Result<()> {
        match self.journal.get() {
            Some(journal) => journal.append(&journal::Entry { record, tmp_bytes: None }),
            None => Ok(()),
        }
    }

    fn abandon(&self, keep: &[String]) {
        for file in 0..self.names.len() {
            if let Some(mut w) = lock(&self.open[file]).take() {
                // A file part-way with a checkpoint stays as `name.part` (its lines up to the
                // checkpoint); anything else is removed: no `.tmp` is left behind.
                if keep.contains(&self.names[file]) && w.flush().is_ok() {
                    drop(w);
                    if std::fs::rename(self.tmp(file), self.part(file)).is_ok() {
                        continue;
                    }
                }
                let _ = std::fs::remove_file(self.tmp(file));
            }
        }
    }

    fn continues(&self, name: &str) -> bool {
        self.names.iter().position(|n| n == name).is_some_and(|i| self.part(i).is_file())
    }

    fn holds(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name) && self.dir.join(name).is_file()
    }

    fn bind(&self, files: &[&str]) -> std::io::Result<()> {
        let slots = files
            .iter()
            .map(|f| self.names.iter().position(|n| n == f))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| std::io::Error::other("a file of the download is not in the folder's selection"))?;
        // A second download with the same sink binds its own selection.
        if self.bound.set(slots.clone()).is_err() && self.bound.get() != Some(&slots) {
            return Err(std::io::Error::other("the folder was bound to another selection"));
        }
        Ok(())
    }

    fn restore(&self, job: &Job) -> std::io::Result<Vec<FileRecord>> {
        let Some(key) = journal::JobKey::of(job) else { return Ok(Vec::new()) };
        let journal = self.journal.get_or_init(|| journal::Journal::new(&self.dir, key));
        let entries = journal.read()?;
        let mut backed = Vec::new();
        // Only this download's files: another download into the folder may be writing others.
        for (i, name) in self.names.iter().enumerate() {
            let keep_part = match entries.iter().find(|e| &e.record.file_name == name) {
                Some(e) if e.record.is_done() => {
                    if self.dir.join(name).is_file() {
                        backed.push(e.record.clone());
                    }
                    false
                }
                Some(e) => {
                    let ready = match (e.tmp_bytes, &e.record.checkpoint) {
                        // The first part is trusted only once its bytes are the ones the engine
                        // handed out (K7): its length and digest, not just its length.
                        (Some(len), Some(c)) => self.prepare_part(i, len)? && self.part_is(i, &c.taken)?,
                        _ => false,
                    };
                    if ready {
                        backed.push(e.record.clone());
                    }
                    ready
                }
                // Not journaled: a `.part` the saved job has a checkpoint for (a clean stop).
                None => job.file_records().iter().any(|r| &r.file_name == name && r.checkpoint.is_some()),
            };
            // A `.part` nothing continues would be appended to by a file that starts over.
            if !keep_part {
                match std::fs::remove_file(self.part(i)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(backed)
    }

    fn ended(&self, stopped: Option<&[FileRecord]>) {
        let Some(journal) = self.journal.get() else { return };
        let Some(records) = stopped else {
            journal.remove();
            return;
        };
        // Stopped: the files that continue are journaled with their flushed length (then
        // `abandon` keeps them as `.part`), so the journal agrees with the folder.
        for r in records.iter().filter(|r| r.checkpoint.is_some()) {
            let Some(file) = self.names.iter().position(|n| n == &r.file_name) else { continue };
            if let Some(w) = lock(&self.open[file]).as_mut() {
                if let Ok(len) = FolderSink::flushed_len(w) {
                    let _ = journal.append(&journal::Entry { record: r.clone(), tmp_bytes: Some(len) });
                }
            }
        }
    }
}

/// A plan's file name must stay inside the folder (the engine's names are
/// already safe; this is the belt to those braces).
fn safe_name(name: &str) -> Result<(), String> {
    let mut comps = Path::new(name).components();
    let ok = matches!(comps.next(), Some(Component::Normal(_)))
        && comps.next().is_none()
        && !name.contains(['/', '\\', '\0']);
    if ok {
        Ok(())
    } else {
        Err(format!("refusing file name {name:?}: it would leave the target folder"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // protocol K5: after a kill, a `.tmp` longer than its journaled checkpoint is cut back to the
    // checkpoint's length and becomes the `.part` that continues; one too short starts over
    #[test]
    fn a_killed_files_tmp_is_cut_back_to_its_checkpoint() {
        let dir = std::env::temp_dir().join(format!("fhir-async-files-part-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sink = FolderSink::new(&dir, vec!["A.ndjson".into(), "B.ndjson".into()]).unwrap();
        std::fs::write(dir.join("A.ndjson.tmp"), b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\":").unwrap();
        std::fs::write(dir.join("A.ndjson.part"), b"{\"id\":\"0\"}\n").unwrap(); // older, replaced
        assert!(sink.prepare_part(0, 22).unwrap());
        assert_eq!(std::fs::read(dir.join("A.ndjson.part")).unwrap(), b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n");
        assert!(!dir.join("A.ndjson.tmp").exists());
        // A `.part` left by a clean stop serves too.
        assert!(sink.prepare_part(0, 11).unwrap());
        assert_eq!(std::fs::read(dir.join("A.ndjson.part")).unwrap(), b"{\"id\":\"1\"}\n");
        std::fs::write(dir.join("B.ndjson.tmp"), b"{\"id\":\"1\"}\n").unwrap();
        assert!(!sink.prepare_part(1, 22).unwrap(), "shorter than its checkpoint: starts over");
        assert!(!dir.join("B.ndjson.part").exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
