//! `export --config FILE`: a bulk-data-client config file (as JSON) read into the command line's
//! options where a key means the same here. What the command line gives wins; the keys this
//! command does not read are returned, to be named as ignored.

use super::{ExportArgs, Level};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The keys read: the export's parameters, the server, the folder and the download. The
/// authorization keys (clientId, scope, tokenUrl, privateJWKorSecret...) are read by the
/// `--auth` file reader, which the config file becomes when it names a client.
const READ: &[&str] = &[
    "fhirUrl",
    "_outputFormat",
    "_since",
    "_until",
    "_type",
    "_elements",
    "patient",
    "includeAssociatedData",
    "_typeFilter",
    "organizeOutputBy",
    "allowPartialManifests",
    "global",
    "group",
    "post",
    "lenient",
    "destination",
    "parallelDownloads",
    "ndjsonValidateFHIRResourceCount",
];
const AUTH: &[&str] = &["clientId", "scope", "tokenUrl", "tokenEndpoint", "privateJWKorSecret", "privateKey", "kid"];

/// Reads `a.config` into `a` (where the command line left an option out). Returns the file's
/// keys that are not read (sorted), or why the file cannot be read.
pub(crate) fn apply_config(a: &mut ExportArgs) -> Result<Vec<String>, String> {
    let Some(path) = a.config.clone() else { return Ok(Vec::new()) };
    let shown = path.display();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("--config {shown}: {e}"))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        format!("--config {shown}: not JSON ({e}); a bulk-data-client config in JavaScript must be written out as JSON first")
    })?;
    let Value::Object(c) = v else { return Err(format!("--config {shown}: not a JSON object")) };
    fill(&mut a.server.base, text_of(&c, "fhirUrl"));
    let list = |key: &str| -> Vec<String> {
        match c.get(key) {
            Some(Value::String(s)) => {
                s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
            }
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        }
    };
    fill_vec(&mut a.types, list("_type"));
    fill_vec(&mut a.elements, list("_elements"));
    fill_vec(&mut a.patients, list("patient"));
    fill_vec(&mut a.include_associated_data, list("includeAssociatedData"));
    // `_typeFilter` is one query per value: only an array splits (a query may hold commas).
    let filters = match c.get("_typeFilter") {
        Some(Value::Array(_)) => list("_typeFilter"),
        _ => text_of(&c, "_typeFilter").into_iter().collect(),
    };
    fill_vec(&mut a.type_filters, filters);
    fill(&mut a.output_format, text_of(&c, "_outputFormat"));
    fill(&mut a.since, text_of(&c, "_since"));
    fill(&mut a.until, text_of(&c, "_until"));
    fill(&mut a.organize_output_by, text_of(&c, "organizeOutputBy"));
    fill(&mut a.out, text_of(&c, "destination").map(PathBuf::from));
    fill(&mut a.max_per_origin, c.get("parallelDownloads").and_then(Value::as_u64).map(|n| n as u32));
    a.allow_partial_manifests |= flag(&c, "allowPartialManifests");
    a.post |= flag(&c, "post");
    a.lenient |= flag(&c, "lenient");
    if a.count_check.is_none() && c.get("ndjsonValidateFHIRResourceCount") == Some(&Value::Bool(false)) {
        a.count_check = Some(super::CountCheck::Lenient);
    }
    // bulk-data-client: a group id, else `global` for the system level, else the patient level.
    if a.level.is_none() {
        let group = text_of(&c, "group");
        a.level = match (&group, c.get("global")) {
            (Some(_), _) => Some(Level::Group),
            (None, Some(Value::Bool(true))) => Some(Level::System),
            (None, Some(Value::Bool(false))) => Some(Level::Patient),
            _ => None,
        };
        fill(&mut a.group, group);
    }
    // A client named in the file: the file is the authorization, read as an `--auth` file.
    let names_client = text_of(&c, "clientId").is_some();
    let offers = crate::auth::offers_credential(&a.server);
    if names_client && !offers {
        a.server.auth = Some(path.clone());
    }
    let mut ignored: Vec<String> = c
        .iter()
        .filter(|(k, v)| {
            let read = READ.contains(&k.as_str()) || (names_client && AUTH.contains(&k.as_str()));
            !(read || empty(v))
        })
        .map(|(k, _)| k.clone())
        .collect();
    ignored.sort();
    Ok(ignored)
}

/// A string value that is set (bulk-data-client's defaults are `""` for "none"; `tokenUrl: "none"`).
fn text_of(c: &Map<String, Value>, key: &str) -> Option<String> {
    c.get(key).and_then(Value::as_str).filter(|s| !s.is_empty() && *s != "none").map(str::to_owned)
}

fn flag(c: &Map<String, Value>, key: &str) -> bool {
    c.get(key) == Some(&Value::Bool(true))
}

/// A value that says nothing (bulk-data-client's empty defaults): not worth naming as ignored.
fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty() || s == "none",
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn fill<T>(slot: &mut Option<T>, from_file: Option<T>) {
    if slot.is_none() {
        *slot = from_file;
    }
}

fn fill_vec(slot: &mut Vec<String>, from_file: Vec<String>) {
    if slot.is_empty() {
        *slot = from_file;
    }
}
