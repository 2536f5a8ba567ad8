//! Medplum (`/medplum/fhir/R4`): `$export` and `$reindex` create an `AsyncJob`; its status is
//! always HTTP 200 with the resource; `$cancel` answers exactly as Medplum does; files are on
//! the storage origin.

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use serde_json::{json, Value};

use super::{cancel, file_url, next_gen, running_headers, status_path};
use crate::app::{App, Ctx};
use crate::export::{FileKind, Level};
use crate::http::{self, oo_text};
use crate::jobs::{Dialect, Job, Mode, Phase, Work};

const D: Dialect = Dialect::Medplum;

/// Handles a request under the Medplum base.
pub async fn handle(app: &Arc<App>, ctx: Ctx) -> Response {
    let segs: Vec<&str> = ctx.rest.split('/').collect();
    let m = ctx.method.clone();
    let get_post = m == Method::GET || m == Method::POST;
    match segs.as_slice() {
        ["$export"] if get_post => export(app, &ctx, Level::System),
        ["Patient", "$export"] if get_post => export(app, &ctx, Level::Patient),
        ["Group", id, "$export"] if get_post => export(app, &ctx, Level::Group((*id).to_string())),
        ["$reindex"] | [_, "$reindex"] if m == Method::POST => reindex(app, &ctx),
        ["AsyncJob", id] if m == Method::GET => status(app, id),
        ["AsyncJob", id] if m == Method::DELETE => do_cancel(app, id, true),
        ["AsyncJob", id, "$cancel"] if m == Method::POST => do_cancel(app, id, false),
        _ => http::tag(
            http::oo(404, "not-found", &format!("{} {} is not supported by the medplum dialect", ctx.method, ctx.path)),
            "medplum.unknown".into(),
            None,
        ),
    }
}

fn export(app: &Arc<App>, ctx: &Ctx, level: Level) -> Response {
    match super::bulk::start_export(app, ctx, D, level, Mode::Manifest) {
        Ok((job, _)) => {
            let r = app.accepted(ctx, &status_path(&job), true);
            http::tag(r, "medplum.kickoff".into(), Some(&job.id))
        }
        Err(r) => http::tag(r, "medplum.kickoff".into(), None),
    }
}

fn reindex(app: &Arc<App>, ctx: &Ctx) -> Response {
    if !ctx.body.iter().all(u8::is_ascii_whitespace) {
        if let Err(r) = crate::app::json_body(&ctx.body) {
            return http::tag(r, "medplum.kickoff".into(), None);
        }
    }
    if let Some(r) = app.kick_fault(ctx) {
        return http::tag(r, "medplum.kickoff".into(), None);
    }
    let n: u64 = (0..crate::data::TYPES.len()).map(|t| app.ds.count(t)).sum();
    let body = json!({"resourceType":"Parameters","parameter":[{"name":"result","valueString":format!("reindexed {n} resources")}]});
    let job = app.start_job(ctx, D, Work::Answer { status: 200, body }, Mode::Bundle, false);
    let r = app.accepted(ctx, &status_path(&job), true);
    http::tag(r, "medplum.kickoff".into(), Some(&job.id))
}

fn status(app: &Arc<App>, id: &str) -> Response {
    let Some(job) = app.jobs.get(id, D) else {
        return http::tag(http::fhir(404, &oo_text("error", "not-found", "Not found")), "medplum.status".into(), None);
    };
    job.count("status");
    let r = app.poll_fault(&job).unwrap_or_else(|| {
        let phase = job.phase();
        let v = async_job(app, &job, phase);
        let mut r = http::fhir(200, &v);
        if let Phase::Running(pct) = phase {
            running_headers(app, &job, &mut r, &format!("{pct}% complete"));
        }
        r
    });
    http::tag(r, "medplum.status".into(), Some(&job.id))
}

/// The AsyncJob resource of a job in `phase`.
fn async_job(app: &App, job: &Job, phase: Phase) -> Value {
    let status = match phase {
        Phase::Running(_) => "accepted",
        Phase::Completed => "completed",
        Phase::Failed => "error",
        Phase::Cancelled => "cancelled",
    };
    let mut v = json!({
        "resourceType": "AsyncJob",
        "id": job.id,
        "meta": {"versionId": "1", "lastUpdated": crate::time::instant_ms(crate::time::now_ms())},
        "status": status,
        "requestTime": crate::time::instant_ms(job.created_ms),
        "request": job.request_url,
    });
    match phase {
        Phase::Completed => {
            v["transactionTime"] = json!(crate::time::instant_ms(job.created_ms));
            v["output"] = output(app, job);
        }
        Phase::Failed => {
            v["transactionTime"] = json!(crate::time::instant_ms(job.created_ms));
            v["output"] = json!({"resourceType":"Parameters","parameter":[{"name":"outcome","resource":http::oo_value("error","processing","The job failed (fault 'fail')")}]});
        }
        _ => {}
    }
    v
}

fn output(app: &App, job: &Job) -> Value {
    match &job.work {
        Work::Answer { body, .. } => body.clone(),
        Work::Export(plan) => {
            let gen = next_gen(job);
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
                    part.push(json!({"name":"url","valueUri":file_url(app, job, i, gen)}));
                    part.push(json!({"name":"count","valueInteger":f.count}));
                    json!({"name": name, "part": part})
                })
                .collect();
            params.push(json!({"name":"requiresAccessToken","valueBoolean":false}));
            json!({"resourceType":"Parameters","parameter":params})
        }
    }
}

fn do_cancel(app: &Arc<App>, id: &str, via_delete: bool) -> Response {
    let route = "medplum.cancel".to_string();
    let Some(job) = app.jobs.get(id, D) else {
        return http::tag(http::fhir(404, &oo_text("error", "not-found", "Not found")), route, None);
    };
    job.count("cancel");
    let r = match job.phase() {
        Phase::Running(_) | Phase::Cancelled => {
            cancel(&job, false);
            if via_delete {
                http::fhir(202, &oo_text("information", "informational", "Accepted"))
            } else {
                http::fhir(200, &oo_text("information", "informational", "All OK"))
            }
        }
        p => {
            let had = if p == Phase::Completed { "completed" } else { "error" };
            http::fhir(
                400,
                &oo_text(
                    "error",
                    "invalid",
                    &format!("AsyncJob cannot be cancelled if status is not 'accepted', job had status '{had}'"),
                ),
            )
        }
    };
    http::tag(r, route, Some(&job.id))
}
