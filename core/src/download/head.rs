//! What a response's head means for a file: stream the body, retry (5xx,
//! 429, a `Retry-After`), follow a redirect by hand (I3), ask for a fresh
//! token or fresh links (E4), continue a range (K1), or fail with a typed error.

use super::range::{content_range_start, validator};
use super::{DownloadError, FileDownload, FileState, HeadDecision, RangeState};
use crate::decode::BodyDecoder;
use crate::http::header;
use crate::manifest::PlannedFile;
use crate::origin::{is_downgrade, redact_url, resolve, same_origin_urls};
use crate::retry::{read_retry_after, RetryAfter};

impl FileDownload {
    /// The status line and headers of the response to request `id`.
    /// `already_decoded` is true when the platform removed the
    /// `Content-Encoding` itself (browsers' fetch).
    pub fn handle_head(
        &mut self,
        id: u64,
        status: u16,
        headers: &[(String, String)],
        already_decoded: bool,
        now_ms: u64,
    ) -> Result<HeadDecision, DownloadError> {
        self.expect(FileState::InFlight { id })?;
        match status {
            200 => {
                // A 200 to a range request: the file changed, or ranges are not honoured.
                // Start over, safely: lines already handed out are skipped, not repeated (K1).
                if self.range.resume_from.take().is_some() {
                    self.range.restarts += 1;
                }
                let enc = if already_decoded { None } else { header(headers, "Content-Encoding") };
                self.platform_decoded = already_decoded
                    && header(headers, "Content-Encoding").is_some_and(|e| !e.eq_ignore_ascii_case("identity"));
                self.decoder = Some(BodyDecoder::new(enc).map_err(|e| self.decode_err(e))?);
                self.splitter.reset();
                self.seen = 0;
                // The whole body again: the report's bytes are this body's.
                self.earlier_bytes = 0;
                // The body starts over: the lines already handed out are skipped only once
                // proven to be the same bytes (K7). A count without digests (a checkpoint
                // from before K7) proves nothing: no proof, and the gate takes the first
                // skipped line as a change.
                self.proof = (self.delivered > 0 && self.taken.lines() == self.delivered).then(|| self.taken.proof());
                self.changed = false;
                self.range.received = 0;
                self.opaque_head(headers)?;
                self.range.validator = validator(headers);
                // A platform that decoded the body itself hands over decoded bytes: no offsets to resume at.
                self.range.accepts = !self.platform_decoded
                    && header(headers, "Accept-Ranges").is_some_and(|v| v.eq_ignore_ascii_case("bytes"));
                self.range.identity =
                    enc.map_or(true, |e| e.eq_ignore_ascii_case("identity")) && !self.platform_decoded;
                self.state = FileState::Streaming { id };
                Ok(HeadDecision::Stream)
            }
            206 => {
                let expected = self.range.resume_from.take();
                let start = header(headers, "Content-Range").and_then(content_range_start);
                // After a restart (K5) there is no decoder yet: only an identity body continues.
                let identity = header(headers, "Content-Encoding").map_or(true, |e| e.eq_ignore_ascii_case("identity"));
                if self.decoder.is_none() && identity && self.range.identity {
                    self.decoder = Some(BodyDecoder::new(None).map_err(|e| self.decode_err(e))?);
                    self.seen = self.delivered;
                }
                match (expected, start) {
                    (Some(from), Some(s)) if s == from && self.decoder.is_some() => {
                        // The same representation, from where it broke: the decoder and the
                        // line splitter go on as if the body had never stopped (K1, K2).
                        self.range.resumes += 1;
                        self.state = FileState::Streaming { id };
                        Ok(HeadDecision::Stream)
                    }
                    _ => {
                        // Not the part asked for: fetch the whole file again.
                        self.range = RangeState {
                            restarts: self.range.restarts + 1,
                            resumes: self.range.resumes,
                            ..RangeState::default()
                        };
                        self.retry(
                            format!("a 206 for another range ({:?})", header(headers, "Content-Range")),
                            RetryAfter::Absent,
                            now_ms,
                        )?;
                        Ok(HeadDecision::Discard)
                    }
                }
            }
            416 if self.range.resume_from.is_some() => {
                self.range = RangeState {
                    restarts: self.range.restarts + 1,
                    resumes: self.range.resumes,
                    ..RangeState::default()
                };
                self.decoder = None;
                self.state = FileState::Ready { at_ms: now_ms };
                Ok(HeadDecision::Discard)
            }
            301 | 302 | 303 | 307 | 308 => {
                self.follow(header(headers, "Location"), now_ms)?;
                Ok(HeadDecision::Discard)
            }
            401 if self.send_token && !self.token_refreshed => {
                self.token_refreshed = true;
                self.awaiting_token = true;
                self.state = FileState::Ready { at_ms: now_ms };
                Ok(HeadDecision::Discard)
            }
            401 | 403 | 404 | 410 if !self.manifest_refreshed => {
                self.manifest_refreshed = true;
                self.awaiting_manifest = true;
                self.state = FileState::Ready { at_ms: now_ms };
                Ok(HeadDecision::Discard)
            }
            408 | 429 | 500..=599 => {
                if matches!(status, 429 | 503) {
                    self.throttled += 1;
                }
                let (ra, note) =
                    read_retry_after(header(headers, "Retry-After"), header(headers, "Date"), now_ms, &self.policy);
                self.warnings.extend(note);
                self.retry(format!("HTTP {status}"), ra, now_ms)?;
                Ok(HeadDecision::Discard)
            }
            401 if self.send_token => {
                self.state = FileState::Done;
                Err(DownloadError::Unauthorized {
                    url: redact_url(&self.url),
                    reason: "the token was refused even after a token refresh".into(),
                    server_message: None,
                })
            }
            _ => {
                self.state = FileState::Done;
                Err(self.http_error(status))
            }
        }
    }

    /// After [`DownloadAction::RefreshToken`](crate::DownloadAction::RefreshToken), when no new token can be had
    /// (none configured, or a fixed string): the file ends here instead of
    /// sending the refused token again. Returns the error to report.
    pub fn token_unavailable(&mut self, reason: &str) -> DownloadError {
        self.state = FileState::Done;
        self.awaiting_token = false;
        DownloadError::Unauthorized {
            url: redact_url(&self.url),
            reason: format!("authorization was refused and no new token could be had ({reason})"),
            server_message: None,
        }
    }

    /// After [`DownloadAction::RefreshManifest`](crate::DownloadAction::RefreshManifest): the same file from the fresh
    /// manifest, or `None` if the refresh did not produce it (then the
    /// download fails with the original HTTP error).
    pub fn replace_file(&mut self, file: Option<PlannedFile>) -> Result<(), DownloadError> {
        self.awaiting_manifest = false;
        match file {
            Some(f) if f.blocked.is_none() => {
                self.url = f.url.clone();
                self.send_token = f.send_token;
                self.file = f;
                self.hops = 0;
                Ok(())
            }
            Some(f) => {
                self.state = FileState::Done;
                Err(DownloadError::Blocked { url: redact_url(&f.url), reason: f.blocked.unwrap_or_default() })
            }
            None => {
                self.state = FileState::Done;
                Err(self.http_error(410))
            }
        }
    }

    pub(super) fn http_error(&self, status: u16) -> DownloadError {
        DownloadError::Http {
            url: redact_url(&self.url),
            status,
            server_message: None,
            manifest_refreshed: self.manifest_refreshed,
        }
    }

    /// Follows a redirect by hand: never to http from https, and the token
    /// never crosses an origin (protocol I3).
    pub(super) fn follow(&mut self, location: Option<&str>, now_ms: u64) -> Result<(), DownloadError> {
        self.hops += 1;
        let refuse = |this: &mut Self, reason: &str| {
            this.state = FileState::Done;
            Err(DownloadError::Redirect { url: redact_url(&this.url), reason: reason.to_owned() })
        };
        if self.hops > 5 {
            return refuse(self, "more than 5 redirects");
        }
        let Some(next) = location.and_then(|l| resolve(&self.url, l)) else {
            return refuse(self, "redirect without a usable Location");
        };
        if is_downgrade(&self.url, &next) {
            return refuse(self, "redirect from https to http (protocol I3)");
        }
        if !same_origin_urls(&self.url, &next) {
            self.send_token = false;
        }
        self.url = next;
        self.state = FileState::Ready { at_ms: now_ms };
        Ok(())
    }
}
