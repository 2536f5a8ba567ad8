//! HL7 Bulk Data dialect (`/bulk/fhir`), HealthConnect and Oracle.
mod common;

use std::collections::HashSet;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn system_export_manifest_and_downloads() {
    let s = start(|_| {}).await;
    let (_, loc) = s.kick("/bulk/fhir/$export").await;
    assert!(loc.starts_with(&s.url("/bulk/fhir/$export-poll-status?_jobId=")), "{loc}");
    let r = s.poll(&loc).await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.h("content-type").as_deref(), Some("application/json"));
    assert!(r.h("expires").is_some());
    let m = r.json();
    assert_eq!(m["requiresAccessToken"], false);
    assert_eq!(m["request"], s.url("/bulk/fhir/$export"));
    assert!(m["transactionTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(m["error"], json!([]));
    let out = m["output"].as_array().unwrap();
    assert_eq!(out.len(), 6);
    for (n, f) in out.iter().enumerate() {
        let url = f["url"].as_str().unwrap();
        let lines = s.ndjson(url, n % 2 == 0).await;
        let count = f["count"].as_u64().unwrap() as usize;
        assert_eq!(lines.len(), count);
        let ty = f["type"].as_str().unwrap();
        let ids: HashSet<String> = lines.iter().map(|l| l["id"].as_str().unwrap().to_string()).collect();
        let want: HashSet<String> = (0..count).map(|i| format!("{ty}-{i}")).collect();
        assert_eq!(ids, want, "every id 0..count-1 exactly once");
        assert!(lines.iter().all(|l| l["resourceType"] == ty));
    }
    assert_eq!(out[0]["count"], 100);
}

#[tokio::test]
async fn running_status_has_retry_after_and_progress() {
    let s = start(|c| c.job_ms = 60_000).await;
    let (_, loc) = s.kick("/bulk/fhir/Patient/$export?_type=Patient").await;
    let r = s.get(&loc).await;
    assert_eq!(r.code(), 202);
    assert_eq!(r.h("retry-after").as_deref(), Some("1"));
    assert!(r.h("x-progress").unwrap().ends_with("% complete"));
}

#[tokio::test]
async fn kickoff_validation() {
    let s = start(|_| {}).await;
    let r = s.get(&s.url("/bulk/fhir/$export")).await;
    assert_oo(&r, 400, "invalid");
    let p = [("prefer", "respond-async")];
    let r = s.req(Method::GET, &s.url("/bulk/fhir/$export?_outputFormat=text/csv"), &p, None).await;
    assert_oo(&r, 400, "invalid");
    let r = s.req(Method::GET, &s.url("/bulk/fhir/$export?_type=Nope"), &p, None).await;
    assert_oo(&r, 400, "invalid");
    let r = s.req(Method::GET, &s.url("/bulk/fhir/$export?patient=Patient/Patient-1"), &p, None).await;
    assert_oo(&r, 400, "invalid");
    let r = s.req(Method::POST, &s.url("/bulk/fhir/$export"), &p, Some("{not json".into())).await;
    assert_oo(&r, 400, "invalid");
    let r = s.req(Method::GET, &s.url("/bulk/fhir/$export?_typeFilter=Patient%3F_include%3Dx"), &p, None).await;
    assert_oo(&r, 400, "invalid");
    let r = s.get(&s.url("/bulk/fhir/$export-poll-status?_jobId=nope")).await;
    assert_oo(&r, 404, "not-found");
    let r = s.get(&s.url("/nowhere")).await;
    assert_oo(&r, 404, "not-found");
}

#[tokio::test]
async fn lenient_output_format_reports_ignored_parameter() {
    let s = start(|_| {}).await;
    let h = [("prefer", "respond-async, handling=lenient")];
    let r = s.req(Method::GET, &s.url("/bulk/fhir/$export?_outputFormat=text/csv&_type=Patient&foo=1"), &h, None).await;
    assert_eq!(r.code(), 202);
    let m = s.poll(&r.h("content-location").unwrap()).await.json();
    let err = m["error"].as_array().unwrap();
    assert_eq!(err.len(), 1);
    assert_eq!(err[0]["type"], "OperationOutcome");
    let lines = s.ndjson(err[0]["url"].as_str().unwrap(), false).await;
    assert_eq!(lines.len(), 2);
    assert!(lines[0]["issue"][0]["diagnostics"].as_str().unwrap().contains("_outputFormat"));
    assert!(lines[1]["issue"][0]["diagnostics"].as_str().unwrap().contains("foo"));
}

#[tokio::test]
async fn post_parameters_with_patients() {
    let s = start(|_| {}).await;
    let body = json!({"resourceType":"Parameters","parameter":[
        {"name":"_outputFormat","valueString":"application/fhir+ndjson"},
        {"name":"_type","valueString":"Patient,Observation"},
        {"name":"patient","valueReference":{"reference":"Patient/Patient-3"}},
        {"name":"patient","valueReference":{"reference":"Patient/Patient-7"}}]});
    let r = s
        .req(
            Method::POST,
            &s.url("/bulk/fhir/Group/g1/$export"),
            &[("prefer", "respond-async"), ("content-type", "application/fhir+json")],
            Some(body.to_string()),
        )
        .await;
    assert_eq!(r.code(), 202);
    let m = s.poll(&r.h("content-location").unwrap()).await.json();
    let out = m["output"].as_array().unwrap();
    let pats = s.ndjson(out[0]["url"].as_str().unwrap(), false).await;
    let ids: Vec<&str> = pats.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["Patient-3", "Patient-7"]);
    let obs = s.ndjson(out[1]["url"].as_str().unwrap(), false).await;
    assert_eq!(obs.len() as u64, out[1]["count"].as_u64().unwrap());
    assert!(obs.iter().all(|o| {
        let r = o["subject"]["reference"].as_str().unwrap();
        r == "Patient/Patient-3" || r == "Patient/Patient-7"
    }));
}

#[tokio::test]
async fn type_filter_since_elements_and_organize() {
    let s = start(|_| {}).await;
    // _typeFilter: one type filtered, exact count.
    let (_, loc) = s.kick("/bulk/fhir/$export?_type=Patient,Condition&_typeFilter=Patient%3Fgender%3Dfemale").await;
    let m = s.poll(&loc).await.json();
    let pats = s.ndjson(m["output"][0]["url"].as_str().unwrap(), false).await;
    assert_eq!(pats.len() as u64, m["output"][0]["count"].as_u64().unwrap());
    assert!(!pats.is_empty() && pats.len() < 100);
    assert!(pats.iter().all(|p| p["gender"] == "female"));
    // _since: deleted files of DELETE transaction Bundles; output only newer resources.
    let (_, loc) = s.kick("/bulk/fhir/$export?_type=Observation&_since=2025-03-01T00:00:00Z").await;
    let m = s.poll(&loc).await.json();
    let del = m["deleted"].as_array().unwrap();
    assert_eq!(del.len(), 1);
    let b = s.ndjson(del[0]["url"].as_str().unwrap(), true).await;
    assert_eq!(b[0]["type"], "transaction");
    assert_eq!(b[0]["entry"][0]["request"]["method"], "DELETE");
    let obs = s.ndjson(m["output"][0]["url"].as_str().unwrap(), false).await;
    assert_eq!(obs.len() as u64, m["output"][0]["count"].as_u64().unwrap());
    assert!(obs.iter().all(|o| o["meta"]["lastUpdated"].as_str().unwrap() > "2025-03-01"));
    // _elements
    let (_, loc) = s.kick("/bulk/fhir/$export?_type=Patient&_elements=gender").await;
    let m = s.poll(&loc).await.json();
    let p = s.ndjson(m["output"][0]["url"].as_str().unwrap(), false).await;
    let keys: Vec<&String> = p[0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert_eq!(p[0]["meta"]["tag"][0]["code"], "SUBSETTED");
    // organizeOutputBy=Patient
    let (_, loc) = s.kick("/bulk/fhir/$export?_type=Patient,Encounter&organizeOutputBy=Patient").await;
    let m = s.poll(&loc).await.json();
    assert_eq!(m["outputOrganizedBy"], "Patient");
    let lines = s.ndjson(m["output"][0]["url"].as_str().unwrap(), false).await;
    assert_eq!(lines.len() as u64, m["output"][0]["count"].as_u64().unwrap());
    assert_eq!(lines[0]["resourceType"], "Parameters");
    assert_eq!(lines[0]["parameter"][0]["valueReference"]["reference"], "Patient/Patient-0");
    assert_eq!(lines[1]["id"], "Patient-0");
}

#[tokio::test]
async fn big_exports_split_into_files() {
    let s = start(|c| {
        c.file_resources = 70;
        c.patients = 300;
    })
    .await;
    let (_, loc) = s.kick("/bulk/fhir/$export?_type=Observation").await;
    let m = s.poll(&loc).await.json();
    let out = m["output"].as_array().unwrap();
    assert!(out.len() > 10);
    let mut all = Vec::new();
    for f in out {
        let l = s.ndjson(f["url"].as_str().unwrap(), false).await;
        assert!(l.len() <= 70);
        assert_eq!(l.len() as u64, f["count"].as_u64().unwrap());
        all.extend(l);
    }
    let n = unique_ids(&all);
    let want: HashSet<String> = (0..n).map(|i| format!("Observation-{i}")).collect();
    let got: HashSet<String> = all.iter().map(|l| l["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn separate_export_status() {
    let s = start(|c| c.job_ms = 300).await;
    let h = [("prefer", "respond-async, separate-export-status")];
    let r = s.req(Method::GET, &s.url("/bulk/fhir/$export?_type=Patient"), &h, None).await;
    assert_eq!(r.h("preference-applied").as_deref(), Some("separate-export-status"));
    let loc = r.h("content-location").unwrap();
    let r = s.get(&loc).await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.h("x-export-status").as_deref(), Some("202"));
    let mut last = r;
    for _ in 0..200 {
        if last.h("x-export-status").as_deref() == Some("200") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        last = s.get(&loc).await;
    }
    assert_eq!(last.code(), 200);
    assert_eq!(last.h("x-export-status").as_deref(), Some("200"));
    assert_eq!(last.json()["output"][0]["count"], 100);
}

#[tokio::test]
async fn partial_manifests_and_paging() {
    let s = start(|c| {
        c.job_ms = 1_000;
        c.file_resources = 100;
        c.page_size = 2;
    })
    .await;
    let (_, loc) = s.kick("/bulk/fhir/$export?allowPartialManifests=true&_type=Patient,Observation").await;
    let mut saw_partial = None;
    let mut done = None;
    for _ in 0..300 {
        let r = s.get(&loc).await;
        if r.code() == 202 && !r.body.is_empty() {
            saw_partial.get_or_insert(r.json());
        }
        if r.code() == 200 {
            done = Some(r.json());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let p = saw_partial.expect("a 202 with a partial manifest");
    assert_eq!(p["output"].as_array().unwrap().len(), 2);
    let first = done.unwrap();
    // Pages: page 1 equals the partial one (plus link), then follow next links.
    assert_eq!(first["output"], p["output"]);
    let mut files = 0;
    let mut page = Some(first);
    while let Some(m) = page {
        files += m["output"].as_array().unwrap().len();
        page = match m["link"][0]["url"].as_str() {
            Some(u) => Some(s.get(u).await.json()),
            None => None,
        };
    }
    assert_eq!(files, 1 + 5); // 100 patients = 1 file, ~500 observations = 5 files
}

#[tokio::test]
async fn bulk_delete_then_404() {
    let s = start(|c| c.job_ms = 60_000).await;
    let (_, loc) = s.kick("/bulk/fhir/$export").await;
    let r = s.req(Method::DELETE, &loc, &[], None).await;
    assert_eq!(r.code(), 202);
    assert_oo(&s.get(&loc).await, 404, "not-found");
    assert_oo(&s.req(Method::DELETE, &loc, &[], None).await, 404, "not-found");
}

#[tokio::test]
async fn healthconnect_delete() {
    let s = start(|c| c.job_ms = 60_000).await;
    let (_, loc) = s.kick("/healthconnect/fhir/$export").await;
    assert!(loc.contains("/healthconnect/fhir/$export-poll-status?_jobId="));
    let id = loc.split("_jobId=").nth(1).unwrap();
    assert_eq!(id.len(), 36, "uuid job id");
    let r = s.req(Method::DELETE, &loc, &[], None).await;
    assert_eq!(r.code(), 202);
    assert!(r.body.is_empty());
    assert_eq!(s.get(&loc).await.code(), 404);
    let r = s.req(Method::DELETE, &loc, &[], None).await;
    assert_eq!(r.code(), 400);
    assert_eq!(
        r.json(),
        json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"Endpoint artefact not found for the provided job ID."}]})
    );
}

#[tokio::test]
async fn oracle_dialect() {
    let s = start(|c| c.job_ms = 200).await;
    let (_, loc) = s.kick("/oracle/r4/ec2458f2/Group/252a42c0/$export?_type=Patient,Observation").await;
    assert!(loc.starts_with(&s.url("/oracle/r4/ec2458f2/bulk-export/jobs/")), "{loc}");
    let r = s.get(&loc).await;
    assert_eq!(r.code(), 202);
    assert_eq!(r.h("x-progress").as_deref(), Some("in-progress"));
    assert_eq!(r.h("retry-after").as_deref(), Some("600"));
    let r = s.poll(&loc).await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.h("x-progress").as_deref(), Some("completed"));
    assert_eq!(r.h("content-type").as_deref(), Some("application/json"));
    assert!(r.h("expires").is_some());
    let m = r.json();
    assert_eq!(m["requiresAccessToken"], true);
    assert_eq!(m["error"][0]["type"], "OperationOutcome");
    let url = m["output"][0]["url"].as_str().unwrap().to_string();
    assert!(url.contains("/oracle/r4/ec2458f2/bulk-export/files/"));
    assert_eq!(s.ndjson(&url, false).await.len(), 100);
    let e: Vec<Value> = s.ndjson(m["error"][0]["url"].as_str().unwrap(), false).await;
    assert_eq!(e[0]["resourceType"], "OperationOutcome");
    assert_eq!(s.req(Method::DELETE, &loc, &[], None).await.code(), 202);
    assert_eq!(s.get(&url).await.code(), 404);
    assert_eq!(s.get(&loc).await.code(), 404);
}

#[tokio::test]
async fn oracle_retry_after_override() {
    let s = start(|c| c.job_ms = 60_000).await;
    let (_, loc) = s.kick("/_f/retry=5/oracle/r4/t/$export").await;
    assert!(loc.contains("/_f/retry=5/oracle/r4/t/bulk-export/jobs/"));
    assert_eq!(s.get(&loc).await.h("retry-after").as_deref(), Some("5"));
}

// issue 10 §3 "Paged manifests lose completed-with-errors": with `--page-size 2` and the
// `partial` fault the `error` entries arrive on manifest page 2 or later, never on page 1.
#[tokio::test]
async fn paged_partial_errors_after_page_one() {
    let s = start(|c| c.page_size = 2).await;
    let (_, loc) = s.kick("/_f/partial/bulk/fhir/$export?allowPartialManifests=true").await;
    let first = s.poll(&loc).await.json();
    assert_eq!(first["error"], json!([]), "page 1 has no error entry: {first}");
    let (mut page, mut errors_on) = (first, Vec::new());
    for n in 1.. {
        if !page["error"].as_array().unwrap().is_empty() {
            errors_on.push(n);
        }
        let Some(next) = page["link"][0]["url"].as_str() else { break };
        page = s.get(next).await.json();
        assert!(n < 20);
    }
    assert!(!errors_on.is_empty() && errors_on.iter().all(|n| *n >= 2), "{errors_on:?}");
}
