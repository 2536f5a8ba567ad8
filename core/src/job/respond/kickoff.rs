//! The kick-off's answer: 202 with a status URL, a synchronous result, a refusal, a 429 (protocol
//! A8–A10).

use super::classify::{failure_outcome, has_issue_code, Classified};
use super::medplum::medplum_cancel_url;
use crate::http::{RequestKind, Response};
use crate::job::state::{InFlight, State};
use crate::job::Job;
use crate::kickoff::Operation;
use crate::origin::resolve;
use crate::outcome::{parse_body, resource_type, Body, Delivery};
use crate::Error;
use serde_json::Value;

impl Job {
    pub(in crate::job) fn on_kickoff(&mut self, flight: &InFlight, response: &Response, now_ms: u64) {
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
            // A POST-only server (STU4: "GET requests SHALL NOT be used") refused the GET: the
            // server did not start anything, so the one POST is safe (protocol L2).
            405 if !self.get_refused && self.kicked_off_with_get() => {
                self.get_refused = true;
                self.warnings.push(format!(
                    "the server refused the GET kick-off with 405{}; sent again as POST with a Parameters body (protocol L2)",
                    response.header("Allow").map(|a| format!(" (Allow: {a})")).unwrap_or_default()
                ));
                self.state = State::KickoffRetry { at_ms: now_ms };
            }
            401 => {
                // The server refused the kick-off outright, so sending it again is safe.
                if self.on_unauthorized(&flight.url, response) {
                    self.state = State::KickoffRetry { at_ms: now_ms };
                }
            }
            400..=599 => {
                let o = failure_outcome(response, Delivery::Sync, Some(flight.url.clone()));
                self.note_parameter_not_supported(&o);
                self.finish(o);
            }
            _ => {
                self.fail(Error::protocol(format!("unexpected kick-off status {status}"), Some(status)));
            }
        }
    }

    pub(in crate::job) fn status_url_from(&mut self, flight: &InFlight, response: &Response) -> Result<String, Error> {
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
}

impl Job {
    /// A kick-off refused with an OperationOutcome `not-supported` while the export sent an
    /// optional parameter a server may not support (`_typeFilter`, `_elements`; protocol L4, L6):
    /// say which, and that `Prefer: handling=lenient` asks the server to ignore it instead.
    fn note_parameter_not_supported(&mut self, o: &crate::outcome::Outcome) {
        let Operation::Export(e) = &self.config.operation else { return };
        let sent: Vec<&str> = [("_typeFilter", !e.type_filters.is_empty()), ("_elements", !e.elements.is_empty())]
            .into_iter()
            .filter_map(|(name, sent)| sent.then_some(name))
            .collect();
        if sent.is_empty() || !has_issue_code(o.operation_outcome(), "not-supported") {
            return;
        }
        self.warnings.push(format!(
            "the server answered not-supported to a kick-off with {} (protocol L6): leave {} out, or ask with \
             Prefer: handling=lenient for the server to ignore what it does not support",
            sent.join(" and "),
            if sent.len() > 1 { "them" } else { "it" }
        ));
    }
}
