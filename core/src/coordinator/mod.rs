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
//!     file_name: format!("Patient.{i:03}.ndjson"), blocked: None,
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

mod records;

pub use records::{resume_decision, FileIdentity, FileRecord, ResumeDecision};

use crate::download::{
    CountCheck, DownloadAction, DownloadError, FileDownload, FileReport, HeadDecision, InvalidLines, Validation,
};
use crate::http::Request;
use crate::limits::{DEFAULT_EXPIRY_MARGIN_MS, DEFAULT_MAX_PER_ORIGIN, DEFAULT_MAX_TOTAL};
use crate::manifest::{FileKind, PlannedFile};
use crate::ndjson::DEFAULT_MAX_LINE;
use crate::origin::Origin;
use crate::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// A map for the few origins of an export: a vector searched in order (in the
/// `.wasm`, a B-tree or a hash map costs kilobytes for nothing).
#[derive(Debug, Clone)]
struct ByOrigin<V>(Vec<(String, V)>);

impl<V> ByOrigin<V> {
    fn get(&self, origin: &str) -> Option<&V> {
        self.0.iter().find(|(o, _)| o == origin).map(|(_, v)| v)
    }
    fn get_mut(&mut self, origin: &str) -> Option<&mut V> {
        self.0.iter_mut().find(|(o, _)| o == origin).map(|(_, v)| v)
    }
    fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.0.iter().map(|(o, v)| (o, v))
    }
    fn entry(&mut self, origin: String, new: impl FnOnce() -> V) -> &mut V {
        let i = match self.0.iter().position(|(o, _)| *o == origin) {
            Some(i) => i,
            None => {
                self.0.push((origin, new()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }
}

/// What to download and how (the same options in every binding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DownloadOptions {
    /// Which manifest lists to take (default: all three).
    pub kinds: Vec<FileKind>,
    /// Only these resource types (empty: every type). Files without a type
    /// (organized output, error and deleted files) are kept.
    pub types: Vec<String>,
    /// Files downloaded at once from one origin (default 4, at least 1).
    pub max_per_origin: u32,
    /// Files downloaded at once in all, whatever their origins (default
    /// [`DEFAULT_MAX_TOTAL`], at least 1). The native client runs at most
    /// this many worker threads.
    pub max_total: u32,
    /// What a count mismatch does.
    pub count_check: CountCheck,
    /// How lines are checked.
    pub validation: Validation,
    /// What a line that is not a resource does: `"report"` (the default:
    /// counted in the report, the file completes) or `"raise"` (the file
    /// fails with `invalid_line` at its first one).
    pub invalid_lines: InvalidLines,
    /// The longest line accepted, in bytes (default 64 MiB).
    pub max_line: u64,
    /// Whether to ask for gzip.
    pub gzip: bool,
    /// Files already complete from an earlier run, by their plan `file_name`:
    /// left out (a resumed download never fetches a finished file again; see
    /// [`resume_decision`]).
    pub skip_files: Vec<String>,
    /// When the manifest's links expire (the outcome's `expiresAtMs`): a file
    /// is not started within `expiry_margin_ms` of it before the manifest was
    /// re-fetched, once for all files (protocol K4).
    pub expires_at_ms: Option<u64>,
    /// How long before `expires_at_ms` links count as expired (default 60 s).
    pub expiry_margin_ms: u64,
    /// Files an earlier process left part-way, by `file_name`: they continue
    /// from their checkpoint (K5; the caller's copy holds the lines before it;
    /// see [`resume_decision`]). Not to be confused with
    /// [`crate::Progress::partial_files`], the files of partial manifests (B7).
    #[serde(alias = "partialFiles")]
    pub continue_files: Vec<FileRecord>,
    /// What a file that changed on the server after lines were handed out
    /// does (K7): `true` starts it over from byte 0, the caller cutting its
    /// copy to [`FileDownload::taken_bytes`] (a folder download); `false` (the
    /// default) fails it with `file_changed` (a stream cannot take lines back).
    pub restart_changed: bool,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            kinds: vec![FileKind::Output, FileKind::Error, FileKind::Deleted],
            types: Vec::new(),
            max_per_origin: DEFAULT_MAX_PER_ORIGIN,
            max_total: DEFAULT_MAX_TOTAL,
            count_check: CountCheck::default(),
            validation: Validation::default(),
            invalid_lines: InvalidLines::default(),
            max_line: DEFAULT_MAX_LINE as u64,
            gzip: true,
            skip_files: Vec::new(),
            expires_at_ms: None,
            expiry_margin_ms: DEFAULT_EXPIRY_MARGIN_MS,
            continue_files: Vec::new(),
            restart_changed: false,
        }
    }
}

/// The next thing the caller does (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum DownloadStep {
    /// Send this request for file `file` (an index into [`Downloads::files`]).
    Send {
        /// Which file.
        file: usize,
        /// The request.
        request: Request,
    },
    /// Get a new token for every file that needs it, then call
    /// [`Downloads::token_refreshed`] (or [`Downloads::token_unavailable`]).
    RefreshToken,
    /// Re-fetch the manifest once for all files (E4), then call
    /// [`Downloads::manifest_refreshed`] with the fresh plan.
    RefreshManifest,
    /// Nothing to start before `until_ms`; in-flight files may answer earlier.
    Wait {
        /// When to call [`Downloads::next`] again.
        until_ms: u64,
        /// `until_ms - now`.
        delay_ms: u64,
    },
    /// Every file that may run is in flight: call [`Downloads::next`] after the next response.
    Idle,
    /// Every file has its result.
    Done,
}

/// One file's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FileResult {
    /// The file as planned (after a refresh, the fresh entry).
    pub file: PlannedFile,
    /// Its figures, when it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<FileReport>,
    /// Why it failed, when it did. The other files are unaffected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(type = "DownloadError", optional))]
    pub error: Option<DownloadError>,
}

/// Totals for a progress bar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct DownloadProgress {
    /// Files selected.
    pub files: usize,
    /// Files completed.
    pub files_done: usize,
    /// Files that failed.
    pub files_failed: usize,
    /// Files being downloaded now.
    pub files_active: usize,
    /// Resources handed out so far.
    pub resources: u64,
    /// Decoded bytes so far (completed files and the final attempt of running ones).
    pub bytes: u64,
    /// The sum of the manifest's counts, when every selected file has one.
    pub expected_resources: Option<u64>,
    /// The per-origin limits now (they halve on 429/503 and grow back: K3).
    pub origin_limits: Vec<OriginLimit>,
}

/// How many files run at once against one origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OriginLimit {
    /// `scheme://host:port`.
    pub origin: String,
    /// Files at once now.
    pub limit: u32,
}

/// A change of an origin's limit, for logs and progress (K3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LimitChange {
    /// `scheme://host:port`.
    pub origin: String,
    /// The limit before.
    pub from: u32,
    /// The limit after.
    pub to: u32,
    /// Why: `throttled` (a 429 or 503) or `recovered` (a run of successes).
    pub reason: String,
}

/// AIMD per origin (protocol K3): halve on 429/503 (and remember the level
/// that was too many), grow by one after a run of successes, up to that level;
/// after a long quiet run, probe one higher.
#[derive(Debug, Clone)]
struct Politeness {
    limit: u32,
    ceiling: u32,
    max: u32,
    run: u32,
    /// Bumped at each decrease: 429s to requests sent before it are the same congestion.
    epoch: u32,
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    No,
    Token,
    Manifest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shared {
    /// Not under way.
    Idle,
    /// Handed out to the caller; files that need it wait.
    Asked,
}

/// The downloads of a job's files (see the module docs).
#[derive(Debug)]
pub struct Downloads {
    files: Vec<PlannedFile>,
    slots: Vec<Slot>,
    options: DownloadOptions,
    policy: RetryPolicy,
    token: Shared,
    manifest: Shared,
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
            token: Shared::Idle,
            manifest: Shared::Idle,
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
        if expiring && self.fresh_plan.is_none() && self.manifest == Shared::Idle && pending {
            self.manifest = Shared::Asked;
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
    /// just sent (a [`DownloadStep::Send`]), so a thread can stream its body
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

    /// After [`DownloadStep::RefreshToken`]: the files that waited go on.
    pub fn token_refreshed(&mut self) {
        self.token = Shared::Idle;
        self.release(Waiting::Token);
    }

    /// After [`DownloadStep::RefreshToken`], when no new token can be had:
    /// the files that waited fail with `Unauthorized` naming `reason`.
    pub fn token_unavailable(&mut self, reason: &str) {
        self.token = Shared::Idle;
        for i in self.live.clone() {
            if let Slot::Active { download, waiting: Waiting::Token, .. } = &mut self.slots[i] {
                let e = download.token_unavailable(reason);
                self.finish_slot(i, None, Some(e));
            }
        }
    }

    /// After [`DownloadStep::RefreshManifest`]: the fresh plan (the job's
    /// [`crate::Job::download_plan`] after the refresh; empty if the refresh
    /// failed). Each waiting file is re-bound to its entry (same list, same
    /// position) or fails. The refresh is not repeated: a file that asks
    /// later is re-bound to this plan.
    pub fn manifest_refreshed(&mut self, plan: Vec<PlannedFile>) {
        use crate::identity::{match_files, Identity};
        fn id(f: &PlannedFile) -> Identity<'_> {
            Identity::new(f.kind as u8, f.resource_type.as_deref(), f.expected_count, None, &f.url)
        }
        self.manifest = Shared::Idle;
        // Matched by what each file is, never by its place in the list (K6).
        let matches =
            match_files(&self.files.iter().map(id).collect::<Vec<_>>(), &plan.iter().map(id).collect::<Vec<_>>());
        let mut pool: Vec<Option<PlannedFile>> = plan.into_iter().map(Some).collect();
        self.fresh_plan = Some(matches.into_iter().map(|m| m.and_then(|j| pool[j].take())).collect());
        self.release(Waiting::Manifest);
    }

    /// After [`DownloadStep::RefreshManifest`], when the refresh failed (its
    /// retries ran out, the deadline passed, the answer was over its ceiling):
    /// the files that waited for it fail with
    /// [`DownloadError::RefreshFailed`] carrying `cause`, the others go on,
    /// and the job keeps its result (K8). Files that ask later fail the same
    /// way without another refresh.
    pub fn manifest_refresh_failed(&mut self, cause: &str) {
        self.manifest = Shared::Idle;
        self.refresh_failure = Some(crate::origin::redact_text(cause));
        self.fresh_plan = Some(vec![None; self.files.len()]);
        self.release(Waiting::Manifest);
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
        while self.manifest == Shared::Idle && self.token == Shared::Idle && self.live.len() < max_total {
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

    /// File `i` needs the shared token or manifest refresh: the step to hand
    /// out, or `None` when the refresh already happened and the file was
    /// re-bound (it can go on at once).
    fn wait_for(&mut self, i: usize, what: Waiting) -> Option<DownloadStep> {
        if let Slot::Active { waiting, .. } = &mut self.slots[i] {
            *waiting = what;
        }
        // One refresh for all: a file that asks while one is under way waits for it.
        let shared = if what == Waiting::Token { &mut self.token } else { &mut self.manifest };
        if *shared == Shared::Asked {
            return Some(DownloadStep::Idle);
        }
        match what {
            Waiting::Manifest if self.fresh_plan.is_some() => {
                // The one refresh already happened: re-bind to its plan.
                self.release(Waiting::Manifest);
                None
            }
            Waiting::Token => {
                self.token = Shared::Asked;
                Some(DownloadStep::RefreshToken)
            }
            _ => {
                self.manifest = Shared::Asked;
                Some(DownloadStep::RefreshManifest)
            }
        }
    }

    fn release(&mut self, what: Waiting) {
        for i in self.live.clone() {
            let Slot::Active { download, waiting, origin, .. } = &mut self.slots[i] else { continue };
            if *waiting != what {
                continue;
            }
            *waiting = Waiting::No;
            if what == Waiting::Manifest {
                let old = download.file().clone();
                let fresh = self.fresh_plan.as_ref().and_then(|p| p.get(i)).and_then(Option::as_ref);
                if let Some(f) = fresh {
                    *origin = origin_key(&f.url);
                    self.files[i] = PlannedFile { file_name: self.files[i].file_name.clone(), ..f.clone() };
                }
                let result = match (&self.refresh_failure, fresh) {
                    (Some(cause), None) => Err(DownloadError::RefreshFailed {
                        url: crate::origin::redact_url(&old.url),
                        cause: cause.clone(),
                    }),
                    _ => download.replace_file(fresh.cloned()),
                };
                if let Err(e) = result {
                    self.finish_slot(i, None, Some(e));
                }
            }
        }
    }

    fn active(&mut self, file: usize, id: u64) -> Result<&mut FileDownload, DownloadError> {
        match self.slots.get_mut(file) {
            Some(Slot::Active { download, in_flight: Some(f), .. }) if *f == id => Ok(download),
            _ => Err(DownloadError::Usage(format!("file {file} has no request {id} in flight"))),
        }
    }

    /// A file's answer: errors other than misuse end that file only.
    /// `Discard` means the request is over (a retry, a redirect, a refresh, the end).
    fn settle(&mut self, file: usize, r: Result<HeadDecision, DownloadError>) -> Result<HeadDecision, DownloadError> {
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

    /// The limit changes since the last call (for logs; progress shows the limits).
    pub fn take_limit_changes(&mut self) -> Vec<LimitChange> {
        std::mem::take(&mut self.changes)
    }

    /// New 429/503 answers of file `i` halve its origin's limit (K3).
    fn note_throttles(&mut self, i: usize) {
        let (Some(Slot::Active { download, origin, .. }), Some(seen)) = (self.slots.get(i), self.throttles_seen.get(i))
        else {
            return;
        };
        let now = download.throttled();
        if now <= *seen {
            return;
        }
        let counted = matches!(self.slots[i], Slot::Active { in_flight: Some(_), .. });
        let origin = origin.clone();
        self.throttles_seen[i] = now;
        // What the server saw: the requests in flight with this one.
        let running = (self.in_flight(&origin) + usize::from(!counted)) as u32;
        let sent_epoch = self.sent_epoch[i];
        if let Some(p) = self.origins.get_mut(&origin) {
            if sent_epoch < p.epoch {
                return; // sent before the last decrease: the same congestion, already answered
            }
            p.epoch += 1;
            let from = p.limit;
            // The level that drew a 429 was too many: never go back above one below it soon.
            p.ceiling = p.ceiling.min(running.saturating_sub(1).max(1));
            p.limit = from.div_ceil(2).clamp(1, p.ceiling);
            p.run = 0;
            if p.limit != from {
                self.changes.push(LimitChange { origin, from, to: p.limit, reason: "throttled".into() });
            }
        }
    }

    /// A file of `origin` completed: a run of them grows the limit back (K3).
    fn note_success(&mut self, origin: &str) {
        let Some(p) = self.origins.get_mut(origin) else { return };
        p.run += 1;
        let from = p.limit;
        if p.limit < p.ceiling && p.run >= 2 * p.limit {
            p.limit += 1;
            p.run = 0;
        } else if p.limit == p.ceiling && p.ceiling < p.max && p.run >= 32 * p.limit {
            // A long quiet run: probe one more.
            p.ceiling += 1;
            p.limit += 1;
            p.run = 0;
        }
        if p.limit != from {
            self.changes.push(LimitChange { origin: origin.to_owned(), from, to: p.limit, reason: "recovered".into() });
        }
    }

    /// The same file in the one refresh's plan (E4; the job aligned it, K6),
    /// under this file's name.
    fn fresh_entry(&self, i: usize) -> Option<PlannedFile> {
        let fresh = self.fresh_plan.as_ref()?.get(i)?.as_ref()?;
        Some(PlannedFile { file_name: self.files[i].file_name.clone(), ..fresh.clone() })
    }

    fn limit(&self, origin: &str) -> usize {
        self.origins.get(origin).map_or(self.options.max_per_origin.max(1), |p| p.limit) as usize
    }

    /// Requests of `origin` in flight (what the server sees).
    fn in_flight(&self, origin: &str) -> usize {
        self.live
            .iter()
            .filter(|&&i| match &self.slots[i] {
                Slot::Active { in_flight: Some(_), origin: o, .. } | Slot::Lent { origin: o } => o == origin,
                _ => false,
            })
            .count()
    }

    fn running(&self, origin: &str) -> usize {
        self.live
            .iter()
            .filter(|&&i| matches!(&self.slots[i], Slot::Active { origin: o, .. } | Slot::Lent { origin: o } if o == origin))
            .count()
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

fn selected(f: &PlannedFile, o: &DownloadOptions) -> bool {
    o.kinds.contains(&f.kind)
        && !o.skip_files.contains(&f.file_name)
        && (o.types.is_empty()
            || f.kind != FileKind::Output
            || f.resource_type.as_ref().map_or(true, |t| o.types.iter().any(|w| w == t)))
}

fn origin_key(url: &str) -> String {
    Origin::parse(url).map(|o| format!("{}://{}:{}", o.scheme, o.host, o.port)).unwrap_or_default()
}

#[cfg(test)]
mod tests;
