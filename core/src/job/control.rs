//! What the caller may ask of a job besides driving it: cancel, cleanup, a
//! manifest refresh, a callback, "poll now", "no new token", and the
//! sub-states these move (cancel, cleanup, token).

use super::respond::cancelled_outcome;
use super::state::{Cancel, Cleanup, Phase3, Refusal, State, TokenPhase};
use super::types::{CallbackEffect, CancelResult, CleanupResult};
use super::Job;
use crate::callback::CallbackPayload;
use crate::http::Response;
use crate::origin::same_origin_urls;
use crate::outcome::{server_text, OutcomeStatus};
use crate::Error;

impl Job {
    /// Asks for the job to be cancelled. Before the kick-off was sent this
    /// ends the job at once; afterwards the next action is the cancel request
    /// (DELETE on the status URL, or Medplum's `AsyncJob/{id}/$cancel`).
    /// On a finished job it does nothing.
    pub fn cancel(&mut self, _now_ms: u64) {
        // Once asked, a cancel stands, unless the server refused it (then it may be asked again).
        if self.is_finished() || Cancel::in_effect(&self.cancel) {
            return;
        }
        let fallback = self.cancel.take().and_then(|c| c.fallback);
        self.cancel = Some(Cancel { phase: Phase3::Asked, result: None, fallback });
        if self.status_url.is_none() && self.in_flight.is_none() {
            self.finish(cancelled_outcome(None, None));
            self.answer_cancel(CancelResult::Cancelled { http_status: None });
        }
    }

    /// Asks for a DELETE of the status URL after the files were downloaded
    /// (protocol F3; Oracle asks for it). Only on a job that completed.
    pub fn cleanup(&mut self) -> Result<(), Error> {
        match (&self.state, &self.status_url) {
            (State::Done { outcome }, Some(_)) if outcome.status != OutcomeStatus::Cancelled => {
                if self.cleanup.is_none() {
                    self.cleanup = Some(Cleanup { phase: Phase3::Asked, result: None });
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
                self.refresh_error = None;
                self.refresh_running = 0;
                self.failures = 0;
                self.state = State::Polling { at_ms: now_ms };
                Ok(())
            }
            _ => Err(Error::usage("refresh_manifest() needs a finished job with a manifest")),
        }
    }

    /// Sets this run's overall deadline: `timeout_ms` from `now_ms` (`None`:
    /// none). A job resumed in a later process keeps the deadline its first
    /// run set (possibly long past); a caller that gives the resumed run a
    /// timeout of its own calls this, so that run's waits, polls and manifest
    /// refreshes (K8) are bounded by it. Saved with the job.
    pub fn set_timeout(&mut self, timeout_ms: Option<u64>, now_ms: u64) {
        self.config.timeout_ms = timeout_ms;
        self.deadline_ms = timeout_ms.map(|t| now_ms.saturating_add(t));
    }

    /// Why the last [`Job::refresh_manifest`] ended without a manifest, when
    /// it failed (retries, a deadline, a body over its ceiling): the job kept
    /// its outcome (K8), and the files that needed fresh links fail with this
    /// cause ([`crate::Downloads::manifest_refresh_failed`]).
    pub fn refresh_error(&self) -> Option<&Error> {
        self.refresh_error.as_ref()
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

    /// After [`crate::Action::RefreshToken`], when no new token can be had (no token
    /// configured, or a fixed string): the job fails with
    /// [`Error::Unauthorized`] naming `reason` and the server's words, instead
    /// of sending the refused token again (H5).
    pub fn token_unavailable(&mut self, reason: &str) -> Error {
        self.token = TokenPhase::Renewed;
        let r = self.refusal.take();
        self.fail(Error::Unauthorized {
            http_status: r.as_ref().map_or(401, |r| r.http_status),
            url: r.as_ref().map(|r| r.url.clone()).unwrap_or_default(),
            server_message: r.and_then(|r| r.server_message),
            reason: format!("authorization was refused and no new token could be had ({reason})"),
        })
    }

    /// A cancel request that failed in transit (or was in flight at a restart) is asked again.
    pub(super) fn cancel_sent_to_asked(&mut self) {
        if let Some(c @ Cancel { phase: Phase3::Sent, .. }) = &mut self.cancel {
            c.phase = Phase3::Asked;
        }
    }

    pub(super) fn answer_cancel(&mut self, result: CancelResult) {
        let fallback = self.cancel.take().and_then(|c| c.fallback);
        self.cancel = Some(Cancel { phase: Phase3::Answered, result: Some(result), fallback });
    }

    pub(super) fn answer_cleanup(&mut self, result: CleanupResult) {
        self.cleanup = Some(Cleanup { phase: Phase3::Answered, result: Some(result) });
    }

    /// 401: ask for a fresh token once, then fail with `Unauthorized`.
    /// Returns true when the request should simply be repeated.
    pub(super) fn on_unauthorized(&mut self, url: &str, response: &Response) -> bool {
        let server_message = server_text(&response.body);
        if self.token == TokenPhase::Renewed {
            self.fail(Error::Unauthorized {
                http_status: response.status,
                url: url.to_owned(),
                server_message,
                reason: "the token was refused even after a token refresh".into(),
            });
            false
        } else {
            self.token = TokenPhase::Refused;
            self.refusal = Some(Refusal { url: url.to_owned(), http_status: response.status, server_message });
            true
        }
    }

    /// The token worked (a 2xx, a 202 ...): a later 401 may ask for a new one again.
    pub(super) fn token_accepted(&mut self) {
        self.token = TokenPhase::Accepted;
        self.refusal = None;
    }
}
