//! A sans-IO hydrator for bindings that stream resources (Node, Python
//! `resources(...)`): lines with attachments are held until those are
//! fetched or failed, then released in arrival order, hydrated in inline
//! mode (M7) or unchanged (files mode, or a failure, M9).
//!
//! ```text
//!  line(l) ── no attachment ──> Pass (hand l out now)
//!          └─ attachments ────> Held; new URLs → take_pending() → fetch each with a Downloads
//!  fetched(id, body, type) / failed(id, error)
//!  release() → held lines whose attachments are all settled, in order
//! ```

use super::decode::{decode_attachment, AttachmentError, Fetched};
use super::find::find_in_line;
use super::inline::inline_attachments;
use super::plan::AttachmentPlan;
use super::{AttachmentMode, AttachmentOptions, AttachmentReport};
use crate::download::DownloadError;
use crate::manifest::{PlannedFile, TokenPolicy};
use crate::origin::redact_url;
use std::collections::VecDeque;

/// What [`Hydrator::line`] did with a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hydrate {
    /// No attachment to fetch: hand the line out now, unchanged.
    Pass,
    /// Held until its attachments are settled: [`Hydrator::release`] gives it back.
    Held,
}

/// Where one planned attachment stands.
#[derive(Debug, Clone)]
enum Slot {
    Pending,
    Fetched(Fetched),
    Failed(AttachmentError),
}

/// Holds lines until their attachments are fetched (see the module docs).
#[derive(Debug, Clone)]
pub struct Hydrator {
    plan: AttachmentPlan,
    slots: Vec<Slot>,
    pending: Vec<usize>,
    held: VecDeque<(Vec<u8>, Vec<usize>)>,
    /// Files mode: the last attachment handed out by `fetched`, whose bytes
    /// the binding has written by the next call (then dropped).
    written: Option<usize>,
}

impl Hydrator {
    /// A hydrator under the job's token rule and the attachment options
    /// (mode off: every line passes).
    pub fn new(policy: TokenPolicy, options: AttachmentOptions) -> Self {
        Hydrator {
            plan: AttachmentPlan::new(policy, options),
            slots: Vec::new(),
            pending: Vec::new(),
            held: VecDeque::new(),
            written: None,
        }
    }

    /// A line of a downloaded NDJSON file: [`Hydrate::Pass`] when it has no
    /// attachment to fetch (hand it out now, unchanged), else it is held
    /// ([`Hydrate::Held`]). Its attachments not planned yet join
    /// [`take_pending`](Self::take_pending); one the plan blocked (http under
    /// https, declared size over the limit) fails at once with `blocked`.
    pub fn line(&mut self, line: &[u8]) -> Hydrate {
        if self.plan.options().mode == AttachmentMode::Off {
            return Hydrate::Pass;
        }
        let mut ids = Vec::new();
        for r in find_in_line(line, self.plan.options()) {
            let Some(id) = self.plan.add(&r) else { continue };
            if id == self.slots.len() {
                let file = &self.plan.files()[id];
                match &file.blocked {
                    Some(reason) => self.slots.push(Slot::Failed(AttachmentError::Download(DownloadError::Blocked {
                        url: redact_url(&file.url),
                        reason: reason.clone(),
                    }))),
                    None => {
                        self.slots.push(Slot::Pending);
                        self.pending.push(id);
                    }
                }
            }
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        if ids.is_empty() {
            return Hydrate::Pass;
        }
        self.held.push_back((line.to_vec(), ids));
        Hydrate::Held
    }

    /// The attachment files planned since the last call, to fetch with a
    /// [`Downloads`](crate::Downloads) (attachments are taken whatever
    /// `kinds` and `opaque_files` say). Blocked ones are not among them (they
    /// failed already).
    pub fn take_pending(&mut self) -> Vec<PlannedFile> {
        self.pending.drain(..).map(|id| self.plan.files()[id].clone()).collect()
    }

    /// A fetched body (`id` = [`PlannedFile::index`]) with the response's
    /// `Content-Type`: decoded (M5), hash-checked, kept for inline mode. The
    /// decoded attachment is returned so a files-mode binding can write
    /// `fetched.bytes` to `attachments/<file_name>` (in files mode the bytes
    /// are dropped at the next call: write them before). An error is
    /// recorded (and returned) as the attachment's failure. Inline mode keeps
    /// every fetched attachment's bytes (a later line may point at the same URL).
    pub fn fetched(
        &mut self,
        id: usize,
        body: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<&Fetched, AttachmentError> {
        let Some(file) = self.plan.files().get(id) else {
            return Err(DownloadError::Usage(format!("no attachment with id {id}")).into());
        };
        if self.plan.options().mode == AttachmentMode::Files {
            // Files mode keeps no bytes: the binding wrote the last ones already.
            if let Some(Slot::Fetched(f)) = self.written.take().and_then(|w| self.slots.get_mut(w)) {
                f.bytes = Vec::new();
            }
            self.written = Some(id);
        }
        let slot = match decode_attachment(&file.url, body, content_type, self.plan.hash(id)) {
            Ok(f) => Slot::Fetched(f),
            Err(e) => Slot::Failed(e),
        };
        self.slots[id] = slot;
        match &self.slots[id] {
            Slot::Fetched(f) => Ok(f),
            Slot::Failed(e) => Err(e.clone()),
            Slot::Pending => Err(DownloadError::Usage("unreachable".into()).into()),
        }
    }

    /// The fetch of attachment `id` failed for good (the download's error).
    pub fn failed(&mut self, id: usize, error: DownloadError) {
        if let Some(slot) = self.slots.get_mut(id) {
            *slot = Slot::Failed(AttachmentError::Download(error));
        }
    }

    /// Held lines whose attachments are all settled, in arrival order (a line
    /// waiting for its attachments keeps the ones after it waiting too):
    /// hydrated in inline mode, unchanged otherwise and where an attachment
    /// failed (M9).
    pub fn release(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some((_, ids)) = self.held.front() {
            if ids.iter().any(|id| matches!(self.slots.get(*id), Some(Slot::Pending) | None)) {
                break;
            }
            let Some((line, _)) = self.held.pop_front() else { break };
            if self.plan.options().mode != AttachmentMode::Inline {
                out.push(line);
                continue;
            }
            let (plan, slots) = (&self.plan, &self.slots);
            let lookup = |url: &str| match plan.id_of(url).and_then(|id| slots.get(id)) {
                Some(Slot::Fetched(f)) => Some(f),
                _ => None,
            };
            let hydrated = inline_attachments(&line, &plan.policy().base_url, plan.options(), lookup);
            out.push(hydrated.unwrap_or(line));
        }
        out
    }

    /// One report per planned attachment, by id (M8): pending ones carry
    /// only their URL; in files mode a fetched one names `attachments/<file_name>`.
    pub fn reports(&self) -> Vec<AttachmentReport> {
        let files_mode = self.plan.options().mode == AttachmentMode::Files;
        self.plan
            .files()
            .iter()
            .zip(&self.slots)
            .map(|(file, slot)| {
                let url = redact_url(&file.url);
                match slot {
                    Slot::Pending => AttachmentReport { url, ..Default::default() },
                    Slot::Fetched(f) => AttachmentReport {
                        url,
                        file_name: files_mode.then(|| format!("attachments/{}", file.file_name)),
                        content_type: f.content_type.clone(),
                        size: Some(f.size),
                        sha1: Some(f.sha1.clone()),
                        error: None,
                    },
                    Slot::Failed(e) => AttachmentReport { url, error: Some(e.info()), ..Default::default() },
                }
            })
            .collect()
    }

    /// How many attachments failed (exit code 3 in the CLI when > 0).
    pub fn failures(&self) -> usize {
        self.slots.iter().filter(|s| matches!(s, Slot::Failed(_))).count()
    }

    /// The bytes of fetched attachments kept now.
    #[cfg(test)]
    pub(super) fn kept_bytes(&self) -> usize {
        self.slots.iter().map(|s| if let Slot::Fetched(f) = s { f.bytes.len() } else { 0 }).sum()
    }

    /// Lines held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}
