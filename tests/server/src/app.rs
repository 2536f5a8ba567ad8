//! Shared state, request context and the dispatcher of the main origin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::Response;
use serde_json::{json, Value};

use crate::admin::{AccessLog, Stats};
use crate::auth::Auth;
use crate::config::Config;
use crate::data::Dataset;
use crate::dialects;
use crate::faults::Faults;
use crate::http::{self, Pref, Tag};
use crate::jobs::{Dialect, Job, Jobs, Mode, Phase, Work};

/// Which origin a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The FHIR servers.
    Main,
    /// The presigned-storage stand-in.
    Storage,
}

impl Origin {
    /// `main` or `storage`.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Main => "main",
            Origin::Storage => "storage",
        }
    }
}

/// Everything a handler needs.
#[derive(Debug)]
pub struct App {
    /// Flags.
    pub cfg: Config,
    /// Parsed `--faults`.
    pub default_faults: Faults,
    /// The synthetic data set.
    pub ds: Arc<Dataset>,
    /// Jobs.
    pub jobs: Jobs,
    /// `http://127.0.0.1:PORT` of the main origin.
    pub main_origin: String,
    /// `http://127.0.0.1:PORT2` of the storage origin.
    pub storage_origin: String,
    /// Request statistics.
    pub stats: Stats,
    /// Bearer tokens.
    pub auth: Auth,
    /// `kick429` counters per fault spec.
    pub kick_counts: Mutex<HashMap<String, u64>>,
    /// `--log` writer.
    pub log: Option<AccessLog>,
    /// Client for callbacks.
    pub http: reqwest::Client,
    /// What `$bulk-publish` publishes now (`POST /_admin/publish` advances it).
    pub publication: crate::dialects::publish::Publication,
}

/// One request, pre-parsed.
#[derive(Debug)]
pub struct Ctx {
    /// Method.
    pub method: Method,
    /// Path as received.
    pub path: String,
    /// Path after the dialect base, without leading `/` (e.g. `Patient/$export`).
    pub rest: String,
    /// Raw query string (may be empty).
    pub query: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
    /// `/_f/{SPEC}` prefix as received, or empty.
    pub prefix: String,
    /// Prefix + dialect base path.
    pub base: String,
    /// Effective faults (server default + prefix).
    pub faults: Faults,
    /// `Prefer` tokens.
    pub prefs: Vec<Pref>,
}

impl Ctx {
    /// The full request URL.
    pub fn url(&self, app: &App) -> String {
        if self.query.is_empty() {
            format!("{}{}", app.main_origin, self.path)
        } else {
            format!("{}{}?{}", app.main_origin, self.path, self.query)
        }
    }

    /// Query pairs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        http::query_pairs(&self.query)
    }

    /// One query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        self.pairs().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

impl App {
    /// Bearer auth is on (`--token` or `--jwks`).
    pub fn auth_on(&self) -> bool {
        self.auth.enabled()
    }

    /// Retry-After value for a job (None when `no-retry`).
    pub fn retry_after(&self, job: &Job) -> Option<String> {
        if job.faults.no_retry {
            return None;
        }
        let secs = job.faults.retry.unwrap_or(job.retry_after);
        Some(if job.faults.retry_date { crate::time::http_date_in(secs) } else { secs.to_string() })
    }

    /// Creates and stores a job from a kick-off.
    pub fn start_job(
        self: &Arc<Self>,
        ctx: &Ctx,
        dialect: Dialect,
        work: Work,
        mode: Mode,
        separate_status: bool,
    ) -> Arc<Job> {
        let retry = if dialect == Dialect::Oracle { self.cfg.oracle_retry_after } else { self.cfg.retry_after };
        let job = Arc::new(Job::new(
            self.jobs.new_id(),
            dialect,
            ctx.base.clone(),
            ctx.prefix.clone(),
            ctx.faults.clone(),
            if dialect == Dialect::Medplum { dialects::medplum_job::request_of(self, ctx) } else { ctx.url(self) },
            ctx.faults.ms.unwrap_or(self.cfg.job_ms),
            work,
            mode,
            separate_status,
            retry,
        ));
        self.jobs.insert(job.clone());
        job
    }

    /// `kick429=N` / `kick429ms=N`: the first N kick-offs with this spec answer 429.
    pub fn kick_fault(&self, ctx: &Ctx) -> Option<Response> {
        let f = &ctx.faults;
        let (limit, name) = if f.kick429ms > 0 { (f.kick429ms, "kick429ms") } else { (f.kick429, "kick429") };
        if limit == 0 {
            return None;
        }
        let key = format!("{}|{}", self.cfg.faults, ctx.prefix);
        let mut m = self.kick_counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        let retry = if f.kick429ms > 0 {
            // An absolute time in epoch milliseconds (seen on a real Bulk Data server, issue 10 §2).
            let secs = i64::try_from(f.retry.unwrap_or(2)).unwrap_or(i64::MAX / 2000);
            crate::time::now_ms().saturating_add(secs.saturating_mul(1000)).to_string()
        } else {
            "1".to_string()
        };
        let mut r = http::oo(429, "throttled", &format!("Another export is running; retry later (fault '{name}')"));
        http::set(r.headers_mut(), header::RETRY_AFTER, &retry);
        Some(r)
    }

    /// Status-poll faults (counts the poll): ratelimit, e500, e503html, e429, e429date.
    pub fn poll_fault(&self, job: &Job) -> Option<Response> {
        let f = &job.faults;
        let (n, over_rate) = {
            let mut st = job.lock();
            st.polls += 1;
            let sec = crate::time::now_ms() / 1000;
            if st.window.0 == sec {
                st.window.1 += 1;
            } else {
                st.window = (sec, 1);
            }
            (st.polls, f.ratelimit > 0 && st.window.1 > f.ratelimit)
        };
        let every = |k: u64| k > 0 && n % k == 0;
        let secs = f.retry.unwrap_or(job.retry_after).to_string();
        if over_rate {
            let mut r = http::oo(429, "throttled", "Too many status requests (fault 'ratelimit')");
            http::set(r.headers_mut(), header::RETRY_AFTER, &secs);
            return Some(r);
        }
        if every(f.e500) {
            return Some(http::oo(500, "transient", "Temporary failure, retry (fault 'e500')"));
        }
        if every(f.e503html) {
            let mut r = Response::new(Body::from(
                "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>\n",
            ));
            *r.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
            http::set(r.headers_mut(), header::CONTENT_TYPE, "text/html");
            return Some(r);
        }
        if every(f.e429) || every(f.e429date) {
            let mut r = http::oo(429, "throttled", "Too many requests (fault 'e429')");
            let v = if every(f.e429) { secs } else { crate::time::http_date_in(f.retry.unwrap_or(job.retry_after)) };
            http::set(r.headers_mut(), header::RETRY_AFTER, &v);
            return Some(r);
        }
        None
    }

    /// A 202 kick-off answer pointing at `status_path` (absolute path incl. query) per faults
    /// `relative`, `noloc`, `ooloc`. `oo_always` adds the OperationOutcome body (Medplum).
    pub fn accepted(&self, ctx: &Ctx, status_path: &str, oo_always: bool) -> Response {
        let abs = format!("{}{}", self.main_origin, status_path);
        let f = &ctx.faults;
        let loc = if f.relative { http::relative_ref(&ctx.path, status_path) } else { abs.clone() };
        let mut r = if f.ooloc || oo_always {
            let mut v = http::oo_text("information", "informational", "Accepted");
            v["id"] = json!("accepted");
            v["issue"][0]["diagnostics"] = json!(abs);
            http::fhir(202, &v)
        } else {
            http::empty(202)
        };
        if !f.ooloc {
            let name = if f.noloc { header::LOCATION } else { header::CONTENT_LOCATION };
            http::set(r.headers_mut(), name, &loc);
        }
        r
    }

    /// Holds a status GET until the job changes phase or `--long-poll-ms` passes.
    pub async fn long_poll(&self, job: &Job) {
        if self.cfg.long_poll_ms == 0 {
            return;
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(self.cfg.long_poll_ms);
        let notified = job.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !matches!(job.phase(), Phase::Running(_)) {
            return;
        }
        let until = job.done_at().map(tokio::time::Instant::from_std).map_or(deadline, |d| d.min(deadline));
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(until) => {}
        }
    }
}

/// Entry point of the main origin: CORS, stats, log, dispatch.
pub async fn main_entry(State(app): State<Arc<App>>, req: Request) -> Response {
    entry(app, req, Origin::Main).await
}

/// Entry point of the storage origin.
pub async fn storage_entry(State(app): State<Arc<App>>, req: Request) -> Response {
    entry(app, req, Origin::Storage).await
}

async fn entry(app: Arc<App>, req: Request, origin: Origin) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path_q = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    let headers = parts.headers.clone();
    let mut resp = if method == Method::OPTIONS {
        http::tag(http::empty(204), format!("{}.preflight", origin.name()), None)
    } else {
        match axum::body::to_bytes(body, 64 << 20).await {
            Err(_) => http::oo(413, "too-long", "request body too large or unreadable"),
            Ok(bytes) => match origin {
                Origin::Main => dispatch(&app, parts.method, &parts.uri, parts.headers, bytes).await,
                Origin::Storage => crate::files::storage(&app, &parts.method, &parts.uri, &parts.headers).await,
            },
        }
    };
    let tag = resp.extensions().get::<Tag>().cloned();
    // The admin endpoints are not counted, so tests can read stats without disturbing them.
    let admin = tag.as_ref().is_some_and(|t| t.route.starts_with("admin."));
    if !admin {
        app.stats.record(origin, &method, &path_q, &headers, tag.as_ref(), resp.status().as_u16());
        resp = count_body(&app, origin, tag.as_ref(), method == Method::HEAD, resp);
    }
    if let Some(log) = &app.log {
        log.write(origin, &method, &path_q, resp.status().as_u16(), started.elapsed());
    }
    cors(&app, &headers, &mut resp, method == Method::OPTIONS);
    resp
}

/// Counts the response body bytes into the stats as they are written (at once when the size is
/// known; HEAD bodies are never sent).
fn count_body(app: &Arc<App>, origin: Origin, tag: Option<&Tag>, head: bool, resp: Response) -> Response {
    use axum::body::HttpBody;
    use futures_util::StreamExt;
    let route = tag.map_or_else(|| format!("{}.other", origin.name()), |t| t.route.clone());
    if head {
        return resp;
    }
    if let Some(n) = resp.body().size_hint().exact() {
        app.stats.add_bytes(&route, n);
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let app = app.clone();
    let s = body.into_data_stream().inspect(move |r| {
        if let Ok(b) = r {
            app.stats.add_bytes(&route, b.len() as u64);
        }
    });
    Response::from_parts(parts, Body::from_stream(s))
}

fn cors(app: &App, req: &HeaderMap, resp: &mut Response, preflight: bool) {
    let h = resp.headers_mut();
    let origin = req.get(header::ORIGIN).and_then(|v| v.to_str().ok()).unwrap_or("*").to_string();
    http::set(h, header::ACCESS_CONTROL_ALLOW_ORIGIN, &origin);
    if origin != "*" {
        http::set(h, header::VARY, "Origin");
    }
    if !app.cfg.no_expose_headers {
        http::set(
            h,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            "Content-Location, Location, Retry-After, X-Progress, Expires, Preference-Applied, X-Export-Status, ETag, Last-Modified, Accept-Ranges, Content-Range",
        );
    }
    if preflight {
        http::set(h, header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, DELETE, OPTIONS");
        http::set(
            h,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Prefer, Content-Type, Accept, Range, If-Range",
        );
        http::set(h, header::ACCESS_CONTROL_MAX_AGE, "600");
    }
}

/// Splits an optional `/_f/{SPEC}` prefix off a path: (prefix as received, decoded spec, rest).
pub fn split_prefix(path: &str) -> (String, String, String) {
    if let Some(after) = path.strip_prefix("/_f/") {
        let (spec, rest) = after.split_once('/').unwrap_or((after, ""));
        let decoded = percent_encoding::percent_decode_str(spec).decode_utf8_lossy().into_owned();
        return (format!("/_f/{spec}"), decoded, format!("/{rest}"));
    }
    (String::new(), String::new(), path.to_string())
}

async fn dispatch(app: &Arc<App>, method: Method, uri: &axum::http::Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    match (&method, path.as_str()) {
        (&Method::GET, "/_admin/stats") => {
            return http::tag(app.stats.snapshot(&app.jobs, app.auth.stats()), "admin.stats".into(), None)
        }
        (&Method::GET, "/_admin/attachments") => {
            return http::tag(dialects::attach::listing(app), "admin.attachments".into(), None);
        }
        (&Method::POST, "/_admin/reset") => {
            app.stats.reset();
            app.auth.reset_stats();
            app.jobs.reset_counts();
            app.publication.reset();
            return http::tag(
                http::json_with(200, "application/json", &json!({"reset": true})),
                "admin.reset".into(),
                None,
            );
        }
        (&Method::POST, "/_admin/publish") => {
            let step = app.publication.advance();
            return http::tag(
                http::json_with(200, "application/json", &json!({"step": step})),
                "admin.publish".into(),
                None,
            );
        }
        (&Method::GET, "/" | "") => {
            return http::tag(index(app), "index".into(), None);
        }
        _ => {}
    }
    let (prefix, spec, rest_path) = split_prefix(&path);
    let mut faults = app.default_faults.clone();
    if let Err(e) = faults.apply(&spec) {
        return http::oo(400, "invalid", &format!("bad fault spec in path: {e}"));
    }
    if rest_path == "/auth/token" {
        let r = if method == Method::POST {
            app.auth.token_endpoint(app, &prefix, &faults, &headers, &body)
        } else {
            let mut r = http::json_with(
                405,
                "application/json",
                &json!({"error": "invalid_request", "error_description": "the token endpoint takes POST"}),
            );
            http::set(r.headers_mut(), header::ALLOW, "POST");
            r
        };
        return http::tag(r, "auth.token".into(), None);
    }
    if rest_path.starts_with("/storage/") {
        // A real Medplum's signed storage URLs live on the FHIR origin; the signature is the credential.
        return dialects::medplum_files::storage(app, &method, uri, &headers).await;
    }
    let Some((dialect, base_len)) = dialects::match_base(&rest_path) else {
        return http::tag(http::oo(404, "not-found", &format!("no FHIR base at {path}")), "unknown".into(), None);
    };
    let base = format!("{prefix}{}", &rest_path[..base_len]);
    let rest = rest_path[base_len..].trim_start_matches('/').to_string();
    let prefs = http::prefer(&headers);
    let ctx = Ctx { method, path: path.clone(), rest, query, headers, body, prefix, base, faults, prefs };
    // Discovery documents are public, like on real servers.
    if ctx.rest == ".well-known/smart-configuration" || ctx.rest == "metadata" {
        return http::tag(dialects::discovery(app, &ctx, dialect), format!("{}.discovery", dialect.name()), None);
    }
    if let Err(r) = app.auth.check(&ctx.headers) {
        return http::tag(r, format!("{}.unauthorized", dialect.name()), None);
    }
    dialects::handle(app, ctx, dialect).await
}

fn index(app: &App) -> Response {
    let o = &app.main_origin;
    http::json_with(
        200,
        "application/json",
        &json!({
            "server": "fhir-async-testserver",
            "storage": app.storage_origin,
            "bases": {
                "bulk": format!("{o}/bulk/fhir"),
                "healthconnect": format!("{o}/healthconnect/fhir"),
                "oracle": format!("{o}/oracle/r4/tenant1"),
                "medplum": format!("{o}/medplum/fhir/R4"),
                "medplum-doc": format!("{o}/medplum-doc/fhir/R4"),
                "aidbox": format!("{o}/aidbox/fhir"),
                "r5": format!("{o}/r5/fhir"),
                "stu4": format!("{o}/stu4/fhir"),
                "attach": format!("{o}/attach/fhir"),
            },
            "faults": format!("{o}/_f/{{SPEC}}/bulk/fhir (see docs/testserver.md)"),
            "token_endpoint": format!("{o}/auth/token"),
            "patients": app.ds.patients(),
        }),
    )
}

/// Reads a JSON body, mapping errors to a 400 OperationOutcome.
pub fn json_body(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| http::oo(400, "invalid", &format!("request body is not valid JSON: {e}")))
}
