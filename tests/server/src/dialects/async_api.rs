//! The unified async pattern (Aidbox, `/aidbox/fhir`) and the R5 async-bundle (`/r5/fhir`):
//! any interaction sent with `Prefer: respond-async` becomes a job at `{base}/_async/{id}`.
//! Aidbox adds `async-mode=bundle|redirect`, `callback-url=...` and long polling.

use std::sync::Arc;

use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::{cancel, page_param, status_path, unknown_job};
use crate::app::{App, Ctx};
use crate::export::Level;
use crate::http::{self, has_pref, pref_value};
use crate::jobs::{Dialect, Job, Mode, Phase, Work};

/// Handles a request under the Aidbox or R5 base.
pub async fn handle(app: &Arc<App>, ctx: Ctx, d: Dialect) -> Response {
    let segs: Vec<String> = ctx.rest.split('/').map(str::to_string).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let route = |k: &str| format!("{}.{k}", d.name());
    match (ctx.method.clone(), segs.as_slice()) {
        (Method::GET, ["_async", id]) => status(app, &ctx, d, id).await,
        (Method::DELETE, ["_async", id]) => {
            let Some(job) = app.jobs.get(id, d) else {
                return http::tag(unknown_job(id), route("cancel"), None);
            };
            job.count("cancel");
            let was_running = matches!(job.phase(), Phase::Running(_));
            cancel(&job, !was_running);
            let r = http::fhir(202, &http::oo_value("information", "informational", "The job was cancelled"));
            http::tag(r, route("cancel"), Some(id))
        }
        (Method::GET, ["_async", id, "result"]) => result(app, d, id),
        (Method::GET, ["_files", id, name]) => {
            let Some(job) = app.jobs.get(id, d) else {
                return http::tag(unknown_job(id), route("file"), None);
            };
            if let Some(r) = crate::files::check_signed(app, &job, name, &ctx.query) {
                return http::tag(r, route("file"), Some(id));
            }
            let r = crate::files::serve(app, &job, name, super::gen_param(&ctx), &ctx.headers).await;
            http::tag(r, route("file"), Some(id))
        }
        (_, ["_async", ..]) => {
            http::tag(http::oo(405, "not-supported", "use GET to poll or DELETE to cancel"), route("unknown"), None)
        }
        _ => interaction(app, &ctx, d),
    }
}

fn export_level(segs: &[&str]) -> Option<Level> {
    match segs {
        ["$export"] => Some(Level::System),
        ["Patient", "$export"] => Some(Level::Patient),
        ["Group", id, "$export"] => Some(Level::Group((*id).to_string())),
        _ => None,
    }
}

fn interaction(app: &Arc<App>, ctx: &Ctx, d: Dialect) -> Response {
    let route = format!("{}.kickoff", d.name());
    let is_async = has_pref(&ctx.prefs, "respond-async");
    let asked_mode = if d == Dialect::Aidbox { pref_value(&ctx.prefs, "async-mode") } else { None };
    let segs: Vec<&str> = ctx.rest.split('/').collect();
    let export = export_level(&segs).filter(|_| ctx.method == Method::GET || ctx.method == Method::POST);
    let has_fmt = ctx.param("_outputFormat").is_some()
        || (ctx.method == Method::POST && String::from_utf8_lossy(&ctx.body).contains("\"_outputFormat\""));
    let (job, mode_applied) = if let Some(level) = export {
        let redirect = asked_mode == Some("redirect");
        if redirect && has_fmt {
            return http::tag(
                http::oo(
                    400,
                    "invalid",
                    "_outputFormat selects the bulk manifest; it conflicts with async-mode=redirect",
                ),
                route,
                None,
            );
        }
        let mode = if redirect { Mode::Redirect } else { Mode::Manifest };
        match super::bulk::start_export(app, ctx, d, level, mode) {
            Ok((job, _)) => (job, redirect),
            Err(r) => return http::tag(r, route, None),
        }
    } else {
        let (status, body) = crate::facade::execute(app, ctx);
        if !is_async {
            return http::tag(http::fhir(status, &body), format!("{}.sync", d.name()), None);
        }
        if let Some(r) = app.kick_fault(ctx) {
            return http::tag(r, route, None);
        }
        let mode = match asked_mode {
            Some("redirect") => Mode::Redirect,
            _ => Mode::Bundle,
        };
        let job = app.start_job(ctx, d, Work::Answer { status, body }, mode, false);
        (job, asked_mode.is_some_and(|m| m == "redirect" || m == "bundle"))
    };
    let mut r = app.accepted(ctx, &status_path(&job), false);
    let mut applied = "respond-async".to_string();
    if mode_applied {
        if let Some(m) = asked_mode {
            applied.push_str(&format!(", async-mode={m}"));
        }
    }
    http::set_named(r.headers_mut(), "preference-applied", &applied);
    if d == Dialect::Aidbox {
        if let Some(url) = pref_value(&ctx.prefs, "callback-url") {
            crate::callback::spawn(app.clone(), job.clone(), url.to_string());
        }
    }
    http::tag(r, route, Some(&job.id))
}

async fn status(app: &Arc<App>, ctx: &Ctx, d: Dialect, id: &str) -> Response {
    let route = format!("{}.status", d.name());
    let Some(job) = app.jobs.get(id, d) else {
        return http::tag(unknown_job(id), route, None);
    };
    job.count("status");
    if let Some(r) = app.poll_fault(&job) {
        return http::tag(r, route, Some(id));
    }
    if d == Dialect::Aidbox {
        app.long_poll(&job).await;
    }
    let page = match page_param(ctx) {
        Ok(p) => p,
        Err(r) => return http::tag(r, route, Some(id)),
    };
    let r = match (job.phase(), job.mode) {
        (Phase::Cancelled, _) => unknown_job(id),
        (Phase::Running(_), _) | (_, Mode::Manifest) => super::bulk::status_answer(app, &job, d, page),
        (_, Mode::Redirect) => {
            let mut r = http::empty(303);
            let loc = format!("{}{}/result", app.main_origin, status_path(&job));
            http::set(r.headers_mut(), header::LOCATION, &loc);
            r
        }
        (phase, Mode::Bundle) => {
            let (status, body) = answer(app, &job, phase);
            http::fhir(200, &batch_response(status, body))
        }
    };
    http::tag(r, route, Some(id))
}

/// The synchronous status and body of a finished job.
fn answer(app: &App, job: &Job, phase: Phase) -> (u16, Value) {
    if phase == Phase::Failed {
        return (400, http::oo_value("error", "processing", "The operation failed (fault 'fail')"));
    }
    match &job.work {
        Work::Answer { status, body } => (*status, body.clone()),
        Work::Export(_) => {
            let gen = super::next_gen(job);
            match super::manifest_page(app, job, 1, gen) {
                Some(m) => (200, m),
                None => (500, http::oo_value("error", "exception", "manifest unavailable")),
            }
        }
    }
}

/// A `batch-response` Bundle whose single entry carries the real outcome.
pub fn batch_response(status: u16, body: Value) -> Value {
    let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    let mut entry = json!({"response": {"status": format!("{status} {reason}")}});
    if (200..300).contains(&status) {
        entry["resource"] = body;
    } else {
        entry["response"]["outcome"] = body;
    }
    json!({"resourceType":"Bundle","type":"batch-response","entry":[entry]})
}

fn result(app: &Arc<App>, d: Dialect, id: &str) -> Response {
    let route = format!("{}.result", d.name());
    let Some(job) = app.jobs.get(id, d) else {
        return http::tag(unknown_job(id), route, None);
    };
    job.count("result");
    let r = match job.phase() {
        Phase::Running(_) => http::oo(404, "not-found", "The result is not available yet; poll the status URL"),
        Phase::Cancelled => unknown_job(id),
        phase => {
            let (status, body) = answer(app, &job, phase);
            if matches!(job.work, Work::Export(_)) && status == 200 {
                http::json_with(200, "application/json", &body)
            } else {
                http::fhir(status, &body)
            }
        }
    };
    http::tag(r, route, Some(id))
}
