//! Byte ranges, validators and the faults of issue 14 (protocol K1–K3): `Range`/`If-Range` on
//! identity and gzip files, 416, `cut`, `norange`, `rangechange`, `conn`, and the stats.
mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// Kicks off an Observation export under fault spec `spec` and returns its first file's URL.
async fn file_url(s: &Srv, spec: &str) -> String {
    let prefix = if spec.is_empty() { String::new() } else { format!("/_f/{spec}") };
    let (_, loc) = s.kick(&format!("{prefix}/bulk/fhir/$export?_type=Observation")).await;
    let m = s.poll(&loc).await.json();
    m["output"][0]["url"].as_str().unwrap().to_string()
}

const GZ: (&str, &str) = ("accept-encoding", "gzip");

async fn server() -> Srv {
    // 500 patients: an Observation file of ~1.65 MB (about 25 generated chunks).
    start(|c| c.patients = 500).await
}

// issue 14 (protocol K1): every file answers Accept-Ranges, a strong ETag and Last-Modified,
// and a range from any offset (inside a chunk, at its edges, the last byte) is the same bytes.
#[tokio::test]
async fn ranges_identity() {
    let s = server().await;
    let url = file_url(&s, "").await;
    let full = fetch(&s, &url, &[]).await;
    assert_eq!((full.code, full.complete), (200, true));
    assert_eq!(full.h("accept-ranges").as_deref(), Some("bytes"));
    let etag = full.h("etag").unwrap();
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
    assert!(full.h("last-modified").unwrap().ends_with(" GMT"));
    let total = full.body.len() as u64;
    assert!(total > 1_000_000, "{total}");
    // The same ETag for the same content, request after request.
    assert_eq!(fetch(&s, &url, &[]).await.h("etag").as_deref(), Some(etag.as_str()));

    for n in [0, 1, 65_535, 65_536, 70_001, total / 2, total - 1] {
        let r = fetch(&s, &url, &[("range", &format!("bytes={n}-")), ("if-range", &etag)]).await;
        assert_eq!(r.code, 206, "from {n}");
        assert_eq!(r.h("content-range"), Some(format!("bytes {n}-{}/{total}", total - 1)));
        assert_eq!(r.h("content-length"), Some((total - n).to_string()));
        assert_eq!(r.h("etag").as_deref(), Some(etag.as_str()));
        assert!(r.body == full.body[n as usize..], "bytes from {n}");
    }
    let r = fetch(&s, &url, &[("range", "bytes=100-199")]).await;
    assert_eq!((r.code, r.h("content-range")), (206, Some(format!("bytes 100-199/{total}"))));
    assert_eq!(r.body, full.body[100..200]);
    let r = fetch(&s, &url, &[("range", "bytes=-10")]).await;
    assert_eq!(r.body, full.body[total as usize - 10..]);
    // Once the size is known, whole-file answers carry Content-Length too.
    assert_eq!(fetch(&s, &url, &[]).await.h("content-length"), Some(total.to_string()));
}

// issue 14 (protocol K2): ranges of a gzip response are over the gzip bytes, which are the same
// on every request, so a prefix plus a 206 remainder is the same stream and decodes to the file.
#[tokio::test]
async fn ranges_gzip() {
    let s = server().await;
    let url = file_url(&s, "").await;
    let plain = fetch(&s, &url, &[]).await.body;
    let a = fetch(&s, &url, &[GZ]).await;
    let b = fetch(&s, &url, &[GZ]).await;
    assert_eq!((a.code, a.h("content-encoding").as_deref()), (200, Some("gzip")));
    assert!(a.body == b.body, "deterministic gzip");
    assert_ne!(a.h("etag"), fetch(&s, &url, &[]).await.h("etag"), "identity and gzip differ");
    assert_eq!(gunzip(&a.body).unwrap().as_bytes(), &plain[..]);
    let etag = a.h("etag").unwrap();
    let total = a.body.len();
    for n in [1, 10, 11, 5_000, total / 3, total - 9] {
        let r = fetch(&s, &url, &[GZ, ("range", &format!("bytes={n}-")), ("if-range", &etag)]).await;
        assert_eq!(r.code, 206, "from {n}");
        assert_eq!(r.h("content-range"), Some(format!("bytes {n}-{}/{total}", total - 1)));
        assert_eq!(r.h("content-encoding").as_deref(), Some("gzip"));
        let mut joined = a.body[..n].to_vec();
        joined.extend_from_slice(&r.body);
        assert!(joined == a.body, "prefix + 206 from {n}");
    }
    // Another job over the same data: other validators, the same bytes.
    let url2 = file_url(&s, "ms=0").await;
    let c = fetch(&s, &url2, &[GZ]).await;
    assert!(c.body == a.body);
    assert_ne!(c.h("etag"), a.h("etag"));
}

// issue 14 (protocol K1, RFC 9110 §13.1.5): If-Range that does not name the representation →
// the whole file with 200; the Last-Modified date works as a validator; a weak tag never does.
#[tokio::test]
async fn if_range_mismatch_is_200() {
    let s = server().await;
    let url = file_url(&s, "").await;
    let full = fetch(&s, &url, &[]).await;
    let lm = full.h("last-modified").unwrap();
    let weak = format!("W/{}", full.h("etag").unwrap());
    for ir in ["\"not-this-one\"", weak.as_str(), "Thu, 01 Jan 2015 00:00:00 GMT"] {
        let r = fetch(&s, &url, &[("range", "bytes=10-"), ("if-range", ir)]).await;
        assert_eq!(r.code, 200, "{ir}");
        assert!(r.h("content-range").is_none());
        assert!(r.body == full.body);
    }
    let r = fetch(&s, &url, &[("range", "bytes=10-"), ("if-range", &lm)]).await;
    assert_eq!(r.code, 206);
    assert!(r.body == full.body[10..]);
    let st = s.stats().await;
    assert_eq!(st["files"]["200_to_range"], 3);
    assert_eq!(st["files"]["206"], 1);
}

// issue 14 (protocol K1): a range past the end → 416 with Content-Range: bytes */TOTAL.
#[tokio::test]
async fn unsatisfiable_is_416() {
    let s = server().await;
    let url = file_url(&s, "").await;
    let total = fetch(&s, &url, &[]).await.body.len();
    for r in [format!("bytes={total}-"), format!("bytes={}-{}", total + 5, total + 9), "bytes=-0".to_string()] {
        let g = fetch(&s, &url, &[("range", &r)]).await;
        assert_eq!(g.code, 416, "{r}");
        assert_eq!(g.h("content-range"), Some(format!("bytes */{total}")));
        assert!(g.body.is_empty());
    }
    assert_eq!(s.stats().await["files"]["416"], 3);
}

/// Downloads `url` the way a resuming client does: after a break at N, `Range: bytes=N-` with
/// `If-Range`; returns the bytes and the number of requests.
async fn resume_download(s: &Srv, url: &str, gzip: bool) -> (Vec<u8>, Vec<u16>, Vec<usize>) {
    let mut body = Vec::new();
    let (mut codes, mut sizes) = (Vec::new(), Vec::new());
    let mut etag = String::new();
    for _ in 0..100 {
        let range = format!("bytes={}-", body.len());
        let mut h: Vec<(&str, &str)> = Vec::new();
        if gzip {
            h.push(GZ);
        }
        if !body.is_empty() {
            h.push(("range", &range));
            h.push(("if-range", &etag));
        }
        let g = fetch(s, url, &h).await;
        codes.push(g.code);
        sizes.push(g.body.len());
        if g.code == 200 {
            body.clear();
        }
        etag = g.h("etag").unwrap();
        body.extend_from_slice(&g.body);
        if g.complete {
            return (body, codes, sizes);
        }
    }
    panic!("{url} never completed: {codes:?}");
}

// issue 14: fault `cut=BYTES` aborts a body after exactly BYTES bytes, then the range request
// BYTES later again; stitched together the pieces are the clean file, with no byte sent twice.
#[tokio::test]
async fn cut_then_resume() {
    let s = server().await;
    let clean = fetch(&s, &file_url(&s, "").await, &[]).await.body;
    let clean_gz = fetch(&s, &file_url(&s, "").await, &[GZ]).await.body;
    s.c.post(s.url("/_admin/reset")).send().await.unwrap();

    let url = file_url(&s, "cut=400000").await;
    let (got, codes, sizes) = resume_download(&s, &url, false).await;
    assert!(got == clean, "byte-identical after cuts");
    let n = clean.len().div_ceil(400_000);
    assert_eq!(codes.len(), n);
    assert_eq!(codes[0], 200);
    assert!(codes[1..].iter().all(|c| *c == 206), "{codes:?}");
    assert!(sizes[..n - 1].iter().all(|z| *z == 400_000), "{sizes:?}");
    let st = s.stats().await;
    assert_eq!(st["file_bytes_sent"], clean.len() as u64, "nothing sent twice");
    assert_eq!(st["files"]["cut"], n as u64 - 1);
    assert_eq!(st["bytes"]["routes"]["bulk.file"], clean.len() as u64);

    let url = file_url(&s, "cut=30000").await;
    let (got, codes, _) = resume_download(&s, &url, true).await;
    assert!(got == clean_gz, "gzip: byte-identical after cuts");
    assert_eq!(codes.len(), clean_gz.len().div_ceil(30_000));

    // A client that starts over is cut at the next offset not yet cut: it ends, late.
    let url = file_url(&s, "cut=600000").await;
    let first = fetch(&s, &url, &[]).await;
    assert_eq!((first.complete, first.body.len()), (false, 600_000));
    let second = fetch(&s, &url, &[]).await;
    assert_eq!((second.complete, second.body.len()), (false, 1_200_000));
    let third = fetch(&s, &url, &[]).await;
    assert!(third.complete && third.body == clean);
}

// issue 14: fault `norange`: no Accept-Ranges and Range ignored (200, the whole file).
#[tokio::test]
async fn norange_ignores_ranges() {
    let s = server().await;
    let url = file_url(&s, "norange").await;
    let full = fetch(&s, &url, &[]).await;
    assert!(full.h("accept-ranges").is_none());
    let r = fetch(&s, &url, &[("range", "bytes=10-"), ("if-range", &full.h("etag").unwrap())]).await;
    assert_eq!(r.code, 200);
    assert!(r.h("accept-ranges").is_none() && r.h("content-range").is_none());
    assert!(r.body == full.body);
    assert_eq!(s.stats().await["files"]["200_to_range"], 1);
}

// issue 14 (protocol K1): fault `rangechange`: the second request of a file sees other
// validators, so its If-Range fails (200, the whole file); with the new ETag ranges work again.
#[tokio::test]
async fn rangechange_fails_if_range_once() {
    let s = server().await;
    let url = file_url(&s, "rangechange").await;
    let first = fetch(&s, &url, &[]).await;
    let (e1, lm1) = (first.h("etag").unwrap(), first.h("last-modified").unwrap());
    let second = fetch(&s, &url, &[("range", "bytes=100-"), ("if-range", &e1)]).await;
    assert_eq!(second.code, 200);
    let e2 = second.h("etag").unwrap();
    assert_ne!(e1, e2);
    assert_ne!(second.h("last-modified").unwrap(), lm1);
    assert!(second.body == first.body, "same bytes, new validators");
    let third = fetch(&s, &url, &[("range", "bytes=100-"), ("if-range", &e2)]).await;
    assert_eq!(third.code, 206);
    assert!(third.body == first.body[100..]);
}

async fn in_flight(s: &Srv) -> u64 {
    s.stats().await["files"]["in_flight"].as_u64().unwrap()
}

async fn wait_in_flight(s: &Srv, n: u64) {
    for _ in 0..1000 {
        if in_flight(s).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never {n} downloads in flight");
}

// issue 14 (protocol K3): fault `conn=N`: more than N downloads of the job in flight → 429 +
// Retry-After: 1; a slot frees as soon as a body is done, so a client at N never sees a 429.
#[tokio::test]
async fn conn_limit_429() {
    let s = start(|c| c.patients = 20).await;
    let (_, loc) = s.kick("/_f/conn=2;slow=100000/bulk/fhir/$export?_type=Patient,Observation,Encounter").await;
    let m = s.poll(&loc).await.json();
    let urls: Vec<String> = m["output"].as_array().unwrap().iter().map(|o| o["url"].as_str().unwrap().into()).collect();
    assert_eq!(urls.len(), 3);
    let a = tokio::spawn({
        let (c, u) = (s.c.clone(), urls[0].clone());
        async move { c.get(u).send().await.unwrap().bytes().await.unwrap().len() }
    });
    let b = tokio::spawn({
        let (c, u) = (s.c.clone(), urls[1].clone());
        async move { c.get(u).send().await.unwrap().bytes().await.unwrap().len() }
    });
    wait_in_flight(&s, 2).await;
    let r = fetch(&s, &urls[2], &[]).await;
    assert_eq!(r.code, 429);
    assert_eq!(r.h("retry-after").as_deref(), Some("1"));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["issue"][0]["code"], "throttled");
    assert!(a.await.unwrap() > 0 && b.await.unwrap() > 0);
    // Each finished body gave its slot back before the client saw its end.
    assert_eq!(in_flight(&s).await, 0);
    for u in &urls {
        assert_eq!(fetch(&s, u, &[]).await.code, 200);
    }
    let st = s.stats().await;
    assert_eq!(st["max_files_in_flight"], 2);
    assert_eq!(st["files"]["429"], 1);
    let job = st["jobs"].as_object().unwrap().values().next().unwrap().clone();
    assert_eq!(job["max_files_in_flight"], 2);
    // Sequential downloads at the limit never see a 429 (the politeness tests rely on it).
    let (_, loc) = s.kick("/_f/conn=1/bulk/fhir/$export?_type=Patient,Observation,Encounter").await;
    let m = s.poll(&loc).await.json();
    for _ in 0..5 {
        for o in m["output"].as_array().unwrap() {
            assert_eq!(fetch(&s, o["url"].as_str().unwrap(), &[]).await.code, 200);
        }
    }
}

// issue 14: /_admin/stats counts body bytes per route and in total, and file bytes separately.
#[tokio::test]
async fn stats_count_bytes_on_the_wire() {
    let s = server().await;
    let url = file_url(&s, "").await;
    let full = fetch(&s, &url, &[]).await.body.len() as u64;
    let part = fetch(&s, &url, &[("range", "bytes=1000-")]).await.body.len() as u64;
    let st = s.stats().await;
    assert_eq!(st["file_bytes_sent"], full + part);
    assert_eq!(st["bytes"]["routes"]["bulk.file"], full + part);
    let status = st["bytes"]["routes"]["bulk.status"].as_u64().unwrap();
    assert!(status > 100, "the manifest's bytes");
    let sum: u64 = st["bytes"]["routes"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(st["bytes"]["total"], sum);
    assert_eq!((st["files"]["200"].as_u64(), st["files"]["206"].as_u64()), (Some(1), Some(1)));
    assert_eq!(st["max_files_in_flight"], 1);
    s.c.post(s.url("/_admin/reset")).send().await.unwrap();
    let st = s.stats().await;
    assert_eq!((st["file_bytes_sent"].as_u64(), st["bytes"]["total"].as_u64()), (Some(0), Some(0)));
}

// issue 14 (protocol K1, K2): ranges resume the same way whatever the file's generator: patient
// blocks (organizeOutputBy), filtered selections, `_elements`, fixed error files; on the storage
// origin and Medplum's signed URLs too.
#[tokio::test]
async fn ranges_on_every_kind_of_file() {
    let s = server().await;
    let mut urls = Vec::new();
    for q in [
        "/_f/storage/bulk/fhir/$export?organizeOutputBy=Patient",
        "/bulk/fhir/$export?_type=Observation&_typeFilter=Observation%3Fcategory%3Dlaboratory",
        "/bulk/fhir/$export?_type=Encounter&_elements=status",
        "/_f/partial/bulk/fhir/$export?_type=Patient,Observation",
    ] {
        let (_, loc) = s.kick(q).await;
        let m = s.poll(&loc).await.json();
        for key in ["output", "error"] {
            urls.extend(m[key].as_array().unwrap().iter().map(|o| o["url"].as_str().unwrap().to_string()).take(1));
        }
    }
    let (_, loc) = s.kick("/medplum/fhir/R4/$export?_type=Patient").await;
    let m = s.poll(&loc).await.json();
    urls.push(m["output"][0]["url"].as_str().unwrap().to_string());
    assert!(urls.iter().any(|u| u.starts_with(&s.storage)), "{urls:?}");
    for url in &urls {
        for gzip in [false, true] {
            let h: &[(&str, &str)] = if gzip { &[GZ] } else { &[] };
            let full = fetch(&s, url, h).await;
            assert_eq!(full.code, 200, "{url}");
            let etag = full.h("etag").unwrap();
            let total = full.body.len();
            for n in [1, total / 2, total - 1] {
                let mut hh = h.to_vec();
                let r = format!("bytes={n}-");
                hh.extend([("range", r.as_str()), ("if-range", etag.as_str())]);
                let g = fetch(&s, url, &hh).await;
                assert_eq!(g.code, 206, "{url} from {n}");
                assert!(g.body == full.body[n..], "{url} gzip={gzip} from {n}");
            }
        }
    }
    let st = s.stats().await;
    assert!(st["bytes"]["routes"]["storage.file"].as_u64().unwrap() > 0);
    assert!(st["bytes"]["routes"]["medplum.storage"].as_u64().unwrap() > 0);
}

// issue 14: a `reset` body is the first half of the real representation under its validators,
// so a range continues it (identity and gzip).
#[tokio::test]
async fn reset_continues_with_a_range() {
    let s = server().await;
    for gzip in [false, true] {
        let h: &[(&str, &str)] = if gzip { &[GZ] } else { &[] };
        let clean = fetch(&s, &file_url(&s, "").await, h).await.body;
        let url = file_url(&s, "reset").await;
        let (got, codes, _) = resume_download(&s, &url, gzip).await;
        assert_eq!(codes, [200, 206], "gzip={gzip}");
        assert!(got == clean, "gzip={gzip}");
    }
}
