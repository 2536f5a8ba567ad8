//! What a caller reads from a job: its configuration, status URL, outcome or error, warnings, the
//! token rule, the download plan and a progress snapshot.

use super::state::{Phase3, State};
use super::types::{CancelResult, CleanupResult, JobConfig};
use super::Job;
use crate::http::Request;
use crate::http::RequestKind;
use crate::kickoff::{kickoff_for_base, kickoff_form, IgVersion, Operation};
use crate::manifest::{plan_downloads, Manifest, PlannedFile, TokenPolicy};
use crate::outcome::{Outcome, ResultBody};
use crate::progress::{Phase, Progress};
use crate::Error;

impl Job {
    /// The configuration the job was created with.
    pub fn config(&self) -> &JobConfig {
        &self.config
    }

    /// The status URL, once the kick-off was accepted.
    pub fn status_url(&self) -> Option<&str> {
        self.status_url.as_deref()
    }

    /// The Bulk Data version the export's kick-off speaks (protocol L2): the configured one, or
    /// for `auto` what the server's CapabilityStatement declared (`stu3` when nothing newer);
    /// `None` for any other operation and for `auto` before the CapabilityStatement was read.
    /// After a 405 to the GET kick-off, `stu4` for `auto` (it was sent again in that form).
    pub fn ig_version(&self) -> Option<IgVersion> {
        if self.needs_capabilities() {
            return None;
        }
        match kickoff_form(&self.config.operation, self.declared_version, self.get_refused).as_ref() {
            Operation::Export(e) => Some(e.ig_version),
            Operation::Operation(_) => None,
        }
    }

    /// The kick-off request in the form this job sends it, and has sent it once it was accepted:
    /// for an `auto` export the form the server's CapabilityStatement declared (an STU4 POST with
    /// a `Parameters` body, or STU3's), a POST after a 405 to the GET (L2). What a log records as
    /// sent (N4). It never holds a token: `auth` says whether the binding added `Authorization`.
    /// `None` for an `auto` export before the CapabilityStatement was read (undecided). The `id`
    /// is 0 (a description, not a request to send).
    pub fn kickoff_request(&self) -> Option<Request> {
        if self.needs_capabilities() {
            return None;
        }
        let op = kickoff_form(&self.config.operation, self.declared_version, self.get_refused);
        let r = kickoff_for_base(&self.base, &op, &self.config.prefer, 0, self.config.retry.request_timeout_ms).ok()?;
        let auth = self.token_policy().may_send_token(&r.url);
        Some(Request { auth, max_body: Some(self.config.retry.max_response_bytes), ..r })
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
}
