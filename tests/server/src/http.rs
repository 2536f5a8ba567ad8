//! Response helpers: OperationOutcomes, JSON bodies, Prefer parsing, stats tags.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

/// Route information a handler attaches to its response, so the request log can count it.
#[derive(Debug, Clone)]
pub struct Tag {
    /// Route name, e.g. `bulk.status`.
    pub route: String,
    /// Job id, when the request concerned a job.
    pub job: Option<String>,
}

/// Adds a [`Tag`] to a response.
pub fn tag(mut resp: Response, route: String, job: Option<&str>) -> Response {
    resp.extensions_mut().insert(Tag { route, job: job.map(str::to_string) });
    resp
}

/// The MIME type of FHIR JSON.
pub const FHIR_JSON: &str = "application/fhir+json";

/// A JSON response with the given content type.
pub fn json_with(status: u16, ctype: &str, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    set(r.headers_mut(), header::CONTENT_TYPE, ctype);
    r
}

/// A FHIR JSON response.
pub fn fhir(status: u16, body: &Value) -> Response {
    json_with(status, FHIR_JSON, body)
}

/// A response of `bytes` with content type `ctype`.
pub fn bytes(status: u16, ctype: &str, bytes: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    set(r.headers_mut(), header::CONTENT_TYPE, ctype);
    r
}

/// An empty response.
pub fn empty(status: u16) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// An OperationOutcome value with one issue carrying `diagnostics`.
pub fn oo_value(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({"resourceType":"OperationOutcome","issue":[{"severity":severity,"code":code,"diagnostics":diagnostics}]})
}

/// An OperationOutcome value with one issue carrying `details.text` (Medplum style).
pub fn oo_text(severity: &str, code: &str, text: &str) -> Value {
    json!({"resourceType":"OperationOutcome","issue":[{"severity":severity,"code":code,"details":{"text":text}}]})
}

/// An error OperationOutcome response.
pub fn oo(status: u16, code: &str, diagnostics: &str) -> Response {
    fhir(status, &oo_value("error", code, diagnostics))
}

/// Sets a header, ignoring values that are not valid header text.
pub fn set(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// Sets a header by name.
pub fn set_named(h: &mut HeaderMap, name: &'static str, value: &str) {
    set(h, header::HeaderName::from_static(name), value);
}

/// One `Prefer` token: name and optional value (quotes stripped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pref {
    /// Lower-cased token name.
    pub name: String,
    /// Value after `=`, if any.
    pub value: Option<String>,
}

/// All `Prefer` tokens across repeated headers and comma lists.
pub fn prefer(h: &HeaderMap) -> Vec<Pref> {
    h.get_all(header::HeaderName::from_static("prefer"))
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|tok| {
            // Parameters after ';' (RFC 7240) are not used by any dialect here.
            let tok = tok.split(';').next()?.trim();
            if tok.is_empty() {
                return None;
            }
            let (n, v) = match tok.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"').to_string())),
                None => (tok, None),
            };
            Some(Pref { name: n.to_ascii_lowercase(), value: v })
        })
        .collect()
}

/// Whether a token is present.
pub fn has_pref(p: &[Pref], name: &str) -> bool {
    p.iter().any(|t| t.name == name)
}

/// The value of a token.
pub fn pref_value<'a>(p: &'a [Pref], name: &str) -> Option<&'a str> {
    p.iter().find(|t| t.name == name).and_then(|t| t.value.as_deref())
}

/// `handling=lenient` was asked for.
pub fn lenient(p: &[Pref]) -> bool {
    pref_value(p, "handling") == Some("lenient")
}

/// The query string as `(name, value)` pairs.
pub fn query_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// A relative reference from the request path to `target` (path + query), e.g.
/// `../$export-poll-status?_jobId=1` from `/b/fhir/Patient/$export`.
pub fn relative_ref(from_path: &str, target: &str) -> String {
    let (tpath, tquery) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let from_dirs: Vec<&str> = from_path.split('/').collect();
    let from_dirs = &from_dirs[..from_dirs.len().saturating_sub(1)];
    let to: Vec<&str> = tpath.split('/').collect();
    let (to_dirs, to_last) = to.split_at(to.len().saturating_sub(1));
    let common = from_dirs.iter().zip(to_dirs).take_while(|(a, b)| a == b).count();
    let mut out = "../".repeat(from_dirs.len() - common);
    for seg in &to_dirs[common..] {
        out.push_str(seg);
        out.push('/');
    }
    out.push_str(to_last.first().copied().unwrap_or(""));
    if out.is_empty() || out.split('/').next().is_some_and(|s| s.contains(':')) {
        out.insert_str(0, "./");
    }
    if let Some(q) = tquery {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_refs() {
        assert_eq!(
            relative_ref("/b/fhir/$export", "/b/fhir/$export-poll-status?_jobId=1"),
            "$export-poll-status?_jobId=1"
        );
        assert_eq!(
            relative_ref("/b/fhir/Group/7/$export", "/b/fhir/$export-poll-status?x=1"),
            "../../$export-poll-status?x=1"
        );
        assert_eq!(relative_ref("/a/x", "/a/b/c"), "b/c");
    }

    #[test]
    fn prefer_tokens() {
        let mut h = HeaderMap::new();
        h.append("prefer", HeaderValue::from_static("respond-async, async-mode=redirect"));
        h.append("prefer", HeaderValue::from_static("callback-url=\"http://127.0.0.1:9/cb?a=b\""));
        let p = prefer(&h);
        assert!(has_pref(&p, "respond-async"));
        assert_eq!(pref_value(&p, "async-mode"), Some("redirect"));
        assert_eq!(pref_value(&p, "callback-url"), Some("http://127.0.0.1:9/cb?a=b"));
    }
}
