//! # fhir-async: a sans-IO engine for FHIR asynchronous operations
//!
//! A FHIR server answers a long operation (`$export`, `$reindex`, any
//! interaction sent with `Prefer: respond-async`) with `202 Accepted` and a
//! status URL. This crate decides everything a client of that protocol has to
//! decide — what to send, when to poll, what a response means, when to give
//! up, where the token may go — and does none of the I/O. It takes responses
//! and the current time (Unix milliseconds, a plain `u64`) and returns the
//! one next [`Action`]. No clock, no sockets, no RNG: the same inputs always
//! give the same outputs, so every behaviour is tested by driving a virtual
//! clock, and the same engine runs in browsers (wasm), Node, Python and Rust.
//!
//! ## The job's states
//!
//! ```text
//!                 cancel() before kick-off ───────────────────────────────┐
//!                                                                          v
//!  ┌───────┐ Send kickoff ┌──────────┐ 202 + Content-Location ┌─────────┐ ┌──────────────┐
//!  │ Ready ├─────────────>│ (flight) ├───────────────────────>│ Polling │ │ Done(outcome)│
//!  └───────┘              └────┬─────┘                        └──┬──┬───┘ └──────────────┘
//!      ^  429 / connect error  │ 200/201: sync result ─────────────┼──┼──────────>│
//!      └── KickoffRetry <──────┤ 4xx/5xx + OperationOutcome: failed ┼──┼──────────>│
//!                              │ reset after send: KickoffIndeterminate (never replayed)
//!                                                                │  │
//!     202 (+X-Progress, Retry-After) / 429 / 5xx / transient OO ─┘  │ 200 manifest|Bundle|AsyncJob|OO
//!     → wait (Retry-After, clamped; else jittered backoff)         ├──────────── (link next) ──> Fetching(page) ─> Done
//!     cancel() → DELETE status URL | POST AsyncJob/{id}/$cancel    │ 303 See Other
//!       202 → Done(cancelled); 404/409/410 → poll once more        └────────> Fetching(result) ──> Done
//!     deadline passed → Err(DeadlineExceeded)
//! ```
//!
//! Beside that main line the job keeps three sub-states, each saved with it
//! and each a small machine of its own (`core/src/job/state.rs`):
//!
//! ```text
//!  cancel   none ─cancel()─> asked ─send─> sent ─answer─> answered(CancelResult)
//!                               ^            │ reset/5xx        │ rejected: the job goes on,
//!                               └────────────┘                  └ cancel() may ask again
//!  cleanup  none ─cleanup()─> asked ─send─> sent ─answer─> answered(CleanupResult)
//!  token    accepted ─401─> refused ─RefreshToken─> renewed ─401─> Err(Unauthorized)
//!              ^──────── any success ─────────────────┘   token_unavailable() ─> Err(Unauthorized)
//! ```
//!
//! Manifest pages (B7) are fetched in `Fetching(page)` with their own counter;
//! redirects of a 303 result have theirs.
//!
//! Server-reported failure (a 4xx OperationOutcome, an `AsyncJob` with
//! `status: error`, an R5 `batch-response` whose `entry[0].response.status`
//! is 4xx) is an [`Outcome`] with [`OutcomeStatus::Failed`], not an error.
//! [`Error`] is for misuse of the API and for servers that break the protocol.
//!
//! ## Driving loop
//!
//! A binding owns the clock and the sockets. This loop is the whole contract
//! (here with a scripted "server" instead of HTTP):
//!
//! ```
//! use fhir_async::{Action, ExportRequest, Job, JobConfig, Operation, Response, OutcomeStatus};
//!
//! let mut job = Job::new(JobConfig {
//!     base_url: "https://fhir.example/r4".into(),
//!     operation: Operation::Export(ExportRequest { types: vec!["Patient".into()], ..Default::default() }),
//!     prefer: Default::default(),
//!     retry: Default::default(),
//!     timeout_ms: Some(3_600_000),
//!     allowed_origins: vec![],
//! })?;
//!
//! // What the server will say, in order.
//! let mut server = vec![
//!     Response::new(202).with_header("Content-Location", "https://fhir.example/r4/jobs/1"),
//!     Response::new(202).with_header("Retry-After", "5").with_header("X-Progress", "50% complete"),
//!     Response::new(200).with_body(r#"{"transactionTime":"2026-01-01T00:00:00Z","requiresAccessToken":true,
//!         "output":[{"type":"Patient","url":"https://fhir.example/r4/files/1","count":2}],"error":[]}"#),
//! ].into_iter();
//!
//! let mut now = 1_700_000_000_000u64; // Unix ms, from the binding's clock
//! let outcome = loop {
//!     match job.next_action(now)? {
//!         Action::Send { request } => {
//!             // Send `request` (with the token iff `request.auth`), without following redirects.
//!             let response = server.next().expect("scripted");
//!             job.handle_response(request.id, response, now)?;
//!         }
//!         Action::Wait { delay_ms, .. } => now += delay_ms, // sleep; a callback or cancel may wake it early
//!         Action::RefreshToken => { /* fetch a new token */ }
//!         Action::Done { outcome } => break outcome,
//!     }
//! };
//! assert_eq!(outcome.status, OutcomeStatus::Completed);
//! let plan = job.download_plan();
//! assert!(plan[0].send_token); // same origin as the FHIR base, and requiresAccessToken
//! # Ok::<(), fhir_async::Error>(())
//! ```
//!
//! Files are downloaded with one [`FileDownload`] per [`PlannedFile`]: it
//! decides the token, redirects, retries, gzip, NDJSON splitting and the
//! count check; the caller only moves bytes.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod attachments;
pub mod auth;
pub mod callback;
pub mod coordinator;
pub mod decode;
pub mod download;
mod error;
pub mod http;
mod identity;
mod job;
pub mod kickoff;
pub mod limits;
pub mod manifest;
pub mod names;
pub mod ndjson;
pub mod origin;
mod outcome;
pub mod progress;
pub mod publish;
pub mod retry;
mod tagged;
pub mod taken;

pub use attachments::{
    attachment_file_name, decode_attachment, find_attachments, find_in_line, inline_attachments,
    resolve_attachment_url, AttachmentError, AttachmentMode, AttachmentOptions, AttachmentPlan, AttachmentRef,
    AttachmentReport, Fetched, Hydrate, Hydrator,
};
pub use auth::{AuthError, AuthStep, BackendServices, ClientSecret, SigningAlg, TokenSession};
pub use callback::{parse_callback, sign_callback, verify_callback, CallbackError, CallbackPayload, CallbackStatus};
pub use coordinator::{
    resume_decision, DownloadOptions, DownloadProgress, DownloadStep, Downloads, FileIdentity, FileRecord, FileResult,
    LimitChange, OriginLimit, ResumeDecision,
};
pub use decode::{BodyDecoder, DecodeError};
pub use download::{
    CountCheck, CountMismatchInfo, DownloadAction, DownloadError, FileCheckpoint, FileDownload, FileReport,
    HeadDecision, InvalidLine, InvalidLines, Validation,
};
pub use error::Error;
pub use http::{Method, Request, RequestKind, Response, TransportErrorKind};
pub use job::{Action, CallbackEffect, CancelResult, CleanupResult, Job, JobConfig};
pub use kickoff::{AsyncMode, ExportLevel, ExportRequest, IgVersion, Operation, OperationRequest, PreferOptions};
pub use limits::{Ceilings, DEFAULT_ATTACHMENT_MAX_SIZE, MAX_ERROR_BODY, MAX_INVALID_REPORTED};
pub use manifest::{plan_downloads, FileKind, Manifest, ManifestError, ManifestFile, PlannedFile, TokenPolicy};
pub use names::table_name;
pub use ndjson::{LineSplitter, NdjsonError};
pub use outcome::{Delivery, Outcome, OutcomeStatus, ResultBody};
pub use progress::{Phase, Progress};
pub use retry::{RetryAfter, RetryPolicy};

/// The `User-Agent` every binding sends where the platform allows:
/// `fhir-async/<version> (<binding>)`, e.g. `fhir-async/0.1.0 (python)`.
pub fn user_agent(binding: &str) -> String {
    format!("fhir-async/{} ({binding})", env!("CARGO_PKG_VERSION"))
}
