//! The fhir-async core driven by a small blocking loop with `ureq`.
//!
//! Everything the protocol needs decided is decided by [`fhir_async::Job`] and
//! [`fhir_async::FileDownload`]; this crate only moves bytes and sleeps. It is
//! the example for Rust users and the engine behind `make demo`.
//!
//! Every request carries `User-Agent: fhir-async/<version> (rust)`. A response
//! whose body breaks after the head is a transport error (after send), never a
//! short response; a connection that never opened (DNS, refused, TLS
//! handshake) is a connect error, the only kind after which a kick-off may be
//! re-sent.

use fhir_async::{Action, Error, Job, Outcome, Progress, Request, Response, TransportErrorKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod download;
mod testserver;

pub use download::{Counters, DownloadOptions, Downloaded, FileFailure};
pub use testserver::TestServer;

/// Unix milliseconds from the system clock: the only clock in the SDK lives here.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What a Ctrl-C asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// The first: stop at the next step, leave no partial file, save the job.
    StopCleanly,
    /// The second: exit at once.
    ExitNow,
}

/// Records a Ctrl-C on `flag` (the flag given to [`Driver::with_stop`]) and
/// says what it asks for.
pub fn interrupt(flag: &AtomicBool) -> Interrupt {
    if flag.swap(true, Ordering::SeqCst) {
        Interrupt::ExitNow
    } else {
        Interrupt::StopCleanly
    }
}

/// Status and result bodies are small; a larger one is refused, not buffered.
const MAX_STATUS_BODY: u64 = 16 << 20;

/// A blocking HTTP driver.
#[derive(Debug, Clone)]
pub struct Driver {
    agent: ureq::Agent,
    token: Option<String>,
    user_agent: String,
    stop: Option<Arc<AtomicBool>>,
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

/// What came back for a request the engine asked for: a whole response, or
/// the transport failure to hand to `handle_transport_error`.
#[derive(Debug)]
pub enum Fetched {
    /// Status line, headers and the complete body.
    Response(Response),
    /// No complete response.
    Failed {
        /// Whether the request can have reached the server.
        kind: TransportErrorKind,
        /// What went wrong.
        message: String,
    },
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
        Driver { agent, token, user_agent: fhir_async::user_agent("rust"), stop: None }
    }

    /// Drives stop at the next step once `flag` is set (a Ctrl-C handler sets it):
    /// [`Driver::run_until_stopped`] answers `None`, downloads end with
    /// [`Downloaded::interrupted`] and no partial file left behind.
    pub fn with_stop(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop = Some(flag);
        self
    }

    /// Whether the stop flag is set.
    pub fn stopped(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// Why no new token can be had: this driver holds a fixed string or none.
    pub(crate) fn no_refresh_reason(&self) -> &'static str {
        if self.token.is_some() {
            "a fixed token was given, it cannot be refreshed"
        } else {
            "no token was given"
        }
    }

    /// Sends a request of the engine's and reads the head (not the body).
    fn open(&self, req: &Request) -> Result<ureq::http::Response<ureq::Body>, (TransportErrorKind, String)> {
        let mut b = ureq::http::Request::builder()
            .method(req.method.as_str())
            .uri(&req.url)
            .header("User-Agent", &self.user_agent);
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        if req.auth {
            if let Some(t) = &self.token {
                b = b.header("Authorization", format!("Bearer {t}"));
            }
        }
        let body = req.body.clone().unwrap_or_default().into_bytes();
        // An unusable URL or header never left this process.
        let http_req = b.body(body).map_err(|e| (TransportErrorKind::Connect, e.to_string()))?;
        let configured =
            self.agent.configure_request(http_req).timeout_global(Some(Duration::from_millis(req.timeout_ms))).build();
        self.agent.run(configured).map_err(|e| (transport_kind(&e), e.to_string()))
    }

    /// Sends a status, result, cancel or cleanup request and reads the whole
    /// body. A body that breaks after the head is a transport error after
    /// send (issue 10 §3), not a response with what arrived.
    pub fn fetch(&self, req: &Request) -> Fetched {
        let r = match self.open(req) {
            Ok(r) => r,
            Err((kind, message)) => return Fetched::Failed { kind, message },
        };
        let status = r.status().as_u16();
        let headers = header_pairs(r.headers());
        match r.into_body().with_config().limit(MAX_STATUS_BODY).read_to_vec() {
            Ok(body) => Fetched::Response(Response { status, headers, body, url: None }),
            Err(e) => Fetched::Failed {
                kind: TransportErrorKind::AfterSend,
                message: format!("the body of the HTTP {status} response broke off: {e}"),
            },
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

    /// Like [`Driver::run`], but answers `None` as soon as the stop flag is set
    /// (checked between steps, so no request is in flight and
    /// [`Job::to_json`] holds a state that resumes).
    pub fn run_until_stopped(
        &self,
        job: &mut Job,
        mut on_progress: impl FnMut(&Progress),
    ) -> Result<Option<Outcome>, Error> {
        let (_keep, inbox) = std::sync::mpsc::channel();
        loop {
            if self.stopped() {
                return Ok(None);
            }
            on_progress(&job.progress(now_ms()));
            if let Some(outcome) = self.step(job, &inbox)? {
                return Ok(Some(outcome));
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
            Action::Send { request } => match self.fetch(&request) {
                Fetched::Response(r) => job.handle_response(request.id, r, now_ms())?,
                Fetched::Failed { kind, message } => {
                    job.handle_transport_error(request.id, kind, &message, now_ms())?
                }
            },
            Action::Wait { delay_ms, .. } => {
                if let Ok(payload) = inbox.recv_timeout(Duration::from_millis(delay_ms.min(250))) {
                    job.handle_callback(&payload, now_ms());
                }
            }
            Action::RefreshToken => {
                // A fixed token cannot be refreshed: the job ends Unauthorized, saying so.
                job.token_unavailable(self.no_refresh_reason());
            }
            Action::Done { outcome } => return Ok(Some(outcome)),
        }
        Ok(None)
    }
}

/// Whether a failed request can have reached the server. `Connect` only when
/// the connection never opened: DNS, refused, connect timeout, and a TLS
/// handshake that failed (rustls reports it inside an `io::Error`).
fn transport_kind(e: &ureq::Error) -> TransportErrorKind {
    use ureq::Error as E;
    match e {
        E::ConnectionFailed
        | E::HostNotFound
        | E::BadUri(_)
        | E::Tls(_)
        | E::Rustls(_)
        | E::Pem(_)
        | E::TlsRequired
        | E::RequireHttpsOnly(_)
        | E::InvalidProxyUrl
        | E::ConnectProxyFailed(_)
        | E::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => TransportErrorKind::Connect,
        E::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::HostUnreachable
            ) || io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) =>
        {
            TransportErrorKind::Connect
        }
        _ => TransportErrorKind::AfterSend,
    }
}

pub(crate) fn header_pairs(h: &ureq::http::HeaderMap) -> Vec<(String, String)> {
    h.iter().map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 10 §2: the first Ctrl-C stops cleanly, a second exits at once.
    #[test]
    fn a_second_ctrl_c_exits_at_once() {
        let flag = Arc::new(AtomicBool::new(false));
        let driver = Driver::new(None).with_stop(flag.clone());
        assert!(!driver.stopped());
        assert_eq!(interrupt(&flag), Interrupt::StopCleanly);
        assert!(driver.stopped(), "the driver sees the first Ctrl-C");
        assert_eq!(interrupt(&flag), Interrupt::ExitNow);
    }
}
