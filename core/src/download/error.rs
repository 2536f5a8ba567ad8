//! Why a file's download stopped for good: one typed error per failure, with
//! the file's URL (without its query, K10) and the server's own words.

use crate::manifest::FileKind;
use crate::ndjson::NdjsonError;
use serde::{Deserialize, Serialize};

/// Why a download stopped for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case", rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum DownloadError {
    /// The plan refused this file (token rule, insecure URL).
    #[error("download of {url} refused: {reason}")]
    Blocked {
        /// The file URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server answered with a final HTTP error.
    #[error("{url} answered HTTP {status}{}{}", refreshed_note(*manifest_refreshed), server_note(server_message))]
    Http {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The server's own words (an OperationOutcome's text, or the start of a
        /// plain-text body), once the binding handed the body to [`DownloadError::with_body`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_message: Option<String>,
        /// Whether the manifest had already been re-fetched once for fresh links (E4).
        #[serde(default)]
        manifest_refreshed: bool,
    },
    /// The server refused the token and no new one could be had (or a new one was refused too).
    #[error("{url} answered HTTP 401: {reason}{}", server_note(server_message))]
    Unauthorized {
        /// The URL.
        url: String,
        /// What happened: "even after a token refresh", or why no refresh was possible.
        reason: String,
        /// The server's own words, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_message: Option<String>,
    },
    /// The file has a different number of resources than the manifest says
    /// (with [`CountCheck::Strict`](super::CountCheck::Strict)). Only this file failed.
    #[error("{url}: the manifest's count for this {} is {expected}, the file has {actual} resources", kind_label(*kind, resource_type.as_deref()))]
    CountMismatch {
        /// The URL.
        url: String,
        /// Which manifest list the file is from: a mismatch in an `error` file
        /// is about OperationOutcomes, not lost data.
        kind: FileKind,
        /// The resource type, when the manifest says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource_type: Option<String>,
        /// `count` from the manifest.
        expected: u64,
        /// Lines received.
        actual: u64,
    },
    /// The file's decoded bytes differ from the manifest's `fileSize`, also
    /// when fetched a second time (protocol L13). Only this file failed.
    #[error("{url}: the manifest's fileSize for this {} is {expected} bytes, the file has {actual}", kind_label(*kind, resource_type.as_deref()))]
    SizeMismatch {
        /// The URL (without its query, K10).
        url: String,
        /// Which manifest list the file is from.
        kind: FileKind,
        /// The resource type, when the manifest says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource_type: Option<String>,
        /// `fileSize` from the manifest.
        expected: u64,
        /// Decoded bytes received.
        actual: u64,
    },
    /// A line of the file is not a JSON resource, and the download was asked
    /// to fail on one ([`InvalidLines::Raise`](super::InvalidLines::Raise)); by default
    /// ([`InvalidLines::Report`](super::InvalidLines::Report)) a bad line is recorded in
    /// [`FileReport::invalid`](super::FileReport::invalid) and every line is still delivered.
    #[error("{url}: line {line} is not a FHIR resource: {message}")]
    InvalidLine {
        /// The URL.
        url: String,
        /// 1-based resource line number (blank lines not counted).
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// A line was longer than the limit.
    #[error("{url}: {source}")]
    Ndjson {
        /// The URL.
        url: String,
        /// The splitter's error.
        source: NdjsonError,
    },
    /// The body could not be decoded, even after retries.
    #[error("{url}: {message}")]
    Decode {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// 5xx, 429 or resets outlasted the retry budget.
    #[error("{url}: gave up after {attempts} attempts: {last}{}", server_note(server_message))]
    RetriesExhausted {
        /// The URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
        /// The server's own words in its last answer (an OperationOutcome's
        /// text, or the start of a plain-text body), once the binding handed
        /// that body to [`DownloadError::with_body`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_message: Option<String>,
    },
    /// A redirect tried to downgrade to http or looped.
    #[error("{url}: {reason}")]
    Redirect {
        /// The URL.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The file changed on the server after part of it was handed out (protocol
    /// K7): a continuation that was not a 206 under the same validator did not
    /// start with the bytes already taken. A consumer that cannot take the file
    /// again from the start (a stream) gets this instead of two versions mixed;
    /// a folder download starts the file over instead (`restart_changed`).
    #[error("{url}: the file changed on the server after {taken} line(s) were handed out; a continuation would mix two versions")]
    FileChanged {
        /// The URL (without its query, K10).
        url: String,
        /// Lines handed out before the change was seen.
        taken: u64,
    },
    /// The manifest refresh this file needed (expired links, E4/K4) failed;
    /// the job kept its result (K8) and the file can be downloaded later.
    #[error("{url}: the link needed a manifest refresh, and the refresh failed: {cause}")]
    RefreshFailed {
        /// The URL (without its query, K10).
        url: String,
        /// Why the refresh failed (the job's error, e.g. `retries_exhausted`).
        cause: String,
    },
    /// The file is larger than its plan allows ([`PlannedFile::max_bytes`](crate::PlannedFile::max_bytes),
    /// an attachment's size limit, protocol M6): its `Content-Length` says so,
    /// or its decoded bytes passed the limit while streaming. Not retried.
    #[error("{url}: larger than the size limit of {limit} bytes{}", declared_note(*declared))]
    TooLarge {
        /// The URL (without its query, K10).
        url: String,
        /// The limit, in decoded bytes.
        limit: u64,
        /// The `Content-Length` the server gave, when that is how it was seen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        declared: Option<u64>,
    },
    /// The API was used wrongly.
    #[error("invalid use of FileDownload: {0}")]
    Usage(String),
}

impl DownloadError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            DownloadError::Blocked { .. } => "blocked",
            DownloadError::Http { .. } => "http",
            DownloadError::Unauthorized { .. } => "unauthorized",
            DownloadError::CountMismatch { .. } => "count_mismatch",
            DownloadError::SizeMismatch { .. } => "size_mismatch",
            DownloadError::InvalidLine { .. } => "invalid_line",
            DownloadError::Ndjson { .. } => "line_too_long",
            DownloadError::Decode { .. } => "decode",
            DownloadError::RetriesExhausted { .. } => "retries_exhausted",
            DownloadError::Redirect { .. } => "redirect",
            DownloadError::FileChanged { .. } => "file_changed",
            DownloadError::RefreshFailed { .. } => "refresh_failed",
            DownloadError::TooLarge { .. } => "too_large",
            DownloadError::Usage(_) => "usage",
        }
    }

    /// Adds the server's own words from an error response's body (an
    /// OperationOutcome's text, or the start of a text body) to an
    /// [`DownloadError::Http`], [`DownloadError::Unauthorized`] or
    /// [`DownloadError::RetriesExhausted`] (the last answer's). Bindings read
    /// at most [`MAX_ERROR_BODY`] bytes of the body and call this.
    pub fn with_body(mut self, body: &[u8]) -> DownloadError {
        if let DownloadError::Http { server_message, .. }
        | DownloadError::Unauthorized { server_message, .. }
        | DownloadError::RetriesExhausted { server_message, .. } = &mut self
        {
            if server_message.is_none() {
                *server_message = crate::outcome::server_text(body);
            }
        }
        self
    }
}

pub use crate::limits::MAX_ERROR_BODY;

fn server_note(m: &Option<String>) -> String {
    m.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
}

fn declared_note(declared: Option<u64>) -> String {
    declared.map(|d| format!(" (Content-Length: {d})")).unwrap_or_default()
}

fn refreshed_note(refreshed: bool) -> &'static str {
    if refreshed {
        " even after the manifest was re-fetched once for fresh links"
    } else {
        ""
    }
}

/// "Patient file", "error file (OperationOutcome)", "deleted file".
pub(super) fn kind_label(kind: FileKind, resource_type: Option<&str>) -> String {
    match (kind, resource_type) {
        (FileKind::Output, Some(t)) => format!("{t} output file"),
        (FileKind::Output, None) => "output file".to_owned(),
        (FileKind::Error, _) => "error file (OperationOutcome)".to_owned(),
        (FileKind::Deleted, _) => "deleted file (transaction Bundles of deletions)".to_owned(),
        (FileKind::Attachment, _) => "attachment".to_owned(),
    }
}
