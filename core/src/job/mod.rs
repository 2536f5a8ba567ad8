//! The job state machine: kick-off, polling, completion, cancel, cleanup,
//! resume. See the crate docs for the state diagram and the driving loop.

mod control;
mod respond;
mod state;
#[cfg(test)]
mod tests;
mod timing;
mod types;

use state::{Cancel, Cleanup, InFlight, Memo, Phase3, Refusal, State, TokenMemo, TokenPhase};
pub use types::{Action, CallbackEffect, CancelResult, CleanupResult, JobConfig};

use crate::http::{Method, Request, RequestKind, Response, TransportErrorKind};
use crate::kickoff::{kickoff_for_base, normalized_base, Operation};
use crate::manifest::{plan_downloads, Manifest, PlannedFile, TokenPolicy};
use crate::origin::{is_downgrade, resolve};
use crate::outcome::{Outcome, OutcomeStatus, ResultBody};
use crate::progress::{parse_percent, Phase, Progress};
use crate::retry::derive_seed;
use crate::Error;
use respond::is_asyncjob_url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    token: TokenPhase,
    /// The last 401, for [`Job::token_unavailable`]'s error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refusal: Option<Refusal>,
    next_id: u64,
    in_flight: Option<InFlight>,
    cancel: Option<Cancel>,
    cleanup: Option<Cleanup>,
    progress_message: Option<String>,
    progress_percent: Option<f64>,
    partial: Option<Manifest>,
    pages: Option<Box<Outcome>>,
    refreshing: Option<Box<Outcome>>,
    /// Redirects followed for the current result fetch (C4).
    redirect_hops: u32,
    /// Manifest pages fetched (B7).
    page_count: u32,
    warnings: Vec<String>,
    /// The jitter seed: the policy's, mixed with the start time and then the
    /// status URL, so jobs that fail together do not retry together (B4).
    #[serde(default)]
    seed: u64,
    /// Each file's progress (done, or part-way with a checkpoint), recorded by
    /// the binding's downloads so a resumed job never fetches a finished file
    /// again (K5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    files: Vec<crate::coordinator::FileRecord>,
    /// The token rule's last answer (see [`TokenMemo`]).
    #[serde(skip)]
    token_memo: TokenMemo,
    /// The kick-off request `new` built to validate the configuration, taken to send it.
    #[serde(skip)]
    kickoff_memo: Memo<Request>,
    /// Why the last manifest refresh failed (K8): the job kept its result.
    #[serde(skip)]
    refresh_error: Option<Error>,
    /// "Still running" answers to the current manifest refresh (K8).
    #[serde(skip)]
    refresh_running: u32,
}

/// 2: cancel, cleanup and the token are sub-states (version 1 kept them as flags).
const STATE_VERSION: u32 = 2;

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
            separate_status: false,
            preference_applied: Vec::new(),
            started_at_ms: None,
            deadline_ms: None,
            polls: 0,
            failures: 0,
            backoff_attempt: 0,
            kickoff_attempts: 0,
            token: TokenPhase::Accepted,
            refusal: None,
            next_id: 1,
            in_flight: None,
            cancel: None,
            cleanup: None,
            progress_message: None,
            progress_percent: None,
            partial: None,
            pages: None,
            refreshing: None,
            redirect_hops: 0,
            page_count: 0,
            warnings: Vec::new(),
            seed: 0,
            files: Vec::new(),
            token_memo: TokenMemo::default(),
            kickoff_memo: Memo(Some(kickoff)),
            refresh_error: None,
            refresh_running: 0,
        })
    }

    /// A job for an operation that was started elsewhere, known only by its
    /// status URL (a command line's `status URL`, a manifest URL to download
    /// from): no kick-off; the first action polls `status_url` at once.
    pub fn attach(config: JobConfig, status_url: &str) -> Result<Job, Error> {
        let mut job = Job::new(config)?;
        let url = resolve(&job.base, status_url)
            .ok_or_else(|| Error::usage(format!("not an http(s) status URL: {status_url}")))?;
        if job.downgrades_base(&url) {
            return Err(Error::InsecureUrl {
                url,
                reason: "an http: status URL under an https: base (protocol I4)".into(),
            });
        }
        job.medplum_cancel_url = respond::medplum_cancel_url(&url);
        job.seed = derive_seed(job.config.retry.seed, url.as_bytes());
        job.status_url = Some(url);
        job.kickoff_memo = Memo(None);
        job.state = State::Polling { at_ms: 0 };
        Ok(job)
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
        // The records are sorted by name (record_file's binary search); a state
        // written otherwise is put in order, the later record of a name winning.
        if !job.files.windows(2).all(|w| w[0].file_name < w[1].file_name) {
            for r in std::mem::take(&mut job.files) {
                job.record_file(r);
            }
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
                RequestKind::Cancel => job.cancel_sent_to_asked(),
                RequestKind::Cleanup => job.cleanup = Some(Cleanup { phase: Phase3::Asked, result: None }),
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
        self.cancel.as_ref().and_then(|c| c.result.as_ref())
    }

    /// What `cleanup()` achieved, once answered.
    pub fn cleanup_result(&self) -> Option<&CleanupResult> {
        self.cleanup.as_ref().and_then(|c| c.result.as_ref())
    }

    /// Files listed so far by partial manifests on 202 (protocol B7).
    pub fn partial_manifest(&self) -> Option<&Manifest> {
        self.partial.as_ref()
    }

    /// Each file's recorded progress (K5).
    pub fn file_records(&self) -> &[crate::coordinator::FileRecord] {
        &self.files
    }

    /// Records files' progress (replacing earlier records of the same files;
    /// of two records of one file in `records`, the later wins).
    ///
    /// A merge of two lists sorted by name, no hash map: the browser build
    /// pays for every map type (issue 14), and 100,000 records merge in one pass.
    pub fn record_files(&mut self, mut records: Vec<crate::coordinator::FileRecord>) {
        if records.is_empty() {
            return;
        }
        // Stable sorts: after the reverse, the latest record of a name comes first and is kept.
        records.reverse();
        records.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        records.dedup_by(|later, kept| later.file_name == kept.file_name);
        let mut old = std::mem::take(&mut self.files);
        old.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        let mut merged = Vec::with_capacity(old.len() + records.len());
        let mut new = records.into_iter().peekable();
        for o in old {
            while new.peek().is_some_and(|n| n.file_name < o.file_name) {
                merged.extend(new.next());
            }
            match new.peek() {
                Some(n) if n.file_name == o.file_name => merged.extend(new.next()),
                _ => merged.push(o),
            }
        }
        merged.extend(new);
        self.files = merged;
    }

    /// Records one file's progress, replacing its earlier record: a binary
    /// search in the name-sorted records (no sort, no map: a binding records
    /// each part handed out, and the browser build pays for every sort; K5).
    pub fn record_file(&mut self, record: crate::coordinator::FileRecord) {
        match self.files.binary_search_by(|r| r.file_name.cmp(&record.file_name)) {
            Ok(i) => self.files[i] = record,
            Err(i) => self.files.insert(i, record),
        }
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
            _ if self.cancel.as_ref().is_some_and(|c| c.phase != Phase3::Answered) => Phase::Cancelling,
            State::Polling { .. } => Phase::Polling,
            State::Fetching { .. } => Phase::FetchingResult,
            State::Done { .. } => Phase::Done,
            State::Errored { .. } => Phase::Failed,
        };
        let next = match self.state {
            // A kick-off waiting out a 429 shows its next attempt the same way (A9).
            State::Polling { at_ms } | State::KickoffRetry { at_ms } if self.in_flight.is_none() => Some(at_ms),
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
        if self.token == TokenPhase::Refused {
            self.token = TokenPhase::Renewed;
            return Ok(Action::RefreshToken);
        }
        if let State::Done { outcome } = &self.state {
            if let (Some(c @ Cleanup { phase: Phase3::Asked, .. }), Some(url)) =
                (&mut self.cleanup, self.status_url.clone())
            {
                c.phase = Phase3::Sent;
                return Ok(self.send(RequestKind::Cleanup, Method::Delete, url, true));
            }
            return Ok(Action::Done { outcome: (**outcome).clone() });
        }
        if let Some(deadline) = self.deadline_ms {
            // The deadline covers a manifest refresh too (K8): it ends the refresh, not the result.
            if now_ms >= deadline {
                return Err(self.fail(Error::DeadlineExceeded { deadline_ms: deadline }));
            }
        }
        let fallback = match &self.cancel {
            Some(Cancel { phase: Phase3::Asked, fallback, .. }) => Some(fallback.clone()),
            _ => None,
        };
        if let Some(fallback) = fallback {
            if let Some(status_url) = self.status_url.clone() {
                if let Some(c) = &mut self.cancel {
                    c.phase = Phase3::Sent;
                }
                let (method, url) = match (&fallback, &self.medplum_cancel_url) {
                    (Some(u), _) => (Method::Delete, u.clone()),
                    (None, Some(u)) => (Method::Post, u.clone()),
                    // `DELETE AsyncJob/{id}` deletes the job resource on Medplum: never a cancel.
                    (None, None) if is_asyncjob_url(&status_url) => {
                        let reason = format!("no cancel request is known for the status URL {status_url} (a DELETE would delete the AsyncJob, not cancel it)");
                        self.warnings.push(reason);
                        self.answer_cancel(CancelResult::Rejected { http_status: 0, outcome: None });
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
            RequestKind::Cleanup => self.answer_cleanup(CleanupResult {
                http_status: Some(response.status),
                ok: (200..300).contains(&response.status) || matches!(response.status, 404 | 410),
            }),
            RequestKind::File => return Err(Error::usage("file responses go to FileDownload, not Job")),
            RequestKind::Auth => return Err(Error::usage("authorization responses go to TokenSession, not Job")),
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
        // Neither the URL nor a transport library's text quoting it keeps a query (K10).
        let message = &crate::origin::redact_text(message);
        let reason = format!("transport error on {}: {message}", crate::origin::redact_url(&flight.url));
        match flight.kind {
            RequestKind::Kickoff => match kind {
                TransportErrorKind::Connect => self.retry_kickoff(None, now_ms, &reason),
                TransportErrorKind::AfterSend => {
                    self.fail(Error::KickoffIndeterminate { message: message.to_owned() });
                }
            },
            RequestKind::Cancel => {
                self.cancel_sent_to_asked();
                self.count_failure(&reason, None, now_ms);
            }
            RequestKind::Cleanup => self.answer_cleanup(CleanupResult { http_status: None, ok: false }),
            RequestKind::File => return Err(Error::usage("file errors go to FileDownload, not Job")),
            RequestKind::Auth => return Err(Error::usage("authorization errors go to TokenSession, not Job")),
            RequestKind::Status | RequestKind::Result | RequestKind::ManifestPage => {
                self.count_failure(&reason, None, now_ms)
            }
        }
        Ok(())
    }

    /// The body of the response to request `id` was longer than the
    /// request's `max_body` (protocol K9): the binding stopped reading. A
    /// status, manifest or result answer that big is a broken server: the job
    /// ends with [`Error::ResponseTooLarge`] (a manifest refresh's ends only
    /// the refresh, K8). A kick-off's answer is treated the same: it was sent.
    pub fn response_too_large(&mut self, id: u64, _now_ms: u64) -> Result<(), Error> {
        let flight = self.take_in_flight(id)?;
        let error = Error::ResponseTooLarge {
            url: crate::origin::redact_url(&flight.url),
            limit: self.config.retry.max_response_bytes,
        };
        match flight.kind {
            RequestKind::File | RequestKind::Auth => {
                return Err(Error::usage("file and authorization answers do not go to Job"));
            }
            RequestKind::Cancel => {
                self.cancel_sent_to_asked();
                self.fail(error);
            }
            RequestKind::Cleanup => self.answer_cleanup(CleanupResult { http_status: None, ok: false }),
            _ => {
                self.fail(error);
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
                max_body: Some(self.config.retry.max_response_bytes),
            },
        }
    }

    fn send_kickoff(&mut self) -> Result<Action, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let timeout_ms = self.config.retry.request_timeout_ms;
        let max_body = Some(self.config.retry.max_response_bytes);
        // The request `new` built is used once; a retried kick-off (429, connect failure) is rebuilt.
        let request = match self.kickoff_memo.0.take() {
            Some(built) => Request { id, timeout_ms, max_body, ..built },
            None => Request {
                max_body,
                ..kickoff_for_base(&self.base, &self.config.operation, &self.config.prefer, id, timeout_ms)
                    .map_err(|e| self.fail(e))?
            },
        };
        // An absolute operation path on another origin gets no token (I2).
        let auth = self.may_send_token(&request.url);
        self.in_flight = Some(InFlight { id, kind: RequestKind::Kickoff, url: request.url.clone() });
        Ok(Action::Send { request: Request { auth, ..request } })
    }

    fn fail(&mut self, error: Error) -> Error {
        self.in_flight = None;
        if let Some(old) = self.refreshing.take() {
            // A manifest refresh never changes a finished job's outcome (K8): the job keeps
            // its result; the files that needed fresh links fail with this cause instead.
            self.refresh_error = Some(error.clone());
            self.state = State::Done { outcome: old };
            return error;
        }
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
            // The fresh links in the first manifest's order: file i stays file i (K6).
            if let (Some(first), Some(fresh)) = (old.manifest(), outcome.manifest_mut()) {
                let (aligned, notes) = std::mem::take(fresh).aligned_to(first);
                *fresh = aligned;
                self.warnings.extend(notes);
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
