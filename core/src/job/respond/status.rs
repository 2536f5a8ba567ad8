//! The status URL's answers: still running (202, X-Progress, a partial manifest or AsyncJob), a
//! final body, a transient or final error (protocol B, H1, H2).

use super::cancel::cancelled_outcome;
use super::classify::{failure_outcome, json_of, Classified};
use super::medplum::{asyncjob_finished, asyncjob_outcome};
use crate::http::{RequestKind, Response};
use crate::job::state::{Cancel, InFlight, State};
use crate::job::Job;
use crate::kickoff::Operation;
use crate::manifest::Manifest;
use crate::outcome::{is_transient_outcome, parse_body, resource_type, Body, Delivery};
use crate::progress::parse_percent;
use crate::Error;
use serde_json::Value;

impl Job {
    pub(in crate::job) fn on_status(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
        let status = response.status;
        // Separate-export-status mode changes what 200 and a bare error mean;
        // 401 and a 404 after our own cancel mean the same in both modes.
        let shared = status == 401 || (matches!(status, 404 | 410) && Cancel::in_effect(&self.cancel));
        if self.separate_status && matches!(status, 200 | 400..=599) && !shared {
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
                self.on_final_body(flight, response, now_ms);
            }
            303 => match self.resolve_location(&flight.url, response) {
                Ok(Some(url)) => {
                    self.ok_response();
                    self.redirect_hops = 0;
                    let auth = self.may_send_token(&url);
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
                if self.on_unauthorized(&flight.url, response) {
                    self.state = State::Polling { at_ms: now_ms };
                }
            }
            404 | 410 if Cancel::in_effect(&self.cancel) => {
                self.finish(cancelled_outcome(Some(status), json_of(response)))
            }
            429 => self.count_failure("429 Too Many Requests on the status URL", Some(response), now_ms),
            400..=599 => self.on_status_error(response, now_ms),
            _ => {
                self.fail(Error::protocol(format!("unexpected status-poll status {status}"), Some(status)));
            }
        }
    }

    pub(in crate::job) fn on_separate_status(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
        if response.status != 200 {
            // A bare 4xx/5xx means the poll itself failed (protocol B5).
            let reason = format!("status poll answered {}", response.status);
            return self.count_failure(&reason, Some(response), now_ms);
        }
        self.ok_response();
        self.note_progress(response);
        let export_status = response.header("X-Export-Status").and_then(export_status_code);
        match export_status {
            Some(202) => self.schedule_poll(response, now_ms),
            Some(s) if s >= 400 => {
                let mut o = failure_outcome(response, Delivery::Inline, Some(flight.url.clone()));
                o.http_status = Some(s);
                self.finish(o);
            }
            _ => self.on_final_body(flight, response, now_ms),
        }
    }

    /// A 200 from the status URL: the result, or (Medplum) a job still running.
    pub(in crate::job) fn on_final_body(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
        match self.classify_final(response, Delivery::Inline, &flight.url) {
            Classified::Final(o) => self.complete(o, now_ms),
            Classified::Running => self.schedule_poll(response, now_ms),
            Classified::Broken(e) => {
                self.fail(e);
            }
        }
    }

    /// 4xx/5xx on the status URL: transient (retry) or the job failed (H1, H2).
    pub(in crate::job) fn on_status_error(&mut self, response: &Response, now_ms: u64) {
        let status = response.status;
        match parse_body(&response.body) {
            Body::Json(v) if resource_type(&v) == Some("OperationOutcome") => {
                if is_transient_outcome(&v) {
                    self.count_failure(&format!("{status} with a transient OperationOutcome"), Some(response), now_ms);
                } else {
                    let url = self.status_url.clone();
                    self.finish(failure_outcome(response, Delivery::Inline, url));
                }
            }
            _ if matches!(status, 404 | 410) => {
                let url = self.status_url.clone();
                let mut o = failure_outcome(response, Delivery::Inline, url);
                o.message = Some(format!(
                    "the status URL answered {status}: the job is gone (expired, or cancelled elsewhere)"
                ));
                self.finish(o);
            }
            // Gateway pages, empty 502/503/504: infrastructure, not the job (H2).
            _ => self.count_failure(&format!("{status} without an OperationOutcome"), Some(response), now_ms),
        }
    }

    pub(in crate::job) fn ok_response(&mut self) {
        self.failures = 0;
        self.token_accepted();
    }

    /// A JSON body on a 202: a partial manifest (only when asked for, B7 and
    /// divergence 9), or an AsyncJob whose status may already be terminal.
    pub(in crate::job) fn note_running_body(&mut self, v: Value, now_ms: u64) {
        match resource_type(&v) {
            // Medplum's job route answers 202 while `accepted`/`active`, and also once `cancelled`.
            Some("AsyncJob") if asyncjob_finished(&v) => {
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

    pub(in crate::job) fn partial_manifests_requested(&self) -> bool {
        matches!(&self.config.operation, Operation::Export(e) if e.allow_partial_manifests == Some(true))
    }
}

impl Job {
    pub(in crate::job) fn note_progress(&mut self, response: &Response) {
        if let Some(p) = response.header("X-Progress") {
            let text: String = p.chars().take(200).collect();
            self.progress_percent = parse_percent(&text).or(self.progress_percent);
            self.progress_message = Some(text);
        }
    }
}

/// The code of an `X-Export-Status` value: `202`, `202 Accepted`, ` 200 OK` (protocol L8:
/// code and phrase, `^\s*(\d{3})`); three digits and no fourth, else none.
pub(in crate::job) fn export_status_code(value: &str) -> Option<u16> {
    let v = value.trim_start().as_bytes();
    let three = v.get(..3).filter(|d| d.iter().all(u8::is_ascii_digit))?;
    if v.get(3).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(three.iter().fold(0, |n, d| n * 10 + u16::from(d - b'0')))
}
