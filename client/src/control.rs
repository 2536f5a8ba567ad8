//! What a caller may ask of a job besides waiting for it and downloading:
//! the cleanup after the files are fetched, a server's callback, and which
//! files an earlier download already completed in a folder.

use crate::drive::Until;
use crate::{now_ms, ClientError, JobRun};
use fhir_async::{CallbackEffect, CallbackPayload, CleanupResult, Outcome, Progress};
use std::path::Path;
use std::sync::mpsc::Receiver;

/// How long [`JobRun::wait_with_callbacks`] polls before it looks for a callback again.
const CALLBACK_TICK: std::time::Duration = std::time::Duration::from_millis(100);

impl JobRun {
    /// Tells the server the files are no longer needed (protocol F3: a
    /// DELETE of the status URL; Oracle asks for it) and returns how it
    /// answered. Only on a job that completed.
    pub fn cleanup(&mut self) -> Result<CleanupResult, ClientError> {
        self.job.cleanup()?;
        self.client.inner.io.drive(&mut self.job, Until::Done, &mut |_| {})?;
        self.job.cleanup_result().cloned().ok_or(ClientError::Stopped)
    }

    /// Hands the job a verified callback (see [`fhir_async::verify_callback`]):
    /// if the engine trusts it, the next poll is due now (protocol G2, G3).
    pub fn handle_callback(&mut self, payload: &CallbackPayload) -> CallbackEffect {
        self.job.handle_callback(payload, now_ms())
    }

    /// Like [`JobRun::wait_with`], and every callback arriving on `inbox`
    /// (from a thread serving the callback URL) is handed to
    /// [`JobRun::handle_callback`] within 100 ms, so it can end a long
    /// `Retry-After` early.
    pub fn wait_with_callbacks(
        &mut self,
        inbox: &Receiver<CallbackPayload>,
        mut on_progress: impl FnMut(&Progress),
    ) -> Result<Outcome, ClientError> {
        loop {
            while let Ok(payload) = inbox.try_recv() {
                self.handle_callback(&payload);
            }
            if let Some(outcome) = self.step(CALLBACK_TICK)? {
                return Ok(outcome);
            }
            on_progress(&self.progress());
        }
    }

    /// The plan's files that are already complete in `dir`, by file name: a
    /// download renames a file into place only once it is complete and
    /// checked, so one that exists is done. Put them in
    /// [`fhir_async::DownloadOptions::skip_files`] to resume a download.
    pub fn completed_in(&self, dir: impl AsRef<Path>) -> Vec<String> {
        let dir = dir.as_ref();
        self.job.download_plan().into_iter().map(|f| f.file_name).filter(|name| dir.join(name).is_file()).collect()
    }
}
