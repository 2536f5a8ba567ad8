//! The attachments dialect (`/attach/fhir`; issue 24, protocol M): DocumentReference and
//! DiagnosticReport files whose attachments are Binary reads and URLs on both origins, and
//! `GET /_admin/attachments`, which says what each one serves.
mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use fhir_async_testserver::dialects::attach::sha1_b64;
use reqwest::Method;
use serde_json::Value;

const BEARER: (&str, &str) = ("authorization", "Bearer any-token");

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

async fn listing(s: &Srv) -> Value {
    let r = s.get(&s.url("/_admin/attachments")).await;
    assert_eq!(r.code(), 200);
    r.json()
}

fn entry<'a>(l: &'a Value, id: &str) -> &'a Value {
    l["attachments"].as_array().unwrap().iter().find(|a| a["id"] == id).unwrap_or_else(|| panic!("no {id} in {l}"))
}

/// Runs an export and returns (manifest, DocumentReference lines, DiagnosticReport lines).
async fn export(s: &Srv) -> (Value, Vec<Value>, Vec<Value>) {
    let (_, loc) = s.kick("/attach/fhir/$export").await;
    let m = s.poll(&loc).await;
    assert_eq!(m.code(), 200, "{}", String::from_utf8_lossy(&m.body));
    let m = m.json();
    let (mut docs, mut reps) = (Vec::new(), Vec::new());
    for f in m["output"].as_array().unwrap() {
        let lines = s.ndjson(f["url"].as_str().unwrap(), false).await;
        assert_eq!(f["count"].as_u64(), Some(lines.len() as u64));
        match f["type"].as_str().unwrap() {
            "DocumentReference" => docs = lines,
            "DiagnosticReport" => reps = lines,
            t => panic!("unexpected type {t}"),
        }
    }
    (m, docs, reps)
}

fn by_id<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    lines.iter().find(|l| l["id"] == id).unwrap_or_else(|| panic!("no resource {id}"))
}

fn doc_att<'a>(docs: &'a [Value], id: &str) -> &'a Value {
    &by_id(docs, id)["content"][0]["attachment"]
}

#[tokio::test]
async fn m1_export_lists_document_references_and_diagnostic_reports_with_every_kind_of_attachment() {
    let s = start(|_| {}).await;
    let l = listing(&s).await;
    let (m, docs, reps) = export(&s).await;
    assert_eq!(m["requiresAccessToken"], true);
    let types: Vec<&str> = m["output"].as_array().unwrap().iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["DocumentReference", "DiagnosticReport"]);

    // 1. relative Binary/{id}, with size and hash of the bytes served
    let a = doc_att(&docs, "docref-text-1");
    assert_eq!(a["url"], "Binary/att-text");
    assert_eq!(a["contentType"], "text/plain");
    assert_eq!(a["size"], entry(&l, "att-text")["size"]);
    assert_eq!(a["hash"], entry(&l, "att-text")["sha1"]);
    // 9. the same URL twice
    assert_eq!(doc_att(&docs, "docref-text-2")["url"], "Binary/att-text");
    assert_eq!(entry(&l, "att-text")["referencedBy"].as_array().unwrap().len(), 2);
    // 2. absolute on the FHIR origin
    let a = doc_att(&docs, "docref-pdf");
    assert_eq!(a["url"], format!("{}/attach/fhir/Binary/att-pdf", s.origin));
    assert_eq!(a["contentType"], "application/pdf");
    // 3. absolute on the storage origin
    let a = doc_att(&docs, "docref-storage");
    assert_eq!(a["url"], format!("{}/attachments/att-storage.txt", s.storage));
    assert_eq!(entry(&l, "att-storage")["origin"], "storage");
    // 7. declares 20 MiB, no hash
    let a = doc_att(&docs, "docref-big");
    assert_eq!(a["size"], 20_971_520);
    assert!(a.get("hash").is_none());
    // 8. inline data, no url
    let a = doc_att(&docs, "docref-inline");
    assert!(a.get("url").is_none());
    let data = b64(a["data"].as_str().unwrap());
    assert_eq!(sha1_b64(&data), a["hash"].as_str().unwrap());
    assert_eq!(entry(&l, "att-inline")["url"], Value::Null);
    // 10. a url without contentType
    let a = doc_att(&docs, "docref-notype");
    assert_eq!(a["url"], "Binary/att-notype");
    assert!(a.get("contentType").is_none());
    // 4. DiagnosticReport.presentedForm
    let a = &by_id(&reps, "diagrep-json")["presentedForm"][0];
    assert_eq!(a["url"], "Binary/att-json");
    assert_eq!(a["contentType"], "text/html");
    assert_eq!(a["hash"], entry(&l, "att-json")["sha1"]);
    // the listing knows every url the files hold, and nothing else
    let mut in_files: Vec<String> = docs
        .iter()
        .map(|d| &d["content"][0]["attachment"])
        .chain(reps.iter().map(|r| &r["presentedForm"][0]))
        .filter_map(|a| a["url"].as_str())
        .map(|u| if u.starts_with("http") { u.to_string() } else { format!("{}/attach/fhir/{u}", s.origin) })
        .collect();
    in_files.sort();
    in_files.dedup();
    let mut listed: Vec<String> =
        l["attachments"].as_array().unwrap().iter().filter_map(|a| a["url"].as_str().map(str::to_string)).collect();
    listed.sort();
    assert_eq!(in_files, listed);
    // deterministic: a second export has the same bytes
    let (_, docs2, reps2) = export(&s).await;
    assert_eq!((docs, reps), (docs2, reps2));
}

#[tokio::test]
async fn m1_type_selects_the_attachment_types_and_refuses_others() {
    let s = start(|_| {}).await;
    let (_, loc) = s.kick("/attach/fhir/$export?_type=DiagnosticReport").await;
    let m = s.poll(&loc).await.json();
    let out = m["output"].as_array().unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["type"], "DiagnosticReport");
    let r =
        s.req(Method::GET, &s.url("/attach/fhir/$export?_type=Patient"), &[("prefer", "respond-async")], None).await;
    assert_oo(&r, 400, "invalid");
}

#[tokio::test]
async fn m3_relative_binary_reads_give_the_listed_bytes() {
    let s = start(|_| {}).await;
    let l = listing(&s).await;
    for a in l["attachments"].as_array().unwrap() {
        if !matches!(a["behaviour"].as_str(), Some("ok")) || a["origin"] != "main" {
            continue;
        }
        for accept in [a["servedContentType"].as_str().unwrap(), "*/*"] {
            let r = s.req(Method::GET, a["url"].as_str().unwrap(), &[BEARER, ("accept", accept)], None).await;
            assert_eq!(r.code(), 200, "{a}");
            assert_eq!(r.h("content-type").as_deref(), a["servedContentType"].as_str(), "{a}");
            assert_eq!(r.h("content-length"), Some(r.body.len().to_string()));
            assert_eq!(r.body.len() as u64, a["size"].as_u64().unwrap());
            assert_eq!(sha1_b64(&r.body), a["sha1"].as_str().unwrap(), "{a}");
        }
    }
    let pdf = s.req(Method::GET, entry(&l, "att-pdf")["url"].as_str().unwrap(), &[BEARER], None).await;
    assert!(pdf.body.starts_with(b"%PDF-"));
    // 10. no contentType in the resource: octets
    let r = s.req(Method::GET, &s.url("/attach/fhir/Binary/att-notype"), &[BEARER], None).await;
    assert_eq!(r.h("content-type").as_deref(), Some("application/octet-stream"));
    assert_eq!(r.body, (0..=255u8).collect::<Vec<u8>>());
    // 8. an inline attachment has no Binary
    let r = s.req(Method::GET, &s.url("/attach/fhir/Binary/att-inline"), &[BEARER], None).await;
    assert_oo(&r, 404, "not-found");
}

#[tokio::test]
async fn m4_binary_reads_need_a_token() {
    let s = start(|_| {}).await;
    let r = s.get(&s.url("/attach/fhir/Binary/att-text")).await;
    assert_oo(&r, 401, "login");
    assert_eq!(r.h("www-authenticate").as_deref(), Some("Bearer"));
    let r = s.get(&s.url("/attach/fhir/Binary/att-json")).await;
    assert_oo(&r, 401, "login");
    // with --token, only that token
    let s = start(|c| c.token = Some("secret".into())).await;
    let url = s.url("/attach/fhir/Binary/att-text");
    assert_oo(&s.get(&url).await, 401, "login");
    assert_oo(&s.req(Method::GET, &url, &[BEARER], None).await, 401, "login");
    let r = s.req(Method::GET, &url, &[("authorization", "Bearer secret")], None).await;
    assert_eq!(r.code(), 200);
}

#[tokio::test]
async fn m4_storage_attachment_is_served_without_a_token_and_stats_show_who_sent_one() {
    let s = start(|c| c.token = Some("secret".into())).await;
    let l = listing(&s).await;
    let a = entry(&l, "att-storage");
    let route = a["route"].as_str().unwrap();
    assert_eq!(route, "storage.attachment.att-storage");
    let r = s.get(a["url"].as_str().unwrap()).await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.h("content-type").as_deref(), Some("text/plain"));
    assert_eq!(sha1_b64(&r.body), a["sha1"].as_str().unwrap());
    let st = s.stats().await;
    assert_eq!(st["routes"][route], 1);
    assert!(st["routes_with_authorization"].get(route).is_none(), "{}", st["routes_with_authorization"]);
    assert_eq!(st["storage_requests_with_authorization"], 0);
    // a client that sends its token there anyway still gets the bytes, and it shows
    let r = s.req(Method::GET, a["url"].as_str().unwrap(), &[("authorization", "Bearer secret")], None).await;
    assert_eq!(r.code(), 200);
    let st = s.stats().await;
    assert_eq!(st["routes"][route], 2);
    assert_eq!(st["routes_with_authorization"][route], 1);
    assert_eq!(st["storage_requests_with_authorization"], 1);
    // the main origin's Binary reads are counted with their token too
    let url = entry(&l, "att-text")["url"].as_str().unwrap().to_string();
    s.req(Method::GET, &url, &[("authorization", "Bearer secret")], None).await;
    let st = s.stats().await;
    assert_eq!(st["routes"]["attach.binary.att-text"], 1);
    assert_eq!(st["routes_with_authorization"]["attach.binary.att-text"], 1);
}

#[tokio::test]
async fn m5_binary_json_form() {
    let s = start(|_| {}).await;
    let l = listing(&s).await;
    let a = entry(&l, "att-json");
    assert_eq!(a["behaviour"], "json");
    // whatever the Accept, att-json answers a FHIR Binary
    for accept in ["text/html", "*/*", "application/fhir+json"] {
        let r = s.req(Method::GET, a["url"].as_str().unwrap(), &[BEARER, ("accept", accept)], None).await;
        assert_eq!(r.code(), 200);
        assert_eq!(r.h("content-type").as_deref(), Some("application/fhir+json"));
        let v = r.json();
        assert_eq!(v["resourceType"], "Binary");
        assert_eq!(v["contentType"], "text/html");
        let bytes = b64(v["data"].as_str().unwrap());
        assert_eq!(sha1_b64(&bytes), a["sha1"].as_str().unwrap());
        assert_eq!(bytes.len() as u64, a["size"].as_u64().unwrap());
    }
    // any other Binary answers the JSON form when it is asked for first
    let t = entry(&l, "att-text");
    let r = s.req(Method::GET, t["url"].as_str().unwrap(), &[BEARER, ("accept", "application/fhir+json")], None).await;
    assert_eq!(r.h("content-type").as_deref(), Some("application/fhir+json"));
    let v = r.json();
    assert_eq!(v["contentType"], "text/plain");
    assert_eq!(sha1_b64(&b64(v["data"].as_str().unwrap())), t["sha1"].as_str().unwrap());
}

#[tokio::test]
async fn m6_big_attachment_declares_20_mib_and_serves_6_mib_with_content_length() {
    let s = start(|_| {}).await;
    let l = listing(&s).await;
    let a = entry(&l, "att-big");
    assert_eq!(a["behaviour"], "big");
    assert_eq!(a["declaredSize"], 20_971_520);
    assert_eq!(a["size"], 6 * 1024 * 1024);
    let g = fetch(&s, a["url"].as_str().unwrap(), &[BEARER]).await;
    assert_eq!(g.code, 200);
    assert!(g.complete);
    assert_eq!(g.h("content-length").as_deref(), Some("6291456"));
    assert_eq!(g.h("content-type").as_deref(), Some("application/pdf"));
    assert_eq!(g.body.len(), 6 * 1024 * 1024);
    assert_eq!(sha1_b64(&g.body), a["sha1"].as_str().unwrap());
}

#[tokio::test]
async fn m9_failing_attachment_is_a_500_operation_outcome() {
    let s = start(|_| {}).await;
    let l = listing(&s).await;
    let a = entry(&l, "att-fail");
    assert_eq!(a["behaviour"], "fail");
    assert_eq!(a["sha1"], Value::Null);
    for _ in 0..3 {
        let r = s.req(Method::GET, a["url"].as_str().unwrap(), &[BEARER, ("accept", "text/plain")], None).await;
        let v = assert_oo(&r, 500, "exception");
        assert!(v["issue"][0]["diagnostics"].as_str().unwrap().contains("attachment store unavailable"), "{v}");
    }
    assert_eq!(s.stats().await["routes"]["attach.binary.att-fail"], 3);
}

#[tokio::test]
async fn m9_slow_attachment_answers_after_about_a_second() {
    let s = start(|_| {}).await;
    let l = listing(&s).await;
    let a = entry(&l, "att-slow");
    assert_eq!(a["behaviour"], "slow");
    let t = Instant::now();
    let r = s.req(Method::GET, a["url"].as_str().unwrap(), &[BEARER], None).await;
    let took = t.elapsed();
    assert_eq!(r.code(), 200);
    assert_eq!(sha1_b64(&r.body), a["sha1"].as_str().unwrap());
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test]
async fn k5_stats_count_one_get_per_attachment_route() {
    let s = start(|_| {}).await;
    let l = listing(&s).await;
    s.req(Method::POST, &s.url("/_admin/reset"), &[], None).await;
    let url = entry(&l, "att-text")["url"].as_str().unwrap().to_string();
    s.req(Method::GET, &url, &[BEARER], None).await;
    let st = s.stats().await;
    assert_eq!(st["routes"]["attach.binary.att-text"], 1);
    assert!(st["routes"].get("attach.binary.att-pdf").is_none());
    // the listing itself is not counted
    assert!(st["routes"].get("admin.attachments").is_none());
    // every listed route is where its fetches are counted
    for a in l["attachments"].as_array().unwrap() {
        let Some(route) = a["route"].as_str() else {
            assert_eq!(a["behaviour"], "inline");
            continue;
        };
        let prefix = if a["origin"] == "storage" { "storage.attachment." } else { "attach.binary." };
        assert_eq!(route, format!("{prefix}{}", a["id"].as_str().unwrap()));
    }
}

#[tokio::test]
async fn fault_attachments_n_adds_generated_attachments_on_both_origins() {
    let s = start(|_| {}).await;
    let base = "/_f/attachments=6;attachbytes=100/attach/fhir";
    let (_, loc) = s.kick(&format!("{base}/$export")).await;
    let m = s.poll(&loc).await.json();
    let f = m["output"].as_array().unwrap().iter().find(|f| f["type"] == "DocumentReference").unwrap();
    let docs = s.ndjson(f["url"].as_str().unwrap(), false).await;
    assert_eq!(docs.len(), 9 + 6);
    for k in 0..6 {
        let a = doc_att(&docs, &format!("docref-bulk-{k}"));
        let u = a["url"].as_str().unwrap();
        let url = if k % 2 == 1 {
            assert!(u.starts_with(&s.storage), "{u}");
            u.to_string()
        } else {
            assert_eq!(u, format!("Binary/att-bulk-{k}"));
            format!("{}{base}/{u}", s.origin)
        };
        let r = s.req(Method::GET, &url, &[BEARER], None).await;
        assert_eq!(r.code(), 200, "{url}");
        assert_eq!(r.body.len(), 100);
        assert_eq!(a["size"], 100);
        assert_eq!(sha1_b64(&r.body), a["hash"].as_str().unwrap());
        assert!(r.body.starts_with(format!("Bulk attachment {k}\n").as_bytes()));
    }
    let st = s.stats().await;
    assert_eq!(st["routes"]["attach.binary.bulk"], 3);
    assert_eq!(st["routes"]["storage.attachment.bulk"], 3);
    // beyond the export's N: not there
    let r = s.req(Method::GET, &format!("{}{base}/Binary/att-bulk-6", s.origin), &[BEARER], None).await;
    assert_oo(&r, 404, "not-found");
    // too much
    let r = s
        .req(Method::GET, &s.url("/_f/attachments=100001/attach/fhir/$export"), &[("prefer", "respond-async")], None)
        .await;
    assert_oo(&r, 400, "invalid");
}

#[tokio::test]
async fn metadata_lists_the_attachment_types_and_binary() {
    let s = start(|_| {}).await;
    let m = s.get(&s.url("/attach/fhir/metadata")).await.json();
    let types: Vec<&str> =
        m["rest"][0]["resource"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["DocumentReference", "DiagnosticReport", "Binary"]);
    let index = s.get(&s.url("/")).await.json();
    assert_eq!(index["bases"]["attach"], format!("{}/attach/fhir", s.origin));
}
