//! Medplum as documented (seeds 000, 002; `/medplum-doc/fhir/R4`): AsyncJob status URLs that
//! answer 200, `accepted` -> `cancelled`, files on the storage origin.
mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

fn part<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["part"].as_array().unwrap().iter().find(|x| x["name"] == name).unwrap()
}

// seed 002: the AsyncJob resource, `accepted` while running.
#[tokio::test]
async fn export_asyncjob_and_storage_downloads() {
    let s = start(|c| c.job_ms = 150).await;
    let (r, loc) = s.kick("/medplum-doc/fhir/R4/$export?_type=Patient,Condition").await;
    assert!(loc.starts_with(&s.url("/medplum-doc/fhir/R4/AsyncJob/")), "{loc}");
    let oo = r.json();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert_eq!(oo["issue"][0]["diagnostics"], loc);
    let j = s.get(&loc).await;
    assert_eq!(j.code(), 200);
    let j = j.json();
    assert_eq!(j["resourceType"], "AsyncJob");
    assert_eq!(j["status"], "accepted");
    assert_eq!(j["request"], s.url("/medplum-doc/fhir/R4/$export?_type=Patient,Condition"));
    assert!(j["requestTime"].is_string());
    assert!(j.get("transactionTime").is_none());
    let mut done = j;
    for _ in 0..200 {
        if done["status"] != "accepted" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let r = s.get(&loc).await;
        assert_eq!(r.code(), 200);
        done = r.json();
    }
    assert_eq!(done["status"], "completed");
    assert!(done["transactionTime"].is_string());
    let params = done["output"]["parameter"].as_array().unwrap();
    assert_eq!(done["output"]["resourceType"], "Parameters");
    let outs: Vec<&Value> = params.iter().filter(|p| p["name"] == "output").collect();
    assert_eq!(outs.len(), 2);
    assert_eq!(part(outs[0], "type")["valueCode"], "Patient");
    let url = part(outs[0], "url")["valueUri"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/storage/", s.storage)), "{url}");
    assert!(url.contains("X-Amz-Signature="));
    assert_eq!(part(outs[0], "count")["valueInteger"], 100);
    let rat = params.iter().find(|p| p["name"] == "requiresAccessToken").unwrap();
    assert_eq!(rat["valueBoolean"], false);
    assert_eq!(s.ndjson(url, false).await.len(), 100);
    assert_eq!(s.ndjson(url, true).await.len(), 100);
    // Any Authorization header on the storage origin: 403, counted.
    let r = s.req(Method::GET, url, &[("authorization", "Bearer x")], None).await;
    assert_eq!(r.code(), 403);
    let bad = url.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    assert_eq!(s.get(&bad).await.code(), 403);
    let st = s.stats().await;
    assert_eq!(st["storage_requests_with_authorization"], 1);
    let storage_reqs: Vec<&Value> =
        st["requests"].as_array().unwrap().iter().filter(|r| r["origin"] == "storage").collect();
    assert_eq!(storage_reqs.len(), 4);
    // CORS on the storage origin too.
    let r = s.req(Method::GET, url, &[("origin", "http://app.test")], None).await;
    assert_eq!(r.h("access-control-allow-origin").as_deref(), Some("http://app.test"));
}

// seed 000: $cancel of an accepted job, again when cancelled, unknown ids.
#[tokio::test]
async fn cancel_semantics() {
    let s = start(|c| c.job_ms = 60_000).await;
    let all_ok = json!({"resourceType":"OperationOutcome","id":"ok","issue":[{"severity":"information","code":"informational","details":{"text":"All OK"}}]});
    let (_, loc) = s.kick("/medplum-doc/fhir/R4/$export").await;
    let cancel = format!("{loc}/$cancel");
    let r = s.req(Method::POST, &cancel, &[], None).await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.json(), all_ok);
    let r = s.req(Method::POST, &cancel, &[], None).await;
    assert_eq!(r.code(), 200, "already cancelled is OK");
    assert_eq!(r.json(), all_ok);
    let j = s.get(&loc).await;
    assert_eq!(j.code(), 200);
    assert_eq!(j.json()["status"], "cancelled");
    // unknown
    let r = s.req(Method::POST, &s.url("/medplum-doc/fhir/R4/AsyncJob/nope/$cancel"), &[], None).await;
    assert_eq!(r.code(), 404);
    assert_eq!(
        r.json(),
        json!({"resourceType":"OperationOutcome","id":"not-found","issue":[{"severity":"error","code":"not-found","details":{"text":"Not found"}}]})
    );
    // DELETE AsyncJob/{id} deletes the resource (medplum.md §5), in this form too: 410 after.
    let (_, loc2) = s.kick("/medplum-doc/fhir/R4/Patient/$export").await;
    let r = s.req(Method::DELETE, &loc2, &[], None).await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.json(), all_ok);
    let r = s.get(&loc2).await;
    assert_oo(&r, 410, "deleted");
    assert_eq!(r.json()["issue"][0]["details"]["text"], "Gone");
}

#[tokio::test]
async fn cancel_completed_and_failed() {
    let s = start(|_| {}).await;
    let (_, loc) = s.kick("/medplum-doc/fhir/R4/$export?_type=Patient").await;
    assert_eq!(s.get(&loc).await.json()["status"], "completed");
    let r = s.req(Method::POST, &format!("{loc}/$cancel"), &[], None).await;
    assert_eq!(r.code(), 400);
    assert_eq!(
        r.json(),
        json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","details":{"text":"AsyncJob cannot be cancelled if status is not 'accepted', job had status 'completed'"}}]})
    );
    let (_, loc) = s.kick("/_f/fail/medplum-doc/fhir/R4/$export?_type=Patient").await;
    let j = s.get(&loc).await;
    assert_eq!(j.code(), 200);
    let j = j.json();
    assert_eq!(j["status"], "error");
    assert_eq!(j["output"]["parameter"][0]["resource"]["resourceType"], "OperationOutcome");
    let r = s.req(Method::POST, &format!("{loc}/$cancel"), &[], None).await;
    assert_eq!(r.code(), 400);
    assert!(r.json()["issue"][0]["details"]["text"].as_str().unwrap().ends_with("job had status 'error'"));
}

#[tokio::test]
async fn reindex_job() {
    let s = start(|_| {}).await;
    let r = s
        .req(
            Method::POST,
            &s.url("/medplum-doc/fhir/R4/$reindex"),
            &[("prefer", "respond-async")],
            Some("{\"resourceType\":\"Parameters\"}".into()),
        )
        .await;
    assert_eq!(r.code(), 202);
    let loc = r.h("content-location").unwrap();
    assert!(loc.contains("/medplum-doc/fhir/R4/AsyncJob/"), "{loc}");
    let j = s.get(&loc).await.json();
    assert_eq!(j["status"], "completed");
    let results = j["output"]["parameter"].as_array().unwrap();
    assert_eq!(results.len(), 6, "one result per type");
    assert_eq!(part(&results[0], "resourceType")["valueCode"], "Patient");
    assert_eq!(part(&results[0], "count")["valueInteger"], 100);
    let r = s.req(Method::POST, &s.url("/medplum-doc/fhir/R4/$reindex"), &[], Some("{bad".into())).await;
    assert_oo(&r, 400, "invalid");
}
