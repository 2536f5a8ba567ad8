//! The invalid-line policy (issue 20): a line that is not a resource is
//! reported (counted, the first few described) or fails its file
//! ([`InvalidLines`]), whether the core found it or a binding that parses
//! lines itself reported it.

use super::gate::{note_invalid, report_invalid_late};
use super::{DownloadError, FileDownload, FileState, InvalidLine, InvalidLines};
use crate::origin::redact_url;

impl FileDownload {
    /// A binding that parses each line itself (and runs this download with
    /// [`Validation::None`](crate::Validation::None)) reports a line that failed, so the file report
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

    pub(super) fn invalid_line_error(&self, l: InvalidLine) -> DownloadError {
        DownloadError::InvalidLine { url: redact_url(&self.url), line: l.line, message: l.message }
    }

    /// With [`InvalidLines::Raise`], after an invalid line: the file ends with it.
    pub(super) fn check_raised(&mut self) -> Result<(), DownloadError> {
        match self.raised.clone() {
            Some(l) => {
                self.state = FileState::Done;
                self.decoder = None;
                Err(self.invalid_line_error(l))
            }
            None => Ok(()),
        }
    }
}
