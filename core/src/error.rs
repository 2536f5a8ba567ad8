//! Typed errors. Server-reported failure is *not* here: it is an
//! [`Outcome`](crate::Outcome). These are for misuse of the API, servers that
//! break the protocol, and limits the client itself enforces.

use serde::{Deserialize, Deserializer, Serialize};

use crate::tagged;

/// Everything that can go wrong in the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "code", rename_all = "snake_case", rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum Error {
    /// The caller used the API wrongly (bad configuration, wrong request id, ...).
    #[error("invalid use of the API: {message}")]
    Usage {
        /// What was wrong.
        message: String,
    },
    /// The server broke the protocol (a 202 without a status URL, a 200 that is
    /// not JSON, a manifest that is not a manifest, ...).
    #[error("the server broke the protocol: {message}")]
    Protocol {
        /// What the server did.
        message: String,
        /// The HTTP status of the offending response, if any.
        http_status: Option<u16>,
    },
    /// A URL the server handed out would leak the token or downgrade security
    /// (an `http:` URL under an `https:` base, protocol I4).
    #[error("refusing insecure URL {url}: {reason}")]
    InsecureUrl {
        /// The refused URL.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The overall deadline passed before the job finished (protocol B8).
    #[error("the job did not finish before its deadline ({deadline_ms} ms since the epoch)")]
    DeadlineExceeded {
        /// The deadline, Unix ms.
        deadline_ms: u64,
    },
    /// Transient failures (5xx, 429, resets) outlasted the retry budget.
    #[error("gave up after {attempts} failed attempts: {last}")]
    RetriesExhausted {
        /// How many attempts failed in a row.
        attempts: u32,
        /// The last failure seen.
        last: String,
    },
    /// The server refused the token (401) after a refresh, or when no new
    /// token could be had (protocol H5).
    #[error("unauthorized: {url} answered {http_status}{}; {reason}", server_message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Unauthorized {
        /// The status (401 or 403).
        http_status: u16,
        /// The URL that refused the token.
        url: String,
        /// The server's own words (the 401 body's OperationOutcome text, OAuth
        /// `error_description`, or the start of a text body), when it said any.
        #[serde(skip_serializing_if = "Option::is_none")]
        server_message: Option<String>,
        /// What happened: "the token was refused even after a token refresh",
        /// or why no refresh was possible (no token configured, a fixed token).
        reason: String,
    },
    /// A response body was longer than its ceiling (protocol K9): the binding
    /// stopped reading at `limit` bytes (a status or manifest answer of a
    /// gigabyte is a broken server, not a manifest).
    #[error("{url} answered with a body over the {limit}-byte ceiling for this kind of answer")]
    ResponseTooLarge {
        /// The URL (without its query, K10).
        url: String,
        /// The ceiling, bytes ([`crate::RetryPolicy::max_response_bytes`]).
        limit: u64,
    },
    /// The kick-off may or may not have reached the server and must never be
    /// replayed (protocol H6): the caller has to check the server by hand.
    #[error("the kick-off request may have reached the server ({message}); it is never replayed")]
    KickoffIndeterminate {
        /// The transport failure that made it indeterminate.
        message: String,
    },
}

impl Error {
    /// A stable, machine-readable code (`snake_case`), the same in every binding.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Usage { .. } => "usage",
            Error::Protocol { .. } => "protocol",
            Error::InsecureUrl { .. } => "insecure_url",
            Error::DeadlineExceeded { .. } => "deadline_exceeded",
            Error::RetriesExhausted { .. } => "retries_exhausted",
            Error::Unauthorized { .. } => "unauthorized",
            Error::KickoffIndeterminate { .. } => "kickoff_indeterminate",
            Error::ResponseTooLarge { .. } => "response_too_large",
        }
    }

    const CODES: &'static [&'static str] = &[
        "usage",
        "protocol",
        "insecure_url",
        "deadline_exceeded",
        "retries_exhausted",
        "unauthorized",
        "kickoff_indeterminate",
        "response_too_large",
    ];

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Error::Usage { message: message.into() }
    }

    pub(crate) fn protocol(message: impl Into<String>, http_status: Option<u16>) -> Self {
        Error::Protocol { message: message.into(), http_status }
    }
}

// Same shape as a derive with `tag = "code"`, without serde's `Content` buffering (see `tagged`).
impl<'de> Deserialize<'de> for Error {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        tagged::deserialize(d, "code", |code, f| {
            Ok(match code {
                "usage" => Error::Usage { message: f.req("message")? },
                "protocol" => Error::Protocol { message: f.req("message")?, http_status: f.opt("httpStatus")? },
                "insecure_url" => Error::InsecureUrl { url: f.req("url")?, reason: f.req("reason")? },
                "deadline_exceeded" => Error::DeadlineExceeded { deadline_ms: f.req("deadlineMs")? },
                "retries_exhausted" => Error::RetriesExhausted { attempts: f.req("attempts")?, last: f.req("last")? },
                "unauthorized" => Error::Unauthorized {
                    http_status: f.req("httpStatus")?,
                    url: f.req("url")?,
                    server_message: f.opt("serverMessage")?,
                    reason: f.opt("reason")?.unwrap_or_default(),
                },
                "kickoff_indeterminate" => Error::KickoffIndeterminate { message: f.req("message")? },
                "response_too_large" => Error::ResponseTooLarge { url: f.req("url")?, limit: f.req("limit")? },
                other => return Err(tagged::unknown(other, Error::CODES)),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_round_trips() {
        let all = [
            Error::usage("m"),
            Error::protocol("m", Some(502)),
            Error::protocol("m", None),
            Error::InsecureUrl { url: "http://x".into(), reason: "r".into() },
            Error::DeadlineExceeded { deadline_ms: 5 },
            Error::RetriesExhausted { attempts: 3, last: "503".into() },
            Error::ResponseTooLarge { url: "https://x/status".into(), limit: 9 },
            Error::Unauthorized {
                http_status: 401,
                url: "https://x".into(),
                server_message: Some("Invalid token jwt malformed".into()),
                reason: "r".into(),
            },
            Error::Unauthorized { http_status: 401, url: "https://x".into(), server_message: None, reason: "r".into() },
            Error::KickoffIndeterminate { message: "reset".into() },
        ];
        tagged::round_trip(&all);
        for e in &all {
            assert!(Error::CODES.contains(&e.code()));
        }
        assert_eq!(Error::CODES.len(), 8);
    }
}
