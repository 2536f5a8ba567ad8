//! A response's body for a file: chunks decoded and split into lines, each
//! line through the gate (counted, skipped once proven already handed out,
//! validated); at its end gzip integrity and the manifest's count (D2); and a
//! file that changed on the server meanwhile (K7).

use super::error::kind_label;
use super::gate::LineGate;
use super::{CountCheck, CountMismatchInfo, DownloadError, FileDownload, FileReport, FileState, HeadDecision};
use crate::manifest::FileKind;
use crate::ndjson::LineSplitter;
use crate::origin::redact_url;
use crate::retry::RetryAfter;
use crate::taken::Taken;

impl FileDownload {
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
        if self.is_opaque() {
            return self.feed_opaque(chunk, now_ms, on_line);
        }
        self.check_raised()?;
        let Some(mut decoder) = self.decoder.take() else {
            return Err(DownloadError::Usage("no decoder".into()));
        };
        self.range.received += chunk.len() as u64;
        let (splitter, mut gate) = self.line_parts();
        let r = decoder.decode(chunk, |bytes| splitter.feed(bytes, |l| gate.line(l, &mut on_line)));
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
            Err(e) => self.corrupt(e.to_string(), now_ms),
        }
    }

    /// The body ended. Checks gzip integrity, the manifest's `fileSize` and count.
    pub fn finish(&mut self, id: u64, now_ms: u64, mut on_line: impl FnMut(&[u8])) -> Result<(), DownloadError> {
        self.expect(FileState::Streaming { id })?;
        if self.is_opaque() {
            return self.finish_opaque(now_ms, on_line);
        }
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
        let (splitter, mut gate) = self.line_parts();
        let r = decoder
            .finish(|bytes| splitter.feed(bytes, |l| gate.line(l, &mut on_line)))
            .map(|inner| inner.and_then(|()| splitter.finish(|l| gate.line(l, &mut on_line))));
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
        if !self.size_checked(now_ms)? {
            return Ok(());
        }
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
        self.complete(resources, count_mismatch, warnings);
        Ok(())
    }

    /// The file is complete: its report.
    pub(super) fn complete(
        &mut self,
        resources: u64,
        count_mismatch: Option<CountMismatchInfo>,
        warnings: Vec<String>,
    ) {
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
    }

    /// The splitter and the gate each line passes: counted, skipped, validated.
    pub(super) fn line_parts(&mut self) -> (&mut LineSplitter, LineGate<'_>) {
        let gate = LineGate {
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
        (&mut self.splitter, gate)
    }

    /// Corrupt data in a body (NDJSON or opaque): the decoder's state is
    /// worthless, so the whole file is fetched again.
    pub(super) fn corrupt(&mut self, message: String, now_ms: u64) -> Result<HeadDecision, DownloadError> {
        self.range.start_over();
        self.retry(message, RetryAfter::Absent, now_ms)?;
        Ok(HeadDecision::Discard)
    }

    /// The body turned out to be another version of the file (K7).
    pub(super) fn file_changed(&mut self, now_ms: u64) -> Result<(), DownloadError> {
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
        self.range.start_over();
        self.range.restarts += 1;
        self.warnings.push(format!(
            "the file changed on the server after {taken} line(s) were taken: it was downloaded again from the start"
        ));
        self.retry("the file changed on the server (K7)".to_owned(), RetryAfter::Delay(0), now_ms)
    }
}
