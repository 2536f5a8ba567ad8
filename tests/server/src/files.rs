//! NDJSON file bodies: generated in ~64 KB chunks, gzip on request, and the download faults
//! (`reset`, `gzbad`, `gzcorrupt`, `slow`, `expire`). Also the storage origin.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::Response;
use flate2::write::GzEncoder;
use flate2::Compression;
use futures_util::stream;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::app::{split_prefix, App};
use crate::data::Dataset;
use crate::export::{block_lines, FileBody, Plan};
use crate::http;
use crate::jobs::{Job, Phase};

const CHUNK: usize = 64 * 1024;

/// Generates the bytes of one file of a plan, chunk by chunk.
#[derive(Debug)]
pub struct Cursor {
    ds: Arc<Dataset>,
    plan: Arc<Plan>,
    file: usize,
    pos: u64,
    patient: u32,
}

impl Cursor {
    /// A cursor at the start of file `file`.
    pub fn new(ds: Arc<Dataset>, plan: Arc<Plan>, file: usize) -> Cursor {
        let (pos, patient) = match &plan.files[file].body {
            FileBody::Range { t, start, .. } => (*start, ds.patient_of(*t, *start)),
            FileBody::Organized { start, .. } => (u64::from(*start), *start),
            FileBody::Lines(_) => (0, 0),
        };
        Cursor { ds, plan, file, pos, patient }
    }

    /// The next chunk (None at the end).
    pub fn next_chunk(&mut self) -> Option<Bytes> {
        let mut buf = Vec::with_capacity(CHUNK + 8 * 1024);
        let plan = self.plan.clone();
        let sel = &plan.params.selection;
        let ds = &*self.ds;
        match &plan.files[self.file].body {
            FileBody::Lines(b) => {
                let start = self.pos as usize;
                if start >= b.len() {
                    return None;
                }
                let end = (start + CHUNK).min(b.len());
                self.pos = end as u64;
                return Some(Bytes::copy_from_slice(&b[start..end]));
            }
            FileBody::Range { t, end, .. } => {
                let (t, end) = (*t, *end);
                let trivial = sel.is_trivial() && sel.elements.is_empty();
                while self.pos < end && buf.len() < CHUNK {
                    let i = self.pos;
                    while ds.start(t, self.patient + 1) <= i {
                        self.patient += 1;
                    }
                    if trivial || sel.matches(ds, t, i, self.patient) {
                        self.write(&mut buf, t, i, self.patient);
                    }
                    self.pos += 1;
                }
            }
            FileBody::Organized { end, .. } => {
                let end = u64::from(*end);
                let types: Vec<usize> = plan.params.types.clone();
                while self.pos < end && buf.len() < CHUNK {
                    let p = self.pos as u32;
                    if block_lines(ds, sel, &types, p) > 0 {
                        buf.extend_from_slice(b"{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"header\",\"valueReference\":{\"reference\":\"Patient/Patient-");
                        buf.extend_from_slice(p.to_string().as_bytes());
                        buf.extend_from_slice(b"\"}}]}\n");
                        for &t in &types {
                            for i in ds.start(t, p)..ds.start(t, p + 1) {
                                if sel.matches(ds, t, i, p) {
                                    self.write(&mut buf, t, i, p);
                                }
                            }
                        }
                    }
                    self.pos += 1;
                }
            }
        }
        (!buf.is_empty()).then(|| Bytes::from(buf))
    }

    fn write(&self, buf: &mut Vec<u8>, t: usize, i: u64, p: u32) {
        let sel = &self.plan.params.selection;
        if sel.elements.is_empty() {
            self.ds.write(buf, t, i, p);
            return;
        }
        // Slow path: keep the mandatory elements and the requested ones, tag SUBSETTED.
        let mut v = self.ds.resource_json(t, i);
        if let Value::Object(o) = &mut v {
            o.retain(|k, _| {
                matches!(k.as_str(), "resourceType" | "id" | "meta") || sel.elements.iter().any(|e| e == k)
            });
            o["meta"]["tag"] = serde_json::json!([{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}]);
        }
        buf.extend_from_slice(v.to_string().as_bytes());
        buf.push(b'\n');
    }

    /// The whole file in memory (used by the `reset`, `gzbad` and `gzcorrupt` faults on small files).
    pub fn collect(mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(c) = self.next_chunk() {
            all.extend_from_slice(&c);
        }
        all
    }
}

fn gzip_all(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

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

/// Serves file `name` of `job` (generation `gen` of its URL).
pub async fn serve(app: &App, job: &Arc<Job>, name: &str, gen: u64, h: &HeaderMap) -> Response {
    job.count("file");
    let Some(plan) = job.plan().cloned() else {
        return http::oo(404, "not-found", "this job has no files");
    };
    let Some(idx) = plan.files.iter().position(|f| f.name == name) else {
        return http::oo(404, "not-found", &format!("no file '{name}' in job {}", job.id));
    };
    let phase = job.phase();
    if job.lock().deleted || phase == Phase::Cancelled {
        return http::oo(404, "not-found", "the export was deleted or cancelled");
    }
    if phase != Phase::Completed && idx >= job.files_done() {
        return http::oo(404, "not-found", "file not ready yet");
    }
    if job.faults.expire && gen == 0 {
        return http::oo(
            410,
            "expired",
            "This file URL expired; fetch the manifest again for fresh links (fault 'expire')",
        );
    }
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
    let cursor = Cursor::new(app.ds.clone(), plan.clone(), idx);
    let mut resp = if job.faults.reset && attempt == 0 {
        // Send half the bytes under a full Content-Length, then fail the stream: hyper aborts.
        let mut all = cursor.collect();
        if gzip {
            all = gzip_all(&all);
        }
        let len = all.len();
        let half = Bytes::from(all).slice(..len / 2);
        let s = stream::unfold(Some(half), |state| async move {
            match state {
                Some(half) => Some((Ok(half), None)),
                None => {
                    // Let hyper flush the headers and the first half before the abort.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let e = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fault 'reset'");
                    Some((Err(e), None))
                }
            }
        });
        let mut r = Response::new(Body::from_stream(s));
        http::set(r.headers_mut(), header::CONTENT_LENGTH, &len.to_string());
        r
    } else if job.faults.gzcorrupt && gzip && gz_attempt == 0 {
        Response::new(Body::from(gzip_corrupt_half(&cursor.collect())))
    } else if job.faults.gzbad && gzip && gz_attempt == 0 {
        let all = gzip_all(&cursor.collect());
        let cut = all.len() / 2;
        Response::new(Body::from(Bytes::from(all).slice(..cut)))
    } else {
        Response::new(body_stream(cursor, gzip, job.faults.slow))
    };
    let hm = resp.headers_mut();
    http::set(hm, header::CONTENT_TYPE, "application/fhir+ndjson");
    if gzip {
        http::set(hm, header::CONTENT_ENCODING, "gzip");
    }
    http::set(hm, header::VARY, "Accept-Encoding");
    resp
}

struct St {
    cursor: Cursor,
    gz: Option<GzEncoder<Vec<u8>>>,
    slow: u64,
    done: bool,
}

fn body_stream(cursor: Cursor, gzip: bool, slow: u64) -> Body {
    let st = St {
        cursor,
        gz: gzip.then(|| GzEncoder::new(Vec::with_capacity(CHUNK), Compression::fast())),
        slow,
        done: false,
    };
    let s = stream::unfold(st, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            let chunk = st.cursor.next_chunk();
            let out = match (&mut st.gz, chunk) {
                (None, Some(c)) => c,
                (None, None) => return None,
                (Some(gz), Some(c)) => {
                    if gz.write_all(&c).is_err() {
                        return Some((Err(std::io::Error::other("gzip failed")), st));
                    }
                    let b = std::mem::take(gz.get_mut());
                    if b.is_empty() {
                        continue;
                    }
                    Bytes::from(b)
                }
                (Some(_), None) => {
                    st.done = true;
                    let gz = st.gz.take()?;
                    Bytes::from(gz.finish().unwrap_or_default())
                }
            };
            if st.slow > 0 {
                // Throttle: sleep as long as this chunk takes at `slow` bytes per second.
                let ms = out.len() as u64 * 1000 / st.slow.max(1);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            return Some((Ok::<Bytes, std::io::Error>(out), st));
        }
    });
    if slow > 0 {
        // Small chunks so the throttle is smooth.
        let s = futures_util::StreamExt::flat_map(s, move |r| {
            let parts: Vec<Result<Bytes, std::io::Error>> = match r {
                Ok(b) => {
                    let step = (slow as usize / 10).max(1);
                    (0..b.len()).step_by(step).map(|i| Ok(b.slice(i..(i + step).min(b.len())))).collect()
                }
                Err(e) => vec![Err(e)],
            };
            stream::iter(parts)
        });
        return Body::from_stream(s);
    }
    Body::from_stream(s)
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

/// A presigned-looking URL on the storage origin.
pub fn storage_url(app: &App, job: &Job, name: &str, gen: u64) -> String {
    let mut u = format!(
        "{}{}/storage/{}/{}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600&X-Amz-Signature={}",
        app.storage_origin,
        job.prefix,
        job.id,
        name,
        sign(app, &job.id, name)
    );
    if gen > 0 {
        u.push_str(&format!("&g={gen}"));
    }
    u
}

/// The storage origin: `[/_f/SPEC]/storage/{job}/{file}?X-Amz-Signature=...`. Any request
/// carrying `Authorization` gets 403 (S3 rejects a second auth mechanism).
pub async fn storage(app: &App, method: &Method, uri: &Uri, h: &HeaderMap) -> Response {
    let (_, _, rest) = split_prefix(uri.path());
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let (job_id, name) = match parts.as_slice() {
        ["storage", j, f] => (*j, *f),
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
