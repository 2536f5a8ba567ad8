//! A finished job's files, downloaded in parallel: into a folder (temp file,
//! then rename once the engine says the file is complete) or as a stream of
//! raw lines. [`fhir_async::Downloads`] decides what runs; threads only move bytes.
//!
//! A folder keeps a progress journal while a download runs (see [`journal`]):
//! each file renamed into place, and every second or few MB where a part-way
//! file could continue (the engine's checkpoint, with the length of its
//! `.tmp`). A process killed mid-download leaves it behind; the next download
//! of the same job into the folder reads it, so it never fetches a finished
//! file again and continues a part-way one by range (protocol K5). A download
//! that settles every file removes it (the job then holds the records).

pub(crate) mod attachments;
mod bodies;
mod folder;
mod journal;
mod run;
mod sink;

pub(crate) use bodies::{write_atomic, Bodies};
pub(crate) use folder::FolderSink;
pub(crate) use run::lock;
pub(crate) use run::{run, Plan};
pub(crate) use sink::{FileSink, LineWriter};

use fhir_async::attachments::AttachmentReport;
use fhir_async::{DownloadProgress, FileResult, PlannedFile};
use std::path::{Path, PathBuf};

/// One file of a download.
#[derive(Debug, Clone, PartialEq)]
pub struct DownloadedFile {
    /// The file's result: its report, or why it failed (the others are unaffected).
    pub result: FileResult,
    /// Where it was written, when it completed.
    pub path: Option<PathBuf>,
}

/// What a download did.
#[derive(Debug, Clone, PartialEq)]
pub struct DownloadSummary {
    /// One entry per selected file, in manifest order.
    pub files: Vec<DownloadedFile>,
    /// Bytes received on the wire (before gzip decoding), retries included.
    pub wire_bytes: u64,
    /// One entry per attachment (protocol M, when `options.attachments.mode` is not off): where
    /// it was saved, its size and SHA-1, or why it failed (the files are unaffected).
    pub attachments: Vec<AttachmentReport>,
}

impl DownloadSummary {
    /// Whether every file completed.
    pub fn is_complete(&self) -> bool {
        self.files.iter().all(|f| f.result.error.is_none())
    }

    /// The attachments that failed (protocol M9: their resources are left as they were).
    pub fn failed_attachments(&self) -> impl Iterator<Item = &AttachmentReport> {
        self.attachments.iter().filter(|a| a.error.is_some())
    }
}

/// What a download reports as it goes (from its worker threads).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum DownloadEvent<'a> {
    /// A request for file `index` is sent (`attempt` 1 is the first; later ones are retries,
    /// redirects or a fresh link).
    Started {
        /// The file's index among the selected files.
        index: usize,
        /// The file.
        file: &'a PlannedFile,
        /// 1-based request number for this file.
        attempt: u64,
    },
    /// Bytes arrived on the wire (before gzip decoding), all files together.
    Bytes {
        /// Wire bytes so far.
        wire_bytes: u64,
    },
    /// Totals after a request ended.
    Progress {
        /// Files, resources and decoded bytes so far.
        totals: &'a DownloadProgress,
        /// Wire bytes so far.
        wire_bytes: u64,
    },
    /// An origin's limit of files at once changed (halved on 429/503, grown back: K3).
    Limit {
        /// The change.
        change: &'a fhir_async::LimitChange,
    },
    /// A file is over: its result, where it was written, and how long it took.
    Finished {
        /// The file's index among the selected files.
        index: usize,
        /// Its report, or why it failed (the other files are unaffected).
        result: &'a FileResult,
        /// Where it was written, when it completed.
        path: Option<&'a Path>,
        /// Milliseconds from its first request to its end.
        elapsed_ms: u64,
    },
    /// An attachment is settled (protocol M): saved under `attachments/` (decoded, hash
    /// checked) or failed. Attachments proven on disk from an earlier run send none.
    Attachment {
        /// Its index among the download's attachments.
        index: usize,
        /// Its entry of the report.
        report: &'a AttachmentReport,
        /// Milliseconds from its first request to its end.
        elapsed_ms: u64,
    },
}
