//! Aidbox unified pattern (`/aidbox/fhir`) and R5 async-bundle (`/r5/fhir`).
mod common;

use std::sync::{Arc, Mutex};

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn bundle_mode() {
    let s = start(|_| {}).await;
    let r = s
        .req(Method::POST, &s.url("/aidbox/fhir/$reindex"), &[("prefer", "respond-async, foo=bar")], Some("{}".into()))
        .await;
    assert_eq!(r.code(), 202);
    assert_eq!(r.h("preference-applied").as_deref(), Some("respond-async"));
    let loc = r.h("content-location").unwrap();
    assert!(loc.starts_with(&s.url("/aidbox/fhir/_async/")));
    let r = s.poll(&loc).await;
    assert_eq!(r.code(), 200);
    let b = r.json();
    assert_eq!(b["type"], "batch-response");
    assert_eq!(b["entry"][0]["response"]["status"], "200 OK");
    assert_eq!(b["entry"][0]["resource"]["resourceType"], "Parameters");
    // cancel after completion: 202 then 404
    assert_eq!(s.req(Method::DELETE, &loc, &[], None).await.code(), 202);
    assert_oo(&s.get(&loc).await, 404, "not-found");
}

#[tokio::test]
async fn redirect_mode_and_failures() {
    let s = start(|_| {}).await;
    let h = [("prefer", "respond-async, async-mode=redirect")];
    let r = s.req(Method::GET, &s.url("/aidbox/fhir/Patient?name=smi&_count=2"), &h, None).await;
    assert_eq!(r.code(), 202);
    assert_eq!(r.h("preference-applied").as_deref(), Some("respond-async, async-mode=redirect"));
    let loc = r.h("content-location").unwrap();
    let r = s.get(&loc).await;
    assert_eq!(r.code(), 303);
    let res = r.h("location").unwrap();
    assert_eq!(res, format!("{loc}/result"));
    let r = s.get(&res).await;
    assert_eq!(r.code(), 200);
    let b = r.json();
    assert_eq!(b["type"], "searchset");
    assert!(b["entry"].as_array().unwrap().len() <= 2);
    // failing op via redirect: 4xx + OO on the result URL
    let r = s.req(Method::GET, &s.url("/_f/fail/aidbox/fhir/$reindex"), &h, None).await;
    let loc = r.h("content-location").unwrap();
    assert!(loc.contains("/_f/fail/aidbox/fhir/_async/"));
    let r = s.get(&loc).await;
    assert_eq!(r.code(), 303);
    assert_oo(&s.get(&r.h("location").unwrap()).await, 400, "processing");
    // failing op in bundle mode
    let r = s.req(Method::GET, &s.url("/_f/fail/aidbox/fhir/$reindex"), &[("prefer", "respond-async")], None).await;
    let b = s.poll(&r.h("content-location").unwrap()).await.json();
    assert_eq!(b["entry"][0]["response"]["status"], "400 Bad Request");
    assert_eq!(b["entry"][0]["response"]["outcome"]["resourceType"], "OperationOutcome");
    // _outputFormat + redirect: conflict
    let r = s.req(Method::GET, &s.url("/aidbox/fhir/$export?_outputFormat=ndjson"), &h, None).await;
    assert_oo(&r, 400, "invalid");
}

#[tokio::test]
async fn export_manifest_and_sync() {
    let s = start(|_| {}).await;
    let (_, loc) = s.kick("/aidbox/fhir/$export?_outputFormat=application/fhir%2Bndjson&_type=Patient").await;
    let r = s.poll(&loc).await;
    assert_eq!(r.code(), 200);
    let m = r.json();
    assert!(m.get("resourceType").is_none());
    assert_eq!(s.ndjson(m["output"][0]["url"].as_str().unwrap(), true).await.len(), 100);
    // without respond-async: synchronous answer
    let r = s.get(&s.url("/aidbox/fhir/Patient?gender=male&_count=1")).await;
    assert_eq!(r.code(), 200);
    let b = r.json();
    assert_eq!(b["resourceType"], "Bundle");
    assert!(b["total"].as_u64().unwrap() > 10);
    assert_eq!(b["entry"][0]["resource"]["gender"], "male");
    assert_oo(&s.get(&s.url("/aidbox/fhir/Patient/Patient-100000")).await, 404, "not-found");
    assert_eq!(s.get(&s.url("/aidbox/fhir/Patient/Patient-5")).await.json()["id"], "Patient-5");
}

#[tokio::test]
async fn cancel_running() {
    let s = start(|c| c.job_ms = 60_000).await;
    let (_, loc) = s.kick("/aidbox/fhir/$reindex").await;
    let r = s.get(&loc).await;
    assert_eq!(r.code(), 202);
    assert!(r.h("retry-after").is_some());
    assert_eq!(s.req(Method::DELETE, &loc, &[], None).await.code(), 202);
    assert_eq!(s.get(&loc).await.code(), 404);
    assert_eq!(s.get(&s.url("/aidbox/fhir/_async/nope")).await.code(), 404);
}

#[tokio::test]
async fn long_polling_returns_on_completion() {
    let s = start(|c| {
        c.job_ms = 300;
        c.long_poll_ms = 5_000;
    })
    .await;
    let (_, loc) = s.kick("/aidbox/fhir/$reindex").await;
    let t = std::time::Instant::now();
    let r = s.get(&loc).await;
    let took = t.elapsed();
    assert_eq!(r.code(), 200, "held until completion");
    assert!(took.as_millis() >= 200 && took.as_millis() < 4_500, "{took:?}");
}

/// One callback POST as the receiver saw it.
#[derive(Clone)]
struct Received {
    signature: String,
    content_type: String,
    body: Vec<u8>,
}

#[tokio::test]
async fn callback_is_signed() {
    let (cb, got) = receiver().await;
    let s = start(|c| c.job_ms = 50).await;
    let prefer = format!("respond-async, async-mode=redirect, callback-url={cb}");
    let r = s.req(Method::POST, &s.url("/aidbox/fhir/$reindex"), &[("prefer", &prefer)], None).await;
    let loc = r.h("content-location").unwrap();
    let Received { signature: sig, content_type, body } = first_received(&got).await;
    assert_eq!(content_type, "application/fhir+json");
    assert_eq!(sig, fhir_async_testserver::callback::signature("fhir-async-demo-secret", &body));
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"fhir-async-demo-secret").unwrap();
    mac.update(&body);
    assert_eq!(sig, format!("sha256={}", hex::encode(mac.finalize().into_bytes())));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["resourceType"], "Parameters");
    assert_eq!(v["parameter"][0], json!({"name":"status","valueCode":"completed"}));
    assert_eq!(v["parameter"][1], json!({"name":"resultUrl","valueUrl":format!("{loc}/result")}));
}

#[tokio::test]
async fn r5_search_and_transaction() {
    let s = start(|_| {}).await;
    let (_, loc) = s.kick("/r5/fhir/Observation?category=laboratory&_count=3").await;
    let b = s.poll(&loc).await.json();
    assert_eq!(b["type"], "batch-response");
    assert_eq!(b["entry"][0]["response"]["status"], "200 OK");
    let ss = &b["entry"][0]["resource"];
    assert_eq!(ss["type"], "searchset");
    assert_eq!(ss["entry"].as_array().unwrap().len(), 3);
    let (_, loc) = s.kick("/r5/fhir/Patient?_bogus=1").await;
    let b = s.poll(&loc).await.json();
    assert_eq!(b["entry"][0]["response"]["status"], "400 Bad Request");
    assert_eq!(b["entry"][0]["response"]["outcome"]["resourceType"], "OperationOutcome");
    let tx = json!({"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]});
    let r = s
        .req(
            Method::POST,
            &s.url("/r5/fhir"),
            &[("prefer", "respond-async"), ("content-type", "application/fhir+json")],
            Some(tx.to_string()),
        )
        .await;
    assert_eq!(r.code(), 202);
    let b = s.poll(&r.h("content-location").unwrap()).await.json();
    assert_eq!(b["entry"][0]["resource"]["type"], "transaction-response");
    assert_eq!(b["entry"][0]["resource"]["entry"][0]["response"]["status"], "201 Created");
    // malformed JSON: a failing result, never a panic
    let r = s.req(Method::POST, &s.url("/r5/fhir"), &[("prefer", "respond-async")], Some("{{{".into())).await;
    let b = s.poll(&r.h("content-location").unwrap()).await.json();
    assert_eq!(b["entry"][0]["response"]["status"], "400 Bad Request");
}

async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let g2 = got.clone();
    let app = axum::Router::new().route(
        "/cb",
        axum::routing::post(move |h: axum::http::HeaderMap, body: axum::body::Bytes| {
            let g = g2.clone();
            async move {
                let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                let received = Received {
                    signature: header("x-signature"),
                    content_type: header("content-type"),
                    body: body.to_vec(),
                };
                g.lock().unwrap().push(received);
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cb = format!("http://{}/cb", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (cb, got)
}

/// The first callback, waited for with a bound (3 s).
async fn first_received(got: &Arc<Mutex<Vec<Received>>>) -> Received {
    for _ in 0..300 {
        if let Some(r) = got.lock().unwrap().first() {
            return r.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no callback");
}

async fn first(got: &Arc<Mutex<Vec<Received>>>) -> Value {
    serde_json::from_slice(&first_received(got).await.body).unwrap()
}

#[tokio::test]
async fn callback_on_failure_and_cancel() {
    let s = start(|c| c.job_ms = 60_000).await;
    let (cb, got) = receiver().await;
    let prefer = format!("respond-async, callback-url={cb}");
    let r = s.req(Method::POST, &s.url("/_f/fail;ms=0/aidbox/fhir/$reindex"), &[("prefer", &prefer)], None).await;
    let loc = r.h("content-location").unwrap();
    let v = first(&got).await;
    assert_eq!(v["parameter"][0]["valueCode"], "failed");
    assert_eq!(v["parameter"][1]["valueUrl"], loc);
    assert_eq!(v["parameter"][2]["name"], "outcome");
    assert_eq!(v["parameter"][2]["resource"]["resourceType"], "OperationOutcome");

    let (cb, got) = receiver().await;
    let prefer = format!("respond-async, callback-url={cb}");
    let r = s.req(Method::POST, &s.url("/aidbox/fhir/$reindex"), &[("prefer", &prefer)], None).await;
    let loc = r.h("content-location").unwrap();
    assert_eq!(s.req(Method::DELETE, &loc, &[], None).await.code(), 202);
    let v = first(&got).await;
    assert_eq!(v["parameter"][0]["valueCode"], "cancelled");
    assert_eq!(got.lock().unwrap().len(), 1, "exactly one POST");
}
