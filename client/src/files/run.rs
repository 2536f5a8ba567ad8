//! The worker threads of one download: each asks the coordinator for the
//! next step under one lock, streams a lent file's body through the engine
//! into the sink without it, and gives the file back.

use super::journal;
use super::sink::{FileSink, LineWriter};
use super::{DownloadEvent, DownloadSummary, DownloadedFile};
use crate::drive::{Io, Until};
use crate::{now_ms, ClientError};
use fhir_async::coordinator::{origin_key, resume_decision, FileRecord};
use fhir_async::{DownloadError, DownloadOptions, DownloadStep, Downloads, FileDownload, HeadDecision, Job, Request};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A streamed file's checkpoint is journaled at most this often (K5)...
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// ...or after this many bytes on the wire, whichever comes first.
const CHECKPOINT_BYTES: u64 = 4 << 20;

/// The coordinator and the job, under the one lock the workers share.
struct Coordinated<'j> {
    downloads: Downloads,
    job: &'j mut Job,
}

/// What a run downloads.
pub(crate) enum Plan {
    /// The job's manifest files: resumed from the job's records and the sink's journal (K5),
    /// recorded in the job, their links refreshed with the manifest (K4).
    Job,
    /// Files planned elsewhere (attachments, protocol M): no job records, no manifest refresh;
    /// the job is there for its token (refreshed as for files).
    Files(Vec<fhir_async::PlannedFile>),
}

/// Runs every selected file of `plan` (the job's, or another) through `sink` with worker threads.
pub(crate) fn run(
    io: &Io,
    job: &mut Job,
    plan: Plan,
    options: DownloadOptions,
    sink: &dyn FileSink,
    on_event: &(dyn Fn(DownloadEvent<'_>) + Sync),
) -> Result<DownloadSummary, ClientError> {
    let (plan, own_plan) = match plan {
        Plan::Job => (job.download_plan(), false),
        Plan::Files(files) => (files, true),
    };
    let retry = job.config().retry.clone();
    // A process killed mid-download left its progress in the sink, not in the saved job (K5).
    let resume = sink.resume().filter(|_| !own_plan);
    let mut skip_files = options.skip_files.clone();
    let mut continue_files = options.continue_files.clone();
    if !own_plan {
        let restored = match resume {
            Some(r) => r
                .restore(job)
                .map_err(|e| ClientError::Io { path: journal::NAME.to_owned(), message: e.to_string() })?,
            None => Vec::new(),
        };
        job.record_files(restored);
        // What an earlier process recorded (K5), as the core decides it: done files this sink still
        // holds are left out, files part-way continue when this sink still has their first part.
        let decided = resume_decision(
            &plan,
            job.file_records(),
            |n| resume.is_some_and(|r| r.holds(n)),
            |n| resume.is_some_and(|r| r.continues(n)),
        );
        skip_files.extend(decided.skip_files);
        continue_files.extend(decided.continue_files);
    }
    // Links about to expire are refreshed before files start (K4): the manifest's links only.
    let expires_at_ms = match own_plan {
        true => options.expires_at_ms,
        false => options.expires_at_ms.or_else(|| job.outcome().and_then(|o| o.expires_at_ms)),
    };
    let options = DownloadOptions {
        expires_at_ms,
        skip_files,
        continue_files,
        // A sink that can cut its copy back starts a changed file over (K7).
        restart_changed: resume.is_some(),
        // Opaque files (Parquet, L13) only into a sink that writes bytes.
        opaque_files: sink.takes_bytes(),
        ..options
    };
    let downloads = Downloads::new(plan, options.clone(), &retry);
    let bound: Vec<&str> = downloads.files().iter().map(|f| f.file_name.as_str()).collect();
    if let Some(r) = resume {
        r.bind(&bound).map_err(|e| ClientError::Io { path: String::new(), message: e.to_string() })?;
    }
    let files = downloads.files().len();
    let origins = {
        let mut o: Vec<String> = downloads.files().iter().map(|f| origin_key(&f.url)).collect();
        o.sort();
        o.dedup();
        o.len().max(1)
    };
    // One thread per file at once: the core's limits (per origin, and in all) bound them.
    let workers =
        files.min(options.max_per_origin.max(1) as usize * origins).clamp(1, options.max_total.max(1) as usize);
    let run = Run {
        io,
        shared: Mutex::new(Coordinated { downloads, job }),
        own_plan,
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
        if let Some(r) = resume {
            r.ended(Some(&records));
        }
        sink.abandon(&keep);
        if !own_plan {
            shared.job.record_files(records);
        }
        return Err(e);
    }
    if !own_plan {
        shared.job.record_files(records);
    }
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
    if let Some(r) = resume {
        r.ended(None);
    }
    Ok(DownloadSummary { files, wire_bytes: wire.load(Ordering::Relaxed), attachments: Vec::new() })
}

pub(crate) fn lock<'a, T>(m: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the worker threads of one download share.
struct Run<'a, 'j> {
    io: &'a Io,
    shared: Mutex<Coordinated<'j>>,
    /// The files are not the job's manifest files (no manifest refresh for them).
    own_plan: bool,
    changed: Condvar,
    sink: &'a dyn FileSink,
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
        let Run { io, shared, own_plan, changed, sink, wire, settled, started, failure, on_event, error_bodies } = self;
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
                        if let (Some(_), Some(record), Some(r)) = (&path, record, sink.resume()) {
                            r.done(file, record).map_err(|e| ClientError::Io {
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
                DownloadStep::RefreshManifest if *own_plan => {
                    // Not the manifest's files: a fresh manifest has no fresher link for them.
                    g.downloads.manifest_refresh_failed("these files are not in the manifest");
                    drop(g);
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
                    let Coordinated { downloads, job } = &mut *g;
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
    sink: &dyn FileSink,
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
        Ok(HeadDecision::Stream) => sink.headers(file, &s.headers),
        Err(e) => {
            // Keep the server's words for the error (bounded).
            let mut body = Vec::new();
            let _ = (&mut s.body).take(fhir_async::download::MAX_ERROR_BODY as u64).read_to_end(&mut body);
            return Err(Fail::File(e.with_body(&body)));
        }
    }
    let out = sink.open(file, dl.taken_bytes()).map_err(|e| io_fail(dl, e))?;
    let mut out = Tee { out, err: None, opaque: dl.is_opaque() };
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
    /// The engine hands out an opaque file's bytes, not lines (L13).
    opaque: bool,
}

impl Tee<'_> {
    #[inline]
    fn line(&mut self, l: &[u8]) {
        if self.err.is_none() {
            let written = if self.opaque { self.out.bytes(l) } else { self.out.line(l) };
            if let Err(e) = written {
                self.err = Some(e);
            }
        }
    }
}

fn io_fail(dl: &FileDownload, e: std::io::Error) -> Fail {
    Fail::Client(ClientError::Io { path: dl.file().file_name.clone(), message: e.to_string() })
}
