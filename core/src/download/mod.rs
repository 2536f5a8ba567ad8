//! One file download as a sans-IO state machine (protocol E1–E6, I3): the
//! caller does the HTTP, the engine decides token, redirects, retries,
//! decoding, line splitting, resuming after a reset and the count check.

mod body;
mod error;
mod gate;
mod head;
mod invalid;
mod opaque;
mod range;
#[cfg(test)]
mod tests;
mod types;

pub use error::{DownloadError, MAX_ERROR_BODY};
pub use gate::line_problem;
pub(crate) use gate::report_invalid_late;
pub use types::{
    CountCheck, CountMismatchInfo, DownloadAction, FileCheckpoint, FileReport, HeadDecision, InvalidLine, InvalidLines,
    Validation, MAX_INVALID_REPORTED,
};

use crate::decode::{BodyDecoder, DecodeError};
use crate::http::{Method, Request, RequestKind};
use crate::manifest::PlannedFile;
use crate::ndjson::{LineSplitter, DEFAULT_MAX_LINE};
use crate::origin::redact_url;
use crate::retry::{backoff_ms, derive_seed, RetryAfter, RetryPolicy};
use crate::taken::{Proof, Taken};
use range::RangeState;

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
    /// Set by the line gate when a body turned out to be another version.
    changed: bool,
    /// Whether a changed file starts over (the caller drops its copy down to
    /// [`FileDownload::taken_bytes`]) rather than failing with `file_changed`.
    restart_changed: bool,
    /// Decoded bytes of the body before this process's part (an earlier
    /// process's checkpoint, K5): the report counts the whole file.
    earlier_bytes: u64,
    /// An opaque file's (L13) decoded bytes handed out (its copy's length).
    raw: u64,
    /// Whether the file was already fetched again for a `fileSize` mismatch (L13: once).
    size_retried: bool,
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
            raw: 0,
            size_retried: false,
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
        if self.is_opaque() {
            return self.raw; // opaque bytes (L13): handed out as they are
        }
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
        self.earlier_bytes + if self.is_opaque() { self.raw } else { self.splitter.bytes() }
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
                // An opaque file (L13) is asked for in its own format.
                let accept = self.file.opaque_format.as_deref().unwrap_or(crate::manifest::DEFAULT_OUTPUT_FORMAT);
                let mut headers = vec![("Accept".to_owned(), accept.to_owned())];
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

    /// 429 and 503 answers so far (for the per-origin limit, K3).
    pub fn throttled(&self) -> u32 {
        self.throttled
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

    fn retry(&mut self, last: String, ra: RetryAfter, now_ms: u64) -> Result<(), DownloadError> {
        // A range resume continues the same decoder and line splitter; anything else starts over.
        if self.range.resume_from.is_none() {
            self.decoder = None;
            self.splitter.reset();
        }
        self.failures += 1;
        if self.failures > self.policy.max_download_retries {
            self.state = FileState::Done;
            return Err(DownloadError::RetriesExhausted {
                url: redact_url(&self.url),
                attempts: self.attempts,
                last,
                server_message: None,
            });
        }
        let delay = match ra {
            RetryAfter::Delay(ms) => ms,
            RetryAfter::Absent => backoff_ms(&self.policy, self.failures - 1),
        };
        self.state = FileState::Ready { at_ms: now_ms.saturating_add(delay) };
        Ok(())
    }
}
