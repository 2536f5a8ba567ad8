//! NDJSON file downloads: generated while streaming, gzip on request (deterministic, so byte
//! ranges of it are stable), `Range`/`If-Range` with strong validators, and the download faults
//! (`reset`, `gzbad`, `gzcorrupt`, `slow`, `expire`, `cut`, `norange`, `rangechange`, `conn`).
//! Also the storage origin.

pub mod body;
pub mod cursor;
pub mod encode;
pub mod range;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use flate2::write::GzEncoder;
use flate2::Compression;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Write;

use crate::admin::FileCounters;
use crate::app::{split_prefix, App};
use crate::http;
use crate::jobs::{Job, Phase};
use body::{InFlight, Src, Window};
pub use cursor::Cursor;
use encode::{Index, Source};
use range::Validators;

/// The first half of `data` gzipped and sync-flushed (decodable as far as it
/// goes), then a deflate block of the reserved type 11: a decoder fails there.
fn gzip_corrupt_half(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    let _ = e.write_all(&data[..data.len() / 2]);
    let _ = e.flush();
    let mut out = e.get_ref().clone();
    out.extend_from_slice(&[0xff; 64]);
    out
}

fn wants_gzip(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|e| {
        let mut it = e.split(';');
        let name = it.next().unwrap_or("").trim();
        let q0 = it.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !q0
    })
}

/// The file's encoded size and chunk boundaries, built once (off the async threads) on demand;
/// `v2`: of the file's second version (fault `changeafter`).
async fn index(app: &App, job: &Job, idx: usize, gzip: bool, v2: bool) -> Result<Arc<Index>, Response> {
    let cell = job.lock().indexes.entry((idx, gzip, v2)).or_default().clone();
    let plan = job.plan().cloned().ok_or_else(|| http::oo(404, "not-found", "this job has no files"))?;
    let ds = app.ds.clone();
    cell.get_or_try_init(|| async move {
        let cursor = Cursor::new(ds, plan, idx).second_version(v2);
        match tokio::task::spawn_blocking(move || Index::build(cursor, gzip)).await {
            Ok(Ok(ix)) => Ok(Arc::new(ix)),
            Ok(Err(e)) => Err(http::oo(500, "exception", &format!("cannot encode the file: {e}"))),
            Err(_) => Err(http::oo(500, "exception", "the file could not be generated")),
        }
    })
    .await
    .cloned()
}

/// Serves file `name` of `job` (generation `gen` of its URL).
pub async fn serve(app: &App, job: &Arc<Job>, name: &str, gen: u64, h: &HeaderMap) -> Response {
    job.count("file");
    let Some(plan) = job.plan().cloned() else {
        return http::oo(404, "not-found", "this job has no files");
    };
    let Some(idx) = plan.files.iter().position(|f| f.name == name) else {
        return http::oo(404, "not-found", &format!("no file '{name}' in job {}", job.id));
    };
    let ctype = plan.files[idx].output_format();
    let phase = job.phase();
    if job.lock().deleted || phase == Phase::Cancelled {
        return http::oo(404, "not-found", "the export was deleted or cancelled");
    }
    if phase != Phase::Completed && idx >= job.files_done() {
        return http::oo(404, "not-found", "file not ready yet");
    }
    if job.faults.signedfail {
        return http::oo(500, "exception", "The storage backend failed to read the object (fault 'signedfail')");
    }
    if job.faults.expire && gen == 0 {
        return http::oo(
            410,
            "expired",
            "This file URL expired; fetch the manifest again for fresh links (fault 'expire')",
        );
    }
    if job.faults.expireafter && gen == 0 && !job.lock().gen0_used.insert(name.to_string()) {
        return http::oo(
            410,
            "expired",
            "This file URL expired after its first use; fetch the manifest again for fresh links (fault 'expireafter')",
        );
    }
    let files = &app.stats.files;
    let Some(slot) = InFlight::admit(files, job, job.faults.conn) else {
        FileCounters::bump(&files.throttled);
        let mut r = http::oo(
            429,
            "throttled",
            &format!("More than {} downloads of this job at once (fault 'conn')", job.faults.conn),
        );
        http::set(r.headers_mut(), header::RETRY_AFTER, "1");
        return r;
    };
    let gzip = wants_gzip(h);
    let (attempt, gz_attempt) = {
        let mut st = job.lock();
        let a = st.attempts.entry(name.to_string()).or_default();
        let attempt = *a;
        *a += 1;
        let mut gz = u64::MAX;
        // An attempt spent on `reset` does not count as the `gzbad` attempt: combined, the
        // client sees a reset first, then a truncated gzip stream, then good bytes.
        let reset_now = job.faults.reset && attempt == 0;
        if gzip && !reset_now {
            let g = st.gz_attempts.entry(name.to_string()).or_default();
            gz = *g;
            *g += 1;
        }
        (attempt, gz)
    };
    let f = &job.faults;
    // Fault `changeafter`: the first continuation (a request with `Range` or `If-Range`) of a
    // file switches it to its second version, answered whole (200); later requests get it too.
    let (v2, changed_now) = if f.changeafter {
        let mut st = job.lock();
        if st.changed.contains(name) {
            (true, false)
        } else if h.contains_key(header::RANGE) || h.contains_key(header::IF_RANGE) {
            st.changed.insert(name.to_string());
            (true, true)
        } else {
            (false, false)
        }
    } else {
        (false, false)
    };
    let variant = u64::from(f.rangechange && attempt > 0) + if v2 { 2 } else { 0 };
    let v = Validators::new(&job.id, name, gzip, gen, variant, job.created_ms);
    let fresh = |state: Option<(u64, u32)>| {
        match state {
            Some(s) => Cursor::resume(app.ds.clone(), plan.clone(), idx, s),
            None => Cursor::new(app.ds.clone(), plan.clone(), idx),
        }
        .second_version(v2)
    };
    let slow = f.slow;
    let plain = |skip, start, len, cut_at| Window { skip, start, len, cut_at, cut_key: None, slow };

    // Broken representations first: no validators, no ranges.
    if f.gzcorrupt && gzip && gz_attempt == 0 {
        let data = fresh(None).collect();
        let mut r = Response::new(body::stream_body(
            Src::Fixed(Some(Bytes::from(gzip_corrupt_half(&data)))),
            plain(0, 0, None, None),
            slot,
        ));
        FileCounters::bump(&files.ok);
        headers(&mut r, ctype, gzip, None);
        return r;
    }
    if f.gzbad && gzip && gz_attempt == 0 {
        let ix = match index(app, job, idx, gzip, v2).await {
            Ok(ix) => ix,
            Err(r) => return r,
        };
        let half = ix.total / 2;
        let mut r = Response::new(body::stream_body(
            Src::Gen(Source::new(fresh(None), gzip)),
            plain(0, 0, Some(half), None),
            slot,
        ));
        FileCounters::bump(&files.ok);
        headers(&mut r, ctype, gzip, None);
        http::set(r.headers_mut(), header::CONTENT_LENGTH, &half.to_string());
        return r;
    }
    let ranges = !f.norange;
    let wanted = if ranges { range::requested(h) } else { None };
    let wanted = wanted.filter(|_| !changed_now && !range::if_range_fails(h, &v));
    let existing = job.lock().indexes.get(&(idx, gzip, v2)).and_then(|c| c.get().cloned());
    let needs_index = wanted.is_some() || (f.reset && attempt == 0);
    let ix = match existing {
        Some(ix) => Some(ix),
        None if needs_index => match index(app, job, idx, gzip, v2).await {
            Ok(ix) => Some(ix),
            Err(r) => return r,
        },
        None => None,
    };
    let cut_of = |start: u64| -> Option<u64> {
        (f.cut > 0).then(|| {
            let done = job.lock().cut_done.get(&(name.to_string(), gzip)).copied().unwrap_or(0);
            (start.max(done) / f.cut + 1) * f.cut
        })
    };
    let total = ix.as_ref().map(|ix| ix.total);
    let mut r = match (wanted, &ix) {
        (Some(spec), Some(ix)) => {
            let Some((start, end)) = range::resolve(spec, ix.total) else {
                FileCounters::bump(&files.unsatisfiable);
                drop(slot);
                let mut r = http::empty(416);
                http::set(r.headers_mut(), header::CONTENT_RANGE, &format!("bytes */{}", ix.total));
                headers(&mut r, ctype, gzip, Some((&v, ranges)));
                return r;
            };
            let (src, skip) = ix.source_at(gzip, start, fresh);
            let w = Window {
                cut_key: Some((name.to_string(), gzip)),
                ..plain(skip, start, Some(end - start), cut_of(start))
            };
            let mut r = Response::new(body::stream_body(Src::Gen(src), w, slot));
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            FileCounters::bump(&files.partial);
            let hm = r.headers_mut();
            http::set(hm, header::CONTENT_RANGE, &format!("bytes {start}-{}/{}", end - 1, ix.total));
            http::set(hm, header::CONTENT_LENGTH, &(end - start).to_string());
            r
        }
        _ => {
            let reset = f.reset && attempt == 0;
            let (cut_at, cut_key) = match (reset, total) {
                // Half the bytes under the full Content-Length, then the connection is aborted.
                (true, Some(t)) => (Some(t / 2), None),
                _ => (cut_of(0), Some((name.to_string(), gzip))),
            };
            let w = Window { cut_key, ..plain(0, 0, None, cut_at) };
            let mut r = Response::new(body::stream_body(Src::Gen(Source::new(fresh(None), gzip)), w, slot));
            FileCounters::bump(&files.ok);
            if h.contains_key(header::RANGE) {
                FileCounters::bump(&files.range_ignored);
            }
            if let Some(t) = total {
                http::set(r.headers_mut(), header::CONTENT_LENGTH, &t.to_string());
            }
            r
        }
    };
    headers(&mut r, ctype, gzip, Some((&v, ranges)));
    r
}

/// The identity-encoded size of file `idx` of a completed job, generating the file once if no
/// request did yet (the `stu4` dialect lists `fileSize`).
pub async fn file_size(app: &App, job: &Job, idx: usize) -> Option<u64> {
    index(app, job, idx, false, false).await.ok().map(|ix| ix.total)
}

/// The headers of a file response; `valid` = the validators and whether ranges are offered.
fn headers(r: &mut Response, ctype: &str, gzip: bool, valid: Option<(&Validators, bool)>) {
    let hm = r.headers_mut();
    http::set(hm, header::CONTENT_TYPE, ctype);
    if gzip {
        http::set(hm, header::CONTENT_ENCODING, "gzip");
    }
    http::set(hm, header::VARY, "Accept-Encoding");
    if let Some((v, ranges)) = valid {
        if ranges {
            http::set(hm, header::ACCEPT_RANGES, "bytes");
        }
        http::set(hm, header::ETAG, &v.etag);
        http::set(hm, header::LAST_MODIFIED, &v.last_modified());
    }
}

/// HMAC signature of a storage object (the `X-Amz-Signature` stand-in).
pub fn sign(app: &App, job: &str, name: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app.cfg.callback_secret.as_bytes())
        .unwrap_or_else(|_| Hmac::<Sha256>::new_from_slice(b"k").expect("hmac accepts any key"));
    mac.update(job.as_bytes());
    mac.update(b"/");
    mac.update(name.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The access key id in the `X-Amz-Credential` of signed URLs (fault `signed`): a constant,
/// so tests can assert it never shows in a message or log either.
pub const AMZ_ACCESS_KEY: &str = "AKIAFHIRASYNCTEST019";

/// The presigned query of file `name` of job `job` under fault `signed` (S3 SigV4 shape; the
/// signature is [`sign`]).
pub fn signed_query(app: &App, job: &str, name: &str) -> String {
    format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={AMZ_ACCESS_KEY}%2F20250601%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250601T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature={}",
        sign(app, job, name)
    )
}

/// Fault `signed`, main-origin files: the 403 for a missing or wrong `X-Amz-Signature`.
pub fn check_signed(app: &App, job: &Job, name: &str, query: &str) -> Option<Response> {
    if !job.faults.signed {
        return None;
    }
    let q = http::query_pairs(query);
    let sig = q.iter().find(|(k, _)| k == "X-Amz-Signature").map(|(_, v)| v.as_str());
    (sig != Some(sign(app, &job.id, name).as_str())).then(|| {
        storage_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    })
}

/// A presigned-looking URL on the storage origin.
pub fn storage_url(app: &App, job: &Job, name: &str, gen: u64) -> String {
    let query = if job.faults.signed {
        signed_query(app, &job.id, name)
    } else {
        format!("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600&X-Amz-Signature={}", sign(app, &job.id, name))
    };
    let mut u = format!("{}{}/storage/{}/{}?{query}", app.storage_origin, job.prefix, job.id, name);
    if gen > 0 {
        u.push_str(&format!("&g={gen}"));
    }
    u
}

/// The storage origin: `[/_f/SPEC]/storage/{job}/{file}?X-Amz-Signature=...`. Any request
/// carrying `Authorization` gets 403 (S3 rejects a second auth mechanism). Also
/// `/attachments/{id}.txt` of the attachments dialect, served to anyone.
pub async fn storage(app: &App, method: &Method, uri: &Uri, h: &HeaderMap) -> Response {
    let (_, spec, rest) = split_prefix(uri.path());
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let (job_id, name) = match parts.as_slice() {
        ["storage", j, f] => (*j, *f),
        // The attachments dialect's second-origin attachments: public, token or not (issue 24).
        ["attachments", f] => return crate::dialects::attach::storage(app, &spec, method, f),
        _ => {
            return http::tag(
                storage_error(404, "NoSuchKey", "The specified key does not exist."),
                "storage.unknown".into(),
                None,
            )
        }
    };
    let tag = |r: Response| http::tag(r, "storage.file".into(), Some(job_id));
    if h.contains_key(header::AUTHORIZATION) {
        return tag(storage_error(
            403,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
        ));
    }
    if method != Method::GET && method != Method::HEAD {
        return tag(storage_error(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        ));
    }
    let q = http::query_pairs(uri.query().unwrap_or(""));
    let sig = q.iter().find(|(k, _)| k == "X-Amz-Signature").map(|(_, v)| v.as_str());
    if sig != Some(sign(app, job_id, name).as_str()) {
        return tag(storage_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    let gen = q.iter().find(|(k, _)| k == "g").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let Some(job) = app.jobs.get_any(job_id) else {
        return tag(storage_error(404, "NoSuchKey", "The specified key does not exist."));
    };
    tag(serve(app, &job, name, gen, h).await)
}

fn storage_error(status: u16, code: &str, msg: &str) -> Response {
    let mut r = http::empty(status);
    *r.body_mut() = Body::from(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{msg}</Message></Error>\n"
    ));
    http::set(r.headers_mut(), header::CONTENT_TYPE, "application/xml");
    r
}
