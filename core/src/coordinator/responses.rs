//! What the caller hands back for a file's request: its head, its body, its
//! end or its failure, a line it found broken, an error body; and a file's
//! download lent to a worker thread for one request and given back.

use super::{origin_key, Downloads, Slot, Waiting};
use crate::download::{DownloadError, FileDownload, HeadDecision, InvalidLines};

impl Downloads {
    /// The status line and headers of file `file`'s response to request `id`
    /// (see [`FileDownload::handle_head`]). A file that fails here is a
    /// result, not an `Err`: the answer is then [`HeadDecision::Discard`]; a
    /// caller that wants the server's words in the error reads up to
    /// [`crate::download::MAX_ERROR_BODY`] bytes of the body and hands them to
    /// [`Downloads::error_body`].
    pub fn handle_head(
        &mut self,
        file: usize,
        id: u64,
        status: u16,
        headers: &[(String, String)],
        already_decoded: bool,
        now_ms: u64,
    ) -> Result<HeadDecision, DownloadError> {
        let r = self.active(file, id)?.handle_head(id, status, headers, already_decoded, now_ms);
        self.note_throttles(file);
        self.settle(file, r)
    }

    /// A chunk of file `file`'s body (see [`FileDownload::feed`]).
    pub fn feed(
        &mut self,
        file: usize,
        id: u64,
        chunk: &[u8],
        now_ms: u64,
        on_line: impl FnMut(&[u8]),
    ) -> Result<HeadDecision, DownloadError> {
        let r = self.active(file, id)?.feed(id, chunk, now_ms, on_line);
        self.settle(file, r)
    }

    /// File `file`'s body ended (see [`FileDownload::finish`]).
    pub fn finish(
        &mut self,
        file: usize,
        id: u64,
        now_ms: u64,
        on_line: impl FnMut(&[u8]),
    ) -> Result<(), DownloadError> {
        let r = self.active(file, id)?.finish(id, now_ms, on_line);
        self.settle(file, r.map(|()| HeadDecision::Discard)).map(|_| ())
    }

    /// File `file`'s request failed before or during the body (see
    /// [`FileDownload::handle_transport_error`]).
    pub fn handle_transport_error(
        &mut self,
        file: usize,
        id: u64,
        message: &str,
        now_ms: u64,
    ) -> Result<(), DownloadError> {
        let r = self.active(file, id)?.handle_transport_error(id, message, now_ms);
        self.settle(file, r.map(|()| HeadDecision::Discard)).map(|_| ())
    }

    /// A line of file `file` that a binding parsed itself and found broken
    /// (see [`FileDownload::report_invalid_line`]).
    /// A line reported after the file finished updates its result's report.
    ///
    /// With [`InvalidLines::Raise`] the file fails: the answer is its error
    /// (stop handing out its lines); a file still running ends with it at its
    /// next call (`feed`, `finish`, `handle_transport_error`), a finished one
    /// at once (its result's report becomes this error).
    pub fn report_invalid_line(&mut self, file: usize, line: u64, message: &str) -> Option<DownloadError> {
        match self.slots.get_mut(file) {
            Some(Slot::Active { download, .. }) => download.report_invalid_line(line, message),
            Some(Slot::Finished(r)) => {
                let report = r.report.as_mut()?;
                if self.options.invalid_lines == InvalidLines::Report {
                    crate::download::report_invalid_late(report, line, message);
                    return None;
                }
                let e = DownloadError::InvalidLine {
                    url: crate::origin::redact_url(&r.file.url),
                    line,
                    message: message.chars().take(300).collect(),
                };
                // The totals counted it done: it is failed now.
                self.done_totals.0 -= 1;
                self.done_totals.1 += 1;
                self.done_totals.2 -= report.resources as usize;
                self.done_totals.3 -= report.bytes;
                r.report = None;
                r.error = Some(e.clone());
                Some(e)
            }
            _ => None,
        }
    }

    /// The body of the error response that failed file `file`: its text
    /// goes into the file's error (see [`DownloadError::with_body`]).
    pub fn error_body(&mut self, file: usize, body: &[u8]) {
        if let Some(Slot::Finished(result)) = self.slots.get_mut(file) {
            if let Some(e) = result.error.take() {
                result.error = Some(e.with_body(body));
            }
        }
    }

    /// Hands file `file`'s [`FileDownload`] to the caller for the request
    /// just sent (a [`DownloadStep::Send`](crate::DownloadStep::Send)), so a thread can stream its body
    /// without holding the coordinator; give it back with
    /// [`Downloads::give_back`] once that request is over (the body ended,
    /// was discarded, or failed). `None` if the file has no request in flight.
    pub fn lend(&mut self, file: usize) -> Option<Box<FileDownload>> {
        match self.slots.get(file) {
            Some(Slot::Active { in_flight: Some(_), waiting: Waiting::No, .. }) => {}
            _ => return None,
        }
        let origin = origin_key(&self.files[file].url);
        match std::mem::replace(&mut self.slots[file], Slot::Lent { origin }) {
            Slot::Active { download, .. } => Some(download),
            _ => None,
        }
    }

    /// Takes back a lent download with how its request ended: `Ok` after a
    /// finish, a discard or a transport error handed to it, or the error one
    /// of its methods returned (which then fails this file only).
    pub fn give_back(&mut self, file: usize, download: Box<FileDownload>, ended: Result<(), DownloadError>) {
        if !matches!(self.slots.get(file), Some(Slot::Lent { .. })) {
            return;
        }
        let origin = origin_key(&download.file().url);
        let report = download.report().cloned();
        self.slots[file] = Slot::Active { download, in_flight: None, origin, waiting: Waiting::No };
        self.note_throttles(file);
        match (ended, report) {
            (Err(e), _) => self.finish_slot(file, None, Some(e)),
            // Complete: the result is known now, not at the next `next()`.
            (Ok(()), Some(report)) => self.finish_slot(file, Some(report), None),
            (Ok(()), None) => {}
        }
    }

    pub(super) fn active(&mut self, file: usize, id: u64) -> Result<&mut FileDownload, DownloadError> {
        match self.slots.get_mut(file) {
            Some(Slot::Active { download, in_flight: Some(f), .. }) if *f == id => Ok(download),
            _ => Err(DownloadError::Usage(format!("file {file} has no request {id} in flight"))),
        }
    }

    /// A file's answer: errors other than misuse end that file only.
    /// `Discard` means the request is over (a retry, a redirect, a refresh, the end).
    pub(super) fn settle(
        &mut self,
        file: usize,
        r: Result<HeadDecision, DownloadError>,
    ) -> Result<HeadDecision, DownloadError> {
        let decision = match r {
            Ok(d) => d,
            Err(DownloadError::Usage(m)) => return Err(DownloadError::Usage(m)),
            Err(e) => {
                self.finish_slot(file, None, Some(e));
                return Ok(HeadDecision::Discard);
            }
        };
        if decision == HeadDecision::Discard {
            if let Some(Slot::Active { in_flight, .. }) = self.slots.get_mut(file) {
                *in_flight = None;
            }
        }
        Ok(decision)
    }
}
