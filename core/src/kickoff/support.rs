//! What a client checks of an export's optional parameters (protocol L4, L6): a subset
//! (`_elements`, tagged `SUBSETTED`) never replaces a full resource, and `_type` / `_typeFilter`
//! are held against what the server's CapabilityStatement declares.

use super::ExportRequest;
use serde_json::Value;

/// The code system of the `SUBSETTED` tag (`meta.tag`).
pub const SUBSETTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// The extension a CapabilityStatement puts on `rest.resource` or `rest.resource.searchParam` that
/// may not be used in an export (L6).
pub const OPERATION_NOT_SUPPORTED: &str = "http://hl7.org/fhir/uv/bulkdata/Extension/operation-not-supported";

/// Whether a resource is tagged `SUBSETTED` in `meta.tag` (what a server sends for `_elements`, L4).
pub fn is_subsetted(resource: &Value) -> bool {
    resource.pointer("/meta/tag").and_then(Value::as_array).is_some_and(|tags| {
        tags.iter().any(|t| {
            t.get("code").and_then(Value::as_str) == Some("SUBSETTED")
                && t.get("system").and_then(Value::as_str).map_or(true, |s| s == SUBSETTED_SYSTEM)
        })
    })
}

/// Whether `incoming` may replace `existing` (the same type and id) where resources are kept by
/// id (a store, a merge of incremental exports, a published dataset): never a subset over a full
/// resource (L4 \[R\]). A full resource replaces a subset; a subset replaces a subset.
pub fn may_replace(existing: &Value, incoming: &Value) -> bool {
    !is_subsetted(incoming) || is_subsetted(existing)
}

fn not_supported(v: &Value) -> bool {
    v.get("extension")
        .and_then(Value::as_array)
        .is_some_and(|xs| xs.iter().any(|x| x.get("url").and_then(Value::as_str) == Some(OPERATION_NOT_SUPPORTED)))
}

/// The notes for an export's `_type` and `_typeFilter` against a CapabilityStatement (L6): a type
/// marked `operation-not-supported`, a `_typeFilter` search parameter marked so, or one its
/// resource does not list among the `searchParam` it declares (a resource that lists none, or a
/// type not listed at all, says nothing). Parameters starting with `_` (`_id`, `_lastUpdated`)
/// are common to all resources and not checked.
pub(crate) fn unsupported_parameters(capability: &Value, e: &ExportRequest) -> Vec<String> {
    let resources: Vec<&Value> = capability
        .get("rest")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|r| r.get("resource").and_then(Value::as_array).into_iter().flatten())
        .collect();
    let find = |t: &str| resources.iter().copied().find(|r| r.get("type").and_then(Value::as_str) == Some(t));
    let mut notes = Vec::new();
    let filtered = e.type_filters.iter().filter_map(|f| f.split_once('?').map(|(t, _)| t));
    let mut types: Vec<&str> = e.types.iter().map(String::as_str).chain(filtered).collect();
    types.dedup();
    for t in types.iter().copied().filter(|t| find(t).is_some_and(not_supported)) {
        if !notes.iter().any(|n: &String| n.contains(&format!("type {t} "))) {
            notes.push(format!(
                "the server's CapabilityStatement marks the resource type {t} operation-not-supported for export (protocol L6)"
            ));
        }
    }
    for f in &e.type_filters {
        let Some((t, query)) = f.split_once('?') else { continue };
        let Some(resource) = find(t) else { continue };
        let params: Vec<&Value> = resource.get("searchParam").and_then(Value::as_array).into_iter().flatten().collect();
        for pair in query.split('&') {
            let name = pair.split('=').next().unwrap_or_default();
            // `code:text`, `subject.name`, `subject:Patient.name`: the parameter is before `:` or `.`.
            let name = name.split([':', '.']).next().unwrap_or_default();
            if name.is_empty() || name.starts_with('_') {
                continue;
            }
            let declared = params.iter().find(|p| p.get("name").and_then(Value::as_str) == Some(name));
            let why = match declared {
                Some(p) if not_supported(p) => "marks it operation-not-supported for export",
                None if !params.is_empty() => "does not declare it among the resource's searchParam",
                _ => continue,
            };
            notes.push(format!(
                "_typeFilter {f}: the server's CapabilityStatement {why} ({t}.{name}); the server may refuse or ignore \
                 the filter (protocol L6)"
            ));
        }
    }
    notes
}
