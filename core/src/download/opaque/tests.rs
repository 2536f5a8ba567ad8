//! Tests of opaque files and `fileSize` (protocol L13).

use crate::download::tests::{policy, send};
use crate::download::{DownloadAction, DownloadError, FileDownload};
use crate::manifest::{FileKind, PlannedFile};

const PARQUET: &str = "application/vnd.apache.parquet";

fn parquet(size: Option<u64>) -> PlannedFile {
    PlannedFile {
        kind: FileKind::Output,
        index: 3,
        resource_type: Some("Patient".into()),
        url: "https://h/_files/1/Patient.view.parquet".into(),
        send_token: false,
        expected_count: None,
        expected_bytes: size,
        opaque_format: Some(PARQUET.into()),
        file_name: "Patient.003.parquet".into(),
        max_bytes: None,
        blocked: None,
    }
}

fn ct(v: &str) -> Vec<(String, String)> {
    vec![("Content-Type".to_owned(), v.to_owned())]
}

/// Bytes no line splitter would leave alone: newlines, a NUL, not UTF-8.
const BODY: &[u8] = b"PAR1\n\x00\xff\xfe{not json}\n\n\rPAR1";

// protocol L13: Accept = outputFormat; the bytes are handed out as they are, no lines, no count
#[test]
fn l13_an_opaque_file_is_asked_for_in_its_format_and_handed_out_as_bytes() {
    let mut d = FileDownload::new(parquet(Some(BODY.len() as u64)), &policy()).unwrap();
    assert!(d.is_opaque());
    let r = send(&mut d, 0);
    let accept = r.headers.iter().find(|(k, _)| k == "Accept").map(|(_, v)| v.as_str());
    assert_eq!(accept, Some(PARQUET));
    d.handle_head(r.id, 200, &ct(PARQUET), false, 0).unwrap();
    let mut got = Vec::new();
    for chunk in BODY.chunks(5) {
        d.feed(r.id, chunk, 0, |b| got.extend_from_slice(b)).unwrap();
    }
    d.finish(r.id, 0, |b| got.extend_from_slice(b)).unwrap();
    assert_eq!(got, BODY);
    assert_eq!(d.taken_bytes(), BODY.len() as u64);
    let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!("done") };
    assert_eq!((report.resources, report.bytes, report.invalid_lines), (0, BODY.len() as u64, 0));
    assert_eq!((report.expected, report.file_name.as_str()), (None, "Patient.003.parquet"));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

// protocol L13: a Content-Type other than the outputFormat is a warning, not an error
#[test]
fn l13_a_content_type_that_differs_from_the_output_format_is_a_warning() {
    let mut d = FileDownload::new(parquet(None), &policy()).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &ct("application/octet-stream"), false, 0).unwrap();
    d.feed(r.id, BODY, 0, |_| {}).unwrap();
    d.finish(r.id, 0, |_| {}).unwrap();
    let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!("done") };
    assert_eq!(report.warnings.len(), 1);
    assert!(report.warnings[0].contains("application/octet-stream"), "{:?}", report.warnings);
    // parameters do not make a difference
    let mut d = FileDownload::new(parquet(None), &policy()).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &ct("Application/Vnd.Apache.Parquet; x=1"), false, 0).unwrap();
    d.finish(r.id, 0, |_| {}).unwrap();
    let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!("done") };
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

// protocol L13: fileSize against the decoded bytes: a mismatch fetches once more (from byte 0),
// then fails the file alone
#[test]
fn l13_a_file_size_mismatch_retries_once_then_fails_the_file() {
    let mut d = FileDownload::new(parquet(Some(BODY.len() as u64)), &policy()).unwrap().with_restart_changed(true);
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &ct(PARQUET), false, 0).unwrap();
    d.feed(r.id, &BODY[..4], 0, |_| {}).unwrap();
    d.finish(r.id, 0, |_| {}).unwrap();
    assert!(d.report().is_none(), "a first mismatch is retried");
    // the second body: the copy is cut back to 0 before it is written
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &ct(PARQUET), false, 0).unwrap();
    assert_eq!(d.taken_bytes(), 0);
    let mut got = Vec::new();
    d.feed(r.id, &BODY[..6], 0, |b| got.extend_from_slice(b)).unwrap();
    let e = d.finish(r.id, 0, |b| got.extend_from_slice(b)).unwrap_err();
    assert_eq!(got, &BODY[..6]);
    assert_eq!(e.code(), "size_mismatch");
    let DownloadError::SizeMismatch { expected, actual, .. } = e else { panic!("{e:?}") };
    assert_eq!((expected, actual), (BODY.len() as u64, 6));
    // a retry that gets it right completes
    let mut d = FileDownload::new(parquet(Some(BODY.len() as u64)), &policy()).unwrap().with_restart_changed(true);
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &ct(PARQUET), false, 0).unwrap();
    d.feed(r.id, &BODY[..4], 0, |_| {}).unwrap();
    d.finish(r.id, 0, |_| {}).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &ct(PARQUET), false, 0).unwrap();
    d.feed(r.id, BODY, 0, |_| {}).unwrap();
    d.finish(r.id, 0, |_| {}).unwrap();
    let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!("done") };
    assert_eq!((report.bytes, report.attempts), (BODY.len() as u64, 2));
}

// protocol L13: a stream cannot take bytes back: an opaque body that starts over fails the file
#[test]
fn l13_an_opaque_body_that_starts_over_fails_a_stream() {
    let mut d = FileDownload::new(parquet(None), &policy()).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &ct(PARQUET), false, 0).unwrap();
    d.feed(r.id, &BODY[..4], 0, |_| {}).unwrap();
    d.handle_transport_error(r.id, "reset", 0).unwrap();
    let r = send(&mut d, 1_000);
    let e = d.handle_head(r.id, 200, &ct(PARQUET), false, 1_000).unwrap_err();
    assert_eq!(e.code(), "file_changed");
}

// protocol L13: gzip is decoded; fileSize is the decoded bytes
#[cfg(feature = "gzip")]
#[test]
fn l13_a_gzip_opaque_body_is_decoded_and_sized_decoded() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(BODY).unwrap();
    let gz = gz.finish().unwrap();
    let mut d = FileDownload::new(parquet(Some(BODY.len() as u64)), &policy()).unwrap();
    let r = send(&mut d, 0);
    let mut h = ct(PARQUET);
    h.push(("Content-Encoding".into(), "gzip".into()));
    d.handle_head(r.id, 200, &h, false, 0).unwrap();
    let mut got = Vec::new();
    d.feed(r.id, &gz, 0, |b| got.extend_from_slice(b)).unwrap();
    d.finish(r.id, 0, |b| got.extend_from_slice(b)).unwrap();
    assert_eq!(got, BODY);
    assert!(d.report().is_some());
}

// protocol L13: fileSize is checked wherever it is given, NDJSON files too
#[test]
fn l13_file_size_is_checked_on_ndjson_files_too() {
    let ndjson = |size| PlannedFile {
        opaque_format: None,
        expected_count: Some(2),
        file_name: "Patient.000.ndjson".into(),
        ..parquet(Some(size))
    };
    let body = b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n";
    let mut d = FileDownload::new(ndjson(body.len() as u64), &policy()).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &[], false, 0).unwrap();
    d.feed(r.id, body, 0, |_| {}).unwrap();
    d.finish(r.id, 0, |_| {}).unwrap();
    assert!(d.report().is_some_and(|r| r.resources == 2));
    // a size off by one: fetched once more (the lines proven, not handed out twice), then a size_mismatch
    let mut d = FileDownload::new(ndjson(body.len() as u64 + 1), &policy()).unwrap();
    let mut lines = 0;
    for at in [0, 1_000] {
        let r = send(&mut d, at);
        d.handle_head(r.id, 200, &[], false, at).unwrap();
        d.feed(r.id, body, at, |_| lines += 1).unwrap();
        let done = d.finish(r.id, at, |_| lines += 1);
        if at == 0 {
            done.unwrap();
        } else {
            assert_eq!(done.unwrap_err().code(), "size_mismatch");
        }
    }
    assert_eq!(lines, 2, "each line handed out once");
}

fn attachment(max: u64) -> PlannedFile {
    PlannedFile {
        kind: FileKind::Attachment,
        index: 0,
        resource_type: None,
        url: "https://h/r4/Binary/1?sig=secret".into(),
        expected_count: None,
        opaque_format: Some("*/*".into()),
        file_name: "0123456789abcdef.bin".into(),
        max_bytes: Some(max),
        ..parquet(None)
    }
}

fn head(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

// protocol M6: a Content-Length over max_bytes fails the file before any byte, not retried
#[test]
fn m6_a_content_length_over_max_bytes_fails_with_too_large() {
    let mut d = FileDownload::new(attachment(5), &policy()).unwrap();
    let r = send(&mut d, 0);
    let accept = r.headers.iter().find(|(k, _)| k == "Accept").map(|(_, v)| v.as_str());
    assert_eq!(accept, Some("*/*"));
    let e = d
        .handle_head(r.id, 200, &head(&[("Content-Length", "6"), ("Content-Type", "application/pdf")]), false, 0)
        .unwrap_err();
    assert_eq!(e.code(), "too_large");
    assert_eq!(e, DownloadError::TooLarge { url: "https://h/r4/Binary/1?…".into(), limit: 5, declared: Some(6) });
    assert!(e.to_string().contains("limit of 5 bytes (Content-Length: 6)"), "{e}");
    assert!(d.next_action(0).is_err(), "done: not retried");
    // exactly the limit is fine; a gzip Content-Length is not the decoded size (checked while streaming)
    let mut d = FileDownload::new(attachment(5), &policy()).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &head(&[("Content-Length", "5")]), false, 0).unwrap();
    d.feed(r.id, b"12345", 0, |_| {}).unwrap();
    d.finish(r.id, 0, |_| {}).unwrap();
    let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!("done") };
    assert_eq!(report.bytes, 5);
    assert!(report.warnings.is_empty(), "an attachment's Content-Type is no warning: {:?}", report.warnings);
}

// protocol M6: decoded bytes passing max_bytes while streaming fail the file (no Content-Length)
#[test]
fn m6_bytes_passing_max_bytes_while_streaming_fail_with_too_large() {
    let mut d = FileDownload::new(attachment(5), &policy()).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &[], false, 0).unwrap();
    let mut got = 0;
    d.feed(r.id, b"1234", 0, |b| got += b.len()).unwrap();
    let e = d.feed(r.id, b"56", 0, |b| got += b.len()).unwrap_err();
    assert_eq!(e.code(), "too_large");
    assert!(matches!(e, DownloadError::TooLarge { limit: 5, declared: None, .. }));
    assert!(d.next_action(0).is_err(), "done: not retried");
    // a plan without max_bytes has no limit
    let mut d = FileDownload::new(PlannedFile { max_bytes: None, ..attachment(5) }, &policy()).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &head(&[("Content-Length", "600")]), false, 0).unwrap();
    d.feed(r.id, &[0u8; 600], 0, |_| {}).unwrap();
    d.finish(r.id, 0, |_| {}).unwrap();
}
