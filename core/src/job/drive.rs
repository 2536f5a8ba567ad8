//! Driving a job: the next action, and the answers (a response, a transport failure, a body too
//! large) handed back to it.

use super::respond::{cancelled_outcome, is_asyncjob_url};
use super::state::{Cancel, Cleanup, InFlight, Phase3, State, TokenPhase};
use super::types::{Action, CancelResult, CleanupResult};
use super::Job;
use crate::http::{Method, RequestKind, Response, TransportErrorKind};
use crate::retry::derive_seed;
use crate::Error;

impl Job {
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
        // A cancel asked while the CapabilityStatement (L2) or a kick-off that was then refused
        // (405, 429, 401) was in flight: nothing was started, so nothing more is sent.
        if matches!(self.state, State::Ready | State::KickoffRetry { .. })
            && matches!(self.cancel, Some(Cancel { phase: Phase3::Asked, .. }))
        {
            self.finish(cancelled_outcome(None, None));
            self.answer_cancel(CancelResult::Cancelled { http_status: None });
            return self.next_action(now_ms);
        }
        match self.state.clone() {
            State::Ready => {
                // Started once: reading the CapabilityStatement first (L2) is part of the job.
                if self.started_at_ms.is_none() {
                    self.started_at_ms = Some(now_ms);
                    self.seed = derive_seed(self.config.retry.seed, &now_ms.to_le_bytes());
                    self.deadline_ms = self.config.timeout_ms.map(|t| now_ms.saturating_add(t));
                }
                if self.needs_capabilities() {
                    let url = format!("{}metadata", self.base);
                    return Ok(self.send(RequestKind::Capabilities, Method::Get, url, true));
                }
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
            RequestKind::Capabilities => self.on_capabilities(&response),
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
            RequestKind::Capabilities => self.capabilities_unknown(&reason),
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
            RequestKind::Capabilities => self.capabilities_unknown(&error.to_string()),
            _ => {
                self.fail(error);
            }
        }
        Ok(())
    }

    pub(super) fn take_in_flight(&mut self, id: u64) -> Result<InFlight, Error> {
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
}

fn unreachable_state() -> Result<Action, Error> {
    Err(Error::usage("internal: finished states are handled before dispatch"))
}
