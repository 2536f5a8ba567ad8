//! `$bulk-publish` under `/stu4/fhir` (protocol L14): a chain of pages that grows, `#pending`,
//! `#closed`, ETags and 304s, immutable files.
mod common;

use common::*;
use reqwest::Method;
use serde_json::Value;

async fn publish_next(s: &Srv) -> u64 {
    let r = s.req(Method::POST, &s.url("/_admin/publish"), &[], None).await;
    assert_eq!(r.code(), 200);
    r.json()["step"].as_u64().unwrap()
}

fn link(m: &Value) -> Option<String> {
    m["link"][0]["url"].as_str().map(str::to_string)
}

fn names(m: &Value, kind: &str) -> Vec<String> {
    m[kind]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["url"].as_str().unwrap().rsplit('/').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn l14_pending_then_more_files_then_closed_and_a_new_dataset() {
    let s = start(|_| {}).await;
    let root = s.url("/stu4/fhir/$bulk-publish");
    // publication 1: root → page 2 → #pending
    let r = s.get(&root).await;
    assert_eq!(r.code(), 200);
    let etag = r.h("etag").expect("an ETag");
    let m = r.json();
    assert_eq!(m["manifestType"], "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/BulkPublishManifest");
    assert_eq!(m["updateCadence"], "PT1S");
    assert_eq!(names(&m, "output"), ["1-Patient-a.ndjson", "1-Observation-a.ndjson"]);
    let page2 = link(&m).expect("a next page");
    let r = s.get(&page2).await;
    let p2_etag = r.h("etag").unwrap();
    let p2 = r.json();
    assert_eq!(link(&p2).as_deref(), Some("#pending"));
    // unchanged: 304 with the same ETag
    let r = s.req(Method::GET, &page2, &[("if-none-match", &p2_etag)], None).await;
    assert_eq!(r.code(), 304);
    assert!(r.body.is_empty());
    let r = s.req(Method::GET, &root, &[("if-none-match", &etag)], None).await;
    assert_eq!(r.code(), 304);
    // the files: counts and sizes as listed, the same bytes every time
    for f in m["output"].as_array().unwrap() {
        let url = f["url"].as_str().unwrap();
        let a = s.get(url).await;
        assert_eq!(a.code(), 200);
        assert_eq!(a.body.len() as u64, f["fileSize"].as_u64().unwrap());
        assert_eq!(a.body.iter().filter(|&&b| b == b'\n').count() as u64, f["count"].as_u64().unwrap());
        assert_eq!(s.get(url).await.body, a.body);
    }

    // publication 2: page 2 changed (new ETag) and links page 3, which is #pending
    assert_eq!(publish_next(&s).await, 1);
    let r = s.req(Method::GET, &page2, &[("if-none-match", &p2_etag)], None).await;
    assert_eq!(r.code(), 200, "page 2 changed");
    assert_ne!(r.h("etag").unwrap(), p2_etag);
    let page3 = link(&r.json()).unwrap();
    assert!(page3.contains("page=3"), "{page3}");
    let p3 = s.get(&page3).await.json();
    assert_eq!(names(&p3, "output"), ["1-Patient-c.ndjson"]);
    assert_eq!(names(&p3, "deleted"), ["1-deleted-c.ndjson"]);
    assert_eq!(link(&p3).as_deref(), Some("#pending"));
    // the root page did not change
    assert_eq!(s.req(Method::GET, &root, &[("if-none-match", &etag)], None).await.code(), 304);

    // publication 3: page 3 is #closed, the root is a new dataset, complete
    assert_eq!(publish_next(&s).await, 2);
    assert_eq!(link(&s.get(&page3).await.json()).as_deref(), Some("#closed"));
    let r = s.req(Method::GET, &root, &[("if-none-match", &etag)], None).await;
    assert_eq!(r.code(), 200);
    let m2 = r.json();
    assert_eq!(names(&m2, "output"), ["2-Patient-a.ndjson"]);
    assert!(m2.get("link").is_none(), "dataset 2 is complete: {m2}");
    // dataset 1's later pages are gone once closed... but its files stay readable (immutable)
    assert_eq!(s.get(&s.url("/stu4/fhir/_publish/1-Patient-a.ndjson")).await.code(), 200);
    assert_eq!(s.get(&s.url("/stu4/fhir/_publish/nope.ndjson")).await.code(), 404);
}
