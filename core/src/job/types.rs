//! The job's public vocabulary: its configuration, the actions it asks for,
//! and what a cancel, a cleanup or a callback achieved.

use crate::http::Request;
use crate::kickoff::{Operation, PreferOptions};
use crate::outcome::Outcome;
use crate::retry::RetryPolicy;
use crate::tagged;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Everything a job needs to know up front. Serializable, so bindings can
/// take it as a plain JS / Python object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct JobConfig {
    /// The FHIR base URL (`https://host/fhir/R4`). Its origin receives the token.
    pub base_url: String,
    /// What to start.
    pub operation: Operation,
    /// Extra `Prefer` tokens.
    #[serde(default)]
    pub prefer: PreferOptions,
    /// Timing and retry limits.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Overall deadline in ms from the kick-off (protocol B8). `None`: no deadline.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Other origins allowed to receive the token for file downloads (I2).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// The one next thing the caller must do.
// One Action exists at a time and is moved straight to the caller; boxing the
// outcome would only add an allocation and an awkward pattern for users.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Action {
    /// Send this request and hand the response to [`crate::Job::handle_response`]
    /// (or a failure to [`crate::Job::handle_transport_error`]).
    Send {
        /// The request.
        request: Request,
    },
    /// Nothing to do until `until_ms`. Calling [`crate::Job::next_action`] earlier
    /// is harmless: it answers the same wait (an early wake is a no-op).
    Wait {
        /// When to call again (Unix ms).
        until_ms: u64,
        /// `until_ms - now`, for timers.
        delay_ms: u64,
    },
    /// Get a fresh bearer token (the server answered 401), then call again.
    RefreshToken,
    /// The job is over.
    Done {
        /// How it ended.
        outcome: Outcome,
    },
}

/// What a cancel request achieved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum CancelResult {
    /// The server accepted the cancel.
    Cancelled {
        /// The HTTP status of the cancel response.
        http_status: Option<u16>,
    },
    /// The job had already ended (DELETE → 404/409/410, Medplum 400 "job had
    /// status '...'"). The job polls once more to report how it ended.
    AlreadyTerminal {
        /// The job's status when the server says (`completed`, `error`, ...).
        job_status: Option<String>,
        /// The HTTP status of the cancel response.
        http_status: u16,
    },
    /// The server does not know the job (Medplum `not-found`).
    NotFound {
        /// The HTTP status of the cancel response.
        http_status: u16,
    },
    /// The server refused to cancel (e.g. HealthConnect's 400); the job goes on.
    Rejected {
        /// The HTTP status.
        http_status: u16,
        /// The OperationOutcome, if any.
        #[cfg_attr(feature = "ts", ts(type = "FhirResource | null"))]
        outcome: Option<Value>,
    },
}

/// What a `cleanup()` DELETE achieved (protocol F3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CleanupResult {
    /// The HTTP status, or `None` after a transport failure.
    pub http_status: Option<u16>,
    /// Whether the files are gone (2xx, or 404/410: already gone).
    pub ok: bool,
}

/// What a callback did to the job (protocol G3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum CallbackEffect {
    /// The job will poll now to confirm.
    Woken,
    /// Ignored, with the reason (untrusted `resultUrl`, job not polling, ...).
    Ignored {
        /// Why.
        reason: String,
    },
}

// Same shape as a derive with `tag = "kind"`, without serde's `Content` buffering (see `tagged`).
impl<'de> Deserialize<'de> for CancelResult {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const KINDS: &[&str] = &["cancelled", "alreadyTerminal", "notFound", "rejected"];
        tagged::deserialize(d, "kind", |kind, f| {
            Ok(match kind {
                "cancelled" => CancelResult::Cancelled { http_status: f.opt("httpStatus")? },
                "alreadyTerminal" => {
                    CancelResult::AlreadyTerminal { job_status: f.opt("jobStatus")?, http_status: f.req("httpStatus")? }
                }
                "notFound" => CancelResult::NotFound { http_status: f.req("httpStatus")? },
                "rejected" => CancelResult::Rejected { http_status: f.req("httpStatus")?, outcome: f.opt("outcome")? },
                other => return Err(tagged::unknown(other, KINDS)),
            })
        })
    }
}
