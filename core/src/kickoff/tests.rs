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

fn params(r: &Request) -> Vec<Value> {
    let body: Value = serde_json::from_str(r.body.as_deref().expect("a Parameters body")).unwrap();
    assert_eq!(body["resourceType"], "Parameters");
    body["parameter"].as_array().unwrap().clone()
}

/// Every parameter of the given name, as (value type, value).
fn values(p: &[Value], name: &str) -> Vec<(String, Value)> {
    p.iter()
        .filter(|x| x["name"] == name)
        .map(|x| {
            let (k, v) = x.as_object().unwrap().iter().find(|(k, _)| k.starts_with("value")).unwrap();
            (k.clone(), v.clone())
        })
        .collect()
}

fn every_parameter(ig_version: IgVersion) -> ExportRequest {
    ExportRequest {
        output_format: Some("application/fhir+ndjson".into()),
        since: Some("2024-01-01T00:00:00Z".into()),
        until: Some("2025-01-01T00:00:00Z".into()),
        types: vec!["Patient".into(), "Observation".into()],
        elements: vec!["id".into(), "Observation.code".into()],
        patients: vec!["Patient/1".into()],
        include_associated_data: vec!["LatestProvenanceResources".into(), "_custom".into()],
        type_filters: vec!["Observation?status=final,amended".into(), "Observation?code=x".into()],
        organize_output_by: Some("Patient".into()),
        allow_partial_manifests: Some(true),
        minimum_file_size: Some(1000),
        maximum_file_size: Some(5_000_000),
        ig_version,
        ..Default::default()
    }
}

// protocol L1: STU4 is POST + Parameters, one parameter per value, each of the ballot's types
#[test]
fn l1_stu4_kickoff_is_a_post_of_parameters_one_per_value_with_the_ballots_types() {
    let r = build(every_parameter(IgVersion::Stu4), PreferOptions::default());
    assert_eq!(r.method, Method::Post);
    assert_eq!(r.url, "https://fhir.example/r4/$export", "no parameter in the query");
    assert_eq!(r.header("Content-Type"), Some("application/fhir+json"));
    let p = params(&r);
    let s = |v: &str| ("valueString".to_owned(), json!(v));
    assert_eq!(values(&p, "_outputFormat"), [s("application/fhir+ndjson")]);
    assert_eq!(values(&p, "_type"), [s("Patient"), s("Observation")], "one _type per value, never comma-joined");
    assert_eq!(values(&p, "_elements"), [s("id"), s("Observation.code")]);
    assert_eq!(
        values(&p, "_typeFilter"),
        [s("Observation?status=final,amended"), s("Observation?code=x")],
        "repeated, the commas inside a value kept"
    );
    assert_eq!(values(&p, "organizeOutputBy"), [s("Patient")]);
    assert_eq!(values(&p, "_since"), [("valueInstant".to_owned(), json!("2024-01-01T00:00:00Z"))]);
    assert_eq!(values(&p, "_until"), [("valueInstant".to_owned(), json!("2025-01-01T00:00:00Z"))]);
    assert_eq!(values(&p, "patient"), [("valueReference".to_owned(), json!({"reference": "Patient/1"}))]);
    assert_eq!(values(&p, "allowPartialManifests"), [("valueBoolean".to_owned(), json!(true))]);
    assert_eq!(values(&p, "_minimumFileSize"), [("valuePositiveInt".to_owned(), json!(1000))]);
    assert_eq!(values(&p, "_maximumFileSize"), [("valuePositiveInt".to_owned(), json!(5_000_000))]);
    assert_eq!(p.len(), 16, "nothing else (two includeAssociatedData): {p:?}");
}

// protocol L3: includeAssociatedData is a Coding of the ballot's system in STU4, a code before
#[test]
fn l3_include_associated_data_is_a_coding_in_stu4_and_a_code_in_stu2_and_stu3() {
    let r = build(every_parameter(IgVersion::Stu4), PreferOptions::default());
    let coding = |c: &str| ("valueCoding".to_owned(), json!({"system": INCLUDE_ASSOCIATED_DATA_SYSTEM, "code": c}));
    assert_eq!(values(&params(&r), "includeAssociatedData"), [coding("LatestProvenanceResources"), coding("_custom")]);
    assert_eq!(INCLUDE_ASSOCIATED_DATA_SYSTEM, "http://hl7.org/fhir/uv/bulkdata/CodeSystem/include-associated-data");
    for v in [IgVersion::Stu3, IgVersion::Auto] {
        let r = build(ExportRequest { post: true, ..every_parameter(v) }, PreferOptions::default());
        let code = |c: &str| ("valueCode".to_owned(), json!(c));
        assert_eq!(
            values(&params(&r), "includeAssociatedData"),
            [code("LatestProvenanceResources"), code("_custom")],
            "{v:?}"
        );
    }
    let e = ExportRequest {
        include_associated_data: vec!["LatestProvenanceResources".into()],
        ig_version: IgVersion::Stu2,
        ..Default::default()
    };
    let r = build(e, PreferOptions::default());
    assert_eq!(r.url, "https://fhir.example/r4/$export?includeAssociatedData=LatestProvenanceResources");
}

// protocol L5: `_until` in both forms; refused before STU3 (A5)
#[test]
fn l5_until_is_sent_in_the_query_and_as_an_instant() {
    let e = ExportRequest { until: Some("2025-01-01T00:00:00+01:00".into()), ..Default::default() };
    let r = build(e.clone(), PreferOptions::default());
    assert_eq!(r.method, Method::Get);
    let u = Url::parse(&r.url).unwrap();
    let until: Vec<String> = u.query_pairs().filter(|(k, _)| k == "_until").map(|(_, v)| v.into_owned()).collect();
    assert_eq!(until, ["2025-01-01T00:00:00+01:00"], "the + survives the query: {}", r.url);
    let r = build(ExportRequest { ig_version: IgVersion::Stu4, ..e.clone() }, PreferOptions::default());
    assert_eq!(values(&params(&r), "_until"), [("valueInstant".to_owned(), json!("2025-01-01T00:00:00+01:00"))]);
    let stu2 = Operation::Export(ExportRequest { ig_version: IgVersion::Stu2, ..e });
    assert!(matches!(build_kickoff("https://x/", &stu2, &PreferOptions::default(), 1, 1), Err(Error::Usage { .. })));
}

// protocol L6 (GET side), BD3: `_typeFilter` repeated, its `?`, `&`, `=` percent-encoded in the value
#[test]
fn l6_type_filters_are_repeated_in_the_query_and_their_separators_encoded() {
    let e = ExportRequest {
        type_filters: vec!["Observation?status=final,amended&category=laboratory".into(), "Condition?code=x".into()],
        ..Default::default()
    };
    let r = build(e, PreferOptions::default());
    assert_eq!(r.method, Method::Get);
    let query = r.url.split_once('?').unwrap().1;
    assert_eq!(
        query,
        "_typeFilter=Observation%3Fstatus%3Dfinal%2Camended%26category%3Dlaboratory&_typeFilter=Condition%3Fcode%3Dx"
    );
}

// protocol L7: the file sizes are positive integers, the maximum over the minimum, in both forms
#[test]
fn l7_file_sizes_are_positive_integers_max_over_min() {
    let e = ExportRequest { minimum_file_size: Some(10), maximum_file_size: Some(20), ..Default::default() };
    let r = build(e.clone(), PreferOptions::default());
    assert_eq!(r.url, "https://fhir.example/r4/$export?_minimumFileSize=10&_maximumFileSize=20");
    let r = build(ExportRequest { ig_version: IgVersion::Stu4, ..e.clone() }, PreferOptions::default());
    let p = params(&r);
    assert_eq!(values(&p, "_minimumFileSize"), [("valuePositiveInt".to_owned(), json!(10))]);
    assert_eq!(values(&p, "_maximumFileSize"), [("valuePositiveInt".to_owned(), json!(20))]);
    let only_max = ExportRequest { maximum_file_size: Some(1), ..Default::default() };
    assert!(build_kickoff("https://x/", &Operation::Export(only_max), &PreferOptions::default(), 1, 1).is_ok());
    for (min, max) in [(Some(0), None), (None, Some(0)), (Some(20), Some(20)), (Some(21), Some(20))] {
        let e = ExportRequest { minimum_file_size: min, maximum_file_size: max, ..Default::default() };
        let err = build_kickoff("https://x/", &Operation::Export(e), &PreferOptions::default(), 1, 1).unwrap_err();
        assert!(matches!(&err, Error::Usage { .. }) && err.to_string().contains("L7"), "{min:?} {max:?}: {err}");
    }
    let json: ExportRequest = serde_json::from_str(r#"{"minimumFileSize": 5, "maximumFileSize": 9}"#).unwrap();
    assert_eq!((json.minimum_file_size, json.maximum_file_size), (Some(5), Some(9)));
}

// protocol L2: the version a CapabilityStatement declares for the export
#[test]
fn l2_the_declared_version_comes_from_the_export_operations_definition_or_name() {
    let cs =
        |ops: Value| json!({"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "operation": ops}]});
    let def = |d: &str| json!([{"name": "export", "definition": d}]);
    let stu4 = Some(IgVersion::Stu4);
    assert_eq!(declared_version(&cs(def("http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export|4.0.0"))), stu4);
    assert_eq!(
        declared_version(&cs(def("http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export|4.0.0-ballot"))),
        stu4
    );
    assert_eq!(
        declared_version(&cs(json!([{"name": "export-v4", "definition": "http://x/OperationDefinition/export-v4"}]))),
        stu4
    );
    assert_eq!(
        declared_version(&cs(
            json!([{"name": "export", "definition": {"reference": "http://x/OperationDefinition/export|4.0.0"}}])
        )),
        stu4
    );
    // on a resource (Patient/Group level)
    let on_resource = json!({"resourceType": "CapabilityStatement", "rest": [{"resource": [{"type": "Group",
        "operation": [{"name": "group-export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export|4.0.0"}]}]}]});
    assert_eq!(declared_version(&on_resource), stu4);
    for not_stu4 in [
        cs(def("http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export")),
        cs(def("http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export|3.0.0")),
        cs(def("http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export|40.1")),
        cs(json!([{"name": "reindex", "definition": "http://x/OperationDefinition/reindex|4.0.0"}])),
        cs(json!("not an array")),
        json!({"resourceType": "CapabilityStatement"}),
        json!([1, 2]),
    ] {
        assert_eq!(declared_version(&not_stu4), None, "{not_stu4}");
    }
}

// protocol L4 [R]: a resource tagged SUBSETTED (what `_elements` returns) never replaces a full one
#[test]
fn l4_a_subset_never_replaces_a_full_resource() {
    use super::{is_subsetted, may_replace, SUBSETTED_SYSTEM};
    let full = serde_json::json!({"resourceType": "Patient", "id": "1", "name": [{"family": "F"}]});
    let subset = serde_json::json!({"resourceType": "Patient", "id": "1",
        "meta": {"tag": [{"system": SUBSETTED_SYSTEM, "code": "SUBSETTED"}]}});
    let other_tag = serde_json::json!({"resourceType": "Patient", "id": "1",
        "meta": {"tag": [{"system": "http://example.org/tags", "code": "SUBSETTED"}]}});
    assert!(is_subsetted(&subset) && !is_subsetted(&full) && !is_subsetted(&other_tag));
    assert!(!may_replace(&full, &subset), "a subset over a full resource");
    assert!(may_replace(&subset, &full) && may_replace(&subset, &subset) && may_replace(&full, &full));
}

// protocol L6: `_type` and each `_typeFilter`'s parameters against the CapabilityStatement:
// operation-not-supported on a type or a searchParam, or a parameter the resource does not list
#[test]
fn l6_type_filter_parameters_checked_against_the_capability_statement() {
    use super::{unsupported_parameters, OPERATION_NOT_SUPPORTED};
    let ext = serde_json::json!([{"url": OPERATION_NOT_SUPPORTED,
        "valueCanonical": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}]);
    let cs = serde_json::json!({"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "resource": [
        {"type": "Observation", "searchParam": [{"name": "code", "type": "token"},
            {"name": "category", "type": "token", "extension": ext}]},
        {"type": "Binary", "extension": ext},
        {"type": "Condition"}
    ]}]});
    let e = |types: &[&str], filters: &[&str]| ExportRequest {
        types: types.iter().map(|s| s.to_string()).collect(),
        type_filters: filters.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let ok = e(&["Observation", "Condition"], &["Observation?code=1,2&_lastUpdated=gt2020", "Condition?onset=x"]);
    assert!(unsupported_parameters(&cs, &ok).is_empty(), "{:?}", unsupported_parameters(&cs, &ok));
    let notes =
        unsupported_parameters(&cs, &e(&["Binary"], &["Observation?category=x", "Observation?status:not=final"]));
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(notes[0].contains("Binary") && notes[0].contains("operation-not-supported"), "{notes:?}");
    assert!(notes[1].contains("Observation.category") && notes[1].contains("operation-not-supported"), "{notes:?}");
    assert!(notes[2].contains("Observation.status") && notes[2].contains("does not declare"), "{notes:?}");
    assert!(notes.iter().all(|n| n.contains("L6")), "{notes:?}");
    // A CapabilityStatement without resources says nothing.
    let bare = serde_json::json!({"resourceType": "CapabilityStatement", "rest": [{"mode": "server"}]});
    assert!(unsupported_parameters(&bare, &e(&["Binary"], &["Observation?category=x"])).is_empty());
}
