//! Tests of decoding, inlining and the hydrator (protocol M5, M7, M9).

use super::decode::sha1_base64;
use super::tests::{opts, policy, BASE};
use super::*;
use crate::download::DownloadError;
use serde_json::{json, Value};

const URL: &str = "https://fhir.example/r4/Binary/1?sig=secret";

fn fetched(bytes: &[u8], ct: &str) -> Fetched {
    decode_attachment(URL, bytes.to_vec(), Some(ct), None).unwrap()
}

// protocol M5: raw bytes stay raw; their SHA-1 is base64 (R4 Attachment.hash)
#[test]
fn m5_raw_bytes_are_taken_as_they_are() {
    let f = fetched(b"hello", "text/plain");
    assert_eq!((f.bytes.as_slice(), f.size, f.content_type.as_deref()), (&b"hello"[..], 5, Some("text/plain")));
    assert_eq!(f.sha1, "qvTGHdzF6KLavt4PO0gs2a6pQ00=");
    // JSON that is neither a Binary nor an OperationOutcome is the document itself
    let doc = br#"{"some":"json document"}"#;
    assert_eq!(fetched(doc, "application/json").bytes, doc);
    assert_eq!(fetched(b"{not json", "application/json").bytes, b"{not json");
}

// protocol M5: a JSON Binary (application/fhir+json as well as application/json) is decoded from data
#[test]
fn m5_a_json_binary_is_decoded_with_its_content_type() {
    let body = br#"{"resourceType":"Binary","contentType":"text/plain","data":"aGVs\nbG8="}"#;
    for ct in ["application/fhir+json; fhirVersion=4.0", "application/json", "Application/FHIR+JSON"] {
        let f = fetched(body, ct);
        assert_eq!((f.bytes.as_slice(), f.content_type.as_deref()), (&b"hello"[..], Some("text/plain")), "{ct}");
    }
    // a Binary body under another media type is not decoded
    assert_eq!(fetched(body, "text/plain").bytes, body);
}

// protocol M5: an OperationOutcome is a typed error with the server's words, the URL redacted
#[test]
fn m5_an_operation_outcome_is_a_typed_error() {
    let oo = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"forbidden","diagnostics":"no Binary scope"}]}"#;
    let e = decode_attachment(URL, oo.to_vec(), Some("application/fhir+json"), None).unwrap_err();
    assert_eq!(e.code(), "attachment_outcome");
    let m = e.to_string();
    assert!(m.contains("no Binary scope") && m.contains("https://fhir.example/r4/Binary/1?…"), "{m}");
    assert!(!m.contains("secret"), "{m}");
}

// protocol M5: a Binary without data, or with data that is not base64, is bad_binary
#[test]
fn m5_bad_binaries_are_typed_errors() {
    for (body, says) in [
        (r#"{"resourceType":"Binary","contentType":"text/plain"}"#, "no data"),
        (r#"{"resourceType":"Binary","data":42}"#, "not a string"),
        (r#"{"resourceType":"Binary","data":"@@@"}"#, "not base64"),
    ] {
        let e = decode_attachment(URL, body.as_bytes().to_vec(), Some("application/json"), None).unwrap_err();
        assert_eq!(e.code(), "bad_binary");
        assert!(e.to_string().contains(says), "{e}");
    }
}

// protocol M5: the Attachment's hash is checked (base64 SHA-1; hex accepted)
#[test]
fn m5_the_hash_is_checked() {
    let ok = decode_attachment(URL, b"hello".to_vec(), None, Some("qvTGHdzF6KLavt4PO0gs2a6pQ00=")).unwrap();
    assert_eq!(ok.content_type, None);
    decode_attachment(URL, b"hello".to_vec(), None, Some("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d")).unwrap();
    let e = decode_attachment(URL, b"hellO".to_vec(), None, Some("qvTGHdzF6KLavt4PO0gs2a6pQ00=")).unwrap_err();
    assert_eq!(e.code(), "hash_mismatch");
    assert!(e.to_string().contains("qvTGHdzF6KLavt4PO0gs2a6pQ00="), "{e}");
    let info = e.info();
    assert_eq!(info.code, "hash_mismatch");
    let d = AttachmentError::from(DownloadError::TooLarge { url: "u".into(), limit: 1, declared: None });
    assert_eq!(d.code(), "too_large");
}

fn line(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

// protocol M7: data, size, hash and contentType set, url kept; the rest of the line byte for byte
#[test]
fn m7_inline_sets_data_size_hash_and_keeps_url() {
    let text = br#"{"resourceType":"DocumentReference", "id":"d", "zeta":[1,{"a":"}]"}],
  "content":[{"attachment":{"url":"Binary/1","contentType":"text/plain"}},{"format":{"code":"x"},"attachment":{"url":"Binary/2"}}]}"#;
    let f = Fetched { content_type: Some("text/plain; charset=utf-8".into()), ..fetched(b"hello", "text/plain") };
    let out = inline_attachments(text, BASE, &opts(AttachmentMode::Inline), |u| {
        (u == "https://fhir.example/r4/Binary/1").then_some(&f)
    })
    .unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let a = &v["content"][0]["attachment"];
    assert_eq!(a["data"], "aGVsbG8=");
    assert_eq!(a["size"], 5);
    assert_eq!(a["hash"], sha1_base64(b"hello"));
    assert_eq!(a["contentType"], "text/plain; charset=utf-8");
    assert_eq!(a["url"], "Binary/1", "url kept");
    assert_eq!(v["content"][1]["attachment"], json!({"url":"Binary/2"}), "not fetched: unchanged (M9)");
    let s = String::from_utf8(out).unwrap();
    assert!(s.starts_with(r#"{"resourceType":"DocumentReference", "id":"d", "zeta":[1,{"a":"}]"}],"#), "{s}");
    assert!(s.ends_with(r#"{"format":{"code":"x"},"attachment":{"url":"Binary/2"}}]}"#), "{s}");
}

// protocol M7/M2: nothing fetched, nothing to do, or data already there → None (unchanged)
#[test]
fn m7_inline_leaves_lines_without_fetched_attachments_alone() {
    let o = opts(AttachmentMode::Inline);
    let f = fetched(b"x", "text/plain");
    let with_data =
        line(json!({"resourceType":"DocumentReference","content":[{"attachment":{"url":"Binary/1","data":"eQ=="}}]}));
    assert_eq!(inline_attachments(&with_data, BASE, &o, |_| Some(&f)), None);
    assert_eq!(inline_attachments(br#"{"resourceType":"Patient"}"#, BASE, &o, |_| Some(&f)), None);
    assert_eq!(inline_attachments(b"not json", BASE, &o, |_| Some(&f)), None);
    let dr = line(json!({"resourceType":"DiagnosticReport","presentedForm":[{"url":"Binary/1"}]}));
    assert_eq!(inline_attachments(&dr, BASE, &o, |_| None), None);
    let out = inline_attachments(&dr, BASE, &o, |_| Some(&f)).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["presentedForm"][0]["data"], "eA==");
}

fn doc(urls: &[&str]) -> Vec<u8> {
    let content: Vec<Value> = urls.iter().map(|u| json!({"attachment":{"url":u,"contentType":"text/plain"}})).collect();
    line(json!({"resourceType":"DocumentReference","content":content}))
}

// protocol M7: the hydrator holds lines until their attachments are fetched, each URL once, in order
#[test]
fn m7_hydrator_inlines_in_arrival_order_and_fetches_each_url_once() {
    let mut h = Hydrator::new(policy(&[]), opts(AttachmentMode::Inline));
    assert_eq!(h.line(br#"{"resourceType":"Patient","id":"p"}"#), Hydrate::Pass);
    assert_eq!(h.line(&doc(&["Binary/1"])), Hydrate::Held);
    assert_eq!(h.line(&doc(&["Binary/1", "https://fhir.example/r4/Binary/2"])), Hydrate::Held);
    let pending = h.take_pending();
    assert_eq!(
        pending.iter().map(|f| f.url.as_str()).collect::<Vec<_>>(),
        ["https://fhir.example/r4/Binary/1", "https://fhir.example/r4/Binary/2"]
    );
    assert!(pending.iter().all(|f| f.send_token));
    assert!(h.take_pending().is_empty());
    let f =
        h.fetched(1, br#"{"resourceType":"Binary","data":"Mg=="}"#.to_vec(), Some("application/fhir+json")).unwrap();
    assert_eq!(f.bytes, b"2");
    assert!(h.release().is_empty(), "the first line waits for Binary/1");
    h.fetched(0, b"one".to_vec(), Some("text/plain")).unwrap();
    let out = h.release();
    assert_eq!(out.len(), 2);
    let second: Value = serde_json::from_slice(&out[1]).unwrap();
    assert_eq!(second["content"][0]["attachment"]["data"], "b25l");
    assert_eq!(second["content"][1]["attachment"]["data"], "Mg==");
    assert_eq!((h.failures(), h.held()), (0, 0));
    let reports = h.reports();
    assert_eq!(reports[1].size, Some(1));
    assert_eq!(reports[1].file_name, None, "inline mode saves no file");
}

// protocol M9: a failed attachment leaves its line unchanged and shows in the report
#[test]
fn m9_a_failed_attachment_leaves_the_resource_unchanged() {
    let mut h = Hydrator::new(policy(&[]), opts(AttachmentMode::Inline));
    let l = doc(&["Binary/1", "Binary/2"]);
    assert_eq!(h.line(&l), Hydrate::Held);
    assert_eq!(h.take_pending().len(), 2);
    h.failed(
        0,
        DownloadError::Http {
            url: "https://fhir.example/r4/Binary/1".into(),
            status: 404,
            server_message: None,
            manifest_refreshed: false,
        },
    );
    let oo = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing","diagnostics":"gone"}]}"#;
    assert_eq!(h.fetched(1, oo.to_vec(), Some("application/fhir+json")).unwrap_err().code(), "attachment_outcome");
    assert_eq!(h.release(), vec![l]);
    assert_eq!(h.failures(), 2);
    let codes: Vec<_> = h.reports().into_iter().map(|r| r.error.unwrap().code).collect();
    assert_eq!(codes, ["http", "attachment_outcome"]);
}

// protocol M8 (files mode) and M6/I4: lines pass through unchanged, blocked ones fail at once
#[test]
fn m8_hydrator_files_mode_reports_paths_and_blocked_fail_at_once() {
    let o = AttachmentOptions { max_size: 3, ..opts(AttachmentMode::Files) };
    let mut h = Hydrator::new(policy(&[]), o);
    let big =
        line(json!({"resourceType":"DocumentReference","content":[{"attachment":{"url":"Binary/big","size":4}}]}));
    assert_eq!(h.line(&big), Hydrate::Held);
    assert!(h.take_pending().is_empty(), "a blocked attachment is not fetched");
    assert_eq!(h.release(), vec![big]);
    let l = doc(&["http://fhir.example/r4/Binary/1", "Binary/ok"]);
    assert_eq!(h.line(&l), Hydrate::Held);
    let pending = h.take_pending();
    assert_eq!(pending.len(), 1);
    let id = pending[0].index;
    let name = pending[0].file_name.clone();
    assert_eq!(h.fetched(id, b"abc".to_vec(), Some("text/plain")).unwrap().bytes, b"abc");
    assert_eq!(h.release(), vec![l], "files mode: the line as it was");
    let r = h.reports();
    assert_eq!(r[0].error.as_ref().unwrap().code, "blocked");
    assert!(r[0].error.as_ref().unwrap().message.contains("over the attachment size limit: 4 bytes > 3"));
    assert_eq!(r[1].error.as_ref().unwrap().code, "blocked");
    assert_eq!(r[2].file_name.as_deref(), Some(format!("attachments/{name}").as_str()));
    assert_eq!((r[2].size, r[2].sha1.as_deref()), (Some(3), Some(sha1_base64(b"abc").as_str())));
    assert_eq!(h.failures(), 2);
    let j = serde_json::to_value(&r[2]).unwrap();
    assert!(j.get("fileName").is_some() && j.get("error").is_none(), "{j}");
    assert!(h.fetched(99, vec![], None).is_err(), "an unknown id is a usage error, not a panic");
}

// mode off: every line passes
#[test]
fn m_hydrator_off_passes_everything() {
    let mut h = Hydrator::new(policy(&[]), opts(AttachmentMode::Off));
    assert_eq!(h.line(&doc(&["Binary/1"])), Hydrate::Pass);
    assert!(h.take_pending().is_empty() && h.reports().is_empty());
}

// files mode keeps no bytes once the binding had them; the report keeps size and sha1
#[test]
fn m8_hydrator_files_mode_drops_bytes_after_they_were_handed_out() {
    let mut h = Hydrator::new(policy(&[]), opts(AttachmentMode::Files));
    assert_eq!(h.line(&doc(&["Binary/1", "Binary/2"])), Hydrate::Held);
    assert_eq!(h.take_pending().len(), 2);
    assert_eq!(h.fetched(0, b"one".to_vec(), None).unwrap().bytes, b"one");
    assert_eq!(h.fetched(1, b"two".to_vec(), None).unwrap().bytes, b"two");
    assert_eq!(h.kept_bytes(), 3, "only the last body is kept");
    assert_eq!(h.reports()[0].size, Some(3));
}

// protocol M6: inline only while the line stays under the reader's limit
#[test]
fn m6_inline_stops_before_the_line_outgrows_the_reader() {
    let l = doc(&["Binary/1", "Binary/2"]);
    let f = fetched(&[7u8; 30], "text/plain");
    let o = opts(AttachmentMode::Inline);
    let all = super::inline::inline_within(&l, BASE, &o, |_| Some(&f), usize::MAX).unwrap();
    let one = super::inline::inline_within(&l, BASE, &o, |_| Some(&f), all.len() - 1).unwrap();
    let v: Value = serde_json::from_slice(&one).unwrap();
    assert!(v["content"][0]["attachment"].get("data").is_some());
    assert!(v["content"][1]["attachment"].get("data").is_none(), "left as it was");
    assert_eq!(super::inline::inline_within(&l, BASE, &o, |_| Some(&f), l.len()), None);
}
