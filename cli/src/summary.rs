//! The table printed at the end of a download: per type, files, resources, invalid lines and bytes;
//! then what failed and the warnings.

use crate::download::{valid_resources, Downloaded};
use crate::ui::{human_bytes, Ui};
use fhir_async::{CancelResult, FileKind, Outcome, OutcomeStatus};

/// How a job ended, in words: `completed`, `completed with errors`, `failed (HTTP 403)`...
pub(crate) fn outcome_words(o: &Outcome) -> String {
    let status = match o.status {
        OutcomeStatus::Completed => "completed",
        OutcomeStatus::CompletedWithErrors => "completed with errors",
        OutcomeStatus::Failed => "failed",
        OutcomeStatus::Cancelled => "cancelled",
    };
    match (o.status, o.http_status) {
        (OutcomeStatus::Failed, Some(h)) => format!("{status} (HTTP {h})"),
        _ => status.to_owned(),
    }
}

/// What the server said to a cancel, in words.
pub(crate) fn cancel_words(r: Option<&CancelResult>) -> String {
    let http = |h: Option<u16>| h.map(|h| format!(" (HTTP {h})")).unwrap_or_default();
    match r {
        None => "no cancel was sent: the job had already ended".into(),
        Some(CancelResult::Cancelled { http_status }) => {
            format!("the server accepted the cancel{}", http(*http_status))
        }
        Some(CancelResult::AlreadyTerminal { job_status, http_status }) => format!(
            "the job had already ended{}{}",
            job_status.as_deref().map(|s| format!(" (its status: {s})")).unwrap_or_default(),
            http(Some(*http_status))
        ),
        Some(CancelResult::NotFound { http_status }) => {
            format!("the server does not know the job{}", http(Some(*http_status)))
        }
        Some(CancelResult::Rejected { http_status, outcome }) => {
            let words = outcome.as_ref().and_then(issue_words);
            format!(
                "the server refused to cancel{}{}; the job goes on",
                http(Some(*http_status)),
                words.map(|w| format!(": {w}")).unwrap_or_default()
            )
        }
    }
}

/// An OperationOutcome's words: its issues' `details.text` or `diagnostics`.
fn issue_words(oo: &serde_json::Value) -> Option<String> {
    let words: Vec<&str> = oo["issue"]
        .as_array()?
        .iter()
        .filter_map(|i| i["details"]["text"].as_str().or_else(|| i["diagnostics"].as_str()))
        .collect();
    (!words.is_empty()).then(|| words.join("; "))
}

/// After a job ended: its warnings, the server's words, and a hint when the kick-off itself was
/// refused with 403 (a scope that does not allow the operation, e.g. Medplum's read-only scopes).
pub(crate) fn say_outcome(ui: &Ui, o: &Outcome, accepted: bool, scope: &str) {
    for w in &o.warnings {
        ui.say(&format!("warning: {w}"));
    }
    if let Some(m) = &o.message {
        ui.say(&format!("the server says: {m}"));
    }
    if let Some(hint) = refused_hint(o, accepted, scope) {
        ui.say(&hint);
    }
}

/// The hint for a kick-off the server refused with 403 (see docs/dialects.md, Medplum).
pub(crate) fn refused_hint(o: &Outcome, accepted: bool, scope: &str) -> Option<String> {
    (o.status == OutcomeStatus::Failed && o.http_status == Some(403) && !accepted).then(|| {
        format!(
            "hint: the server refused the kick-off (403 Forbidden): the token may lack a scope that allows this \
             operation. This command asked for scope {scope:?}; some servers (Medplum) refuse $export with a \
             read-only scope: ask for one that allows it (--scope 'system/*.*', or what the server's SMART \
             configuration lists), or have the client registered with it"
        )
    })
}

/// The table at the end: per type, files, resources (lines that are JSON objects), invalid
/// lines and bytes; then what failed, and every file's warnings.
pub(crate) fn summary_table(d: &Downloaded, o: &Outcome) -> String {
    use std::collections::BTreeMap;
    let mut rows: BTreeMap<String, (usize, u64, u64, u64)> = BTreeMap::new();
    let mut failed = Vec::new();
    let mut warnings = Vec::new();
    for f in &d.summary.files {
        let label = match (f.result.file.kind, &f.result.file.resource_type) {
            (FileKind::Output, Some(t)) => t.clone(),
            (FileKind::Output, None) => "(organized)".into(),
            (FileKind::Error, _) => "(error)".into(),
            (FileKind::Deleted, _) => "(deleted)".into(),
            (FileKind::Attachment, _) => "(attachment)".into(),
        };
        match (&f.result.report, &f.result.error) {
            (Some(r), _) => {
                let e = rows.entry(label).or_default();
                e.0 += 1;
                e.1 += valid_resources(r);
                e.2 += r.invalid_lines;
                e.3 += r.bytes;
                warnings.extend(r.warnings.iter().map(|w| format!("  WARNING {}: {w}", r.file_name)));
            }
            (_, Some(e)) => failed.push(format!("  FAILED {}: {e}", f.result.file.file_name)),
            _ => {}
        }
    }
    failed.extend(d.gzip_failed.iter().map(|(n, e)| format!("  FAILED {n}: gzip: {e}")));
    let mut out = format!("{:<24} {:>6} {:>12} {:>8} {:>10}\n", "type", "files", "resources", "invalid", "written");
    let (mut tf, mut tr, mut ti, mut tb) = (0, 0, 0, 0);
    for (t, (f, r, i, b)) in &rows {
        out.push_str(&format!("{t:<24} {f:>6} {r:>12} {i:>8} {:>10}\n", human_bytes(*b)));
        tf += f;
        tr += r;
        ti += i;
        tb += b;
    }
    out.push_str(&format!("{:<24} {tf:>6} {tr:>12} {ti:>8} {:>10}\n", "total", human_bytes(tb)));
    out.push_str(&format!("received {} over the wire · outcome {:?}", human_bytes(d.summary.wire_bytes), o.status));
    if ti > 0 {
        out.push_str(&format!("\n{ti} line(s) are not JSON objects: not counted as resources (kept in the files)"));
    }
    for line in failed.into_iter().chain(warnings).chain(crate::attachments::summary_lines(&d.summary.attachments)) {
        out.push('\n');
        out.push_str(&line);
    }
    out
}
