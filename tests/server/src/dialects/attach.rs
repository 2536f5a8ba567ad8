//! The attachments dialect (`/attach/fhir`; issue 24, protocol M): a bulk export whose files
//! hold `DocumentReference` and `DiagnosticReport` resources with attachments of every kind a
//! client meets: `Binary/{id}` (relative, resolved against the FHIR base, M3), an absolute URL
//! on the FHIR origin, an absolute URL on the storage origin (served without a token, M4), a
//! Binary answered as FHIR JSON (M5), a slow one, one that always fails, one over any sensible
//! size limit (M6), inline `data` (never fetched, M2), the same URL twice, and one without
//! `contentType`. Kick-off, status, files and cancel are the bulk dialect's; the manifest always
//! says `requiresAccessToken: true`. `GET /_admin/attachments` lists what every attachment
//! serves (size, base64 SHA-1), so tests need not hard-code it.

use std::sync::{Arc, OnceLock};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method};
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};

use crate::app::{App, Ctx};
use crate::export::{FileBody, FileEntry, FileKind};
use crate::faults::Faults;
use crate::http;

/// The resource types the attachments export holds, in file order.
pub const TYPES: [&str; 2] = ["DocumentReference", "DiagnosticReport"];

/// How long `Binary/att-slow` waits before it answers, in milliseconds.
pub const SLOW_MS: u64 = 1000;

/// The `size` `DocumentReference/docref-big` declares for `Binary/att-big` (20 MiB).
pub const BIG_DECLARED: u64 = 20 * 1024 * 1024;

/// The bytes `Binary/att-big` actually serves (6 MiB, with `Content-Length`).
pub const BIG_SERVED: usize = 6 * 1024 * 1024;

/// The diagnostics of the OperationOutcome `Binary/att-fail` answers with (500).
pub const FAIL_TEXT: &str = "attachment store unavailable";

/// What an attachment URL does when fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers its bytes at once.
    Ok,
    /// Answers its bytes after [`SLOW_MS`].
    Slow,
    /// Always 500 + OperationOutcome ([`FAIL_TEXT`]).
    Fail,
    /// Declares [`BIG_DECLARED`] bytes, serves [`BIG_SERVED`].
    Big,
    /// Always a FHIR JSON `Binary` (`data` base64), whatever the `Accept`.
    Json,
    /// Carries `data`: no URL, never fetched.
    Inline,
}

impl Behaviour {
    /// `ok`, `slow`, `fail`, `big`, `json` or `inline`.
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Ok => "ok",
            Behaviour::Slow => "slow",
            Behaviour::Fail => "fail",
            Behaviour::Big => "big",
            Behaviour::Json => "json",
            Behaviour::Inline => "inline",
        }
    }
}

/// One attachment of the export.
#[derive(Debug)]
pub struct Att {
    /// Id (`Binary/{id}`; on the storage origin `attachments/{id}.txt`).
    pub id: &'static str,
    /// The `contentType` the resource declares (`None`: the element is absent).
    pub declared_type: Option<&'static str>,
    /// The `Content-Type` of the raw answer (the `Binary.contentType` of the JSON form).
    pub served_type: &'static str,
    /// Where its URL points.
    pub url: UrlKind,
    /// What a fetch gets.
    pub behaviour: Behaviour,
    /// The resources that carry it (`Type/id`).
    pub referenced_by: &'static [&'static str],
}

/// The form of an attachment's `url` in the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlKind {
    /// `Binary/{id}`, relative to the FHIR base.
    Relative,
    /// `{main}{base}/Binary/{id}`.
    AbsoluteMain,
    /// `{storage}/attachments/{id}.txt`.
    Storage,
    /// No `url`: `data` inline.
    None,
}

/// Every attachment, in the order the listing gives them.
pub const ATTACHMENTS: [Att; 10] = [
    att(
        "att-text",
        Some("text/plain"),
        UrlKind::Relative,
        Behaviour::Ok,
        &["DocumentReference/docref-text-1", "DocumentReference/docref-text-2"],
    ),
    att("att-pdf", Some("application/pdf"), UrlKind::AbsoluteMain, Behaviour::Ok, &["DocumentReference/docref-pdf"]),
    att("att-storage", Some("text/plain"), UrlKind::Storage, Behaviour::Ok, &["DocumentReference/docref-storage"]),
    att("att-json", Some("text/html"), UrlKind::Relative, Behaviour::Json, &["DiagnosticReport/diagrep-json"]),
    att("att-slow", Some("text/plain"), UrlKind::Relative, Behaviour::Slow, &["DocumentReference/docref-slow"]),
    att("att-fail", Some("text/plain"), UrlKind::Relative, Behaviour::Fail, &["DocumentReference/docref-fail"]),
    att("att-big", Some("application/pdf"), UrlKind::Relative, Behaviour::Big, &["DocumentReference/docref-big"]),
    att("att-inline", Some("text/plain"), UrlKind::None, Behaviour::Inline, &["DocumentReference/docref-inline"]),
    att("att-notype", None, UrlKind::Relative, Behaviour::Ok, &["DocumentReference/docref-notype"]),
    att("att-report", Some("text/plain"), UrlKind::Relative, Behaviour::Ok, &["DiagnosticReport/diagrep-text"]),
];

const fn att(
    id: &'static str,
    declared_type: Option<&'static str>,
    url: UrlKind,
    behaviour: Behaviour,
    referenced_by: &'static [&'static str],
) -> Att {
    let served_type = match declared_type {
        Some(t) => t,
        None => "application/octet-stream",
    };
    Att { id, declared_type, served_type, url, behaviour, referenced_by }
}

const TEXT: &[u8] = b"Progress note\nPatient: Patient-0\nDate: 2025-05-30\n\nThe patient is well. Blood pressure 120/80 mmHg.\nFollow up in six months.\n";
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
const STORAGE: &[u8] =
    b"Discharge summary\nPatient: Patient-2\nStored on the second origin; no token is needed (or wanted) here.\n";
const HTML: &[u8] = b"<html><body><h1>Lipid panel</h1><p>Total cholesterol 180 mg/dL</p></body></html>\n";
const SLOW: &[u8] = b"Slow note: this attachment answers after about one second.\n";
const INLINE: &[u8] = b"Inline note: this attachment carries its data and is never fetched.\n";
const REPORT: &[u8] = b"Radiology report\nChest X-ray: no acute findings.\n";

const fn octets() -> [u8; 256] {
    let mut a = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        a[i] = i as u8;
        i += 1;
    }
    a
}
const NOTYPE: [u8; 256] = octets();

/// The 6 MiB of `Binary/att-big`: a PDF header, then deterministic bytes.
fn big() -> &'static [u8] {
    static BIG: OnceLock<Vec<u8>> = OnceLock::new();
    BIG.get_or_init(|| {
        let mut v = Vec::with_capacity(BIG_SERVED);
        v.extend_from_slice(b"%PDF-1.4\n");
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        while v.len() < BIG_SERVED {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(BIG_SERVED);
        v
    })
}

impl Att {
    /// The bytes a fetch gets (`None` for the failing one).
    pub fn bytes(&self) -> Option<&'static [u8]> {
        Some(match self.id {
            "att-text" => TEXT,
            "att-pdf" => PDF,
            "att-storage" => STORAGE,
            "att-json" => HTML,
            "att-slow" => SLOW,
            "att-big" => big(),
            "att-inline" => INLINE,
            "att-notype" => &NOTYPE,
            "att-report" => REPORT,
            _ => return None,
        })
    }

    /// Base64 of the SHA-1 of [`Att::bytes`] (R4 `Attachment.hash`), computed once.
    pub fn sha1(&self) -> Option<&'static str> {
        static SUMS: OnceLock<Vec<Option<String>>> = OnceLock::new();
        let sums = SUMS.get_or_init(|| ATTACHMENTS.iter().map(|a| a.bytes().map(sha1_b64)).collect());
        let i = ATTACHMENTS.iter().position(|a| a.id == self.id)?;
        sums[i].as_deref()
    }

    /// The `size` the resource declares.
    pub fn declared_size(&self) -> Option<u64> {
        match self.behaviour {
            Behaviour::Big => Some(BIG_DECLARED),
            _ => self.bytes().map(|b| b.len() as u64),
        }
    }

    /// The `url` as the resource holds it (`base`: the FHIR base path, with any fault prefix).
    pub fn reference(&self, app: &App, base: &str) -> Option<String> {
        match self.url {
            UrlKind::Relative => Some(format!("Binary/{}", self.id)),
            UrlKind::AbsoluteMain => Some(format!("{}{base}/Binary/{}", app.main_origin, self.id)),
            UrlKind::Storage => Some(format!("{}/attachments/{}.txt", app.storage_origin, self.id)),
            UrlKind::None => None,
        }
    }

    /// The stats route its fetches are counted under.
    pub fn route(&self) -> Option<String> {
        match self.url {
            UrlKind::Storage => Some(format!("storage.attachment.{}", self.id)),
            UrlKind::None => None,
            _ => Some(format!("attach.binary.{}", self.id)),
        }
    }

    /// The `Attachment` element of the resource.
    fn element(&self, app: &App, base: &str, title: &str) -> Value {
        let mut a = json!({});
        if let Some(t) = self.declared_type {
            a["contentType"] = json!(t);
        }
        if let Some(u) = self.reference(app, base) {
            a["url"] = json!(u);
        } else if let Some(b) = self.bytes() {
            a["data"] = json!(base64::engine::general_purpose::STANDARD.encode(b));
        }
        if let Some(n) = self.declared_size() {
            a["size"] = json!(n);
        }
        // No hash where the bytes are not what the size says (big) or there are none (fail).
        if !matches!(self.behaviour, Behaviour::Big | Behaviour::Fail) {
            if let Some(h) = self.sha1() {
                a["hash"] = json!(h);
            }
        }
        a["title"] = json!(title);
        a
    }
}

/// Looks an attachment up by id.
pub fn find(id: &str) -> Option<&'static Att> {
    ATTACHMENTS.iter().find(|a| a.id == id)
}

/// The default size of each `attachments=N` attachment.
pub const BULK_BYTES: u64 = 4096;

/// The most `attachments=N` attachments an export may have, and their most bytes in all.
pub const BULK_MAX: (u64, u64) = (100_000, 256 << 20);

/// The bytes of generated attachment `k` (fault `attachments=N`): a header line, then
/// deterministic lowercase text in lines of 64, `len` bytes in all.
pub fn bulk_bytes(k: u64, len: u64) -> Vec<u8> {
    let mut v = format!("Bulk attachment {k}\n").into_bytes();
    let mut x = crate::data::mix(k ^ 0xA77A_C4ED) | 1;
    while (v.len() as u64) < len {
        if v.len() % 65 == 64 {
            v.push(b'\n');
            continue;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(b'a' + (x % 26) as u8);
    }
    v.truncate(len as usize);
    v
}

/// The generated attachment `k` of a job with faults `f`: `(bytes, on the storage origin)`.
fn bulk_of(f: &Faults, id: &str) -> Option<(Vec<u8>, bool)> {
    let k: u64 = id.strip_prefix("att-bulk-")?.parse().ok()?;
    (k < f.attachments).then(|| (bulk_bytes(k, f.attachbytes.unwrap_or(BULK_BYTES)), k % 2 == 1))
}

/// The DocumentReferences of fault `attachments=N`: `docref-bulk-{k}` with attachment
/// `att-bulk-{k}`, even `k` as `Binary/att-bulk-{k}`, odd `k` on the storage origin.
fn bulk_documents(app: &App, prefix: &str, f: &Faults) -> Result<Vec<Value>, String> {
    let (n, len) = (f.attachments, f.attachbytes.unwrap_or(BULK_BYTES));
    if n > BULK_MAX.0 || n.saturating_mul(len) > BULK_MAX.1 {
        return Err(format!(
            "attachments={n};attachbytes={len} is too much: at most {} attachments and {} bytes in all",
            BULK_MAX.0, BULK_MAX.1
        ));
    }
    Ok((0..n)
        .map(|k| {
            let bytes = bulk_bytes(k, len);
            let url = if k % 2 == 1 {
                format!("{}{prefix}/attachments/att-bulk-{k}.txt", app.storage_origin)
            } else {
                format!("Binary/att-bulk-{k}")
            };
            json!({
                "resourceType": "DocumentReference",
                "id": format!("docref-bulk-{k}"),
                "meta": {"lastUpdated": "2025-05-30T12:00:00Z"},
                "status": "current",
                "type": {"text": "Bulk note"},
                "subject": {"reference": format!("Patient/Patient-{}", k % 100)},
                "date": "2025-05-30T12:00:00Z",
                "content": [{"attachment": {
                    "contentType": "text/plain", "url": url, "size": bytes.len(), "hash": sha1_b64(&bytes),
                }}],
            })
        })
        .collect())
}

fn by_id(id: &str) -> &'static Att {
    find(id).unwrap_or(&ATTACHMENTS[0])
}

/// The NDJSON lines of the `DocumentReference` file.
fn document_references(app: &App, base: &str) -> Vec<Value> {
    let doc = |id: &str, patient: u32, att: &str, title: &str| {
        json!({
            "resourceType": "DocumentReference",
            "id": id,
            "meta": {"lastUpdated": "2025-05-30T12:00:00Z"},
            "status": "current",
            "type": {"text": title},
            "subject": {"reference": format!("Patient/Patient-{patient}")},
            "date": "2025-05-30T12:00:00Z",
            "content": [{"attachment": by_id(att).element(app, base, title)}],
        })
    };
    vec![
        doc("docref-text-1", 0, "att-text", "Progress note"),
        // The same URL again: a client that dedupes fetches it once.
        doc("docref-text-2", 1, "att-text", "Progress note (copy)"),
        doc("docref-pdf", 1, "att-pdf", "Scanned letter"),
        doc("docref-storage", 2, "att-storage", "Discharge summary"),
        doc("docref-slow", 3, "att-slow", "Slow note"),
        doc("docref-fail", 4, "att-fail", "Unavailable note"),
        doc("docref-big", 5, "att-big", "Large scan"),
        doc("docref-inline", 6, "att-inline", "Inline note"),
        doc("docref-notype", 7, "att-notype", "Untyped bytes"),
    ]
}

/// The NDJSON lines of the `DiagnosticReport` file.
fn diagnostic_reports(app: &App, base: &str) -> Vec<Value> {
    let rep = |id: &str, patient: u32, att: &str, title: &str| {
        json!({
            "resourceType": "DiagnosticReport",
            "id": id,
            "meta": {"lastUpdated": "2025-05-30T12:00:00Z"},
            "status": "final",
            "code": {"text": title},
            "subject": {"reference": format!("Patient/Patient-{patient}")},
            "effectiveDateTime": "2025-05-29T09:00:00Z",
            "presentedForm": [by_id(att).element(app, base, title)],
        })
    };
    vec![rep("diagrep-json", 0, "att-json", "Lipid panel"), rep("diagrep-text", 8, "att-report", "Chest X-ray")]
}

/// Takes the `_type` values out of the kick-off pairs (the data set's types are not these):
/// the attachments types asked for, all when none; `Err` for another type.
pub fn take_types(pairs: &mut Vec<(String, String)>) -> Result<Vec<&'static str>, String> {
    let mut want: Vec<&'static str> = Vec::new();
    let mut bad = Vec::new();
    for (_, v) in pairs.iter().filter(|(k, _)| k == "_type") {
        for t in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match TYPES.iter().find(|x| **x == t) {
                Some(x) if !want.contains(x) => want.push(x),
                Some(_) => {}
                None => bad.push(t.to_string()),
            }
        }
    }
    pairs.retain(|(k, _)| k != "_type");
    if let Some(t) = bad.first() {
        return Err(format!("_type '{t}' is not exported by the attachments dialect (supported: {})", TYPES.join(",")));
    }
    if want.is_empty() {
        want = TYPES.to_vec();
    }
    Ok(want)
}

/// The output files of an attachments export (`ctx.base`: the FHIR base path of the kick-off);
/// `Err` when fault `attachments=N` asks for too much.
pub fn files(app: &App, ctx: &Ctx, types: &[&str]) -> Result<Vec<FileEntry>, String> {
    let base = &ctx.base;
    let mut out = Vec::new();
    for t in TYPES.iter().filter(|t| types.contains(t)) {
        let lines = if *t == "DocumentReference" {
            let mut v = document_references(app, base);
            v.extend(bulk_documents(app, &ctx.prefix, &ctx.faults)?);
            v
        } else {
            diagnostic_reports(app, base)
        };
        let mut body = Vec::new();
        for l in &lines {
            body.extend_from_slice(l.to_string().as_bytes());
            body.push(b'\n');
        }
        out.push(FileEntry {
            name: format!("{t}-0.ndjson"),
            kind: FileKind::Output,
            rtype: Some((*t).to_string()),
            count: lines.len() as u64,
            headers: 0,
            body: FileBody::Lines(Arc::new(body)),
        });
    }
    Ok(out)
}

fn has_bearer(h: &HeaderMap) -> bool {
    h.get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .is_some_and(|t| !t.trim().is_empty())
}

/// Whether `Accept` asks for the FHIR JSON form first (`application/fhir+json` or
/// `application/json` before any other media range).
fn wants_fhir_json(h: &HeaderMap) -> bool {
    let first = h
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|r| r.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .find(|r| !r.is_empty());
    matches!(first.as_deref(), Some("application/fhir+json" | "application/json"))
}

fn raw(ctype: &str, bytes: Bytes) -> Response {
    let n = bytes.len();
    let mut r = Response::new(Body::from(bytes));
    http::set(r.headers_mut(), header::CONTENT_TYPE, ctype);
    http::set(r.headers_mut(), header::CONTENT_LENGTH, &n.to_string());
    r
}

fn binary_json(id: &str, ctype: &str, bytes: &[u8]) -> Response {
    http::fhir(
        200,
        &json!({
            "resourceType": "Binary",
            "id": id,
            "contentType": ctype,
            "data": base64::engine::general_purpose::STANDARD.encode(bytes),
        }),
    )
}

/// `GET [base]/Binary/{id}`: a FHIR read needing a bearer token whatever the server's auth
/// (with `--token`/`--jwks` the dispatcher already checked it; without, any bearer is taken).
pub async fn binary(app: &App, ctx: &Ctx, id: &str) -> Response {
    let known = find(id).filter(|a| matches!(a.url, UrlKind::Relative | UrlKind::AbsoluteMain));
    let route = known.and_then(Att::route).unwrap_or_else(|| "attach.binary".into());
    let tag = |r: Response| http::tag(r, route.clone(), None);
    if !app.auth_on() && !has_bearer(&ctx.headers) {
        let diag = "Authorization: Bearer token required (a Binary read is a FHIR read)";
        let mut v = http::oo_value("error", "login", diag);
        v["issue"][0]["details"] = json!({ "text": diag });
        let mut r = http::fhir(401, &v);
        http::set(r.headers_mut(), header::WWW_AUTHENTICATE, "Bearer");
        return http::tag(r, "attach.unauthorized".into(), None);
    }
    if ctx.method != Method::GET && ctx.method != Method::HEAD {
        let mut r = http::oo(405, "not-supported", "a Binary is read with GET");
        http::set(r.headers_mut(), header::ALLOW, "GET");
        return tag(r);
    }
    let Some(a) = known else {
        if let Some((bytes, false)) = bulk_of(&ctx.faults, id) {
            let r = if wants_fhir_json(&ctx.headers) {
                binary_json(id, "text/plain", &bytes)
            } else {
                raw("text/plain", Bytes::from(bytes))
            };
            return http::tag(r, "attach.binary.bulk".into(), None);
        }
        return tag(http::oo(404, "not-found", &format!("Binary/{id} is not known")));
    };
    let Some(bytes) = a.bytes() else {
        return tag(http::oo(500, "exception", &format!("{FAIL_TEXT} (Binary/{} always fails)", a.id)));
    };
    if a.behaviour == Behaviour::Slow {
        tokio::time::sleep(std::time::Duration::from_millis(SLOW_MS)).await;
    }
    let r = if a.behaviour == Behaviour::Json || wants_fhir_json(&ctx.headers) {
        binary_json(a.id, a.served_type, bytes)
    } else {
        raw(a.served_type, Bytes::from_static(bytes))
    };
    tag(r)
}

/// The storage origin's `GET [/_f/SPEC]/attachments/{id}.txt`: served with or without
/// `Authorization` (the stats count the requests that carried one). `spec`: the fault prefix's.
pub fn storage(app: &App, spec: &str, method: &Method, name: &str) -> Response {
    let id = name.strip_suffix(".txt").unwrap_or(name);
    let (route, ctype, bytes) = match find(id).filter(|a| a.url == UrlKind::Storage) {
        Some(a) => (a.route().unwrap_or_default(), a.served_type, Bytes::from_static(a.bytes().unwrap_or_default())),
        None => {
            let mut f = app.default_faults.clone();
            match f.apply(spec).ok().and_then(|()| bulk_of(&f, id)) {
                Some((b, true)) => ("storage.attachment.bulk".to_string(), "text/plain", Bytes::from(b)),
                _ => {
                    let r = http::oo(404, "not-found", "no such attachment");
                    return http::tag(r, "storage.attachment".into(), None);
                }
            }
        }
    };
    if method != Method::GET && method != Method::HEAD {
        let mut r = http::empty(405);
        http::set(r.headers_mut(), header::ALLOW, "GET");
        return http::tag(r, route, None);
    }
    let mut r = raw(ctype, bytes);
    if method == Method::HEAD {
        *r.body_mut() = Body::empty();
    }
    http::tag(r, route, None)
}

/// `GET /_admin/attachments`: what each attachment of the export serves.
pub fn listing(app: &App) -> Response {
    let base = "/attach/fhir";
    let list: Vec<Value> = ATTACHMENTS
        .iter()
        .map(|a| {
            let url = a.reference(app, base).map(|u| {
                if u.starts_with("http") {
                    u
                } else {
                    format!("{}{base}/{u}", app.main_origin)
                }
            });
            json!({
                "id": a.id,
                "url": url,
                "reference": a.reference(app, base),
                "contentType": a.declared_type,
                "servedContentType": (a.behaviour != Behaviour::Inline && a.behaviour != Behaviour::Fail).then_some(a.served_type),
                "size": a.bytes().map(|b| b.len()),
                "declaredSize": a.declared_size(),
                "sha1": a.sha1(),
                "origin": match a.url { UrlKind::Storage => json!("storage"), UrlKind::None => Value::Null, _ => json!("main") },
                "behaviour": a.behaviour.name(),
                "route": a.route(),
                "referencedBy": a.referenced_by,
            })
        })
        .collect();
    http::json_with(
        200,
        "application/json",
        &json!({
            "base": format!("{}{base}", app.main_origin),
            "storage": app.storage_origin,
            "slowMs": SLOW_MS,
            "attachments": list,
        }),
    )
}

/// Base64 of the SHA-1 of `data`.
pub fn sha1_b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha1(data))
}

/// SHA-1 (FIPS 180-4), for `Attachment.hash` (RustCrypto's `sha1`, as the core uses).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_known_answers() {
        assert_eq!(hex::encode(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(hex::encode(sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            hex::encode(sha1(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(hex::encode(sha1(&vec![b'a'; 1_000_000])), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
        assert_eq!(sha1_b64(b"abc"), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
    }

    #[test]
    fn every_id_is_unique_and_fetchable_ones_have_bytes() {
        for (i, a) in ATTACHMENTS.iter().enumerate() {
            assert!(ATTACHMENTS[..i].iter().all(|b| b.id != a.id), "{}", a.id);
            assert_eq!(a.bytes().is_none(), a.behaviour == Behaviour::Fail, "{}", a.id);
        }
        assert_eq!(big().len(), BIG_SERVED);
        assert!(big().starts_with(b"%PDF-"));
    }
}
