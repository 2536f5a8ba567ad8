//! Byte-range resume (protocol K1, K2, K5): a broken body continues with
//! `Range` and `If-Range` under the representation's validator, and a file
//! can continue in another process from its checkpoint.

use super::{DownloadError, FileCheckpoint, FileDownload, FileState};
use crate::http::header;
use crate::origin::redact_text;
use crate::retry::RetryAfter;
use crate::taken::Taken;

/// Where a file stands for a byte-range resume: the representation's
/// validator (a strong ETag, else Last-Modified), whether the server takes
/// ranges, the encoded bytes of it fed so far, and the offset the next
/// request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RangeState {
    pub(super) validator: Option<String>,
    pub(super) accepts: bool,
    /// The body is not content-encoded: its byte offsets are line offsets too,
    /// so it can continue in another process (K5).
    pub(super) identity: bool,
    pub(super) received: u64,
    /// `received` at the last break: a break after more bytes is progress.
    pub(super) last_break: u64,
    pub(super) resume_from: Option<u64>,
    pub(super) resumes: u32,
    pub(super) restarts: u32,
}

impl RangeState {
    /// The whole file again: what was learned of the body is dropped, the
    /// counts of resumes and restarts are kept.
    pub(super) fn start_over(&mut self) {
        *self = RangeState { restarts: self.restarts, resumes: self.resumes, ..RangeState::default() };
    }
}

/// The representation's validator for `If-Range` (RFC 9110 §13.1.5): a
/// strong ETag, else Last-Modified. A weak ETag cannot be used.
pub(super) fn validator(headers: &[(String, String)]) -> Option<String> {
    match header(headers, "ETag") {
        Some(e) if !e.starts_with("W/") && !e.is_empty() => Some(e.to_owned()),
        _ => header(headers, "Last-Modified").map(str::to_owned),
    }
}

/// The first byte of `Content-Range: bytes START-END/TOTAL`.
pub(super) fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

impl FileDownload {
    /// The request failed, before or during the body (reset, timeout,
    /// truncated stream). Retried within the budget; resources already
    /// handed out are not handed out again.
    ///
    /// When the server takes ranges and named the representation (ETag or
    /// Last-Modified), the next request continues with `Range: bytes=N-` and
    /// `If-Range` instead of fetching the file again (protocol K1; with gzip,
    /// the decoder's state is kept in memory: K2).
    pub fn handle_transport_error(&mut self, id: u64, message: &str, now_ms: u64) -> Result<(), DownloadError> {
        match self.state {
            FileState::InFlight { id: i } | FileState::Streaming { id: i } if i == id => {
                self.check_raised()?;
                let broke_mid_body = self.state == (FileState::Streaming { id });
                if broke_mid_body && self.range.accepts && self.range.validator.is_some() && self.range.received > 0 {
                    // Bytes arrived since the last break: that was progress, not a failing
                    // server. Continue at once, and do not spend the retry budget on it
                    // (a 1 GB file cut every 100 MB is 10 breaks, each a step forward).
                    let progressed = self.range.received > self.range.last_break;
                    self.range.last_break = self.range.received;
                    self.range.resume_from = Some(self.range.received);
                    if progressed {
                        self.failures = 0;
                        return self.retry(redact_text(message), RetryAfter::Delay(0), now_ms);
                    }
                } else if self.range.resume_from.is_none() {
                    self.range.received = 0;
                }
                self.retry(redact_text(message), RetryAfter::Absent, now_ms)
            }
            _ => Err(DownloadError::Usage(format!("request {id} is not in flight"))),
        }
    }

    /// Where this file could continue in another process, if it can (K5): an
    /// identity body of a server that takes ranges, with a validator, and at
    /// least one line handed out (and none being skipped after a retry).
    pub fn checkpoint(&self) -> Option<FileCheckpoint> {
        let r = &self.range;
        let carry = self.splitter.partial_len() as u64;
        (r.identity && r.accepts && self.delivered > 0 && self.seen >= self.delivered && r.received >= carry)
            .then(|| FileCheckpoint {
                offset: r.received - carry,
                validator: r.validator.clone().unwrap_or_default(),
                resources: self.delivered,
                invalid: self.invalid,
                taken: self.taken.segments(),
            })
            .filter(|c| !c.validator.is_empty())
    }

    /// Continues a file an earlier process left at `checkpoint` (K5): the
    /// first request asks for `Range: bytes=offset-` with `If-Range`; a 206
    /// continues after the resources already handed out, a 200 starts over
    /// and skips them.
    pub fn resume_from(mut self, checkpoint: FileCheckpoint) -> Self {
        self.delivered = checkpoint.resources;
        self.invalid = checkpoint.invalid;
        self.taken = Taken::after(checkpoint.taken);
        self.earlier_bytes = checkpoint.offset;
        self.range = RangeState {
            validator: Some(checkpoint.validator),
            accepts: true,
            identity: true,
            received: checkpoint.offset,
            resume_from: Some(checkpoint.offset),
            ..RangeState::default()
        };
        self
    }

    /// Range resumes (206 continuations) and restarts (a 200 to a range
    /// request) so far.
    pub fn range_counts(&self) -> (u32, u32) {
        (self.range.resumes, self.range.restarts)
    }
}
