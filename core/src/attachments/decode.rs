//! A fetched attachment's body (M5): a FHIR `Binary` in JSON decoded from its
//! `data`, an OperationOutcome a typed error, anything else the bytes as they
//! are; then the Attachment's `hash` checked.

use super::{media_type, ErrorInfo};
use crate::download::DownloadError;
use crate::origin::redact_url;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use sha1::{Digest, Sha1};

/// A fetched attachment after M5 decoding and the hash check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The media type of the bytes: a JSON Binary's `contentType`, else the
    /// response's `Content-Type` (parameters kept).
    pub content_type: Option<String>,
    /// The decoded bytes.
    pub bytes: Vec<u8>,
    /// Their length.
    pub size: u64,
    /// Their SHA-1, base64 (as `Attachment.hash`).
    pub sha1: String,
}

/// Why one attachment was not taken. The resource it belongs to stays as it
/// is (M9); its NDJSON file is unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttachmentError {
    /// The server answered with an OperationOutcome instead of the content
    /// (M5). Code `attachment_outcome`.
    #[error("{url} answered with an OperationOutcome instead of the attachment: {text}")]
    Outcome {
        /// The resolved URL, redacted (K10).
        url: String,
        /// The OperationOutcome's own words (diagnostics, details or narrative).
        text: String,
    },
    /// The bytes' SHA-1 is not the Attachment's `hash`. Code `hash_mismatch`.
    #[error("{url}: the attachment's hash is {expected}, the bytes fetched have SHA-1 {actual} (base64)")]
    HashMismatch {
        /// The resolved URL, redacted.
        url: String,
        /// `hash` as the resource gives it.
        expected: String,
        /// The base64 SHA-1 of the bytes fetched.
        actual: String,
    },
    /// A JSON `Binary` whose `data` is missing or not base64. Code `bad_binary`.
    #[error("{url} answered with a FHIR Binary that cannot be decoded: {message}")]
    BadBinary {
        /// The resolved URL, redacted.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The fetch itself failed; the download's own code (`too_large`, `http`,
    /// `unauthorized`, `blocked`, `retries_exhausted`, ...).
    #[error(transparent)]
    Download(#[from] DownloadError),
}

impl AttachmentError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AttachmentError::Outcome { .. } => "attachment_outcome",
            AttachmentError::HashMismatch { .. } => "hash_mismatch",
            AttachmentError::BadBinary { .. } => "bad_binary",
            AttachmentError::Download(e) => e.code(),
        }
    }

    /// The code and message, as a report carries them.
    pub fn info(&self) -> ErrorInfo {
        ErrorInfo { code: self.code().to_owned(), message: self.to_string() }
    }
}

/// The base64 SHA-1 of some bytes (`Attachment.hash`).
pub(crate) fn sha1_base64(bytes: &[u8]) -> String {
    STANDARD.encode(Sha1::digest(bytes))
}

/// M5: a body whose `Content-Type` is `application/fhir+json` or
/// `application/json` and that is a `Binary` → its `data` base64-decoded,
/// with `Binary.contentType`; an OperationOutcome → [`AttachmentError::Outcome`];
/// anything else (other JSON too) → the bytes as they are. Then the bytes'
/// SHA-1 against `expected_hash` (the Attachment's `hash`, base64; hex is
/// accepted too) → [`AttachmentError::HashMismatch`]. `url` is the resolved URL
/// (only shown redacted).
pub fn decode_attachment(
    url: &str,
    body: Vec<u8>,
    content_type: Option<&str>,
    expected_hash: Option<&str>,
) -> Result<Fetched, AttachmentError> {
    let shown = || redact_url(url);
    let json = content_type.map(media_type).is_some_and(|m| m == "application/fhir+json" || m == "application/json");
    let (bytes, content_type) = match json.then(|| serde_json::from_slice::<Value>(&body).ok()).flatten() {
        Some(v) if v.get("resourceType").and_then(Value::as_str) == Some("Binary") => {
            let Some(data) = v.get("data") else {
                return Err(AttachmentError::BadBinary { url: shown(), message: "it has no data".into() });
            };
            let Some(data) = data.as_str() else {
                return Err(AttachmentError::BadBinary { url: shown(), message: "its data is not a string".into() });
            };
            let clean: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let bytes = STANDARD.decode(clean.as_bytes()).map_err(|e| AttachmentError::BadBinary {
                url: shown(),
                message: format!("its data is not base64 ({e})"),
            })?;
            let ct = v.get("contentType").and_then(Value::as_str).map(str::to_owned);
            (bytes, ct.or_else(|| content_type.map(str::to_owned)))
        }
        Some(v) if v.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome") => {
            let text = crate::outcome::server_text(&body)
                .unwrap_or_else(|| "(the OperationOutcome has no diagnostics or text)".to_owned());
            return Err(AttachmentError::Outcome { url: shown(), text });
        }
        _ => (body, content_type.map(str::to_owned)),
    };
    let sha1 = sha1_base64(&bytes);
    if let Some(expected) = expected_hash.map(str::trim).filter(|h| !h.is_empty()) {
        if !hash_matches(expected, &bytes, &sha1) {
            return Err(AttachmentError::HashMismatch { url: shown(), expected: expected.to_owned(), actual: sha1 });
        }
    }
    Ok(Fetched { content_type, size: bytes.len() as u64, bytes, sha1 })
}

/// `hash` against the bytes: base64 of the SHA-1 (R4), or its hex (seen in the wild).
fn hash_matches(expected: &str, bytes: &[u8], sha1: &str) -> bool {
    if expected == sha1 {
        return true;
    }
    let digest = Sha1::digest(bytes);
    match STANDARD.decode(expected.as_bytes()) {
        Ok(d) if d.len() == digest.len() => d == digest.as_slice(),
        _ => expected.len() == 40 && expected.eq_ignore_ascii_case(&hex::encode(digest)),
    }
}
