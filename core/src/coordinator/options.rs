//! What to download and how: the options every binding passes through, with
//! the core's defaults (the same in every language), and the selection of a
//! plan's files they make.

use crate::attachments::AttachmentOptions;
use crate::download::{CountCheck, InvalidLines, Validation};
use crate::limits::{DEFAULT_EXPIRY_MARGIN_MS, DEFAULT_MAX_PER_ORIGIN, DEFAULT_MAX_TOTAL};
use crate::manifest::{FileKind, PlannedFile};
use crate::ndjson::DEFAULT_MAX_LINE;
use serde::{Deserialize, Serialize};

use super::FileRecord;

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
    /// [`resume_decision`](super::resume_decision)).
    pub skip_files: Vec<String>,
    /// When the manifest's links expire (the outcome's `expiresAtMs`): a file
    /// is not started within `expiry_margin_ms` of it before the manifest was
    /// re-fetched, once for all files (protocol K4).
    pub expires_at_ms: Option<u64>,
    /// How long before `expires_at_ms` links count as expired (default 60 s).
    pub expiry_margin_ms: u64,
    /// Files an earlier process left part-way, by `file_name`: they continue
    /// from their checkpoint (K5; the caller's copy holds the lines before it;
    /// see [`resume_decision`](super::resume_decision)). Not to be confused with
    /// [`crate::Progress::partial_files`], the files of partial manifests (B7).
    #[serde(alias = "partialFiles")]
    pub continue_files: Vec<FileRecord>,
    /// What a file that changed on the server after lines were handed out
    /// does (K7): `true` starts it over from byte 0, the caller cutting its
    /// copy to [`FileDownload::taken_bytes`](crate::FileDownload::taken_bytes) (a folder download); `false` (the
    /// default) fails it with `file_changed` (a stream cannot take lines back).
    pub restart_changed: bool,
    /// Whether files that are not NDJSON (an `outputFormat` such as Parquet,
    /// protocol L13) are taken, as opaque bytes: a folder download takes them
    /// (`true`); a stream of resources leaves them out (`false`, the default),
    /// as it has no lines to give.
    pub opaque_files: bool,
    /// What to do with the attachments the resources point at (protocol M):
    /// off by default. The coordinator itself does not fetch them; a binding
    /// plans them with [`crate::attachments::AttachmentPlan`] or
    /// [`crate::attachments::Hydrator`] and runs the planned files through a
    /// second [`Downloads`](super::Downloads).
    pub attachments: AttachmentOptions,
}

impl DownloadOptions {
    /// These options for the attachments of a download (protocol M): the
    /// same limits, checks and ceilings, none of the manifest files'
    /// selection or resume records (attachments are always selected, see
    /// `selected`, and their own links never expire with the manifest's).
    pub fn for_attachments(&self) -> DownloadOptions {
        DownloadOptions {
            kinds: vec![FileKind::Attachment],
            types: Vec::new(),
            skip_files: Vec::new(),
            continue_files: Vec::new(),
            expires_at_ms: None,
            ..self.clone()
        }
    }
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
            opaque_files: false,
            attachments: AttachmentOptions::default(),
        }
    }
}

pub(super) fn selected(f: &PlannedFile, o: &DownloadOptions) -> bool {
    // Attachments (protocol M) are planned only when asked for: always taken,
    // whatever `kinds` (manifest lists) and `opaque_files` say.
    if f.kind == FileKind::Attachment {
        return !o.skip_files.contains(&f.file_name);
    }
    o.kinds.contains(&f.kind)
        && (o.opaque_files || f.opaque_format.is_none())
        && !o.skip_files.contains(&f.file_name)
        && (o.types.is_empty()
            || f.kind != FileKind::Output
            || f.resource_type.as_ref().map_or(true, |t| o.types.iter().any(|w| w == t)))
}
