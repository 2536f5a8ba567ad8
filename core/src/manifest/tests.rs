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
