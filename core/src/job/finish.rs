//! How a job ends: an error, or an outcome (with the rules of a manifest refresh, K8) and the notes
//! it carries.

use super::state::State;
use super::Job;
use crate::kickoff::Operation;
use crate::outcome::{Outcome, OutcomeStatus};
use crate::Error;

impl Job {
    pub(super) fn fail(&mut self, error: Error) -> Error {
        self.in_flight = None;
        if let Some(old) = self.refreshing.take() {
            // A manifest refresh never changes a finished job's outcome (K8): the job keeps
            // its result; the files that needed fresh links fail with this cause instead.
            self.refresh_error = Some(error.clone());
            self.state = State::Done { outcome: old };
            return error;
        }
        self.state = State::Errored { error: error.clone() };
        error
    }

    pub(super) fn finish(&mut self, mut outcome: Outcome) {
        self.cancel_confirm = None;
        if let Some(mut old) = self.refreshing.take() {
            // A manifest refresh that did not produce a manifest keeps the old one.
            if outcome.manifest().is_none() {
                self.warnings.push(format!(
                    "manifest refresh returned no manifest ({}); keeping the previous one",
                    outcome.message.as_deref().unwrap_or("no message")
                ));
                old.warnings.clone_from(&self.warnings);
                self.state = State::Done { outcome: old };
                return;
            }
            // The fresh links in the first manifest's order: file i stays file i (K6).
            if let (Some(first), Some(fresh)) = (old.manifest(), outcome.manifest_mut()) {
                let (aligned, notes) = std::mem::take(fresh).aligned_to(first);
                *fresh = aligned;
                self.warnings.extend(notes);
            }
        }
        // `error` entries may arrive on a later manifest page than the first
        // (B7 paging): the merged manifest decides (C2).
        if outcome.status == OutcomeStatus::Completed && outcome.manifest().is_some_and(|m| m.has_errors()) {
            outcome.status = OutcomeStatus::CompletedWithErrors;
        }
        // What the manifest reader noticed (L10, L12), once.
        for n in outcome.manifest().map(|m| m.notes.clone()).unwrap_or_default() {
            if !self.warnings.contains(&n) {
                self.warnings.push(n);
            }
        }
        self.note_unrequested_types(&outcome);
        self.note_subsets(&outcome);
        outcome.warnings.clone_from(&self.warnings);
        self.state = State::Done { outcome: Box::new(outcome) };
    }

    /// A server may ignore `_type`, `_typeFilter`, `_until`, `_outputFormat` or a
    /// POST body (Medplum honours only `_type` and `_since` in the query): say
    /// so when the manifest lists resource types that were not asked for (A4).
    pub(super) fn note_unrequested_types(&mut self, outcome: &Outcome) {
        let (Operation::Export(req), Some(m)) = (&self.config.operation, outcome.manifest()) else {
            return;
        };
        if req.types.is_empty() {
            return;
        }
        let mut extra: Vec<&str> = Vec::new();
        for t in m.output.iter().filter_map(|f| f.resource_type.as_deref()) {
            if !req.types.iter().any(|r| r == t) && !extra.contains(&t) {
                extra.push(t);
            }
        }
        if !extra.is_empty() {
            self.warnings.push(format!(
                "the manifest lists resource types that were not asked for ({}; asked for {}): the server ignored part of the request",
                extra.join(", "),
                req.types.join(", ")
            ));
        }
    }

    /// `_elements` was sent: the files hold subsets (the server SHOULD tag them `SUBSETTED`), which
    /// must never replace full resources where resources are kept by id (protocol L4 \[R\];
    /// [`crate::kickoff::may_replace`]).
    pub(super) fn note_subsets(&mut self, outcome: &Outcome) {
        let (Operation::Export(req), Some(m)) = (&self.config.operation, outcome.manifest()) else {
            return;
        };
        if req.elements.is_empty() || m.output.is_empty() {
            return;
        }
        self.warnings.push(format!(
            "_elements ({}) was sent: the files hold subsets of resources (meta.tag SUBSETTED); never let them \
             replace full resources (protocol L4)",
            req.elements.join(",")
        ));
    }
}
