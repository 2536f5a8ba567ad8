//! Medplum as a real server answers (`/medplum/fhir/R4`), exchange by exchange as in
//! `../shared/servers/medplum.md` (issue 10 §1). Every request carries the token unless the
//! test says otherwise.
mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const B: &str = "/medplum/fhir/R4";
const TOKEN: (&str, &str) = ("authorization", "Bearer T");

async fn srv() -> Srv {
    start(|c| c.token = Some("T".into())).await
}

impl Srv {
    async fn mp(&self, m: Method, url: &str, body: Option<Value>) -> Resp {
        let mut h = vec![TOKEN];
        if body.is_some() {
            h.push(("content-type", "application/fhir+json"));
        }
        self.req(m, url, &h, body.map(|b| b.to_string())).await
    }

    /// Kick-off with the token (and `extra` headers); returns the Content-Location.
    async fn mp_kick(&self, m: Method, path: &str, extra: &[(&str, &str)], body: Option<Value>) -> (Resp, String) {
        let mut h = vec![TOKEN, ("content-type", "application/fhir+json")];
        h.extend_from_slice(extra);
        let r = self.req(m, &self.url(path), &h, body.map(|b| b.to_string())).await;
        assert_eq!(r.code(), 202, "{path}: {}", String::from_utf8_lossy(&r.body));
        let loc = r.h("content-location").expect("content-location");
        (r, loc)
    }

    /// Polls `url` with the token until it is not 202 (bounded).
    async fn mp_poll(&self, url: &str) -> Resp {
        for _ in 0..500 {
            let r = self.mp(Method::GET, url, None).await;
            if r.code() != 202 {
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("{url} stayed 202");
    }
}

fn id_of(loc: &str) -> String {
    loc.trim_end_matches("/status").rsplit('/').next().unwrap().to_string()
}

fn part<'a>(p: &'a Value, name: &str) -> Option<&'a Value> {
    p["part"].as_array().unwrap().iter().find(|x| x["name"] == name)
}

fn not_found() -> Value {
    json!({"resourceType":"OperationOutcome","id":"not-found","issue":[{"severity":"error","code":"not-found","details":{"text":"Not found"}}]})
}

fn all_ok() -> Value {
    json!({"resourceType":"OperationOutcome","id":"ok","issue":[{"severity":"information","code":"informational","details":{"text":"All OK"}}]})
}

fn cannot_cancel(had: &str) -> Value {
    let text = format!("AsyncJob cannot be cancelled if status is not 'accepted', job had status '{had}'");
    json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","details":{"text":text}}]})
}

// medplum.md §1: kick-off, AsyncJob `active` right after it, job/{id}/status 202, the bulkdata
// poll 202 with an empty body and no Retry-After / X-Progress.
#[tokio::test]
async fn s1_export_kickoff_and_running() {
    let s = srv().await;
    let (r, loc) =
        s.mp_kick(Method::GET, &format!("/_f/ms=60000{B}/$export"), &[("prefer", "respond-async")], None).await;
    let id = id_of(&loc);
    assert_eq!(loc, s.url(&format!("/_f/ms=60000{B}/bulkdata/export/{id}")));
    assert_eq!(r.h("content-type").as_deref(), Some("application/fhir+json"));
    assert_eq!(
        r.json(),
        json!({"resourceType":"OperationOutcome","id":"accepted","issue":[{"severity":"information","code":"informational","details":{"text":"Accepted"},"diagnostics":loc}]})
    );
    assert!(r.h("retry-after").is_none() && r.h("x-progress").is_none());
    let base = s.url(&format!("/_f/ms=60000{B}"));
    let j = s.mp(Method::GET, &format!("{base}/AsyncJob/{id}"), None).await;
    assert_eq!(j.code(), 200);
    let j = j.json();
    assert_eq!((j["resourceType"].as_str(), j["status"].as_str()), (Some("AsyncJob"), Some("active")));
    assert_eq!(j["request"], format!("{base}$export"), "no slash between the base and $export");
    assert!(j["requestTime"].is_string() && j.get("output").is_none() && j.get("transactionTime").is_none());
    let r = s.mp(Method::GET, &format!("{base}/job/{id}/status"), None).await;
    assert_eq!(r.code(), 202);
    assert_eq!(r.json()["status"], "active");
    for _ in 0..2 {
        let r = s.mp(Method::GET, &loc, None).await;
        assert_eq!(r.code(), 202);
        assert!(r.body.is_empty());
        assert!(r.h("retry-after").is_none() && r.h("x-progress").is_none());
    }
    // poll without a token
    assert_oo(&s.get(&loc).await, 401, "login");
}

// medplum.md §1: the completed manifest (no count, `request` without the slash,
// requiresAccessToken false, signed storage URLs on the FHIR origin that work with or without
// the token, 401 text/plain without the signature) and the AsyncJob's relative Binary outputs,
// which need the token.
#[tokio::test]
async fn s1_export_completed_manifest_storage_and_binary() {
    let s = srv().await;
    let (_, loc) = s
        .mp_kick(Method::GET, &format!("{B}/$export?_type=Patient,Condition"), &[("prefer", "respond-async")], None)
        .await;
    let id = id_of(&loc);
    let r = s.mp_poll(&loc).await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.h("content-type").as_deref(), Some("application/json"));
    let m = r.json();
    assert_eq!(m["request"], s.url(&format!("{B}$export?_type=Patient,Condition")));
    assert_eq!(m["requiresAccessToken"], false);
    assert!(m["transactionTime"].is_string());
    assert_eq!((m["error"].clone(), m["deleted"].clone()), (json!([]), json!([])));
    let out = m["output"].as_array().unwrap();
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|f| f.get("count").is_none()), "no per-file count: {m}");
    assert_eq!(out[0]["type"], "Patient");
    let url = out[0]["url"].as_str().unwrap();
    assert!(url.starts_with(&s.url("/storage/")) && url.contains("?Expires=") && url.contains("&Signature="), "{url}");
    assert_eq!(s.ndjson(url, false).await.len(), 100, "without the token");
    let r = s.mp(Method::GET, url, None).await;
    assert_eq!((r.code(), r.h("content-type").as_deref()), (200, Some("application/fhir+ndjson")), "with the token");
    let r = s.get(url.split('?').next().unwrap()).await;
    assert_eq!((r.code(), r.h("content-type").as_deref()), (401, Some("text/plain; charset=utf-8")));
    assert_eq!(r.body, b"Unauthorized");
    assert_eq!(s.stats().await["storage_requests_with_authorization"], 0, "nothing went to the storage origin");

    let j = s.mp(Method::GET, &s.url(&format!("{B}/AsyncJob/{id}")), None).await.json();
    assert_eq!(j["status"], "completed");
    assert!(j["transactionTime"].is_string());
    let params = j["output"]["parameter"].as_array().unwrap();
    assert_eq!(params.len(), 2, "no requiresAccessToken parameter: {j}");
    assert_eq!(part(&params[0], "type").unwrap()["valueCode"], "Patient");
    assert!(part(&params[0], "count").is_none());
    let rel = part(&params[0], "url").unwrap()["valueUri"].as_str().unwrap();
    assert!(rel.starts_with("Binary/") && rel.len() == 7 + 36, "{rel}");
    let r = s.mp(Method::GET, &s.url(&format!("{B}/job/{id}/status")), None).await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.json()["status"], "completed");
    // Binary/{id}, relative to the FHIR base: the NDJSON, with the token only.
    let bin = s.url(&format!("{B}/{rel}"));
    assert_oo(&s.get(&bin).await, 401, "login");
    let r = s.mp(Method::GET, &bin, None).await;
    assert_eq!((r.code(), r.h("content-type").as_deref()), (200, Some("application/fhir+ndjson")));
    assert_eq!(String::from_utf8_lossy(&r.body).lines().count(), 100);
    let r = s.req(Method::GET, &bin, &[TOKEN, ("accept", "application/fhir+json")], None).await;
    assert_eq!(r.json(), json!({"resourceType":"Binary","contentType":"application/fhir+ndjson","id":&rel[7..]}));
    assert_eq!(s.mp(Method::GET, &s.url(&format!("{B}/Binary/nope")), None).await.json(), not_found());
}

// medplum.md §2: Patient/ and Group/ $export with _type and without Prefer.
#[tokio::test]
async fn s2_patient_and_group_export_without_prefer() {
    let s = srv().await;
    for path in ["Patient/$export?_type=Patient", "Group/g1/$export?_type=Patient"] {
        let (r, loc) = s.mp_kick(Method::GET, &format!("{B}/{path}"), &[], None).await;
        assert!(loc.starts_with(&s.url(&format!("{B}/bulkdata/export/"))), "{loc}");
        assert_eq!(r.json()["issue"][0]["diagnostics"], loc);
        let m = s.mp_poll(&loc).await.json();
        assert_eq!(m["output"].as_array().unwrap().len(), 1);
    }
}

// medplum.md §3: $cancel only cancels an `accepted` job; 404 for unknown ids.
#[tokio::test]
async fn s3_cancel_running_completed_unknown() {
    let s = srv().await;
    let (_, loc) =
        s.mp_kick(Method::GET, &format!("/_f/ms=60000{B}/$export"), &[("prefer", "respond-async")], None).await;
    let base = s.url(&format!("/_f/ms=60000{B}"));
    let id = id_of(&loc);
    let r = s.mp(Method::POST, &format!("{base}/AsyncJob/{id}/$cancel"), None).await;
    assert_eq!((r.code(), r.json()), (400, cannot_cancel("active")));
    assert_eq!(s.mp(Method::GET, &format!("{base}/AsyncJob/{id}"), None).await.json()["status"], "active");

    let (_, done) = s.mp_kick(Method::GET, &format!("{B}/$export?_type=Patient"), &[], None).await;
    assert_eq!(s.mp_poll(&done).await.code(), 200);
    let did = id_of(&done);
    let r = s.mp(Method::POST, &s.url(&format!("{B}/AsyncJob/{did}/$cancel")), None).await;
    assert_eq!((r.code(), r.json()), (400, cannot_cancel("completed")));
    let r = s.mp(Method::DELETE, &s.url(&format!("{B}/job/{did}/status")), None).await;
    assert_eq!((r.code(), r.json()), (400, cannot_cancel("completed")));

    let unknown = "00000000-0000-4000-8000-000000000000";
    for (m, path) in [
        (Method::POST, format!("AsyncJob/{unknown}/$cancel")),
        (Method::POST, "AsyncJob/not-a-uuid/$cancel".to_string()),
        (Method::GET, format!("AsyncJob/{unknown}")),
        (Method::GET, format!("bulkdata/export/{unknown}")),
        (Method::GET, format!("job/{unknown}/status")),
    ] {
        let r = s.mp(m, &s.url(&format!("{B}/{path}")), None).await;
        assert_eq!((r.code(), r.h("content-type").as_deref()), (404, Some("application/fhir+json")), "{path}");
        assert_eq!(r.json(), not_found());
    }
}

// medplum.md §3: an AsyncJob created `accepted` is cancelled (200 "All OK", again when
// cancelled), then job/{id}/status answers 202 `cancelled` and bulkdata/export 404;
// DELETE job/{id}/status answers 202 "Accepted". Fault `queued` keeps an export `accepted`.
#[tokio::test]
async fn s3_cancel_accepted_jobs() {
    let s = srv().await;
    let created = json!({"resourceType":"AsyncJob","status":"accepted","request":s.url(&format!("{B}/$export")),"requestTime":"2026-01-01T00:00:00Z"});
    let r = s.mp(Method::POST, &s.url(&format!("{B}/AsyncJob")), Some(created.clone())).await;
    assert_eq!(r.code(), 201);
    let j = r.json();
    let id = j["id"].as_str().unwrap().to_string();
    assert_eq!(r.h("location"), Some(s.url(&format!("{B}/AsyncJob/{id}"))));
    assert_eq!((j["status"].as_str(), j["request"].as_str()), (Some("accepted"), created["request"].as_str()));
    let status = s.url(&format!("{B}/job/{id}/status"));
    let r = s.mp(Method::GET, &status, None).await;
    assert_eq!((r.code(), r.json()["status"].as_str()), (202, Some("accepted")));
    for _ in 0..2 {
        let r = s.mp(Method::POST, &s.url(&format!("{B}/AsyncJob/{id}/$cancel")), None).await;
        assert_eq!((r.code(), r.json()), (200, all_ok()));
    }
    assert_eq!(s.mp(Method::GET, &s.url(&format!("{B}/AsyncJob/{id}")), None).await.json()["status"], "cancelled");
    let r = s.mp(Method::GET, &status, None).await;
    assert_eq!((r.code(), r.json()["status"].as_str()), (202, Some("cancelled")));
    let r = s.mp(Method::GET, &s.url(&format!("{B}/bulkdata/export/{id}")), None).await;
    assert_eq!((r.code(), r.json()), (404, not_found()));

    let r = s.mp(Method::POST, &s.url(&format!("{B}/AsyncJob")), Some(created)).await;
    let id2 = r.json()["id"].as_str().unwrap().to_string();
    let r = s.mp(Method::DELETE, &s.url(&format!("{B}/job/{id2}/status")), None).await;
    assert_eq!(r.code(), 202);
    assert_eq!(
        r.json(),
        json!({"resourceType":"OperationOutcome","id":"accepted","issue":[{"severity":"information","code":"informational","details":{"text":"Accepted"}}]})
    );

    // Fault `queued`: the export waits for a worker, so it is `accepted` and $cancel works.
    let (_, loc) = s.mp_kick(Method::GET, &format!("/_f/queued=60000;ms=60000{B}/$export"), &[], None).await;
    let base = s.url(&format!("/_f/queued=60000;ms=60000{B}"));
    let qid = id_of(&loc);
    assert_eq!(s.mp(Method::GET, &format!("{base}/AsyncJob/{qid}"), None).await.json()["status"], "accepted");
    let r = s.mp(Method::POST, &format!("{base}/AsyncJob/{qid}/$cancel"), None).await;
    assert_eq!((r.code(), r.json()), (200, all_ok()));
    let r = s.mp(Method::GET, &loc, None).await;
    assert_eq!((r.code(), r.h("content-type").as_deref()), (404, Some("application/json")));
}

// medplum.md §3: DELETE bulkdata/export/{id} answers 202 text/plain "Accepted" whatever the
// state; the poll then answers 404 and the AsyncJob reads `cancelled`.
#[tokio::test]
async fn s3_delete_bulkdata_export() {
    let s = srv().await;
    let (_, running) =
        s.mp_kick(Method::GET, &format!("/_f/ms=60000{B}/$export"), &[("prefer", "respond-async")], None).await;
    let (_, done) = s.mp_kick(Method::GET, &format!("{B}/$export?_type=Patient"), &[], None).await;
    assert_eq!(s.mp_poll(&done).await.code(), 200);
    for loc in [&running, &done] {
        let r = s.mp(Method::DELETE, loc, None).await;
        assert_eq!((r.code(), r.h("content-type").as_deref()), (202, Some("text/plain; charset=utf-8")));
        assert_eq!(r.body, b"Accepted");
        let r = s.mp(Method::GET, loc, None).await;
        assert_eq!((r.code(), r.h("content-type").as_deref()), (404, Some("application/json")));
        assert_eq!(r.json(), not_found());
        let job = loc.replace("/bulkdata/export/", "/AsyncJob/");
        assert_eq!(s.mp(Method::GET, &job, None).await.json()["status"], "cancelled");
    }
}

// medplum.md §4: the async batch: job/{id}/status, 202 `accepted` while running, 200
// `completed` with a `results` Binary holding the batch-response Bundle.
#[tokio::test]
async fn s4_async_batch() {
    let s = srv().await;
    let bundle = json!({"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient?_count=1"}},{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient"}}]});
    let async_ = [("prefer", "respond-async")];
    let (r, loc) = s.mp_kick(Method::POST, &format!("/_f/ms=60000{B}/"), &async_, Some(bundle.clone())).await;
    let id = id_of(&loc);
    assert_eq!(loc, s.url(&format!("/_f/ms=60000{B}/job/{id}/status")));
    assert_eq!(r.json()["issue"][0]["diagnostics"], loc);
    let r = s.mp(Method::GET, &loc, None).await;
    assert_eq!(r.code(), 202);
    let j = r.json();
    assert_eq!(
        (j["status"].as_str(), j["request"].as_str()),
        (Some("accepted"), Some(&*s.url(&format!("/_f/ms=60000{B}/"))))
    );

    let (_, loc) = s.mp_kick(Method::POST, &format!("{B}/"), &async_, Some(bundle)).await;
    let r = s.mp_poll(&loc).await;
    assert_eq!(r.code(), 200);
    let j = r.json();
    assert_eq!(j["status"], "completed");
    assert!(j["transactionTime"].is_string());
    assert_eq!(j["output"]["parameter"][0]["name"], "results");
    let rel = j["output"]["parameter"][0]["valueReference"]["reference"].as_str().unwrap();
    assert!(rel.starts_with("Binary/"), "{rel}");
    let r = s.mp(Method::GET, &s.url(&format!("{B}/{rel}")), None).await;
    assert_eq!((r.code(), r.h("content-type").as_deref()), (200, Some("application/fhir+json")));
    let b = r.json();
    assert_eq!((b["resourceType"].as_str(), b["type"].as_str()), (Some("Bundle"), Some("batch-response")));
    assert_eq!(b["entry"].as_array().unwrap().len(), 2);
}

// medplum.md §4: a failed generic job is 200 `status: error` with an `outcome` parameter.
#[tokio::test]
async fn s4_failed_batches() {
    let s = srv().await;
    let async_ = [("prefer", "respond-async")];
    for (body, text) in [
        (
            json!({"resourceType":"Bundle","type":"searchset","entry":[{"request":{"method":"GET","url":"Patient"}}]}),
            "Unrecognized bundle type: searchset",
        ),
        (json!({"resourceType":"Bundle","type":"batch"}), "Missing bundle entries"),
    ] {
        let (_, loc) = s.mp_kick(Method::POST, &format!("{B}/"), &async_, Some(body)).await;
        let r = s.mp_poll(&loc).await;
        assert_eq!(r.code(), 200);
        let j = r.json();
        assert_eq!(j["status"], "error");
        assert_eq!(
            j["output"]["parameter"][0],
            json!({"name":"outcome","resource":{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","details":{"text":text}}]}})
        );
    }
    // fault `fail` on a generic job: error too.
    let (_, loc) = s
        .mp_kick(
            Method::POST,
            &format!("/_f/fail{B}/"),
            &async_,
            Some(
                json!({"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient"}}]}),
            ),
        )
        .await;
    let j = s.mp_poll(&loc).await.json();
    assert_eq!(j["status"], "error");
    assert_eq!(j["output"]["parameter"][0]["resource"]["resourceType"], "OperationOutcome");
}

// medplum.md §4: $expunge (no Prefer needed) and $reindex answer at job/{id}/status.
#[tokio::test]
async fn s4_expunge_and_reindex() {
    let s = srv().await;
    let (_, loc) = s.mp_kick(Method::POST, &format!("{B}/Project/p1/$expunge?everything=true"), &[], None).await;
    assert!(loc.ends_with("/status") && loc.contains(&format!("{B}/job/")), "{loc}");
    let j = s.mp_poll(&loc).await.json();
    assert_eq!(j["status"], "completed");
    assert!(j.get("output").is_none());
    assert_eq!(j["request"], s.url(&format!("{B}Project/p1/$expunge?everything=true")));
    let (_, loc) = s
        .mp_kick(
            Method::POST,
            &format!("{B}/Patient/$reindex"),
            &[("prefer", "respond-async")],
            Some(json!({"resourceType":"Parameters"})),
        )
        .await;
    let j = s.mp_poll(&loc).await.json();
    assert_eq!(j["status"], "completed");
    let result = &j["output"]["parameter"][0];
    assert_eq!(part(result, "resourceType").unwrap()["valueCode"], "Patient");
    assert_eq!(part(result, "count").unwrap()["valueInteger"], 100);
}

// medplum.md §5: DELETE AsyncJob/{id} deletes the resource (200 "All OK", 410 Gone after, on
// every URL of the job); it cancels nothing (the files stay downloadable).
#[tokio::test]
async fn s5_delete_asyncjob_is_a_resource_delete() {
    let s = srv().await;
    let (_, loc) = s.mp_kick(Method::GET, &format!("{B}/$export?_type=Patient"), &[], None).await;
    let m = s.mp_poll(&loc).await.json();
    let id = id_of(&loc);
    let r = s.mp(Method::DELETE, &s.url(&format!("{B}/AsyncJob/{id}")), None).await;
    assert_eq!((r.code(), r.json()), (200, all_ok()));
    let gone = json!({"resourceType":"OperationOutcome","id":"gone","issue":[{"severity":"error","code":"deleted","details":{"text":"Gone"}}]});
    for path in [format!("AsyncJob/{id}"), format!("job/{id}/status"), format!("bulkdata/export/{id}")] {
        let r = s.mp(Method::GET, &s.url(&format!("{B}/{path}")), None).await;
        assert_eq!((r.code(), r.json()), (410, gone.clone()), "{path}");
    }
    assert_eq!(s.ndjson(m["output"][0]["url"].as_str().unwrap(), false).await.len(), 100);
}

// medplum.md §5: a POST Parameters body, _typeFilter, _until and _outputFormat are ignored;
// only `_type` and `_since` in the query count.
#[tokio::test]
async fn s5_ignored_export_parameters() {
    let s = srv().await;
    let body = json!({"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient"}]});
    let (_, loc) = s.mp_kick(Method::POST, &format!("{B}/$export"), &[("prefer", "respond-async")], Some(body)).await;
    let m = s.mp_poll(&loc).await.json();
    assert_eq!(m["output"].as_array().unwrap().len(), 6, "every type, the body is ignored: {m}");
    let (_, loc) = s
        .mp_kick(
            Method::GET,
            &format!("{B}/$export?_type=Observation&_typeFilter=Observation%3Fcode%3Dnone&_outputFormat=bogus&_until=2000-01-01T00:00:00Z"),
            &[("prefer", "respond-async")],
            None,
        )
        .await;
    let m = s.mp_poll(&loc).await.json();
    let out = m["output"].as_array().unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["type"], "Observation");
    let lines = s.ndjson(out[0]["url"].as_str().unwrap(), false).await;
    let (_, all) = s.mp_kick(Method::GET, &format!("{B}/$export?_type=Observation"), &[], None).await;
    let m = s.mp_poll(&all).await.json();
    assert_eq!(lines.len(), s.ndjson(m["output"][0]["url"].as_str().unwrap(), false).await.len(), "nothing filtered");
    // `_since` is honoured.
    let (_, loc) =
        s.mp_kick(Method::GET, &format!("{B}/$export?_type=Observation&_since=2030-01-01T00:00:00Z"), &[], None).await;
    let m = s.mp_poll(&loc).await.json();
    assert_eq!(m["output"], json!([]), "nothing changed since 2030: {m}");
}

// medplum.md summary: a failing export stays `active`; its status URL answers 202 forever.
#[tokio::test]
async fn failing_export_stays_active() {
    let s = srv().await;
    let (_, loc) = s.mp_kick(Method::GET, &format!("/_f/fail{B}/$export?_type=Patient"), &[], None).await;
    let id = id_of(&loc);
    let base = s.url(&format!("/_f/fail{B}"));
    for _ in 0..3 {
        let r = s.mp(Method::GET, &loc, None).await;
        assert_eq!((r.code(), r.body.len()), (202, 0));
    }
    assert_eq!(s.mp(Method::GET, &format!("{base}/AsyncJob/{id}"), None).await.json()["status"], "active");
    let r = s.mp(Method::GET, &format!("{base}/job/{id}/status"), None).await;
    assert_eq!((r.code(), r.json()["status"].as_str()), (202, Some("active")));
    // Status-poll faults apply to the bulkdata URL too.
    let (_, loc) = s.mp_kick(Method::GET, &format!("/_f/e500=1{B}/$export?_type=Patient"), &[], None).await;
    assert_oo(&s.mp(Method::GET, &loc, None).await, 500, "transient");
}
