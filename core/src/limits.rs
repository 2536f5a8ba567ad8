//! Every ceiling and default a binding needs, in one place, so each binding
//! reads (and the wasm package exports) the core's figures instead of a copy.
//!
//! The constants stay defined beside the code that enforces them; this module
//! names them all, and [`Ceilings`] carries them as one serializable value.

use serde::{Deserialize, Serialize};

pub use crate::ndjson::DEFAULT_MAX_LINE;
pub use crate::retry::DEFAULT_MAX_RESPONSE_BYTES;

/// How much of an error response's body a binding reads for
/// [`crate::DownloadError::with_body`]: 64 KiB.
pub const MAX_ERROR_BODY: usize = 64 << 10;

/// How many [`crate::InvalidLine`]s a file's report keeps (the count goes on).
pub const MAX_INVALID_REPORTED: usize = 100;

/// The default [`crate::DownloadOptions::max_per_origin`]: files at once from one origin.
pub const DEFAULT_MAX_PER_ORIGIN: u32 = 4;

/// The default [`crate::DownloadOptions::max_total`]: files at once in all
/// (the native client runs one worker thread per file at most this many).
pub const DEFAULT_MAX_TOTAL: u32 = 64;

/// The default [`crate::DownloadOptions::expiry_margin_ms`]: links within a
/// minute of their expiry count as expired (K4).
pub const DEFAULT_EXPIRY_MARGIN_MS: u64 = 60_000;

/// The default [`crate::AttachmentOptions::max_size`]: the largest attachment
/// taken, 4 MiB (protocol M6), checked against its `size`, its
/// `Content-Length` and its bytes while streaming.
pub const DEFAULT_ATTACHMENT_MAX_SIZE: u64 = 4 << 20;

/// The ceilings and defaults above as one value (for a binding that exports
/// them: `Ceilings::default()` serialized to JSON, camelCase names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Ceilings {
    /// [`MAX_ERROR_BODY`].
    pub max_error_body: u64,
    /// [`MAX_INVALID_REPORTED`].
    pub max_invalid_reported: u64,
    /// [`DEFAULT_MAX_RESPONSE_BYTES`].
    pub default_max_response_bytes: u64,
    /// [`DEFAULT_MAX_LINE`].
    pub default_max_line: u64,
    /// [`DEFAULT_MAX_PER_ORIGIN`].
    pub default_max_per_origin: u32,
    /// [`DEFAULT_MAX_TOTAL`].
    pub default_max_total: u32,
    /// [`DEFAULT_EXPIRY_MARGIN_MS`].
    pub default_expiry_margin_ms: u64,
    /// [`DEFAULT_ATTACHMENT_MAX_SIZE`].
    pub default_attachment_max_size: u64,
}

impl Default for Ceilings {
    fn default() -> Self {
        Ceilings {
            max_error_body: MAX_ERROR_BODY as u64,
            max_invalid_reported: MAX_INVALID_REPORTED as u64,
            default_max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            default_max_line: DEFAULT_MAX_LINE as u64,
            default_max_per_origin: DEFAULT_MAX_PER_ORIGIN,
            default_max_total: DEFAULT_MAX_TOTAL,
            default_expiry_margin_ms: DEFAULT_EXPIRY_MARGIN_MS,
            default_attachment_max_size: DEFAULT_ATTACHMENT_MAX_SIZE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 20: the ceilings a binding exports are the core's own, under camelCase names
    #[test]
    fn ceilings_are_the_cores_constants() {
        let c = serde_json::to_value(Ceilings::default()).unwrap();
        assert_eq!(c["maxErrorBody"], 65_536);
        assert_eq!(c["maxInvalidReported"], 100);
        assert_eq!(c["defaultMaxResponseBytes"], 256 << 20);
        assert_eq!(c["defaultMaxLine"], 64 << 20);
        assert_eq!(c["defaultMaxPerOrigin"], 4);
        assert_eq!(c["defaultMaxTotal"], 64);
        assert_eq!(c["defaultExpiryMarginMs"], 60_000);
        assert_eq!(c["defaultAttachmentMaxSize"], 4 << 20);
        let d = crate::DownloadOptions::default();
        assert_eq!((d.max_per_origin, d.max_total, d.max_line), (DEFAULT_MAX_PER_ORIGIN, DEFAULT_MAX_TOTAL, 64 << 20));
        assert_eq!(d.expiry_margin_ms, DEFAULT_EXPIRY_MARGIN_MS);
        assert_eq!(d.attachments.max_size, DEFAULT_ATTACHMENT_MAX_SIZE);
        assert_eq!(d.attachments.mode, crate::AttachmentMode::Off);
    }
}
