//! A final outcome arriving: manifest pages (B7) and the result a 303 points to, with its redirects
//! (C4).

use super::classify::{failure_outcome, raw_body, Classified};
use crate::http::{RequestKind, Response};
use crate::job::state::{InFlight, State};
use crate::job::Job;
use crate::manifest::Manifest;
use crate::origin::{resolve, same_origin_urls};
use crate::outcome::{Delivery, Outcome, OutcomeStatus, ResultBody};
use crate::Error;

const MAX_REDIRECTS: u32 = 5;
const MAX_PAGES: u32 = 10_000;

impl Job {
    /// A final outcome arrived; if it is a paged manifest, fetch the pages first.
    pub(in crate::job) fn complete(&mut self, outcome: Outcome, now_ms: u64) {
        let Some(outcome) = self.confirm_final(outcome, now_ms) else {
            return; // Medplum: one more poll confirms the cancel
        };
        if let Some(next) = outcome.manifest().and_then(Manifest::next_link).map(str::to_owned) {
            let from = outcome.result_url.clone().unwrap_or_default();
            match resolve(&from, &next) {
                Some(url) if !self.downgrades_base(&url) => {
                    let auth = self.may_send_token(&url);
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
        self.finish(outcome);
    }

    pub(in crate::job) fn on_page(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
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
                self.page_count += 1;
                if self.page_count > MAX_PAGES {
                    self.fail(Error::protocol("manifest paging does not end", Some(200)));
                    return;
                }
                self.complete(*pending, now_ms);
            }
            401 => {
                if self.on_unauthorized(&flight.url, response) {
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

    pub(in crate::job) fn set_fetch_time(&mut self, now_ms: u64) {
        if let State::Fetching { at_ms, .. } = &mut self.state {
            *at_ms = now_ms;
        }
    }

    pub(in crate::job) fn on_result(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
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
                if self.on_unauthorized(&flight.url, response) {
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
                        warnings: Vec::new(),
                    },
                };
                // Redirect mode: the target's HTTP status is the operation's status (C4),
                // so a 2xx is a success whatever the body looks like.
                let status = if o.status == OutcomeStatus::Failed { OutcomeStatus::Completed } else { o.status };
                self.complete(Outcome { status, ..o }, now_ms);
            }
            // H4: 4xx/5xx on the result URL is the operation's own failure.
            _ => self.finish(failure_outcome(response, Delivery::Redirect, Some(flight.url.clone()))),
        }
    }
}
