//! The download's public vocabulary: what the caller does next, what to do
//! with a body, how lines are checked and counted, a checkpoint (K5, K7) and
//! a finished file's report.

use crate::http::Request;
use crate::manifest::FileKind;
use crate::taken::TakenSegment;
use serde::{Deserialize, Serialize};

/// What the caller does next for this file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum DownloadAction {
    /// Send this GET; then call [`FileDownload::handle_head`](super::FileDownload::handle_head) with the status
    /// and headers, and stream the body if told to.
    Send {
        /// The request.
        request: Request,
    },
    /// Wait until `until_ms` (backoff after 5xx, 429, a reset).
    Wait {
        /// When to call again.
        until_ms: u64,
        /// `until_ms - now`.
        delay_ms: u64,
    },
    /// Get a fresh token (the file answered 401), then call again.
    RefreshToken,
    /// The URL expired (403/404/410, or 401 without a token): re-fetch the
    /// manifest once ([`crate::Job::refresh_manifest`]) and hand the file's
    /// new entry to [`FileDownload::replace_file`](super::FileDownload::replace_file) (protocol E4).
    RefreshManifest,
    /// Finished; every line was handed out.
    Done {
        /// Figures for the file.
        report: FileReport,
    },
}

/// Where a partly downloaded file can continue in another process (protocol
/// K5): an identity-encoded body of a server that takes ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileCheckpoint {
    /// Bytes of the body up to the end of the last line handed out.
    pub offset: u64,
    /// The representation's validator, for `If-Range`.
    pub validator: String,
    /// Lines handed out up to `offset` (the caller's copy holds them):
    /// resources and invalid lines.
    pub resources: u64,
    /// Of those, lines that are not resources (so the count check adds up).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub invalid: u64,
    /// The lines handed out, as their length and digest (K7): the caller's
    /// copy is checked against them before it continues, and a body that
    /// starts over is checked against them before they are skipped. Empty in
    /// a checkpoint from before K7: such a file continues only by a 206.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taken: Vec<TakenSegment>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What to do with the body of the response: the answer of
/// [`FileDownload::handle_head`](super::FileDownload::handle_head) and of every [`FileDownload::feed`](super::FileDownload::feed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HeadDecision {
    /// Feed the (rest of the) body to [`FileDownload::feed`](super::FileDownload::feed), then call
    /// [`FileDownload::finish`](super::FileDownload::finish) when it ends.
    Stream,
    /// Stop reading: drop the body (close the connection if it is still
    /// arriving) and call [`FileDownload::next_action`](super::FileDownload::next_action). The engine has
    /// already decided what comes next (a redirect, a retry, a fresh token).
    Discard,
}

/// How strictly lines are checked. A line is a resource only if it passes:
/// the report's `resources` and the manifest's count check count only those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Validation {
    /// Not at all (a binding that parses each line itself reports the bad
    /// ones with [`FileDownload::report_invalid_line`](super::FileDownload::report_invalid_line)).
    None,
    /// A line must look like an object (`{` ... `}`): nearly free, but
    /// `{not json}` passes.
    Structural,
    /// A line must parse as a JSON object (the default: issue 19, "a line is a
    /// resource only if it parses as a JSON object, in every path").
    #[default]
    Json,
}

/// What a count mismatch does to a file (protocol D2, issue 10: "one bad
/// file loses nothing else").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum CountCheck {
    /// The file fails with [`DownloadError::CountMismatch`](super::DownloadError::CountMismatch) (the others are unaffected).
    #[default]
    Strict,
    /// The file completes; [`FileReport::count_mismatch`] and a warning say so.
    Lenient,
}

/// The manifest's count against what the file held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CountMismatchInfo {
    /// `count` from the manifest.
    pub expected: u64,
    /// Resources in the file.
    pub actual: u64,
}

/// A line that is not a JSON resource (protocol E6: a per-line report, not a crash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct InvalidLine {
    /// 1-based resource line number (blank lines not counted).
    pub line: u64,
    /// What is wrong with it.
    pub message: String,
}

pub use crate::limits::MAX_INVALID_REPORTED;

/// What a line that is not a resource does to its file (issue 20: one rule,
/// in the core, for every binding).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum InvalidLines {
    /// The line is counted and (among the first [`MAX_INVALID_REPORTED`])
    /// described in the report; the file completes with every line (the default).
    #[default]
    Report,
    /// The file fails with [`DownloadError::InvalidLine`](super::DownloadError::InvalidLine) at its first
    /// invalid line: the lines before it were handed out, that line and the
    /// rest are not (a folder download keeps no copy of a failed file).
    Raise,
}

/// Figures for a finished file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FileReport {
    /// The URL that finally served the file.
    pub url: String,
    /// Which manifest list.
    pub kind: FileKind,
    /// The resource type.
    pub resource_type: Option<String>,
    /// The safe file name from the plan.
    pub file_name: String,
    /// Resources handed out: non-blank lines that passed validation (invalid
    /// lines are handed out too, and counted in `invalid_lines` only).
    pub resources: u64,
    /// The manifest's count, if any (already checked equal).
    pub expected: Option<u64>,
    /// Decoded bytes of the whole file: the body that completed it, and,
    /// when this process continued an earlier one's checkpoint (K5) with a
    /// 206, the bytes before that checkpoint too (not only the resumed tail).
    pub bytes: u64,
    /// Lines that failed validation (handed out anyway: nothing is lost).
    pub invalid_lines: u64,
    /// 1-based number of the first invalid line.
    pub first_invalid_line: Option<u64>,
    /// The first [`MAX_INVALID_REPORTED`] invalid lines, with what is wrong.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalid: Vec<InvalidLine>,
    /// Set when the file's count differs from the manifest's ([`CountCheck::Lenient`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_mismatch: Option<CountMismatchInfo>,
    /// Things worth telling a human about this file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Requests sent, retries included.
    pub attempts: u32,
    /// Broken bodies continued with a range request (206), not fetched again (K1).
    #[serde(default)]
    pub range_resumes: u32,
    /// Range requests answered with the whole file again (200, or another range).
    #[serde(default)]
    pub range_restarts: u32,
}
