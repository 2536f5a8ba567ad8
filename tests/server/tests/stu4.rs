//! The `stu4` dialect (`/stu4/fhir`): the Bulk Data STU4 ballot as it reads (protocol L).
mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const PREFER: (&str, &str) = ("prefer", "respond-async");
const FHIR_JSON: (&str, &str) = ("content-type", "application/fhir+json");

fn params(p: Value) -> String {
    json!({"resourceType": "Parameters", "parameter": p}).to_string()
}

async fn kick(s: &Srv, body: Value, extra: &[(&str, &str)]) -> Resp {
    let mut h = vec![PREFER, FHIR_JSON];
    h.extend_from_slice(extra);
    s.req(Method::POST, &s.url("/stu4/fhir/$export"), &h, Some(params(body))).await
}

#[tokio::test]
async fn l2_metadata_declares_the_stu4_export_operation() {
    let s = start(|_| {}).await;
    let m = s.get(&s.url("/stu4/fhir/metadata")).await.json();
    assert_eq!(
        m["rest"][0]["operation"][0]["definition"],
        "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export|4.0.0"
    );
    let m = s.get(&s.url("/bulk/fhir/metadata")).await.json();
    assert_eq!(
        m["rest"][0]["operation"][0]["definition"],
        "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
    );
}

#[tokio::test]
async fn l1_a_get_kickoff_is_refused_with_405_and_allow_post() {
    let s = start(|_| {}).await;
    let r = s.req(Method::GET, &s.url("/stu4/fhir/$export?_type=Patient"), &[PREFER], None).await;
    assert_oo(&r, 405, "not-supported");
    assert_eq!(r.h("allow").as_deref(), Some("POST"));
}

#[tokio::test]
async fn l1_parameters_only_in_the_body_one_per_value_with_the_ballots_types() {
    let s = start(|_| {}).await;
    // the query is not the place
    let h = [PREFER, FHIR_JSON];
    let r = s.req(Method::POST, &s.url("/stu4/fhir/$export?_type=Patient"), &h, Some(params(json!([])))).await;
    assert_oo(&r, 400, "invalid");
    // a comma-joined _type: one parameter per value
    let r = kick(&s, json!([{"name": "_type", "valueString": "Patient,Observation"}]), &[]).await;
    assert_oo(&r, 400, "invalid");
    assert!(String::from_utf8_lossy(&r.body).contains("one parameter per value"));
    // L3: includeAssociatedData is a Coding now, not a code
    let r = kick(&s, json!([{"name": "includeAssociatedData", "valueCode": "LatestProvenanceResources"}]), &[]).await;
    assert_oo(&r, 400, "invalid");
    // L7: the file-size hints are positive integers
    let r = kick(&s, json!([{"name": "_maximumFileSize", "valuePositiveInt": 0}]), &[]).await;
    assert_oo(&r, 400, "invalid");
    // not JSON Parameters
    let r = s
        .req(Method::POST, &s.url("/stu4/fhir/$export"), &[PREFER, ("content-type", "text/plain")], Some("x".into()))
        .await;
    assert_oo(&r, 400, "invalid");
    // the ballot's own shapes are accepted
    let r = kick(
        &s,
        json!([
            {"name": "_type", "valueString": "Patient"},
            {"name": "_type", "valueString": "Observation"},
            {"name": "_typeFilter", "valueString": "Observation?category=laboratory,vital-signs"},
            {"name": "_until", "valueInstant": "2100-01-01T00:00:00Z"},
            {"name": "_elements", "valueString": "id"},
            {"name": "includeAssociatedData", "valueCoding": {"system": "http://hl7.org/fhir/uv/bulkdata/CodeSystem/include-associated-data", "code": "LatestProvenanceResources"}},
            {"name": "_minimumFileSize", "valuePositiveInt": 1024},
            {"name": "_maximumFileSize", "valuePositiveInt": 1048576},
        ]),
        &[],
    )
    .await;
    assert_eq!(r.code(), 202, "{}", String::from_utf8_lossy(&r.body));
}

#[tokio::test]
async fn l10_to_l13_the_manifest_model_and_a_parquet_output_listed_with_its_size() {
    let s = start(|_| {}).await;
    let r = kick(&s, json!([]), &[]).await;
    assert_eq!(r.code(), 202, "{}", String::from_utf8_lossy(&r.body));
    let loc = r.h("content-location").unwrap();
    let m = s.poll(&loc).await.json();
    assert!(m.get("error").is_none(), "STU4 has no `error`: {m}");
    assert_eq!(m["manifestType"], "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/BulkDataManifest");
    assert!(m["extension"].is_array(), "an Extension array: {}", m["extension"]);
    // L11: an informational outcome only: not "completed with errors"
    let outcome = m["outcome"].as_array().unwrap();
    assert_eq!(outcome.len(), 1);
    assert_eq!(outcome[0]["countSeverity"], json!([{"code": "information", "count": 1}]));
    let out = m["output"].as_array().unwrap();
    let parquet: Vec<&Value> = out.iter().filter(|f| f.get("outputFormat").is_some()).collect();
    assert_eq!(parquet.len(), 1);
    assert_eq!(parquet[0]["outputFormat"], "application/vnd.apache.parquet");
    assert!(parquet[0].get("count").is_none(), "no line count for opaque bytes");
    // fileSize on every entry, equal to the bytes served (identity encoding)
    for f in out.iter().chain(outcome) {
        let want = f["fileSize"].as_u64().unwrap_or_else(|| panic!("no fileSize: {f}"));
        let r = s.get(f["url"].as_str().unwrap()).await;
        assert_eq!(r.code(), 200);
        assert_eq!(r.body.len() as u64, want, "{f}");
        if f.get("outputFormat").is_some() {
            assert_eq!(r.h("content-type").as_deref(), Some("application/vnd.apache.parquet"));
            assert!(r.body.starts_with(b"PAR1") && r.body.ends_with(b"PAR1"));
        } else {
            assert_eq!(r.h("content-type").as_deref(), Some("application/fhir+ndjson"));
        }
    }
    // the same export gives the same Parquet bytes (a file is known by what it is)
    let again = s.poll(&loc).await.json();
    assert_eq!(again["output"], m["output"]);
}

#[tokio::test]
async fn l8_separate_export_status_carries_code_and_phrase() {
    let s = start(|c| c.job_ms = 300).await;
    let r = kick(
        &s,
        json!([{"name": "_type", "valueString": "Patient"}]),
        &[("prefer", "respond-async, separate-export-status")],
    )
    .await;
    assert_eq!(r.code(), 202);
    assert_eq!(r.h("preference-applied").as_deref(), Some("separate-export-status"));
    let loc = r.h("content-location").unwrap();
    let first = s.get(&loc).await;
    assert_eq!(first.code(), 200, "the poll itself succeeds");
    assert_eq!(first.h("x-export-status").as_deref(), Some("202 Accepted"));
    let mut done = None;
    for _ in 0..500 {
        let r = s.get(&loc).await;
        if r.h("x-export-status").as_deref() == Some("200 OK") {
            done = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let done = done.expect("completed within the bound");
    assert!(done.json()["outcome"].is_array());
}
