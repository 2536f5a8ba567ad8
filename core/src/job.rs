//! The job state machine: kick-off, polling, completion, cancel, cleanup,
//! resume. See the crate docs for the state diagram and the driving loop.

use crate::callback::CallbackPayload;
use crate::http::{Method, Request, RequestKind, Response, TransportErrorKind};
use crate::kickoff::{build_kickoff, normalized_base, Operation, PreferOptions};
use crate::manifest::{plan_downloads, Manifest, PlannedFile, TokenPolicy};
use crate::origin::{is_downgrade, resolve, same_origin_urls};
use crate::outcome::{
    asyncjob_manifest, entry_status, is_transient_outcome, outcome_is_error, outcome_text, parse_body, resource_type,
    Body, Delivery, Outcome, OutcomeStatus, ResultBody,
};
use crate::progress::{parse_percent, Phase, Progress};
use crate::retry::{backoff_ms, parse_http_date_ms, parse_retry_after, RetryAfter, RetryPolicy};
use crate::Error;
use serde::{Deserialize, Serialize};
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase", rename_all_fields = "camelCase")]
enum State {
    Ready,
    KickoffRetry { at_ms: u64 },
    Polling { at_ms: u64 },
    Fetching { url: String, kind: RequestKind, at_ms: u64, auth: bool },
    Done { outcome: Box<Outcome> },
    Errored { error: Error },
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
}

const STATE_VERSION: u32 = 1;
const MAX_REDIRECTS: u32 = 5;
const MAX_PAGES: u32 = 10_000;

impl Job {
    /// Creates a job. Validates the configuration (base URL, export
    /// parameters) so misuse surfaces before anything is sent.
    pub fn new(config: JobConfig) -> Result<Job, Error> {
        let base = normalized_base(&config.base_url)?;
        // Build once to validate; the real request is built at kick-off time.
        build_kickoff(&base, &config.operation, &config.prefer, 0, 0)?;
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
        })
    }

    /// Resumes a job saved with [`Job::to_json`] (protocol: resume). A request
    /// that was in flight when the state was saved is re-sent if it is safe to
    /// (polls, result fetches, cancels); a kick-off in flight is never replayed
    /// and turns into [`Error::KickoffIndeterminate`].
    pub fn from_json(json: &str) -> Result<Job, Error> {
        let mut job: Job = serde_json::from_str(json).map_err(|e| Error::usage(format!("not a saved job: {e}")))?;
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
            (Some(o), _) => o
                .manifest()
                .map(|m| plan_downloads(m, o.result_url.as_deref().unwrap_or(from), &self.token_policy()))
                .unwrap_or_default(),
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
        }
    }

    /// Asks for the job to be cancelled. Before the kick-off was sent this
    /// ends the job at once; afterwards the next action is the cancel request
    /// (DELETE on the status URL, or Medplum's `AsyncJob/{id}/$cancel`).
    /// On a finished job it does nothing.
    pub fn cancel(&mut self, now_ms: u64) {
        if self.is_finished() || self.cancel_requested {
            return;
        }
        self.cancel_requested = true;
        if self.status_url.is_none() && self.in_flight.is_none() {
            self.finish(cancelled_outcome(None, None), now_ms);
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
                    return Ok(self.send(RequestKind::Cleanup, Method::Delete, url, true, now_ms));
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
                let (method, url) = match &self.medplum_cancel_url {
                    Some(u) => (Method::Post, u.clone()),
                    None => (Method::Delete, status_url),
                };
                return Ok(self.send(RequestKind::Cancel, method, url, true, now_ms));
            }
        }
        match self.state.clone() {
            State::Ready => {
                self.started_at_ms = Some(now_ms);
                self.deadline_ms = self.config.timeout_ms.map(|t| now_ms.saturating_add(t));
                self.send_kickoff(now_ms)
            }
            State::KickoffRetry { at_ms } if now_ms < at_ms => Ok(self.wait(at_ms, now_ms)),
            State::KickoffRetry { .. } => self.send_kickoff(now_ms),
            State::Polling { at_ms } if now_ms < at_ms => Ok(self.wait(at_ms, now_ms)),
            State::Polling { .. } => {
                let url = self.status_url.clone().unwrap_or_default();
                self.polls += 1;
                Ok(self.send(RequestKind::Status, Method::Get, url, true, now_ms))
            }
            State::Fetching { at_ms, .. } if now_ms < at_ms => Ok(self.wait(at_ms, now_ms)),
            State::Fetching { url, kind, auth, .. } => Ok(self.send(kind, Method::Get, url, auth, now_ms)),
            State::Done { .. } | State::Errored { .. } => unreachable_state(),
        }
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

    fn send(&mut self, kind: RequestKind, method: Method, url: String, auth: bool, _now_ms: u64) -> Action {
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
        // The token goes only to the FHIR origin (I2), never downgraded (I3/I4).
        let auth = auth && self.token_policy().may_send_token(&url) && same_origin_urls(&self.base, &url);
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

    fn send_kickoff(&mut self, now_ms: u64) -> Result<Action, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let _ = now_ms;
        let request = build_kickoff(
            &self.base,
            &self.config.operation,
            &self.config.prefer,
            id,
            self.config.retry.request_timeout_ms,
        )
        .map_err(|e| self.fail(e))?;
        self.in_flight = Some(InFlight { id, kind: RequestKind::Kickoff, url: request.url.clone() });
        Ok(Action::Send { request })
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

    fn finish(&mut self, outcome: Outcome, _now_ms: u64) {
        if let Some(old) = self.refreshing.take() {
            // A manifest refresh that did not produce a manifest keeps the old one.
            if outcome.manifest().is_none() {
                self.warnings.push(format!(
                    "manifest refresh returned no manifest ({}); keeping the previous one",
                    outcome.message.as_deref().unwrap_or("no message")
                ));
                self.state = State::Done { outcome: old };
                return;
            }
        }
        self.state = State::Done { outcome: Box::new(outcome) };
    }

    fn retry_after(&self, response: &Response, now_ms: u64) -> RetryAfter {
        let value = response.header("Retry-After").or_else(|| response.header("X-RetryAfter"));
        parse_retry_after(value, response.header("Date"), now_ms, &self.config.retry)
    }

    /// Schedules the next poll after a "still running" answer.
    fn schedule_poll(&mut self, response: &Response, now_ms: u64) {
        let delay = match self.retry_after(response, now_ms) {
            RetryAfter::Delay(ms) => ms,
            RetryAfter::Absent => {
                let d = backoff_ms(&self.config.retry, self.backoff_attempt);
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
            _ => backoff_ms(&self.config.retry, self.failures - 1),
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
            _ => backoff_ms(&self.config.retry, self.kickoff_attempts - 1),
        };
        self.state = State::KickoffRetry { at_ms: now_ms.saturating_add(delay) };
    }

    /// 401: ask for a fresh token once, then fail with `Unauthorized`.
    /// Returns true when the request should simply be repeated.
    fn on_unauthorized(&mut self, url: &str, status: u16) -> bool {
        if self.token_refreshed {
            self.fail(Error::Unauthorized { http_status: status, url: url.to_owned() });
            false
        } else {
            self.token_refreshed = true;
            self.awaiting_token = true;
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
        if is_downgrade(&self.base, &url) || is_downgrade(from, &url) {
            return Err(Error::InsecureUrl { url, reason: "https to http downgrade (protocol I3)".into() });
        }
        Ok(Some(url))
    }

    fn on_kickoff(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
        let status = response.status;
        match status {
            202 => {
                self.token_refreshed = false;
                let url = match self.status_url_from(flight, response) {
                    Ok(u) => u,
                    Err(e) => {
                        self.fail(e);
                        return;
                    }
                };
                if !same_origin_urls(&url, &self.base) {
                    self.warnings.push(format!("the status URL {url} is not on the base URL's origin; the token is not sent to it (divergence 4)"));
                }
                self.preference_applied = response.header_list("Preference-Applied");
                self.separate_status = self.config.prefer.separate_export_status
                    && self.preference_applied.iter().any(|p| p.eq_ignore_ascii_case("separate-export-status"));
                self.medplum_cancel_url = medplum_cancel_url(&url);
                self.status_url = Some(url);
                self.note_progress(response);
                self.schedule_poll(response, now_ms);
            }
            200 | 201 | 204 => {
                self.token_refreshed = false;
                let outcome = self.classify_final(response, Delivery::Sync, &flight.url);
                match outcome {
                    Classified::Final(o) => self.finish(o, now_ms),
                    Classified::Running => {
                        self.fail(Error::protocol(
                            "the kick-off answered a running job without a status URL",
                            Some(status),
                        ));
                    }
                    Classified::Broken(e) => {
                        self.fail(e);
                    }
                }
            }
            303 => match self.resolve_location(&flight.url, response) {
                Ok(Some(url)) => {
                    let auth = same_origin_urls(&url, &self.base);
                    self.state = State::Fetching { url, kind: RequestKind::Result, at_ms: now_ms, auth };
                }
                Ok(None) => {
                    self.fail(Error::protocol("303 without Location", Some(status)));
                }
                Err(e) => {
                    self.fail(e);
                }
            },
            429 => self.retry_kickoff(Some(response), now_ms, "429 Too Many Requests on kick-off"),
            401 => {
                // The server refused the kick-off outright, so sending it again is safe.
                if self.on_unauthorized(&flight.url, status) {
                    self.state = State::KickoffRetry { at_ms: now_ms };
                }
            }
            400..=599 => {
                let o = failure_outcome(response, Delivery::Sync, Some(flight.url.clone()));
                self.finish(o, now_ms);
            }
            _ => {
                self.fail(Error::protocol(format!("unexpected kick-off status {status}"), Some(status)));
            }
        }
    }

    fn status_url_from(&mut self, flight: &InFlight, response: &Response) -> Result<String, Error> {
        let header = response.header("Content-Location").or_else(|| response.header("Location"));
        let candidate = match header {
            Some(h) => Some(h.to_owned()),
            None => match parse_body(&response.body) {
                // Medplum echoes the status URL in issue[0].diagnostics (divergence 2).
                Body::Json(v) if resource_type(&v) == Some("OperationOutcome") => v
                    .get("issue")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i.get("diagnostics").and_then(Value::as_str))
                    .find(|d| d.starts_with("http://") || d.starts_with("https://"))
                    .map(str::to_owned),
                _ => None,
            },
        };
        let Some(raw) = candidate else {
            return Err(Error::protocol(
                "202 without Content-Location, Location or a status URL in an OperationOutcome (in a browser, the server may not expose Content-Location via Access-Control-Expose-Headers)",
                Some(202),
            ));
        };
        let url = resolve(&flight.url, &raw)
            .ok_or_else(|| Error::protocol(format!("unusable status URL {raw:?}"), Some(202)))?;
        if is_downgrade(&self.base, &url) {
            return Err(Error::InsecureUrl {
                url,
                reason: "an http: status URL under an https: base (protocol I4)".into(),
            });
        }
        Ok(url)
    }

    fn on_status(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
        let status = response.status;
        if self.separate_status && matches!(status, 200 | 400..=599) {
            return self.on_separate_status(flight, response, now_ms);
        }
        match status {
            202 => {
                self.ok_response();
                self.note_progress(response);
                if let Body::Json(v) = parse_body(&response.body) {
                    self.note_running_body(v, now_ms);
                    if self.is_finished() {
                        return;
                    }
                }
                self.schedule_poll(response, now_ms);
            }
            200 | 204 => {
                self.ok_response();
                self.note_progress(response);
                match self.classify_final(response, Delivery::Inline, &flight.url) {
                    Classified::Final(o) => self.complete(o, now_ms),
                    Classified::Running => self.schedule_poll(response, now_ms),
                    Classified::Broken(e) => {
                        self.fail(e);
                    }
                }
            }
            303 => match self.resolve_location(&flight.url, response) {
                Ok(Some(url)) => {
                    self.ok_response();
                    self.redirect_hops = 0;
                    let auth = same_origin_urls(&url, &self.base);
                    self.state = State::Fetching { url, kind: RequestKind::Result, at_ms: now_ms, auth };
                }
                Ok(None) => {
                    self.fail(Error::protocol("303 See Other without Location", Some(303)));
                }
                Err(e) => {
                    self.fail(e);
                }
            },
            401 => {
                if self.on_unauthorized(&flight.url, status) {
                    self.state = State::Polling { at_ms: now_ms };
                }
            }
            404 | 410 if self.cancel_requested => {
                self.finish(cancelled_outcome(Some(status), json_of(response)), now_ms)
            }
            429 => self.count_failure("429 Too Many Requests on the status URL", Some(response), now_ms),
            400..=599 => self.on_status_error(response, now_ms),
            _ => {
                self.fail(Error::protocol(format!("unexpected status-poll status {status}"), Some(status)));
            }
        }
    }

    fn on_separate_status(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
        let status = response.status;
        match status {
            200 => {
                self.ok_response();
                self.note_progress(response);
                let export_status = response
                    .header("X-Export-Status")
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|s| s.parse::<u16>().ok());
                match export_status {
                    Some(202) => self.schedule_poll(response, now_ms),
                    Some(s) if s >= 400 => {
                        let mut o = failure_outcome(response, Delivery::Inline, Some(flight.url.clone()));
                        o.http_status = Some(s);
                        self.finish(o, now_ms);
                    }
                    _ => match self.classify_final(response, Delivery::Inline, &flight.url) {
                        Classified::Final(o) => self.complete(o, now_ms),
                        Classified::Running => self.schedule_poll(response, now_ms),
                        Classified::Broken(e) => {
                            self.fail(e);
                        }
                    },
                }
            }
            401 => {
                if self.on_unauthorized(&flight.url, status) {
                    self.state = State::Polling { at_ms: now_ms };
                }
            }
            404 | 410 if self.cancel_requested => {
                self.finish(cancelled_outcome(Some(status), json_of(response)), now_ms)
            }
            // A bare 4xx/5xx means the poll itself failed (protocol B5).
            _ => self.count_failure(&format!("status poll answered {status}"), Some(response), now_ms),
        }
    }

    /// 4xx/5xx on the status URL: transient (retry) or the job failed (H1, H2).
    fn on_status_error(&mut self, response: &Response, now_ms: u64) {
        let status = response.status;
        match parse_body(&response.body) {
            Body::Json(v) if resource_type(&v) == Some("OperationOutcome") => {
                if is_transient_outcome(&v) {
                    self.count_failure(&format!("{status} with a transient OperationOutcome"), Some(response), now_ms);
                } else {
                    let url = self.status_url.clone();
                    self.finish(failure_outcome(response, Delivery::Inline, url), now_ms);
                }
            }
            _ if matches!(status, 404 | 410) => {
                let url = self.status_url.clone();
                let mut o = failure_outcome(response, Delivery::Inline, url);
                o.message = Some(format!(
                    "the status URL answered {status}: the job is gone (expired, or cancelled elsewhere)"
                ));
                self.finish(o, now_ms);
            }
            // Gateway pages, empty 502/503/504: infrastructure, not the job (H2).
            _ => self.count_failure(&format!("{status} without an OperationOutcome"), Some(response), now_ms),
        }
    }

    fn ok_response(&mut self) {
        self.failures = 0;
        self.token_refreshed = false;
    }

    /// A JSON body on a 202: a partial manifest (only when asked for, B7 and
    /// divergence 9), or an AsyncJob whose status may already be terminal.
    fn note_running_body(&mut self, v: Value, now_ms: u64) {
        match resource_type(&v) {
            Some("AsyncJob") if v.get("status").and_then(Value::as_str) != Some("accepted") => {
                let url = self.status_url.clone();
                let o = asyncjob_outcome(v, 202, url);
                self.complete(o, now_ms);
            }
            None if self.partial_manifests_requested() => {
                if let Ok(m) = Manifest::from_value(v) {
                    match &mut self.partial {
                        Some(p) => p.merge_page(m),
                        None => self.partial = Some(m),
                    }
                }
            }
            _ => {}
        }
    }

    fn partial_manifests_requested(&self) -> bool {
        matches!(&self.config.operation, Operation::Export(e) if e.allow_partial_manifests == Some(true))
    }

    /// A final outcome arrived; if it is a paged manifest, fetch the pages first.
    fn complete(&mut self, outcome: Outcome, now_ms: u64) {
        if let Some(next) = outcome.manifest().and_then(Manifest::next_link).map(str::to_owned) {
            let from = outcome.result_url.clone().unwrap_or_default();
            match resolve(&from, &next) {
                Some(url) if !is_downgrade(&self.base, &url) => {
                    let auth = same_origin_urls(&url, &self.base);
                    self.pages = Some(Box::new(outcome));
                    self.state = State::Fetching { url, kind: RequestKind::ManifestPage, at_ms: now_ms, auth };
                    return;
                }
                _ => {
                    self.fail(Error::InsecureUrl { url: next, reason: "unusable or downgraded manifest link".into() });
                    return;
                }
            }
        }
        self.finish(outcome, now_ms);
    }

    fn on_page(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
        match response.status {
            200 => {
                self.ok_response();
                let page = match Manifest::parse(&response.body) {
                    Ok(p) => p,
                    Err(e) => {
                        self.fail(Error::protocol(format!("manifest page {}: {e}", flight.url), Some(200)));
                        return;
                    }
                };
                let Some(mut pending) = self.pages.take() else {
                    self.fail(Error::usage("manifest page without a pending manifest"));
                    return;
                };
                if let ResultBody::Manifest { manifest } = &mut pending.result {
                    manifest.merge_page(page);
                }
                self.redirect_hops += 1;
                if self.redirect_hops > MAX_PAGES {
                    self.fail(Error::protocol("manifest paging does not end", Some(200)));
                    return;
                }
                self.complete(*pending, now_ms);
            }
            401 => {
                if self.on_unauthorized(&flight.url, 401) {
                    self.set_fetch_time(now_ms);
                }
            }
            429 | 500..=599 => {
                self.count_failure(&format!("manifest page answered {}", response.status), Some(response), now_ms)
            }
            s => {
                self.fail(Error::protocol(format!("manifest page {} answered {s}", flight.url), Some(s)));
            }
        }
    }

    fn set_fetch_time(&mut self, now_ms: u64) {
        if let State::Fetching { at_ms, .. } = &mut self.state {
            *at_ms = now_ms;
        }
    }

    fn on_result(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
        let status = response.status;
        match status {
            300..=399 if status != 304 => {
                // The result itself may move (storage): follow by hand, token only on the base origin.
                self.redirect_hops += 1;
                if self.redirect_hops > MAX_REDIRECTS {
                    self.fail(Error::protocol("too many redirects fetching the result", Some(status)));
                    return;
                }
                match self.resolve_location(&flight.url, response) {
                    Ok(Some(url)) => {
                        let auth = matches!(&self.state, State::Fetching { auth: true, .. })
                            && same_origin_urls(&url, &flight.url);
                        self.state = State::Fetching { url, kind: RequestKind::Result, at_ms: now_ms, auth };
                    }
                    Ok(None) => {
                        self.fail(Error::protocol(format!("{status} without Location"), Some(status)));
                    }
                    Err(e) => {
                        self.fail(e);
                    }
                }
            }
            401 => {
                if self.on_unauthorized(&flight.url, status) {
                    self.set_fetch_time(now_ms);
                }
            }
            429 => self.count_failure("429 on the result URL", Some(response), now_ms),
            200..=299 => {
                self.ok_response();
                let o = match self.classify_final(response, Delivery::Redirect, &flight.url) {
                    Classified::Final(o) => o,
                    Classified::Running | Classified::Broken(_) => Outcome {
                        status: OutcomeStatus::Completed,
                        delivery: Delivery::Redirect,
                        http_status: Some(status),
                        result: raw_body(response),
                        message: None,
                        expires: None,
                        expires_at_ms: None,
                        result_url: Some(flight.url.clone()),
                    },
                };
                // Redirect mode: the target's HTTP status is the operation's status (C4),
                // so a 2xx is a success whatever the body looks like.
                let status = if o.status == OutcomeStatus::Failed { OutcomeStatus::Completed } else { o.status };
                self.complete(Outcome { status, ..o }, now_ms);
            }
            // H4: 4xx/5xx on the result URL is the operation's own failure.
            _ => self.finish(failure_outcome(response, Delivery::Redirect, Some(flight.url.clone())), now_ms),
        }
    }

    fn on_cancel(&mut self, response: &Response, now_ms: u64) {
        let status = response.status;
        let oo = json_of(response).filter(|v| resource_type(v) == Some("OperationOutcome"));
        let text = oo.as_ref().and_then(outcome_text).unwrap_or_default();
        let medplum = self.medplum_cancel_url.is_some();
        let result = match status {
            200..=299 if !oo.as_ref().is_some_and(outcome_is_error) => {
                CancelResult::Cancelled { http_status: Some(status) }
            }
            401 => {
                if self.on_unauthorized(self.status_url.clone().as_deref().unwrap_or(""), status) {
                    self.cancel_sent = false;
                }
                return;
            }
            429 | 500..=599 => {
                self.cancel_sent = false;
                self.count_failure(&format!("cancel answered {status}"), Some(response), now_ms);
                return;
            }
            404 | 410 if medplum || has_issue_code(oo.as_ref(), "not-found") => {
                CancelResult::NotFound { http_status: status }
            }
            404 | 409 | 410 => CancelResult::AlreadyTerminal { job_status: None, http_status: status },
            _ => match job_status_in(&text) {
                Some(s) => CancelResult::AlreadyTerminal { job_status: Some(s), http_status: status },
                None if has_issue_code(oo.as_ref(), "not-found") => CancelResult::NotFound { http_status: status },
                None => CancelResult::Rejected { http_status: status, outcome: oo.clone() },
            },
        };
        self.ok_response();
        self.cancel_result = Some(result.clone());
        match result {
            CancelResult::Cancelled { http_status } => {
                // Stop polling at once (protocol F2).
                self.finish(cancelled_outcome(http_status, oo), now_ms);
            }
            CancelResult::NotFound { .. } | CancelResult::AlreadyTerminal { .. } => {
                // Poll once more to learn how the job ended.
                if !matches!(self.state, State::Done { .. }) {
                    self.state = State::Polling { at_ms: now_ms };
                }
            }
            CancelResult::Rejected { .. } => {
                self.cancel_requested = false;
                self.warnings.push(format!("the server refused to cancel ({status}): {text}"));
                if !matches!(self.state, State::Polling { .. } | State::Fetching { .. }) {
                    self.state = State::Polling { at_ms: now_ms };
                }
            }
        }
    }

    fn classify_final(&mut self, response: &Response, delivery: Delivery, url: &str) -> Classified {
        let status = response.status;
        let (expires, expires_at_ms) = match response.header("Expires") {
            Some(e) => (Some(e.to_owned()), parse_http_date_ms(e)),
            None => (None, None),
        };
        let base = |st, result, message| Outcome {
            status: st,
            delivery,
            http_status: Some(status),
            result,
            message,
            expires: expires.clone(),
            expires_at_ms,
            result_url: Some(url.to_owned()),
        };
        let v = match parse_body(&response.body) {
            Body::Empty => {
                if delivery == Delivery::Inline {
                    return Classified::Broken(Error::protocol("a 200 status response with no body", Some(status)));
                }
                return Classified::Final(base(OutcomeStatus::Completed, ResultBody::Empty, None));
            }
            Body::NotJson => {
                if delivery == Delivery::Inline {
                    return Classified::Broken(Error::protocol("a 200 status response that is not JSON", Some(status)));
                }
                return Classified::Final(base(OutcomeStatus::Completed, raw_body(response), None));
            }
            Body::Json(v) => v,
        };
        match resource_type(&v).map(str::to_owned).as_deref() {
            None => match Manifest::from_value(v) {
                Ok(manifest) => {
                    let has_errors = manifest.error_files().next().is_some();
                    let message = manifest.message.clone();
                    if manifest.output.is_empty() && message.is_some() {
                        self.warnings.push(format!("the server says: {}", message.clone().unwrap_or_default()));
                    }
                    let st = if has_errors { OutcomeStatus::CompletedWithErrors } else { OutcomeStatus::Completed };
                    Classified::Final(base(st, ResultBody::Manifest { manifest }, message))
                }
                Err(e) => Classified::Broken(Error::protocol(e.to_string(), Some(status))),
            },
            Some("AsyncJob") => {
                if v.get("status").and_then(Value::as_str) == Some("accepted") {
                    return Classified::Running;
                }
                let mut o = asyncjob_outcome(v, status, Some(url.to_owned()));
                o.delivery = delivery;
                Classified::Final(o)
            }
            Some("Bundle") => {
                let es = entry_status(&v);
                let is_async_bundle = v.get("type").and_then(Value::as_str) == Some("batch-response");
                let failed = is_async_bundle && es.is_some_and(|s| s >= 400);
                let message = if failed {
                    v.pointer("/entry/0/response/outcome")
                        .and_then(outcome_text)
                        .or_else(|| v.pointer("/entry/0/response/status").and_then(Value::as_str).map(str::to_owned))
                } else {
                    None
                };
                let st = if failed { OutcomeStatus::Failed } else { OutcomeStatus::Completed };
                Classified::Final(base(st, ResultBody::Bundle { bundle: v, entry_status: es }, message))
            }
            Some("OperationOutcome") => {
                let failed = outcome_is_error(&v);
                let message = outcome_text(&v);
                let st = if failed { OutcomeStatus::Failed } else { OutcomeStatus::Completed };
                Classified::Final(base(st, ResultBody::OperationOutcome { outcome: v }, message))
            }
            Some(_) => Classified::Final(base(OutcomeStatus::Completed, ResultBody::Resource { resource: v }, None)),
        }
    }
}

#[allow(clippy::large_enum_variant)] // short-lived, never stored
enum Classified {
    Final(Outcome),
    Running,
    Broken(Error),
}

fn unreachable_state() -> Result<Action, Error> {
    Err(Error::usage("internal: finished states are handled before dispatch"))
}

fn json_of(response: &Response) -> Option<Value> {
    match parse_body(&response.body) {
        Body::Json(v) => Some(v),
        _ => None,
    }
}

fn raw_body(response: &Response) -> ResultBody {
    if response.body.is_empty() {
        ResultBody::Empty
    } else {
        ResultBody::Text {
            text: String::from_utf8_lossy(&response.body).into_owned(),
            content_type: response.header("Content-Type").map(str::to_owned),
        }
    }
}

fn has_issue_code(oo: Option<&Value>, code: &str) -> bool {
    oo.and_then(|v| v.get("issue"))
        .and_then(Value::as_array)
        .is_some_and(|issues| issues.iter().any(|i| i.get("code").and_then(Value::as_str) == Some(code)))
}

/// Medplum's refusal text: "... job had status 'completed'".
fn job_status_in(text: &str) -> Option<String> {
    let rest = &text[text.find("had status '")? + "had status '".len()..];
    let end = rest.find('\'')?;
    let s = &rest[..end];
    (!s.is_empty() && s.len() < 40).then(|| s.to_owned())
}

/// `.../AsyncJob/{id}` → `.../AsyncJob/{id}/$cancel` (seed 000).
fn medplum_cancel_url(status_url: &str) -> Option<String> {
    let u = url::Url::parse(status_url).ok()?;
    let segs: Vec<&str> = u.path_segments()?.collect();
    let n = segs.len();
    if n >= 2 && segs[n - 2] == "AsyncJob" && !segs[n - 1].is_empty() {
        let mut c = u.clone();
        c.set_query(None);
        c.set_path(&format!("{}/$cancel", u.path().trim_end_matches('/')));
        Some(c.to_string())
    } else {
        None
    }
}

fn cancelled_outcome(http_status: Option<u16>, body: Option<Value>) -> Outcome {
    Outcome {
        status: OutcomeStatus::Cancelled,
        delivery: Delivery::None,
        http_status,
        result: match body {
            Some(v) if resource_type(&v) == Some("OperationOutcome") => ResultBody::OperationOutcome { outcome: v },
            _ => ResultBody::Empty,
        },
        message: Some("cancelled".into()),
        expires: None,
        expires_at_ms: None,
        result_url: None,
    }
}

fn failure_outcome(response: &Response, delivery: Delivery, url: Option<String>) -> Outcome {
    let body = json_of(response);
    let (result, message) = match body {
        Some(v) if resource_type(&v) == Some("OperationOutcome") => {
            let m = outcome_text(&v);
            (ResultBody::OperationOutcome { outcome: v }, m)
        }
        Some(v) if resource_type(&v).is_some() => (ResultBody::Resource { resource: v }, None),
        _ => (raw_body(response), None),
    };
    Outcome {
        status: OutcomeStatus::Failed,
        delivery,
        http_status: Some(response.status),
        result,
        message: message.or_else(|| Some(format!("the server answered {}", response.status))),
        expires: None,
        expires_at_ms: None,
        result_url: url,
    }
}

fn asyncjob_outcome(job: Value, http_status: u16, url: Option<String>) -> Outcome {
    let job_status = job.get("status").and_then(Value::as_str).unwrap_or("").to_owned();
    let status = match job_status.as_str() {
        "completed" => OutcomeStatus::Completed,
        "cancelled" => OutcomeStatus::Cancelled,
        _ => OutcomeStatus::Failed,
    };
    let manifest = asyncjob_manifest(&job);
    let message = match status {
        OutcomeStatus::Failed => Some(format!("AsyncJob status {job_status:?}")),
        _ => None,
    };
    Outcome {
        status,
        delivery: Delivery::Inline,
        http_status: Some(http_status),
        result: ResultBody::AsyncJob { job, job_status, manifest },
        message,
        expires: None,
        expires_at_ms: None,
        result_url: url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
