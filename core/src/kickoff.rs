//! What to start: a Bulk Data `$export` or any other operation or interaction
//! run asynchronously, and the kick-off request built from it (protocol A1–A7,
//! L1–L7). Which form a server gets when the version is `auto` is in `declared`.

use crate::http::{Method, Request, RequestKind};
use crate::tagged;
use crate::Error;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use url::Url;

/// The Bulk Data IG version the request targets (protocol A5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum IgVersion {
    /// STU2 (v2.0.0).
    Stu2,
    /// STU3 (v3.0.0): adds `_until`, `organizeOutputBy`, `allowPartialManifests`.
    #[default]
    Stu3,
    /// STU4 ballot: POST only, `includeAssociatedData` as a Coding (protocol L1, L3).
    Stu4,
    /// Whatever the server declares (protocol L2): the job first reads `[base]/metadata`; an
    /// export operation whose `definition` ends `|4.0.0` (or named like `export-v4`) gets the
    /// STU4 form, anything else (or no answer) the STU3 form, and a 405 to that GET is sent
    /// once more as the STU4 POST.
    Auto,
}

/// The level of an export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum ExportLevel {
    /// `[base]/$export`
    #[default]
    System,
    /// `[base]/Patient/$export`
    Patient,
    /// `[base]/Group/[id]/$export` (needs `groupId`)
    Group,
}

/// A Bulk Data `$export` kick-off. Every IG parameter is here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ExportRequest {
    /// System, Patient or Group level.
    pub level: ExportLevel,
    /// The Group id for a group-level export.
    pub group_id: Option<String>,
    /// `_outputFormat` (must be one of the three NDJSON spellings).
    pub output_format: Option<String>,
    /// `_since` (FHIR instant).
    pub since: Option<String>,
    /// `_until` (FHIR instant; STU3+, protocol L5). A server may still send resources changed
    /// later (referenced ones, untracked ones): the output is not bounded by it.
    pub until: Option<String>,
    /// `_type`: resource types.
    pub types: Vec<String>,
    /// `_elements`.
    pub elements: Vec<String>,
    /// `patient`: references such as `Patient/123` (POST only: switches to POST).
    pub patients: Vec<String>,
    /// `includeAssociatedData` codes.
    pub include_associated_data: Vec<String>,
    /// `_typeFilter`: one `Type?query` per value, sent as repeated values.
    pub type_filters: Vec<String>,
    /// `organizeOutputBy` (STU3+).
    pub organize_output_by: Option<String>,
    /// `allowPartialManifests` (STU3+).
    pub allow_partial_manifests: Option<bool>,
    /// `_minimumFileSize`: bytes, a positive integer (STU4 ballot, protocol L7).
    pub minimum_file_size: Option<u64>,
    /// `_maximumFileSize`: bytes, a positive integer over `minimumFileSize` (STU4 ballot,
    /// protocol L7). A server may still write larger files: they are never refused.
    pub maximum_file_size: Option<u64>,
    /// Force POST with a `Parameters` body even without `patient`.
    pub post: bool,
    /// Which IG version to speak (`auto`: what the server declares, protocol L2).
    pub ig_version: IgVersion,
}

/// Any other operation or interaction sent with `Prefer: respond-async`
/// (`$reindex`, a search, a transaction, Medplum's `$expunge`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OperationRequest {
    /// The method.
    pub method: Method,
    /// A path relative to the base (`$reindex`, `Patient?name=x`, `` for a
    /// transaction) or an absolute URL on the same server.
    pub path: String,
    /// A FHIR JSON body.
    #[serde(default)]
    pub body: Option<String>,
}

/// What the job starts.
// One per job, moved into its config once; boxing the export would only make every user's
// `Operation::Export(ExportRequest { .. })` awkward.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Operation {
    /// A Bulk Data export.
    Export(ExportRequest),
    /// Any other asynchronous operation or interaction.
    Operation(OperationRequest),
}

// Same shape as a derive with `tag = "type"`, without serde's `Content` buffering (see `tagged`).
impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        tagged::deserialize(d, "type", |kind, f| match kind {
            "export" => f.rest().map(Operation::Export),
            "operation" => f.rest().map(Operation::Operation),
            other => Err(tagged::unknown(other, &["export", "operation"])),
        })
    }
}

/// `async-mode` from the unified pattern (seed 003).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum AsyncMode {
    /// Completion is a 200 with a Bundle.
    Bundle,
    /// Completion is a 303 See Other to the result.
    Redirect,
}

/// Extra `Prefer` tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PreferOptions {
    /// `async-mode=bundle|redirect`.
    pub async_mode: Option<AsyncMode>,
    /// `callback-url=...` (the job keeps polling anyway, protocol G1).
    pub callback_url: Option<String>,
    /// `handling=lenient` (protocol A6).
    pub lenient: bool,
    /// `separate-export-status` (protocol A7, B5).
    pub separate_export_status: bool,
}

/// The code system of `includeAssociatedData` as a STU4 Coding (protocol L3).
pub const INCLUDE_ASSOCIATED_DATA_SYSTEM: &str = "http://hl7.org/fhir/uv/bulkdata/CodeSystem/include-associated-data";

const OUTPUT_FORMATS: [&str; 3] = ["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// [`kickoff_for_base`] from a base URL as the user wrote it (tests).
#[cfg(test)]
pub(crate) fn build_kickoff(
    base_url: &str,
    op: &Operation,
    prefer: &PreferOptions,
    id: u64,
    timeout_ms: u64,
) -> Result<Request, Error> {
    kickoff_for_base(&normalized_base(base_url)?, op, prefer, id, timeout_ms)
}

/// Builds the kick-off request from a base already through [`normalized_base`]
/// (what a `Job` holds). Validates the parameters the IG forbids.
pub(crate) fn kickoff_for_base(
    base: &str,
    op: &Operation,
    prefer: &PreferOptions,
    id: u64,
    timeout_ms: u64,
) -> Result<Request, Error> {
    let mut headers =
        vec![("Accept".to_owned(), "application/fhir+json".to_owned()), ("Prefer".to_owned(), prefer_header(prefer))];
    let (method, url, body) = match op {
        Operation::Export(e) => export_request(base, e)?,
        Operation::Operation(o) => {
            let url = if o.path.starts_with("http://") || o.path.starts_with("https://") {
                o.path.clone()
            } else {
                format!("{base}{}", o.path.trim_start_matches('/'))
            };
            Url::parse(&url).map_err(|e| Error::usage(format!("bad operation URL {url}: {e}")))?;
            (o.method, url, o.body.clone())
        }
    };
    if body.is_some() {
        headers.push(("Content-Type".to_owned(), "application/fhir+json".to_owned()));
    }
    Ok(Request { id, kind: RequestKind::Kickoff, method, url, headers, body, auth: true, timeout_ms, max_body: None })
}

/// The base URL with exactly one trailing slash.
pub(crate) fn normalized_base(base_url: &str) -> Result<String, Error> {
    let u = Url::parse(base_url.trim()).map_err(|e| Error::usage(format!("bad base URL {base_url:?}: {e}")))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(Error::usage(format!("base URL must be http(s): {base_url}")));
    }
    let mut s = u.to_string();
    if let Some(q) = s.find(['?', '#']) {
        s.truncate(q);
    }
    if !s.ends_with('/') {
        s.push('/');
    }
    Ok(s)
}

fn prefer_header(p: &PreferOptions) -> String {
    let mut parts = vec!["respond-async".to_owned()];
    if let Some(mode) = p.async_mode {
        parts.push(format!(
            "async-mode={}",
            match mode {
                AsyncMode::Bundle => "bundle",
                AsyncMode::Redirect => "redirect",
            }
        ));
    }
    if let Some(cb) = &p.callback_url {
        parts.push(format!("callback-url={cb}"));
    }
    if p.lenient {
        parts.push("handling=lenient".to_owned());
    }
    if p.separate_export_status {
        parts.push("separate-export-status".to_owned());
    }
    parts.join(", ")
}

fn export_request(base: &str, e: &ExportRequest) -> Result<(Method, String, Option<String>), Error> {
    validate_export(e)?;
    let path = match e.level {
        ExportLevel::System => "$export".to_owned(),
        ExportLevel::Patient => "Patient/$export".to_owned(),
        ExportLevel::Group => {
            let id = e
                .group_id
                .as_deref()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::usage("a group export needs groupId"))?;
            if id.contains(['/', '?', '#']) {
                return Err(Error::usage(format!("groupId must be a plain id: {id:?}")));
            }
            format!("Group/{id}/$export")
        }
    };
    let url = format!("{base}{path}");
    if uses_post(e) {
        Ok((Method::Post, url, Some(parameters_body(e).to_string())))
    } else {
        let mut u = Url::parse(&url).map_err(|err| Error::usage(err.to_string()))?;
        {
            let mut q = u.query_pairs_mut();
            if let Some(f) = &e.output_format {
                q.append_pair("_outputFormat", f);
            }
            if let Some(s) = &e.since {
                q.append_pair("_since", s);
            }
            if let Some(s) = &e.until {
                q.append_pair("_until", s);
            }
            if !e.types.is_empty() {
                q.append_pair("_type", &e.types.join(","));
            }
            if !e.elements.is_empty() {
                q.append_pair("_elements", &e.elements.join(","));
            }
            if !e.include_associated_data.is_empty() {
                q.append_pair("includeAssociatedData", &e.include_associated_data.join(","));
            }
            // Repeated, never comma-joined: a filter value may itself contain commas.
            for f in &e.type_filters {
                q.append_pair("_typeFilter", f);
            }
            if let Some(o) = &e.organize_output_by {
                q.append_pair("organizeOutputBy", o);
            }
            if let Some(a) = e.allow_partial_manifests {
                q.append_pair("allowPartialManifests", if a { "true" } else { "false" });
            }
            if let Some(n) = e.minimum_file_size {
                q.append_pair("_minimumFileSize", &n.to_string());
            }
            if let Some(n) = e.maximum_file_size {
                q.append_pair("_maximumFileSize", &n.to_string());
            }
        }
        if u.query() == Some("") {
            u.set_query(None);
        }
        Ok((Method::Get, u.to_string(), None))
    }
}

/// Whether the export is sent as POST + `Parameters`: asked for, or `patient` given (it exists
/// only in POST bodies), or STU4 (POST-only, protocol A2, L1).
fn uses_post(e: &ExportRequest) -> bool {
    e.post || !e.patients.is_empty() || e.ig_version == IgVersion::Stu4
}

fn parameters_body(e: &ExportRequest) -> Value {
    let mut p: Vec<Value> = Vec::new();
    let string = |name: &str, v: &str| json!({"name": name, "valueString": v});
    if let Some(f) = &e.output_format {
        p.push(string("_outputFormat", f));
    }
    if let Some(s) = &e.since {
        p.push(json!({"name": "_since", "valueInstant": s}));
    }
    if let Some(s) = &e.until {
        p.push(json!({"name": "_until", "valueInstant": s}));
    }
    for t in &e.types {
        p.push(string("_type", t));
    }
    for el in &e.elements {
        p.push(string("_elements", el));
    }
    for r in &e.patients {
        p.push(json!({"name": "patient", "valueReference": {"reference": r}}));
    }
    for c in &e.include_associated_data {
        if e.ig_version == IgVersion::Stu4 {
            let coding = json!({"system": INCLUDE_ASSOCIATED_DATA_SYSTEM, "code": c});
            p.push(json!({"name": "includeAssociatedData", "valueCoding": coding}));
        } else {
            p.push(json!({"name": "includeAssociatedData", "valueCode": c}));
        }
    }
    for f in &e.type_filters {
        p.push(string("_typeFilter", f));
    }
    if let Some(o) = &e.organize_output_by {
        p.push(string("organizeOutputBy", o));
    }
    if let Some(a) = e.allow_partial_manifests {
        p.push(json!({"name": "allowPartialManifests", "valueBoolean": a}));
    }
    if let Some(n) = e.minimum_file_size {
        p.push(json!({"name": "_minimumFileSize", "valuePositiveInt": n}));
    }
    if let Some(n) = e.maximum_file_size {
        p.push(json!({"name": "_maximumFileSize", "valuePositiveInt": n}));
    }
    json!({"resourceType": "Parameters", "parameter": p})
}

fn validate_export(e: &ExportRequest) -> Result<(), Error> {
    if let Some(f) = &e.output_format {
        if !OUTPUT_FORMATS.contains(&f.as_str()) {
            return Err(Error::usage(format!(
                "_outputFormat must be one of {OUTPUT_FORMATS:?} (protocol A3), got {f:?}"
            )));
        }
    }
    if e.ig_version == IgVersion::Stu2 {
        let stu3_only = [
            ("_until", e.until.is_some()),
            ("organizeOutputBy", e.organize_output_by.is_some()),
            ("allowPartialManifests", e.allow_partial_manifests.is_some()),
        ];
        if let Some((name, _)) = stu3_only.iter().find(|(_, set)| *set) {
            return Err(Error::usage(format!("{name} exists only in Bulk Data STU3 and later (protocol A5)")));
        }
    }
    validate_file_sizes(e.minimum_file_size, e.maximum_file_size)?;
    for f in &e.type_filters {
        let Some((ty, query)) = f.split_once('?') else {
            return Err(Error::usage(format!("_typeFilter must be Type?query (protocol A4): {f:?}")));
        };
        if ty.is_empty() || !ty.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::usage(format!("_typeFilter must name one resource type (protocol A4): {f:?}")));
        }
        for forbidden in ["_include", "_sort", "_elements"] {
            if query.split('&').any(|kv| kv.split(['=', ':']).next() == Some(forbidden)) {
                return Err(Error::usage(format!("_typeFilter must not contain {forbidden} (protocol A4): {f:?}")));
            }
        }
    }
    for t in &e.types {
        if t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::usage(format!("_type values are resource type names: {t:?}")));
        }
    }
    Ok(())
}

/// `_minimumFileSize` and `_maximumFileSize` are positive integers, the maximum over the
/// minimum (protocol L7, `valuePositiveInt`, max > min).
fn validate_file_sizes(min: Option<u64>, max: Option<u64>) -> Result<(), Error> {
    for (name, n) in [("_minimumFileSize", min), ("_maximumFileSize", max)] {
        if n == Some(0) {
            return Err(Error::usage(format!("{name} must be a positive integer of bytes (protocol L7)")));
        }
    }
    if let (Some(min), Some(max)) = (min, max) {
        if max <= min {
            return Err(Error::usage(format!(
                "_maximumFileSize ({max}) must be over _minimumFileSize ({min}) (protocol L7)"
            )));
        }
    }
    Ok(())
}

mod declared;
mod since;
mod support;
pub(crate) use declared::{declared_version, kickoff_form, sends_get};
pub(crate) use support::unsupported_parameters;
pub use support::{is_subsetted, may_replace, OPERATION_NOT_SUPPORTED, SUBSETTED_SYSTEM};

#[cfg(test)]
mod tests;
