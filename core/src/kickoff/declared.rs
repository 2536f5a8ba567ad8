//! Which kick-off form a server gets (protocol L2): what its CapabilityStatement declares for
//! `$export`, and the one POST after a 405 to a GET.

use super::{uses_post, ExportRequest, IgVersion, Operation};
use serde_json::Value;
use std::borrow::Cow;

/// The export version a CapabilityStatement declares: [`IgVersion::Stu4`] when one of its
/// export operations (`rest[].operation`, `rest[].resource[].operation`) has a `definition`
/// whose version (after `|`) is 4.x (`…/OperationDefinition/export|4.0.0`), or a name or
/// definition like `export-v4` (export.md, Data Provider Capability Documentation). `None`:
/// nothing says STU4, so the existing form is kept.
pub(crate) fn declared_version(capability: &Value) -> Option<IgVersion> {
    let rests = capability.get("rest").and_then(Value::as_array)?;
    let operations = rests.iter().flat_map(|rest| {
        let resources = rest.get("resource").and_then(Value::as_array).into_iter().flatten();
        std::iter::once(rest).chain(resources).flat_map(|r| r.get("operation").and_then(Value::as_array)).flatten()
    });
    operations.into_iter().any(declares_stu4_export).then_some(IgVersion::Stu4)
}

fn declares_stu4_export(op: &Value) -> bool {
    let name = op.get("name").and_then(Value::as_str).unwrap_or("");
    // A canonical in R4; a Reference in older CapabilityStatements.
    let definition = op
        .get("definition")
        .and_then(|d| d.as_str().or_else(|| d.get("reference").and_then(Value::as_str)))
        .unwrap_or("");
    let (path, version) = definition.split_once('|').unwrap_or((definition, ""));
    let last = path.rsplit('/').next().unwrap_or("");
    let is_v4_name = |n: &str| {
        let n = n.to_ascii_lowercase();
        n.contains("export") && (n.ends_with("-v4") || n.ends_with("_v4"))
    };
    if is_v4_name(name) || is_v4_name(last) {
        return true;
    }
    let is_export = name.to_ascii_lowercase().contains("export") || last.to_ascii_lowercase().contains("export");
    is_export && (version == "4" || version.starts_with("4."))
}

/// The operation the kick-off sends: as configured, with an `auto` version resolved (what the
/// server declared, else STU3) and, once a GET was refused with 405, as POST: the STU4 form
/// when the version was `auto` (a server that refuses GET is most likely STU4's POST-only
/// one), the configured version's POST form otherwise.
pub(crate) fn kickoff_form(op: &Operation, declared: Option<IgVersion>, get_refused: bool) -> Cow<'_, Operation> {
    let Operation::Export(e) = op else {
        return Cow::Borrowed(op);
    };
    let version = match e.ig_version {
        IgVersion::Auto if get_refused => IgVersion::Stu4,
        IgVersion::Auto => declared.unwrap_or(IgVersion::Stu3),
        v => v,
    };
    let post = e.post || get_refused;
    if version == e.ig_version && post == e.post {
        return Cow::Borrowed(op);
    }
    Cow::Owned(Operation::Export(ExportRequest { ig_version: version, post, ..e.clone() }))
}

/// Whether this operation's kick-off is a GET (an export in the query form).
pub(crate) fn sends_get(op: &Operation) -> bool {
    matches!(op, Operation::Export(e) if !uses_post(e))
}
