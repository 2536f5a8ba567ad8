//! The job state machine: kick-off, polling, completion, cancel, cleanup,
//! resume. See the crate docs for the state diagram and the driving loop.

mod respond;

use crate::callback::CallbackPayload;
use crate::http::{Method, Request, RequestKind, Response, TransportErrorKind};
use crate::kickoff::{kickoff_for_base, normalized_base, Operation, PreferOptions};
use crate::manifest::{plan_downloads, Manifest, PlannedFile, TokenPolicy};
use crate::origin::{is_downgrade, resolve, same_origin_urls};
use crate::outcome::{server_text, Outcome, OutcomeStatus, ResultBody};
use crate::progress::{parse_percent, Phase, Progress};
use crate::retry::{backoff_ms, derive_seed, read_retry_after, RetryAfter, RetryPolicy};
use crate::tagged;
use crate::Error;
use respond::{cancelled_outcome, is_asyncjob_url};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Everything a job needs to know up front. Serializable, so bindings can
/// take it as a plain JS / Python object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobConfig {
    /// The FHIR base URL (`https://host/fhir/R4`). Its origin receives the token.
    pub base_url: String,
    /// What to start.
    pub operation: Operation,
    /// Extra `Prefer` tokens.
    #[serde(default)]
    pub prefer: PreferOptions,
    /// Timing and retry limits.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Overall deadline in ms from the kick-off (protocol B8). `None`: no deadline.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Other origins allowed to receive the token for file downloads (I2).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// The one next thing the caller must do.
// One Action exists at a time and is moved straight to the caller; boxing the
// outcome would only add an allocation and an awkward pattern for users.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Action {
    /// Send this request and hand the response to [`Job::handle_response`]
    /// (or a failure to [`Job::handle_transport_error`]).
    Send {
        /// The request.
        request: Request,
    },
    /// Nothing to do until `until_ms`. Calling [`Job::next_action`] earlier
    /// is harmless: it answers the same wait (an early wake is a no-op).
    Wait {
        /// When to call again (Unix ms).
        until_ms: u64,
        /// `until_ms - now`, for timers.
        delay_ms: u64,
    },
    /// Get a fresh bearer token (the server answered 401), then call again.
    RefreshToken,
    /// The job is over.
    Done {
        /// How it ended.
        outcome: Outcome,
    },
}

/// What a cancel request achieved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum CancelResult {
    /// The server accepted the cancel.
    Cancelled {
        /// The HTTP status of the cancel response.
        http_status: Option<u16>,
    },
    /// The job had already ended (DELETE → 404/409/410, Medplum 400 "job had
    /// status '...'"). The job polls once more to report how it ended.
    AlreadyTerminal {
        /// The job's status when the server says (`completed`, `error`, ...).
        job_status: Option<String>,
        /// The HTTP status of the cancel response.
        http_status: u16,
    },
    /// The server does not know the job (Medplum `not-found`).
    NotFound {
        /// The HTTP status of the cancel response.
        http_status: u16,
    },
    /// The server refused to cancel (e.g. HealthConnect's 400); the job goes on.
    Rejected {
        /// The HTTP status.
        http_status: u16,
        /// The OperationOutcome, if any.
        outcome: Option<Value>,
    },
}

/// What a `cleanup()` DELETE achieved (protocol F3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupResult {
    /// The HTTP status, or `None` after a transport failure.
    pub http_status: Option<u16>,
    /// Whether the files are gone (2xx, or 404/410: already gone).
    pub ok: bool,
}

/// What a callback did to the job (protocol G3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum CallbackEffect {
    /// The job will poll now to confirm.
    Woken,
    /// Ignored, with the reason (untrusted `resultUrl`, job not polling, ...).
    Ignored {
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase", rename_all_fields = "camelCase")]
enum State {
    Ready,
    KickoffRetry { at_ms: u64 },
    Polling { at_ms: u64 },
    Fetching { url: String, kind: RequestKind, at_ms: u64, auth: bool },
    Done { outcome: Box<Outcome> },
    Errored { error: Error },
}

// Same shape as a derive with `tag = "kind"`, without serde's `Content` buffering (see `tagged`).
impl<'de> Deserialize<'de> for CancelResult {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const KINDS: &[&str] = &["cancelled", "alreadyTerminal", "notFound", "rejected"];
        tagged::deserialize(d, "kind", |kind, f| {
            Ok(match kind {
                "cancelled" => CancelResult::Cancelled { http_status: f.opt("httpStatus")? },
                "alreadyTerminal" => {
                    CancelResult::AlreadyTerminal { job_status: f.opt("jobStatus")?, http_status: f.req("httpStatus")? }
                }
                "notFound" => CancelResult::NotFound { http_status: f.req("httpStatus")? },
                "rejected" => CancelResult::Rejected { http_status: f.req("httpStatus")?, outcome: f.opt("outcome")? },
                other => return Err(tagged::unknown(other, KINDS)),
            })
        })
    }
}

// Same shape as a derive with `tag = "state"` (see `tagged`).
impl<'de> Deserialize<'de> for State {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const STATES: &[&str] = &["ready", "kickoffRetry", "polling", "fetching", "done", "errored"];
        tagged::deserialize(d, "state", |state, f| {
            Ok(match state {
                "ready" => State::Ready,
                "kickoffRetry" => State::KickoffRetry { at_ms: f.req("atMs")? },
                "polling" => State::Polling { at_ms: f.req("atMs")? },
                "fetching" => State::Fetching {
                    url: f.req("url")?,
                    kind: f.req("kind")?,
                    at_ms: f.req("atMs")?,
                    auth: f.req("auth")?,
                },
                "done" => State::Done { outcome: f.req("outcome")? },
                "errored" => State::Errored { error: f.req("error")? },
                other => return Err(tagged::unknown(other, STATES)),
            })
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InFlight {
    id: u64,
    kind: RequestKind,
    url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum CleanupState {
    Requested,
    Sent,
}

/// A FHIR asynchronous job: one owned value, no lifetimes, serializable.
///
/// Feed it responses and the current time; it answers with the next
/// [`Action`]. It never reads a clock, never touches a socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    #[serde(rename = "v")]
    version: u32,
    config: JobConfig,
    base: String,
    state: State,
    status_url: Option<String>,
    medplum_cancel_url: Option<String>,
    /// Medplum: `AsyncJob/$cancel` refuses a running (`active`) export; its
    /// working cancel is `DELETE [base]/bulkdata/export/{id}`, tried once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cancel_fallback: Option<String>,
    separate_status: bool,
    preference_applied: Vec<String>,
    started_at_ms: Option<u64>,
    deadline_ms: Option<u64>,
    polls: u32,
    failures: u32,
    backoff_attempt: u32,
    kickoff_attempts: u32,
    token_refreshed: bool,
    awaiting_token: bool,
    next_id: u64,
    in_flight: Option<InFlight>,
    cancel_requested: bool,
    cancel_sent: bool,
    cancel_result: Option<CancelResult>,
    cleanup: Option<CleanupState>,
    cleanup_result: Option<CleanupResult>,
    progress_message: Option<String>,
    progress_percent: Option<f64>,
    partial: Option<Manifest>,
    pages: Option<Box<Outcome>>,
    refreshing: Option<Box<Outcome>>,
    redirect_hops: u32,
    warnings: Vec<String>,
    /// The jitter seed: the policy's, mixed with the start time and then the
    /// status URL, so jobs that fail together do not retry together (B4).
    #[serde(default)]
    seed: u64,
    /// The last 401 (URL, status, server text), for [`Job::token_unavailable`]'s error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_refusal: Option<(String, u16, Option<String>)>,
    /// The token rule's last answer (see [`TokenMemo`]).
    #[serde(skip)]
    token_memo: TokenMemo,
    /// The kick-off request `new` built to validate the configuration, taken to send it.
    #[serde(skip)]
    kickoff_memo: Memo<Request>,
}

/// A cache, not state: left out of the saved state (a resumed job rebuilds it
/// on demand) and ignored by equality.
#[derive(Debug, Clone)]
struct Memo<T>(Option<T>);

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo(None)
    }
}

impl<T> PartialEq for Memo<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Polls ask "may the token go to this URL?" about the same status URL every
/// time, and answering parses URLs (it was most of the engine's cost of a
/// poll). The rule's inputs never change during a job, so the last URL asked
/// is the key of the answer.
type TokenMemo = Memo<(String, bool)>;

const STATE_VERSION: u32 = 1;

impl Job {
    /// Creates a job. Validates the configuration (base URL, export
    /// parameters) so misuse surfaces before anything is sent.
    pub fn new(config: JobConfig) -> Result<Job, Error> {
        let base = normalized_base(&config.base_url)?;
        // Built now to validate, and kept for the kick-off (id and timeout are filled in then).
        let kickoff = kickoff_for_base(&base, &config.operation, &config.prefer, 0, 0)?;
        if let Some(cb) = &config.prefer.callback_url {
            if resolve(cb, cb).is_none() {
                return Err(Error::usage(format!("callbackUrl must be an absolute http(s) URL: {cb}")));
            }
        }
        Ok(Job {
            version: STATE_VERSION,
            config,
            base,
            state: State::Ready,
            status_url: None,
            medplum_cancel_url: None,
            cancel_fallback: None,
            separate_status: false,
            preference_applied: Vec::new(),
            started_at_ms: None,
            deadline_ms: None,
            polls: 0,
            failures: 0,
            backoff_attempt: 0,
            kickoff_attempts: 0,
            token_refreshed: false,
            awaiting_token: false,
            next_id: 1,
            in_flight: None,
            cancel_requested: false,
            cancel_sent: false,
            cancel_result: None,
            cleanup: None,
            cleanup_result: None,
            progress_message: None,
            progress_percent: None,
            partial: None,
            pages: None,
            refreshing: None,
            redirect_hops: 0,
            warnings: Vec::new(),
            last_refusal: None,
            seed: 0,
            token_memo: TokenMemo::default(),
            kickoff_memo: Memo(Some(kickoff)),
        })
    }

    /// Resumes a job saved with [`Job::to_json`] (protocol: resume). A request
    /// that was in flight when the state was saved is re-sent if it is safe to
    /// (polls, result fetches, cancels); a kick-off in flight is never replayed
    /// and turns into [`Error::KickoffIndeterminate`].
    pub fn from_json(json: &str) -> Result<Job, Error> {
        let mut job: Job = serde_json::from_slice::<Value>(json.as_bytes())
            .and_then(Job::deserialize)
            .map_err(|e| Error::usage(format!("not a saved job: {e}")))?;
        if job.version != STATE_VERSION {
            return Err(Error::usage(format!("saved job has state version {}, expected {STATE_VERSION}", job.version)));
        }
        if let Some(f) = job.in_flight.take() {
            match f.kind {
                RequestKind::Kickoff => {
                    job.state = State::Errored {
                        error: Error::KickoffIndeterminate {
                            message: "the process stopped while the kick-off was in flight".into(),
                        },
                    }
                }
                RequestKind::Cancel => job.cancel_sent = false,
                RequestKind::Cleanup => job.cleanup = Some(CleanupState::Requested),
                _ => {}
            }
        }
        Ok(job)
    }

    /// The whole state as JSON: status URL, counters, deadline, outcome.
    /// Contains no token.
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The configuration the job was created with.
    pub fn config(&self) -> &JobConfig {
        &self.config
    }

    /// The status URL, once the kick-off was accepted.
    pub fn status_url(&self) -> Option<&str> {
        self.status_url.as_deref()
    }

    /// `Preference-Applied` tokens the server echoed (protocol C5).
    pub fn preference_applied(&self) -> &[String] {
        &self.preference_applied
    }

    /// The outcome, once done.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.state {
            State::Done { outcome } => Some(outcome),
            _ => None,
        }
    }

    /// The error that stopped the job, if one did.
    pub fn error(&self) -> Option<&Error> {
        match &self.state {
            State::Errored { error } => Some(error),
            _ => None,
        }
    }

    /// Whether the job is over (done or errored).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done { .. } | State::Errored { .. })
    }

    /// What the cancel achieved, once answered.
    pub fn cancel_result(&self) -> Option<&CancelResult> {
        self.cancel_result.as_ref()
    }

    /// What `cleanup()` achieved, once answered.
    pub fn cleanup_result(&self) -> Option<&CleanupResult> {
        self.cleanup_result.as_ref()
    }

    /// Files listed so far by partial manifests on 202 (protocol B7).
    pub fn partial_manifest(&self) -> Option<&Manifest> {
        self.partial.as_ref()
    }

    /// Things worth telling a human that did not stop the job.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The token rule for this job's downloads.
    pub fn token_policy(&self) -> TokenPolicy {
        TokenPolicy { base_url: self.base.clone(), allowed_origins: self.config.allowed_origins.clone() }
    }

    /// The download plan for the finished job's manifest (or, while polling,
    /// for the files partial manifests listed so far).
    pub fn download_plan(&self) -> Vec<PlannedFile> {
        let from = self.status_url.as_deref().unwrap_or(&self.base);
        match (self.outcome(), &self.partial) {
            (Some(o), _) => {
                // An AsyncJob's `output` URLs (`Binary/{id}`) are relative to the
                // FHIR base, not to the status URL (Medplum, issue 10).
                let relative_to = match &o.result {
                    ResultBody::AsyncJob { .. } => &self.base,
                    _ => o.result_url.as_deref().unwrap_or(from),
                };
                o.manifest().map(|m| plan_downloads(m, relative_to, &self.token_policy())).unwrap_or_default()
            }
            (None, Some(p)) => plan_downloads(p, from, &self.token_policy()),
            (None, None) => Vec::new(),
        }
    }

    /// A snapshot for a progress bar.
    pub fn progress(&self, now_ms: u64) -> Progress {
        let phase = match &self.state {
            State::Ready => Phase::Pending,
            State::KickoffRetry { .. } => Phase::KickingOff,
            _ if self.in_flight.as_ref().is_some_and(|f| f.kind == RequestKind::Kickoff) => Phase::KickingOff,
            _ if self.cancel_requested && self.cancel_result.is_none() => Phase::Cancelling,
            State::Polling { .. } => Phase::Polling,
            State::Fetching { .. } => Phase::FetchingResult,
            State::Done { .. } => Phase::Done,
            State::Errored { .. } => Phase::Failed,
        };
        let next = match self.state {
            State::Polling { at_ms } if self.in_flight.is_none() => Some(at_ms),
            _ => None,
        };
        let percent = match &self.state {
            State::Done { outcome } if outcome.is_success() => Some(100.0),
            _ => self.progress_percent,
        };
        Progress {
            phase,
            message: self.progress_message.clone(),
            percent,
            polls: self.polls,
            next_poll_at_ms: next,
            next_poll_in_ms: next.map(|n| n.saturating_sub(now_ms)),
            status_url: self.status_url.clone(),
            partial_files: self.partial.as_ref().map_or(0, |p| p.output.len()),
            warning: self.warnings.last().cloned(),
        }
    }

    /// Asks for the job to be cancelled. Before the kick-off was sent this
    /// ends the job at once; afterwards the next action is the cancel request
    /// (DELETE on the status URL, or Medplum's `AsyncJob/{id}/$cancel`).
    /// On a finished job it does nothing.
    pub fn cancel(&mut self, _now_ms: u64) {
        if self.is_finished() || self.cancel_requested {
            return;
        }
        self.cancel_requested = true;
        if self.status_url.is_none() && self.in_flight.is_none() {
            self.finish(cancelled_outcome(None, None));
            self.cancel_result = Some(CancelResult::Cancelled { http_status: None });
        }
    }

    /// Asks for a DELETE of the status URL after the files were downloaded
    /// (protocol F3; Oracle asks for it). Only on a job that completed.
    pub fn cleanup(&mut self) -> Result<(), Error> {
        match (&self.state, &self.status_url) {
            (State::Done { outcome }, Some(_)) if outcome.status != OutcomeStatus::Cancelled => {
                if self.cleanup.is_none() && self.cleanup_result.is_none() {
                    self.cleanup = Some(CleanupState::Requested);
                }
                Ok(())
            }
            _ => Err(Error::usage("cleanup() needs a finished, not cancelled job with a status URL")),
        }
    }

    /// Re-fetches the manifest for fresh file URLs after they expired
    /// (protocol E4): one more GET of the status URL. If that does not yield
    /// a manifest, the old outcome stays.
    pub fn refresh_manifest(&mut self, now_ms: u64) -> Result<(), Error> {
        match &self.state {
            State::Done { outcome } if outcome.manifest().is_some() && self.status_url.is_some() => {
                self.refreshing = Some(outcome.clone());
                self.failures = 0;
                self.state = State::Polling { at_ms: now_ms };
                Ok(())
            }
            _ => Err(Error::usage("refresh_manifest() needs a finished job with a manifest")),
        }
    }

    /// Handles a verified callback (protocol G2, G3): if its `resultUrl` is on
    /// the status URL's origin, the job polls now to confirm with its own GET.
    pub fn handle_callback(&mut self, payload: &CallbackPayload, now_ms: u64) -> CallbackEffect {
        let ignored = |reason: &str| CallbackEffect::Ignored { reason: reason.to_owned() };
        let Some(status_url) = &self.status_url else {
            return ignored("the job has no status URL yet");
        };
        if let Some(r) = &payload.result_url {
            if !same_origin_urls(status_url, r) {
                return ignored("resultUrl is not on the status URL's origin; not trusted");
            }
        }
        match self.state {
            State::Polling { at_ms } if self.in_flight.is_none() => {
                self.state = State::Polling { at_ms: at_ms.min(now_ms) };
                CallbackEffect::Woken
            }
            _ => ignored("the job is not waiting to poll"),
        }
    }

    /// Brings the next status poll forward to `now_ms` (a user's "check now",
    /// or a restarted process that wants to know what happened while it was
    /// down). Returns whether anything changed: only a job waiting to poll is
    /// affected. Unlike an early wake, this overrides the server's
    /// `Retry-After` once, so use it sparingly.
    pub fn poll_now(&mut self, now_ms: u64) -> bool {
        match self.state {
            State::Polling { at_ms } if self.in_flight.is_none() && at_ms > now_ms => {
                self.state = State::Polling { at_ms: now_ms };
                true
            }
            _ => false,
        }
    }

    /// The next thing to do. Call it after every response and whenever a
    /// wait ends (early calls are harmless).
    pub fn next_action(&mut self, now_ms: u64) -> Result<Action, Error> {
        if let State::Errored { error } = &self.state {
            return Err(error.clone());
        }
        if let Some(f) = &self.in_flight {
            return Err(Error::usage(format!(
                "request {} is in flight; hand back its response (or transport error) first",
                f.id
            )));
        }
        if self.awaiting_token {
            self.awaiting_token = false;
            return Ok(Action::RefreshToken);
        }
        if let State::Done { outcome } = &self.state {
            if self.cleanup == Some(CleanupState::Requested) {
                if let Some(url) = self.status_url.clone() {
                    self.cleanup = Some(CleanupState::Sent);
                    return Ok(self.send(RequestKind::Cleanup, Method::Delete, url, true));
                }
            }
            return Ok(Action::Done { outcome: (**outcome).clone() });
        }
        if let Some(deadline) = self.deadline_ms {
            if now_ms >= deadline && self.refreshing.is_none() {
                return Err(self.fail(Error::DeadlineExceeded { deadline_ms: deadline }));
            }
        }
        if self.cancel_requested && !self.cancel_sent && self.cancel_result.is_none() {
            if let Some(status_url) = self.status_url.clone() {
                self.cancel_sent = true;
                let (method, url) = match (&self.cancel_fallback, &self.medplum_cancel_url) {
                    (Some(u), _) => (Method::Delete, u.clone()),
                    (None, Some(u)) => (Method::Post, u.clone()),
                    // `DELETE AsyncJob/{id}` deletes the job resource on Medplum: never a cancel.
                    (None, None) if is_asyncjob_url(&status_url) => {
                        self.cancel_requested = false;
                        let reason = format!("no cancel request is known for the status URL {status_url} (a DELETE would delete the AsyncJob, not cancel it)");
                        self.warnings.push(reason.clone());
                        self.cancel_result = Some(CancelResult::Rejected { http_status: 0, outcome: None });
                        return self.next_action(now_ms);
                    }
                    (None, None) => (Method::Delete, status_url),
                };
                return Ok(self.send(RequestKind::Cancel, method, url, true));
            }
        }
        match self.state.clone() {
            State::Ready => {
                self.started_at_ms = Some(now_ms);
                self.seed = derive_seed(self.config.retry.seed, &now_ms.to_le_bytes());
                self.deadline_ms = self.config.timeout_ms.map(|t| now_ms.saturating_add(t));
                self.send_kickoff()
            }
            State::KickoffRetry { at_ms } if now_ms < at_ms => Ok(self.wait(at_ms, now_ms)),
            State::KickoffRetry { .. } => self.send_kickoff(),
            State::Polling { at_ms } if now_ms < at_ms => Ok(self.wait(at_ms, now_ms)),
            State::Polling { .. } => {
                let url = self.status_url.clone().unwrap_or_default();
                self.polls += 1;
                Ok(self.send(RequestKind::Status, Method::Get, url, true))
            }
            State::Fetching { at_ms, .. } if now_ms < at_ms => Ok(self.wait(at_ms, now_ms)),
            State::Fetching { url, kind, auth, .. } => Ok(self.send(kind, Method::Get, url, auth)),
            State::Done { .. } | State::Errored { .. } => unreachable_state(),
        }
    }

    /// After [`Action::RefreshToken`], when no new token can be had (no token
    /// configured, or a fixed string): the job fails with
    /// [`Error::Unauthorized`] naming `reason` and the server's words, instead
    /// of sending the refused token again (H5).
    pub fn token_unavailable(&mut self, reason: &str) -> Error {
        self.awaiting_token = false;
        let (url, http_status, server_message) = self.last_refusal.take().unwrap_or_default();
        self.fail(Error::Unauthorized {
            http_status,
            url,
            server_message,
            reason: format!("the token was refused and no new one could be had ({reason})"),
        })
    }

    /// Hands back the response to request `id`. Returns an error only when
    /// the caller misuses the API (unknown id); what the server did is
    /// reflected in the next action.
    pub fn handle_response(&mut self, id: u64, response: Response, now_ms: u64) -> Result<(), Error> {
        let flight = self.take_in_flight(id)?;
        match flight.kind {
            RequestKind::Kickoff => self.on_kickoff(&flight, &response, now_ms),
            RequestKind::Status => self.on_status(&flight, &response, now_ms),
            RequestKind::Result => self.on_result(&flight, &response, now_ms),
            RequestKind::ManifestPage => self.on_page(&flight, &response, now_ms),
            RequestKind::Cancel => self.on_cancel(&response, now_ms),
            RequestKind::Cleanup => {
                self.cleanup = None;
                self.cleanup_result = Some(CleanupResult {
                    http_status: Some(response.status),
                    ok: (200..300).contains(&response.status) || matches!(response.status, 404 | 410),
                });
            }
            RequestKind::File => return Err(Error::usage("file responses go to FileDownload, not Job")),
        }
        Ok(())
    }

    /// Hands back a failure to get a response to request `id` (connection
    /// refused, reset, timeout). Polls are retried within the budget; a
    /// kick-off is retried only when it never left ([`TransportErrorKind::Connect`]).
    pub fn handle_transport_error(
        &mut self,
        id: u64,
        kind: TransportErrorKind,
        message: &str,
        now_ms: u64,
    ) -> Result<(), Error> {
        let flight = self.take_in_flight(id)?;
        let reason = format!("transport error on {}: {message}", flight.url);
        match flight.kind {
            RequestKind::Kickoff => match kind {
                TransportErrorKind::Connect => self.retry_kickoff(None, now_ms, &reason),
                TransportErrorKind::AfterSend => {
                    self.fail(Error::KickoffIndeterminate { message: message.to_owned() });
                }
            },
            RequestKind::Cancel => {
                self.cancel_sent = false;
                self.count_failure(&reason, None, now_ms);
            }
            RequestKind::Cleanup => {
                self.cleanup = None;
                self.cleanup_result = Some(CleanupResult { http_status: None, ok: false });
            }
            RequestKind::File => return Err(Error::usage("file errors go to FileDownload, not Job")),
            RequestKind::Status | RequestKind::Result | RequestKind::ManifestPage => {
                self.count_failure(&reason, None, now_ms)
            }
        }
        Ok(())
    }

    // ----- internals -------------------------------------------------------

    fn take_in_flight(&mut self, id: u64) -> Result<InFlight, Error> {
        match self.in_flight.take() {
            Some(f) if f.id == id => Ok(f),
            Some(f) => {
                let msg = format!("response for request {id}, but request {} is in flight", f.id);
                self.in_flight = Some(f);
                Err(Error::usage(msg))
            }
            None => Err(Error::usage(format!("response for request {id}, but no request is in flight"))),
        }
    }

    fn send(&mut self, kind: RequestKind, method: Method, url: String, auth: bool) -> Action {
        let id = self.next_id;
        self.next_id += 1;
        let accept = match kind {
            RequestKind::Status => "application/json",
            _ => "application/fhir+json",
        };
        let mut headers = vec![("Accept".to_owned(), accept.to_owned())];
        let mut body = None;
        if kind == RequestKind::Cancel && method == Method::Post {
            headers.push(("Content-Type".to_owned(), "application/fhir+json".to_owned()));
            body = Some(String::new());
        }
        // The token goes only to the FHIR origin or an allowed one (I2), never downgraded (I3/I4).
        let auth = auth && self.may_send_token(&url);
        self.in_flight = Some(InFlight { id, kind, url: url.clone() });
        Action::Send {
            request: Request {
                id,
                kind,
                method,
                url,
                headers,
                body,
                auth,
                timeout_ms: self.config.retry.request_timeout_ms,
            },
        }
    }

    fn send_kickoff(&mut self) -> Result<Action, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let timeout_ms = self.config.retry.request_timeout_ms;
        // The request `new` built is used once; a retried kick-off (429, connect failure) is rebuilt.
        let request = match self.kickoff_memo.0.take() {
            Some(built) => Request { id, timeout_ms, ..built },
            None => kickoff_for_base(&self.base, &self.config.operation, &self.config.prefer, id, timeout_ms)
                .map_err(|e| self.fail(e))?,
        };
        // An absolute operation path on another origin gets no token (I2).
        let auth = self.may_send_token(&request.url);
        self.in_flight = Some(InFlight { id, kind: RequestKind::Kickoff, url: request.url.clone() });
        Ok(Action::Send { request: Request { auth, ..request } })
    }

    fn wait(&self, at_ms: u64, now_ms: u64) -> Action {
        let until = match self.deadline_ms {
            Some(d) if self.refreshing.is_none() => at_ms.min(d),
            _ => at_ms,
        };
        Action::Wait { until_ms: until, delay_ms: until.saturating_sub(now_ms) }
    }

    fn fail(&mut self, error: Error) -> Error {
        self.in_flight = None;
        self.state = State::Errored { error: error.clone() };
        error
    }

    fn finish(&mut self, mut outcome: Outcome) {
        if let Some(mut old) = self.refreshing.take() {
            // A manifest refresh that did not produce a manifest keeps the old one.
            if outcome.manifest().is_none() {
                self.warnings.push(format!(
                    "manifest refresh returned no manifest ({}); keeping the previous one",
                    outcome.message.as_deref().unwrap_or("no message")
                ));
                old.warnings.clone_from(&self.warnings);
                self.state = State::Done { outcome: old };
                return;
            }
        }
        // `error` entries may arrive on a later manifest page than the first
        // (B7 paging): the merged manifest decides (C2).
        if outcome.status == OutcomeStatus::Completed
            && outcome.manifest().is_some_and(|m| m.error_files().next().is_some())
        {
            outcome.status = OutcomeStatus::CompletedWithErrors;
        }
        self.note_unrequested_types(&outcome);
        outcome.warnings.clone_from(&self.warnings);
        self.state = State::Done { outcome: Box::new(outcome) };
    }

    /// A server may ignore `_type`, `_typeFilter`, `_until`, `_outputFormat` or a
    /// POST body (Medplum honours only `_type` and `_since` in the query): say
    /// so when the manifest lists resource types that were not asked for (A4).
    fn note_unrequested_types(&mut self, outcome: &Outcome) {
        let (Operation::Export(req), Some(m)) = (&self.config.operation, outcome.manifest()) else {
            return;
        };
        if req.types.is_empty() {
            return;
        }
        let mut extra: Vec<&str> = Vec::new();
        for t in m.output.iter().filter_map(|f| f.resource_type.as_deref()) {
            if !req.types.iter().any(|r| r == t) && !extra.contains(&t) {
                extra.push(t);
            }
        }
        if !extra.is_empty() {
            self.warnings.push(format!(
                "the manifest lists resource types that were not asked for ({}; asked for {}): the server ignored part of the request",
                extra.join(", "),
                req.types.join(", ")
            ));
        }
    }

    fn retry_after(&mut self, response: &Response, now_ms: u64) -> RetryAfter {
        let value = response.header("Retry-After").or_else(|| response.header("X-RetryAfter"));
        let (delay, note) = read_retry_after(value, response.header("Date"), now_ms, &self.config.retry);
        if let Some(note) = note {
            self.warnings.push(note);
        }
        delay
    }

    /// The backoff before `attempt`, jittered with this job's own seed (B4).
    fn backoff(&self, attempt: u32) -> u64 {
        backoff_ms(&RetryPolicy { seed: self.seed, ..self.config.retry.clone() }, attempt)
    }

    /// Schedules the next poll after a "still running" answer.
    fn schedule_poll(&mut self, response: &Response, now_ms: u64) {
        let delay = match self.retry_after(response, now_ms) {
            RetryAfter::Delay(ms) => ms,
            RetryAfter::Absent => {
                let d = self.backoff(self.backoff_attempt);
                self.backoff_attempt = self.backoff_attempt.saturating_add(1);
                d
            }
        };
        self.state = State::Polling { at_ms: now_ms.saturating_add(delay) };
    }

    /// A failed attempt (5xx, 429, transient outcome, reset): retry the same
    /// request later, within the budget.
    fn count_failure(&mut self, reason: &str, response: Option<&Response>, now_ms: u64) {
        self.failures += 1;
        if self.failures > self.config.retry.max_retries {
            self.fail(Error::RetriesExhausted { attempts: self.failures, last: reason.to_owned() });
            return;
        }
        let delay = match response.map(|r| self.retry_after(r, now_ms)) {
            Some(RetryAfter::Delay(ms)) => ms,
            _ => self.backoff(self.failures - 1),
        };
        let at_ms = now_ms.saturating_add(delay);
        self.state = match std::mem::replace(&mut self.state, State::Ready) {
            State::Fetching { url, kind, auth, .. } => State::Fetching { url, kind, at_ms, auth },
            State::Done { outcome } => State::Done { outcome },
            State::Errored { error } => State::Errored { error },
            _ => State::Polling { at_ms },
        };
    }

    fn retry_kickoff(&mut self, response: Option<&Response>, now_ms: u64, reason: &str) {
        self.kickoff_attempts += 1;
        if self.kickoff_attempts > self.config.retry.max_kickoff_retries {
            self.fail(Error::RetriesExhausted { attempts: self.kickoff_attempts, last: reason.to_owned() });
            return;
        }
        let delay = match response.map(|r| self.retry_after(r, now_ms)) {
            Some(RetryAfter::Delay(ms)) => ms,
            _ => self.backoff(self.kickoff_attempts - 1),
        };
        self.state = State::KickoffRetry { at_ms: now_ms.saturating_add(delay) };
    }

    /// 401: ask for a fresh token once, then fail with `Unauthorized`.
    /// Returns true when the request should simply be repeated.
    fn on_unauthorized(&mut self, url: &str, response: &Response) -> bool {
        let server_message = server_text(&response.body);
        if self.token_refreshed {
            self.fail(Error::Unauthorized {
                http_status: response.status,
                url: url.to_owned(),
                server_message,
                reason: "the token was refused even after a token refresh".into(),
            });
            false
        } else {
            self.token_refreshed = true;
            self.awaiting_token = true;
            self.last_refusal = Some((url.to_owned(), response.status, server_message));
            true
        }
    }

    fn note_progress(&mut self, response: &Response) {
        if let Some(p) = response.header("X-Progress") {
            let text: String = p.chars().take(200).collect();
            self.progress_percent = parse_percent(&text).or(self.progress_percent);
            self.progress_message = Some(text);
        }
    }

    fn resolve_location(&mut self, from: &str, response: &Response) -> Result<Option<String>, Error> {
        let Some(loc) = response.header("Location") else {
            return Ok(None);
        };
        let url = resolve(from, loc)
            .ok_or_else(|| Error::protocol(format!("unusable Location {loc:?}"), Some(response.status)))?;
        if self.downgrades_base(&url) || is_downgrade(from, &url) {
            return Err(Error::InsecureUrl { url, reason: "https to http downgrade (protocol I3)".into() });
        }
        Ok(Some(url))
    }
}

impl Job {
    /// Whether `url`, an output of [`resolve`], is http under an https base (I4).
    /// Both strings are serialized by the `url` crate (the base by
    /// `normalized_base`), so their schemes are exact lower-case prefixes and
    /// no parse is needed.
    fn downgrades_base(&self, url: &str) -> bool {
        let downgrade = self.base.starts_with("https:") && url.starts_with("http:");
        debug_assert_eq!(downgrade, is_downgrade(&self.base, url), "{} -> {url}", self.base);
        downgrade
    }

    /// The one token rule for every request the job sends (I2–I4, the same
    /// as for files: [`TokenPolicy::may_send_token`]), memoized (see [`TokenMemo`]).
    fn may_send_token(&mut self, url: &str) -> bool {
        if let Some((last, allowed)) = &self.token_memo.0 {
            if last == url {
                return *allowed;
            }
        }
        let allowed = self.token_policy().may_send_token(url);
        self.token_memo.0 = Some((url.to_owned(), allowed));
        allowed
    }
}

fn unreachable_state() -> Result<Action, Error> {
    Err(Error::usage("internal: finished states are handled before dispatch"))
}

#[cfg(test)]
mod tests {
    use super::respond::{job_status_in, medplum_cancel_url};
    use super::{
        cancelled_outcome, tagged, Action, CancelResult, Error, Job, JobConfig, Operation, RequestKind, State,
    };

    // protocol I2: the token rule's answer is memoized per URL; the memo is
    // not state (left out of the saved job, rebuilt on demand with the same answers)
    #[test]
    fn token_memo_answers_per_url() {
        let mut job = Job::new(JobConfig {
            base_url: "https://h:443/fhir".into(),
            operation: Operation::Export(Default::default()),
            prefer: Default::default(),
            retry: Default::default(),
            timeout_ms: None,
            allowed_origins: vec!["https://files.example".into()],
        })
        .unwrap();
        let cases = [
            ("https://h/status/1", true),
            ("https://h/status/1", true),
            ("https://other/status/1", false),
            ("https://other/status/1", false),
            ("http://h/status/1", false),
            ("https://H:443/x", true),
            ("https://files.example/f", true),
            ("http://files.example/f", false),
            ("not a url", false),
        ];
        for (url, allowed) in cases {
            assert_eq!(job.may_send_token(url), allowed, "{url}");
            assert_eq!(job.token_memo.0, Some((url.to_owned(), allowed)), "the memo holds the last answer");
        }
        let saved = job.to_json();
        assert!(!saved.contains("not a url") && !saved.contains("Memo"), "the memo is not saved: {saved}");
        let mut resumed = Job::from_json(&saved).unwrap();
        assert_eq!(resumed.token_memo.0, None, "a resumed job starts with an empty memo");
        for (url, allowed) in cases {
            assert_eq!(resumed.may_send_token(url), allowed, "resumed: {url}");
        }
    }

    #[test]
    fn every_state_and_cancel_result_round_trips() {
        tagged::round_trip(&[
            CancelResult::Cancelled { http_status: Some(202) },
            CancelResult::Cancelled { http_status: None },
            CancelResult::AlreadyTerminal { job_status: Some("completed".into()), http_status: 400 },
            CancelResult::AlreadyTerminal { job_status: None, http_status: 404 },
            CancelResult::NotFound { http_status: 404 },
            CancelResult::Rejected { http_status: 400, outcome: Some(serde_json::json!({"issue": []})) },
            CancelResult::Rejected { http_status: 400, outcome: None },
        ]);
        tagged::round_trip(&[
            State::Ready,
            State::KickoffRetry { at_ms: 1 },
            State::Polling { at_ms: 2 },
            State::Fetching { url: "https://h/r".into(), kind: RequestKind::Result, at_ms: 3, auth: true },
            State::Done { outcome: Box::new(cancelled_outcome(Some(202), None)) },
            State::Errored { error: Error::usage("m") },
        ]);
    }

    #[test]
    fn poll_now_overrides_retry_after_once() {
        use crate::{ExportRequest, Response};
        let mut job = Job::new(JobConfig {
            base_url: "https://h/fhir".into(),
            operation: Operation::Export(ExportRequest::default()),
            prefer: Default::default(),
            retry: Default::default(),
            timeout_ms: None,
            allowed_origins: vec![],
        })
        .unwrap();
        let Ok(Action::Send { request }) = job.next_action(0) else { panic!() };
        job.handle_response(
            request.id,
            Response::new(202).with_header("Content-Location", "https://h/s").with_header("Retry-After", "600"),
            0,
        )
        .unwrap();
        assert!(matches!(job.next_action(10), Ok(Action::Wait { delay_ms: 599_990, .. })), "early wake is a no-op");
        assert!(job.poll_now(10));
        assert!(matches!(job.next_action(10), Ok(Action::Send { .. })));
        assert!(!job.poll_now(10), "nothing to bring forward while a request is in flight");
    }

    #[test]
    fn medplum_urls() {
        assert_eq!(
            medplum_cancel_url("https://api.medplum.com/fhir/R4/AsyncJob/abc123").as_deref(),
            Some("https://api.medplum.com/fhir/R4/AsyncJob/abc123/$cancel")
        );
        assert_eq!(medplum_cancel_url("https://h/fhir/$export-poll-status?_jobId=1"), None);
    }

    #[test]
    fn medplum_refusal_text() {
        assert_eq!(
            job_status_in("AsyncJob cannot be cancelled if status is not 'accepted', job had status 'completed'")
                .as_deref(),
            Some("completed")
        );
        assert_eq!(job_status_in("nope"), None);
    }

    fn export_job(seed_default: bool) -> Job {
        let mut retry = crate::RetryPolicy::default();
        if !seed_default {
            retry.seed = 7;
        }
        Job::new(JobConfig {
            base_url: "https://h/fhir".into(),
            operation: Operation::Export(Default::default()),
            prefer: Default::default(),
            retry,
            timeout_ms: None,
            allowed_origins: vec![],
        })
        .unwrap()
    }

    // protocol B4, issue 10 §3: 1,000 jobs that hit the same 503 at the same
    // moment do not retry in lockstep (the seed is derived per job)
    #[test]
    fn retries_of_many_jobs_spread() {
        use crate::Response;
        let delay_for = |i: usize| {
            let mut job = export_job(true);
            let Ok(Action::Send { request }) = job.next_action(0) else { panic!() };
            let accepted = Response::new(202).with_header("Content-Location", &format!("https://h/fhir/jobs/{i}"));
            job.handle_response(request.id, accepted, 0).unwrap();
            let Ok(Action::Send { request }) = job.next_action(3_600_000) else { panic!() };
            job.handle_response(request.id, Response::new(503), 3_600_000).unwrap();
            let Ok(Action::Wait { delay_ms, .. }) = job.next_action(3_600_000) else { panic!() };
            delay_ms
        };
        let delays: Vec<u64> = (0..1000).map(delay_for).collect();
        let min = *delays.iter().min().unwrap();
        let max = *delays.iter().max().unwrap();
        let mut distinct = delays.clone();
        distinct.sort_unstable();
        distinct.dedup();
        // Default policy: 1 s ± 20 %, floored at the 1 s minimum wait.
        assert!(distinct.len() > 150, "only {} distinct delays", distinct.len());
        assert!(min >= 1_000 && max <= 1_200 && max - min > 150, "{min}..{max}");
        // Deterministic: the same inputs give the same delay.
        assert_eq!((delay_for(0), delay_for(999)), (delays[0], delays[999]));
    }

    // protocol H5, issue 10 §2: with no way to refresh, the refused token is
    // not sent again, and the error has the server's words
    #[test]
    fn token_unavailable_fails_with_the_server_text() {
        use crate::Response;
        let mut job = export_job(false);
        let Ok(Action::Send { request }) = job.next_action(0) else { panic!() };
        let refused = Response::new(401).with_body(
            r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login","details":{"text":"Invalid token jwt malformed"}}]}"#,
        );
        job.handle_response(request.id, refused, 0).unwrap();
        assert_eq!(job.next_action(0).unwrap(), Action::RefreshToken);
        let err = job.token_unavailable("no token was configured");
        let text = err.to_string();
        assert!(text.contains("Invalid token jwt malformed") && text.contains("no token was configured"), "{text}");
        assert!(!text.contains("even after a token refresh"), "{text}");
        assert_eq!(job.next_action(0).unwrap_err(), err, "nothing more is sent");
    }
}
