//! The requests a job sends (kick-off, polls, fetches, cancel, cleanup), where they may go (no
//! https→http, I3/I4) and whether the token goes with them (I2).

use super::state::InFlight;
use super::types::Action;
use super::Job;
use crate::http::{Method, Request, RequestKind, Response};
use crate::kickoff::{kickoff_for_base, kickoff_form};
use crate::origin::{is_downgrade, resolve};
use crate::Error;

impl Job {
    pub(super) fn send(&mut self, kind: RequestKind, method: Method, url: String, auth: bool) -> Action {
        let id = self.next_id;
        self.next_id += 1;
        let accept = match kind {
            RequestKind::Status => "application/json",
            _ => "application/fhir+json",
        };
        let mut headers = vec![("Accept".to_owned(), accept.to_owned())];
        let mut body = None;
        if kind == RequestKind::Cancel && method == Method::Post {
            headers.push(("Content-Type".to_owned(), "application/fhir+json".to_owned()));
            body = Some(String::new());
        }
        // The token goes only to the FHIR origin or an allowed one (I2), never downgraded (I3/I4).
        let auth = auth && self.may_send_token(&url);
        self.in_flight = Some(InFlight { id, kind, url: url.clone() });
        Action::Send {
            request: Request {
                id,
                kind,
                method,
                url,
                headers,
                body,
                auth,
                timeout_ms: self.config.retry.request_timeout_ms,
                max_body: Some(self.config.retry.max_response_bytes),
            },
        }
    }

    pub(super) fn send_kickoff(&mut self) -> Result<Action, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let timeout_ms = self.config.retry.request_timeout_ms;
        let max_body = Some(self.config.retry.max_response_bytes);
        // The request `new` built is used once; a retried kick-off (429, connect failure, 405) and
        // one after the CapabilityStatement (L2) are rebuilt in the form they now need.
        let request = match self.kickoff_memo.0.take() {
            Some(built) => Request { id, timeout_ms, max_body, ..built },
            None => {
                let op = kickoff_form(&self.config.operation, self.declared_version, self.get_refused);
                Request {
                    max_body,
                    ..kickoff_for_base(&self.base, &op, &self.config.prefer, id, timeout_ms)
                        .map_err(|e| self.fail(e))?
                }
            }
        };
        // An absolute operation path on another origin gets no token (I2).
        let auth = self.may_send_token(&request.url);
        self.in_flight = Some(InFlight { id, kind: RequestKind::Kickoff, url: request.url.clone() });
        Ok(Action::Send { request: Request { auth, ..request } })
    }

    pub(super) fn resolve_location(&mut self, from: &str, response: &Response) -> Result<Option<String>, Error> {
        let Some(loc) = response.header("Location") else {
            return Ok(None);
        };
        let url = resolve(from, loc)
            .ok_or_else(|| Error::protocol(format!("unusable Location {loc:?}"), Some(response.status)))?;
        if self.downgrades_base(&url) || is_downgrade(from, &url) {
            return Err(Error::InsecureUrl { url, reason: "https to http downgrade (protocol I3)".into() });
        }
        Ok(Some(url))
    }

    /// Whether `url`, an output of [`resolve`], is http under an https base (I4).
    /// Both strings are serialized by the `url` crate (the base by
    /// `normalized_base`), so their schemes are exact lower-case prefixes and
    /// no parse is needed.
    pub(super) fn downgrades_base(&self, url: &str) -> bool {
        let downgrade = self.base.starts_with("https:") && url.starts_with("http:");
        debug_assert_eq!(downgrade, is_downgrade(&self.base, url), "{} -> {url}", self.base);
        downgrade
    }

    /// The one token rule for every request the job sends (I2–I4, the same
    /// as for files: [`TokenPolicy::may_send_token`]), memoized (see [`TokenMemo`]).
    pub(super) fn may_send_token(&mut self, url: &str) -> bool {
        if let Some((last, allowed)) = &self.token_memo.0 {
            if last == url {
                return *allowed;
            }
        }
        let allowed = self.token_policy().may_send_token(url);
        self.token_memo.0 = Some((url.to_owned(), allowed));
        allowed
    }
}
