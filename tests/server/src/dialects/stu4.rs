//! The Bulk Data STU4 ballot (4.0.0-ballot) as it reads (`/stu4/fhir`; protocol L1–L13): the
//! export is declared as `…/OperationDefinition/export|4.0.0`; a kick-off is a `POST` with a
//! `Parameters` body only, one `parameter` per value, each with the value type the ballot gives
//! (a `GET` is refused with 405); the manifest lists `outcome` (not `error`) with
//! `countSeverity`, `manifestType`, an `extension` array and `fileSize` on every entry; every
//! export adds one Parquet output (a view of the Patients, as a SQL-on-FHIR server would), and
//! `separate-export-status` answers carry `X-Export-Status` as code and phrase.
//! Everything else (status, files, cancel, faults) is the bulk dialect's.

use std::sync::Arc;

use axum::http::{header, Method};
use axum::response::Response;
use serde_json::{json, Value};

use crate::app::{App, Ctx};
use crate::export::{FileBody, FileEntry, FileKind, Plan};
use crate::http;
use crate::jobs::{Dialect, Job, Phase};

/// The `manifestType` of an export manifest (L12).
pub const MANIFEST_TYPE: &str = "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/BulkDataManifest";

/// The media type of the Parquet output (L13).
pub const PARQUET: &str = "application/vnd.apache.parquet";

/// The `definition` of the export operation a dialect declares in `metadata` (L2: a client
/// picks POST + Parameters from the `|4.0.0` version).
pub fn export_definition(d: Dialect) -> &'static str {
    if d == Dialect::Stu4 {
        "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export|4.0.0"
    } else {
        "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
    }
}

/// The value type each kick-off parameter must have (L1, `rulesets/export-params.fsh` and
/// `async-params.fsh`).
fn value_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "_outputFormat" | "_type" | "_elements" | "_typeFilter" | "organizeOutputBy" => "valueString",
        "_since" | "_until" => "valueInstant",
        "patient" => "valueReference",
        "includeAssociatedData" => "valueCoding",
        "allowPartialManifests" => "valueBoolean",
        "_minimumFileSize" | "_maximumFileSize" => "valuePositiveInt",
        _ => return None,
    })
}

/// The system of `includeAssociatedData` codes (L3).
const ASSOCIATED: &str = "http://hl7.org/fhir/uv/bulkdata/CodeSystem/include-associated-data";

/// Checks a kick-off the way the ballot states it; `Err` is the answer to send.
pub fn check_kickoff(ctx: &Ctx) -> Result<(), Response> {
    if ctx.method != Method::POST {
        let mut r = http::oo(
            405,
            "not-supported",
            "Bulk Data STU4: a kick-off is a POST with a Parameters body; GET requests SHALL NOT be used",
        );
        http::set(r.headers_mut(), header::ALLOW, "POST");
        return Err(r);
    }
    let bad = |msg: String| Err(http::oo(400, "invalid", &format!("Bulk Data STU4: {msg}")));
    if !ctx.pairs().is_empty() {
        return bad("the parameters go in the Parameters body, not in the query".into());
    }
    let ctype = ctx.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ctype.starts_with("application/fhir+json") && !ctype.starts_with("application/json") {
        return bad(format!("the body must be application/fhir+json, not '{ctype}'"));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&ctx.body) else {
        return bad("the body is not JSON".into());
    };
    if body["resourceType"] != "Parameters" {
        return bad("the body must be a Parameters resource".into());
    }
    for p in body["parameter"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default();
        let Some(want) = value_type(name) else { continue };
        let Some(v) = p.get(want) else {
            return bad(format!("parameter '{name}' must have a {want}"));
        };
        if name == "_type" && v.as_str().is_some_and(|t| t.contains(',')) {
            return bad(format!(
                "one parameter per value: '_type' is '{}', send one _type each",
                v.as_str().unwrap_or("")
            ));
        }
        if name == "includeAssociatedData"
            && v["system"] != ASSOCIATED
            && !v["code"].as_str().is_some_and(|c| c.starts_with('_'))
        {
            return bad(format!("includeAssociatedData must be a Coding of {ASSOCIATED}"));
        }
        if want == "valuePositiveInt" && v.as_u64().unwrap_or(0) == 0 {
            return bad(format!("parameter '{name}' must be a positive integer"));
        }
    }
    Ok(())
}

/// The informational outcome every STU4 export lists (its `countSeverity` says `information`:
/// not "completed with errors", L11).
pub fn outcome_lines() -> Vec<String> {
    vec![crate::export::oo_line(
        "information",
        "informational",
        "Exported by the fhir-async reference server (Bulk Data STU4 ballot dialect)",
    )]
}

/// Adds the Parquet output after the last NDJSON output: deterministic bytes framed by the
/// Parquet magic (`PAR1`), a few KiB per export; opaque to a client (L13).
pub fn add_parquet(plan: &mut Plan, seed: u64) {
    let mut bytes = b"PAR1".to_vec();
    let mut x = seed | 1;
    for _ in 0..(6 * 1024 + (seed % 997) as usize) {
        // xorshift64: the same export gives the same bytes
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.push((x >> 24) as u8);
    }
    bytes.extend_from_slice(b"PAR1");
    let at = plan.files.iter().rposition(|f| f.kind == FileKind::Output).map_or(0, |i| i + 1);
    plan.files.insert(
        at,
        FileEntry {
            name: "Patient.view.parquet".into(),
            kind: FileKind::Output,
            rtype: Some("Patient".into()),
            count: 0,
            headers: 0,
            body: FileBody::Lines(Arc::new(bytes)),
        },
    );
}

/// Generates every file of a completed job once, so that its manifest can list `fileSize`.
pub async fn measure(app: &App, job: &Job) {
    if job.phase() != Phase::Completed {
        return;
    }
    let n = job.plan().map_or(0, |p| p.files.len());
    for idx in 0..n {
        let _ = crate::files::file_size(app, job, idx).await;
    }
}

/// The STU4 fields of manifest entry `i`: `fileSize` (when measured), `outputFormat` of a
/// Parquet file, `countSeverity` of an outcome file.
pub fn entry_fields(job: &Job, i: usize, f: &FileEntry, e: &mut Value) {
    let size = job.lock().indexes.get(&(i, false, false)).and_then(|c| c.get().map(|ix| ix.total));
    if let Some(n) = size {
        e["fileSize"] = json!(n);
    }
    if f.is_opaque() {
        e["outputFormat"] = json!(f.output_format());
    }
    if let (FileKind::Error, FileBody::Lines(b)) = (f.kind, &f.body) {
        e["countSeverity"] = json!(severities(b));
    }
}

/// `countSeverity` of an outcome file: how many issues of each severity.
fn severities(body: &[u8]) -> Vec<Value> {
    let mut counts: Vec<(String, u64)> = Vec::new();
    for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
        for issue in v["issue"].as_array().into_iter().flatten() {
            let s = issue["severity"].as_str().unwrap_or("information").to_string();
            match counts.iter_mut().find(|(k, _)| *k == s) {
                Some((_, n)) => *n += 1,
                None => counts.push((s, 1)),
            }
        }
    }
    counts.into_iter().map(|(code, count)| json!({"code": code, "count": count})).collect()
}

/// The manifest-level STU4 shape: `outcome` instead of `error`, `manifestType`, and
/// `extension` as an array of Extensions (BD2/3 had an object).
pub fn manifest_fields(m: &mut Value) {
    if let Some(o) = m.as_object_mut() {
        let outcome = o.remove("error").unwrap_or_else(|| json!([]));
        o.insert("outcome".into(), outcome);
        o.insert("manifestType".into(), json!(MANIFEST_TYPE));
        o.insert(
            "extension".into(),
            json!([{"url": "https://fhir-async.example/StructureDefinition/server-dialect", "valueString": "stu4"}]),
        );
    }
}
