//! Tests of finding, resolving and planning attachments (protocol M1–M4, M6, M8).

use super::*;
use crate::manifest::{FileKind, TokenPolicy};
use serde_json::json;

pub(super) const BASE: &str = "https://fhir.example/r4";

pub(super) fn opts(mode: AttachmentMode) -> AttachmentOptions {
    AttachmentOptions { mode, ..Default::default() }
}

pub(super) fn policy(allowed: &[&str]) -> TokenPolicy {
    TokenPolicy { base_url: BASE.into(), allowed_origins: allowed.iter().map(|s| s.to_string()).collect() }
}

fn doc_ref() -> serde_json::Value {
    json!({"resourceType":"DocumentReference","id":"d1","content":[
        {"attachment":{"contentType":"text/plain; charset=utf-8","url":"Binary/1","size":5,"hash":"abc"}},
        {"attachment":{"contentType":"application/pdf","url":"https://other.example/doc.pdf","size":"12"}},
        {"attachment":{"contentType":"text/plain","data":"aGVsbG8=","url":"Binary/2"}},
        {"attachment":{"contentType":"text/plain"}}
    ]})
}

// protocol M1: the three carriers, with the pointer of each Attachment
#[test]
fn m1_document_reference_diagnostic_report_and_media_are_carriers() {
    let o = opts(AttachmentMode::Inline);
    let found = find_attachments(&doc_ref(), &o);
    let pointers: Vec<_> = found.iter().map(|r| r.pointer.as_str()).collect();
    assert_eq!(pointers, ["/content/0/attachment", "/content/1/attachment"]);
    assert_eq!(found[0].size, Some(5));
    assert_eq!(found[1].size, Some(12), "an R5 integer64 size is a string");
    assert_eq!(found[0].hash.as_deref(), Some("abc"));
    let dr = json!({"resourceType":"DiagnosticReport","presentedForm":[{"contentType":"text/html","url":"Binary/h"}]});
    assert_eq!(find_attachments(&dr, &o)[0].pointer, "/presentedForm/0");
    let media = json!({"resourceType":"Media","content":{"contentType":"image/png","url":"Binary/p"}});
    assert_eq!(find_attachments(&media, &o)[0].pointer, "/content");
    let patient = json!({"resourceType":"Patient","photo":[{"contentType":"image/png","url":"Binary/x"}]});
    assert!(find_attachments(&patient, &o).is_empty(), "other elements are opt-in");
}

// protocol M1: other Attachment elements, opt-in (all_elements), pointers escaped
#[test]
fn m1_other_attachment_elements_are_opt_in() {
    let o = AttachmentOptions { all_elements: true, ..opts(AttachmentMode::Files) };
    let patient = json!({"resourceType":"Patient","photo":[{"contentType":"image/png","url":"Binary/x"}],
        "a/b":{"url":"Binary/y","title":"t"},"link":{"url":"https://not-an-attachment"}});
    let found = find_attachments(&patient, &o);
    let pointers: Vec<_> = found.iter().map(|r| r.pointer.as_str()).collect();
    assert_eq!(pointers, ["/a~1b", "/photo/0"]);
    assert_eq!(find_attachments(&doc_ref(), &o).len(), 2);
}

// protocol M2: url and no data; media type without parameters, prefix match; no type only when all asked
#[test]
fn m2_only_url_without_data_filtered_by_media_type() {
    let mut o = AttachmentOptions { types: vec!["TEXT/".into()], ..opts(AttachmentMode::Inline) };
    let found = find_attachments(&doc_ref(), &o);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].url, "Binary/1");
    o.types = vec!["application/pdf".into()];
    assert_eq!(find_attachments(&doc_ref(), &o)[0].url, "https://other.example/doc.pdf");
    let untyped = json!({"resourceType":"DocumentReference","content":[{"attachment":{"url":"Binary/9"}}]});
    assert!(find_attachments(&untyped, &o).is_empty(), "no contentType: only when every type is asked for");
    o.types.clear();
    assert_eq!(find_attachments(&untyped, &o).len(), 1);
}

// protocol M2: the line pre-check; a line that is not an object gives none
#[test]
fn m2_find_in_line_skips_lines_without_url_and_bad_json() {
    let o = opts(AttachmentMode::Inline);
    assert!(find_in_line(br#"{"resourceType":"Patient","id":"p"}"#, &o).is_empty());
    assert!(find_in_line(br#"{"url": not json"#, &o).is_empty());
    assert!(find_in_line(br#"["url"]"#, &o).is_empty());
    let line = serde_json::to_vec(&doc_ref()).unwrap();
    assert_eq!(find_in_line(&line, &o).len(), 2);
}

// protocol M3: Binary/{id} against the FHIR base (not the file URL), absolute URLs stay
#[test]
fn m3_relative_urls_resolve_against_the_fhir_base() {
    let r = |u: &str| resolve_attachment_url(u, BASE);
    assert_eq!(r("Binary/1").as_deref(), Some("https://fhir.example/r4/Binary/1"));
    assert_eq!(
        resolve_attachment_url("Binary/1", "https://fhir.example/r4/").as_deref(),
        Some("https://fhir.example/r4/Binary/1")
    );
    assert_eq!(r(" https://Other.example/a?sig=1 ").as_deref(), Some("https://other.example/a?sig=1"));
    assert_eq!(r("/r4/Binary/2").as_deref(), Some("https://fhir.example/r4/Binary/2"));
    for bad in ["", "  ", "#contained", "urn:uuid:1234", "ftp://x/y", "data:text/plain;base64,aGk="] {
        assert_eq!(r(bad), None, "{bad:?}");
    }
}

// protocol M3: deduplicated by resolved URL: relative and absolute spellings are fetched once
#[test]
fn m3_the_plan_fetches_each_resolved_url_once() {
    let mut plan = AttachmentPlan::new(policy(&[]), opts(AttachmentMode::Files));
    let a = AttachmentRef { pointer: "/x".into(), url: "Binary/1".into(), content_type: None, size: None, hash: None };
    let b = AttachmentRef { url: "https://fhir.example/r4/Binary/1".into(), ..a.clone() };
    assert_eq!(plan.add(&a), Some(0));
    assert_eq!(plan.add(&b), Some(0));
    assert_eq!(plan.add(&AttachmentRef { url: "urn:x".into(), ..a.clone() }), None);
    assert_eq!(plan.len(), 1);
    assert_eq!(plan.id_of("https://fhir.example/r4/Binary/1"), Some(0));
    let f = &plan.files()[0];
    assert_eq!((f.kind, f.index, f.opaque_format.as_deref()), (FileKind::Attachment, 0, Some("*/*")));
    assert_eq!(f.max_bytes, Some(DEFAULT_ATTACHMENT_MAX_SIZE));
    assert_eq!((f.expected_count, f.expected_bytes, f.resource_type.as_deref()), (None, None, None));
    let mut off = AttachmentPlan::new(policy(&[]), opts(AttachmentMode::Off));
    assert_eq!(off.add(&a), None, "mode off plans nothing");
}

// protocol M5: the hash checked for a URL is the first one any ref to it gave
#[test]
fn m5_the_plan_keeps_the_first_hash_a_ref_gives() {
    let mut plan = AttachmentPlan::new(policy(&[]), opts(AttachmentMode::Files));
    let a = AttachmentRef { pointer: "/x".into(), url: "Binary/1".into(), content_type: None, size: None, hash: None };
    assert_eq!(plan.add(&a), Some(0));
    assert_eq!(plan.hash(0), None);
    assert_eq!(plan.add(&AttachmentRef { hash: Some("first=".into()), ..a.clone() }), Some(0));
    assert_eq!(plan.add(&AttachmentRef { hash: Some("second=".into()), ..a.clone() }), Some(0));
    assert_eq!(plan.hash(0), Some("first="));
    assert_eq!(plan.hash(1), None, "no such attachment");
}

// protocol M4: the token goes to the FHIR origin (Binary/{id}) and allowed origins only, over https
#[test]
fn m4_token_only_to_the_fhir_origin_or_an_allowed_one() {
    let mut plan = AttachmentPlan::new(policy(&["https://files.example"]), opts(AttachmentMode::Inline));
    let r =
        |url: &str| AttachmentRef { pointer: "/p".into(), url: url.into(), content_type: None, size: None, hash: None };
    for (url, token) in [
        ("Binary/1", true),
        ("https://fhir.example/other/Binary/2", true),
        ("https://files.example/a.pdf", true),
        ("https://evil.example/a.pdf", false),
        ("https://fhir.example:8443/Binary/3", false),
    ] {
        let id = plan.add(&r(url)).unwrap();
        assert_eq!(plan.files()[id].send_token, token, "{url}");
        assert_eq!(plan.files()[id].blocked, None, "{url}");
    }
    // an http: URL under an https: base is never fetched (I4)
    let id = plan.add(&r("http://fhir.example/r4/Binary/4")).unwrap();
    assert!(!plan.files()[id].send_token);
    assert!(plan.files()[id].blocked.as_deref().unwrap().contains("http:"));
}

// protocol M6: a declared size over the limit is planned as blocked, with both figures
#[test]
fn m6_a_declared_size_over_the_limit_is_blocked() {
    let o = AttachmentOptions { max_size: 10, ..opts(AttachmentMode::Files) };
    let mut plan = AttachmentPlan::new(policy(&[]), o);
    let r = AttachmentRef {
        pointer: "/p".into(),
        url: "Binary/big".into(),
        content_type: None,
        size: Some(11),
        hash: None,
    };
    let id = plan.add(&r).unwrap();
    assert_eq!(plan.files()[id].blocked.as_deref(), Some("over the attachment size limit: 11 bytes > 10"));
    let ok = plan.add(&AttachmentRef { url: "Binary/small".into(), size: Some(10), ..r }).unwrap();
    assert_eq!(plan.files()[ok].blocked, None);
    assert_eq!(plan.files()[ok].max_bytes, Some(10));
}

// protocol M8: a deterministic name without separators, extension from the media type
#[test]
fn m8_file_names_are_deterministic_and_safe() {
    let url = "https://fhir.example/r4/Binary/1";
    let a = attachment_file_name(url, Some("application/pdf"));
    assert_eq!(a, attachment_file_name(url, Some("application/pdf")));
    assert_eq!(a.len(), 16 + 4);
    assert!(a.ends_with(".pdf") && a[..16].chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(a, "bd80d95ae94de392.pdf", "the first 16 hex digits of SHA-1(url)");
    assert_ne!(a[..16], attachment_file_name("https://fhir.example/r4/Binary/2", None)[..16]);
    assert!(attachment_file_name(url, Some("text/plain; charset=utf-8")).ends_with(".txt"));
    assert!(attachment_file_name(url, Some("image/jpeg")).ends_with(".jpg"));
    assert!(attachment_file_name(url, Some("application/x-weird")).ends_with(".bin"));
    assert!(attachment_file_name(url, None).ends_with(".bin"));
    let mut plan = AttachmentPlan::new(policy(&[]), opts(AttachmentMode::Files));
    let r = AttachmentRef {
        pointer: "/p".into(),
        url: "Binary/1".into(),
        content_type: Some("text/html".into()),
        size: None,
        hash: None,
    };
    let id = plan.add(&r).unwrap();
    assert_eq!(plan.files()[id].file_name, attachment_file_name(url, Some("text/html")));
    assert_eq!(plan.files()[id].opaque_format.as_deref(), Some("text/html"), "sent as Accept");
}

// the options' serde names are the ones every binding uses
#[test]
fn m_options_serde_names() {
    let o: AttachmentOptions =
        serde_json::from_value(json!({"mode":"inline","types":["text/"],"maxSize":5,"allElements":true})).unwrap();
    assert_eq!((o.mode, o.max_size, o.all_elements), (AttachmentMode::Inline, 5, true));
    let d: AttachmentOptions = serde_json::from_value(json!({})).unwrap();
    assert_eq!(d, AttachmentOptions::default());
    assert_eq!(serde_json::to_value(AttachmentMode::Files).unwrap(), json!("files"));
    let dl: crate::DownloadOptions = serde_json::from_value(json!({"attachments":{"mode":"files"}})).unwrap();
    assert_eq!(dl.attachments.mode, AttachmentMode::Files);
}

// protocol M4/M6 through the coordinator: attachment files run with default DownloadOptions,
// the token only where the plan allows it, Accept = the media type, too_large per file
#[test]
fn m4_m6_planned_attachments_run_through_downloads() {
    use crate::{DownloadOptions, DownloadStep, Downloads};
    let o = AttachmentOptions { max_size: 4, ..opts(AttachmentMode::Files) };
    let mut plan = AttachmentPlan::new(policy(&[]), o);
    let r = |url: &str| AttachmentRef {
        pointer: "/p".into(),
        url: url.into(),
        content_type: Some("text/plain".into()),
        size: None,
        hash: None,
    };
    plan.add(&r("Binary/1")).unwrap();
    plan.add(&r("https://other.example/a.txt")).unwrap();
    let mut d = Downloads::new(plan.files().to_vec(), DownloadOptions::default(), &Default::default());
    let mut sent = Vec::new();
    while let DownloadStep::Send { file, request } = d.next(0).unwrap() {
        let accept = request.headers.iter().find(|(k, _)| k == "Accept").map(|(_, v)| v.clone());
        sent.push((file, request.id, request.url.clone(), request.auth, accept));
    }
    assert_eq!(sent.len(), 2, "attachments are selected whatever kinds and opaque_files say");
    assert_eq!((sent[0].3, sent[1].3), (true, false), "the token only to the FHIR origin");
    assert_eq!(sent[0].4.as_deref(), Some("text/plain"));
    let (f0, id0) = (sent[0].0, sent[0].1);
    d.handle_head(f0, id0, 200, &[], false, 0).unwrap();
    let mut got = Vec::new();
    d.feed(f0, id0, b"12345", 0, |b| got.extend_from_slice(b)).unwrap();
    let err = d.result(f0).and_then(|r| r.error.clone()).expect("failed");
    assert_eq!(err.code(), "too_large");
    let (f1, id1) = (sent[1].0, sent[1].1);
    d.handle_head(f1, id1, 200, &[], false, 0).unwrap();
    d.feed(f1, id1, b"abc", 0, |_| {}).unwrap();
    d.finish(f1, id1, 0, |_| {}).unwrap();
    assert_eq!(d.next(0).unwrap(), DownloadStep::Done);
    assert_eq!(d.result(f1).and_then(|r| r.report.as_ref()).map(|r| r.bytes), Some(3));
}
