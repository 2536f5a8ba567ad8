//! How each response moves the job: kick-off, status, result, pages, cancel,
//! and the classification of a final body (protocol A8–A10, B, C, F, H).

use super::state::{Cancel, InFlight, Phase3, State};
use super::{CancelResult, Job};
use crate::http::{RequestKind, Response};
use crate::kickoff::Operation;
use crate::manifest::Manifest;
use crate::origin::{resolve, same_origin_urls};
use crate::outcome::{
    asyncjob_manifest, entry_status, is_transient_outcome, outcome_is_error, outcome_text, parse_body, resource_type,
    Body, Delivery, Outcome, OutcomeStatus, ResultBody,
};
use crate::retry::parse_http_date_ms;
use crate::Error;
use serde_json::Value;

const MAX_REDIRECTS: u32 = 5;
const MAX_PAGES: u32 = 10_000;

impl Job {
    pub(super) fn on_kickoff(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
        let status = response.status;
        match status {
            202 => {
                self.token_accepted();
                let url = match self.status_url_from(flight, response) {
                    Ok(u) => u,
                    Err(e) => {
                        self.fail(e);
                        return;
                    }
                };
                if !self.may_send_token(&url) {
                    self.warnings.push(format!("the status URL {url} is not on the base URL's origin (nor an allowed one); the token is not sent to it (divergence 4)"));
                }
                self.preference_applied = response.header_list("Preference-Applied");
                self.separate_status = self.config.prefer.separate_export_status
                    && self.preference_applied.iter().any(|p| p.eq_ignore_ascii_case("separate-export-status"));
                self.medplum_cancel_url = medplum_cancel_url(&url);
                self.seed = crate::retry::derive_seed(self.seed, url.as_bytes());
                self.status_url = Some(url);
                self.note_progress(response);
                self.schedule_poll(response, now_ms);
            }
            200 | 201 | 204 => {
                self.token_accepted();
                let outcome = self.classify_final(response, Delivery::Sync, &flight.url);
                match outcome {
                    Classified::Final(o) => self.finish(o),
                    Classified::Running => {
                        self.fail(Error::protocol(
                            "the kick-off answered a running job without a status URL",
                            Some(status),
                        ));
                    }
                    Classified::Broken(e) => {
                        self.fail(e);
                    }
                }
            }
            303 => match self.resolve_location(&flight.url, response) {
                Ok(Some(url)) => {
                    let auth = self.may_send_token(&url);
                    self.state = State::Fetching { url, kind: RequestKind::Result, at_ms: now_ms, auth };
                }
                Ok(None) => {
                    self.fail(Error::protocol("303 without Location", Some(status)));
                }
                Err(e) => {
                    self.fail(e);
                }
            },
            429 => self.retry_kickoff(Some(response), now_ms, "429 Too Many Requests on kick-off"),
            401 => {
                // The server refused the kick-off outright, so sending it again is safe.
                if self.on_unauthorized(&flight.url, response) {
                    self.state = State::KickoffRetry { at_ms: now_ms };
                }
            }
            400..=599 => {
                let o = failure_outcome(response, Delivery::Sync, Some(flight.url.clone()));
                self.finish(o);
            }
            _ => {
                self.fail(Error::protocol(format!("unexpected kick-off status {status}"), Some(status)));
            }
        }
    }

    pub(super) fn status_url_from(&mut self, flight: &InFlight, response: &Response) -> Result<String, Error> {
        let header = response.header("Content-Location").or_else(|| response.header("Location"));
        let candidate = match header {
            Some(h) => Some(h.to_owned()),
            None => match parse_body(&response.body) {
                // Medplum echoes the status URL in issue[0].diagnostics (divergence 2).
                Body::Json(v) if resource_type(&v) == Some("OperationOutcome") => v
                    .get("issue")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i.get("diagnostics").and_then(Value::as_str))
                    .find(|d| d.starts_with("http://") || d.starts_with("https://"))
                    .map(str::to_owned),
                _ => None,
            },
        };
        let Some(raw) = candidate else {
            return Err(Error::protocol(
                "202 without Content-Location, Location or a status URL in an OperationOutcome (in a browser, the server may not expose Content-Location via Access-Control-Expose-Headers)",
                Some(202),
            ));
        };
        let url = resolve(&flight.url, &raw)
            .ok_or_else(|| Error::protocol(format!("unusable status URL {raw:?}"), Some(202)))?;
        if self.downgrades_base(&url) {
            return Err(Error::InsecureUrl {
                url,
                reason: "an http: status URL under an https: base (protocol I4)".into(),
            });
        }
        Ok(url)
    }

    pub(super) fn on_status(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
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

    pub(super) fn on_separate_status(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
        if response.status != 200 {
            // A bare 4xx/5xx means the poll itself failed (protocol B5).
            let reason = format!("status poll answered {}", response.status);
            return self.count_failure(&reason, Some(response), now_ms);
        }
        self.ok_response();
        self.note_progress(response);
        let export_status = response
            .header("X-Export-Status")
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse::<u16>().ok());
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
    fn on_final_body(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
        match self.classify_final(response, Delivery::Inline, &flight.url) {
            Classified::Final(o) => self.complete(o, now_ms),
            Classified::Running => self.schedule_poll(response, now_ms),
            Classified::Broken(e) => {
                self.fail(e);
            }
        }
    }

    /// 4xx/5xx on the status URL: transient (retry) or the job failed (H1, H2).
    pub(super) fn on_status_error(&mut self, response: &Response, now_ms: u64) {
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

    pub(super) fn ok_response(&mut self) {
        self.failures = 0;
        self.token_accepted();
    }

    /// A JSON body on a 202: a partial manifest (only when asked for, B7 and
    /// divergence 9), or an AsyncJob whose status may already be terminal.
    pub(super) fn note_running_body(&mut self, v: Value, now_ms: u64) {
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

    pub(super) fn partial_manifests_requested(&self) -> bool {
        matches!(&self.config.operation, Operation::Export(e) if e.allow_partial_manifests == Some(true))
    }

    /// A final outcome arrived; if it is a paged manifest, fetch the pages first.
    pub(super) fn complete(&mut self, outcome: Outcome, now_ms: u64) {
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

    pub(super) fn on_page(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
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

    pub(super) fn set_fetch_time(&mut self, now_ms: u64) {
        if let State::Fetching { at_ms, .. } = &mut self.state {
            *at_ms = now_ms;
        }
    }

    pub(super) fn on_result(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
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

    pub(super) fn on_cancel(&mut self, response: &Response, now_ms: u64) {
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
                // Stop polling at once (protocol F2).
                self.finish(cancelled_outcome(http_status, oo));
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
    fn bulk_cancel_url(&self) -> Option<String> {
        if !matches!(self.config.operation, Operation::Export(_)) {
            return None;
        }
        let id = medplum_job_id(self.status_url.as_deref()?)?;
        Some(format!("{}bulkdata/export/{id}", self.base))
    }

    pub(super) fn classify_final(&mut self, response: &Response, delivery: Delivery, url: &str) -> Classified {
        let status = response.status;
        let (expires, expires_at_ms) = match response.header("Expires") {
            Some(e) => (Some(e.to_owned()), parse_http_date_ms(e)),
            None => (None, None),
        };
        let base = |st, result, message| Outcome {
            status: st,
            delivery,
            http_status: Some(status),
            result,
            message,
            expires: expires.clone(),
            expires_at_ms,
            result_url: Some(url.to_owned()),
            warnings: Vec::new(),
        };
        let v = match parse_body(&response.body) {
            Body::Empty => {
                if delivery == Delivery::Inline {
                    return Classified::Broken(Error::protocol("a 200 status response with no body", Some(status)));
                }
                return Classified::Final(base(OutcomeStatus::Completed, ResultBody::Empty, None));
            }
            Body::NotJson => {
                if delivery == Delivery::Inline {
                    return Classified::Broken(Error::protocol("a 200 status response that is not JSON", Some(status)));
                }
                return Classified::Final(base(OutcomeStatus::Completed, raw_body(response), None));
            }
            Body::Json(v) => v,
        };
        match resource_type(&v).map(str::to_owned).as_deref() {
            None => match Manifest::from_value(v) {
                Ok(manifest) => {
                    let has_errors = manifest.error_files().next().is_some();
                    let message = manifest.message.clone();
                    if manifest.output.is_empty() && message.is_some() {
                        self.warnings.push(format!("the server says: {}", message.clone().unwrap_or_default()));
                    }
                    let st = if has_errors { OutcomeStatus::CompletedWithErrors } else { OutcomeStatus::Completed };
                    Classified::Final(base(st, ResultBody::Manifest { manifest }, message))
                }
                Err(e) => Classified::Broken(Error::protocol(e.to_string(), Some(status))),
            },
            Some("AsyncJob") => {
                // `GET AsyncJob/{id}` is 200 whatever the state: `accepted`
                // (queued) and `active` (running, as real Medplum says) are not an end.
                if !asyncjob_finished(&v) {
                    return Classified::Running;
                }
                let mut o = asyncjob_outcome(v, status, Some(url.to_owned()));
                o.delivery = delivery;
                Classified::Final(o)
            }
            Some("Bundle") => {
                let es = entry_status(&v);
                let is_async_bundle = v.get("type").and_then(Value::as_str) == Some("batch-response");
                let failed = is_async_bundle && es.is_some_and(|s| s >= 400);
                let message = if failed {
                    v.pointer("/entry/0/response/outcome")
                        .and_then(outcome_text)
                        .or_else(|| v.pointer("/entry/0/response/status").and_then(Value::as_str).map(str::to_owned))
                } else {
                    None
                };
                let st = if failed { OutcomeStatus::Failed } else { OutcomeStatus::Completed };
                Classified::Final(base(st, ResultBody::Bundle { bundle: v, entry_status: es }, message))
            }
            Some("OperationOutcome") => {
                let failed = outcome_is_error(&v);
                let message = outcome_text(&v);
                let st = if failed { OutcomeStatus::Failed } else { OutcomeStatus::Completed };
                Classified::Final(base(st, ResultBody::OperationOutcome { outcome: v }, message))
            }
            Some(_) => Classified::Final(base(OutcomeStatus::Completed, ResultBody::Resource { resource: v }, None)),
        }
    }
}

#[allow(clippy::large_enum_variant)] // short-lived, never stored
pub(super) enum Classified {
    Final(Outcome),
    Running,
    Broken(Error),
}

fn json_of(response: &Response) -> Option<Value> {
    match parse_body(&response.body) {
        Body::Json(v) => Some(v),
        _ => None,
    }
}

fn raw_body(response: &Response) -> ResultBody {
    if response.body.is_empty() {
        ResultBody::Empty
    } else {
        ResultBody::Text {
            text: String::from_utf8_lossy(&response.body).into_owned(),
            content_type: response.header("Content-Type").map(str::to_owned),
        }
    }
}

fn has_issue_code(oo: Option<&Value>, code: &str) -> bool {
    oo.and_then(|v| v.get("issue"))
        .and_then(Value::as_array)
        .is_some_and(|issues| issues.iter().any(|i| i.get("code").and_then(Value::as_str) == Some(code)))
}

/// Medplum's refusal text: "... job had status 'completed'".
pub(super) fn job_status_in(text: &str) -> Option<String> {
    let rest = &text[text.find("had status '")? + "had status '".len()..];
    let end = rest.find('\'')?;
    let s = &rest[..end];
    (!s.is_empty() && s.len() < 40).then(|| s.to_owned())
}

/// The AsyncJob statuses that end a job. Real Medplum says `active` while a
/// job runs (the documented `accepted` is the state before a worker takes it).
pub(super) const ASYNCJOB_ENDS: [&str; 4] = ["completed", "error", "cancelled", "failed"];

fn asyncjob_finished(job: &Value) -> bool {
    job.get("status").and_then(Value::as_str).is_some_and(|s| ASYNCJOB_ENDS.contains(&s))
}

/// Whether a URL names an `AsyncJob` resource, which a DELETE would delete.
pub(super) fn is_asyncjob_url(url: &str) -> bool {
    url.contains("/AsyncJob/")
}

/// The job id of a Medplum status URL: `.../AsyncJob/{id}[/...]` or `.../job/{id}/status`.
fn medplum_job_id(status_url: &str) -> Option<String> {
    let u = url::Url::parse(status_url).ok()?;
    let segs: Vec<&str> = u.path_segments()?.filter(|s| !s.is_empty()).collect();
    let id = match segs.iter().rposition(|s| *s == "AsyncJob") {
        Some(i) => segs.get(i + 1)?,
        None => match segs.as_slice() {
            [.., "job", id, "status"] => id,
            _ => return None,
        },
    };
    (!id.starts_with('$')).then(|| (*id).to_owned())
}

/// `.../AsyncJob/{id}` (also with a trailing slash or a query) →
/// `.../AsyncJob/{id}/$cancel` (seed 000).
pub(super) fn medplum_cancel_url(status_url: &str) -> Option<String> {
    if !is_asyncjob_url(status_url) {
        return None; // the common case, without parsing the URL
    }
    let id = medplum_job_id(status_url)?;
    let u = url::Url::parse(status_url).ok()?;
    let path = u.path();
    let prefix = &path[..path.rfind("/AsyncJob/")?];
    let mut c = u.clone();
    c.set_query(None);
    c.set_path(&format!("{prefix}/AsyncJob/{id}/$cancel"));
    Some(c.to_string())
}

pub(super) fn cancelled_outcome(http_status: Option<u16>, body: Option<Value>) -> Outcome {
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

fn failure_outcome(response: &Response, delivery: Delivery, url: Option<String>) -> Outcome {
    let body = json_of(response);
    let (result, message) = match body {
        Some(v) if resource_type(&v) == Some("OperationOutcome") => {
            let m = outcome_text(&v);
            (ResultBody::OperationOutcome { outcome: v }, m)
        }
        Some(v) if resource_type(&v).is_some() => (ResultBody::Resource { resource: v }, None),
        _ => (raw_body(response), None),
    };
    Outcome {
        status: OutcomeStatus::Failed,
        delivery,
        http_status: Some(response.status),
        result,
        message: message.or_else(|| Some(format!("the server answered {}", response.status))),
        expires: None,
        expires_at_ms: None,
        result_url: url,
        warnings: Vec::new(),
    }
}

fn asyncjob_outcome_text(job: &Value) -> Option<String> {
    job.pointer("/output/parameter")?
        .as_array()?
        .iter()
        .filter(|p| p.get("name").and_then(Value::as_str) == Some("outcome"))
        .find_map(|p| p.get("resource").and_then(outcome_text))
}

fn asyncjob_outcome(job: Value, http_status: u16, url: Option<String>) -> Outcome {
    let job_status = job.get("status").and_then(Value::as_str).unwrap_or("").to_owned();
    let status = match job_status.as_str() {
        "completed" => OutcomeStatus::Completed,
        "cancelled" => OutcomeStatus::Cancelled,
        _ => OutcomeStatus::Failed,
    };
    let manifest = asyncjob_manifest(&job);
    let message = match status {
        // A failed generic job carries an `outcome` parameter: its text is the server's words.
        OutcomeStatus::Failed => Some(match asyncjob_outcome_text(&job) {
            Some(text) => format!("AsyncJob status {job_status:?}: {text}"),
            None => format!("AsyncJob status {job_status:?}"),
        }),
        _ => None,
    };
    Outcome {
        status,
        delivery: Delivery::Inline,
        http_status: Some(http_status),
        result: ResultBody::AsyncJob { job, job_status, manifest },
        message,
        expires: None,
        expires_at_ms: None,
        result_url: url,
        warnings: Vec::new(),
    }
}
