//! A tiny synchronous FHIR facade over the synthetic data, used by the async-interaction
//! dialects: search, read, transaction/batch, `$reindex` and other operations.

use serde_json::{json, Value};

use axum::http::Method;

use crate::app::{App, Ctx};
use crate::data::{type_index, Dataset, TYPES};
use crate::http::{oo_value, query_pairs};

/// Runs the interaction synchronously: (HTTP status, body).
pub fn execute(app: &App, ctx: &Ctx) -> (u16, Value) {
    let segs: Vec<&str> = ctx.rest.split('/').filter(|s| !s.is_empty()).collect();
    let m = &ctx.method;
    if let Some(op) = segs.last().filter(|s| s.starts_with('$')) {
        if *m != Method::GET && *m != Method::POST {
            return (405, oo_value("error", "not-supported", "operations take GET or POST"));
        }
        if *m == Method::POST && !ctx.body.iter().all(u8::is_ascii_whitespace) {
            if let Err(e) = serde_json::from_slice::<Value>(&ctx.body) {
                return (400, oo_value("error", "invalid", &format!("request body is not valid JSON: {e}")));
            }
        }
        return operation(app, &segs, op);
    }
    match (m.clone(), segs.as_slice()) {
        (Method::POST, []) => transaction(&ctx.body),
        (Method::GET, [ty]) => search(app, ty, &ctx.query),
        (Method::GET, [ty, id]) => read(app, ty, id),
        _ => (
            404,
            oo_value("error", "not-supported", &format!("{} {} is not supported by this server", ctx.method, ctx.path)),
        ),
    }
}

fn operation(app: &App, segs: &[&str], op: &str) -> (u16, Value) {
    let ds = &app.ds;
    match op {
        "$reindex" => {
            let n: u64 = match segs.first().and_then(|t| type_index(t)) {
                Some(t) if segs.len() > 1 => ds.count(t),
                _ => (0..TYPES.len()).map(|t| ds.count(t)).sum(),
            };
            (
                200,
                json!({"resourceType":"Parameters","parameter":[{"name":"result","valueString":format!("reindexed {n} resources")}]}),
            )
        }
        _ => (
            200,
            json!({"resourceType":"Parameters","parameter":[{"name":"result","valueString":format!("{op} completed")}]}),
        ),
    }
}

fn read(app: &App, ty: &str, id: &str) -> (u16, Value) {
    let Some(t) = type_index(ty) else {
        return (404, oo_value("error", "not-found", &format!("Unknown resource type '{ty}'")));
    };
    let idx = id
        .strip_prefix(ty)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|i| *i < app.ds.count(t));
    match idx {
        Some(i) => (200, app.ds.resource_json(t, i)),
        None => (404, oo_value("error", "not-found", &format!("Resource {ty}/{id} is not known"))),
    }
}

fn search(app: &App, ty: &str, query: &str) -> (u16, Value) {
    let ds: &Dataset = &app.ds;
    let Some(t) = type_index(ty) else {
        return (404, oo_value("error", "not-found", &format!("Unknown resource type '{ty}'")));
    };
    let mut count = 20u64;
    let mut name: Option<String> = None;
    let mut attr: Option<Vec<String>> = None;
    let mut id: Option<String> = None;
    let mut patient: Option<u32> = None;
    for (k, v) in query_pairs(query) {
        match k.as_str() {
            "_count" => match v.parse() {
                Ok(c) => count = u64::min(c, 1000),
                Err(_) => return (400, oo_value("error", "invalid", "_count must be a non-negative integer")),
            },
            "_id" => id = Some(v),
            "name" if t == 0 => name = Some(v.to_lowercase()),
            "patient" | "subject" if t != 0 => match v.rsplit('-').next().and_then(|n| n.parse().ok()) {
                Some(p) => patient = Some(p),
                None => return (400, oo_value("error", "invalid", &format!("bad reference '{v}'"))),
            },
            "_format" | "_pretty" | "_summary" | "_total" => {}
            p if p == Dataset::attr_param(t) => attr = Some(v.split(',').map(str::to_string).collect()),
            other => {
                return (
                    400,
                    oo_value(
                        "error",
                        "not-supported",
                        &format!("Unknown search parameter '{other}' for resource type '{ty}'"),
                    ),
                )
            }
        }
    }
    let matches = |i: u64| -> bool {
        if let Some(id) = &id {
            if *id != format!("{ty}-{i}") {
                return false;
            }
        }
        if let Some(a) = &attr {
            if !a.iter().any(|v| v == ds.attr(t, i)) {
                return false;
            }
        }
        if let Some(n) = &name {
            let (f, g) = ds.patient_name(i);
            if !f.to_lowercase().starts_with(n.as_str()) && !g.to_lowercase().starts_with(n.as_str()) {
                return false;
            }
        }
        true
    };
    let range = match patient {
        Some(p) if p < ds.patients() => ds.start(t, p)..ds.start(t, p + 1),
        Some(_) => 0..0,
        None => 0..ds.count(t),
    };
    let mut total = 0u64;
    let mut entries = Vec::new();
    for i in range {
        if matches(i) {
            total += 1;
            if (entries.len() as u64) < count {
                entries.push(json!({"fullUrl": format!("{ty}/{ty}-{i}"), "resource": ds.resource_json(t, i), "search": {"mode": "match"}}));
            }
        }
    }
    (
        200,
        json!({"resourceType":"Bundle","type":"searchset","total":total,"link":[{"relation":"self","url":format!("{ty}?{query}")}],"entry":entries}),
    )
}

fn transaction(body: &[u8]) -> (u16, Value) {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return (400, oo_value("error", "invalid", &format!("request body is not valid JSON: {e}"))),
    };
    let kind = v["type"].as_str().unwrap_or("");
    if v["resourceType"] != "Bundle" || !matches!(kind, "transaction" | "batch") {
        return (400, oo_value("error", "invalid", "POST to the base requires a Bundle of type transaction or batch"));
    }
    let mut out = Vec::new();
    for (n, e) in v["entry"].as_array().into_iter().flatten().enumerate() {
        let method = e["request"]["method"].as_str().unwrap_or("");
        let url = e["request"]["url"].as_str().unwrap_or("");
        let ty = e["resource"]["resourceType"].as_str().unwrap_or_else(|| url.split('/').next().unwrap_or(""));
        let resp = match method {
            "POST" => {
                json!({"status":"201 Created","location":format!("{ty}/new-{n}/_history/1"),"etag":"W/\"1\""})
            }
            "PUT" | "PATCH" => {
                json!({"status":"200 OK","location":format!("{url}/_history/2"),"etag":"W/\"2\""})
            }
            "DELETE" => json!({"status":"204 No Content"}),
            "GET" | "HEAD" => json!({"status":"200 OK"}),
            _ => {
                if kind == "transaction" {
                    return (
                        400,
                        oo_value("error", "invalid", &format!("entry {n}: request.method '{method}' is not valid")),
                    );
                }
                json!({"status":"400 Bad Request","outcome":oo_value("error","invalid","bad request.method")})
            }
        };
        out.push(json!({"response": resp}));
    }
    let rtype = if kind == "transaction" { "transaction-response" } else { "batch-response" };
    (200, json!({"resourceType":"Bundle","type":rtype,"entry":out}))
}
