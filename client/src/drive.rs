//! Driving a job over HTTP: the engine decides, this moves bytes and sleeps.

use crate::stop::Stop;
use crate::token::TokenProvider;
use crate::transport::{Transport, TransportFailure};
use crate::{now_ms, ClientError};
use fhir_async::{Action, Job, Outcome, Progress, Request, Response, TransportErrorKind};
use std::sync::mpsc;
use std::time::Duration;

/// Where a drive may stop before the job is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// Only when the job is done.
    Done,
    /// Once the kick-off was accepted (the status URL is known).
    Accepted,
    /// At this Unix ms, if the job is waiting then.
    Time(u64),
}

/// The HTTP side of a client, shared by its jobs and download threads.
#[derive(Clone)]
pub(crate) struct Io {
    pub transport: Transport,
    pub token: std::sync::Arc<dyn TokenProvider>,
    pub stop: Stop,
}

// no token, no transport internals: only the type shows
impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io").finish_non_exhaustive()
    }
}

impl Io {
    /// The token for a request the engine wants authorized.
    pub fn token_for(&self, request: &Request) -> Result<Option<String>, crate::token::TokenUnavailable> {
        if request.auth {
            self.token.token()
        } else {
            Ok(None)
        }
    }

    /// Sends a job request on a helper thread, so a stop is seen while a slow
    /// server (or a long poll) holds the answer.
    fn send_stoppable(&self, request: &Request, token: Option<String>) -> Option<Result<Response, TransportFailure>> {
        let (tx, rx) = mpsc::channel();
        let transport = self.transport.clone();
        let r = request.clone();
        std::thread::spawn(move || {
            let _ = tx.send(transport.send(&r, token.as_deref()));
        });
        loop {
            match rx.recv_timeout(crate::stop::TICK) {
                Ok(res) => return Some(res),
                Err(mpsc::RecvTimeoutError::Timeout) if self.stop.is_stopped() => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Some(Err(TransportFailure {
                        kind: TransportErrorKind::AfterSend,
                        message: "the HTTP thread ended without an answer".into(),
                        too_large: false,
                    }))
                }
            }
        }
    }

    /// Runs the job's actions until `until`; `Ok(None)` when it stopped early.
    pub fn drive(
        &self,
        job: &mut Job,
        until: Until,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<Option<Outcome>, ClientError> {
        loop {
            if self.stop.is_stopped() {
                return Err(ClientError::Stopped);
            }
            if until == Until::Accepted && job.status_url().is_some() {
                return Ok(None);
            }
            let now = now_ms();
            match job.next_action(now)? {
                Action::Send { request } => {
                    let token = match self.token_for(&request) {
                        Ok(t) => t,
                        Err(reason) => {
                            let _ =
                                job.handle_transport_error(request.id, TransportErrorKind::Connect, "no token", now);
                            return Err(token_error(job, reason));
                        }
                    };
                    match self.send_stoppable(&request, token) {
                        Some(Ok(response)) => job.handle_response(request.id, response, now_ms())?,
                        Some(Err(f)) if f.too_large => job.response_too_large(request.id, now_ms())?,
                        Some(Err(f)) => job.handle_transport_error(request.id, f.kind, &f.message, now_ms())?,
                        None => {
                            // The answer will never be read: the engine treats the request
                            // as failed after sending (a kick-off is never replayed).
                            job.handle_transport_error(request.id, TransportErrorKind::AfterSend, "stopped", now_ms())?;
                            return Err(ClientError::Stopped);
                        }
                    }
                    on_progress(&job.progress(now_ms()));
                }
                Action::Wait { until_ms, .. } => {
                    on_progress(&job.progress(now));
                    let wake = match until {
                        Until::Time(t) if t < until_ms => {
                            if now >= t {
                                return Ok(None);
                            }
                            t
                        }
                        _ => until_ms,
                    };
                    if self.stop.sleep(Duration::from_millis(wake.saturating_sub(now))) {
                        return Err(ClientError::Stopped);
                    }
                }
                Action::RefreshToken => {
                    if let Err(reason) = self.token.refresh() {
                        return Err(token_error(job, reason));
                    }
                }
                Action::Done { outcome } => return Ok(Some(outcome)),
            }
        }
    }
}

/// No token: the authorization server's refusal reaches the caller typed
/// ([`ClientError::Auth`], code `auth`, its `error`/`error_description`) and
/// leaves the job as it was, to be resumed once a token can be had (issue 12);
/// any other reason fails the job with `unauthorized` (H5).
fn token_error(job: &mut Job, reason: crate::token::TokenUnavailable) -> ClientError {
    match reason.auth_error() {
        Some(a) => ClientError::Auth(a.clone()),
        None => job.token_unavailable(&reason.reason()).into(),
    }
}
