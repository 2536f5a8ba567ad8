//! The job state machine: kick-off, polling, completion, cancel, cleanup,
//! resume. See the crate docs for the state diagram and the driving loop.
//!
//! The [`Job`] value is defined here; its methods live beside it, one file
//! per seam: `create` (new, attach, from/to JSON), `drive` (the next action
//! and the answers handed back), `respond/` (what each kind of response does),
//! `send` (the requests and the token rule), `timing` (waits, backoff),
//! `control` (cancel, cleanup, refresh, callbacks), `finish` (how a job ends),
//! `inspect` (what a caller reads), `records` (each file's progress, K5);
//! `state` and `types` hold the sub-states and the public types.

mod control;
mod create;
mod drive;
mod finish;
mod inspect;
mod records;
mod respond;
mod send;
mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_stu4;
mod timing;
mod types;

use state::{Cancel, CancelConfirm, Cleanup, InFlight, Memo, Refusal, State, TokenMemo, TokenPhase};
pub use types::{Action, CallbackEffect, CancelResult, CleanupResult, JobConfig};

use crate::http::Request;
use crate::kickoff::IgVersion;
use crate::manifest::Manifest;
use crate::outcome::Outcome;
use crate::Error;
use serde::{Deserialize, Serialize};

/// A FHIR asynchronous job: one owned value, no lifetimes, serializable.
///
/// Feed it responses and the current time; it answers with the next
/// [`Action`]. It never reads a clock, never touches a socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    #[serde(rename = "v")]
    version: u32,
    config: JobConfig,
    base: String,
    state: State,
    status_url: Option<String>,
    medplum_cancel_url: Option<String>,
    separate_status: bool,
    preference_applied: Vec<String>,
    started_at_ms: Option<u64>,
    deadline_ms: Option<u64>,
    polls: u32,
    failures: u32,
    backoff_attempt: u32,
    kickoff_attempts: u32,
    /// What the server's CapabilityStatement declared for an `auto` export, once read (L2):
    /// `stu4`, or `stu3` when it declared nothing newer or could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    declared_version: Option<IgVersion>,
    /// The server answered 405 to the GET kick-off: it is sent once more as POST (L2).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    get_refused: bool,
    token: TokenPhase,
    /// The last 401, for [`Job::token_unavailable`]'s error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refusal: Option<Refusal>,
    next_id: u64,
    in_flight: Option<InFlight>,
    cancel: Option<Cancel>,
    /// Medplum: a cancel the server accepted, being confirmed before the job reports `cancelled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cancel_confirm: Option<CancelConfirm>,
    cleanup: Option<Cleanup>,
    progress_message: Option<String>,
    progress_percent: Option<f64>,
    partial: Option<Manifest>,
    pages: Option<Box<Outcome>>,
    refreshing: Option<Box<Outcome>>,
    /// Redirects followed for the current result fetch (C4).
    redirect_hops: u32,
    /// Manifest pages fetched (B7).
    page_count: u32,
    warnings: Vec<String>,
    /// The jitter seed: the policy's, mixed with the start time and then the
    /// status URL, so jobs that fail together do not retry together (B4).
    #[serde(default)]
    seed: u64,
    /// Each file's progress (done, or part-way with a checkpoint), recorded by
    /// the binding's downloads so a resumed job never fetches a finished file
    /// again (K5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    files: Vec<crate::coordinator::FileRecord>,
    /// The token rule's last answer (see [`TokenMemo`]).
    #[serde(skip)]
    token_memo: TokenMemo,
    /// The kick-off request `new` built to validate the configuration, taken to send it.
    #[serde(skip)]
    kickoff_memo: Memo<Request>,
    /// Why the last manifest refresh failed (K8): the job kept its result.
    #[serde(skip)]
    refresh_error: Option<Error>,
    /// "Still running" answers to the current manifest refresh (K8).
    #[serde(skip)]
    refresh_running: u32,
}

/// 2: cancel, cleanup and the token are sub-states (version 1 kept them as flags).
const STATE_VERSION: u32 = 2;
