//! `$bulk-publish` (Bulk Data STU4 ballot, `publish.md`; protocol L14) under the `stu4` base: a
//! published dataset as a chain of `BulkPublishManifest` pages that grows over time. What is
//! published is a pure function of the server's publication step, which `POST
//! /_admin/publish` advances (docs/testserver.md):
//!
//! - step 0: dataset 1, page 1 (Patients 0–4, Observations 0–4) → page 2 (Patients 5–7),
//!   whose `link` is `#pending`;
//! - step 1: page 2 now links page 3: Patient 0 again (version 2: a later file wins), and a
//!   `deleted` file removing Observation 4; page 3 is `#pending`;
//! - step 2 and later: page 3 says `#closed`, and the root serves dataset 2 (Patients 0–2), one
//!   page with no `link`: complete.
//!
//! Every page has an `ETag` (a digest of its body); `If-None-Match` with it → 304. File URLs
//! never change their bytes.

use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::{header, HeaderMap, Method};
use axum::response::Response;
use serde_json::json;

use crate::app::{App, Ctx};
use crate::http;

/// The server's publication step (see the module docs).
#[derive(Debug, Default)]
pub struct Publication(AtomicU32);

impl Publication {
    /// The current step.
    pub fn step(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }

    /// Publishes the next step; returns it.
    pub fn advance(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Back to step 0.
    pub fn reset(&self) {
        self.0.store(0, Ordering::SeqCst);
    }
}

/// The `manifestType` of a published manifest (L12).
pub const MANIFEST_TYPE: &str = "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/BulkPublishManifest";

/// How often a client should look again (ISO 8601; short, for tests).
pub const CADENCE: &str = "PT1S";

/// One published file: its name and its lines.
fn file(name: &str) -> Option<Vec<String>> {
    let patient = |ds: u32, i: u32, version: u32| {
        json!({"resourceType": "Patient", "id": format!("pub-{i}"), "meta": {"versionId": version.to_string()},
               "name": [{"family": format!("Published{ds}"), "given": [format!("P{i}")]}]})
        .to_string()
    };
    let obs = |i: u32| {
        json!({"resourceType": "Observation", "id": format!("pub-obs-{i}"), "status": "final",
               "subject": {"reference": format!("Patient/pub-{i}")}, "code": {"text": "published"}})
        .to_string()
    };
    Some(match name {
        "1-Patient-a.ndjson" => (0..5).map(|i| patient(1, i, 1)).collect(),
        "1-Observation-a.ndjson" => (0..5).map(obs).collect(),
        "1-Patient-b.ndjson" => (5..8).map(|i| patient(1, i, 1)).collect(),
        "1-Patient-c.ndjson" => vec![patient(1, 0, 2)],
        "1-deleted-c.ndjson" => vec![json!({"resourceType": "Bundle", "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": "Observation/pub-obs-4"}}]})
        .to_string()],
        "2-Patient-a.ndjson" => (0..3).map(|i| patient(2, i, 1)).collect(),
        _ => return None,
    })
}

/// Page `page` of the dataset served at `step`: (dataset, output names, deleted names, link).
fn page_plan(step: u32, dataset: u32, page: u32) -> Option<(Vec<&'static str>, Vec<&'static str>, Option<Link>)> {
    let current = if step >= 2 { 2 } else { 1 };
    match (dataset, page) {
        (2, 1) if current == 2 => Some((vec!["2-Patient-a.ndjson"], vec![], None)),
        (1, 1) => Some((vec!["1-Patient-a.ndjson", "1-Observation-a.ndjson"], vec![], Some(Link::Next(2)))),
        (1, 2) => {
            Some((vec!["1-Patient-b.ndjson"], vec![], Some(if step >= 1 { Link::Next(3) } else { Link::Pending })))
        }
        (1, 3) if step >= 1 => Some((
            vec!["1-Patient-c.ndjson"],
            vec!["1-deleted-c.ndjson"],
            Some(if step >= 2 { Link::Closed } else { Link::Pending }),
        )),
        _ => None,
    }
}

/// A page's `link`.
enum Link {
    Next(u32),
    Pending,
    Closed,
}

/// `GET [base]/$bulk-publish[?dataset=D&page=N]`.
pub fn page(app: &App, ctx: &Ctx) -> Response {
    if ctx.method != Method::GET {
        return http::oo(405, "not-supported", "$bulk-publish is read with GET");
    }
    let step = app.publication.step();
    let root = ctx.param("page").is_none() && ctx.param("dataset").is_none();
    let dataset = if root {
        if step >= 2 {
            2
        } else {
            1
        }
    } else {
        num(ctx.param("dataset"))
    };
    let page = if root { 1 } else { num(ctx.param("page")) };
    let Some((output, deleted, link)) = page_plan(step, dataset, page) else {
        return http::oo(
            404,
            "not-found",
            &format!(
                "no published page {page} of dataset {dataset} (now at dataset {})",
                if step >= 2 { 2 } else { 1 }
            ),
        );
    };
    let entry = |kind: &str, name: &str| {
        let lines = file(name).unwrap_or_default();
        let size: usize = lines.iter().map(|l| l.len() + 1).sum();
        let mut e = json!({"url": format!("{}{}/_publish/{name}", app.main_origin, ctx.base), "count": lines.len(), "fileSize": size});
        if kind == "output" {
            e["type"] = json!(name.split('-').nth(1).unwrap_or(""));
        } else {
            e["type"] = json!("Bundle");
        }
        e
    };
    let mut m = json!({
        "manifestType": MANIFEST_TYPE,
        "transactionTime": "2025-06-01T00:00:00Z",
        "updateCadence": CADENCE,
        "requiresAccessToken": app.auth_on(),
        "output": output.iter().map(|n| entry("output", n)).collect::<Vec<_>>(),
        "deleted": deleted.iter().map(|n| entry("deleted", n)).collect::<Vec<_>>(),
        "outcome": [],
    });
    if let Some(l) = link {
        let url = match l {
            Link::Next(p) => format!("{}{}/$bulk-publish?dataset={dataset}&page={p}", app.main_origin, ctx.base),
            Link::Pending => "#pending".into(),
            Link::Closed => "#closed".into(),
        };
        m["link"] = json!([{"relation": "next", "url": url}]);
    }
    let body = m.to_string();
    let etag = format!("\"{:016x}\"", fnv(body.as_bytes()));
    if if_none_match(&ctx.headers, &etag) {
        let mut r = http::empty(304);
        http::set(r.headers_mut(), header::ETAG, &etag);
        return r;
    }
    let mut r = http::json_with(200, "application/json", &m);
    http::set(r.headers_mut(), header::ETAG, &etag);
    r
}

/// `GET [base]/_publish/{name}`: a published file (immutable).
pub fn serve(name: &str) -> Response {
    let Some(lines) = file(name) else {
        return http::oo(404, "not-found", &format!("no published file '{name}'"));
    };
    let mut body = String::new();
    for l in lines {
        body.push_str(&l);
        body.push('\n');
    }
    let mut r = http::bytes(200, "application/fhir+ndjson", body.into_bytes());
    http::set(r.headers_mut(), header::ETAG, &format!("\"{name}\""));
    r
}

fn num(v: Option<String>) -> u32 {
    v.and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn if_none_match(h: &HeaderMap, etag: &str) -> bool {
    h.get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*")
}

/// FNV-1a: a page's ETag (stable across runs).
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3))
}
