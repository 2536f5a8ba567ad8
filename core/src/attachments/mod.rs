//! Attachments (protocol M, issue 24): the documents behind
//! `DocumentReference.content[].attachment`, `DiagnosticReport.presentedForm[]`
//! and `Media.content`, fetched beside the NDJSON files.
//!
//! Like the rest of the crate this module decides and moves no bytes:
//!
//! ```text
//!  NDJSON line ──find_in_line──> [AttachmentRef] ──AttachmentPlan::add──> PlannedFile (kind Attachment)
//!     (M1, M2: url and no data,        (M3: resolved against the FHIR base, deduplicated by URL,
//!      filtered by media type)           M4: token only to the FHIR origin or an allowed one,
//!                                        blocked: http under https, declared size over max_size)
//!  PlannedFile ──Downloads / FileDownload (the binding moves the bytes; max_bytes → too_large)──> body
//!  body ──decode_attachment──> Fetched (M5: a JSON Binary decoded, an OperationOutcome a typed
//!                                       error, the Attachment's hash checked)
//!  files mode:  Fetched.bytes → attachments/<attachment_file_name> (M8), AttachmentReport per URL
//!  inline mode: inline_attachments(line, ..) → the line with data/size/hash/contentType (M7)
//!  a failure:   the line unchanged (M9), the report carries the error
//! ```
//!
//! A folder download (Rust client, CLI, Python) plans every attachment of
//! the finished NDJSON files with [`AttachmentPlan`]; a stream of resources
//! (Node, Python) uses the [`Hydrator`], which holds a line until its
//! attachments are settled.

mod decode;
mod find;
mod hydrator;
mod inline;
mod plan;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_flow;

pub use decode::{decode_attachment, AttachmentError, Fetched};
pub use find::{find_attachments, find_in_line, resolve_attachment_url};
pub use hydrator::{Hydrate, Hydrator};
pub use inline::inline_attachments;
pub use plan::{attachment_file_name, AttachmentPlan};

use crate::limits::DEFAULT_ATTACHMENT_MAX_SIZE;
use serde::{Deserialize, Serialize};

/// How attachments are handled (the same names in every binding).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum AttachmentMode {
    /// Not fetched (the default).
    #[default]
    Off,
    /// Fetched and put into the resources as `data`, `size`, `hash` (M7).
    Inline,
    /// Fetched and saved under `attachments/`, with a report (M8).
    Files,
}

/// Which attachments are fetched and how (part of
/// [`DownloadOptions`](crate::DownloadOptions) as `attachments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AttachmentOptions {
    /// Off (default), inline or files.
    pub mode: AttachmentMode,
    /// Media types to fetch, matched on the media type without parameters,
    /// by prefix (`"text/"` matches `text/plain`), case-insensitively. Empty
    /// (the default): every type. An attachment without `contentType` is
    /// fetched only when this is empty (M2).
    pub types: Vec<String>,
    /// The largest attachment taken, in bytes (default
    /// [`DEFAULT_ATTACHMENT_MAX_SIZE`], 4 MiB): checked against the
    /// Attachment's `size` (planned as blocked), the `Content-Length` and the
    /// bytes while streaming (`too_large`), M6.
    pub max_size: u64,
    /// Also look in every other Attachment-shaped element (M1, opt-in): any
    /// object with `url` and one of `contentType`, `size`, `hash`, `title`,
    /// anywhere in the resource.
    pub all_elements: bool,
}

impl Default for AttachmentOptions {
    fn default() -> Self {
        AttachmentOptions {
            mode: AttachmentMode::Off,
            types: Vec::new(),
            max_size: DEFAULT_ATTACHMENT_MAX_SIZE,
            all_elements: false,
        }
    }
}

/// One attachment found in a resource (M1, M2): only ones with `url` and no `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentRef {
    /// JSON pointer of the Attachment object inside the resource, e.g.
    /// `/content/0/attachment`.
    pub pointer: String,
    /// `url` as written (maybe relative, `Binary/123`).
    pub url: String,
    /// `contentType` as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `size` as written (a number, or an R5 integer64 string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// `hash` as written (base64 SHA-1), checked after download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// A failure as a report carries it: the stable code and the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ErrorInfo {
    /// The error's code (`too_large`, `attachment_outcome`, `hash_mismatch`,
    /// `bad_binary`, or a download's own: `http`, `blocked`, ...).
    pub code: String,
    /// What happened, where (the URL redacted) and the server's own words.
    pub message: String,
}

/// One planned attachment's outcome (M8), for `attachments.json` and the
/// bindings' reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AttachmentReport {
    /// The resolved URL, redacted (no query, K10).
    pub url: String,
    /// Where it was saved, `attachments/<name>` (files mode, once fetched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub file_name: Option<String>,
    /// The media type of the bytes (a JSON Binary's own `contentType`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub content_type: Option<String>,
    /// Decoded bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub size: Option<u64>,
    /// Base64 SHA-1 of the bytes (as `Attachment.hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub sha1: Option<String>,
    /// Why it was not taken, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub error: Option<ErrorInfo>,
}

/// The media type without parameters, trimmed and lower-cased.
pub(crate) fn media_type(v: &str) -> String {
    v.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}
