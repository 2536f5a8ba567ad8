//! One file download as a sans-IO state machine (protocol E1–E6, I3): the
//! caller does the HTTP, the engine decides token, redirects, retries,
//! decoding, line splitting, resuming after a reset and the count check.

use crate::decode::{BodyDecoder, DecodeError};
use crate::http::{header, Method, Request, RequestKind};
use crate::manifest::{FileKind, PlannedFile};
use crate::ndjson::{LineSplitter, NdjsonError, DEFAULT_MAX_LINE};
use crate::origin::{is_downgrade, redact_text, redact_url, resolve, same_origin_urls};
use crate::retry::{backoff_ms, derive_seed, read_retry_after, RetryAfter, RetryPolicy};
use crate::taken::{Proof, Taken, TakenSegment, Verdict};
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
    /// (with [`CountCheck::Strict`]). Only this file failed.
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
    /// A line of the file is not a JSON resource. Only raised by bindings when
    /// the caller asked for strict lines; by default a bad line is recorded in
    /// [`FileReport::invalid`] and every valid line is still delivered.
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
    #[error("{url}: gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// The URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
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
            DownloadError::InvalidLine { .. } => "invalid_line",
            DownloadError::Ndjson { .. } => "line_too_long",
            DownloadError::Decode { .. } => "decode",
            DownloadError::RetriesExhausted { .. } => "retries_exhausted",
            DownloadError::Redirect { .. } => "redirect",
            DownloadError::FileChanged { .. } => "file_changed",
            DownloadError::RefreshFailed { .. } => "refresh_failed",
            DownloadError::Usage(_) => "usage",
        }
    }

    /// Adds the server's own words from an error response's body (an
    /// OperationOutcome's text, or the start of a text body) to an
    /// [`DownloadError::Http`] or [`DownloadError::Unauthorized`]. Bindings read
    /// at most [`MAX_ERROR_BODY`] bytes of the body and call this.
    pub fn with_body(mut self, body: &[u8]) -> DownloadError {
        if let DownloadError::Http { server_message, .. } | DownloadError::Unauthorized { server_message, .. } =
            &mut self
        {
            if server_message.is_none() {
                *server_message = crate::outcome::server_text(body);
            }
        }
        self
    }
}

/// How much of an error response's body a binding reads for [`DownloadError::with_body`].
pub const MAX_ERROR_BODY: usize = 64 << 10;

fn server_note(m: &Option<String>) -> String {
    m.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
}

fn refreshed_note(refreshed: bool) -> &'static str {
    if refreshed {
        " even after the manifest was re-fetched once for fresh links"
    } else {
        ""
    }
}

/// "Patient file", "error file (OperationOutcome)", "deleted file".
fn kind_label(kind: FileKind, resource_type: Option<&str>) -> String {
    match (kind, resource_type) {
        (FileKind::Output, Some(t)) => format!("{t} output file"),
        (FileKind::Output, None) => "output file".to_owned(),
        (FileKind::Error, _) => "error file (OperationOutcome)".to_owned(),
        (FileKind::Deleted, _) => "deleted file (transaction Bundles of deletions)".to_owned(),
    }
}

/// What the caller does next for this file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum DownloadAction {
    /// Send this GET; then call [`FileDownload::handle_head`] with the status
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
    /// new entry to [`FileDownload::replace_file`] (protocol E4).
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
/// [`FileDownload::handle_head`] and of every [`FileDownload::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HeadDecision {
    /// Feed the (rest of the) body to [`FileDownload::feed`], then call
    /// [`FileDownload::finish`] when it ends.
    Stream,
    /// Stop reading: drop the body (close the connection if it is still
    /// arriving) and call [`FileDownload::next_action`]. The engine has
    /// already decided what comes next (a redirect, a retry, a fresh token).
    Discard,
}

/// How strictly lines are checked. A line is a resource only if it passes:
/// the report's `resources` and the manifest's count check count only those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Validation {
    /// Not at all (a binding that parses each line itself reports the bad
    /// ones with [`FileDownload::report_invalid_line`]).
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
pub enum CountCheck {
    /// The file fails with [`DownloadError::CountMismatch`] (the others are unaffected).
    #[default]
    Strict,
    /// The file completes; [`FileReport::count_mismatch`] and a warning say so.
    Lenient,
}

/// The manifest's count against what the file held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountMismatchInfo {
    /// `count` from the manifest.
    pub expected: u64,
    /// Resources in the file.
    pub actual: u64,
}

/// A line that is not a JSON resource (protocol E6: a per-line report, not a crash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvalidLine {
    /// 1-based resource line number (blank lines not counted).
    pub line: u64,
    /// What is wrong with it.
    pub message: String,
}

/// How many [`InvalidLine`]s a report keeps (the count goes on).
pub const MAX_INVALID_REPORTED: usize = 100;

/// Figures for a finished file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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
    /// Decoded bytes of the final attempt.
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
            throttled: 0,
        })
    }

    /// Sets the line validation (default: structural).
    pub fn with_validation(mut self, v: Validation) -> Self {
        self.validation = v;
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

    /// Decoded bytes of the current attempt so far.
    pub fn bytes(&self) -> u64 {
        self.splitter.bytes()
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
                // The body starts over: the lines already handed out are skipped only once
                // proven to be the same bytes (K7). A count without digests (a checkpoint
                // from before K7) proves nothing.
                self.proof = (self.delivered > 0).then(|| {
                    if self.taken.lines() == self.delivered {
                        self.taken.proof()
                    } else {
                        Proof::new(vec![TakenSegment { lines: 0, bytes: 1, sha256: String::new() }])
                    }
                });
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
    pub fn report_invalid_line(&mut self, line: u64, message: &str) {
        match &mut self.report {
            Some(r) => report_invalid_late(r, line, message),
            None => note_invalid(&mut self.invalid, &mut self.first_invalid, &mut self.invalid_lines, line, message),
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
        let Some(mut decoder) = self.decoder.take() else {
            return Err(DownloadError::Usage("no decoder".into()));
        };
        self.range.received += chunk.len() as u64;
        let (splitter, mut sink) = self.line_parts();
        let r = decoder.decode(chunk, |bytes| splitter.feed(bytes, |l| sink.line(l, &mut on_line)));
        self.decoder = Some(decoder);
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
            bytes: self.splitter.bytes(),
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

struct LineSink<'a> {
    delivered: &'a mut u64,
    seen: &'a mut u64,
    validation: Validation,
    invalid: &'a mut u64,
    first_invalid: &'a mut Option<u64>,
    invalid_lines: &'a mut Vec<InvalidLine>,
    /// Counts organized output's header `Parameters` lines (only for files without a type).
    headers: Option<&'a mut u64>,
    taken: &'a mut Taken,
    proof: &'a mut Option<Proof>,
    changed: &'a mut bool,
}

fn note_invalid(invalid: &mut u64, first: &mut Option<u64>, lines: &mut Vec<InvalidLine>, line: u64, message: &str) {
    *invalid += 1;
    let first = first.get_or_insert(line);
    *first = (*first).min(line);
    if lines.len() < MAX_INVALID_REPORTED {
        lines.push(InvalidLine { line, message: message.chars().take(300).collect() });
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

/// A line found broken after the file's report was made (see
/// [`FileDownload::report_invalid_line`]): the report counts it, once.
pub(crate) fn report_invalid_late(r: &mut FileReport, line: u64, message: &str) {
    note_invalid(&mut r.invalid_lines, &mut r.first_invalid_line, &mut r.invalid, line, message);
    // A line is a resource only if it parses as a JSON object.
    r.resources = r.resources.saturating_sub(1);
    let warning = format!(
        "{} line(s) are not FHIR resources (first: line {})",
        r.invalid_lines,
        r.first_invalid_line.unwrap_or(0)
    );
    match r.warnings.iter_mut().find(|w| w.contains("are not FHIR resources")) {
        Some(w) => *w = warning,
        None => r.warnings.push(warning),
    }
}

/// A `Parameters` resource with a `header` parameter: the first line of each
/// block of organized output (protocol D4).
fn is_header_line(line: &[u8]) -> bool {
    use memchr::memmem::find;
    find(line, b"\"Parameters\"").is_some() && find(line, b"\"header\"").is_some() && {
        matches!(serde_json::from_slice::<serde_json::Value>(line), Ok(v)
            if v.get("resourceType").and_then(serde_json::Value::as_str) == Some("Parameters"))
    }
}

impl LineSink<'_> {
    #[inline]
    fn line(&mut self, line: &[u8], on_line: &mut impl FnMut(&[u8])) {
        if *self.changed {
            return; // another version: nothing more of this body is handed out
        }
        *self.seen += 1;
        // After a retry the file is read from the start: what was handed out is skipped,
        // once proven to be the same bytes (K7).
        if *self.seen <= *self.delivered {
            let verdict = self.proof.as_mut().map_or(Verdict::Changed, |p| p.line(line));
            let last = *self.seen == *self.delivered;
            if verdict == Verdict::Changed || (last && verdict != Verdict::Proven) {
                *self.changed = true;
            } else if last {
                *self.proof = None;
            }
            return;
        }
        *self.delivered += 1;
        self.taken.push(line);
        let t = line.trim_ascii();
        let problem = match self.validation {
            Validation::None => None,
            Validation::Structural => {
                (t.first() != Some(&b'{') || t.last() != Some(&b'}')).then(|| "not a JSON object".to_owned())
            }
            // A resource is a JSON object: `[1]` or `"x"` parse, but are not one.
            Validation::Json if t.first() != Some(&b'{') => Some("not a JSON object".to_owned()),
            Validation::Json => serde_json::from_slice::<serde::de::IgnoredAny>(line).err().map(|e| e.to_string()),
        };
        if let Some(message) = problem {
            note_invalid(self.invalid, self.first_invalid, self.invalid_lines, *self.delivered, &message);
        }
        if let Some(h) = self.headers.as_deref_mut() {
            if is_header_line(line) {
                *h += 1;
            }
        }
        on_line(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::FileKind;

    fn planned(url: &str, token: bool, count: Option<u64>) -> PlannedFile {
        PlannedFile {
            kind: FileKind::Output,
            index: 0,
            resource_type: Some("Patient".into()),
            url: url.into(),
            send_token: token,
            expected_count: count,
            file_name: "Patient.000.ndjson".into(),
            blocked: None,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy { min_wait_ms: 10, initial_backoff_ms: 10, jitter_percent: 0, ..RetryPolicy::default() }
    }

    fn send(d: &mut FileDownload, now: u64) -> Request {
        match d.next_action(now).unwrap() {
            DownloadAction::Send { request } => request,
            other => panic!("expected Send, got {other:?}"),
        }
    }

    // fetch decodes gzip itself and ends a truncated stream without an error:
    // a short body is retried and its cut last line is never handed out.
    #[test]
    fn platform_decoded_short_body_is_retried_not_cut() {
        let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy()).unwrap();
        let gz = [("Content-Encoding".to_owned(), "gzip".to_owned())];
        let mut got = Vec::new();
        let r = send(&mut d, 0);
        d.handle_head(r.id, 200, &gz, true, 0).unwrap();
        d.feed(r.id, b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\"", 0, |l| got.push(l.to_vec())).unwrap();
        d.finish(r.id, 5, |l| got.push(l.to_vec())).unwrap();
        assert_eq!(got.len(), 2, "the cut line is not handed out");
        assert!(matches!(d.next_action(5).unwrap(), DownloadAction::Wait { .. }));
        let r = send(&mut d, 1_000);
        d.handle_head(r.id, 200, &gz, true, 1_000).unwrap();
        d.feed(r.id, b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\":\"3\"}", 0, |l| got.push(l.to_vec())).unwrap();
        d.finish(r.id, 1_000, |l| got.push(l.to_vec())).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], b"{\"id\":\"3\"}");
        match d.next_action(1_000).unwrap() {
            DownloadAction::Done { report } => assert_eq!((report.resources, report.attempts), (3, 2)),
            other => panic!("expected Done, got {other:?}"),
        }
        // Without a platform decoder a short body is a count mismatch, as before.
        let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy()).unwrap();
        let r = send(&mut d, 0);
        d.handle_head(r.id, 200, &[], true, 0).unwrap();
        d.feed(r.id, b"{\"id\":\"1\"}\n", 0, |_| {}).unwrap();
        assert!(matches!(d.finish(r.id, 0, |_| {}), Err(DownloadError::CountMismatch { .. })));
    }

    // protocol E6: a reset mid-body is retried and nothing is lost or duplicated
    #[test]
    fn reset_mid_body_resumes_without_duplicates() {
        let mut d = FileDownload::new(planned("https://h/f", true, Some(3)), &policy()).unwrap();
        let mut got = Vec::new();
        let r = send(&mut d, 0);
        assert!(r.auth);
        assert_eq!(r.header("Accept-Encoding"), Some("gzip"));
        // protocol K1: without gzip the request says identity (Node's fetch would ask for gzip)
        let mut plain = FileDownload::new(planned("https://h/f", true, Some(3)), &policy()).unwrap().with_gzip(false);
        assert_eq!(send(&mut plain, 0).header("Accept-Encoding"), Some("identity"));
        assert_eq!(d.handle_head(r.id, 200, &[], false, 0).unwrap(), HeadDecision::Stream);
        d.feed(r.id, b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\"", 0, |l| got.push(l.to_vec())).unwrap();
        d.handle_transport_error(r.id, "connection reset", 5).unwrap();
        assert!(matches!(d.next_action(5).unwrap(), DownloadAction::Wait { .. }));
        let r = send(&mut d, 1_000);
        d.handle_head(r.id, 200, &[], false, 1_000).unwrap();
        d.feed(r.id, b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\":\"3\"}\n", 0, |l| got.push(l.to_vec())).unwrap();
        d.finish(r.id, 1_000, |l| got.push(l.to_vec())).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], b"{\"id\":\"3\"}");
        match d.next_action(1_000).unwrap() {
            DownloadAction::Done { report } => {
                assert_eq!(report.resources, 3);
                assert_eq!(report.attempts, 2);
            }
            other => panic!("{other:?}"),
        }
    }

    // protocol E6 and E2: a gzip stream that turns corrupt mid-body is
    // discarded, retried after a backoff counted from the moment it broke,
    // and the lines handed out before the corruption are not repeated.
    #[cfg(feature = "gzip")]
    #[test]
    fn corrupt_gzip_mid_body_is_discarded_and_retried() {
        use flate2::{write::GzEncoder, Compression};
        use std::io::Write;
        let total = 20_000u64;
        let lines: Vec<u8> = (0..total).flat_map(|i| format!("{{\"id\":\"{i}\"}}\n").into_bytes()).collect();
        let mut whole = GzEncoder::new(Vec::new(), Compression::fast());
        whole.write_all(&lines).unwrap();
        let whole = whole.finish().unwrap();
        // Most of the lines, sync-flushed, then a deflate block of reserved type 11.
        let mut head = GzEncoder::new(Vec::new(), Compression::fast());
        head.write_all(&lines[..lines.len() / 2]).unwrap();
        head.flush().unwrap();
        let head = head.get_ref().clone();
        let gz = [("Content-Encoding".to_owned(), "gzip".to_owned())];

        let mut d = FileDownload::new(planned("https://h/f", false, Some(total)), &policy()).unwrap();
        let mut got = Vec::new();
        let r = send(&mut d, 0);
        assert_eq!(d.handle_head(r.id, 200, &gz, false, 0).unwrap(), HeadDecision::Stream);
        for c in head.chunks(4096) {
            assert_eq!(d.feed(r.id, c, 100, |l| got.push(l.to_vec())).unwrap(), HeadDecision::Stream);
        }
        let before = got.len();
        assert!(before > 0, "the decoder hands out lines as it goes");
        assert_eq!(d.feed(r.id, &[0xff; 16], 100, |l| got.push(l.to_vec())).unwrap(), HeadDecision::Discard);
        assert!(d.feed(r.id, b"more", 100, |_| {}).is_err(), "nothing more is read from a discarded body");
        match d.next_action(100).unwrap() {
            DownloadAction::Wait { until_ms, .. } => assert!(until_ms >= 110, "backoff from the break, got {until_ms}"),
            other => panic!("expected Wait, got {other:?}"),
        }
        let r = send(&mut d, 1_000);
        d.handle_head(r.id, 200, &gz, false, 1_000).unwrap();
        for c in whole.chunks(4096) {
            assert_eq!(d.feed(r.id, c, 1_000, |l| got.push(l.to_vec())).unwrap(), HeadDecision::Stream);
        }
        d.finish(r.id, 1_000, |l| got.push(l.to_vec())).unwrap();
        let expected: Vec<Vec<u8>> = (0..total).map(|i| format!("{{\"id\":\"{i}\"}}").into_bytes()).collect();
        assert_eq!(got, expected, "every line once, in order ({before} before the corruption)");
        match d.next_action(1_000).unwrap() {
            DownloadAction::Done { report } => assert_eq!((report.resources, report.attempts), (total, 2)),
            other => panic!("expected Done, got {other:?}"),
        }
    }

    // checked against the manifest count
    #[test]
    fn count_mismatch_is_typed() {
        let mut d = FileDownload::new(planned("https://h/f", false, Some(2)), &policy()).unwrap();
        let r = send(&mut d, 0);
        d.handle_head(r.id, 200, &[], false, 0).unwrap();
        d.feed(r.id, b"{}\n", 0, |_| {}).unwrap();
        assert!(matches!(d.finish(r.id, 0, |_| {}), Err(DownloadError::CountMismatch { expected: 2, actual: 1, .. })));
    }

    // protocol I3: the token never crosses an origin on a redirect; no downgrade
    #[test]
    fn redirects_strip_token_across_origins() {
        let mut d = FileDownload::new(planned("https://fhir.example/f", true, None), &policy()).unwrap();
        let r = send(&mut d, 0);
        let loc = [("Location".to_owned(), "https://fhir.example/g".to_owned())];
        assert_eq!(d.handle_head(r.id, 302, &loc, false, 0).unwrap(), HeadDecision::Discard);
        assert!(send(&mut d, 0).auth, "same origin keeps the token");
        let r = d.next_id - 1;
        let loc = [("Location".to_owned(), "https://storage.example/x?sig=1".to_owned())];
        d.handle_head(r, 307, &loc, false, 0).unwrap();
        let req = send(&mut d, 0);
        assert!(!req.auth, "cross-origin redirect drops the token");
        let loc = [("Location".to_owned(), "https://fhir.example/back".to_owned())];
        d.handle_head(req.id, 302, &loc, false, 0).unwrap();
        assert!(!send(&mut d, 0).auth, "once dropped, stays dropped");
        let mut d = FileDownload::new(planned("https://fhir.example/f", false, None), &policy()).unwrap();
        let r = send(&mut d, 0);
        let loc = [("Location".to_owned(), "http://fhir.example/f".to_owned())];
        assert!(matches!(d.handle_head(r.id, 302, &loc, false, 0), Err(DownloadError::Redirect { .. })));
    }

    // protocol E4: an expired URL asks for a manifest refresh once
    #[test]
    fn expired_url_refreshes_manifest_once() {
        let mut d = FileDownload::new(planned("https://h/f?g=0", false, None), &policy()).unwrap();
        let r = send(&mut d, 0);
        d.handle_head(r.id, 410, &[], false, 0).unwrap();
        assert_eq!(d.next_action(0).unwrap(), DownloadAction::RefreshManifest);
        d.replace_file(Some(planned("https://h/f?g=1", false, None))).unwrap();
        let r = send(&mut d, 0);
        assert_eq!(r.url, "https://h/f?g=1");
        assert!(matches!(d.handle_head(r.id, 410, &[], false, 0), Err(DownloadError::Http { status: 410, .. })));
    }

    // protocol H5: 401 → refresh the token once
    #[test]
    fn unauthorized_refreshes_token_once() {
        let mut d = FileDownload::new(planned("https://h/f", true, None), &policy()).unwrap();
        let r = send(&mut d, 0);
        d.handle_head(r.id, 401, &[], false, 0).unwrap();
        assert_eq!(d.next_action(0).unwrap(), DownloadAction::RefreshToken);
        let r = send(&mut d, 0);
        d.handle_head(r.id, 401, &[], false, 0).unwrap();
        assert_eq!(d.next_action(0).unwrap(), DownloadAction::RefreshManifest);
    }

    // protocol E6: 5xx retried within the budget, then a typed error
    #[test]
    fn server_errors_retry_then_give_up() {
        let mut d = FileDownload::new(
            planned("https://h/f", false, None),
            &RetryPolicy { max_download_retries: 2, ..policy() },
        )
        .unwrap();
        let mut now = 0;
        for _ in 0..2 {
            let r = send(&mut d, now);
            d.handle_head(r.id, 503, &[], false, now).unwrap();
            now += 100_000;
        }
        let r = send(&mut d, now);
        assert!(matches!(d.handle_head(r.id, 503, &[], false, now), Err(DownloadError::RetriesExhausted { .. })));
    }

    // protocol E6: a non-JSON line is reported, not a crash, and not lost
    #[test]
    fn invalid_lines_are_counted_not_dropped() {
        // issue 19 §7: the count is of resources (lines that parse as a JSON object).
        let mut d = FileDownload::new(planned("https://h/f", false, Some(2)), &policy())
            .unwrap()
            .with_validation(Validation::Json);
        let r = send(&mut d, 0);
        d.handle_head(r.id, 200, &[], false, 0).unwrap();
        let mut n = 0;
        d.feed(r.id, b"{\"a\":1}\n<html>oops</html>\n{\"b\":2}\n", 0, |_| n += 1).unwrap();
        d.finish(r.id, 0, |_| n += 1).unwrap();
        assert_eq!(n, 3);
        match d.next_action(0).unwrap() {
            DownloadAction::Done { report } => {
                assert_eq!((report.resources, report.invalid_lines), (2, 1));
                assert_eq!(report.first_invalid_line, Some(2));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn blocked_files_are_refused() {
        let mut p = planned("https://other/f", false, None);
        p.blocked = Some("no".into());
        assert!(matches!(FileDownload::new(p, &policy()), Err(DownloadError::Blocked { .. })));
    }

    fn run_body(d: &mut FileDownload, body: &[u8]) -> Result<(), DownloadError> {
        let r = send(d, 0);
        d.handle_head(r.id, 200, &[], false, 0)?;
        d.feed(r.id, body, 0, |_| {})?;
        d.finish(r.id, 0, |_| {})
    }

    // issue 10 §2: a count mismatch fails only this file, and the message names its kind
    #[test]
    fn count_mismatch_names_the_kind_of_file() {
        let file =
            PlannedFile { kind: FileKind::Deleted, resource_type: None, ..planned("https://h/d", false, Some(100)) };
        let mut d = FileDownload::new(file, &policy()).unwrap();
        let err = run_body(&mut d, b"{\"resourceType\":\"Bundle\"}\n").unwrap_err();
        assert_eq!(err.code(), "count_mismatch");
        let text = err.to_string();
        assert!(text.contains("deleted file") && text.contains("100") && text.contains(" 1 "), "{text}");
        assert!(matches!(err, DownloadError::CountMismatch { kind: FileKind::Deleted, expected: 100, actual: 1, .. }));
    }

    // issue 19: an error file is evidence: a real server counted 100 for its one line; the
    // line is kept and the mismatch is a warning, even with the strict check
    #[test]
    fn an_error_files_count_mismatch_keeps_its_lines() {
        let file = PlannedFile {
            kind: FileKind::Error,
            resource_type: Some("OperationOutcome".into()),
            ..planned("https://h/e", false, Some(100))
        };
        let mut d = FileDownload::new(file, &policy()).unwrap();
        let mut lines = 0;
        let r = send(&mut d, 0);
        d.handle_head(r.id, 200, &[], false, 0).unwrap();
        d.feed(r.id, b"{\"resourceType\":\"OperationOutcome\"}\n", 0, |_| lines += 1).unwrap();
        d.finish(r.id, 0, |_| lines += 1).unwrap();
        let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!() };
        assert_eq!((lines, report.resources), (1, 1));
        assert_eq!(report.count_mismatch, Some(CountMismatchInfo { expected: 100, actual: 1 }));
        assert!(report.warnings.iter().any(|w| w.contains("error file (OperationOutcome)")), "{:?}", report.warnings);
    }

    // issue 10 §2: with a lenient count check the file completes, with the mismatch in its report
    #[test]
    fn lenient_count_check_completes_with_a_warning() {
        let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy())
            .unwrap()
            .with_count_check(CountCheck::Lenient);
        run_body(&mut d, b"{\"id\":\"1\"}\n").unwrap();
        let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!() };
        assert_eq!(report.count_mismatch, Some(CountMismatchInfo { expected: 3, actual: 1 }));
        assert!(report.warnings.iter().any(|w| w.contains("Patient output file")), "{:?}", report.warnings);
    }

    // protocol D4, issue 10 §2: organized output's count may include or exclude the header lines
    #[test]
    fn organized_count_with_or_without_headers() {
        let body = b"{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"header\",\"valueReference\":{\"reference\":\"Patient/1\"}}]}\n{\"resourceType\":\"Patient\",\"id\":\"1\"}\n{\"resourceType\":\"Observation\",\"id\":\"o\"}\n";
        for count in [3, 2] {
            let file = PlannedFile { resource_type: None, ..planned("https://h/o", false, Some(count)) };
            let mut d = FileDownload::new(file, &policy()).unwrap();
            run_body(&mut d, body).unwrap_or_else(|e| panic!("count {count}: {e}"));
        }
        let file = PlannedFile { resource_type: None, ..planned("https://h/o", false, Some(1)) };
        let mut d = FileDownload::new(file, &policy()).unwrap();
        assert!(matches!(run_body(&mut d, body), Err(DownloadError::CountMismatch { .. })));
    }

    // protocol E6, issue 10 §3: bad lines are per-line reports; every line is handed out once
    #[test]
    fn invalid_lines_are_reported_per_line() {
        let mut d = FileDownload::new(planned("https://h/f", false, None), &policy()).unwrap();
        run_body(&mut d, b"{\"id\":\"1\"}\nnot json\n{\"id\":\"3\"}\n").unwrap();
        let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!() };
        assert_eq!((report.resources, report.invalid_lines, report.first_invalid_line), (2, 1, Some(2)));
        assert_eq!(report.invalid, vec![InvalidLine { line: 2, message: "not a JSON object".into() }]);
        // A binding that parses lines itself reports `{not json}` (it passes the structural check).
        let mut d = FileDownload::new(planned("https://h/f", false, None), &policy())
            .unwrap()
            .with_validation(Validation::None);
        let r = send(&mut d, 0);
        d.handle_head(r.id, 200, &[], false, 0).unwrap();
        d.feed(r.id, b"{\"id\":\"1\"}\n{not json}\n", 0, |_| {}).unwrap();
        d.report_invalid_line(2, "expected ident at line 1 column 2");
        d.finish(r.id, 0, |_| {}).unwrap();
        let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!() };
        assert_eq!((report.invalid_lines, report.first_invalid_line), (1, Some(2)));
        assert!(report.warnings.iter().any(|w| w.contains("line 2")));
        // Parsed after the body ended (another thread): the finished report counts it, once.
        d.report_invalid_line(1, "late");
        let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!() };
        assert_eq!((report.invalid_lines, report.first_invalid_line, report.invalid.len()), (2, Some(1), 2));
        assert_eq!(report.resources, 0, "a line reported late is no resource either");
        assert_eq!(report.warnings.iter().filter(|w| w.contains("not FHIR resources")).count(), 1);
    }

    // issue 10 §2: a 410 after the manifest refresh says so, with the server's words
    #[test]
    fn gone_after_refresh_says_so_with_the_server_text() {
        let mut d = FileDownload::new(planned("https://h/f", false, None), &policy()).unwrap();
        let r = send(&mut d, 0);
        assert_eq!(d.handle_head(r.id, 410, &[], false, 0).unwrap(), HeadDecision::Discard);
        assert_eq!(d.next_action(0).unwrap(), DownloadAction::RefreshManifest);
        d.replace_file(Some(planned("https://h/f2", false, None))).unwrap();
        let r = send(&mut d, 0);
        let err = d.handle_head(r.id, 410, &[], false, 0).unwrap_err();
        let body = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"deleted","details":{"text":"Export files expired"}}]}"#;
        let err = err.with_body(body);
        let text = err.to_string();
        assert!(
            text.contains("410") && text.contains("re-fetched once") && text.contains("Export files expired"),
            "{text}"
        );
        assert!(matches!(err, DownloadError::Http { manifest_refreshed: true, .. }));
        assert!(DownloadError::Http { url: "u".into(), status: 503, server_message: None, manifest_refreshed: false }
            .with_body(b"<html>\n  Service   Unavailable\n</html>")
            .to_string()
            .ends_with(": <html> Service Unavailable </html>"));
    }

    // issue 10 §2: a token that cannot be refreshed is not sent twice
    #[test]
    fn token_unavailable_ends_the_file() {
        let mut d = FileDownload::new(planned("https://h/f", true, None), &policy()).unwrap();
        let r = send(&mut d, 0);
        d.handle_head(r.id, 401, &[], false, 0).unwrap();
        assert_eq!(d.next_action(0).unwrap(), DownloadAction::RefreshToken);
        let err = d.token_unavailable("a fixed token string");
        assert_eq!(err.code(), "unauthorized");
        assert!(err.to_string().contains("a fixed token string"));
        assert!(d.next_action(0).is_err(), "nothing more is sent");
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    // protocol K1: a body that breaks after N bytes continues with Range and If-Range;
    // a 206 continues the same file: every line once, nothing fetched twice
    #[test]
    fn range_resume_continues_the_file() {
        let body = b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\":\"3\"}\n";
        let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy()).unwrap();
        let mut got = Vec::new();
        let r = send(&mut d, 0);
        assert_eq!(r.header("Range"), None);
        let head = h(&[("Accept-Ranges", "bytes"), ("ETag", "\"v1\"")]);
        d.handle_head(r.id, 200, &head, false, 0).unwrap();
        d.feed(r.id, &body[..15], 0, |l| got.push(l.to_vec())).unwrap(); // one line and a half
        d.handle_transport_error(r.id, "reset", 0).unwrap();
        let r = send(&mut d, 1_000);
        assert_eq!((r.header("Range"), r.header("If-Range")), (Some("bytes=15-"), Some("\"v1\"")));
        let part = h(&[("Content-Range", "bytes 15-32/33"), ("ETag", "\"v1\"")]);
        assert_eq!(d.handle_head(r.id, 206, &part, false, 1_000).unwrap(), HeadDecision::Stream);
        d.feed(r.id, &body[15..], 1_000, |l| got.push(l.to_vec())).unwrap();
        d.finish(r.id, 1_000, |l| got.push(l.to_vec())).unwrap();
        assert_eq!(got, vec![b"{\"id\":\"1\"}".to_vec(), b"{\"id\":\"2\"}".to_vec(), b"{\"id\":\"3\"}".to_vec()]);
        let DownloadAction::Done { report } = d.next_action(1_000).unwrap() else { panic!() };
        assert_eq!((report.resources, report.bytes, report.range_resumes, report.range_restarts), (3, 33, 1, 0));
    }

    // protocol K1: a body cut many times continues at once each time, and the cuts do
    // not spend the retry budget (each one is progress)
    #[test]
    fn many_cuts_each_continue_at_once() {
        let body: Vec<u8> = (0..100).flat_map(|i| format!("{{\"id\":\"{i}\"}}\n").into_bytes()).collect();
        let mut d = FileDownload::new(planned("https://h/f", false, Some(100)), &policy()).unwrap();
        let mut n = 0;
        let mut at = 0;
        let step = body.len() / 20 + 1;
        let r = send(&mut d, 0);
        d.handle_head(r.id, 200, &h(&[("Accept-Ranges", "bytes"), ("ETag", "\"v\"")]), false, 0).unwrap();
        let mut id = r.id;
        loop {
            let end = (at + step).min(body.len());
            d.feed(id, &body[at..end], 0, |_| n += 1).unwrap();
            at = end;
            if at == body.len() {
                d.finish(id, 0, |_| n += 1).unwrap();
                break;
            }
            d.handle_transport_error(id, "cut", 0).unwrap();
            let r = send(&mut d, 0); // at once: no backoff after progress
            assert_eq!(r.header("Range"), Some(format!("bytes={at}-").as_str()));
            d.handle_head(
                r.id,
                206,
                &h(&[("Content-Range", &format!("bytes {at}-{}/{}", body.len() - 1, body.len()))]),
                false,
                0,
            )
            .unwrap();
            id = r.id;
        }
        assert_eq!(n, 100);
        let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!() };
        assert!(report.range_resumes >= 19, "{}", report.range_resumes);
    }

    // protocol K1: a 200 to a range request means start over, safely (no line twice)
    #[test]
    fn a_200_to_a_range_request_starts_over() {
        let body = b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n";
        let mut d = FileDownload::new(planned("https://h/f", false, Some(2)), &policy()).unwrap();
        let mut got = Vec::new();
        let r = send(&mut d, 0);
        d.handle_head(
            r.id,
            200,
            &h(&[("Accept-Ranges", "bytes"), ("Last-Modified", "Mon, 30 Nov 2026 10:00:00 GMT")]),
            false,
            0,
        )
        .unwrap();
        d.feed(r.id, &body[..14], 0, |l| got.push(l.to_vec())).unwrap();
        d.handle_transport_error(r.id, "reset", 0).unwrap();
        let r = send(&mut d, 1_000);
        assert_eq!(
            r.header("If-Range"),
            Some("Mon, 30 Nov 2026 10:00:00 GMT"),
            "Last-Modified when there is no strong ETag"
        );
        d.handle_head(r.id, 200, &[], false, 1_000).unwrap();
        d.feed(r.id, body, 1_000, |l| got.push(l.to_vec())).unwrap();
        d.finish(r.id, 1_000, |l| got.push(l.to_vec())).unwrap();
        assert_eq!(got.len(), 2, "the first line is not handed out twice");
        let DownloadAction::Done { report } = d.next_action(1_000).unwrap() else { panic!() };
        assert_eq!((report.range_resumes, report.range_restarts), (0, 1));
    }

    // protocol K1: no validator (or a weak one) or no Accept-Ranges: no range request
    #[test]
    fn no_range_without_a_validator() {
        for head in [h(&[("Accept-Ranges", "bytes"), ("ETag", "W/\"weak\"")]), h(&[("ETag", "\"v\"")])] {
            let mut d = FileDownload::new(planned("https://h/f", false, None), &policy()).unwrap();
            let r = send(&mut d, 0);
            d.handle_head(r.id, 200, &head, false, 0).unwrap();
            d.feed(r.id, b"{}\n{", 0, |_| {}).unwrap();
            d.handle_transport_error(r.id, "reset", 0).unwrap();
            assert_eq!(send(&mut d, 1_000).header("Range"), None, "{head:?}");
        }
    }

    // protocol K2: with gzip the range is over the encoded bytes; the decoder's state
    // lives on in this process, so the stream continues mid-deflate
    #[cfg(feature = "gzip")]
    #[test]
    fn range_resume_within_a_gzip_stream() {
        use std::io::Write as _;
        let plain: Vec<u8> = (0..400).flat_map(|i| format!("{{\"id\":\"{i}\"}}\n").into_bytes()).collect();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&plain).unwrap();
        let gz = enc.finish().unwrap();
        let cut = gz.len() / 2;
        let mut d = FileDownload::new(planned("https://h/f", false, Some(400)), &policy()).unwrap();
        let mut n = 0;
        let r = send(&mut d, 0);
        let head = h(&[("Content-Encoding", "gzip"), ("Accept-Ranges", "bytes"), ("ETag", "\"g\"")]);
        d.handle_head(r.id, 200, &head, false, 0).unwrap();
        d.feed(r.id, &gz[..cut], 0, |_| n += 1).unwrap();
        d.handle_transport_error(r.id, "reset", 0).unwrap();
        let r = send(&mut d, 1_000);
        assert_eq!(r.header("Range"), Some(format!("bytes={cut}-").as_str()));
        let part = h(&[
            ("Content-Encoding", "gzip"),
            ("Content-Range", &format!("bytes {cut}-{}/{}", gz.len() - 1, gz.len())),
        ]);
        d.handle_head(r.id, 206, &part, false, 1_000).unwrap();
        d.feed(r.id, &gz[cut..], 1_000, |_| n += 1).unwrap();
        d.finish(r.id, 1_000, |_| n += 1).unwrap();
        assert_eq!(n, 400);
        let DownloadAction::Done { report } = d.next_action(1_000).unwrap() else { panic!() };
        assert_eq!(report.range_resumes, 1);
    }

    // protocol K1: a 206 for another range than asked is not trusted: start over
    #[test]
    fn a_206_for_another_range_starts_over() {
        let mut d = FileDownload::new(planned("https://h/f", false, None), &policy()).unwrap();
        let r = send(&mut d, 0);
        d.handle_head(r.id, 200, &h(&[("Accept-Ranges", "bytes"), ("ETag", "\"v\"")]), false, 0).unwrap();
        d.feed(r.id, b"{}\n{", 0, |_| {}).unwrap();
        d.handle_transport_error(r.id, "reset", 0).unwrap();
        let r = send(&mut d, 1_000);
        assert_eq!(
            d.handle_head(r.id, 206, &h(&[("Content-Range", "bytes 0-9/10")]), false, 1_000).unwrap(),
            HeadDecision::Discard
        );
        let r = send(&mut d, 10_000);
        assert_eq!(r.header("Range"), None, "the next attempt fetches the whole file");
    }

    // protocol K5: a partly downloaded identity file continues in another process from
    // the end of its last line: no line twice, none lost
    #[test]
    fn a_checkpoint_continues_in_another_process() {
        let body = b"{\"id\":\"1\"}\r\n\n{\"id\":\"2\"}\n{\"id\":\"3\"}\n";
        let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy()).unwrap();
        let mut first = Vec::new();
        let r = send(&mut d, 0);
        d.handle_head(r.id, 200, &h(&[("Accept-Ranges", "bytes"), ("ETag", "\"v\"")]), false, 0).unwrap();
        d.feed(r.id, &body[..20], 0, |l| first.push(l.to_vec())).unwrap(); // line 1, a blank line, half of line 2
        let cp = d.checkpoint().expect("identity with ranges");
        assert_eq!((cp.offset, cp.resources, cp.validator.as_str()), (13, 1, "\"v\""));
        // A new process.
        let mut d =
            FileDownload::new(planned("https://h/f", false, Some(3)), &policy()).unwrap().resume_from(cp.clone());
        let r = send(&mut d, 0);
        assert_eq!((r.header("Range"), r.header("If-Range")), (Some("bytes=13-"), Some("\"v\"")));
        let mut rest = Vec::new();
        d.handle_head(r.id, 206, &h(&[("Content-Range", "bytes 13-34/35")]), false, 0).unwrap();
        d.feed(r.id, &body[13..], 0, |l| rest.push(l.to_vec())).unwrap();
        d.finish(r.id, 0, |l| rest.push(l.to_vec())).unwrap();
        assert_eq!(rest, vec![b"{\"id\":\"2\"}".to_vec(), b"{\"id\":\"3\"}".to_vec()]);
        // The file changed meanwhile: a 200 starts over and skips what the caller has.
        let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy()).unwrap().resume_from(cp);
        let r = send(&mut d, 0);
        let mut again = Vec::new();
        d.handle_head(r.id, 200, &[], false, 0).unwrap();
        d.feed(r.id, body, 0, |l| again.push(l.to_vec())).unwrap();
        d.finish(r.id, 0, |l| again.push(l.to_vec())).unwrap();
        assert_eq!(again.len(), 2);
        // gzip bodies have no checkpoint.
        let mut d = FileDownload::new(planned("https://h/f", false, None), &policy()).unwrap();
        let r = send(&mut d, 0);
        d.handle_head(
            r.id,
            200,
            &h(&[("Accept-Ranges", "bytes"), ("ETag", "\"v\""), ("Content-Encoding", "gzip")]),
            false,
            0,
        )
        .unwrap();
        assert_eq!(d.checkpoint(), None);
    }
}
