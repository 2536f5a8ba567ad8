//! Confirming a cancel Medplum accepted (`medplum.md`, "Observed later"): an async batch may run to
//! completion after its AsyncJob read `cancelled`, so the job polls once more before it says so.

use super::medplum::{is_job_route, medplum_job_id};
use crate::job::state::{CancelConfirm, State, CONFIRM_CANCEL_MS};
use crate::job::Job;
use crate::kickoff::Operation;
use crate::outcome::{Outcome, OutcomeStatus};

impl Job {
    /// Whether a cancel the server accepted is confirmed by polling: a Medplum job route
    /// (`job/{id}/status`, what Medplum answers for every async operation but `$export`; also a job
    /// attached by that URL, whatever operation it was given), or an `AsyncJob/{id}` that is not
    /// an export (an export's cancel is the Bulk Data DELETE, which stops it).
    pub(in crate::job) fn confirms_cancel(&self) -> bool {
        let Some(url) = self.status_url.as_deref() else { return false };
        is_job_route(url) || (!matches!(self.config.operation, Operation::Export(_)) && medplum_job_id(url).is_some())
    }

    /// The server accepted the cancel: poll at once to read the AsyncJob.
    pub(in crate::job) fn start_cancel_confirm(&mut self, cancelled: Outcome, now_ms: u64) {
        self.cancel_confirm =
            Some(CancelConfirm { cancelled: Box::new(cancelled), seen_cancelled: false, running_reads: 0 });
        self.state = State::Polling { at_ms: now_ms };
    }

    /// A final answer to a poll while a cancel is being confirmed: the outcome to complete with,
    /// or `None` when the job polls once more (the AsyncJob read `cancelled` for the first time).
    pub(in crate::job) fn confirm_final(&mut self, outcome: Outcome, now_ms: u64) -> Option<Outcome> {
        let Some(mut c) = self.cancel_confirm.take() else {
            return Some(outcome);
        };
        if outcome.status == OutcomeStatus::Cancelled {
            if c.seen_cancelled {
                return Some(outcome);
            }
            c.seen_cancelled = true;
            c.cancelled = Box::new(outcome);
            self.confirm_later(c, now_ms);
            return None;
        }
        let said = if c.seen_cancelled {
            "the server accepted the cancel and the AsyncJob read `cancelled`"
        } else {
            "the server accepted the cancel"
        };
        let ended = match outcome.status {
            OutcomeStatus::Failed => "yet the job went on and ended as failed",
            _ => "yet the job ran to completion: its work was applied (Medplum does not stop an async batch it has started)",
        };
        self.warnings.push(format!("{said}, {ended}"));
        Some(outcome)
    }

    /// A "still running" answer while a cancel is being confirmed: one more poll later, then the
    /// cancelled outcome with a warning. Returns whether it handled the answer.
    pub(in crate::job) fn confirm_running(&mut self, now_ms: u64) -> bool {
        let Some(mut c) = self.cancel_confirm.take() else {
            return false;
        };
        c.running_reads = c.running_reads.saturating_add(1);
        if c.running_reads >= 2 {
            self.warnings.push(
                "the server accepted the cancel, yet the job still reads as running: it may still run to completion"
                    .into(),
            );
            self.finish(*c.cancelled);
        } else {
            self.confirm_later(c, now_ms);
        }
        true
    }

    fn confirm_later(&mut self, c: CancelConfirm, now_ms: u64) {
        let at_ms = now_ms.saturating_add(CONFIRM_CANCEL_MS);
        if self.deadline_ms.is_some_and(|d| at_ms >= d) {
            self.warnings.push(
                "the deadline leaves no time to confirm the cancel with one more poll: the job may still run to completion"
                    .into(),
            );
            self.finish(*c.cancelled);
            return;
        }
        self.cancel_confirm = Some(c);
        self.state = State::Polling { at_ms };
    }
}
