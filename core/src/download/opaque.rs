//! A file that is not NDJSON (its `outputFormat` is Parquet or another
//! non-NDJSON type, protocol L13): its body is opaque bytes, handed out as
//! they are decoded, with no lines and no count; the manifest's `fileSize` is
//! checked against the decoded bytes of every file that gives one.

use super::types::HeadDecision;
use super::{DownloadError, FileDownload, FileState};
use crate::http::header;
use crate::origin::redact_url;
use crate::retry::RetryAfter;
use std::convert::Infallible;

/// A media type without its parameters, for comparing two.
fn media(v: &str) -> &str {
    v.split(';').next().unwrap_or("").trim()
}

impl FileDownload {
    /// Whether this file is opaque bytes (L13).
    pub fn is_opaque(&self) -> bool {
        self.file.opaque_format.is_some()
    }

    /// A 200 for an opaque file: its `Content-Type` against the manifest's
    /// `outputFormat` (a warning when they differ), and a body that starts
    /// over after bytes were handed out: the caller's copy is cut to 0
    /// (`restart_changed`) or, for a stream that cannot take bytes back, the
    /// file fails with `file_changed`.
    pub(super) fn opaque_head(&mut self, headers: &[(String, String)]) -> Result<(), DownloadError> {
        let Some(format) = &self.file.opaque_format else { return Ok(()) };
        let got = header(headers, "Content-Type").map(media).unwrap_or("");
        // An attachment (M5) may come back as a FHIR Binary in JSON: not a warning.
        if self.file.kind != crate::manifest::FileKind::Attachment && !got.eq_ignore_ascii_case(media(format)) {
            let w = format!(
                "the file was served as '{got}', not the manifest's outputFormat '{format}': its bytes are kept as they are"
            );
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }
        if let Some(limit) = self.file.max_bytes {
            // An identity body's Content-Length is its decoded size (M6).
            let identity = header(headers, "Content-Encoding").map_or(true, |e| e.eq_ignore_ascii_case("identity"));
            let declared = header(headers, "Content-Length").and_then(|v| v.trim().parse::<u64>().ok());
            if let Some(d) = declared.filter(|d| identity && *d > limit) {
                self.state = FileState::Done;
                return Err(DownloadError::TooLarge { url: redact_url(&self.url), limit, declared: Some(d) });
            }
        }
        if self.raw > 0 {
            if !self.restart_changed {
                self.state = FileState::Done;
                return Err(DownloadError::FileChanged { url: redact_url(&self.url), taken: 0 });
            }
            self.raw = 0;
        }
        Ok(())
    }

    /// An opaque file's chunk: the decoded bytes go to `on_bytes` as they are.
    pub(super) fn feed_opaque(
        &mut self,
        chunk: &[u8],
        now_ms: u64,
        mut on_bytes: impl FnMut(&[u8]),
    ) -> Result<HeadDecision, DownloadError> {
        let Some(mut decoder) = self.decoder.take() else {
            return Err(DownloadError::Usage("no decoder".into()));
        };
        self.range.received += chunk.len() as u64;
        let raw = &mut self.raw;
        let r = decoder.decode(chunk, |b| {
            *raw += b.len() as u64;
            on_bytes(b);
            Ok::<(), Infallible>(())
        });
        self.decoder = Some(decoder);
        self.within_max()?;
        match r {
            Ok(_) => Ok(HeadDecision::Stream),
            Err(e) => self.corrupt(e.to_string(), now_ms),
        }
    }

    /// An opaque file's body ended: the last decoded bytes, its size, its report.
    pub(super) fn finish_opaque(&mut self, now_ms: u64, mut on_bytes: impl FnMut(&[u8])) -> Result<(), DownloadError> {
        let Some(mut decoder) = self.decoder.take() else {
            return Err(DownloadError::Usage("no decoder".into()));
        };
        let raw = &mut self.raw;
        let r = decoder.finish(|b| {
            *raw += b.len() as u64;
            on_bytes(b);
            Ok::<(), Infallible>(())
        });
        self.within_max()?;
        if let Err(e) = r {
            return self.retry(e.to_string(), RetryAfter::Absent, now_ms);
        }
        if !self.size_checked(now_ms)? {
            return Ok(());
        }
        // No lines: no resources, no count (the plan gives none), nothing invalid.
        let warnings = std::mem::take(&mut self.warnings);
        self.complete(0, None, warnings);
        Ok(())
    }

    /// The decoded bytes so far against the plan's `max_bytes` (M6): past it,
    /// the file fails with `too_large` (not retried: the body would be as big again).
    fn within_max(&mut self) -> Result<(), DownloadError> {
        match self.file.max_bytes {
            Some(limit) if self.bytes() > limit => {
                self.state = FileState::Done;
                self.decoder = None;
                Err(DownloadError::TooLarge { url: redact_url(&self.url), limit, declared: None })
            }
            _ => Ok(()),
        }
    }

    /// The manifest's `fileSize` against the decoded bytes of the whole file
    /// (L13, wherever `fileSize` is given): equal (or not given) → `true`; a
    /// first mismatch fetches the file once more (`false`, the retry is
    /// scheduled); a second fails the file with `size_mismatch`.
    pub(super) fn size_checked(&mut self, now_ms: u64) -> Result<bool, DownloadError> {
        let actual = self.bytes();
        let Some(expected) = self.file.expected_bytes.filter(|e| *e != actual) else {
            return Ok(true);
        };
        if !self.size_retried {
            self.size_retried = true;
            self.range.start_over();
            self.retry(
                format!("the manifest's fileSize is {expected} bytes, the body had {actual}"),
                RetryAfter::Delay(0),
                now_ms,
            )?;
            return Ok(false);
        }
        self.state = FileState::Done;
        Err(DownloadError::SizeMismatch {
            url: redact_url(&self.url),
            kind: self.file.kind,
            resource_type: self.file.resource_type.clone(),
            expected,
            actual,
        })
    }
}

#[cfg(test)]
mod tests;
