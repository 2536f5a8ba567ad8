//! The `stu4` dialect's export parameters, as the ballot reads them (protocol L4, L5, L6, L9):
//! what the reference server does with `_elements`, `_until`, `_typeFilter` and `_since`.
mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Kicks off an STU4 export with `parameter` and returns the finished manifest.
async fn export(s: &Srv, parameter: Value) -> Value {
    let body = json!({"resourceType": "Parameters", "parameter": parameter}).to_string();
    let h = [("prefer", "respond-async"), ("content-type", "application/fhir+json")];
    let r = s.req(Method::POST, &s.url("/stu4/fhir/$export"), &h, Some(body)).await;
    assert_eq!(r.code(), 202, "{}", String::from_utf8_lossy(&r.body));
    let m = s.poll(&r.h("content-location").unwrap()).await;
    assert_eq!(m.code(), 200, "{}", String::from_utf8_lossy(&m.body));
    m.json()
}

/// Every resource of `kind` (`output`, `deleted`) of type `ty` the manifest lists in NDJSON (the
/// Parquet view of Patient is left out).
async fn resources(s: &Srv, m: &Value, kind: &str, ty: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for f in m[kind].as_array().into_iter().flatten().filter(|f| f["type"] == ty && f.get("outputFormat").is_none()) {
        all.extend(s.ndjson(f["url"].as_str().unwrap(), false).await);
    }
    all
}

#[tokio::test]
async fn l4_elements_keeps_the_mandatory_and_asked_elements_and_tags_subsetted() {
    let s = start(|_| {}).await;
    let m = export(
        &s,
        json!([{"name": "_type", "valueString": "Patient"}, {"name": "_elements", "valueString": "Patient.birthDate"}]),
    )
    .await;
    let patients = resources(&s, &m, "output", "Patient").await;
    assert!(!patients.is_empty());
    for p in &patients {
        let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(keys.iter().all(|k| ["resourceType", "id", "meta", "birthDate"].contains(k)), "{keys:?}");
        let tags = p["meta"]["tag"].as_array().expect("a SUBSETTED tag");
        assert!(tags.iter().any(|t| t["code"] == "SUBSETTED"), "{p}");
    }
    // without _elements nothing is subsetted
    let full = export(&s, json!([{"name": "_type", "valueString": "Patient"}])).await;
    let full = resources(&s, &full, "output", "Patient").await;
    assert_eq!(full.len(), patients.len());
    assert!(full.iter().all(|p| p.get("gender").is_some() && p["meta"].get("tag").is_none()), "{}", full[0]);
}

#[tokio::test]
async fn l5_until_bounds_the_output_by_last_updated() {
    let s = start(|_| {}).await;
    let all = export(&s, json!([{"name": "_type", "valueString": "Patient"}])).await;
    let all = resources(&s, &all, "output", "Patient").await;
    let mut stamps: Vec<String> = all.iter().map(|p| p["meta"]["lastUpdated"].as_str().unwrap().to_owned()).collect();
    stamps.sort();
    let until = stamps[stamps.len() / 2].clone();
    let m = export(&s, json!([{"name": "_type", "valueString": "Patient"}, {"name": "_until", "valueInstant": until}]))
        .await;
    let bounded = resources(&s, &m, "output", "Patient").await;
    assert!(!bounded.is_empty() && bounded.len() < all.len(), "{} of {}", bounded.len(), all.len());
    assert!(bounded.iter().all(|p| p["meta"]["lastUpdated"].as_str().unwrap() <= until.as_str()));
}

#[tokio::test]
async fn l6_each_type_filter_is_its_own_parameter_and_filters_its_type_only() {
    let s = start(|_| {}).await;
    let types = json!([{"name": "_type", "valueString": "Patient"}, {"name": "_type", "valueString": "Observation"}]);
    let all = export(&s, types.clone()).await;
    let mut filtered = types.as_array().unwrap().clone();
    filtered.push(json!({"name": "_typeFilter", "valueString": "Observation?category=laboratory"}));
    let m = export(&s, Value::Array(filtered)).await;
    let labs = resources(&s, &m, "output", "Observation").await;
    let every = resources(&s, &all, "output", "Observation").await;
    assert!(!labs.is_empty() && labs.len() < every.len(), "{} of {}", labs.len(), every.len());
    for o in &labs {
        assert_eq!(o["category"][0]["coding"][0]["code"], "laboratory", "{o}");
    }
    // the Patient output is untouched by an Observation filter
    assert_eq!(
        resources(&s, &m, "output", "Patient").await.len(),
        resources(&s, &all, "output", "Patient").await.len()
    );
    // a comma inside one filter is OR within that query, not a second filter
    let mut both = types.as_array().unwrap().clone();
    both.push(json!({"name": "_typeFilter", "valueString": "Observation?category=laboratory,vital-signs"}));
    let m = export(&s, Value::Array(both)).await;
    assert_eq!(resources(&s, &m, "output", "Observation").await.len(), every.len());
}

#[tokio::test]
async fn l9_deleted_is_listed_when_a_timestamp_parameter_was_sent() {
    let s = start(|_| {}).await;
    let plain = export(&s, json!([{"name": "_type", "valueString": "Patient"}])).await;
    assert!(plain["deleted"].as_array().is_none_or(|d| d.is_empty()), "{}", plain["deleted"]);
    let m = export(
        &s,
        json!([{"name": "_type", "valueString": "Patient"}, {"name": "_since", "valueInstant": "2000-01-01T00:00:00Z"}]),
    )
    .await;
    let deleted = m["deleted"].as_array().expect("a deleted array");
    assert!(!deleted.is_empty());
    for d in deleted {
        assert_eq!(d["type"], "Bundle", "{d}");
        assert!(d["fileSize"].as_u64().is_some(), "fileSize on deleted too: {d}");
    }
    let bundles = resources(&s, &m, "deleted", "Bundle").await;
    assert!(bundles.iter().all(|b| b["entry"][0]["request"]["method"] == "DELETE"));
}
