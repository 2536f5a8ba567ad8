//! Driving a job and its file downloads over HTTP, without the GIL. Every
//! protocol decision is the engine's; this file only moves bytes, sleeps,
//! and checks for Ctrl-C between short waits.

use crate::errors::Failure;
use crate::job::JobCell;
use crate::net::{Http, TransportFailure};
use crate::now_ms;
use crate::token::Token;
use fhir_async::{
    Action, CountCheck, DownloadAction, FileDownload, HeadDecision, PlannedFile, Request, Response, RetryPolicy,
    TransportErrorKind, Validation,
};
use pyo3::prelude::*;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

/// How often a blocked call looks for Ctrl-C (and a stop request).
pub const TICK_MS: u64 = 50;

/// The HTTP client and the token of one `Client`.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub http: Http,
    pub token: Arc<Token>,
}

/// Raises `KeyboardInterrupt` (or whatever a signal handler raised) in the
/// main thread; a no-op elsewhere.
pub fn check_signals() -> Result<(), Failure> {
    Python::attach(|py| py.check_signals()).map_err(Failure::Py)
}

/// Where a drive stopped.
#[derive(Debug)]
pub enum Driven {
    /// The job is over (its outcome is in the job).
    Done,
    /// The job waits this many more milliseconds (the block budget ran out).
    Wait(u64),
}

/// Sends a status request on a helper thread so a Ctrl-C is seen while a
/// slow server (or a long poll) holds the response.
fn send_interruptible(
    ctx: &Ctx,
    req: &Request,
    token: Option<String>,
) -> Result<Result<Response, TransportFailure>, Failure> {
    let (tx, rx) = mpsc::channel();
    let http = ctx.http.clone();
    let r = req.clone();
    std::thread::spawn(move || {
        let _ = tx.send(http.send(&r, token.as_deref()));
    });
    loop {
        match rx.recv_timeout(Duration::from_millis(TICK_MS)) {
            Ok(res) => return Ok(res),
            Err(RecvTimeoutError::Timeout) => check_signals()?,
            Err(RecvTimeoutError::Disconnected) => {
                return Ok(Err((TransportErrorKind::AfterSend, "the HTTP thread died".into())))
            }
        }
    }
}

/// Takes the job's driver lock, checking for Ctrl-C while another thread holds it.
fn take_driver<'a>(cell: &'a JobCell, interruptible: bool) -> Result<std::sync::MutexGuard<'a, ()>, Failure> {
    loop {
        match cell.driver.try_lock() {
            Ok(g) => return Ok(g),
            Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => {
                if interruptible {
                    check_signals()?;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Runs the job's actions until it is done, or until it has to wait past
/// `block_ms` from now (then returns the remaining wait).
pub fn drive(ctx: &Ctx, cell: &JobCell, block_ms: u64, interruptible: bool) -> Result<Driven, Failure> {
    let _driver = take_driver(cell, interruptible)?;
    drive_locked(ctx, cell, block_ms, interruptible, None)
}

fn drive_locked(
    ctx: &Ctx,
    cell: &JobCell,
    block_ms: u64,
    interruptible: bool,
    stop: Option<&AtomicBool>,
) -> Result<Driven, Failure> {
    let until = now_ms().saturating_add(block_ms);
    loop {
        if interruptible {
            check_signals()?;
        }
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Err(Failure::Stopped);
        }
        let action = cell.lock().next_action(now_ms())?;
        match action {
            Action::Send { request } => {
                let token = if request.auth { ctx.token.get()? } else { None };
                let res = if interruptible {
                    match send_interruptible(ctx, &request, token) {
                        Ok(r) => r,
                        Err(f) => {
                            // The answer will never be read: the engine treats the
                            // request as failed after sending (a kick-off becomes
                            // indeterminate, a poll is retried on the next wait).
                            let _ = cell.lock().handle_transport_error(
                                request.id,
                                TransportErrorKind::AfterSend,
                                "interrupted",
                                now_ms(),
                            );
                            return Err(f);
                        }
                    }
                } else {
                    ctx.http.send(&request, token.as_deref())
                };
                let now = now_ms();
                let mut job = cell.lock();
                match res {
                    Ok(resp) => job.handle_response(request.id, resp, now)?,
                    Err((kind, msg)) => job.handle_transport_error(request.id, kind, &msg, now)?,
                }
            }
            Action::Wait { delay_ms, .. } => {
                let now = now_ms();
                if now >= until {
                    return Ok(Driven::Wait(delay_ms));
                }
                cell.sleep(delay_ms.min(until - now).min(TICK_MS));
            }
            Action::RefreshToken => {
                if let Err(reason) = ctx.token.refresh()? {
                    return Err(cell.lock().token_unavailable(reason).into());
                }
            }
            Action::Done { .. } => return Ok(Driven::Done),
        }
    }
}

/// At most `MAX_ERROR_BODY` bytes of an error response, for the error's server text.
fn read_error_body(body: &mut (dyn Read + Send)) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = body.take(fhir_async::download::MAX_ERROR_BODY as u64).read_to_end(&mut out);
    out
}

/// Where the lines of a file go.
pub trait Sink {
    /// One resource line (without its newline).
    fn line(&mut self, line: &[u8]) -> io::Result<()>;
}

/// Downloads files of one finished job; shared by the worker threads.
#[derive(Debug)]
pub struct Fetcher {
    pub ctx: Ctx,
    pub cell: Arc<JobCell>,
    pub policy: RetryPolicy,
    pub gzip: bool,
    /// What a count mismatch does to a file.
    pub count_check: CountCheck,
    /// How the engine checks lines (`None` when Python parses them itself
    /// and reports failures with `report_invalid_line`).
    pub validation: Validation,
    /// Set on Ctrl-C, on a failure that ends the whole call, or when the consumer went away.
    pub stop: Arc<AtomicBool>,
    /// Raw bytes received.
    pub bytes: Arc<AtomicU64>,
    /// Resources handed out.
    pub resources: AtomicU64,
    /// (generation, plan) after manifest refreshes.
    refresh: Mutex<(u32, Vec<PlannedFile>)>,
}

impl Fetcher {
    pub fn new(ctx: Ctx, cell: Arc<JobCell>, gzip: bool, count_check: CountCheck, validation: Validation) -> Self {
        let policy = cell.lock().config().retry.clone();
        Fetcher {
            ctx,
            cell,
            policy,
            gzip,
            count_check,
            validation,
            stop: Arc::new(AtomicBool::new(false)),
            bytes: Arc::new(AtomicU64::new(0)),
            resources: AtomicU64::new(0),
            refresh: Mutex::new((0, Vec::new())),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps until `until_ms`, waking early when asked to stop.
    fn sleep_until(&self, until_ms: u64) {
        loop {
            let now = now_ms();
            if now >= until_ms || self.stopped() {
                return;
            }
            std::thread::sleep(Duration::from_millis((until_ms - now).min(TICK_MS)));
        }
    }

    /// The plan after one manifest refresh (done once for all files that
    /// started before it; later callers reuse it).
    fn refreshed_plan(&self, seen_gen: u32) -> Result<Vec<PlannedFile>, Failure> {
        let mut g = self.refresh.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 == seen_gen {
            let _driver = take_driver(&self.cell, false)?;
            self.cell.lock().refresh_manifest(now_ms())?;
            match drive_locked(&self.ctx, &self.cell, u64::MAX, false, Some(&self.stop))? {
                Driven::Done => {}
                Driven::Wait(_) => return Err(Failure::Stopped),
            }
            g.0 += 1;
            g.1 = self.cell.lock().download_plan();
        }
        Ok(g.1.clone())
    }

    /// Downloads one file into `sink`. Lines already handed out are never
    /// handed out again, whatever retries happen (the engine skips them).
    /// Returns the finished download (its report is `next_action`'s `Done`),
    /// so a consumer that parses lines later can still report bad ones.
    pub fn fetch(&self, file: PlannedFile, sink: &mut dyn Sink) -> Result<Box<FileDownload>, Failure> {
        let seen_gen = self.refresh.lock().unwrap_or_else(|e| e.into_inner()).0;
        let mut dl = Box::new(
            FileDownload::new(file, &self.policy)?
                .with_gzip(self.gzip)
                .with_count_check(self.count_check)
                .with_validation(self.validation),
        );
        let mut buf = vec![0u8; 256 * 1024];
        // The start of the last error answer the engine chose to go past (a
        // 401 before a token refresh, a 503 before a retry): if the file
        // then fails without another answer, its text goes into the error.
        let mut last_error_body: Vec<u8> = Vec::new();
        loop {
            if self.stopped() {
                return Err(Failure::Stopped);
            }
            match dl.next_action(now_ms())? {
                DownloadAction::Send { request } => {
                    let token = if request.auth { self.ctx.token.get()? } else { None };
                    let id = request.id;
                    let mut s = match self.ctx.http.open(&request, token.as_deref()) {
                        Ok(s) => s,
                        Err((_, msg)) => {
                            dl.handle_transport_error(id, &msg, now_ms())?;
                            continue;
                        }
                    };
                    match dl.handle_head(id, s.status, &s.headers, false, now_ms()) {
                        Ok(HeadDecision::Discard) => {
                            if s.status >= 400 {
                                last_error_body = read_error_body(&mut *s.body);
                            }
                            continue;
                        }
                        Ok(HeadDecision::Stream) => {}
                        // issue 10: the server's own words (at most 64 KiB of the body) go into the error.
                        Err(e) => return Err(e.with_body(&read_error_body(&mut *s.body)).into()),
                    }
                    let before = dl.resources();
                    let r = self.stream(&mut dl, id, &mut *s.body, &mut buf, sink);
                    self.resources.fetch_add(dl.resources() - before, Ordering::Relaxed);
                    r?;
                }
                DownloadAction::Wait { until_ms, .. } => self.sleep_until(until_ms),
                DownloadAction::RefreshToken => {
                    if let Err(reason) = self.ctx.token.refresh()? {
                        return Err(dl.token_unavailable(reason).with_body(&last_error_body).into());
                    }
                }
                DownloadAction::RefreshManifest => {
                    let plan = self.refreshed_plan(seen_gen)?;
                    let (kind, index) = (dl.file().kind, dl.file().index);
                    let fresh = plan.into_iter().find(|p| p.kind == kind && p.index == index);
                    dl.replace_file(fresh)?;
                }
                DownloadAction::Done { .. } => return Ok(dl),
            }
        }
    }

    /// Streams one response body through the engine into the sink.
    fn stream(
        &self,
        dl: &mut FileDownload,
        id: u64,
        body: &mut (dyn Read + Send),
        buf: &mut [u8],
        sink: &mut dyn Sink,
    ) -> Result<(), Failure> {
        let mut werr: Option<io::Error> = None;
        loop {
            if self.stopped() {
                return Err(Failure::Stopped);
            }
            match body.read(buf) {
                Ok(0) => {
                    dl.finish(id, now_ms(), |l| {
                        if werr.is_none() {
                            if let Err(e) = sink.line(l) {
                                werr = Some(e);
                            }
                        }
                    })?;
                    break;
                }
                Ok(n) => {
                    self.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    let decision = dl.feed(id, &buf[..n], now_ms(), |l| {
                        if werr.is_none() {
                            if let Err(e) = sink.line(l) {
                                werr = Some(e);
                            }
                        }
                    })?;
                    // A corrupt gzip stream: the engine already scheduled the retry.
                    if decision == HeadDecision::Discard {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    dl.handle_transport_error(id, &e.to_string(), now_ms())?;
                    break;
                }
            }
            if let Some(e) = werr.take() {
                return Err(Failure::Io(e.to_string()));
            }
        }
        match werr {
            Some(e) => Err(Failure::Io(e.to_string())),
            None => Ok(()),
        }
    }
}
