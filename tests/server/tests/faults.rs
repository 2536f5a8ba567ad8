//! Every fault knob, reached through the `/_f/{SPEC}` path prefix.
mod common;

use common::*;
use reqwest::Method;

const B: &str = "/bulk/fhir/$export?_type=Patient";

async fn manifest(s: &Srv, spec: &str) -> (String, serde_json::Value) {
    let (_, loc) = s.kick(&format!("/_f/{spec}{B}")).await;
    let r = s.poll(&loc).await;
    assert_eq!(r.code(), 200, "{}", String::from_utf8_lossy(&r.body));
    (loc, r.json())
}

#[tokio::test]
async fn poll_errors_every_nth() {
    let s = start(|c| c.job_ms = 60_000).await;
    let (_, loc) = s.kick(&format!("/_f/e500=2{B}")).await;
    assert!(loc.contains("/_f/e500=2/bulk/fhir/$export-poll-status"));
    assert_eq!(s.get(&loc).await.code(), 202);
    assert_oo(&s.get(&loc).await, 500, "transient");
    assert_eq!(s.get(&loc).await.code(), 202);

    let (_, loc) = s.kick(&format!("/_f/e503html=1{B}")).await;
    let r = s.get(&loc).await;
    assert_eq!(r.code(), 503);
    assert!(r.h("content-type").unwrap().starts_with("text/html"));

    let (_, loc) = s.kick(&format!("/_f/e429=1;retry=3{B}")).await;
    let r = s.get(&loc).await;
    assert_eq!(r.code(), 429);
    assert_eq!(r.h("retry-after").as_deref(), Some("3"));

    let (_, loc) = s.kick(&format!("/_f/e429date=1{B}")).await;
    let r = s.get(&loc).await;
    assert_eq!(r.code(), 429);
    assert!(r.h("retry-after").unwrap().ends_with(" GMT"));
}

#[tokio::test]
async fn retry_after_forms() {
    let s = start(|c| c.job_ms = 60_000).await;
    let (_, loc) = s.kick(&format!("/_f/retry-date{B}")).await;
    assert!(s.get(&loc).await.h("retry-after").unwrap().ends_with(" GMT"));
    let (_, loc) = s.kick(&format!("/_f/no-retry{B}")).await;
    assert!(s.get(&loc).await.h("retry-after").is_none());
    let (_, loc) = s.kick(&format!("/_f/retry=9{B}")).await;
    assert_eq!(s.get(&loc).await.h("retry-after").as_deref(), Some("9"));
}

#[tokio::test]
async fn ratelimit_and_never() {
    let s = start(|_| {}).await;
    let (_, loc) = s.kick(&format!("/_f/ratelimit=2;never{B}")).await;
    let codes = [s.get(&loc).await.code(), s.get(&loc).await.code(), s.get(&loc).await.code()];
    // Three quick polls: at most two in one second; the third (if same second) is 429.
    assert_eq!(&codes[..2], &[202, 202]);
    assert!(codes[2] == 429 || codes[2] == 202);
    assert!(s.get(&loc).await.code() == 429 || codes[2] == 202);
}

#[tokio::test]
async fn kick429_first_n() {
    let s = start(|_| {}).await;
    let url = s.url(&format!("/_f/kick429=2{B}"));
    let p = [("prefer", "respond-async")];
    for _ in 0..2 {
        let r = s.req(Method::GET, &url, &p, None).await;
        assert_oo(&r, 429, "throttled");
        assert_eq!(r.h("retry-after").as_deref(), Some("1"));
    }
    assert_eq!(s.req(Method::GET, &url, &p, None).await.code(), 202);
}

#[tokio::test]
async fn location_variants() {
    let s = start(|_| {}).await;
    let p = [("prefer", "respond-async")];
    let r = s.req(Method::GET, &s.url("/_f/relative/bulk/fhir/Group/7/$export"), &p, None).await;
    let rel = r.h("content-location").unwrap();
    assert!(rel.starts_with("../../$export-poll-status?_jobId="), "{rel}");
    let abs = reqwest::Url::parse(&s.url("/_f/relative/bulk/fhir/Group/7/$export")).unwrap().join(&rel).unwrap();
    assert_eq!(s.poll(abs.as_str()).await.code(), 200);

    let r = s.req(Method::GET, &s.url(&format!("/_f/noloc{B}")), &p, None).await;
    assert!(r.h("content-location").is_none());
    assert_eq!(s.poll(&r.h("location").unwrap()).await.code(), 200);

    let r = s.req(Method::GET, &s.url(&format!("/_f/ooloc{B}")), &p, None).await;
    assert_eq!(r.code(), 202);
    assert!(r.h("content-location").is_none() && r.h("location").is_none());
    let url = r.json()["issue"][0]["diagnostics"].as_str().unwrap().to_string();
    assert_eq!(s.poll(&url).await.code(), 200);
}

#[tokio::test]
async fn reset_then_retry() {
    let s = start(|_| {}).await;
    let (_, m) = manifest(&s, "reset").await;
    let url = m["output"][0]["url"].as_str().unwrap();
    let first = s.c.get(url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.bytes().await.is_err(), "body aborted mid-way");
    assert_eq!(s.ndjson(url, false).await.len(), 100);
    assert_eq!(s.ndjson(url, true).await.len(), 100);
}

#[tokio::test]
async fn gzbad_then_retry() {
    let s = start(|_| {}).await;
    let (_, m) = manifest(&s, "gzbad").await;
    let url = m["output"][0]["url"].as_str().unwrap();
    let r = s.req(Method::GET, url, &[("accept-encoding", "gzip")], None).await;
    assert_eq!(r.code(), 200);
    assert!(gunzip(&r.body).is_err(), "truncated gzip");
    assert_eq!(s.ndjson(url, true).await.len(), 100);
}

#[tokio::test]
async fn gzcorrupt_then_retry() {
    let s = start(|_| {}).await;
    let (_, m) = manifest(&s, "gzcorrupt").await;
    let url = m["output"][0]["url"].as_str().unwrap();
    let r = s.req(Method::GET, url, &[("accept-encoding", "gzip")], None).await;
    assert_eq!(r.code(), 200);
    let mut d = flate2::read::GzDecoder::new(&r.body[..]);
    let mut out = Vec::new();
    let err = std::io::Read::read_to_end(&mut d, &mut out).unwrap_err();
    assert_ne!(err.kind(), std::io::ErrorKind::UnexpectedEof, "corrupt, not merely truncated: {err}");
    assert!(!out.is_empty(), "the first half decodes");
    assert_eq!(s.ndjson(url, true).await.len(), 100);
}

#[tokio::test]
async fn slow_bodies() {
    let s = start(|_| {}).await;
    let (_, m) = manifest(&s, "slow=200000").await;
    let url = m["output"][0]["url"].as_str().unwrap();
    let t = std::time::Instant::now();
    let lines = s.ndjson(url, false).await;
    let bytes: usize = lines.iter().map(|l| l.to_string().len() + 1).sum();
    let min_ms = (bytes as u128 * 1000 / 200_000) * 8 / 10;
    assert!(t.elapsed().as_millis() >= min_ms, "{:?} for {bytes} bytes", t.elapsed());
}

#[tokio::test]
async fn expire_gives_fresh_urls() {
    let s = start(|_| {}).await;
    let (loc, m) = manifest(&s, "expire").await;
    let url = m["output"][0]["url"].as_str().unwrap();
    assert_oo(&s.get(url).await, 410, "expired");
    let m2 = s.get(&loc).await.json();
    let url2 = m2["output"][0]["url"].as_str().unwrap();
    assert!(url2.ends_with("?g=1"), "{url2}");
    assert_eq!(s.ndjson(url2, false).await.len(), 100);
}

#[tokio::test]
async fn fail_and_partial() {
    let s = start(|_| {}).await;
    let (_, loc) = s.kick(&format!("/_f/fail{B}")).await;
    assert_oo(&s.poll(&loc).await, 500, "processing");
    let (_, m) = {
        let (_, loc) = s.kick("/_f/partial/bulk/fhir/$export?_type=Patient,Observation,Condition").await;
        let r = s.poll(&loc).await;
        ((), r.json())
    };
    let types: Vec<&str> = m["output"].as_array().unwrap().iter().map(|o| o["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["Patient", "Condition"]);
    let err = s.ndjson(m["error"][0]["url"].as_str().unwrap(), false).await;
    assert!(err[0]["issue"][0]["diagnostics"].as_str().unwrap().contains("Observation"));
}

#[tokio::test]
async fn storage_fault_moves_bulk_files() {
    let s = start(|c| c.token = Some("secret".into())).await;
    let r = s
        .req(
            Method::GET,
            &s.url(&format!("/_f/storage{B}")),
            &[("prefer", "respond-async"), ("authorization", "Bearer secret")],
            None,
        )
        .await;
    let loc = r.h("content-location").unwrap();
    let m = s.req(Method::GET, &loc, &[("authorization", "Bearer secret")], None).await.json();
    assert_eq!(m["requiresAccessToken"], true);
    let url = m["output"][0]["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/_f/storage/storage/", s.storage)), "{url}");
    assert_eq!(s.req(Method::GET, url, &[("authorization", "Bearer secret")], None).await.code(), 403);
    assert_eq!(s.ndjson(url, false).await.len(), 100);
    assert_eq!(s.stats().await["storage_requests_with_authorization"], 1, "the 403 above is counted");
}

#[tokio::test]
async fn server_wide_faults_and_bad_spec() {
    let s = start(|c| c.faults = "e500=1".into()).await;
    let (_, loc) = s.kick(B).await;
    assert_oo(&s.get(&loc).await, 500, "transient");
    // a prefix overrides the server default
    let (_, loc) = s.kick(&format!("/_f/e500=0{B}")).await;
    assert_eq!(s.get(&loc).await.code(), 200);
    assert_oo(&s.get(&s.url("/_f/bogus/bulk/fhir/$export")).await, 400, "invalid");
}

#[tokio::test]
async fn combined_percent_encoded_spec() {
    let s = start(|_| {}).await;
    let spec = "e500%3D3%3Be503html%3D4%3Breset%3Bgzbad%3Bexpire%3Bstorage";
    let (_, loc) = s.kick(&format!("/_f/{spec}/bulk/fhir/$export?_type=Patient")).await;
    assert!(loc.contains(&format!("/_f/{spec}/bulk/fhir/")), "{loc}");
    let mut seen = Vec::new();
    let manifest = loop {
        let r = s.get(&loc).await;
        seen.push(r.code());
        if r.code() == 200 {
            break r.json();
        }
        assert!(seen.len() < 50);
    };
    assert_eq!(seen, [200], "ms=0: done at the first poll, before any poll fault");
    let url = manifest["output"][0]["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/_f/{spec}/storage/", s.storage)));
    assert_eq!(s.get(url).await.code(), 410);
    // a re-poll: poll 2 is fine, poll 3 is the e500; then fresh URLs
    let m2 = s.get(&loc).await.json();
    assert_oo(&s.get(&loc).await, 500, "transient");
    let url = m2["output"][0]["url"].as_str().unwrap();
    assert!(url.ends_with("&g=1"));
    let gz = [("accept-encoding", "gzip")];
    assert!(s.c.get(url).header("accept-encoding", "gzip").send().await.unwrap().bytes().await.is_err(), "reset");
    let r = s.req(Method::GET, url, &gz, None).await;
    assert!(gunzip(&r.body).is_err(), "gzbad");
    assert_eq!(s.ndjson(url, true).await.len(), 100);
}

// issue 10 §2: a kick-off 429 whose Retry-After is an epoch time in milliseconds, once.
#[tokio::test]
async fn kick429ms_epoch_milliseconds_once() {
    let s = start(|_| {}).await;
    let url = s.url(&format!("/_f/kick429ms=1{B}"));
    let p = [("prefer", "respond-async")];
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let r = s.req(Method::GET, &url, &p, None).await;
    assert_oo(&r, 429, "throttled");
    let at: u64 = r.h("retry-after").unwrap().parse().expect("a number");
    assert!(at >= before + 2_000 && at <= before + 60_000, "now+2 s in epoch ms: {at} vs {before}");
    assert_eq!(s.req(Method::GET, &url, &p, None).await.code(), 202, "then accepted");
    // `retry=N` sets the distance; the Medplum kick-off honours it as well.
    let r = s.req(Method::GET, &s.url("/_f/kick429ms=1;retry=300/medplum/fhir/R4/$export"), &[], None).await;
    assert_oo(&r, 429, "throttled");
    assert!(r.h("retry-after").unwrap().parse::<u64>().unwrap() >= before + 300_000);
}

// issue 10 §2: an `error` file whose manifest count (100) differs from its lines (1).
#[tokio::test]
async fn errcount_lists_a_wrong_error_count() {
    let s = start(|_| {}).await;
    let (_, m) = manifest(&s, "partial;errcount=100").await;
    // B exports Patient only: `partial` fails it, so the error file holds one line.
    assert_eq!(m["error"][0]["count"], 100);
    assert_eq!(s.ndjson(m["error"][0]["url"].as_str().unwrap(), false).await.len(), 1);
}

// issue 10 §2 (organizeOutputBy): `count-excl-headers` counts as the HL7 reference server
// does (header Parameters lines excluded); by default they are included.
#[tokio::test]
async fn organized_count_with_or_without_headers() {
    let s = start(|_| {}).await;
    let q = "/bulk/fhir/$export?_type=Patient,Encounter&organizeOutputBy=Patient";
    for (spec, headers_counted) in [("ms=0", true), ("count-excl-headers", false)] {
        let (_, loc) = s.kick(&format!("/_f/{spec}{q}")).await;
        let m = s.poll(&loc).await.json();
        let lines = s.ndjson(m["output"][0]["url"].as_str().unwrap(), false).await;
        let headers = lines.iter().filter(|l| l["resourceType"] == "Parameters").count();
        assert_eq!(headers, 100, "one header per patient");
        let want = if headers_counted { lines.len() } else { lines.len() - headers };
        assert_eq!(m["output"][0]["count"].as_u64().unwrap(), want as u64, "{spec}");
    }
}
