//! Attachments (protocol M) on the command line: `--attachments`, `--attachment-types`,
//! `--attachment-max-size` into the client's options (a later run in the folder keeps the first
//! run's), each settled attachment as a log event, and the lines of the closing summary.

use crate::args::{AttachmentArgs, AttachmentsMode};
use crate::folder::Folder;
use crate::request::saved_opt;
use crate::ui::Ui;
use fhir_async::attachments::{AttachmentMode, AttachmentOptions, AttachmentReport};
use serde_json::{json, Value};

/// The options: what the command line gives, else what the folder's first run saved, else the
/// defaults (off, every type, 4 MiB).
pub(crate) fn options(a: &AttachmentArgs, saved: &Option<Value>) -> AttachmentOptions {
    let saved_a: Option<AttachmentOptions> = saved_opt(saved, "attachments");
    let saved_a = saved_a.unwrap_or_default();
    let mode = match a.attachments {
        Some(AttachmentsMode::Off) => AttachmentMode::Off,
        Some(AttachmentsMode::Inline) => AttachmentMode::Inline,
        Some(AttachmentsMode::Files) => AttachmentMode::Files,
        None => saved_a.mode,
    };
    let types: Vec<String> = a.attachment_types.iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
    AttachmentOptions {
        mode,
        types: if types.is_empty() { saved_a.types } else { types },
        max_size: a.attachment_max_size.unwrap_or(saved_a.max_size),
        ..saved_a
    }
}

/// How the folder's settings keep them (`null` when off: nothing to resume).
pub(crate) fn setting(o: &AttachmentOptions) -> Value {
    match o.mode {
        AttachmentMode::Off => Value::Null,
        _ => serde_json::to_value(o).unwrap_or(Value::Null),
    }
}

/// One attachment settled: `attachment_download_complete` or `attachment_download_error` in the
/// log (the server's words in the message), and a line on the terminal when it failed.
pub(crate) fn settled(folder: &Folder, ui: &Ui, r: &AttachmentReport, elapsed_ms: u64) {
    match &r.error {
        None => folder.event(
            "attachment_download_complete",
            json!({"fileUrl": r.url, "fileName": r.file_name, "contentType": r.content_type, "fileSize": r.size,
                "sha1": r.sha1, "durationMs": elapsed_ms}),
        ),
        Some(e) => {
            ui.say(&format!("attachment {} failed: {}", r.url, e.message));
            folder.event(
                "attachment_download_error",
                json!({"fileUrl": r.url, "code": e.code, "message": e.message, "durationMs": elapsed_ms}),
            );
        }
    }
}

/// The summary's lines: how many attachments were saved and failed, then each failure.
pub(crate) fn summary_lines(reports: &[AttachmentReport]) -> Vec<String> {
    if reports.is_empty() {
        return Vec::new();
    }
    let failed: Vec<&AttachmentReport> = reports.iter().filter(|r| r.error.is_some()).collect();
    let bytes: u64 = reports.iter().filter(|r| r.error.is_none()).filter_map(|r| r.size).sum();
    let mut lines = vec![format!(
        "attachments: {} saved ({}), {} failed (report: attachments.json)",
        reports.len() - failed.len(),
        crate::ui::human_bytes(bytes),
        failed.len()
    )];
    for r in failed {
        if let Some(e) = &r.error {
            lines.push(format!("  FAILED attachment {}: {} ({})", r.url, e.message, e.code));
        }
    }
    lines
}
