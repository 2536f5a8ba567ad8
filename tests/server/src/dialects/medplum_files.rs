//! A real Medplum's files: `GET [base]/Binary/{id}` (token required, as every FHIR request)
//! and signed `/storage/{binary}/{version}?Expires=..&Signature=..` URLs on the FHIR origin,
//! which answer with or without a token (medplum.md §1).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::json;

use super::medplum_job::mp_oo;
use crate::app::{split_prefix, App, Ctx};
use crate::files::{serve, sign};
use crate::http;
use crate::jobs::{derived_id, Dialect, Job, Work};

/// The `Binary` id of file `file` of a job (`None`: the job's answer, e.g. a batch-response).
pub fn binary_id(job: &str, file: Option<usize>) -> String {
    derived_id(job, file.map_or(u64::MAX, |i| i as u64))
}

/// Registers the Binary ids of a real-Medplum job (its files, or its Bundle answer).
pub fn bind(app: &App, job: &Job) {
    if job.dialect != Dialect::Medplum {
        return;
    }
    match &job.work {
        Work::Export(plan) => {
            for i in 0..plan.files.len() {
                app.jobs.bind_binary(binary_id(&job.id, Some(i)), &job.id, Some(i));
            }
        }
        Work::Answer { body, .. } if body["resourceType"] == "Bundle" => {
            app.jobs.bind_binary(binary_id(&job.id, None), &job.id, None);
        }
        Work::Answer { .. } => {}
    }
}

/// The signed storage URL of file `idx` (on the FHIR origin; `&g=1` for fault `expire`).
pub fn storage_url(app: &App, job: &Job, idx: usize, gen: u64) -> String {
    let bid = binary_id(&job.id, Some(idx));
    let vid = derived_id(&job.id, (idx as u64) | (1 << 40));
    let expires = job.created_ms / 1000 + 3600;
    let mut u = format!(
        "{}{}/storage/{bid}/{vid}?Expires={expires}&Signature={}",
        app.main_origin,
        job.prefix,
        sign(app, &bid, &vid)
    );
    if gen > 0 {
        u.push_str(&format!("&g={gen}"));
    }
    u
}

fn plain(status: u16, text: &str) -> Response {
    let mut r = http::empty(status);
    *r.body_mut() = Body::from(text.to_string());
    http::set(r.headers_mut(), header::CONTENT_TYPE, "text/plain; charset=utf-8");
    r
}

/// `[/_f/SPEC]/storage/{binary}/{version}?...&Signature=...` on the main origin: the signature
/// is the credential, a token is neither needed nor refused; without it 401 `text/plain`.
pub async fn storage(app: &App, method: &Method, uri: &Uri, h: &HeaderMap) -> Response {
    let (_, _, rest) = split_prefix(uri.path());
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let tag = |r: Response, job: Option<&str>| http::tag(r, "medplum.storage".into(), job);
    let ["storage", bid, vid] = parts.as_slice() else {
        return tag(plain(404, "Not found"), None);
    };
    if method != Method::GET && method != Method::HEAD {
        return tag(plain(405, "Method not allowed"), None);
    }
    let q = http::query_pairs(uri.query().unwrap_or(""));
    let sig = q.iter().find(|(k, _)| k == "Signature").map(|(_, v)| v.as_str());
    if sig != Some(sign(app, bid, vid).as_str()) {
        return tag(plain(401, "Unauthorized"), None);
    }
    let Some((job, Some(idx))) = app.jobs.binary(bid) else {
        return tag(plain(404, "Not found"), None);
    };
    let gen = q.iter().find(|(k, _)| k == "g").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let name = job.plan().map(|p| p.files[idx].name.clone()).unwrap_or_default();
    tag(serve(app, &job, &name, gen, h).await, Some(&job.id))
}

/// `GET [base]/Binary/{id}`: the NDJSON (or the batch-response Bundle); with
/// `Accept: application/fhir+json` the Binary resource itself, without its content.
pub async fn binary(app: &Arc<App>, ctx: &Ctx, id: &str) -> Response {
    let tag = |r: Response, job: Option<&str>| http::tag(r, "medplum.binary".into(), job);
    let found = app.jobs.binary(id).filter(|(j, _)| j.base == ctx.base);
    let Some((job, file)) = found else {
        return tag(http::fhir(404, &mp_oo(Some("not-found"), "error", "not-found", "Not found")), None);
    };
    let wants_resource = ctx
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/fhir+json"));
    let r = match (&job.work, file) {
        (_, _) if wants_resource => {
            let ct = if file.is_some() { "application/fhir+ndjson" } else { http::FHIR_JSON };
            http::fhir(200, &json!({"resourceType":"Binary","contentType":ct,"id":id}))
        }
        (Work::Answer { body, .. }, None) => http::fhir(200, body),
        (Work::Export(plan), Some(i)) => {
            let name = plan.files[i].name.clone();
            serve(app, &job, &name, super::gen_param(ctx), &ctx.headers).await
        }
        _ => http::fhir(404, &mp_oo(Some("not-found"), "error", "not-found", "Not found")),
    };
    tag(r, Some(&job.id))
}
