//! The coordinator's public vocabulary: the step the caller takes next, a
//! file's result, progress totals and the per-origin limits (K3).

use crate::download::{DownloadError, FileReport};
use crate::http::Request;
use crate::manifest::PlannedFile;
use serde::{Deserialize, Serialize};

/// The next thing the caller does (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum DownloadStep {
    /// Send this request for file `file` (an index into [`Downloads::files`](super::Downloads::files)).
    Send {
        /// Which file.
        file: usize,
        /// The request.
        request: Request,
    },
    /// Get a new token for every file that needs it, then call
    /// [`Downloads::token_refreshed`](super::Downloads::token_refreshed) (or [`Downloads::token_unavailable`](super::Downloads::token_unavailable)).
    RefreshToken,
    /// Re-fetch the manifest once for all files (E4), then call
    /// [`Downloads::manifest_refreshed`](super::Downloads::manifest_refreshed) with the fresh plan.
    RefreshManifest,
    /// Nothing to start before `until_ms`; in-flight files may answer earlier.
    Wait {
        /// When to call [`Downloads::next`](super::Downloads::next) again.
        until_ms: u64,
        /// `until_ms - now`.
        delay_ms: u64,
    },
    /// Every file that may run is in flight: call [`Downloads::next`](super::Downloads::next) after the next response.
    Idle,
    /// Every file has its result.
    Done,
}

/// One file's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FileResult {
    /// The file as planned (after a refresh, the fresh entry).
    pub file: PlannedFile,
    /// Its figures, when it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<FileReport>,
    /// Why it failed, when it did. The other files are unaffected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(type = "DownloadError", optional))]
    pub error: Option<DownloadError>,
}

/// Totals for a progress bar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct DownloadProgress {
    /// Files selected.
    pub files: usize,
    /// Files completed.
    pub files_done: usize,
    /// Files that failed.
    pub files_failed: usize,
    /// Files being downloaded now.
    pub files_active: usize,
    /// Resources handed out so far.
    pub resources: u64,
    /// Decoded bytes so far (completed files and the final attempt of running ones).
    pub bytes: u64,
    /// The sum of the manifest's counts, when every selected file has one.
    pub expected_resources: Option<u64>,
    /// The per-origin limits now (they halve on 429/503 and grow back: K3).
    pub origin_limits: Vec<OriginLimit>,
}

/// How many files run at once against one origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OriginLimit {
    /// `scheme://host:port`.
    pub origin: String,
    /// Files at once now.
    pub limit: u32,
}

/// A change of an origin's limit, for logs and progress (K3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LimitChange {
    /// `scheme://host:port`.
    pub origin: String,
    /// The limit before.
    pub from: u32,
    /// The limit after.
    pub to: u32,
    /// Why: `throttled` (a 429 or 503) or `recovered` (a run of successes).
    pub reason: String,
}
