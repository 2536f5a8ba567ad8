//! The dialects, each under its own base path, and what they share (manifests, file URLs).

pub mod async_api;
pub mod attach;
pub mod bulk;
pub mod medplum;
pub mod medplum_files;
pub mod medplum_job;
pub mod publish;
pub mod stu4;

use std::sync::Arc;

use axum::http::header;
use axum::response::Response;
use serde_json::{json, Value};

use crate::app::{App, Ctx};
use crate::export::{FileEntry, FileKind};
use crate::http;
use crate::jobs::{Dialect, Job, Phase};

/// Finds the dialect whose base starts `path`: (dialect, length of the base in `path`).
pub fn match_base(path: &str) -> Option<(Dialect, usize)> {
    const FIXED: [(&str, Dialect); 8] = [
        ("/bulk/fhir", Dialect::Bulk),
        ("/attach/fhir", Dialect::Attach),
        ("/healthconnect/fhir", Dialect::HealthConnect),
        ("/medplum/fhir/R4", Dialect::Medplum),
        ("/medplum-doc/fhir/R4", Dialect::MedplumDoc),
        ("/aidbox/fhir", Dialect::Aidbox),
        ("/r5/fhir", Dialect::R5),
        ("/stu4/fhir", Dialect::Stu4),
    ];
    let at_boundary = |len: usize| path.len() == len || path.as_bytes()[len] == b'/';
    for (base, d) in FIXED {
        if path.starts_with(base) && at_boundary(base.len()) {
            return Some((d, base.len()));
        }
    }
    // /oracle/r4/{tenant}
    let rest = path.strip_prefix("/oracle/r4/")?;
    let tenant = rest.split('/').next()?;
    if tenant.is_empty() {
        return None;
    }
    Some((Dialect::Oracle, "/oracle/r4/".len() + tenant.len()))
}

/// Routes a request to its dialect.
pub async fn handle(app: &Arc<App>, ctx: Ctx, d: Dialect) -> Response {
    match d {
        Dialect::Bulk | Dialect::HealthConnect | Dialect::Oracle | Dialect::Stu4 | Dialect::Attach => {
            bulk::handle(app, ctx, d).await
        }
        Dialect::Medplum | Dialect::MedplumDoc => medplum::handle(app, ctx, d).await,
        Dialect::Aidbox | Dialect::R5 => async_api::handle(app, ctx, d).await,
    }
}

/// `metadata` (a small CapabilityStatement) and `.well-known/smart-configuration`.
pub fn discovery(app: &App, ctx: &Ctx, d: Dialect) -> Response {
    let token_url = format!("{}{}/auth/token", app.main_origin, ctx.prefix);
    if ctx.rest == "metadata" {
        let version = if d == Dialect::R5 { "5.0.0" } else { "4.0.1" };
        let types: &[&str] = if d == Dialect::Attach {
            &["DocumentReference", "DiagnosticReport", "Binary"]
        } else {
            &crate::data::TYPES
        };
        return http::fhir(
            200,
            &json!({
                "resourceType": "CapabilityStatement",
                "status": "active",
                "date": "2025-06-01",
                "kind": "instance",
                "software": {"name": "fhir-async-testserver", "version": env!("CARGO_PKG_VERSION")},
                "implementation": {"description": format!("fhir-async reference server ({} dialect)", d.name()), "url": format!("{}{}", app.main_origin, ctx.base)},
                "fhirVersion": version,
                "format": ["application/fhir+json"],
                "rest": [{"mode": "server", "security": security(&token_url),
                          "resource": types.iter().map(|t| json!({"type": t, "interaction": [{"code":"read"},{"code":"search-type"}]})).collect::<Vec<_>>(),
                          "operation": [{"name":"export","definition": stu4::export_definition(d)}]}],
            }),
        );
    }
    if ctx.faults.no_smart_config {
        return http::oo(404, "not-found", "no .well-known/smart-configuration here (fault 'no-smart-config')");
    }
    http::json_with(
        200,
        "application/json",
        &json!({
            "token_endpoint": token_url,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "scopes_supported": ["system/*.read", "system/*.rs"],
            "capabilities": ["client-confidential-asymmetric", "client-confidential-symmetric", "permission-v1", "permission-v2"],
        }),
    )
}

/// `CapabilityStatement.rest.security`: SMART-on-FHIR with the `oauth-uris` extension (protocol J1 fallback).
fn security(token_url: &str) -> serde_json::Value {
    json!({
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{"url": "token", "valueUri": token_url}],
        }],
    })
}

/// Path (+query) of a job's status URL.
pub fn status_path(job: &Job) -> String {
    match job.dialect {
        Dialect::Bulk | Dialect::HealthConnect | Dialect::Stu4 | Dialect::Attach => {
            format!("{}/$export-poll-status?_jobId={}", job.base, job.id)
        }
        Dialect::Oracle => format!("{}/bulk-export/jobs/{}", job.base, job.id),
        // A real Medplum: bulk-style status for `$export`, `job/{id}/status` for the rest.
        Dialect::Medplum if job.plan().is_some() => format!("{}/bulkdata/export/{}", job.base, job.id),
        Dialect::Medplum => format!("{}/job/{}/status", job.base, job.id),
        Dialect::MedplumDoc => format!("{}/AsyncJob/{}", job.base, job.id),
        Dialect::Aidbox | Dialect::R5 => format!("{}/_async/{}", job.base, job.id),
    }
}

/// Absolute status URL.
pub fn status_url(app: &App, job: &Job) -> String {
    format!("{}{}", app.main_origin, status_path(job))
}

/// Absolute URL of file `idx` of a job, generation `gen`.
pub fn file_url(app: &App, job: &Job, idx: usize, gen: u64) -> String {
    let Some(plan) = job.plan() else {
        return String::new();
    };
    let name = &plan.files[idx].name;
    if job.dialect == Dialect::Medplum {
        return medplum_files::storage_url(app, job, idx, gen);
    }
    if job.dialect == Dialect::MedplumDoc || job.faults.storage {
        return crate::files::storage_url(app, job, name, gen);
    }
    // Fault `signed`: an S3-style presigned query (the signature is checked on download).
    let mut q =
        if job.faults.signed { format!("?{}", crate::files::signed_query(app, &job.id, name)) } else { String::new() };
    if gen > 0 {
        q.push_str(&format!("{}g={gen}", if q.is_empty() { '?' } else { '&' }));
    }
    match job.dialect {
        Dialect::Oracle => format!("{}{}/bulk-export/files/{}-{idx}{q}", app.main_origin, job.base, job.id),
        _ => format!("{}{}/_files/{}/{name}{q}", app.main_origin, job.base, job.id),
    }
}

/// Whether the manifest says `requiresAccessToken`.
pub fn requires_token(app: &App, job: &Job) -> bool {
    match job.dialect {
        // Attach: the IG ties absolute attachment URLs to the flag (protocol M4, E5).
        Dialect::Oracle | Dialect::Attach => true,
        Dialect::Medplum | Dialect::MedplumDoc => false,
        _ => app.auth_on(),
    }
}

/// The `count` a manifest lists for a file: exact, unless fault `errcount` (error files) or
/// `count-excl-headers` (organized files, header lines not counted) says otherwise.
pub fn listed_count(job: &Job, f: &FileEntry) -> u64 {
    match job.faults.errcount {
        Some(n) if f.kind == FileKind::Error => n,
        _ if job.faults.count_excl_headers => f.count - f.headers,
        _ => f.count,
    }
}

/// Whether this job's manifests list no `count` at all (faults `reorder`, `changeafter`,
/// `cutlast`: a client cannot rely on it).
pub fn no_count(job: &Job) -> bool {
    job.faults.reorder || job.faults.changeafter || job.faults.cutlast
}

/// Whether the manifest being served is a refresh under fault `reorder` (call after
/// [`next_gen`] counted it): its entries are listed in reverse order.
pub fn reordered(job: &Job) -> bool {
    job.faults.reorder && job.lock().manifests_served > 1
}

/// Faults `refresh500` / `refresh202`: the answer to a status GET (page 1) of a completed job
/// whose manifest was already served once, when one of them fires.
pub fn refresh_fault(job: &Job, page: usize) -> Option<Response> {
    let f = &job.faults;
    if page != 1 || (f.refresh500 == 0 && !f.refresh202) {
        return None;
    }
    let mut st = job.lock();
    if st.manifests_served == 0 {
        return None;
    }
    if st.refresh_failures < f.refresh500 {
        st.refresh_failures += 1;
        return Some(http::oo(500, "exception", "The manifest could not be read again (fault 'refresh500')"));
    }
    if f.refresh202 {
        st.refresh_failures += 1;
        let mut r = http::empty(202);
        http::set(r.headers_mut(), header::RETRY_AFTER, "1");
        let progress = if job.dialect == Dialect::Oracle { "in-progress" } else { "99% complete" };
        http::set_named(r.headers_mut(), "x-progress", progress);
        return Some(r);
    }
    None
}

/// A JSON answer of exactly `bytes` bytes (at least the object itself), streamed without
/// `Content-Length` (faults `hugestatus`, `hugeprogress`): `v` with one more string member
/// `"padding"` of `x`s, generated while it is written (nothing is allocated for it).
pub fn padded_json(status: u16, ctype: &str, v: &Value, bytes: u64) -> Response {
    use axum::body::{Body, Bytes};
    let s = v.to_string();
    let head = format!("{},\"padding\":\"", s.strip_suffix('}').unwrap_or(&s));
    let tail = "\"}";
    let pad = bytes.saturating_sub((head.len() + tail.len()) as u64);
    let block = Bytes::from(vec![b'x'; 64 * 1024]);
    let parts = futures_util::stream::unfold((0u8, pad), move |(stage, left)| {
        let block = block.clone();
        let head = head.clone();
        async move {
            match stage {
                0 => Some((Ok::<Bytes, std::io::Error>(Bytes::from(head)), (1, left))),
                1 if left > 0 => {
                    let n = left.min(block.len() as u64);
                    Some((Ok(block.slice(..n as usize)), (1, left - n)))
                }
                1 => Some((Ok(Bytes::from_static(tail.as_bytes())), (2, 0))),
                _ => None,
            }
        }
    });
    let mut r = Response::new(Body::from_stream(parts));
    *r.status_mut() = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
    http::set(r.headers_mut(), header::CONTENT_TYPE, ctype);
    r
}

/// The body of a running 202 under fault `hugeprogress` (before its padding).
pub fn progress_oo() -> Value {
    http::oo_value("information", "informational", "The export is running (fault 'hugeprogress')")
}

/// The manifest generation to hand out now (fault `expire`: the first completed manifest has
/// generation-0 URLs, every later one generation 1). Counts the manifest as served.
pub fn next_gen(job: &Job) -> u64 {
    let mut st = job.lock();
    let g = u64::from((job.faults.expire || job.faults.expireafter) && st.manifests_served > 0);
    st.manifests_served += 1;
    g
}

/// Manifest page `page` (1-based) if it can be returned now (see docs/testserver.md: pages
/// are fixed slices of the plan's files; a page is returned once all its files are done).
pub fn manifest_page(app: &App, job: &Job, page: usize, gen: u64) -> Option<Value> {
    let plan = job.plan()?;
    let total = plan.files.len();
    let complete = job.phase() == Phase::Completed;
    let done = if complete { total } else { job.files_done() };
    let psize = if plan.params.partial_manifests { app.cfg.page_size } else { 0 };
    let (lo, hi, next) = if psize == 0 {
        if page != 1 {
            return None;
        }
        (0, done, false)
    } else {
        let lo = (page.checked_sub(1)?).checked_mul(psize)?;
        let hi = lo.saturating_add(psize).min(total);
        if !(complete || (done >= hi && hi > lo)) || (lo >= total && page != 1) {
            return None;
        }
        let next_hi = hi.saturating_add(psize).min(total);
        (lo, hi, hi < total && (complete || done >= next_hi))
    };
    let counted = !no_count(job);
    let stu4 = job.dialect == Dialect::Stu4;
    let entry = |i: usize| {
        let f = &plan.files[i];
        let mut e = json!({"url": file_url(app, job, i, gen)});
        if counted && !f.is_opaque() {
            e["count"] = json!(listed_count(job, f));
        }
        if let Some(t) = &f.rtype {
            e["type"] = json!(t);
        }
        if stu4 {
            stu4::entry_fields(job, i, f, &mut e);
        }
        e
    };
    // Fault `reorder`: a refreshed (completed, not the first) manifest lists each array reversed.
    let reverse = complete && reordered(job);
    let pick = |k: FileKind| -> Vec<Value> {
        let mut v: Vec<Value> = (lo..hi).filter(|&i| plan.files[i].kind == k).map(entry).collect();
        if reverse {
            v.reverse();
        }
        v
    };
    let mut m = json!({
        "transactionTime": crate::time::instant_ms(job.created_ms),
        "request": job.request_url,
        "requiresAccessToken": requires_token(app, job),
        "output": pick(FileKind::Output),
        "error": pick(FileKind::Error),
    });
    if plan.params.selection.since.is_some() {
        m["deleted"] = json!(pick(FileKind::Deleted));
    }
    if plan.params.organize_by_patient {
        m["outputOrganizedBy"] = json!("Patient");
    }
    if next {
        m["link"] = json!([{"relation": "next", "url": page_url(app, job, page + 1)}]);
    }
    if stu4 {
        stu4::manifest_fields(&mut m);
    }
    Some(m)
}

/// Absolute URL of manifest page `page`.
pub fn page_url(app: &App, job: &Job, page: usize) -> String {
    let s = status_url(app, job);
    let sep = if s.contains('?') { '&' } else { '?' };
    format!("{s}{sep}_page={page}")
}

/// Adds Retry-After (unless `no-retry`) and X-Progress to a running-status answer.
pub fn running_headers(app: &App, job: &Job, r: &mut Response, progress: &str) {
    if let Some(v) = app.retry_after(job) {
        http::set(r.headers_mut(), header::RETRY_AFTER, &v);
    }
    http::set_named(r.headers_mut(), "x-progress", progress);
}

/// Marks a job cancelled (and optionally deleted) and wakes long polls and callbacks.
pub fn cancel(job: &Job, delete: bool) {
    {
        let mut st = job.lock();
        st.cancelled = true;
        st.deleted |= delete;
    }
    job.changed.notify_waiters();
}

/// The `_page` query parameter (1 when absent); `Err` for a bad value.
pub fn page_param(ctx: &Ctx) -> Result<usize, Response> {
    match ctx.param("_page") {
        None => Ok(1),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| http::oo(400, "invalid", "_page must be a positive integer")),
    }
}

/// The `g` query parameter (file URL generation).
pub fn gen_param(ctx: &Ctx) -> u64 {
    ctx.param("g").and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A 404 for an unknown job.
pub fn unknown_job(id: &str) -> Response {
    http::oo(404, "not-found", &format!("Unknown job '{id}' (never existed, cancelled or deleted)"))
}
