//! One file download as a sans-IO state machine (protocol E1–E6, I3): the
//! caller does the HTTP, the engine decides token, redirects, retries,
//! decoding, line splitting, resuming after a reset and the count check.

mod error;
mod sink;
#[cfg(test)]
mod tests;
mod types;

pub use error::{DownloadError, MAX_ERROR_BODY};
pub(crate) use sink::report_invalid_late;
pub use types::{
    CountCheck, CountMismatchInfo, DownloadAction, FileCheckpoint, FileReport, HeadDecision, InvalidLine, InvalidLines,
    Validation, MAX_INVALID_REPORTED,
};

use crate::decode::{BodyDecoder, DecodeError};
use crate::http::{header, Method, Request, RequestKind};
use crate::manifest::{FileKind, PlannedFile};
use crate::ndjson::{LineSplitter, DEFAULT_MAX_LINE};
use crate::origin::{is_downgrade, redact_text, redact_url, resolve, same_origin_urls};
use crate::retry::{backoff_ms, derive_seed, read_retry_after, RetryAfter, RetryPolicy};
use crate::taken::{Proof, Taken};
use error::kind_label;
use sink::{note_invalid, LineSink};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileState {
    Ready { at_ms: u64 },
    InFlight { id: u64 },
    Streaming { id: u64 },
    Done,
}

/// One file's download.
#[derive(Debug)]
pub struct FileDownload {
    file: PlannedFile,
    policy: RetryPolicy,
    url: String,
    send_token: bool,
    state: FileState,
    next_id: u64,
    attempts: u32,
    failures: u32,
    hops: u32,
    token_refreshed: bool,
    awaiting_token: bool,
    manifest_refreshed: bool,
    awaiting_manifest: bool,
    decoder: Option<BodyDecoder>,
    splitter: LineSplitter,
    delivered: u64,
    seen: u64,
    validation: Validation,
    invalid: u64,
    first_invalid: Option<u64>,
    invalid_lines: Vec<InvalidLine>,
    /// What an invalid line does (issue 20), and the line that failed the file.
    invalid_policy: InvalidLines,
    raised: Option<InvalidLine>,
    headers: u64,
    warnings: Vec<String>,
    count_check: CountCheck,
    report: Option<FileReport>,
    gzip: bool,
    platform_decoded: bool,
    /// Byte-range resume (protocol K1, K2): the representation's validator
    /// (a strong ETag, else Last-Modified), whether the server takes ranges,
    /// the encoded bytes of it fed so far, and the offset the next request asks for.
    range: RangeState,
    /// 429/503 answers so far (the coordinator's per-origin limit reads them, K3).
    throttled: u32,
    /// The lines handed out, with their digest (K7).
    taken: Taken,
    /// While a body that started over repeats lines already handed out: the
    /// check that they are the same bytes (K7). `None` when nothing is re-read.
    proof: Option<Proof>,
    /// Set by the line sink when a body turned out to be another version.
    changed: bool,
    /// Whether a changed file starts over (the caller drops its copy down to
    /// [`FileDownload::taken_bytes`]) rather than failing with `file_changed`.
    restart_changed: bool,
    /// Decoded bytes of the body before this process's part (an earlier
    /// process's checkpoint, K5): the report counts the whole file.
    earlier_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RangeState {
    validator: Option<String>,
    accepts: bool,
    /// The body is not content-encoded: its byte offsets are line offsets too,
    /// so it can continue in another process (K5).
    identity: bool,
    received: u64,
    /// `received` at the last break: a break after more bytes is progress.
    last_break: u64,
    resume_from: Option<u64>,
    resumes: u32,
    restarts: u32,
}

impl FileDownload {
    /// Starts a download of a planned file. A blocked file is refused here.
    pub fn new(file: PlannedFile, policy: &RetryPolicy) -> Result<Self, DownloadError> {
        if let Some(reason) = &file.blocked {
            return Err(DownloadError::Blocked { url: redact_url(&file.url), reason: reason.clone() });
        }
        Ok(FileDownload {
            url: file.url.clone(),
            send_token: file.send_token,
            // Files that fail together do not retry together (B4).
            policy: RetryPolicy { seed: derive_seed(policy.seed, file.url.as_bytes()), ..policy.clone() },
            file,
            state: FileState::Ready { at_ms: 0 },
            next_id: 1,
            attempts: 0,
            failures: 0,
            hops: 0,
            token_refreshed: false,
            awaiting_token: false,
            manifest_refreshed: false,
            awaiting_manifest: false,
            decoder: None,
            splitter: LineSplitter::new(DEFAULT_MAX_LINE),
            delivered: 0,
            seen: 0,
            validation: Validation::default(),
            invalid: 0,
            first_invalid: None,
            invalid_lines: Vec::new(),
            invalid_policy: InvalidLines::default(),
            raised: None,
            headers: 0,
            warnings: Vec::new(),
            count_check: CountCheck::default(),
            report: None,
            gzip: true,
            platform_decoded: false,
            range: RangeState::default(),
            taken: Taken::default(),
            proof: None,
            changed: false,
            restart_changed: false,
            earlier_bytes: 0,
            throttled: 0,
        })
    }

    /// Sets the line validation (default: structural).
    pub fn with_validation(mut self, v: Validation) -> Self {
        self.validation = v;
        self
    }

    /// Sets what a line that is not a resource does (default
    /// [`InvalidLines::Report`]; with [`InvalidLines::Raise`] the file fails
    /// with [`DownloadError::InvalidLine`] at its first one).
    pub fn with_invalid_lines(mut self, policy: InvalidLines) -> Self {
        self.invalid_policy = policy;
        self
    }

    /// Sets what a count mismatch does (default [`CountCheck::Strict`]).
    pub fn with_count_check(mut self, c: CountCheck) -> Self {
        self.count_check = c;
        self
    }

    /// Sets the maximum line length (default 64 MiB).
    pub fn with_max_line(mut self, max: usize) -> Self {
        self.splitter = LineSplitter::new(max);
        self
    }

    /// Whether to ask for gzip (`Accept-Encoding: gzip`, default true).
    pub fn with_gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// Whether a file that changed on the server after lines were handed out
    /// starts over from byte 0 (`true`: the caller's copy is cut back to
    /// [`FileDownload::taken_bytes`] at its next request, as a folder
    /// download can) or fails with [`DownloadError::FileChanged`] (`false`,
    /// the default: a stream cannot take lines back). Protocol K7.
    pub fn with_restart_changed(mut self, restart: bool) -> Self {
        self.restart_changed = restart;
        self
    }

    /// Bytes of the lines handed out so far, each with its `\n`: what the
    /// caller's copy holds. After a change of the file (K7, with
    /// `restart_changed`) this drops to 0, and the caller cuts its copy to it
    /// before it writes the next request's lines.
    pub fn taken_bytes(&self) -> u64 {
        self.taken.bytes()
    }

    /// The planned file.
    pub fn file(&self) -> &PlannedFile {
        &self.file
    }

    /// When the next request may go, while the file waits to send one (a
    /// backoff, a `Retry-After`); `None` otherwise. Asking changes nothing.
    pub fn ready_at(&self) -> Option<u64> {
        match self.state {
            FileState::Ready { at_ms } if self.report.is_none() && !self.awaiting_token && !self.awaiting_manifest => {
                Some(at_ms)
            }
            _ => None,
        }
    }

    /// The report, once the file is complete.
    pub fn report(&self) -> Option<&FileReport> {
        self.report.as_ref()
    }

    /// Decoded bytes of the body so far: this attempt's, and those an earlier
    /// process took before the checkpoint this one continues (K5).
    pub fn bytes(&self) -> u64 {
        self.earlier_bytes + self.splitter.bytes()
    }

    /// Resources handed out so far (across retries, never twice): lines that
    /// passed validation.
    pub fn resources(&self) -> u64 {
        self.delivered - self.invalid
    }

    /// Lines handed out so far, resources and invalid lines (what the caller's copy holds).
    pub fn lines(&self) -> u64 {
        self.delivered
    }

    /// The next thing to do for this file.
    pub fn next_action(&mut self, now_ms: u64) -> Result<DownloadAction, DownloadError> {
        if let Some(report) = &self.report {
            return Ok(DownloadAction::Done { report: report.clone() });
        }
        self.check_raised()?;
        if self.awaiting_token {
            self.awaiting_token = false;
            return Ok(DownloadAction::RefreshToken);
        }
        if self.awaiting_manifest {
            return Ok(DownloadAction::RefreshManifest);
        }
        match self.state {
            FileState::Ready { at_ms } if now_ms < at_ms => {
                Ok(DownloadAction::Wait { until_ms: at_ms, delay_ms: at_ms - now_ms })
            }
            FileState::Ready { .. } => {
                let id = self.next_id;
                self.next_id += 1;
                self.attempts += 1;
                self.state = FileState::InFlight { id };
                let mut headers = vec![("Accept".to_owned(), "application/fhir+ndjson".to_owned())];
                // Without gzip, say identity: no Accept-Encoding at all would allow any coding
                // (RFC 9110 §12.5.3), and Node's fetch asks for gzip on its own; a byte range
                // (K1) needs bodies the binding sees undecoded. Browsers drop the header.
                let coding = if self.gzip { "gzip" } else { "identity" };
                headers.push(("Accept-Encoding".to_owned(), coding.to_owned()));
                // Continue a broken body where it stopped (K1): only the same representation.
                if let (Some(from), Some(v)) = (self.range.resume_from, &self.range.validator) {
                    headers.push(("Range".to_owned(), format!("bytes={from}-")));
                    headers.push(("If-Range".to_owned(), v.clone()));
                }
                Ok(DownloadAction::Send {
                    request: Request {
                        id,
                        kind: RequestKind::File,
                        method: Method::Get,
                        url: self.url.clone(),
                        headers,
                        body: None,
                        auth: self.send_token,
                        timeout_ms: self.policy.request_timeout_ms,
                        max_body: None,
                    },
                })
            }
            FileState::InFlight { id } | FileState::Streaming { id } => {
                Err(DownloadError::Usage(format!("request {id} is still in flight")))
            }
            FileState::Done => Err(DownloadError::Usage("finished".into())),
        }
    }

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
                // from before K7) proves nothing: no proof, and the sink takes the first
                // skipped line as a change.
                self.proof = (self.delivered > 0 && self.taken.lines() == self.delivered).then(|| self.taken.proof());
                self.changed = false;
                self.range.received = 0;
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

    /// After [`DownloadAction::RefreshToken`], when no new token can be had
    /// (none configured, or a fixed string): the file ends here instead of
    /// sending the refused token again. Returns the error to report.
    pub fn token_unavailable(&mut self, reason: &str) -> DownloadError {
        self.state = FileState::Done;
        self.awaiting_token = false;
        DownloadError::Unauthorized {
            url: redact_url(&self.url),
            reason: format!("the token was refused and no new one could be had ({reason})"),
            server_message: None,
        }
    }

    /// A binding that parses each line itself (and runs this download with
    /// [`Validation::None`]) reports a line that failed, so the file report
    /// counts it exactly once. `line` is the 1-based resource line number.
    ///
    /// The binding may parse after the body ended (on another thread): a line
    /// reported after [`FileDownload::finish`] updates the finished report.
    ///
    /// With [`InvalidLines::Raise`] the file fails: the answer is the error,
    /// and the file's next call (`next_action`, `feed`, `finish`,
    /// `handle_transport_error`) ends it with that error (a finished file
    /// loses its report at once).
    pub fn report_invalid_line(&mut self, line: u64, message: &str) -> Option<DownloadError> {
        match &mut self.report {
            Some(r) if self.invalid_policy == InvalidLines::Report => report_invalid_late(r, line, message),
            Some(_) => {
                self.report = None;
                self.state = FileState::Done;
                return Some(self.invalid_line_error(InvalidLine { line, message: message.to_owned() }));
            }
            None => note_invalid(&mut self.invalid, &mut self.first_invalid, &mut self.invalid_lines, line, message),
        }
        if self.invalid_policy == InvalidLines::Raise && self.raised.is_none() {
            self.raised = Some(InvalidLine { line, message: message.chars().take(300).collect() });
        }
        self.raised.clone().map(|l| self.invalid_line_error(l))
    }

    fn invalid_line_error(&self, l: InvalidLine) -> DownloadError {
        DownloadError::InvalidLine { url: redact_url(&self.url), line: l.line, message: l.message }
    }

    /// With [`InvalidLines::Raise`], after an invalid line: the file ends with it.
    fn check_raised(&mut self) -> Result<(), DownloadError> {
        match self.raised.clone() {
            Some(l) => {
                self.state = FileState::Done;
                self.decoder = None;
                Err(self.invalid_line_error(l))
            }
            None => Ok(()),
        }
    }

    fn http_error(&self, status: u16) -> DownloadError {
        DownloadError::Http {
            url: redact_url(&self.url),
            status,
            server_message: None,
            manifest_refreshed: self.manifest_refreshed,
        }
    }

    /// Feeds a chunk of the body; `on_line` gets each new resource line
    /// (lines already handed out before a retry are skipped). Answers
    /// [`HeadDecision::Stream`] to go on, or [`HeadDecision::Discard`] when the
    /// body turned out unusable (corrupt compressed data): the retry is then
    /// already scheduled, with its backoff counted from `now_ms`; stop reading
    /// and call [`FileDownload::next_action`]. Lines handed out before the
    /// corruption stay handed out and are not repeated by the retry.
    pub fn feed(
        &mut self,
        id: u64,
        chunk: &[u8],
        now_ms: u64,
        mut on_line: impl FnMut(&[u8]),
    ) -> Result<HeadDecision, DownloadError> {
        self.expect(FileState::Streaming { id })?;
        self.check_raised()?;
        let Some(mut decoder) = self.decoder.take() else {
            return Err(DownloadError::Usage("no decoder".into()));
        };
        self.range.received += chunk.len() as u64;
        let (splitter, mut sink) = self.line_parts();
        let r = decoder.decode(chunk, |bytes| splitter.feed(bytes, |l| sink.line(l, &mut on_line)));
        self.decoder = Some(decoder);
        self.check_raised()?;
        if self.changed {
            return self.file_changed(now_ms).map(|()| HeadDecision::Discard);
        }
        match r {
            Ok(Ok(())) => Ok(HeadDecision::Stream),
            Ok(Err(e)) => {
                self.state = FileState::Done;
                Err(DownloadError::Ndjson { url: redact_url(&self.url), source: e })
            }
            Err(e) => {
                // Corrupt data: the decoder's state is worthless; start over.
                self.range =
                    RangeState { restarts: self.range.restarts, resumes: self.range.resumes, ..RangeState::default() };
                self.retry(e.to_string(), RetryAfter::Absent, now_ms)?;
                Ok(HeadDecision::Discard)
            }
        }
    }

    /// The body ended. Checks gzip integrity and the manifest count.
    pub fn finish(&mut self, id: u64, now_ms: u64, mut on_line: impl FnMut(&[u8])) -> Result<(), DownloadError> {
        self.expect(FileState::Streaming { id })?;
        self.check_raised()?;
        let Some(mut decoder) = self.decoder.take() else {
            return Err(DownloadError::Usage("no decoder".into()));
        };
        // A platform that decoded the body itself (fetch with gzip) ends a
        // truncated compressed stream silently. A last line cut before its `}`,
        // or a body short of the manifest's count, is a truncated body: retry,
        // without handing out the cut line.
        if let (true, Some(expected)) = (self.platform_decoded, self.file.expected_count) {
            let tail = self.splitter.partial_line();
            let cut = tail.is_some_and(|t| !t.ends_with(b"}"));
            let after = self.delivered.max(self.seen + u64::from(tail.is_some() && !cut));
            if cut || after < expected {
                return self.retry(
                    format!("the decoded body ended after {after} of {expected} resources (truncated stream)"),
                    RetryAfter::Absent,
                    now_ms,
                );
            }
        }
        let (splitter, mut sink) = self.line_parts();
        let r = decoder
            .finish(|bytes| splitter.feed(bytes, |l| sink.line(l, &mut on_line)))
            .map(|inner| inner.and_then(|()| splitter.finish(|l| sink.line(l, &mut on_line))));
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.state = FileState::Done;
                return Err(DownloadError::Ndjson { url: redact_url(&self.url), source: e });
            }
            Err(e) => {
                // Truncated gzip: retry; lines already handed out are skipped next time.
                return self.retry(e.to_string(), RetryAfter::Absent, now_ms);
            }
        }
        self.check_raised()?;
        // A body that ended before it repeated every line already handed out is
        // another (shorter) version, not the rest of this one (K7).
        if self.changed || self.seen < self.delivered {
            return self.file_changed(now_ms);
        }
        self.proof = None;
        let mut count_mismatch = None;
        let mut warnings = std::mem::take(&mut self.warnings);
        let resources = self.delivered - self.invalid;
        if let Some(expected) = self.file.expected_count {
            // Organized output (no type): one server counts the header
            // `Parameters` lines, another does not (issue 10): accept both.
            let without_headers = resources.saturating_sub(self.headers);
            let organized = self.file.resource_type.is_none() && self.headers > 0;
            if expected != resources && !(organized && expected == without_headers) {
                let actual = resources;
                // An error file is the server's own account of what failed: evidence,
                // kept whatever its count (a real server counted 100 for one line).
                let check = if self.file.kind == FileKind::Error { CountCheck::Lenient } else { self.count_check };
                match check {
                    CountCheck::Strict => {
                        self.state = FileState::Done;
                        return Err(DownloadError::CountMismatch {
                            url: redact_url(&self.url),
                            kind: self.file.kind,
                            resource_type: self.file.resource_type.clone(),
                            expected,
                            actual,
                        });
                    }
                    CountCheck::Lenient => {
                        count_mismatch = Some(CountMismatchInfo { expected, actual });
                        warnings.push(format!(
                            "the manifest's count for this {} is {expected}, the file has {actual} resources",
                            kind_label(self.file.kind, self.file.resource_type.as_deref())
                        ));
                    }
                }
            }
        }
        if self.invalid > 0 {
            warnings.push(format!(
                "{} line(s) are not FHIR resources (first: line {})",
                self.invalid,
                self.first_invalid.unwrap_or(0)
            ));
        }
        self.state = FileState::Done;
        self.report = Some(FileReport {
            url: redact_url(&self.url),
            kind: self.file.kind,
            resource_type: self.file.resource_type.clone(),
            file_name: self.file.file_name.clone(),
            resources,
            expected: self.file.expected_count,
            bytes: self.bytes(),
            invalid_lines: self.invalid,
            first_invalid_line: self.first_invalid,
            invalid: std::mem::take(&mut self.invalid_lines),
            count_mismatch,
            warnings,
            attempts: self.attempts,
            range_resumes: self.range.resumes,
            range_restarts: self.range.restarts,
        });
        Ok(())
    }

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

    /// 429 and 503 answers so far (for the per-origin limit, K3).
    pub fn throttled(&self) -> u32 {
        self.throttled
    }

    /// After [`DownloadAction::RefreshManifest`]: the same file from the fresh
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

    /// The splitter and the sink that counts, skips and validates lines.
    fn line_parts(&mut self) -> (&mut LineSplitter, LineSink<'_>) {
        let sink = LineSink {
            delivered: &mut self.delivered,
            seen: &mut self.seen,
            validation: self.validation,
            invalid: &mut self.invalid,
            first_invalid: &mut self.first_invalid,
            invalid_lines: &mut self.invalid_lines,
            headers: self.file.resource_type.is_none().then_some(&mut self.headers),
            taken: &mut self.taken,
            proof: &mut self.proof,
            changed: &mut self.changed,
            policy: self.invalid_policy,
            raised: &mut self.raised,
        };
        (&mut self.splitter, sink)
    }

    fn expect(&self, st: FileState) -> Result<(), DownloadError> {
        if self.state == st {
            Ok(())
        } else {
            Err(DownloadError::Usage(format!("expected state {st:?}, in {:?}", self.state)))
        }
    }

    fn decode_err(&self, e: DecodeError) -> DownloadError {
        DownloadError::Decode { url: redact_url(&self.url), message: e.to_string() }
    }

    /// The body turned out to be another version of the file (K7).
    fn file_changed(&mut self, now_ms: u64) -> Result<(), DownloadError> {
        let taken = self.delivered;
        self.changed = false;
        self.proof = None;
        if !self.restart_changed {
            self.state = FileState::Done;
            return Err(DownloadError::FileChanged { url: redact_url(&self.url), taken });
        }
        // Start the file over from byte 0: the caller cuts its copy to `taken_bytes()` (0).
        self.delivered = 0;
        self.seen = 0;
        self.taken = Taken::default();
        self.invalid = 0;
        self.first_invalid = None;
        self.invalid_lines.clear();
        self.headers = 0;
        self.range =
            RangeState { restarts: self.range.restarts + 1, resumes: self.range.resumes, ..RangeState::default() };
        self.warnings.push(format!(
            "the file changed on the server after {taken} line(s) were taken: it was downloaded again from the start"
        ));
        self.retry("the file changed on the server (K7)".to_owned(), RetryAfter::Delay(0), now_ms)
    }

    fn retry(&mut self, last: String, ra: RetryAfter, now_ms: u64) -> Result<(), DownloadError> {
        // A range resume continues the same decoder and line splitter; anything else starts over.
        if self.range.resume_from.is_none() {
            self.decoder = None;
            self.splitter.reset();
        }
        self.failures += 1;
        if self.failures > self.policy.max_download_retries {
            self.state = FileState::Done;
            return Err(DownloadError::RetriesExhausted { url: redact_url(&self.url), attempts: self.attempts, last });
        }
        let delay = match ra {
            RetryAfter::Delay(ms) => ms,
            RetryAfter::Absent => backoff_ms(&self.policy, self.failures - 1),
        };
        self.state = FileState::Ready { at_ms: now_ms.saturating_add(delay) };
        Ok(())
    }

    /// Follows a redirect by hand: never to http from https, and the token
    /// never crosses an origin (protocol I3).
    fn follow(&mut self, location: Option<&str>, now_ms: u64) -> Result<(), DownloadError> {
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

/// The representation's validator for `If-Range` (RFC 9110 §13.1.5): a
/// strong ETag, else Last-Modified. A weak ETag cannot be used.
fn validator(headers: &[(String, String)]) -> Option<String> {
    match header(headers, "ETag") {
        Some(e) if !e.starts_with("W/") && !e.is_empty() => Some(e.to_owned()),
        _ => header(headers, "Last-Modified").map(str::to_owned),
    }
}

/// The first byte of `Content-Range: bytes START-END/TOTAL`.
fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}
