//! Medplum, in two forms:
//! - `/medplum/fhir/R4` answers as a real Medplum server does (`../shared/servers/medplum.md`):
//!   `$export` → `bulkdata/export/{id}` (Bulk Data style), every other async operation (async
//!   batch, `$expunge`, `$reindex`) → `job/{id}/status`; AsyncJob `accepted` → `active` → ...;
//!   relative `Binary/{id}` outputs; signed storage URLs on the FHIR origin.
//! - `/medplum-doc/fhir/R4` answers as the documentation (seeds 000, 002) describes it: every
//!   status URL is `AsyncJob/{id}`, always 200, `accepted` while running, storage-origin files.
//!
//! The job URLs are in [`super::medplum_job`], Binary and storage in [`super::medplum_files`].

use std::sync::Arc;

use axum::http::{header, Method};
use axum::response::Response;
use serde_json::{json, Value};

use super::medplum_files::{self as files, binary};
use super::medplum_job::{self as mj, mp_oo};
use super::status_path;
use crate::app::{App, Ctx};
use crate::data::{type_index, TYPES};
use crate::export::Level;
use crate::http::{self, has_pref};
use crate::jobs::{Dialect, Job, Mode, Work};

/// Handles a request under either Medplum base.
pub async fn handle(app: &Arc<App>, ctx: Ctx, d: Dialect) -> Response {
    let real = d == Dialect::Medplum;
    let segs: Vec<String> = ctx.rest.split('/').map(str::to_string).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = ctx.method.clone();
    let (get, post, delete) = (m == Method::GET, m == Method::POST, m == Method::DELETE);
    match segs.as_slice() {
        ["$export"] if get || post => export(app, &ctx, d, Level::System),
        ["Patient", "$export"] if get || post => export(app, &ctx, d, Level::Patient),
        ["Group", id, "$export"] if get || post => export(app, &ctx, d, Level::Group((*id).to_string())),
        ["$reindex"] | [_, "$reindex"] if post => reindex(app, &ctx, d, &segs),
        [_, _, "$expunge"] if post && real => generic(app, &ctx, d, Value::Null, 200),
        [""] if post && real => batch(app, &ctx, d),
        ["AsyncJob"] if post => create(app, &ctx, d),
        ["AsyncJob", id] if get => mj::read(app, d, id),
        ["AsyncJob", id] if delete => mj::delete_resource(app, d, id),
        ["AsyncJob", id, "$cancel"] if post => mj::cancel_route(app, d, id, false),
        ["job", id, "status"] if get && real => mj::job_status(app, d, id),
        ["job", id, "status"] if delete && real => mj::cancel_route(app, d, id, true),
        ["bulkdata", "export", id] if get && real => mj::export_status(app, d, id),
        ["bulkdata", "export", id] if delete && real => mj::export_delete(app, d, id),
        ["Binary", id] if get && real => binary(app, &ctx, id).await,
        _ => http::tag(
            http::fhir(404, &mp_oo(Some("not-found"), "error", "not-found", "Not found")),
            format!("{}.unknown", d.name()),
            None,
        ),
    }
}

fn export(app: &Arc<App>, ctx: &Ctx, d: Dialect, level: Level) -> Response {
    let route = format!("{}.kickoff", d.name());
    match super::bulk::start_export(app, ctx, d, level, Mode::Manifest) {
        Ok((job, _)) => {
            files::bind(app, &job);
            http::tag(app.accepted(ctx, &status_path(&job), true), route, Some(&job.id))
        }
        Err(r) => http::tag(r, route, None),
    }
}

/// Starts a non-export job whose answer is `body` (an output `Parameters`, a Bundle served
/// as `Binary`, or null for no output) or, when `status` ≥ 400, the OperationOutcome `body`.
fn generic(app: &Arc<App>, ctx: &Ctx, d: Dialect, body: Value, status: u16) -> Response {
    let route = format!("{}.kickoff", d.name());
    if let Some(r) = app.kick_fault(ctx) {
        return http::tag(r, route, None);
    }
    let job = app.start_job(ctx, d, Work::Answer { status, body }, Mode::Bundle, false);
    files::bind(app, &job);
    http::tag(app.accepted(ctx, &status_path(&job), true), route, Some(&job.id))
}

/// `POST [base]/` with a batch or transaction Bundle: async with `Prefer: respond-async`
/// (medplum.md §4), else answered at once. A bad Bundle fails the job, not the kick-off.
fn batch(app: &Arc<App>, ctx: &Ctx, d: Dialect) -> Response {
    let v = match crate::app::json_body(&ctx.body) {
        Ok(v) => v,
        Err(r) => return http::tag(r, format!("{}.kickoff", d.name()), None),
    };
    let kind = v["type"].as_str().unwrap_or("");
    let bad = |text: String| (400, mp_oo(None, "error", "invalid", &text));
    let (status, body) = if v["resourceType"] != "Bundle" {
        bad(format!("Incorrect resource type: expected Bundle, but found {}", v["resourceType"].as_str().unwrap_or("")))
    } else if !matches!(kind, "batch" | "transaction") {
        bad(format!("Unrecognized bundle type: {kind}"))
    } else if v["entry"].as_array().map_or(0, Vec::len) == 0 {
        bad("Missing bundle entries".into())
    } else {
        crate::facade::execute(app, ctx)
    };
    if !has_pref(&ctx.prefs, "respond-async") {
        return http::tag(http::fhir(status, &body), format!("{}.sync", d.name()), None);
    }
    generic(app, ctx, d, body, status)
}

/// `$reindex` (system or `{Type}/$reindex`): output shaped like Medplum's admin reindex.
fn reindex(app: &Arc<App>, ctx: &Ctx, d: Dialect, segs: &[&str]) -> Response {
    if !ctx.body.iter().all(u8::is_ascii_whitespace) {
        if let Err(r) = crate::app::json_body(&ctx.body) {
            return http::tag(r, format!("{}.kickoff", d.name()), None);
        }
    }
    let types: Vec<usize> = match segs {
        [t, _] => type_index(t).into_iter().collect(),
        _ => (0..TYPES.len()).collect(),
    };
    let results: Vec<Value> = types
        .iter()
        .map(|&t| {
            json!({"name":"result","part":[
                {"name":"resourceType","valueCode":TYPES[t]},
                {"name":"count","valueInteger":app.ds.count(t)},
                {"name":"elapsedTime","valueQuantity":{"value":1,"code":"ms"}}]})
        })
        .collect();
    generic(app, ctx, d, json!({"resourceType":"Parameters","parameter":results}), 200)
}

/// `POST AsyncJob` (medplum.md §3, "create AsyncJob directly"): 201 and a job no worker ever
/// takes, so it stays `accepted` until cancelled or deleted.
fn create(app: &Arc<App>, ctx: &Ctx, d: Dialect) -> Response {
    let route = format!("{}.create", d.name());
    let v = match crate::app::json_body(&ctx.body) {
        Ok(v) => v,
        Err(r) => return http::tag(r, route, None),
    };
    if v["resourceType"] != "AsyncJob" || v["status"] != "accepted" {
        let oo = mp_oo(None, "error", "invalid", "Only an AsyncJob with status 'accepted' can be created here");
        return http::tag(http::fhir(400, &oo), route, None);
    }
    let mut faults = ctx.faults.clone();
    faults.never = true;
    faults.queued = Some(u64::MAX);
    let request = v["request"].as_str().map_or_else(|| ctx.url(app), str::to_string);
    let job = Arc::new(Job::new(
        app.jobs.new_id(),
        d,
        ctx.base.clone(),
        ctx.prefix.clone(),
        faults,
        request,
        0,
        Work::Answer { status: 200, body: Value::Null },
        Mode::Bundle,
        false,
        app.cfg.retry_after,
    ));
    app.jobs.insert(job.clone());
    let mut r = http::fhir(201, &mj::resource(app, &job, d));
    http::set(r.headers_mut(), header::LOCATION, &format!("{}{}/AsyncJob/{}", app.main_origin, job.base, job.id));
    http::tag(r, route, Some(&job.id))
}
