//! The refreshes all files share: one token refresh (a 401) and one manifest
//! refresh for fresh links (E4, K4), each asked once and awaited by every file
//! that needs it; files re-bound to the fresh plan by identity (K6), or
//! failed alone when the refresh failed (K8).

use super::DownloadStep;
use super::{origin_key, Downloads, Slot};
use crate::download::DownloadError;
use crate::manifest::PlannedFile;

/// What a started file waits for, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waiting {
    No,
    Token,
    Manifest,
}

/// Where one of the shared refreshes (the token's, the manifest's) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RefreshState {
    /// Not under way.
    Idle,
    /// Handed out to the caller; files that need it wait.
    Asked,
}

impl Downloads {
    /// After [`DownloadStep::RefreshToken`]: the files that waited go on.
    pub fn token_refreshed(&mut self) {
        self.token = RefreshState::Idle;
        self.release(Waiting::Token);
    }

    /// After [`DownloadStep::RefreshToken`], when no new token can be had:
    /// the files that waited fail with `Unauthorized` naming `reason`.
    pub fn token_unavailable(&mut self, reason: &str) {
        self.token = RefreshState::Idle;
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
        self.manifest = RefreshState::Idle;
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
        self.manifest = RefreshState::Idle;
        self.refresh_failure = Some(crate::origin::redact_text(cause));
        self.fresh_plan = Some(vec![None; self.files.len()]);
        self.release(Waiting::Manifest);
    }

    /// File `i` needs the shared token or manifest refresh: the step to hand
    /// out, or `None` when the refresh already happened and the file was
    /// re-bound (it can go on at once).
    pub(super) fn wait_for(&mut self, i: usize, what: Waiting) -> Option<DownloadStep> {
        if let Slot::Active { waiting, .. } = &mut self.slots[i] {
            *waiting = what;
        }
        // One refresh for all: a file that asks while one is under way waits for it.
        let shared = if what == Waiting::Token { &mut self.token } else { &mut self.manifest };
        if *shared == RefreshState::Asked {
            return Some(DownloadStep::Idle);
        }
        match what {
            Waiting::Manifest if self.fresh_plan.is_some() => {
                // The one refresh already happened: re-bind to its plan.
                self.release(Waiting::Manifest);
                None
            }
            Waiting::Token => {
                self.token = RefreshState::Asked;
                Some(DownloadStep::RefreshToken)
            }
            _ => {
                self.manifest = RefreshState::Asked;
                Some(DownloadStep::RefreshManifest)
            }
        }
    }

    pub(super) fn release(&mut self, what: Waiting) {
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

    /// The same file in the one refresh's plan (E4; the job aligned it, K6),
    /// under this file's name.
    pub(super) fn fresh_entry(&self, i: usize) -> Option<PlannedFile> {
        let fresh = self.fresh_plan.as_ref()?.get(i)?.as_ref()?;
        Some(PlannedFile { file_name: self.files[i].file_name.clone(), ..fresh.clone() })
    }
}
