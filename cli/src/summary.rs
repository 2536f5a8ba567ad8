//! The table printed at the end of a download: per type, files, resources, invalid lines and bytes;
//! then what failed and the warnings.

use crate::download::{valid_resources, Downloaded};
use crate::ui::human_bytes;
use fhir_async::{FileKind, Outcome};

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
    for line in failed.into_iter().chain(warnings) {
        out.push('\n');
        out.push_str(&line);
    }
    out
}
