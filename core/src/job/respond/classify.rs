//! The classification of a final body (a manifest, a Bundle, an AsyncJob, an OperationOutcome, a
//! resource) and of a failure.

use super::medplum::{asyncjob_finished, asyncjob_outcome};
use crate::http::Response;
use crate::job::Job;
use crate::manifest::Manifest;
use crate::outcome::{
    entry_status, outcome_is_error, outcome_text, parse_body, resource_type, Body, Delivery, Outcome, OutcomeStatus,
    ResultBody,
};
use crate::retry::parse_http_date_ms;
use crate::Error;
use serde_json::Value;

impl Job {
    pub(in crate::job) fn classify_final(&mut self, response: &Response, delivery: Delivery, url: &str) -> Classified {
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
                    let has_errors = manifest.has_errors();
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
pub(in crate::job) enum Classified {
    Final(Outcome),
    Running,
    Broken(Error),
}

pub(super) fn json_of(response: &Response) -> Option<Value> {
    match parse_body(&response.body) {
        Body::Json(v) => Some(v),
        _ => None,
    }
}

pub(super) fn raw_body(response: &Response) -> ResultBody {
    if response.body.is_empty() {
        ResultBody::Empty
    } else {
        ResultBody::Text {
            text: String::from_utf8_lossy(&response.body).into_owned(),
            content_type: response.header("Content-Type").map(str::to_owned),
        }
    }
}

pub(super) fn has_issue_code(oo: Option<&Value>, code: &str) -> bool {
    oo.and_then(|v| v.get("issue"))
        .and_then(Value::as_array)
        .is_some_and(|issues| issues.iter().any(|i| i.get("code").and_then(Value::as_str) == Some(code)))
}

pub(super) fn failure_outcome(response: &Response, delivery: Delivery, url: Option<String>) -> Outcome {
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
