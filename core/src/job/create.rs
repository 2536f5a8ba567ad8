//! Making a job: a new one, one attached to an operation started elsewhere, or one resumed from its
//! saved JSON; and saving it (protocol: resume).

use super::respond;
use super::state::{Cleanup, Memo, Phase3, State, TokenMemo, TokenPhase};
use super::types::JobConfig;
use super::{Job, STATE_VERSION};
use crate::http::RequestKind;
use crate::kickoff::{kickoff_for_base, normalized_base};
use crate::origin::resolve;
use crate::retry::derive_seed;
use crate::Error;
use serde::Deserialize;
use serde_json::Value;

impl Job {
    /// Creates a job. Validates the configuration (base URL, export
    /// parameters) so misuse surfaces before anything is sent.
    pub fn new(config: JobConfig) -> Result<Job, Error> {
        let base = normalized_base(&config.base_url)?;
        // Built now to validate, and kept for the kick-off (id and timeout are filled in then).
        let kickoff = kickoff_for_base(&base, &config.operation, &config.prefer, 0, 0)?;
        if let Some(cb) = &config.prefer.callback_url {
            if resolve(cb, cb).is_none() {
                return Err(Error::usage(format!("callbackUrl must be an absolute http(s) URL: {cb}")));
            }
        }
        Ok(Job {
            version: STATE_VERSION,
            config,
            base,
            state: State::Ready,
            status_url: None,
            medplum_cancel_url: None,
            separate_status: false,
            preference_applied: Vec::new(),
            started_at_ms: None,
            deadline_ms: None,
            polls: 0,
            failures: 0,
            backoff_attempt: 0,
            kickoff_attempts: 0,
            declared_version: None,
            get_refused: false,
            token: TokenPhase::Accepted,
            refusal: None,
            next_id: 1,
            in_flight: None,
            cancel: None,
            cancel_confirm: None,
            cleanup: None,
            progress_message: None,
            progress_percent: None,
            partial: None,
            pages: None,
            refreshing: None,
            redirect_hops: 0,
            page_count: 0,
            warnings: Vec::new(),
            seed: 0,
            files: Vec::new(),
            token_memo: TokenMemo::default(),
            kickoff_memo: Memo(Some(kickoff)),
            refresh_error: None,
            refresh_running: 0,
        })
    }

    /// A job for an operation that was started elsewhere, known only by its
    /// status URL (a command line's `status URL`, a manifest URL to download
    /// from): no kick-off; the first action polls `status_url` at once.
    pub fn attach(config: JobConfig, status_url: &str) -> Result<Job, Error> {
        let mut job = Job::new(config)?;
        let url = resolve(&job.base, status_url)
            .ok_or_else(|| Error::usage(format!("not an http(s) status URL: {status_url}")))?;
        if job.downgrades_base(&url) {
            return Err(Error::InsecureUrl {
                url,
                reason: "an http: status URL under an https: base (protocol I4)".into(),
            });
        }
        job.medplum_cancel_url = respond::medplum_cancel_url(&url);
        job.seed = derive_seed(job.config.retry.seed, url.as_bytes());
        job.status_url = Some(url);
        job.kickoff_memo = Memo(None);
        job.state = State::Polling { at_ms: 0 };
        Ok(job)
    }

    /// Resumes a job saved with [`Job::to_json`] (protocol: resume). A request
    /// that was in flight when the state was saved is re-sent if it is safe to
    /// (polls, result fetches, cancels); a kick-off in flight is never replayed
    /// and turns into [`Error::KickoffIndeterminate`].
    pub fn from_json(json: &str) -> Result<Job, Error> {
        let mut job: Job = serde_json::from_slice::<Value>(json.as_bytes())
            .and_then(Job::deserialize)
            .map_err(|e| Error::usage(format!("not a saved job: {e}")))?;
        if job.version != STATE_VERSION {
            return Err(Error::usage(format!("saved job has state version {}, expected {STATE_VERSION}", job.version)));
        }
        // The records are sorted by name (record_file's binary search); a state
        // written otherwise is put in order, the later record of a name winning.
        if !job.files.windows(2).all(|w| w[0].file_name < w[1].file_name) {
            for r in std::mem::take(&mut job.files) {
                job.record_file(r);
            }
        }
        if let Some(f) = job.in_flight.take() {
            match f.kind {
                RequestKind::Kickoff => {
                    job.state = State::Errored {
                        error: Error::KickoffIndeterminate {
                            message: "the process stopped while the kick-off was in flight".into(),
                        },
                    }
                }
                RequestKind::Cancel => job.cancel_sent_to_asked(),
                RequestKind::Cleanup => job.cleanup = Some(Cleanup { phase: Phase3::Asked, result: None }),
                _ => {}
            }
        }
        Ok(job)
    }

    /// The whole state as JSON: status URL, counters, deadline, outcome.
    /// Contains no token.
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
