//! HL7 Bulk Data (`/bulk/fhir`), HealthConnect (`/healthconnect/fhir`) and Oracle
//! (`/oracle/r4/{tenant}`): the same kick-off, different status/cancel/file shapes.

use std::sync::Arc;

use axum::http::{header, Method};
use axum::response::Response;
use serde_json::json;

use super::{
    cancel, manifest_page, next_gen, padded_json, page_param, progress_oo, refresh_fault, running_headers, status_path,
    unknown_job,
};
use crate::app::{App, Ctx};
use crate::export::{oo_line, pairs_from_parameters, ExportParams, FileKind, Level, Plan};
use crate::http::{self, has_pref, lenient};
use crate::jobs::{Dialect, Job, Mode, Phase, Work};

/// Handles a request under a bulk-family base.
pub async fn handle(app: &Arc<App>, ctx: Ctx, d: Dialect) -> Response {
    let segs: Vec<String> = ctx.rest.split('/').map(str::to_string).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = &ctx.method;
    let is_get_post = *m == Method::GET || *m == Method::POST;
    let route = |kind: &str| format!("{}.{kind}", d.name());
    match segs.as_slice() {
        ["$export"] if is_get_post => kickoff(app, &ctx, d, Level::System),
        ["Patient", "$export"] if is_get_post => kickoff(app, &ctx, d, Level::Patient),
        ["Group", id, "$export"] if is_get_post => kickoff(app, &ctx, d, Level::Group((*id).to_string())),
        ["$export-poll-status"] if d != Dialect::Oracle => {
            let id = ctx.param("_jobId").unwrap_or_default();
            if d == Dialect::Stu4 && ctx.method == Method::GET {
                if let Some(job) = app.jobs.get(&id, d) {
                    super::stu4::measure(app, &job).await;
                }
            }
            job_route(app, &ctx, d, &id)
        }
        ["bulk-export", "jobs", id] if d == Dialect::Oracle => job_route(app, &ctx, d, id),
        ["Binary", id] if d == Dialect::Attach => super::attach::binary(app, &ctx, id).await,
        ["$bulk-publish"] if d == Dialect::Stu4 => http::tag(super::publish::page(app, &ctx), route("publish"), None),
        ["_publish", name] if d == Dialect::Stu4 && *m == Method::GET => {
            http::tag(super::publish::serve(name), route("publish.file"), None)
        }
        ["_files", id, name]
            if d != Dialect::Oracle && (*m == Method::GET || (d == Dialect::HealthConnect && *m == Method::POST)) =>
        {
            file(app, &ctx, d, id, name).await
        }
        ["bulk-export", "files", fid] if d == Dialect::Oracle && *m == Method::GET => {
            let Some((id, idx)) = fid.rsplit_once('-') else {
                return http::tag(unknown_job(fid), route("file"), None);
            };
            let name = app
                .jobs
                .get(id, d)
                .and_then(|j| {
                    let i: usize = idx.parse().ok()?;
                    Some(j.plan()?.files.get(i)?.name.clone())
                })
                .unwrap_or_default();
            file(app, &ctx, d, id, &name).await
        }
        _ => http::tag(
            http::oo(
                404,
                "not-supported",
                &format!("{} {} is not supported by the {} dialect", ctx.method, ctx.path, d.name()),
            ),
            route("unknown"),
            None,
        ),
    }
}

fn job_route(app: &Arc<App>, ctx: &Ctx, d: Dialect, id: &str) -> Response {
    match ctx.method {
        Method::GET => status(app, ctx, d, id),
        Method::DELETE => delete(app, d, id),
        _ => http::tag(
            http::oo(405, "not-supported", "use GET to poll or DELETE to cancel"),
            format!("{}.unknown", d.name()),
            Some(id),
        ),
    }
}

fn kickoff(app: &Arc<App>, ctx: &Ctx, d: Dialect, level: Level) -> Response {
    let route = format!("{}.kickoff", d.name());
    let r = match start_export(app, ctx, d, level, Mode::Manifest) {
        Ok((job, resp)) => return http::tag(resp, route, Some(&job.id)),
        Err(r) => r,
    };
    http::tag(r, route, None)
}

/// Validates a `$export` kick-off and starts the job; `Err` is the answer to send instead.
pub fn start_export(
    app: &Arc<App>,
    ctx: &Ctx,
    d: Dialect,
    level: Level,
    mode: Mode,
) -> Result<(Arc<Job>, Response), Response> {
    // A real Medplum needs no Prefer, honours only `_type` and `_since` in the query and
    // silently ignores a POST `Parameters` body and every other parameter.
    let medplum = d == Dialect::Medplum;
    if !medplum && !has_pref(&ctx.prefs, "respond-async") {
        return Err(http::oo(400, "invalid", "The $export operation requires the header 'Prefer: respond-async'"));
    }
    if d == Dialect::Stu4 {
        super::stu4::check_kickoff(ctx)?;
    }
    if let Some(r) = app.kick_fault(ctx) {
        return Err(r);
    }
    let mut pairs = ctx.pairs();
    let is_post = ctx.method == Method::POST;
    if medplum {
        pairs.retain(|(k, _)| k == "_type" || k == "_since");
    } else if is_post {
        pairs.extend(pairs_from_parameters(&ctx.body).map_err(|e| http::oo(400, "invalid", &e))?);
    }
    // The attachments dialect exports its own types, not the data set's.
    let attach_types = if d == Dialect::Attach {
        Some(super::attach::take_types(&mut pairs).map_err(|e| http::oo(400, "invalid", &e))?)
    } else {
        None
    };
    let params = ExportParams::parse(level, &pairs, is_post, lenient(&ctx.prefs), &app.ds)
        .map_err(|e| http::oo(400, "invalid", &e))?;
    let extra: Vec<String> = if d == Dialect::Oracle {
        vec![oo_line(
            "warning",
            "incomplete",
            "Some resources were not exported because they are not accessible to this client",
        )]
    } else if d == Dialect::Stu4 {
        super::stu4::outcome_lines()
    } else {
        Vec::new()
    };
    let mut plan = Plan::build(params, &app.ds, app.cfg.file_resources, ctx.faults.partial, &extra);
    if ctx.faults.junklines || ctx.faults.cutlast {
        plan = plan.rewrite_outputs(&app.ds, ctx.faults.junklines, ctx.faults.cutlast);
    }
    if d == Dialect::Stu4 {
        super::stu4::add_parquet(&mut plan, u64::from(app.ds.patients()));
    }
    if let Some(types) = attach_types {
        plan.files.retain(|f| f.kind == FileKind::Error);
        let files = super::attach::files(app, ctx, &types).map_err(|e| http::oo(400, "invalid", &e))?;
        plan.files.splice(0..0, files);
    }
    let separate = matches!(d, Dialect::Bulk | Dialect::HealthConnect | Dialect::Stu4 | Dialect::Attach)
        && has_pref(&ctx.prefs, "separate-export-status");
    let job = app.start_job(ctx, d, Work::Export(Arc::new(plan)), mode, separate);
    let mut resp = app.accepted(ctx, &status_path(&job), false);
    if separate {
        http::set_named(resp.headers_mut(), "preference-applied", "separate-export-status");
    }
    Ok((job, resp))
}

fn status(app: &Arc<App>, ctx: &Ctx, d: Dialect, id: &str) -> Response {
    let route = format!("{}.status", d.name());
    let Some(job) = app.jobs.get(id, d) else {
        return http::tag(unknown_job(id), route, None);
    };
    job.count("status");
    let r = match page_param(ctx) {
        Err(r) => r,
        Ok(page) => app.poll_fault(&job).unwrap_or_else(|| status_answer(app, &job, d, page)),
    };
    http::tag(r, route, Some(&job.id))
}

/// The status answer of an export job (shared with the Aidbox manifest mode).
pub fn status_answer(app: &App, job: &Job, d: Dialect, page: usize) -> Response {
    let phase = job.phase();
    let mut r = match phase {
        Phase::Cancelled => unknown_job(&job.id),
        Phase::Failed => {
            let oo = http::oo_value("error", "processing", "The export failed (fault 'fail')");
            if d == Dialect::Aidbox || d == Dialect::R5 {
                http::fhir(200, &oo)
            } else {
                http::fhir(500, &oo)
            }
        }
        Phase::Completed => match refresh_fault(job, page) {
            Some(r) => r,
            None => match manifest_page(app, job, page, next_gen(job)) {
                None => http::oo(404, "not-found", &format!("no manifest page {page}")),
                Some(m) => {
                    let mut r = if job.faults.hugestatus > 0 {
                        padded_json(200, "application/json", &m, job.faults.hugestatus)
                    } else {
                        http::json_with(200, "application/json", &m)
                    };
                    http::set(r.headers_mut(), header::EXPIRES, &crate::time::http_date_in(3600));
                    if d == Dialect::Oracle {
                        http::set_named(r.headers_mut(), "x-progress", "completed");
                    }
                    r
                }
            },
        },
        Phase::Running(pct) => {
            let body =
                manifest_page(app, job, page, 0).filter(|m| m["output"].as_array().is_some_and(|a| !a.is_empty()));
            let mut r = match body {
                _ if job.faults.hugeprogress > 0 => {
                    padded_json(202, "application/json", &progress_oo(), job.faults.hugeprogress)
                }
                Some(m) => http::json_with(202, "application/json", &m),
                None => http::empty(202),
            };
            let progress = if d == Dialect::Oracle { "in-progress".to_string() } else { format!("{pct}% complete") };
            running_headers(app, job, &mut r, &progress);
            r
        }
    };
    if job.separate_status && phase != Phase::Cancelled {
        // BD3 separate-export-status: the poll itself succeeded; the job's status is a header.
        let status = r.status();
        let code = match (d, status.canonical_reason()) {
            // L8: the ballot's header is code and phrase (`202 Accepted`)
            (Dialect::Stu4, Some(phrase)) => format!("{} {phrase}", status.as_u16()),
            _ => status.as_u16().to_string(),
        };
        *r.status_mut() = axum::http::StatusCode::OK;
        http::set_named(r.headers_mut(), "x-export-status", &code);
    }
    r
}

fn delete(app: &Arc<App>, d: Dialect, id: &str) -> Response {
    let route = format!("{}.cancel", d.name());
    let Some(job) = app.jobs.get(id, d) else {
        let r = if d == Dialect::HealthConnect {
            http::fhir(
                400,
                &json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"Endpoint artefact not found for the provided job ID."}]}),
            )
        } else {
            unknown_job(id)
        };
        return http::tag(r, route, None);
    };
    job.count("cancel");
    cancel(&job, true);
    let r = match d {
        Dialect::Bulk => http::fhir(
            202,
            &http::oo_value("information", "informational", "The export job was cancelled and its files deleted"),
        ),
        _ => http::empty(202),
    };
    http::tag(r, route, Some(&job.id))
}

async fn file(app: &Arc<App>, ctx: &Ctx, d: Dialect, id: &str, name: &str) -> Response {
    let route = format!("{}.file", d.name());
    let Some(job) = app.jobs.get(id, d) else {
        return http::tag(unknown_job(id), route, None);
    };
    let gen = super::gen_param(ctx);
    if let Some(r) = crate::files::check_signed(app, &job, name, &ctx.query) {
        return http::tag(r, route, Some(&job.id));
    }
    let r = crate::files::serve(app, &job, name, gen, &ctx.headers).await;
    http::tag(r, route, Some(&job.id))
}
