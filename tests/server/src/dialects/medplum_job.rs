//! A Medplum job's URLs: `AsyncJob/{id}` (read, delete, `$cancel`), and on the real dialect
//! `job/{id}/status` and `bulkdata/export/{id}` (medplum.md §1, §3, §4, §5).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::http::header;
use axum::response::Response;
use serde_json::{json, Value};

use super::{cancel, listed_count, manifest_page, next_gen, running_headers};
use crate::app::{App, Ctx};
use crate::export::FileKind;
use crate::http;
use crate::jobs::{Dialect, Job, Phase, Work};

/// A Medplum OperationOutcome: one issue with `details.text`, and the resource `id` Medplum
/// gives its stock outcomes (`ok`, `accepted`, `not-found`, `gone`).
pub fn mp_oo(id: Option<&str>, severity: &str, code: &str, text: &str) -> Value {
    let mut v = http::oo_text(severity, code, text);
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v
}

fn all_ok() -> Value {
    mp_oo(Some("ok"), "information", "informational", "All OK")
}

/// The job, or the 404 (unknown) / 410 (AsyncJob deleted) answer.
fn lookup(app: &App, d: Dialect, id: &str) -> Result<Arc<Job>, Response> {
    let Some(job) = app.jobs.get(id, d) else {
        return Err(http::fhir(404, &mp_oo(Some("not-found"), "error", "not-found", "Not found")));
    };
    if job.lock().gone {
        return Err(http::fhir(410, &mp_oo(Some("gone"), "error", "deleted", "Gone")));
    }
    Ok(job)
}

/// Real Medplum does not stop an async batch whose cancel it accepted (medplum.md, "Observed
/// later"): the AsyncJob reads `cancelled` while the batch runs on, then `completed` with its
/// `results`, every entry applied. The ids of such batches (the real dialect only).
static RUNS_ON: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn runs_on(job: &Job) -> bool {
    RUNS_ON.lock().unwrap_or_else(|e| e.into_inner()).contains(&job.id)
}

/// An async batch: a job whose answer is a Bundle (served as `Binary`).
fn is_batch(job: &Job) -> bool {
    matches!(&job.work, Work::Answer { body, .. } if body["resourceType"] == "Bundle")
}

fn answer_failed(job: &Job) -> bool {
    matches!(job.work, Work::Answer { status, .. } if status >= 400)
}

/// The AsyncJob `status` of a job now.
pub fn label(job: &Job, d: Dialect) -> &'static str {
    let export = job.plan().is_some();
    match job.phase() {
        Phase::Cancelled => "cancelled",
        Phase::Running(_) if runs_on(job) => "cancelled",
        Phase::Completed if answer_failed(job) => "error",
        Phase::Completed => "completed",
        // A failing export never ends on a real Medplum: it stays `active`.
        Phase::Failed if export && d == Dialect::Medplum => "active",
        Phase::Failed => "error",
        // Only an export is taken by a worker that marks it `active` (medplum.md §4: batch,
        // $expunge and reindex stay `accepted` until done).
        Phase::Running(_) if job.queued() || !export || d == Dialect::MedplumDoc => "accepted",
        Phase::Running(_) => "active",
    }
}

/// `request` as a real Medplum records a kick-off: the base and the operation without a slash
/// between them (`http://host/fhir/R4$export`); a POST to the base keeps its slash.
pub fn request_of(app: &App, ctx: &Ctx) -> String {
    if ctx.rest.is_empty() {
        return ctx.url(app);
    }
    let q = if ctx.query.is_empty() { String::new() } else { format!("?{}", ctx.query) };
    format!("{}{}{}{q}", app.main_origin, ctx.base, ctx.rest)
}

/// The AsyncJob resource of a job.
pub fn resource(app: &App, job: &Job, d: Dialect) -> Value {
    let status = label(job, d);
    let mut v = json!({
        "resourceType": "AsyncJob",
        "status": status,
        "request": job.request_url,
        "requestTime": crate::time::instant_ms(job.created_ms),
        "id": job.id,
        "meta": {"versionId": "1", "lastUpdated": crate::time::instant_ms(crate::time::now_ms())},
    });
    let done = crate::time::instant_ms(job.created_ms.saturating_add(job.duration.as_millis() as i64));
    match status {
        "completed" => {
            v["transactionTime"] = json!(done);
            if let Some(o) = output(app, job, d) {
                v["output"] = o;
            }
        }
        "error" => {
            v["transactionTime"] = json!(done);
            let oo = match &job.work {
                Work::Answer { status, body } if *status >= 400 => body.clone(),
                _ => mp_oo(None, "error", "processing", "The job failed (fault 'fail')"),
            };
            v["output"] = json!({"resourceType":"Parameters","parameter":[{"name":"outcome","resource":oo}]});
        }
        _ => {}
    }
    v
}

fn output(app: &App, job: &Job, d: Dialect) -> Option<Value> {
    let plan = match &job.work {
        Work::Answer { body, .. } if body.is_null() => return None,
        Work::Answer { body, .. } if body["resourceType"] == "Bundle" => {
            let r = format!("Binary/{}", super::medplum_files::binary_id(&job.id, None));
            return Some(
                json!({"resourceType":"Parameters","parameter":[{"name":"results","valueReference":{"reference":r}}]}),
            );
        }
        Work::Answer { body, .. } => return Some(body.clone()),
        Work::Export(plan) => plan,
    };
    let doc = d == Dialect::MedplumDoc;
    let gen = if doc { next_gen(job) } else { 0 };
    let counted = !super::no_count(job);
    let mut params: Vec<Value> = plan
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = match f.kind {
                FileKind::Output => "output",
                FileKind::Error => "error",
                FileKind::Deleted => "deleted",
            };
            let mut part = vec![];
            if let Some(t) = &f.rtype {
                part.push(json!({"name":"type","valueCode":t}));
            }
            if doc {
                part.push(json!({"name":"url","valueUri":super::file_url(app, job, i, gen)}));
                if counted {
                    part.push(json!({"name":"count","valueInteger":listed_count(job, f)}));
                }
            } else {
                // Relative to the FHIR base; needs the token (medplum.md §1).
                let id = super::medplum_files::binary_id(&job.id, Some(i));
                part.push(json!({"name":"url","valueUri":format!("Binary/{id}")}));
            }
            json!({"name": name, "part": part})
        })
        .collect();
    if doc && super::reordered(job) {
        params.reverse();
    }
    if doc {
        params.push(json!({"name":"requiresAccessToken","valueBoolean":false}));
    }
    Some(json!({"resourceType":"Parameters","parameter":params}))
}

fn tagged(r: Result<Response, Response>, d: Dialect, kind: &str, id: &str) -> Response {
    let (r, job) = match r {
        Ok(r) => (r, Some(id)),
        Err(r) => (r, None),
    };
    http::tag(r, format!("{}.{kind}", d.name()), job)
}

/// `GET AsyncJob/{id}`: 200 with the AsyncJob whatever its status (the documented dialect adds
/// `Retry-After` and `X-Progress` while it runs).
pub fn read(app: &Arc<App>, d: Dialect, id: &str) -> Response {
    let r = lookup(app, d, id).map(|job| {
        job.count("status");
        app.poll_fault(&job).unwrap_or_else(|| {
            let mut r = http::fhir(200, &resource(app, &job, d));
            if let (Dialect::MedplumDoc, Phase::Running(pct)) = (d, job.phase()) {
                running_headers(app, &job, &mut r, &format!("{pct}% complete"));
            }
            r
        })
    });
    tagged(r, d, "status", id)
}

/// `GET job/{id}/status`: 202 + AsyncJob until `completed` or `error` (also when `cancelled`),
/// then 200 + AsyncJob (medplum.md §4).
pub fn job_status(app: &Arc<App>, d: Dialect, id: &str) -> Response {
    let r = lookup(app, d, id).map(|job| {
        job.count("status");
        app.poll_fault(&job).unwrap_or_else(|| {
            let v = resource(app, &job, d);
            let code = if matches!(v["status"].as_str(), Some("completed" | "error")) { 200 } else { 202 };
            http::fhir(code, &v)
        })
    });
    tagged(r, d, "status", id)
}

/// `GET bulkdata/export/{id}`: 202 empty while running (forever for a failing export), 200 +
/// Bulk manifest when done, 404 once cancelled (medplum.md §1, §3).
pub fn export_status(app: &Arc<App>, d: Dialect, id: &str) -> Response {
    let r = lookup(app, d, id).and_then(|job| {
        if job.plan().is_none() {
            return Err(http::fhir(404, &mp_oo(Some("not-found"), "error", "not-found", "Not found")));
        }
        job.count("status");
        Ok(app.poll_fault(&job).unwrap_or_else(|| match label(&job, d) {
            "cancelled" => {
                http::json_with(404, "application/json", &mp_oo(Some("not-found"), "error", "not-found", "Not found"))
            }
            "completed" => match super::refresh_fault(&job, 1) {
                Some(r) => r,
                None => match manifest_page(app, &job, 1, next_gen(&job)) {
                    Some(m) if job.faults.hugestatus > 0 => {
                        super::padded_json(200, "application/json", &medplum_manifest(&job, m), job.faults.hugestatus)
                    }
                    Some(m) => http::json_with(200, "application/json", &medplum_manifest(&job, m)),
                    None => http::fhir(500, &mp_oo(None, "error", "exception", "manifest unavailable")),
                },
            },
            _ if job.faults.hugeprogress > 0 => {
                super::padded_json(202, "application/json", &super::progress_oo(), job.faults.hugeprogress)
            }
            _ => http::empty(202),
        }))
    });
    tagged(r, d, "status", id)
}

/// A Bulk manifest as Medplum writes it: no `count`, `request` without the slash, `deleted`
/// always present.
fn medplum_manifest(job: &Job, mut m: Value) -> Value {
    for k in ["output", "error", "deleted"] {
        match m[k].as_array_mut() {
            Some(a) => a.iter_mut().filter_map(Value::as_object_mut).for_each(|e| {
                e.remove("count");
            }),
            None => m[k] = json!([]),
        }
    }
    m["request"] = json!(job.request_url);
    m
}

/// `DELETE bulkdata/export/{id}`: the working cancel of an export, 202 `text/plain`
/// "Accepted" whatever the job's state; later polls answer 404 (medplum.md §3).
pub fn export_delete(app: &Arc<App>, d: Dialect, id: &str) -> Response {
    let r = lookup(app, d, id).map(|job| {
        job.count("cancel");
        cancel(&job, false);
        let mut r = http::empty(202);
        *r.body_mut() = axum::body::Body::from("Accepted");
        http::set(r.headers_mut(), header::CONTENT_TYPE, "text/plain; charset=utf-8");
        r
    });
    tagged(r, d, "cancel", id)
}

/// `POST AsyncJob/{id}/$cancel` (200 "All OK") and `DELETE job/{id}/status` (202 "Accepted"):
/// only an `accepted` (or already `cancelled`) job can be cancelled; otherwise 400 naming its status.
pub fn cancel_route(app: &Arc<App>, d: Dialect, id: &str, via_delete: bool) -> Response {
    let r = lookup(app, d, id).map(|job| {
        job.count("cancel");
        match label(&job, d) {
            s @ ("accepted" | "cancelled") => {
                if s == "accepted" && d == Dialect::Medplum && is_batch(&job) {
                    RUNS_ON.lock().unwrap_or_else(|e| e.into_inner()).insert(job.id.clone());
                } else if s == "accepted" {
                    cancel(&job, false);
                }
                if via_delete {
                    http::fhir(202, &mp_oo(Some("accepted"), "information", "informational", "Accepted"))
                } else {
                    http::fhir(200, &all_ok())
                }
            }
            had => http::fhir(
                400,
                &mp_oo(
                    None,
                    "error",
                    "invalid",
                    &format!("AsyncJob cannot be cancelled if status is not 'accepted', job had status '{had}'"),
                ),
            ),
        }
    });
    tagged(r, d, "cancel", id)
}

/// `DELETE AsyncJob/{id}`: an ordinary resource delete (200 "All OK"; every URL of the job
/// answers 410 afterwards). It cancels nothing (medplum.md §5).
pub fn delete_resource(app: &Arc<App>, d: Dialect, id: &str) -> Response {
    let r = lookup(app, d, id).map(|job| {
        job.count("delete");
        job.lock().gone = true;
        http::fhir(200, &all_ok())
    });
    tagged(r, d, "delete", id)
}
