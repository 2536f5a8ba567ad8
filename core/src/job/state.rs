//! The job's saved state: the main line (`State`) and the sub-states beside
//! it (cancel, cleanup, token), each a small machine of its own (see the
//! state diagram in the crate docs).

use super::types::{CancelResult, CleanupResult};
use crate::http::RequestKind;
use crate::outcome::Outcome;
use crate::tagged;
use crate::Error;
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub(super) enum State {
    Ready,
    KickoffRetry { at_ms: u64 },
    Polling { at_ms: u64 },
    Fetching { url: String, kind: RequestKind, at_ms: u64, auth: bool },
    Done { outcome: Box<Outcome> },
    Errored { error: Error },
}

// Same shape as a derive with `tag = "state"` (see `tagged`).
impl<'de> Deserialize<'de> for State {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const STATES: &[&str] = &["ready", "kickoffRetry", "polling", "fetching", "done", "errored"];
        tagged::deserialize(d, "state", |state, f| {
            Ok(match state {
                "ready" => State::Ready,
                "kickoffRetry" => State::KickoffRetry { at_ms: f.req("atMs")? },
                "polling" => State::Polling { at_ms: f.req("atMs")? },
                "fetching" => State::Fetching {
                    url: f.req("url")?,
                    kind: f.req("kind")?,
                    at_ms: f.req("atMs")?,
                    auth: f.req("auth")?,
                },
                "done" => State::Done { outcome: f.req("outcome")? },
                "errored" => State::Errored { error: f.req("error")? },
                other => return Err(tagged::unknown(other, STATES)),
            })
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InFlight {
    pub(super) id: u64,
    pub(super) kind: RequestKind,
    pub(super) url: String,
}

/// Where a request that is not the job's main line stands: asked for by the
/// caller, sent, answered. Cancel and cleanup are such sub-states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum Phase3 {
    Asked,
    Sent,
    Answered,
}

/// The cancel sub-state (protocol F): asked → sent → answered. A cancel the
/// server refused (`Rejected`) leaves the job running and may be asked again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Cancel {
    pub(super) phase: Phase3,
    /// The answer, once there is one.
    pub(super) result: Option<CancelResult>,
    /// Medplum: `AsyncJob/$cancel` refuses a running (`active`) export; its
    /// working cancel is `DELETE [base]/bulkdata/export/{id}`, tried once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) fallback: Option<String>,
}

impl Cancel {
    /// Asked and not refused: a 404/410 on the status URL now means "cancelled" (F2).
    pub(super) fn in_effect(c: &Option<Cancel>) -> bool {
        c.as_ref().is_some_and(|c| !matches!(c.result, Some(CancelResult::Rejected { .. })))
    }
}

/// Medplum (`medplum.md`, "Observed later"): an async batch is not stopped by a cancel the server
/// accepted; its AsyncJob reads `cancelled`, then `completed` a few seconds later with every entry
/// applied. So after such a cancel the job confirms before it reports `cancelled`: it polls at once,
/// and once the AsyncJob reads `cancelled`, once more [`CONFIRM_CANCEL_MS`] later. A job that ran
/// to completion reports its real outcome with a warning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CancelConfirm {
    /// The outcome reported if no poll contradicts the cancel.
    pub(super) cancelled: Box<Outcome>,
    /// The AsyncJob has read `cancelled`: the next poll is the confirming one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) seen_cancelled: bool,
    /// Polls since the cancel that still read the job running.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) running_reads: u8,
}

/// How long after the AsyncJob read `cancelled` the confirming poll goes (the observed batch
/// completed about 3 s after its cancel).
pub(super) const CONFIRM_CANCEL_MS: u64 = 5_000;

fn is_zero(n: &u8) -> bool {
    *n == 0
}

/// The cleanup sub-state (protocol F3): asked → sent → answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Cleanup {
    pub(super) phase: Phase3,
    pub(super) result: Option<CleanupResult>,
}

/// The token sub-state (protocol H5): accepted → refused (401; the next
/// action asks for a new token) → renewed (a second 401 ends the job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum TokenPhase {
    #[default]
    Accepted,
    Refused,
    Renewed,
}

/// The last 401: where, and what the server said (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Refusal {
    pub(super) url: String,
    pub(super) http_status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) server_message: Option<String>,
}

/// A cache, not state: left out of the saved state (a resumed job rebuilds it
/// on demand) and ignored by equality.
#[derive(Debug, Clone)]
pub(super) struct Memo<T>(pub(super) Option<T>);

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo(None)
    }
}

impl<T> PartialEq for Memo<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Polls ask "may the token go to this URL?" about the same status URL every
/// time, and answering parses URLs (it was most of the engine's cost of a
/// poll). The rule's inputs never change during a job, so the last URL asked
/// is the key of the answer.
pub(super) type TokenMemo = Memo<(String, bool)>;
