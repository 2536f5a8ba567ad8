//! What a download leaves for the next process (protocol K5), and what the
//! next process takes up from it: each file's record (done with its figures,
//! or part-way with its checkpoint), and the one decision of which recorded
//! files a download skips or continues. A record names its file by what it
//! is (K6), so a saved record is never taken for another file.

use super::{Downloads, Slot};
use crate::download::{FileCheckpoint, FileReport};
use crate::identity::{match_files, Identity};
use crate::manifest::{FileKind, PlannedFile};
use serde::{Deserialize, Serialize};

/// A file's progress as a job saves it (protocol K5): done (with its
/// figures), or partial (with where it can continue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRecord {
    /// The plan's file name.
    pub file_name: String,
    /// What the file is (K6). `None` in a record saved before issue 20: such
    /// a record is matched by its name only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<FileIdentity>,
    /// Resources in the file (done), or handed out so far (partial).
    pub resources: u64,
    /// Done: the decoded size of the whole file. Partial: `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Partial: where it continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<FileCheckpoint>,
}

impl FileRecord {
    /// The record of `file` part-way, continuing at `checkpoint` (as
    /// [`Downloads::record`] makes it; for a binding that holds the file's
    /// download lent, when the record is not the coordinator's to take).
    pub fn partial(file: &PlannedFile, checkpoint: FileCheckpoint) -> FileRecord {
        FileRecord {
            file_name: file.file_name.clone(),
            identity: Some(FileIdentity::of(file)),
            resources: checkpoint.resources,
            bytes: None,
            checkpoint: Some(checkpoint),
        }
    }

    /// The record of `file` complete, with the figures of its report.
    pub fn done(file: &PlannedFile, report: &FileReport) -> FileRecord {
        FileRecord {
            file_name: file.file_name.clone(),
            identity: Some(FileIdentity::of(file)),
            resources: report.resources,
            bytes: Some(report.bytes),
            checkpoint: None,
        }
    }

    /// Whether the file is complete.
    pub fn is_done(&self) -> bool {
        self.checkpoint.is_none() && self.bytes.is_some()
    }
}

/// What a file is (K6): its list, its resource type, the manifest's count,
/// and its URL's path (no host, no query: K10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileIdentity {
    /// Which manifest list.
    pub kind: FileKind,
    /// The resource type, when the manifest says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// The manifest's `count`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The URL's path.
    pub path: String,
}

impl FileIdentity {
    /// The identity of a planned file.
    pub fn of(file: &PlannedFile) -> FileIdentity {
        FileIdentity {
            kind: file.kind,
            resource_type: file.resource_type.clone(),
            count: file.expected_count,
            path: crate::identity::url_path(&file.url).to_owned(),
        }
    }

    fn key(&self) -> Identity<'_> {
        Identity::new(self.kind as u8, self.resource_type.as_deref(), self.count, None, &self.path)
    }
}

/// Which files a download takes up from an earlier process's records (K5):
/// the result of [`resume_decision`], for [`crate::DownloadOptions`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResumeDecision {
    /// Done files the caller still holds: left out
    /// ([`crate::DownloadOptions::skip_files`]).
    pub skip_files: Vec<String>,
    /// Part-way files whose first part the caller still holds: they continue
    /// from their checkpoint ([`crate::DownloadOptions::continue_files`]).
    pub continue_files: Vec<FileRecord>,
}

/// The one rule of what a resumed download skips and continues (K5, K6),
/// for every binding: a record counts only for the plan file that is the
/// same file by identity (list, type, count, URL path; [`FileIdentity`]) and
/// has the same name (where the caller's copy is). A done record is skipped
/// when `holds(name)` (the caller still has the file: a folder checks its
/// file, a stream that delivered it says `true`); a part-way record with a
/// checkpoint continues when `continues(name)` (the caller still has its
/// first part). Anything else is downloaded again. A record without an
/// identity (saved before issue 20) is matched by its name.
pub fn resume_decision(
    plan: &[PlannedFile],
    records: &[FileRecord],
    mut holds: impl FnMut(&str) -> bool,
    mut continues: impl FnMut(&str) -> bool,
) -> ResumeDecision {
    let mut decision = ResumeDecision::default();
    let plan_ids: Vec<FileIdentity> = plan.iter().map(FileIdentity::of).collect();
    let keys: Vec<Identity<'_>> = plan_ids.iter().map(FileIdentity::key).collect();
    let with_id: Vec<(&FileRecord, &FileIdentity)> =
        records.iter().filter_map(|r| r.identity.as_ref().map(|id| (r, id))).collect();
    let matched = match_files(&with_id.iter().map(|(_, id)| id.key()).collect::<Vec<_>>(), &keys);
    let by_identity = with_id.iter().zip(matched).map(|((r, _), m)| (*r, m.map(|j| &plan[j])));
    // Older records: by name (a plan's names are unique), in a sorted index, not a scan per record.
    let mut names: Vec<(&str, usize)> = plan.iter().enumerate().map(|(j, f)| (f.file_name.as_str(), j)).collect();
    names.sort_unstable();
    let by_name = records.iter().filter(|r| r.identity.is_none()).map(|r| {
        let at = names.binary_search_by(|(n, _)| (*n).cmp(r.file_name.as_str())).ok();
        (r, at.map(|k| &plan[names[k].1]))
    });
    for (record, file) in by_identity.chain(by_name) {
        let Some(file) = file.filter(|f| f.file_name == record.file_name) else { continue };
        if record.is_done() {
            if holds(&file.file_name) {
                decision.skip_files.push(file.file_name.clone());
            }
        } else if record.checkpoint.is_some() && continues(&file.file_name) {
            decision.continue_files.push(record.clone());
        }
    }
    decision
}

impl Downloads {
    /// Every file's progress, for the job's saved state (K5): done files with
    /// their figures, and files part-way that can continue in another process.
    pub fn records(&self) -> Vec<FileRecord> {
        (0..self.files.len()).filter_map(|i| self.record(i)).collect()
    }

    /// File `i`'s progress now (K5), as in [`Downloads::records`]: a binding
    /// that saves each part as it is handed out asks for one file, not all.
    pub fn record(&self, i: usize) -> Option<FileRecord> {
        let file = self.files.get(i)?;
        match self.slots.get(i)? {
            Slot::Finished(r) => r.report.as_ref().map(|rep| FileRecord::done(file, rep)),
            Slot::Active { download, .. } => download.checkpoint().map(|c| FileRecord::partial(file, c)),
            _ => None,
        }
    }
}
