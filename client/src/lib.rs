//! # fhir-async-client: the native client of fhir-async
//!
//! The [`fhir_async`] engine decides everything about a FHIR asynchronous
//! operation and does no I/O. This crate is the one native driver of it:
//! blocking HTTP with ureq and rustls, worker threads for downloads, a
//! [`TokenProvider`] for the bearer token, files written atomically (a
//! temporary file renamed once the engine says the file is complete), and a
//! [`Stop`] switch for Ctrl-C. Python and the `fhir-async` command line are
//! built on it.
//!
//! ```no_run
//! use fhir_async_client::{Client, StaticToken};
//! use fhir_async::{DownloadOptions, ExportRequest};
//!
//! let client = Client::builder("https://fhir.example/r4").token(StaticToken::new("...")).build()?;
//! let mut job = client.export(ExportRequest { types: vec!["Patient".into()], ..Default::default() })?;
//! let outcome = job.wait()?;
//! let summary = job.download("out/", DownloadOptions::default())?;
//! println!("{:?}: {} files", outcome.status, summary.files.len());
//! # Ok::<(), fhir_async_client::ClientError>(())
//! ```
//!
//! Every protocol decision (when to poll, what an answer means, where the
//! token may go, what a file's count must be) is the engine's; a
//! [`ClientError`] is either the engine's error (with the code the core
//! owns), a disk error, or a stop the caller asked for. A server's failure is
//! an [`Outcome`], and a file's failure is that file's [`FileResult`]: the
//! other files are kept.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod control;
mod drive;
mod error;
mod files;
mod host;
mod lines;
mod publish;
mod smart;
mod stop;
#[cfg(feature = "tables")]
pub mod tables;
mod token;
mod transport;

pub use error::ClientError;
pub use files::{DownloadEvent, DownloadSummary, DownloadedFile};
pub use lines::{LineBatch, LineEvent, Lines};
pub use publish::{Publication, PublishEvent, PublishUntil, STATE_FILE as PUBLISH_STATE_FILE};
pub use smart::{BackendServicesAuth, PrivateKey};
pub use stop::Stop;
pub use token::{NoToken, StaticToken, TokenFn, TokenProvider, TokenUnavailable};
pub use transport::{classify, Connection, Streaming, Transport, TransportFailure};

use drive::{Io, Until};
use fhir_async::{
    DownloadOptions, DownloadProgress, ExportRequest, FileResult, Job, JobConfig, Operation, Outcome, PreferOptions,
    Progress, RetryPolicy,
};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The wall clock in Unix milliseconds: the one clock the engine is given.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Settings of a [`Client`].
pub struct ClientBuilder {
    base_url: String,
    token: Arc<dyn TokenProvider>,
    retry: RetryPolicy,
    timeout: Option<Duration>,
    allowed_origins: Vec<String>,
    prefer: PreferOptions,
    binding: String,
    stop: Stop,
    connection: Connection,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The bearer token's source (default: none).
    pub fn token(mut self, token: impl TokenProvider + 'static) -> Self {
        self.token = Arc::new(token);
        self
    }

    /// Timing and retry limits for every job (default: the engine's).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// An overall deadline for each job, from its kick-off (protocol B8).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Other origins allowed to receive the token for files (protocol I2).
    pub fn allowed_origins(mut self, origins: Vec<String>) -> Self {
        self.allowed_origins = origins;
        self
    }

    /// Extra `Prefer` tokens (async mode, callback URL, ...).
    pub fn prefer(mut self, prefer: PreferOptions) -> Self {
        self.prefer = prefer;
        self
    }

    /// The binding named in the `User-Agent` (`rust`, `python`, `cli`).
    pub fn binding(mut self, name: &str) -> Self {
        self.binding = name.to_owned();
        self
    }

    /// The stop switch every call of the client watches (default: a new one).
    pub fn stop(mut self, stop: Stop) -> Self {
        self.stop = stop;
        self
    }

    /// How servers are reached: trusted CAs, the system's trust store, a proxy (default: the
    /// bundled roots, the environment's proxy).
    pub fn connection(mut self, connection: Connection) -> Self {
        self.connection = connection;
        self
    }

    /// The client. Fails on a base URL the engine refuses, and on a [`Connection`] that cannot
    /// be set up (a CA file that cannot be read or holds no certificate, a bad proxy URL).
    pub fn build(self) -> Result<Client, ClientError> {
        // Validates the base URL the way every job will.
        Job::new(JobConfig {
            base_url: self.base_url.clone(),
            operation: Operation::Export(ExportRequest::default()),
            prefer: PreferOptions::default(),
            retry: RetryPolicy::default(),
            timeout_ms: None,
            allowed_origins: Vec::new(),
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                io: Io {
                    transport: Transport::with_connection(&self.binding, &self.connection)?,
                    token: self.token,
                    stop: self.stop,
                },
                base_url: self.base_url,
                retry: self.retry,
                timeout: self.timeout,
                allowed_origins: self.allowed_origins,
                prefer: self.prefer,
            }),
        })
    }
}

struct Inner {
    io: Io,
    base_url: String,
    retry: RetryPolicy,
    timeout: Option<Duration>,
    allowed_origins: Vec<String>,
    prefer: PreferOptions,
}

/// A FHIR server to run asynchronous operations on. Cheap to clone (shared
/// connection pool, token and stop switch).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base_url", &self.inner.base_url).finish_non_exhaustive()
    }
}

impl Client {
    /// Settings for a client of the server at `base_url`.
    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.to_owned(),
            token: Arc::new(NoToken),
            retry: RetryPolicy::default(),
            timeout: None,
            allowed_origins: Vec::new(),
            prefer: PreferOptions::default(),
            binding: "rust".into(),
            stop: Stop::default(),
            connection: Connection::default(),
        }
    }

    /// A client with no token and the engine's defaults.
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        Client::builder(base_url).build()
    }

    /// The stop switch: `stop()` from any thread ends every call of this
    /// client with [`ClientError::Stopped`] (the job can be resumed).
    pub fn stop_handle(&self) -> Stop {
        self.inner.io.stop.clone()
    }

    /// A folder kept current with the dataset published at `root` (`[base]/$bulk-publish`,
    /// protocol L14); a folder that holds a saved reader goes on from it. The token goes to
    /// the publisher's origin only.
    pub fn publish(&self, root: &str, dir: impl AsRef<std::path::Path>) -> Result<Publication, ClientError> {
        Publication::open(self.inner.io.clone(), root, self.inner.retry.clone(), dir.as_ref())
    }

    /// The job configuration this client would use for `operation`.
    pub fn config(&self, operation: Operation) -> JobConfig {
        JobConfig {
            base_url: self.inner.base_url.clone(),
            operation,
            prefer: self.inner.prefer.clone(),
            retry: self.inner.retry.clone(),
            timeout_ms: self.inner.timeout.map(|t| t.as_millis() as u64),
            allowed_origins: self.inner.allowed_origins.clone(),
        }
    }

    /// Starts `operation` and returns once the server accepted it (its status
    /// URL is known) or answered at once. A 429 on the kick-off is waited
    /// out as the engine schedules it (protocol A9).
    pub fn start(&self, operation: Operation) -> Result<JobRun, ClientError> {
        self.start_with(Job::new(self.config(operation))?)
    }

    /// Starts a Bulk Data `$export` (see [`Client::start`]).
    pub fn export(&self, request: ExportRequest) -> Result<JobRun, ClientError> {
        self.start(Operation::Export(request))
    }

    /// Starts a job built elsewhere (see [`Client::start`]).
    pub fn start_with(&self, job: Job) -> Result<JobRun, ClientError> {
        let mut run = JobRun { client: self.clone(), job, outcome: None };
        run.outcome = self.inner.io.drive(&mut run.job, Until::Accepted, &mut |_| {})?;
        Ok(run)
    }

    /// Follows an operation started elsewhere, known by its status URL (or a
    /// manifest URL): no kick-off.
    pub fn attach(&self, status_url: &str, operation: Operation) -> Result<JobRun, ClientError> {
        let job = Job::attach(self.config(operation), status_url)?;
        Ok(JobRun { client: self.clone(), job, outcome: None })
    }

    /// Picks up a job saved with [`JobRun::to_json`]: no second kick-off.
    pub fn resume(&self, saved: &str) -> Result<JobRun, ClientError> {
        let job = Job::from_json(saved)?;
        let outcome = job.outcome().cloned();
        Ok(JobRun { client: self.clone(), job, outcome })
    }
}

/// A running (or finished) job of a [`Client`].
#[derive(Debug)]
pub struct JobRun {
    client: Client,
    job: Job,
    outcome: Option<Outcome>,
}

impl JobRun {
    /// The engine's job (status URL, progress, plan, saved state).
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// Gives this run (a resumed job, say) a deadline of its own: `timeout`
    /// from now, or none. It bounds the waits, polls and manifest refreshes
    /// (protocol K8) of what follows; the first run's deadline no longer applies.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.job.set_timeout(timeout.map(|t| t.as_millis() as u64), now_ms());
    }

    /// A snapshot for a progress bar.
    pub fn progress(&self) -> Progress {
        self.job.progress(now_ms())
    }

    /// The job's state as JSON, without any token: [`Client::resume`] takes it.
    pub fn to_json(&self) -> String {
        self.job.to_json()
    }

    /// The outcome, once the job is over.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Brings the next status poll forward to now (overrides `Retry-After`
    /// once: use sparingly). Returns whether anything changed.
    pub fn poll_now(&mut self) -> bool {
        self.job.poll_now(now_ms())
    }

    /// Polls until the job is over.
    pub fn wait(&mut self) -> Result<Outcome, ClientError> {
        self.wait_with(|_| {})
    }

    /// Polls until the job is over, calling `on_progress` after each answer and before each wait.
    pub fn wait_with(&mut self, mut on_progress: impl FnMut(&Progress)) -> Result<Outcome, ClientError> {
        if let Some(o) = &self.outcome {
            return Ok(o.clone());
        }
        let o = self.client.inner.io.drive(&mut self.job, Until::Done, &mut on_progress)?;
        let o = o.ok_or(ClientError::Stopped)?;
        self.outcome = Some(o.clone());
        Ok(o)
    }

    /// Polls for at most `budget`; the outcome if the job ended meanwhile.
    pub fn step(&mut self, budget: Duration) -> Result<Option<Outcome>, ClientError> {
        if let Some(o) = &self.outcome {
            return Ok(Some(o.clone()));
        }
        let until = Until::Time(now_ms().saturating_add(budget.as_millis() as u64));
        self.outcome = self.client.inner.io.drive(&mut self.job, until, &mut |_| {})?;
        Ok(self.outcome.clone())
    }

    /// Cancels the job (the dialect's cancel: DELETE on the status URL, or
    /// Medplum's) and returns how it ended.
    pub fn cancel(&mut self) -> Result<Outcome, ClientError> {
        self.job.cancel(now_ms());
        self.outcome = None;
        self.wait()
    }

    /// Downloads the finished job's files into `dir` (see [`DownloadOptions`]).
    ///
    /// Each file is written to `NAME.tmp` and renamed to `NAME` once the engine
    /// says it is complete. A download that resumes never fetches a finished
    /// file again and continues a part-way one by range (protocol K5), from the
    /// job's records (a stop saves them, part-way files kept as `NAME.part`) or,
    /// when the process was killed before it could save the job, from the
    /// folder's progress journal `.fhir-async-progress.jsonl`: each file renamed
    /// into place, and every second or 4 MB where a part-way identity-encoded
    /// file can continue. Its lines name the job (status URL, `transactionTime`),
    /// so a folder reused for another export skips nothing; it is removed once
    /// every file is settled.
    pub fn download(
        &mut self,
        dir: impl AsRef<Path>,
        options: DownloadOptions,
    ) -> Result<DownloadSummary, ClientError> {
        self.download_with(dir, options, |_, _| {})
    }

    /// Like [`JobRun::download`], calling `on_progress(totals, wire bytes)`
    /// after each request (from the worker threads).
    pub fn download_with(
        &mut self,
        dir: impl AsRef<Path>,
        options: DownloadOptions,
        on_progress: impl Fn(&DownloadProgress, u64) + Sync,
    ) -> Result<DownloadSummary, ClientError> {
        self.download_events(dir, options, |e| {
            if let DownloadEvent::Progress { totals, wire_bytes } = e {
                on_progress(totals, wire_bytes);
            }
        })
    }

    /// Like [`JobRun::download`], with every [`DownloadEvent`] (file started,
    /// bytes, totals, file finished, attachment settled), from the worker threads.
    ///
    /// With `options.attachments.mode` `files` or `inline` (protocol M), once the NDJSON files
    /// are in: the attachments their resources point at are fetched (each URL once, the token
    /// only where it may go) into `dir/attachments/`, reported in `dir/attachments.json` and in
    /// [`DownloadSummary::attachments`]; `inline` also writes them into the NDJSON files. A
    /// failed attachment fails no file. A second run fetches only what is not on disk yet.
    pub fn download_events(
        &mut self,
        dir: impl AsRef<Path>,
        options: DownloadOptions,
        on_event: impl Fn(DownloadEvent<'_>) + Sync,
    ) -> Result<DownloadSummary, ClientError> {
        let sink = files::FolderSink::for_plan(dir.as_ref(), self.job.download_plan(), &options)?;
        let attachments = options.attachments.clone();
        let mut summary =
            files::run(&self.client.inner.io, &mut self.job, files::Plan::Job, options.clone(), &sink, &on_event)?;
        // Protocol M: after the NDJSON files, the attachments their resources point at.
        if attachments.mode != fhir_async::attachments::AttachmentMode::Off {
            files::attachments::pass(
                &self.client.inner.io,
                &mut self.job,
                dir.as_ref(),
                &options,
                &mut summary,
                &on_event,
            )?;
        }
        Ok(summary)
    }
}

impl JobRun {
    /// The finished job's resources as raw NDJSON lines, downloaded in
    /// parallel in the background (see [`Lines`]). With
    /// `options.max_per_origin == 1` files come one after the other, in
    /// manifest order. A manifest refresh on the way updates a copy of the
    /// job, not this one.
    pub fn lines(&self, options: DownloadOptions) -> Lines {
        Lines::start(self.client.inner.io.clone(), self.job.clone(), options)
    }
}

/// The per-file results of a download that failed, for reports.
pub fn failed_files(summary: &DownloadSummary) -> impl Iterator<Item = &FileResult> {
    summary.files.iter().map(|f| &f.result).filter(|r| r.error.is_some())
}
