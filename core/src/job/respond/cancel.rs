//! The cancel request's answer (protocol F), and the outcome of a cancelled job.

use super::classify::{has_issue_code, json_of};
use super::medplum::{job_status_in, medplum_job_id, ASYNCJOB_ENDS};
use crate::http::Response;
use crate::job::state::{Cancel, Phase3, State};
use crate::job::{CancelResult, Job};
use crate::kickoff::Operation;
use crate::outcome::{outcome_is_error, outcome_text, resource_type, Delivery, Outcome, OutcomeStatus, ResultBody};
use serde_json::Value;

impl Job {
    pub(in crate::job) fn on_cancel(&mut self, response: &Response, now_ms: u64) {
        let status = response.status;
        let oo = json_of(response).filter(|v| resource_type(v) == Some("OperationOutcome"));
        let text = oo.as_ref().and_then(outcome_text).unwrap_or_default();
        let fallback = self.cancel.as_ref().and_then(|c| c.fallback.clone());
        let medplum = self.medplum_cancel_url.is_some() || fallback.is_some();
        // Medplum refuses to cancel a running job ("... job had status 'active'"):
        // the job goes on. For an export its working cancel is the Bulk Data DELETE.
        let still_running = job_status_in(&text).is_some_and(|s| !ASYNCJOB_ENDS.contains(&s.as_str()));
        if status == 400 && still_running && fallback.is_none() {
            if let Some(url) = self.bulk_cancel_url() {
                self.warnings.push(format!(
                    "the server refused the AsyncJob cancel ({text}); cancelling the export with DELETE {url}"
                ));
                self.cancel = Some(Cancel { phase: Phase3::Asked, result: None, fallback: Some(url) });
                return;
            }
        }
        let result = match status {
            200..=299 if !oo.as_ref().is_some_and(outcome_is_error) => {
                CancelResult::Cancelled { http_status: Some(status) }
            }
            401 => {
                if self.on_unauthorized(&self.status_url.clone().unwrap_or_default(), response) {
                    self.cancel_sent_to_asked();
                }
                return;
            }
            429 | 500..=599 => {
                self.cancel_sent_to_asked();
                self.count_failure(&format!("cancel answered {status}"), Some(response), now_ms);
                return;
            }
            404 | 410 if medplum || has_issue_code(oo.as_ref(), "not-found") => {
                CancelResult::NotFound { http_status: status }
            }
            404 | 409 | 410 => CancelResult::AlreadyTerminal { job_status: None, http_status: status },
            _ if still_running => CancelResult::Rejected { http_status: status, outcome: oo.clone() },
            _ => match job_status_in(&text) {
                Some(s) => CancelResult::AlreadyTerminal { job_status: Some(s), http_status: status },
                None if has_issue_code(oo.as_ref(), "not-found") => CancelResult::NotFound { http_status: status },
                None => CancelResult::Rejected { http_status: status, outcome: oo.clone() },
            },
        };
        self.ok_response();
        self.answer_cancel(result.clone());
        match result {
            CancelResult::Cancelled { http_status } => {
                let cancelled = cancelled_outcome(http_status, oo);
                if self.confirms_cancel() {
                    // Medplum may still run an async batch it reports `cancelled`: confirm first.
                    self.start_cancel_confirm(cancelled, now_ms);
                } else {
                    // Stop polling at once (protocol F2).
                    self.finish(cancelled);
                }
            }
            CancelResult::NotFound { .. } | CancelResult::AlreadyTerminal { .. } => {
                // Poll once more to learn how the job ended.
                if !matches!(self.state, State::Done { .. }) {
                    self.state = State::Polling { at_ms: now_ms };
                }
            }
            CancelResult::Rejected { .. } => {
                self.warnings.push(format!("the server refused to cancel ({status}): {text}"));
                if !matches!(self.state, State::Polling { .. } | State::Fetching { .. }) {
                    self.state = State::Polling { at_ms: now_ms };
                }
            }
        }
    }

    /// `[base]/bulkdata/export/{id}` for an export whose status URL is a
    /// Medplum `AsyncJob/{id}` or `job/{id}/status` (the same id).
    pub(in crate::job) fn bulk_cancel_url(&self) -> Option<String> {
        if !matches!(self.config.operation, Operation::Export(_)) {
            return None;
        }
        let id = medplum_job_id(self.status_url.as_deref()?)?;
        Some(format!("{}bulkdata/export/{id}", self.base))
    }
}

pub(in crate::job) fn cancelled_outcome(http_status: Option<u16>, body: Option<Value>) -> Outcome {
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
        warnings: Vec::new(),
    }
}
