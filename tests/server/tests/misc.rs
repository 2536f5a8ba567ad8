//! Auth, CORS, stats, discovery and the binary itself.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use reqwest::Method;
use serde_json::json;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

#[tokio::test]
async fn bearer_token_required() {
    let s = start(|c| c.token = Some("T".into())).await;
    let r = s.req(Method::GET, &s.url("/bulk/fhir/$export?_type=Patient"), &[("prefer", "respond-async")], None).await;
    assert_oo(&r, 401, "login");
    assert_eq!(r.h("www-authenticate").as_deref(), Some("Bearer"));
    let auth = [("prefer", "respond-async"), ("authorization", "Bearer T")];
    let r = s.req(Method::GET, &s.url("/bulk/fhir/$export?_type=Patient"), &auth, None).await;
    assert_eq!(r.code(), 202);
    let loc = r.h("content-location").unwrap();
    assert_eq!(s.get(&loc).await.code(), 401);
    let m = s.req(Method::GET, &loc, &auth, None).await.json();
    assert_eq!(m["requiresAccessToken"], true);
    let url = m["output"][0]["url"].as_str().unwrap();
    assert_eq!(s.get(url).await.code(), 401);
    assert_eq!(s.req(Method::GET, url, &auth, None).await.code(), 200);
    // discovery stays public
    assert_eq!(s.get(&s.url("/bulk/fhir/metadata")).await.code(), 200);
    let sc = s.get(&s.url("/bulk/fhir/.well-known/smart-configuration")).await.json();
    assert_eq!(sc["token_endpoint"], s.url("/auth/token"));
}

async fn assertion_token(s: &Srv, alg: jsonwebtoken::Algorithm, kid: &str, pem: &str) -> reqwest::Response {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"iss":"client-1","sub":"client-1","aud":s.url("/auth/token"),"exp":now+300,"jti":format!("j{now}{kid}")});
    let mut h = jsonwebtoken::Header::new(alg);
    h.kid = Some(kid.into());
    let key = std::fs::read(fixture(pem)).unwrap();
    let key = match alg {
        jsonwebtoken::Algorithm::ES384 => jsonwebtoken::EncodingKey::from_ec_pem(&key).unwrap(),
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(&key).unwrap(),
    };
    let jwt = jsonwebtoken::encode(&h, &claims, &key).unwrap();
    let form = format!(
        "grant_type=client_credentials&scope=system%2F*.read&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={jwt}"
    );
    s.c.post(s.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn backend_services_tokens() {
    let s = start(|c| {
        c.jwks = Some(fixture("jwks.json"));
        c.token_ttl = 300;
    })
    .await;
    for (alg, kid, pem) in [
        (jsonwebtoken::Algorithm::ES384, "test-es384", "es384-private.pem"),
        (jsonwebtoken::Algorithm::RS384, "test-rs384", "rs384-private.pem"),
    ] {
        let r = assertion_token(&s, alg, kid, pem).await;
        assert_eq!(r.status(), 200);
        let t: serde_json::Value = r.json().await.unwrap();
        assert_eq!(t["token_type"], "bearer");
        assert_eq!(t["expires_in"], 300);
        assert_eq!(t["scope"], "system/*.read");
        let bearer = format!("Bearer {}", t["access_token"].as_str().unwrap());
        assert_eq!(export_with(&s, &bearer).await.code(), 202);
    }
    // wrong key for the kid
    let r = assertion_token(&s, jsonwebtoken::Algorithm::ES384, "test-rs384", "es384-private.pem").await;
    assert_eq!(r.status(), 401);
    let r = s.c.post(s.url("/auth/token")).body("grant_type=password").send().await.unwrap();
    assert_eq!(r.status(), 400);
}

/// A system `$export` kick-off with this `Authorization` value.
async fn export_with(s: &Srv, authorization: &str) -> Resp {
    s.req(
        Method::GET,
        &s.url("/bulk/fhir/$export"),
        &[("prefer", "respond-async"), ("authorization", authorization)],
        None,
    )
    .await
}

#[tokio::test]
async fn issued_tokens_expire() {
    let s = start(|c| {
        c.jwks = Some(fixture("jwks.json"));
        c.token_ttl = 0;
    })
    .await;
    let t: serde_json::Value = assertion_token(&s, jsonwebtoken::Algorithm::ES384, "test-es384", "es384-private.pem")
        .await
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", t["access_token"].as_str().unwrap());
    let r = export_with(&s, &bearer).await;
    assert_eq!(r.code(), 401);
    assert!(r.h("www-authenticate").unwrap().contains("invalid_token"));
}

#[tokio::test]
async fn cors_and_preflight() {
    let s = start(|_| {}).await;
    let r = s
        .req(
            Method::OPTIONS,
            &s.url("/bulk/fhir/$export"),
            &[("origin", "http://x.test"), ("access-control-request-method", "GET")],
            None,
        )
        .await;
    assert_eq!(r.code(), 204);
    assert_eq!(r.h("access-control-allow-origin").as_deref(), Some("http://x.test"));
    assert_eq!(r.h("access-control-allow-methods").as_deref(), Some("GET, POST, DELETE, OPTIONS"));
    assert_eq!(
        r.h("access-control-allow-headers").as_deref(),
        Some("Authorization, Prefer, Content-Type, Accept, Range, If-Range")
    );
    let r = s.get(&s.url("/bulk/fhir/metadata")).await;
    assert_eq!(r.h("access-control-allow-origin").as_deref(), Some("*"));
    assert!(r.h("access-control-expose-headers").unwrap().contains("X-Export-Status"));
    let s2 = start(|c| c.no_expose_headers = true).await;
    assert!(s2.get(&s2.url("/bulk/fhir/metadata")).await.h("access-control-expose-headers").is_none());
}

#[tokio::test]
async fn stats_count_routes_and_jobs() {
    let s = start(|c| c.job_ms = 60_000).await;
    let (_, loc) = s.kick("/bulk/fhir/$export").await;
    for _ in 0..3 {
        s.get(&loc).await;
    }
    let st = s.stats().await;
    assert_eq!(st["routes"]["bulk.kickoff"], 1);
    assert_eq!(st["routes"]["bulk.status"], 3);
    let id = loc.split("_jobId=").nth(1).unwrap();
    assert_eq!(st["jobs"][id]["counts"]["status"], 3);
    assert_eq!(st["jobs"][id]["counts"]["kickoff"], 1);
    let reqs = st["requests"].as_array().unwrap();
    assert_eq!(reqs[0]["headers"]["prefer"], "respond-async");
    assert_eq!(reqs[0]["origin"], "main");
    let r = s.req(Method::POST, &s.url("/_admin/reset"), &[], None).await;
    assert_eq!(r.code(), 200);
    let st = s.stats().await;
    assert_eq!(st["total"], 0);
}

#[test]
fn binary_prints_addresses_and_exits_on_stdin_eof() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fhir-async-testserver"))
        .args(["--addr", "127.0.0.1:0", "--patients", "5", "--exit-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut l1 = String::new();
    let mut l2 = String::new();
    out.read_line(&mut l1).unwrap();
    out.read_line(&mut l2).unwrap();
    assert!(l1.starts_with("listening on http://127.0.0.1:"), "{l1}");
    assert!(l2.starts_with("storage on http://127.0.0.1:"), "{l2}");
    drop(child.stdin.take());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "server did not exit on stdin EOF");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn help_documents_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_fhir-async-testserver")).arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--patients",
        "--seed",
        "--token",
        "--jwks",
        "--token-ttl",
        "--job-ms",
        "--retry-after",
        "--oracle-retry-after",
        "--file-resources",
        "--faults",
        "--callback-secret",
        "--long-poll-ms",
        "--no-expose-headers",
        "--log",
        "--exit-on-stdin-eof",
        "--page-size",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

#[tokio::test]
async fn access_log_lines() {
    let path = std::env::temp_dir().join(format!("fhir-async-testserver-log-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let p2 = path.clone();
    let s = start(move |c| c.log = Some(p2)).await;
    s.get(&s.url("/bulk/fhir/metadata")).await;
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().next().unwrap();
    assert!(line.contains(" main GET /bulk/fhir/metadata 200 "), "{line}");
    let _ = std::fs::remove_file(&path);
}

#[cfg(unix)]
#[test]
fn binary_exits_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fhir-async-testserver"))
        .args(["--patients", "5"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut l1 = String::new();
    out.read_line(&mut l1).unwrap();
    assert!(l1.starts_with("listening on "));
    let st = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "clean exit: {st:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "server ignored SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[tokio::test]
async fn hostile_inputs_get_outcomes_not_panics() {
    let s = start(|c| c.page_size = 3).await;
    let (_, loc) = s.kick("/_f/ms=18446744073709551615;retry=18446744073709551615;retry-date/bulk/fhir/$export?allowPartialManifests=true").await;
    let r = s.get(&loc).await;
    assert_eq!(r.code(), 202);
    assert!(r.h("retry-after").unwrap().ends_with(" GMT"));
    let r = s.get(&format!("{loc}&_page=18446744073709551615")).await;
    assert_eq!(r.code(), 202);
    let cases: Vec<(Method, &str, &str)> = vec![
        (Method::POST, "/bulk/fhir/$export", "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"_since\",\"valueInstant\":\"garbage\"}]}"),
        (Method::POST, "/bulk/fhir/$export", "{\"resourceType\":\"Parameters\",\"parameter\":[{\"nope\":1}]}"),
        (Method::POST, "/bulk/fhir/$export", "[1,2,3]"),
        (Method::POST, "/bulk/fhir/$export", "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"patient\",\"valueReference\":{\"reference\":\"Patient/Patient-99999999999999999999\"}}]}"),
        (Method::GET, "/bulk/fhir/$export?_since=2020-02-30T99:99:99Z", ""),
        (Method::GET, "/bulk/fhir/$export?_typeFilter=%3F%3F%3F", ""),
        (Method::GET, "/bulk/fhir/$export?_elements=&_type=,,,", ""),
        (Method::GET, "/bulk/fhir/$export-poll-status", ""),
        (Method::GET, "/bulk/fhir/$export-poll-status?_jobId=x&_page=0", ""),
        (Method::GET, "/bulk/fhir/_files/x/y", ""),
        (Method::PATCH, "/bulk/fhir/$export", ""),
        (Method::GET, "/oracle/r4/t/bulk-export/files/nodash", ""),
        (Method::GET, "/oracle/r4/t/bulk-export/files/a-b-99999999999999999999999", ""),
        (Method::GET, "/oracle/r4/", ""),
        (Method::POST, "/medplum/fhir/R4/AsyncJob/x/$cancel", "zzz"),
        (Method::GET, "/medplum/fhir/R4/AsyncJob", ""),
        (Method::POST, "/medplum/fhir/R4/AsyncJob", "{\"resourceType\":\"AsyncJob\",\"status\":\"accepted\",\"request\":7}"),
        (Method::POST, "/medplum/fhir/R4/", "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":{}}"),
        (Method::POST, "/medplum/fhir/R4", "[]"),
        (Method::GET, "/medplum/fhir/R4/Binary/x", ""),
        (Method::DELETE, "/medplum/fhir/R4/bulkdata/export/x", ""),
        (Method::DELETE, "/medplum/fhir/R4/job/x/status", ""),
        (Method::GET, "/storage/x/y?Signature=00", ""),
        (Method::GET, "/_f/ms=1/storage/x", ""),
        (Method::GET, "/medplum-doc/fhir/R4/job/x/status", ""),
        (Method::POST, "/aidbox/fhir", "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"request\":{\"method\":\"FLY\"}}]}"),
        (Method::GET, "/aidbox/fhir/Patient?_count=-1", ""),
        (Method::GET, "/aidbox/fhir/Observation?patient=Patient/Patient-99999999999", ""),
        (Method::GET, "/aidbox/fhir/_async/x/result", ""),
        (Method::PUT, "/aidbox/fhir/_async/x", ""),
        (Method::GET, "/r5/fhir/Nope?x=1", ""),
        (Method::POST, "/r5/fhir/$whatever", "{bad"),
        (Method::POST, "/auth/token", "%%%%&&&==="),
        (Method::GET, "/_f/%FF%FE/bulk/fhir/$export", ""),
        (Method::GET, "/_f/ms=/bulk/fhir/$export", ""),
    ];
    let prefs =
        ["respond-async", "respond-async, async-mode=\"", ",,,;;;==", "respond-async, callback-url=http://10.0.0.1/x"];
    for (m, path, body) in &cases {
        for p in prefs {
            let r = s.req(m.clone(), &s.url(path), &[("prefer", p)], Some(body.to_string())).await;
            assert!(r.code() < 500, "{m} {path} [{p}] -> {} {}", r.code(), String::from_utf8_lossy(&r.body));
        }
    }
    // still alive
    assert_eq!(s.get(&s.url("/bulk/fhir/metadata")).await.code(), 200);
}
