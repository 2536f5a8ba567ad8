//! The line gate: each line of a body is counted, skipped when it was already
//! handed out (once proven the same bytes, K7), validated (a resource is a JSON
//! object) and handed to the caller.

use super::types::{FileReport, InvalidLine, InvalidLines, Validation, MAX_INVALID_REPORTED};
use crate::taken::{Proof, Taken, Verdict};

pub(super) struct LineGate<'a> {
    pub(super) delivered: &'a mut u64,
    pub(super) seen: &'a mut u64,
    pub(super) validation: Validation,
    pub(super) invalid: &'a mut u64,
    pub(super) first_invalid: &'a mut Option<u64>,
    pub(super) invalid_lines: &'a mut Vec<InvalidLine>,
    /// Counts organized output's header `Parameters` lines (only for files without a type).
    pub(super) headers: Option<&'a mut u64>,
    pub(super) taken: &'a mut Taken,
    pub(super) proof: &'a mut Option<Proof>,
    pub(super) changed: &'a mut bool,
    /// What an invalid line does, and (with [`InvalidLines::Raise`]) the first one met.
    pub(super) policy: InvalidLines,
    pub(super) raised: &'a mut Option<InvalidLine>,
}

pub(super) fn note_invalid(
    invalid: &mut u64,
    first: &mut Option<u64>,
    lines: &mut Vec<InvalidLine>,
    line: u64,
    message: &str,
) {
    *invalid += 1;
    let first = first.get_or_insert(line);
    *first = (*first).min(line);
    if lines.len() < MAX_INVALID_REPORTED {
        lines.push(InvalidLine { line, message: message.chars().take(300).collect() });
    }
}

/// A line found broken after the file's report was made (see
/// [`FileDownload::report_invalid_line`](super::FileDownload::report_invalid_line)): the report counts it, once.
pub(crate) fn report_invalid_late(r: &mut FileReport, line: u64, message: &str) {
    note_invalid(&mut r.invalid_lines, &mut r.first_invalid_line, &mut r.invalid, line, message);
    // A line is a resource only if it parses as a JSON object.
    r.resources = r.resources.saturating_sub(1);
    let warning = format!(
        "{} line(s) are not FHIR resources (first: line {})",
        r.invalid_lines,
        r.first_invalid_line.unwrap_or(0)
    );
    match r.warnings.iter_mut().find(|w| w.contains("are not FHIR resources")) {
        Some(w) => *w = warning,
        None => r.warnings.push(warning),
    }
}

/// A `Parameters` resource with a `header` parameter: the first line of each
/// block of organized output (protocol D4).
fn is_header_line(line: &[u8]) -> bool {
    use memchr::memmem::find;
    find(line, b"\"Parameters\"").is_some() && find(line, b"\"header\"").is_some() && {
        matches!(serde_json::from_slice::<serde_json::Value>(line), Ok(v)
            if v.get("resourceType").and_then(serde_json::Value::as_str) == Some("Parameters"))
    }
}

/// What is wrong with `line` under `validation`, if anything: the core's one
/// message for a line that is not a resource (a binding that parses lines
/// itself reports the same words, e.g. for a line that is not UTF-8).
pub fn line_problem(validation: Validation, line: &[u8]) -> Option<String> {
    let t = line.trim_ascii();
    match validation {
        Validation::None => None,
        Validation::Structural => {
            (t.first() != Some(&b'{') || t.last() != Some(&b'}')).then(|| "not a JSON object".to_owned())
        }
        // A resource is a JSON object: `[1]` or `"x"` parse, but are not one.
        Validation::Json if t.first() != Some(&b'{') => Some("not a JSON object".to_owned()),
        // JSON text is UTF-8 (RFC 8259 §8.1); skipping a string does not check it.
        Validation::Json => match std::str::from_utf8(line) {
            Err(e) => Some(format!("not UTF-8: {e}")),
            Ok(_) => serde_json::from_slice::<serde::de::IgnoredAny>(line).err().map(|e| e.to_string()),
        },
    }
}

impl LineGate<'_> {
    #[inline]
    pub(super) fn line(&mut self, line: &[u8], on_line: &mut impl FnMut(&[u8])) {
        if *self.changed || self.raised.is_some() {
            return; // another version, or a line that fails the file: nothing more is handed out
        }
        *self.seen += 1;
        // After a retry the file is read from the start: what was handed out is skipped,
        // once proven to be the same bytes (K7).
        if *self.seen <= *self.delivered {
            let verdict = self.proof.as_mut().map_or(Verdict::Changed, |p| p.line(line));
            let last = *self.seen == *self.delivered;
            if verdict == Verdict::Changed || (last && verdict != Verdict::Proven) {
                *self.changed = true;
            } else if last {
                *self.proof = None;
            }
            return;
        }
        let problem = line_problem(self.validation, line);
        if let (Some(message), InvalidLines::Raise) = (&problem, self.policy) {
            // The file fails here: this line and the rest are not handed out.
            let line = *self.delivered + 1;
            note_invalid(self.invalid, self.first_invalid, self.invalid_lines, line, message);
            *self.raised = Some(InvalidLine { line, message: message.chars().take(300).collect() });
            return;
        }
        *self.delivered += 1;
        self.taken.push(line);
        if let Some(message) = problem {
            note_invalid(self.invalid, self.first_invalid, self.invalid_lines, *self.delivered, &message);
        }
        if let Some(h) = self.headers.as_deref_mut() {
            if is_header_line(line) {
                *h += 1;
            }
        }
        on_line(line);
    }
}
