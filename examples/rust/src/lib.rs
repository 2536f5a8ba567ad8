//! The fhir-async core driven by a small blocking loop with `ureq`.
//!
//! Everything the protocol needs decided is decided by [`fhir_async::Job`] and
//! [`fhir_async::FileDownload`]; this file only moves bytes and sleeps. It is
//! the example for Rust users and the engine behind `make demo`.

use fhir_async::{
    Action, DownloadAction, Error, FileDownload, FileReport, HeadDecision, Job, Outcome, PlannedFile, Progress,
    Request, Response, RetryPolicy, TransportErrorKind,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix milliseconds from the system clock: the only clock in the SDK lives here.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A blocking HTTP driver.
#[derive(Debug, Clone)]
pub struct Driver {
    agent: ureq::Agent,
    token: Option<String>,
}

/// What can stop a drive.
#[derive(Debug)]
pub enum DriveError {
    /// The engine stopped the job (protocol violation, deadline, ...).
    Job(Error),
    /// A file could not be downloaded.
    Download(fhir_async::DownloadError),
    /// A local file could not be written.
    Io(std::io::Error),
}

impl std::fmt::Display for DriveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DriveError::Job(e) => write!(f, "{e}"),
            DriveError::Download(e) => write!(f, "{e}"),
            DriveError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DriveError {}

impl From<Error> for DriveError {
    fn from(e: Error) -> Self {
        DriveError::Job(e)
    }
}
impl From<fhir_async::DownloadError> for DriveError {
    fn from(e: fhir_async::DownloadError) -> Self {
        DriveError::Download(e)
    }
}
impl From<std::io::Error> for DriveError {
    fn from(e: std::io::Error) -> Self {
        DriveError::Io(e)
    }
}

enum Sent {
    Response(ureq::http::Response<ureq::Body>),
    Failed(TransportErrorKind, String),
}

impl Driver {
    /// A driver that never follows redirects, never decompresses on its own
    /// (the engine decodes by `Content-Encoding`) and reports 4xx/5xx as responses.
    pub fn new(token: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .into();
        Driver { agent, token }
    }

    fn send(&self, req: &Request) -> Sent {
        let mut b = ureq::http::Request::builder().method(req.method.as_str()).uri(&req.url);
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        if req.auth {
            if let Some(t) = &self.token {
                b = b.header("Authorization", format!("Bearer {t}"));
            }
        }
        let body = req.body.clone().unwrap_or_default().into_bytes();
        let http_req = match b.body(body) {
            Ok(r) => r,
            Err(e) => return Sent::Failed(TransportErrorKind::Connect, e.to_string()),
        };
        let configured =
            self.agent.configure_request(http_req).timeout_global(Some(Duration::from_millis(req.timeout_ms))).build();
        match self.agent.run(configured) {
            Ok(r) => Sent::Response(r),
            Err(e) => {
                let kind = match &e {
                    ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => TransportErrorKind::Connect,
                    ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                        TransportErrorKind::Connect
                    }
                    _ => TransportErrorKind::AfterSend,
                };
                Sent::Failed(kind, e.to_string())
            }
        }
    }

    /// Drives a job to its end, calling `on_progress` after every step.
    pub fn run(&self, job: &mut Job, on_progress: impl FnMut(&Progress)) -> Result<Outcome, Error> {
        let (_keep, inbox) = std::sync::mpsc::channel();
        self.run_with_callbacks(job, on_progress, &inbox)
    }

    /// Like [`Driver::run`], and a verified callback arriving on `inbox`
    /// wakes the job early (it still confirms with its own GET).
    pub fn run_with_callbacks(
        &self,
        job: &mut Job,
        mut on_progress: impl FnMut(&Progress),
        inbox: &std::sync::mpsc::Receiver<fhir_async::CallbackPayload>,
    ) -> Result<Outcome, Error> {
        loop {
            on_progress(&job.progress(now_ms()));
            if let Some(outcome) = self.step(job, inbox)? {
                return Ok(outcome);
            }
        }
    }

    /// Carries out one action of the job: sends one request, or sleeps at
    /// most 250 ms of a wait (a callback on `inbox` ends the sleep early).
    /// Returns the outcome once the job is done.
    pub fn step(
        &self,
        job: &mut Job,
        inbox: &std::sync::mpsc::Receiver<fhir_async::CallbackPayload>,
    ) -> Result<Option<Outcome>, Error> {
        let now = now_ms();
        match job.next_action(now)? {
            Action::Send { request } => match self.send(&request) {
                Sent::Response(r) => job.handle_response(request.id, to_response(r), now_ms())?,
                Sent::Failed(kind, msg) => job.handle_transport_error(request.id, kind, &msg, now_ms())?,
            },
            Action::Wait { delay_ms, .. } => {
                if let Ok(payload) = inbox.recv_timeout(Duration::from_millis(delay_ms.min(250))) {
                    job.handle_callback(&payload, now_ms());
                }
            }
            Action::RefreshToken => {} // a static token: the engine retries once, then reports Unauthorized
            Action::Done { outcome } => return Ok(Some(outcome)),
        }
        Ok(None)
    }

    /// Downloads every planned file into `dir` with `concurrency` threads:
    /// each file is written to `name.tmp` and renamed when complete and checked.
    /// `bytes` counts decoded bytes as they arrive.
    pub fn download_all(
        &self,
        job: &mut Job,
        dir: &Path,
        concurrency: usize,
        bytes: &AtomicU64,
        resources: &AtomicU64,
    ) -> Result<Vec<(PathBuf, FileReport)>, DriveError> {
        std::fs::create_dir_all(dir)?;
        let plan: Vec<PlannedFile> = job.download_plan();
        let policy = job.config().retry.clone();
        let queue = std::sync::Mutex::new(plan.into_iter());
        let job_lock = std::sync::Mutex::new(job);
        let results = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..concurrency.max(1) {
                s.spawn(|| loop {
                    let Some(file) = queue.lock().ok().and_then(|mut q| q.next()) else {
                        return;
                    };
                    let r = self.download_one(file, &policy, dir, bytes, resources, &job_lock);
                    if let Ok(mut v) = results.lock() {
                        v.push(r);
                    }
                });
            }
        });
        let mut out = Vec::new();
        for r in results.into_inner().unwrap_or_default() {
            out.push(r?);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn download_one(
        &self,
        file: PlannedFile,
        policy: &RetryPolicy,
        dir: &Path,
        bytes: &AtomicU64,
        resources: &AtomicU64,
        job: &std::sync::Mutex<&mut Job>,
    ) -> Result<(PathBuf, FileReport), DriveError> {
        let target = dir.join(&file.file_name);
        let tmp = dir.join(format!("{}.tmp", file.file_name));
        let mut d = FileDownload::new(file, policy)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        let result = (|| -> Result<FileReport, DriveError> {
            let mut write_err: Option<std::io::Error> = None;
            loop {
                match d.next_action(now_ms())? {
                    DownloadAction::Send { request } => {
                        let r = match self.send(&request) {
                            Sent::Response(r) => r,
                            Sent::Failed(_, msg) => {
                                d.handle_transport_error(request.id, &msg, now_ms())?;
                                continue;
                            }
                        };
                        let headers = header_pairs(r.headers());
                        if d.handle_head(request.id, r.status().as_u16(), &headers, false, now_ms())?
                            == HeadDecision::Discard
                        {
                            continue;
                        }
                        let mut reader = r.into_body().into_reader();
                        let mut buf = vec![0u8; 256 << 10];
                        let mut on_line = |l: &[u8]| {
                            resources.fetch_add(1, Ordering::Relaxed);
                            if write_err.is_none() {
                                if let Err(e) = out.write_all(l).and_then(|()| out.write_all(b"\n")) {
                                    write_err = Some(e);
                                }
                            }
                        };
                        let failed = loop {
                            match reader.read(&mut buf) {
                                Ok(0) => break None,
                                Ok(n) => {
                                    bytes.fetch_add(n as u64, Ordering::Relaxed);
                                    if d.feed(request.id, &buf[..n], now_ms(), &mut on_line)? == HeadDecision::Discard {
                                        break Some(String::new()); // a corrupt body: the retry is scheduled
                                    }
                                }
                                Err(e) => break Some(e.to_string()),
                            }
                        };
                        match failed {
                            None => d.finish(request.id, now_ms(), &mut on_line)?,
                            Some(msg) if !msg.is_empty() => d.handle_transport_error(request.id, &msg, now_ms())?,
                            Some(_) => {}
                        }
                        if let Some(e) = write_err.take() {
                            return Err(e.into());
                        }
                    }
                    DownloadAction::Wait { delay_ms, .. } => std::thread::sleep(Duration::from_millis(delay_ms)),
                    DownloadAction::RefreshToken => {}
                    DownloadAction::RefreshManifest => {
                        let mut j = job.lock().map_err(|_| DriveError::Io(std::io::Error::other("poisoned")))?;
                        let fresh = if j.refresh_manifest(now_ms()).is_ok() && self.run(&mut j, |_| {}).is_ok() {
                            let (kind, index) = (d.file().kind, d.file().index);
                            j.download_plan().into_iter().find(|f| f.kind == kind && f.index == index)
                        } else {
                            None
                        };
                        d.replace_file(fresh)?;
                    }
                    DownloadAction::Done { report } => return Ok(report),
                }
            }
        })();
        match result {
            Ok(report) => {
                out.flush()?;
                drop(out);
                std::fs::rename(&tmp, &target)?;
                Ok((target, report))
            }
            Err(e) => {
                drop(out);
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

fn header_pairs(h: &ureq::http::HeaderMap) -> Vec<(String, String)> {
    h.iter().map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

fn to_response(r: ureq::http::Response<ureq::Body>) -> Response {
    let status = r.status().as_u16();
    let headers = header_pairs(r.headers());
    // Status bodies are small; cap them so a hostile server cannot exhaust memory.
    let body = r.into_body().with_config().limit(16 << 20).read_to_vec().unwrap_or_default();
    Response { status, headers, body, url: None }
}

/// The reference server, started as a child process on loopback port 0 and
/// stopped when dropped.
#[derive(Debug)]
pub struct TestServer {
    child: Child,
    _stdin: ChildStdin,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The storage origin, `http://127.0.0.1:PORT2`
    pub storage_url: String,
}

impl TestServer {
    /// Starts `target/release/fhir-async-testserver` (or `$FHIR_ASYNC_TESTSERVER`).
    pub fn start(args: &[&str]) -> std::io::Result<TestServer> {
        let bin = std::env::var("FHIR_ASYNC_TESTSERVER").map(PathBuf::from).unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/fhir-async-testserver")
        });
        let mut child = Command::new(&bin)
            .args(["--addr", "127.0.0.1:0", "--exit-on-stdin-eof"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e} (run `make server` first)", bin.display())))?;
        let stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let mut next = |prefix: &str| -> std::io::Result<String> {
            let line = lines.next().ok_or_else(|| std::io::Error::other("server exited"))??;
            line.strip_prefix(prefix)
                .map(str::to_owned)
                .ok_or_else(|| std::io::Error::other(format!("unexpected server output: {line}")))
        };
        let url = next("listening on ")?;
        let storage_url = next("storage on ")?;
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Ok(TestServer { child, _stdin: stdin, url, storage_url })
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
