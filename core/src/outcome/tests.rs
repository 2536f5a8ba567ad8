//! Tests of the outcome: every result kind round-trips, the transient OperationOutcomes, a
//! batch-response entry status, and a Medplum AsyncJob read as a manifest.

use super::*;
use serde_json::json;

#[test]
fn every_result_kind_round_trips() {
    let manifest = Manifest::parse(
        br#"{"transactionTime":"t","request":"r","requiresAccessToken":true,"output":[{"type":"Patient","url":"https://h/1","count":2}],"error":[]}"#,
    )
    .unwrap();
    let all = [
        ResultBody::Manifest { manifest: manifest.clone() },
        ResultBody::Bundle { bundle: json!({"resourceType": "Bundle"}), entry_status: Some(201) },
        ResultBody::Bundle { bundle: json!({"resourceType": "Bundle"}), entry_status: None },
        ResultBody::AsyncJob { job: json!({"id": "1"}), job_status: "completed".into(), manifest: Some(manifest) },
        ResultBody::AsyncJob { job: json!({}), job_status: "error".into(), manifest: None },
        ResultBody::OperationOutcome { outcome: json!({"resourceType": "OperationOutcome"}) },
        ResultBody::Resource { resource: json!({"resourceType": "Parameters"}) },
        ResultBody::Text { text: "x".into(), content_type: Some("text/plain".into()) },
        ResultBody::Text { text: String::new(), content_type: None },
        ResultBody::Empty,
    ];
    crate::tagged::round_trip(&all);
    let outcome = Outcome {
        status: OutcomeStatus::CompletedWithErrors,
        delivery: Delivery::Redirect,
        http_status: Some(200),
        result: all[0].clone(),
        message: Some("m".into()),
        expires: Some("e".into()),
        expires_at_ms: Some(1),
        result_url: Some("https://h/r".into()),
        warnings: Vec::new(),
    };
    crate::tagged::round_trip(&[outcome]);
}

// protocol H1: the transient family
#[test]
fn transient_family() {
    assert!(is_transient_outcome(
        &json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"},{"severity":"error","code":"throttled"}]})
    ));
    assert!(!is_transient_outcome(
        &json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"},{"severity":"error","code":"processing"}]})
    ));
    assert!(!is_transient_outcome(&json!({"resourceType":"OperationOutcome","issue":[]})));
    assert!(!is_transient_outcome(&json!({"resourceType":"OperationOutcome"})));
}

#[test]
fn entry_status_reads_leading_code() {
    assert_eq!(entry_status(&json!({"entry":[{"response":{"status":"400 Bad Request"}}]})), Some(400));
    assert_eq!(entry_status(&json!({"entry":[{"response":{"status":"201"}}]})), Some(201));
    assert_eq!(entry_status(&json!({"entry":[]})), None);
    assert_eq!(entry_status(&json!({"entry":[{"response":{"status":"OK"}}]})), None);
}

#[test]
fn medplum_output_becomes_a_manifest() {
    let job = json!({"resourceType":"AsyncJob","status":"completed","transactionTime":"t","output":{"resourceType":"Parameters","parameter":[
        {"name":"output","part":[{"name":"type","valueCode":"Patient"},{"name":"url","valueUri":"https://s/1"},{"name":"count","valueInteger":3}]},
        {"name":"requiresAccessToken","valueBoolean":false}]}});
    let m = asyncjob_manifest(&job).unwrap();
    assert_eq!(m.output.len(), 1);
    assert_eq!(m.output[0].count, Some(3));
    assert!(!m.requires_access_token);
    assert!(asyncjob_manifest(&json!({"output":{"parameter":[{"name":"result","valueString":"x"}]}})).is_none());
}
