//! When the job acts next: waits, `Retry-After`, backoff, retry budgets
//! (protocol B3, B4, A9, H1–H2).

use super::state::State;
use super::Job;
use crate::http::Response;
use crate::retry::{backoff_ms, read_retry_after, RetryAfter, RetryPolicy};
use crate::Action;
use crate::Error;

impl Job {
    pub(super) fn wait(&self, at_ms: u64, now_ms: u64) -> Action {
        let until = match self.deadline_ms {
            Some(d) => at_ms.min(d),
            None => at_ms,
        };
        Action::Wait { until_ms: until, delay_ms: until.saturating_sub(now_ms) }
    }

    pub(super) fn retry_after(&mut self, response: &Response, now_ms: u64) -> RetryAfter {
        let value = response.header("Retry-After").or_else(|| response.header("X-RetryAfter"));
        let (delay, note) = read_retry_after(value, response.header("Date"), now_ms, &self.config.retry);
        if let Some(note) = note {
            self.warnings.push(note);
        }
        delay
    }

    /// The backoff before `attempt`, jittered with this job's own seed (B4).
    pub(super) fn backoff(&self, attempt: u32) -> u64 {
        backoff_ms(&RetryPolicy { seed: self.seed, ..self.config.retry.clone() }, attempt)
    }

    /// Schedules the next poll after a "still running" answer.
    pub(super) fn schedule_poll(&mut self, response: &Response, now_ms: u64) {
        if self.confirm_running(now_ms) {
            return; // a cancel being confirmed polls on its own schedule
        }
        if self.refreshing.is_some() {
            // A finished job's manifest refresh answered "still running": within the retry
            // budget, not for ever (K8; the refresh holds every file waiting for it).
            self.refresh_running += 1;
            if self.refresh_running > self.config.retry.max_retries {
                let last = format!(
                    "the manifest refresh of a finished job was answered 202 (still running) {} times",
                    self.refresh_running
                );
                self.fail(Error::RetriesExhausted { attempts: self.refresh_running, last });
                return;
            }
        }
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
    pub(super) fn count_failure(&mut self, reason: &str, response: Option<&Response>, now_ms: u64) {
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

    pub(super) fn retry_kickoff(&mut self, response: Option<&Response>, now_ms: u64, reason: &str) {
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
}
