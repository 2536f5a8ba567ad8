//! Tests of the manifest: parsing (and its errors), file kinds, alignment to a first manifest, and
//! the download plan.

use super::*;

const ORACLE: &str = r#"{
  "transactionTime": "2022-01-04T17:42:25.000Z",
  "request": "https://fhir.example/r4/t/Group/g/$export?_type=Patient,Observation",
  "requiresAccessToken": true,
  "output": [
    {"type": "Patient", "url": "https://fhir.example/r4/t/bulk-export/files/1"},
    {"type": "Patient", "url": "https://fhir.example/r4/t/bulk-export/files/2"},
    {"type": "Observation", "url": "https://fhir.example/r4/t/bulk-export/files/3"}
  ],
  "error": [{"type": "OperationOutcome", "url": "https://fhir.example/r4/t/bulk-export/files/4"}]
}"#;

// protocol D2 (`count`), divergence 10's leniency applied to numbers
#[test]
fn counts_are_read_leniently() {
    let m = |count: &str| {
        let text = format!(
            r#"{{"transactionTime":"t","request":"r","output":[{{"type":"Patient","url":"https://h/1","count":{count}}}]}}"#
        );
        Manifest::parse(text.as_bytes()).unwrap().output[0].count
    };
    assert_eq!(m("7"), Some(7));
    assert_eq!(m("7.0"), Some(7));
    assert_eq!(m("\" 7 \""), Some(7));
    assert_eq!(m("7.5"), None);
    assert_eq!(m("-1"), None);
    assert_eq!(m("null"), None);
    assert_eq!(m("[7]"), None);
}

fn policy() -> TokenPolicy {
    TokenPolicy { base_url: "https://fhir.example/r4/t".into(), allowed_origins: vec![] }
}

// protocol D1, seed 004
#[test]
fn oracle_manifest_parses() {
    let m = Manifest::parse(ORACLE.as_bytes()).unwrap();
    assert!(m.requires_access_token);
    assert_eq!(m.output.len(), 3);
    assert_eq!(m.error_files().count(), 1);
    assert_eq!(m.transaction_time.as_deref(), Some("2022-01-04T17:42:25.000Z"));
}

// protocol D1/D2: STU4 `outcome`, extension as array, fileSize, unknown keys
#[test]
fn stu4_shapes() {
    let m = Manifest::parse(
        br#"{"transactionTime":"t","requiresAccessToken":false,"output":[{"type":"Patient","url":"https://a/1","count":3,"fileSize":10}],
        "outcome":[{"type":"OperationOutcome","url":"https://a/e"}],"extension":[{"url":"x","valueString":"y"}],
        "manifestType":"full","outputFormat":"application/fhir+ndjson","countSeverity":"exact","somethingNew":{"a":1}}"#,
    )
    .unwrap();
    assert!(!m.requires_access_token);
    assert_eq!(m.output[0].count, Some(3));
    assert_eq!(m.output[0].file_size, Some(10));
    assert_eq!(m.error_files().count(), 1);
    assert!(m.extension.as_ref().unwrap().is_array());
    let m2 = Manifest::parse(br#"{"output":[],"extension":{"a":1}}"#).unwrap();
    assert!(m2.extension.unwrap().is_object());
}

// divergence 10: "true" as a string
#[test]
fn requires_access_token_as_string() {
    let m = Manifest::parse(br#"{"requiresAccessToken":"true","output":[]}"#).unwrap();
    assert!(m.requires_access_token);
    let m = Manifest::parse(br#"{"requiresAccessToken":"false","output":[]}"#).unwrap();
    assert!(!m.requires_access_token);
    assert!(Manifest::parse(br#"{"requiresAccessToken":"maybe","output":[]}"#).is_err());
}

// protocol D3: an empty export is valid; malformed input is a typed error
#[test]
fn empty_and_malformed() {
    assert!(Manifest::parse(br#"{"transactionTime":"t","requiresAccessToken":false,"output":[]}"#).is_ok());
    for bad in [
        &b"[]"[..],
        b"nope",
        br#"{"resourceType":"Bundle","output":[]}"#,
        br#"{"output":{}}"#,
        br#"{"output":[{"type":"P"}]}"#,
        br#"{}"#,
    ] {
        assert!(Manifest::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

// protocol E1, I2: token only to the FHIR origin unless allowlisted; never when not required
#[test]
fn token_rules() {
    let mut m = Manifest::parse(ORACLE.as_bytes()).unwrap();
    m.output.push(ManifestFile {
        resource_type: Some("Condition".into()),
        url: "https://storage.example/x".into(),
        count: Some(2),
        file_size: None,
        continues_in_file: None,
        output_format: None,
        count_severity: Vec::new(),
    });
    let plan = plan_downloads(&m, "https://fhir.example/r4/t/bulk-export/jobs/1", &policy());
    assert!(plan[0].send_token && plan[0].blocked.is_none());
    let foreign = plan.iter().find(|p| p.url.starts_with("https://storage")).unwrap();
    assert!(!foreign.send_token && foreign.blocked.is_some());
    let allowed = TokenPolicy { allowed_origins: vec!["https://storage.example".into()], ..policy() };
    let plan = plan_downloads(&m, "https://fhir.example/x", &allowed);
    let foreign = plan.iter().find(|p| p.url.starts_with("https://storage")).unwrap();
    assert!(foreign.send_token && foreign.blocked.is_none());
    m.requires_access_token = false;
    assert!(plan_downloads(&m, "https://fhir.example/x", &policy())
        .iter()
        .all(|p| !p.send_token && p.blocked.is_none()));
}

// protocol E5: Attachment.url inside resources follows the same token rule
#[test]
fn attachment_urls_follow_the_token_rule() {
    let p = policy();
    assert!(p.may_send_token("https://fhir.example/r4/Binary/1"));
    assert!(!p.may_send_token("https://cdn.example/Binary/1"));
    assert!(!p.may_send_token("http://fhir.example/r4/Binary/1"));
    assert!(!p.may_send_token("not a url"));
}

// protocol I4: no http file under an https base
#[test]
fn http_under_https_is_blocked() {
    let m = Manifest::parse(
        br#"{"requiresAccessToken":false,"output":[{"type":"Patient","url":"http://fhir.example/f"}]}"#,
    )
    .unwrap();
    let plan = plan_downloads(&m, "https://fhir.example/s", &policy());
    assert!(plan[0].blocked.is_some());
}

// file names can never escape a directory
#[test]
fn k6_a_refresh_in_another_order_is_matched_by_identity() {
    let f = |ty: &str, url: &str, count: Option<u64>| ManifestFile {
        resource_type: Some(ty.into()),
        url: url.into(),
        count,
        file_size: None,
        continues_in_file: None,
        output_format: None,
        count_severity: Vec::new(),
    };
    let old = Manifest {
        output: vec![
            f("Patient", "https://h/f/1.ndjson", Some(3)),
            f("Observation", "https://h/f/2.ndjson", None),
            f("Observation", "https://h/f/3.ndjson", None),
        ],
        ..Manifest::default()
    };
    // Reversed, re-signed, counts dropped (as Medplum's come), one new file.
    let fresh = Manifest {
        output: vec![
            f("Observation", "https://h/f/3.ndjson?sig=2", None),
            f("Observation", "https://h/f/2.ndjson?sig=2", None),
            f("Patient", "https://h/f/1.ndjson?sig=2", None),
            f("Condition", "https://h/f/9.ndjson?sig=2", None),
        ],
        ..Manifest::default()
    };
    let (aligned, notes) = fresh.aligned_to(&old);
    let urls: Vec<&str> = aligned.output.iter().map(|f| f.url.as_str()).collect();
    assert_eq!(urls, ["https://h/f/1.ndjson?sig=2", "https://h/f/2.ndjson?sig=2", "https://h/f/3.ndjson?sig=2"]);
    assert_eq!(notes.len(), 1, "{notes:?}");
    // New paths: only a type with one file is matched; two Observations stay on their old links.
    let moved = Manifest {
        output: vec![
            f("Observation", "https://h/g/a", None),
            f("Observation", "https://h/g/b", None),
            f("Patient", "https://h/g/c", Some(3)),
        ],
        ..Manifest::default()
    };
    let (aligned, notes) = moved.aligned_to(&old);
    let urls: Vec<&str> = aligned.output.iter().map(|f| f.url.as_str()).collect();
    assert_eq!(urls, ["https://h/g/c", "https://h/f/2.ndjson", "https://h/f/3.ndjson"]);
    assert_eq!(notes.len(), 3, "{notes:?}");
}

#[test]
fn file_names_are_safe() {
    let m = Manifest::parse(br#"{"requiresAccessToken":false,"output":[{"type":"../../etc/passwd","url":"https://fhir.example/f"},{"url":"https://fhir.example/g"}]}"#).unwrap();
    let plan = plan_downloads(&m, "https://fhir.example/s", &policy());
    assert_eq!(plan[0].file_name, "etcpasswd.000.ndjson");
    assert_eq!(plan[1].file_name, "output.001.ndjson");
}

// protocol B7: pages merge without duplicates
#[test]
fn merge_pages() {
    let mut a = Manifest::parse(
        br#"{"output":[{"type":"P","url":"https://a/1"}],"link":[{"relation":"next","url":"https://a/p2"}]}"#,
    )
    .unwrap();
    assert_eq!(a.next_link(), Some("https://a/p2"));
    let b =
        Manifest::parse(br#"{"output":[{"type":"P","url":"https://a/1"},{"type":"P","url":"https://a/2"}]}"#).unwrap();
    a.merge_page(b);
    assert_eq!(a.output.len(), 2);
    assert_eq!(a.next_link(), None);
}

// protocol L10: `outcome` ?? `error`; both present → `outcome`, with a note
#[test]
fn l10_outcome_wins_over_error_with_a_warning() {
    let m = Manifest::parse(
        br#"{"output":[],"error":[{"type":"OperationOutcome","url":"https://a/old"}],
        "outcome":[{"url":"https://a/new"}]}"#,
    )
    .unwrap();
    let urls: Vec<&str> = m.error_files().map(|f| f.url.as_str()).collect();
    assert_eq!(urls, ["https://a/new"]);
    assert_eq!(m.notes.len(), 1, "{:?}", m.notes);
    assert!(m.notes[0].contains("`outcome` is read"), "{:?}", m.notes);
    // `error` alone (STU2/STU3) is read as before, without a note
    let m = Manifest::parse(br#"{"output":[],"error":[{"type":"OperationOutcome","url":"https://a/e"}]}"#).unwrap();
    assert_eq!(m.error_files().count(), 1);
    assert!(m.notes.is_empty());
}

// protocol L10: `type` may be absent on `deleted` and `outcome` items; `request` optional
#[test]
fn l10_type_absent_on_deleted_and_outcome_items() {
    let m = Manifest::parse(
        br#"{"transactionTime":"t","requiresAccessToken":false,"output":[{"type":"Patient","url":"https://a/p"}],
        "deleted":[{"url":"https://a/d","count":2,"fileSize":9}],"outcome":[{"url":"https://a/o","fileSize":5}]}"#,
    )
    .unwrap();
    assert_eq!(m.request, None);
    assert_eq!(
        (m.deleted[0].resource_type.as_deref(), m.deleted[0].count, m.deleted[0].file_size),
        (None, Some(2), Some(9))
    );
    assert_eq!((m.outcome[0].resource_type.as_deref(), m.outcome[0].file_size), (None, Some(5)));
    let plan = plan_downloads(&m, "https://a/s", &policy());
    let names: Vec<&str> = plan.iter().map(|p| p.file_name.as_str()).collect();
    assert_eq!(names, ["Patient.000.ndjson", "error.000.ndjson", "deleted.000.ndjson"]);
    assert_eq!(plan[1].expected_bytes, Some(5));
}

// protocol L10: `outputFormat` defaults to `application/fhir+ndjson`; the NDJSON aliases are lines
#[test]
fn l10_output_format_defaults_to_fhir_ndjson() {
    let m = Manifest::parse(
        br#"{"output":[{"type":"Patient","url":"https://a/1"},{"type":"Patient","url":"https://a/2","outputFormat":"ndjson"},
        {"type":"Patient","url":"https://a/3","outputFormat":"application/ndjson; charset=utf-8"}]}"#,
    )
    .unwrap();
    assert_eq!(m.format_of(&m.output[0]), DEFAULT_OUTPUT_FORMAT);
    assert_eq!(m.format_of(&m.output[1]), "ndjson");
    let plan = plan_downloads(&m, "https://a/s", &policy());
    assert!(plan.iter().all(|p| p.opaque_format.is_none() && p.file_name.ends_with(".ndjson")), "{plan:?}");
    // a manifest-wide outputFormat applies to files without their own
    let m = Manifest::parse(
        br#"{"outputFormat":"application/vnd.apache.parquet","output":[{"type":"P","url":"https://a/x"}]}"#,
    )
    .unwrap();
    assert_eq!(m.format_of(&m.output[0]), "application/vnd.apache.parquet");
}

// protocol L10: outcome/error files are deduplicated by url across pages (BD3 repeats `error`)
#[test]
fn l10_outcome_and_error_dedupe_by_url_across_pages() {
    let page = |body: &str| Manifest::parse(body.as_bytes()).unwrap();
    let mut m = page(
        r#"{"output":[{"type":"P","url":"https://a/1"}],"error":[{"type":"OperationOutcome","url":"https://a/e"}],"link":[{"relation":"next","url":"https://a/p2"}]}"#,
    );
    m.merge_page(page(
        r#"{"output":[{"type":"P","url":"https://a/2"}],"error":[{"type":"OperationOutcome","url":"https://a/e"}]}"#,
    ));
    m.merge_page(page(r#"{"output":[],"outcome":[{"url":"https://a/e"},{"url":"https://a/f"}]}"#));
    let urls: Vec<&str> = m.error_files().map(|f| f.url.as_str()).collect();
    assert_eq!(urls, ["https://a/f", "https://a/e"]);
    assert_eq!(m.output.len(), 2);
}

// protocol L11: countSeverity decides; only fatal/error counts make "completed with errors"
#[test]
fn l11_count_severity_with_only_warnings_is_not_completed_with_errors() {
    let m = |outcome: &str| Manifest::parse(format!(r#"{{"output":[],"outcome":[{outcome}]}}"#).as_bytes()).unwrap();
    let info =
        m(r#"{"url":"https://a/o","countSeverity":[{"code":"information","count":1},{"code":"warning","count":3}]}"#);
    assert_eq!(info.outcome[0].count_severity.len(), 2);
    assert!(!info.has_errors());
    assert!(!m(r#"{"url":"https://a/o","countSeverity":[{"code":"error","count":0}]}"#).has_errors());
    assert!(m(r#"{"url":"https://a/o","countSeverity":[{"code":"error","count":2}]}"#).has_errors());
    assert!(m(r#"{"url":"https://a/o","countSeverity":[{"code":"fatal","count":"1"}]}"#).has_errors());
}

// protocol L11: without countSeverity the files are what tells (an error file counts, as before)
#[test]
fn l11_without_count_severity_an_outcome_file_counts_as_errors() {
    let m = Manifest::parse(br#"{"output":[],"outcome":[{"url":"https://a/o"}]}"#).unwrap();
    assert!(m.has_errors());
    // a malformed countSeverity is no reason to refuse the manifest: read as absent
    let m = Manifest::parse(br#"{"output":[],"outcome":[{"url":"https://a/o","countSeverity":"lots"}]}"#).unwrap();
    assert!(m.outcome[0].count_severity.is_empty() && m.has_errors());
    assert!(!Manifest::parse(br#"{"output":[]}"#).unwrap().has_errors());
}

// protocol L12: manifestType absent or BulkDataManifest → this reader; unknown → the same, with a note
#[test]
fn l12_manifest_type_absent_or_unknown_reads_as_bulk_data_manifest() {
    let m = Manifest::parse(br#"{"output":[{"type":"P","url":"https://a/1"}]}"#).unwrap();
    assert_eq!((m.manifest_type.as_deref(), m.notes.len()), (None, 0));
    let m = Manifest::parse(
        br#"{"manifestType":"http://hl7.org/fhir/uv/bulkdata/StructureDefinition/BulkDataManifest","output":[]}"#,
    )
    .unwrap();
    assert!(m.notes.is_empty(), "{:?}", m.notes);
    let m = Manifest::parse(
        br#"{"manifestType":"https://x/StructureDefinition/Other","output":[{"type":"P","url":"https://a/1"}]}"#,
    )
    .unwrap();
    assert_eq!(m.output.len(), 1);
    assert!(m.notes[0].contains("not a BulkDataManifest"), "{:?}", m.notes);
}

// protocol L13: a Parquet output is planned as opaque bytes with its size, named with its extension
#[test]
fn l13_a_parquet_output_is_planned_opaque_with_its_file_size() {
    let m = Manifest::parse(
        br#"{"requiresAccessToken":false,"output":[{"type":"Patient","url":"https://a/Patient.ndjson","count":2,"fileSize":40},
        {"type":"Patient","url":"https://a/_files/1/Patient.view.parquet","outputFormat":"application/vnd.apache.parquet","fileSize":1234,"count":9},
        {"type":"Patient","url":"https://a/x.arrow?sig=1","outputFormat":"application/vnd.apache.arrow.file"},
        {"type":"Patient","url":"https://a/blob","outputFormat":"application/octet-stream"}]}"#,
    )
    .unwrap();
    let plan = plan_downloads(&m, "https://a/s", &policy());
    assert_eq!(
        (plan[0].opaque_format.as_deref(), plan[0].expected_bytes, plan[0].expected_count),
        (None, Some(40), Some(2))
    );
    assert_eq!(plan[1].opaque_format.as_deref(), Some("application/vnd.apache.parquet"));
    assert_eq!((plan[1].expected_bytes, plan[1].expected_count), (Some(1234), None));
    let names: Vec<&str> = plan.iter().map(|p| p.file_name.as_str()).collect();
    assert_eq!(names, ["Patient.000.ndjson", "Patient.001.parquet", "Patient.002.arrow", "Patient.003.bin"]);
}
