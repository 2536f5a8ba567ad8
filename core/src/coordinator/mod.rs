//! The downloads of a finished job, coordinated: which files to take, how
//! many at once per origin, the one manifest refresh and the one token
//! refresh all files share, re-binding a file to its fresh URL, progress, and
//! a result per file (one bad file never loses the good ones).
//!
//! Each file is a [`FileDownload`]; [`Downloads`] decides which of them run
//! and hands the caller one [`DownloadStep`] at a time. The caller moves
//! bytes, several files at once, and never decides anything:
//!
//! ```text
//!             next(now)
//!   ┌──────────────────────────────────────────────────────────────────┐
//!   │ Send{file, request}  → send it; handle_head / feed / finish /     │
//!   │                        handle_transport_error with the same file  │
//!   │ RefreshToken         → get a new token, then token_refreshed()     │
//!   │                        (or token_unavailable(reason))              │
//!   │ RefreshManifest      → Job::refresh_manifest, drive the job to     │
//!   │                        done, then manifest_refreshed(job.download_plan()) │
//!   │ Wait{until}          → nothing to start before `until` (a response │
//!   │                        may still arrive: call next() after it)     │
//!   │ Idle                 → every allowed file is in flight: wait for   │
//!   │                        a response                                  │
//!   │ Done                 → results() has one entry per file           │
//!   └──────────────────────────────────────────────────────────────────┘
//! ```
//!
//! ```
//! use fhir_async::{DownloadOptions, DownloadStep, Downloads, FileKind, PlannedFile};
//! let file = |i: usize| PlannedFile {
//!     kind: FileKind::Output, index: i, resource_type: Some("Patient".into()),
//!     url: format!("https://h/files/{i}"), send_token: true, expected_count: Some(1),
//!     expected_bytes: None, opaque_format: None, file_name: format!("Patient.{i:03}.ndjson"), max_bytes: None, blocked: None,
//! };
//! let mut downloads = Downloads::new(vec![file(0), file(1)], DownloadOptions::default(), &Default::default());
//! let mut lines = 0;
//! loop {
//!     match downloads.next(0)? {
//!         DownloadStep::Send { file, request } => {
//!             // Send `request`; here every file answers with one line.
//!             downloads.handle_head(file, request.id, 200, &[], false, 0)?;
//!             downloads.feed(file, request.id, b"{\"resourceType\":\"Patient\"}\n", 0, |_| lines += 1)?;
//!             downloads.finish(file, request.id, 0, |_| lines += 1)?;
//!         }
//!         DownloadStep::Done => break,
//!         other => unreachable!("{other:?}"),
//!     }
//! }
//! assert_eq!(lines, 2);
//! assert!(downloads.results().iter().all(|r| r.error.is_none()));
//! # Ok::<(), fhir_async::DownloadError>(())
//! ```

mod options;
mod politeness;
mod records;
mod refresh;
mod responses;
mod types;

pub use options::DownloadOptions;
pub use politeness::origin_key;
pub use records::{resume_decision, FileIdentity, FileRecord, ResumeDecision};
pub use types::{DownloadProgress, DownloadStep, FileResult, LimitChange, OriginLimit};

use crate::download::{DownloadAction, DownloadError, FileDownload, FileReport};
use crate::manifest::PlannedFile;
use crate::retry::RetryPolicy;
use options::selected;
use politeness::{ByOrigin, Politeness};
use refresh::{RefreshState, Waiting};
use std::collections::VecDeque;

#[derive(Debug)]
enum Slot {
    Pending,
    Active {
        download: Box<FileDownload>,
        in_flight: Option<u64>,
        origin: String,
        waiting: Waiting,
    },
    /// Handed to a worker thread with [`Downloads::lend`] for one request.
    Lent {
        origin: String,
    },
    Finished(Box<FileResult>),
}

/// The downloads of a job's files (see the module docs).
#[derive(Debug)]
pub struct Downloads {
    files: Vec<PlannedFile>,
    slots: Vec<Slot>,
    options: DownloadOptions,
    policy: RetryPolicy,
    token: RefreshState,
    manifest: RefreshState,
    /// The one manifest refresh's plan, matched to [`Downloads::files`] by
    /// identity (K6): entry `i` is file `i`'s fresh entry, if it has one.
    fresh_plan: Option<Vec<Option<PlannedFile>>>,
    /// Why the one manifest refresh failed, if it did (K8).
    refresh_failure: Option<String>,
    origins: ByOrigin<Politeness>,
    /// Files not started yet, per origin, in plan order (O(origins) to start the next).
    queues: ByOrigin<VecDeque<usize>>,
    /// Started files (active or lent), in start order: every decision scans these, never all files.
    live: Vec<usize>,
    finished: usize,
    /// Totals of the finished files: completed, failed, resources, decoded bytes.
    done_totals: (usize, usize, usize, u64),
    /// The sum of the manifest's counts, when every file has one.
    expected: Option<u64>,
    /// Per file: the 429/503 answers already counted.
    throttles_seen: Vec<u32>,
    /// Per file: its origin's epoch when its current request was sent.
    sent_epoch: Vec<u32>,
    changes: Vec<LimitChange>,
}

impl Downloads {
    /// Takes the files of `plan` that `options` selects, in plan order.
    pub fn new(plan: Vec<PlannedFile>, options: DownloadOptions, policy: &RetryPolicy) -> Downloads {
        let files: Vec<PlannedFile> = plan.into_iter().filter(|f| selected(f, &options)).collect();
        let slots = files.iter().map(|_| Slot::Pending).collect();
        let max = options.max_per_origin.max(1);
        let mut origins = ByOrigin(Vec::new());
        for f in &files {
            origins.entry(origin_key(&f.url), || Politeness { limit: max, ceiling: max, max, run: 0, epoch: 0 });
        }
        let throttles_seen = vec![0; files.len()];
        let sent_epoch = vec![0; files.len()];
        let expected = files.iter().map(|f| f.expected_count).sum();
        let mut queues: ByOrigin<VecDeque<usize>> = ByOrigin(Vec::new());
        for (i, f) in files.iter().enumerate() {
            queues.entry(origin_key(&f.url), VecDeque::new).push_back(i);
        }
        Downloads {
            files,
            slots,
            options,
            policy: policy.clone(),
            token: RefreshState::Idle,
            manifest: RefreshState::Idle,
            fresh_plan: None,
            refresh_failure: None,
            origins,
            throttles_seen,
            sent_epoch,
            changes: Vec::new(),
            queues,
            live: Vec::new(),
            finished: 0,
            done_totals: (0, 0, 0, 0),
            expected,
        }
    }

    /// The selected files, in the order their results come in [`Downloads::results`].
    pub fn files(&self) -> &[PlannedFile] {
        &self.files
    }

    /// The next step (see the module docs). Call it after every response and
    /// whenever a wait ends; an early call is harmless.
    pub fn next(&mut self, now_ms: u64) -> Result<DownloadStep, DownloadError> {
        // Links about to expire: re-fetch the manifest before starting another file (K4).
        let expiring =
            self.options.expires_at_ms.is_some_and(|e| now_ms.saturating_add(self.options.expiry_margin_ms) >= e);
        let pending = self.queues.0.iter().any(|(_, q)| !q.is_empty());
        if expiring && self.fresh_plan.is_none() && self.manifest == RefreshState::Idle && pending {
            self.manifest = RefreshState::Asked;
            return Ok(DownloadStep::RefreshManifest);
        }
        self.start_what_fits();
        loop {
            if let Some(step) = self.step_live(now_ms) {
                return Ok(step);
            }
            // A file that finished may have freed a place: start more and look again.
            if !self.start_what_fits() {
                break;
            }
        }
        if self.finished == self.slots.len() {
            return Ok(DownloadStep::Done);
        }
        Ok(match self.wake_at(now_ms) {
            Some(until_ms) => DownloadStep::Wait { until_ms, delay_ms: until_ms.saturating_sub(now_ms) },
            None => DownloadStep::Idle,
        })
    }

    /// The first move a started file has to make (a request, a shared refresh), if any.
    fn step_live(&mut self, now_ms: u64) -> Option<DownloadStep> {
        for i in self.live.clone() {
            if let Some(step) = self.step_file(i, now_ms) {
                return Some(step);
            }
        }
        None
    }

    /// File `i`'s move, if it has one to make now.
    fn step_file(&mut self, i: usize, now_ms: u64) -> Option<DownloadStep> {
        // A file re-bound to the fresh plan is asked again at once (never a bare `Idle`
        // with nothing in flight); at most twice, as a file refreshes once.
        for _ in 0..3 {
            // Only a started file with nothing in flight and nothing awaited has a move to make,
            // and a retry waits for a free place under its origin's limit too (K3).
            let ready = match &self.slots[i] {
                Slot::Active { in_flight: None, waiting: Waiting::No, origin, .. } => {
                    self.in_flight(origin) < self.limit(origin)
                }
                _ => false,
            };
            let (true, Slot::Active { download, .. }) = (ready, &mut self.slots[i]) else {
                return None;
            };
            match download.next_action(now_ms) {
                Ok(DownloadAction::Send { request }) => {
                    if let Slot::Active { in_flight, origin, .. } = &mut self.slots[i] {
                        *in_flight = Some(request.id);
                        self.sent_epoch[i] = self.origins.get(origin.as_str()).map_or(0, |p| p.epoch);
                    }
                    return Some(DownloadStep::Send { file: i, request });
                }
                Ok(DownloadAction::Wait { .. }) => return None,
                Ok(DownloadAction::RefreshToken) => return self.wait_for(i, Waiting::Token),
                Ok(DownloadAction::RefreshManifest) => match self.wait_for(i, Waiting::Manifest) {
                    Some(step) => return Some(step),
                    None => continue, // re-bound to the fresh plan: ask it again
                },
                Ok(DownloadAction::Done { report }) => {
                    self.finish_slot(i, Some(report), None);
                    return None;
                }
                Err(e) => {
                    self.finish_slot(i, None, Some(e));
                    return None;
                }
            }
        }
        None
    }

    /// The earliest time a started file waits for (a backoff, a `Retry-After`).
    fn wake_at(&self, now_ms: u64) -> Option<u64> {
        let mut wake: Option<u64> = None;
        for &i in &self.live {
            if let Slot::Active { download, in_flight: None, waiting: Waiting::No, origin } = &self.slots[i] {
                // A file held back by its origin's limit goes when a place frees (a response), not at a time.
                if self.in_flight(origin) >= self.limit(origin) {
                    continue;
                }
                if let Some(at) = download.ready_at().filter(|at| *at > now_ms) {
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                }
            }
        }
        wake
    }

    /// Bytes of the lines file `file` handed out so far, each with its `\n`
    /// (what the caller's copy holds; see [`FileDownload::taken_bytes`]). A
    /// caller that keeps a copy cuts it to this before writing a request's
    /// lines: after a change of the file (K7, `restart_changed`) it is 0.
    pub fn taken_bytes(&self, file: usize) -> u64 {
        match self.slots.get(file) {
            Some(Slot::Active { download, .. }) => download.taken_bytes(),
            _ => 0,
        }
    }

    /// The results of the files finished so far, in [`Downloads::files`] order
    /// (one per file once [`DownloadStep::Done`]).
    pub fn results(&self) -> Vec<FileResult> {
        self.slots
            .iter()
            .filter_map(|s| match s {
                Slot::Finished(r) => Some((**r).clone()),
                _ => None,
            })
            .collect()
    }

    /// Every file's result, taken out of the coordinator (no copy; for the end
    /// of a download of many files).
    pub fn into_results(self) -> Vec<FileResult> {
        self.slots
            .into_iter()
            .filter_map(|s| match s {
                Slot::Finished(r) => Some(*r),
                _ => None,
            })
            .collect()
    }

    /// The result of file `file`, once it has one.
    pub fn result(&self, file: usize) -> Option<&FileResult> {
        match self.slots.get(file) {
            Some(Slot::Finished(r)) => Some(r),
            _ => None,
        }
    }

    /// Totals for a progress bar. Cheap whatever the number of files (the
    /// finished ones are counted as they finish).
    pub fn progress(&self) -> DownloadProgress {
        let (files_done, files_failed, resources, bytes) = self.done_totals;
        let mut p = DownloadProgress {
            files: self.files.len(),
            files_done,
            files_failed,
            resources: resources as u64,
            bytes,
            expected_resources: self.expected,
            origin_limits: self
                .origins
                .iter()
                .map(|(o, p)| OriginLimit { origin: o.clone(), limit: p.limit })
                .collect(),
            ..DownloadProgress::default()
        };
        for &i in &self.live {
            p.files_active += 1;
            if let Slot::Active { download, .. } = &self.slots[i] {
                p.resources += download.resources();
                p.bytes += download.bytes();
            }
        }
        p
    }

    // ----- internals -------------------------------------------------------

    /// Starts files, lowest plan position first, while their origin has room
    /// (and no shared refresh is under way: new files would only fetch expiring
    /// links again). Returns whether any started.
    fn start_what_fits(&mut self) -> bool {
        let mut started = false;
        let max_total = self.options.max_total.max(1) as usize;
        while self.manifest == RefreshState::Idle && self.token == RefreshState::Idle && self.live.len() < max_total {
            let next = self
                .queues
                .iter()
                .filter(|(o, q)| !q.is_empty() && self.running(o) < self.limit(o))
                .filter_map(|(o, q)| q.front().map(|i| (*i, o.clone())))
                .min();
            let Some((i, origin)) = next else { break };
            if let Some(q) = self.queues.get_mut(&origin) {
                q.pop_front();
            }
            self.start(i);
            started = true;
        }
        started
    }

    fn start(&mut self, i: usize) {
        // After the one manifest refresh, files start from the fresh plan.
        if let Some(f) = self.fresh_entry(i) {
            self.files[i] = f;
        }
        let file = self.files[i].clone();
        let origin = origin_key(&file.url);
        let max_line = usize::try_from(self.options.max_line).unwrap_or(usize::MAX);
        let checkpoint = self
            .options
            .continue_files
            .iter()
            .find(|p| p.file_name == file.file_name)
            .and_then(|p| p.checkpoint.clone());
        self.slots[i] = match FileDownload::new(file, &self.policy) {
            Ok(d) => Slot::Active {
                download: Box::new({
                    let d = d
                        .with_validation(self.options.validation)
                        .with_invalid_lines(self.options.invalid_lines)
                        .with_count_check(self.options.count_check)
                        .with_max_line(max_line)
                        .with_gzip(self.options.gzip)
                        .with_restart_changed(self.options.restart_changed);
                    match checkpoint {
                        Some(c) => d.resume_from(c),
                        None => d,
                    }
                }),
                in_flight: None,
                origin,
                waiting: Waiting::No,
            },
            Err(e) => {
                // Refused before any request (blocked): a result at once.
                self.finish_slot(i, None, Some(e));
                return;
            }
        };
        self.live.push(i);
    }

    fn finish_slot(&mut self, i: usize, report: Option<FileReport>, error: Option<DownloadError>) {
        if matches!(self.slots[i], Slot::Finished(_)) {
            return;
        }
        self.live.retain(|&j| j != i);
        self.finished += 1;
        match &report {
            Some(r) => {
                self.note_success(&origin_key(&self.files[i].url));
                self.done_totals.0 += 1;
                self.done_totals.2 += r.resources as usize;
                self.done_totals.3 += r.bytes;
            }
            None => self.done_totals.1 += 1,
        }
        self.slots[i] = Slot::Finished(Box::new(FileResult { file: self.files[i].clone(), report, error }));
    }
}

#[cfg(test)]
mod tests;
