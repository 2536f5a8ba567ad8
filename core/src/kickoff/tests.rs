//! Tests of the kick-off: building each operation's request, validating parameters, the Prefer
//! header.

use super::*;

#[test]
fn operation_round_trips_and_rejects_unknown_types() {
    let all = [
        Operation::Export(ExportRequest { types: vec!["Patient".into()], ..Default::default() }),
        Operation::Operation(OperationRequest { method: Method::Post, path: "$reindex".into(), body: None }),
    ];
    crate::tagged::round_trip(&all);
    let minimal: Operation = serde_json::from_str(r#"{"type":"export"}"#).unwrap();
    assert_eq!(minimal, Operation::Export(ExportRequest::default()));
    let e = serde_json::from_str::<Operation>(r#"{"type":"import"}"#).unwrap_err().to_string();
    assert!(e.contains("unknown variant `import`"), "{e}");
}

fn build(e: ExportRequest, p: PreferOptions) -> Request {
    build_kickoff("https://fhir.example/r4", &Operation::Export(e), &p, 1, 1000).unwrap()
}

// protocol A1: Prefer and Accept on every kick-off
#[test]
fn headers() {
    let r = build(ExportRequest::default(), PreferOptions::default());
    assert_eq!(r.header("Accept"), Some("application/fhir+json"));
    assert_eq!(r.header("Prefer"), Some("respond-async"));
    assert_eq!(r.url, "https://fhir.example/r4/$export");
    assert!(r.auth);
    let r = build(
        ExportRequest::default(),
        PreferOptions {
            async_mode: Some(AsyncMode::Redirect),
            callback_url: Some("https://me.example/cb".into()),
            lenient: true,
            separate_export_status: true,
        },
    );
    assert_eq!(
        r.header("Prefer"),
        Some("respond-async, async-mode=redirect, callback-url=https://me.example/cb, handling=lenient, separate-export-status")
    );
}

// protocol A2: GET by default, POST when `patient` is given; levels
#[test]
fn levels_and_post_switch() {
    let r = build(
        ExportRequest {
            level: ExportLevel::Group,
            group_id: Some("g1".into()),
            types: vec!["Patient".into(), "Observation".into()],
            ..Default::default()
        },
        PreferOptions::default(),
    );
    assert_eq!(r.method, Method::Get);
    assert_eq!(r.url, "https://fhir.example/r4/Group/g1/$export?_type=Patient%2CObservation");
    let r = build(
        ExportRequest {
            level: ExportLevel::Patient,
            patients: vec!["Patient/1".into(), "Patient/2".into()],
            ..Default::default()
        },
        PreferOptions::default(),
    );
    assert_eq!(r.method, Method::Post);
    assert_eq!(r.url, "https://fhir.example/r4/Patient/$export");
    let body: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
    let refs: Vec<&str> = body["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "patient")
        .map(|p| p["valueReference"]["reference"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["Patient/1", "Patient/2"]);
    assert_eq!(r.header("Content-Type"), Some("application/fhir+json"));
    assert!(build_kickoff(
        "https://x/",
        &Operation::Export(ExportRequest { level: ExportLevel::Group, ..Default::default() }),
        &PreferOptions::default(),
        1,
        1
    )
    .is_err());
}

// protocol A2/A4: _typeFilter repeated, never comma-joined (GET and POST)
#[test]
fn type_filter_repeated() {
    let e = ExportRequest {
        type_filters: vec!["Observation?code=1,2".into(), "Observation?status=final".into()],
        ..Default::default()
    };
    let r = build(e.clone(), PreferOptions::default());
    let u = Url::parse(&r.url).unwrap();
    let tf: Vec<String> = u.query_pairs().filter(|(k, _)| k == "_typeFilter").map(|(_, v)| v.into_owned()).collect();
    assert_eq!(tf, ["Observation?code=1,2", "Observation?status=final"]);
    let r = build(ExportRequest { post: true, ..e }, PreferOptions::default());
    let body: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["parameter"].as_array().unwrap().iter().filter(|p| p["name"] == "_typeFilter").count(), 2);
}

// protocol A3, A4, A5: forbidden values are usage errors
#[test]
fn validation() {
    let bad = [
        ExportRequest { output_format: Some("text/csv".into()), ..Default::default() },
        ExportRequest { type_filters: vec!["Observation?_include=x".into()], ..Default::default() },
        ExportRequest { type_filters: vec!["Observation?_sort=date".into()], ..Default::default() },
        ExportRequest { type_filters: vec!["nope".into()], ..Default::default() },
        ExportRequest { ig_version: IgVersion::Stu2, until: Some("2020".into()), ..Default::default() },
        ExportRequest { ig_version: IgVersion::Stu2, allow_partial_manifests: Some(true), ..Default::default() },
        ExportRequest { types: vec!["Pat ient".into()], ..Default::default() },
    ];
    for e in bad {
        let err = build_kickoff("https://x/", &Operation::Export(e.clone()), &PreferOptions::default(), 1, 1);
        assert!(matches!(err, Err(Error::Usage { .. })), "{e:?}");
    }
    for f in OUTPUT_FORMATS {
        assert!(build_kickoff(
            "https://x/",
            &Operation::Export(ExportRequest { output_format: Some(f.into()), ..Default::default() }),
            &PreferOptions::default(),
            1,
            1
        )
        .is_ok());
    }
}

// protocol A5: STU4 is POST-only with includeAssociatedData as a Coding
#[test]
fn stu4_post_only() {
    let r = build(
        ExportRequest {
            ig_version: IgVersion::Stu4,
            include_associated_data: vec!["LatestProvenanceResources".into()],
            ..Default::default()
        },
        PreferOptions::default(),
    );
    assert_eq!(r.method, Method::Post);
    let body: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["parameter"][0]["valueCoding"]["code"], "LatestProvenanceResources");
}

// any operation: $reindex, a search
#[test]
fn operations() {
    let r = build_kickoff(
        "https://fhir.example/r4/",
        &Operation::Operation(OperationRequest {
            method: Method::Post,
            path: "$reindex".into(),
            body: Some("{}".into()),
        }),
        &PreferOptions::default(),
        1,
        1,
    )
    .unwrap();
    assert_eq!(r.url, "https://fhir.example/r4/$reindex");
    let r = build_kickoff(
        "https://fhir.example/r4",
        &Operation::Operation(OperationRequest { method: Method::Get, path: "Patient?name=x".into(), body: None }),
        &PreferOptions::default(),
        1,
        1,
    )
    .unwrap();
    assert_eq!(r.url, "https://fhir.example/r4/Patient?name=x");
    assert_eq!(r.header("Content-Type"), None);
}
