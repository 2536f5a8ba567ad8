//! What a host language's binding needs besides the blocking calls: a job
//! built elsewhere taken over without a request, and the job's controls
//! asked for without waiting (the binding's own loop, an asyncio task or a
//! tqdm bar, does the waiting with [`JobRun::step`]).

use crate::{now_ms, Client, JobRun};
use fhir_async::Job;

impl Client {
    /// Takes over `job` (built from a [`fhir_async::JobConfig`] elsewhere, or
    /// restored) without sending anything: the first [`JobRun::step`] or
    /// [`JobRun::wait`] sends what is due (the kick-off, for a new job).
    pub fn adopt(&self, job: Job) -> JobRun {
        let outcome = job.outcome().cloned();
        JobRun { client: self.clone(), job, outcome }
    }
}

impl JobRun {
    /// Asks for the cancel without waiting for it: the next [`JobRun::step`]
    /// or [`JobRun::wait`] sends it (the dialect's cancel) and ends with the
    /// outcome. A job already over stays as it was.
    pub fn request_cancel(&mut self) {
        if self.job.is_finished() {
            return;
        }
        self.job.cancel(now_ms());
        self.outcome = None;
    }
}
