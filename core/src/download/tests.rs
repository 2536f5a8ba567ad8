//! Unit tests of one file's download (the scenarios are in `tests/vectors/downloads/`).
use super::*;
use crate::manifest::FileKind;

fn planned(url: &str, token: bool, count: Option<u64>) -> PlannedFile {
    PlannedFile {
        kind: FileKind::Output,
        index: 0,
        resource_type: Some("Patient".into()),
        url: url.into(),
        send_token: token,
        expected_count: count,
        expected_bytes: None,
        opaque_format: None,
        file_name: "Patient.000.ndjson".into(),
        max_bytes: None,
        blocked: None,
    }
}

pub(super) fn policy() -> RetryPolicy {
    RetryPolicy { min_wait_ms: 10, initial_backoff_ms: 10, jitter_percent: 0, ..RetryPolicy::default() }
}

pub(super) fn send(d: &mut FileDownload, now: u64) -> Request {
    match d.next_action(now).unwrap() {
        DownloadAction::Send { request } => request,
        other => panic!("expected Send, got {other:?}"),
    }
}

// fetch decodes gzip itself and ends a truncated stream without an error:
// a short body is retried and its cut last line is never handed out.
#[test]
fn platform_decoded_short_body_is_retried_not_cut() {
    let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy()).unwrap();
    let gz = [("Content-Encoding".to_owned(), "gzip".to_owned())];
    let mut got = Vec::new();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &gz, true, 0).unwrap();
    d.feed(r.id, b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\"", 0, |l| got.push(l.to_vec())).unwrap();
    d.finish(r.id, 5, |l| got.push(l.to_vec())).unwrap();
    assert_eq!(got.len(), 2, "the cut line is not handed out");
    assert!(matches!(d.next_action(5).unwrap(), DownloadAction::Wait { .. }));
    let r = send(&mut d, 1_000);
    d.handle_head(r.id, 200, &gz, true, 1_000).unwrap();
    d.feed(r.id, b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\":\"3\"}", 0, |l| got.push(l.to_vec())).unwrap();
    d.finish(r.id, 1_000, |l| got.push(l.to_vec())).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2], b"{\"id\":\"3\"}");
    match d.next_action(1_000).unwrap() {
        DownloadAction::Done { report } => assert_eq!((report.resources, report.attempts), (3, 2)),
        other => panic!("expected Done, got {other:?}"),
    }
    // Without a platform decoder a short body is a count mismatch, as before.
    let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy()).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &[], true, 0).unwrap();
    d.feed(r.id, b"{\"id\":\"1\"}\n", 0, |_| {}).unwrap();
    assert!(matches!(d.finish(r.id, 0, |_| {}), Err(DownloadError::CountMismatch { .. })));
}

// protocol E6: a reset mid-body is retried and nothing is lost or duplicated
#[test]
fn reset_mid_body_resumes_without_duplicates() {
    let mut d = FileDownload::new(planned("https://h/f", true, Some(3)), &policy()).unwrap();
    let mut got = Vec::new();
    let r = send(&mut d, 0);
    assert!(r.auth);
    assert_eq!(r.header("Accept-Encoding"), Some("gzip"));
    // protocol K1: without gzip the request says identity (Node's fetch would ask for gzip)
    let mut plain = FileDownload::new(planned("https://h/f", true, Some(3)), &policy()).unwrap().with_gzip(false);
    assert_eq!(send(&mut plain, 0).header("Accept-Encoding"), Some("identity"));
    assert_eq!(d.handle_head(r.id, 200, &[], false, 0).unwrap(), HeadDecision::Stream);
    d.feed(r.id, b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\"", 0, |l| got.push(l.to_vec())).unwrap();
    d.handle_transport_error(r.id, "connection reset", 5).unwrap();
    assert!(matches!(d.next_action(5).unwrap(), DownloadAction::Wait { .. }));
    let r = send(&mut d, 1_000);
    d.handle_head(r.id, 200, &[], false, 1_000).unwrap();
    d.feed(r.id, b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\":\"3\"}\n", 0, |l| got.push(l.to_vec())).unwrap();
    d.finish(r.id, 1_000, |l| got.push(l.to_vec())).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2], b"{\"id\":\"3\"}");
    match d.next_action(1_000).unwrap() {
        DownloadAction::Done { report } => {
            assert_eq!(report.resources, 3);
            assert_eq!(report.attempts, 2);
        }
        other => panic!("{other:?}"),
    }
}

// protocol E6 and E2: a gzip stream that turns corrupt mid-body is
// discarded, retried after a backoff counted from the moment it broke,
// and the lines handed out before the corruption are not repeated.
#[cfg(feature = "gzip")]
#[test]
fn corrupt_gzip_mid_body_is_discarded_and_retried() {
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;
    let total = 20_000u64;
    let lines: Vec<u8> = (0..total).flat_map(|i| format!("{{\"id\":\"{i}\"}}\n").into_bytes()).collect();
    let mut whole = GzEncoder::new(Vec::new(), Compression::fast());
    whole.write_all(&lines).unwrap();
    let whole = whole.finish().unwrap();
    // Most of the lines, sync-flushed, then a deflate block of reserved type 11.
    let mut head = GzEncoder::new(Vec::new(), Compression::fast());
    head.write_all(&lines[..lines.len() / 2]).unwrap();
    head.flush().unwrap();
    let head = head.get_ref().clone();
    let gz = [("Content-Encoding".to_owned(), "gzip".to_owned())];

    let mut d = FileDownload::new(planned("https://h/f", false, Some(total)), &policy()).unwrap();
    let mut got = Vec::new();
    let r = send(&mut d, 0);
    assert_eq!(d.handle_head(r.id, 200, &gz, false, 0).unwrap(), HeadDecision::Stream);
    for c in head.chunks(4096) {
        assert_eq!(d.feed(r.id, c, 100, |l| got.push(l.to_vec())).unwrap(), HeadDecision::Stream);
    }
    let before = got.len();
    assert!(before > 0, "the decoder hands out lines as it goes");
    assert_eq!(d.feed(r.id, &[0xff; 16], 100, |l| got.push(l.to_vec())).unwrap(), HeadDecision::Discard);
    assert!(d.feed(r.id, b"more", 100, |_| {}).is_err(), "nothing more is read from a discarded body");
    match d.next_action(100).unwrap() {
        DownloadAction::Wait { until_ms, .. } => assert!(until_ms >= 110, "backoff from the break, got {until_ms}"),
        other => panic!("expected Wait, got {other:?}"),
    }
    let r = send(&mut d, 1_000);
    d.handle_head(r.id, 200, &gz, false, 1_000).unwrap();
    for c in whole.chunks(4096) {
        assert_eq!(d.feed(r.id, c, 1_000, |l| got.push(l.to_vec())).unwrap(), HeadDecision::Stream);
    }
    d.finish(r.id, 1_000, |l| got.push(l.to_vec())).unwrap();
    let expected: Vec<Vec<u8>> = (0..total).map(|i| format!("{{\"id\":\"{i}\"}}").into_bytes()).collect();
    assert_eq!(got, expected, "every line once, in order ({before} before the corruption)");
    match d.next_action(1_000).unwrap() {
        DownloadAction::Done { report } => assert_eq!((report.resources, report.attempts), (total, 2)),
        other => panic!("expected Done, got {other:?}"),
    }
}

// checked against the manifest count
#[test]
fn count_mismatch_is_typed() {
    let mut d = FileDownload::new(planned("https://h/f", false, Some(2)), &policy()).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &[], false, 0).unwrap();
    d.feed(r.id, b"{}\n", 0, |_| {}).unwrap();
    assert!(matches!(d.finish(r.id, 0, |_| {}), Err(DownloadError::CountMismatch { expected: 2, actual: 1, .. })));
}

// protocol I3: the token never crosses an origin on a redirect; no downgrade
#[test]
fn redirects_strip_token_across_origins() {
    let mut d = FileDownload::new(planned("https://fhir.example/f", true, None), &policy()).unwrap();
    let r = send(&mut d, 0);
    let loc = [("Location".to_owned(), "https://fhir.example/g".to_owned())];
    assert_eq!(d.handle_head(r.id, 302, &loc, false, 0).unwrap(), HeadDecision::Discard);
    assert!(send(&mut d, 0).auth, "same origin keeps the token");
    let r = d.next_id - 1;
    let loc = [("Location".to_owned(), "https://storage.example/x?sig=1".to_owned())];
    d.handle_head(r, 307, &loc, false, 0).unwrap();
    let req = send(&mut d, 0);
    assert!(!req.auth, "cross-origin redirect drops the token");
    let loc = [("Location".to_owned(), "https://fhir.example/back".to_owned())];
    d.handle_head(req.id, 302, &loc, false, 0).unwrap();
    assert!(!send(&mut d, 0).auth, "once dropped, stays dropped");
    let mut d = FileDownload::new(planned("https://fhir.example/f", false, None), &policy()).unwrap();
    let r = send(&mut d, 0);
    let loc = [("Location".to_owned(), "http://fhir.example/f".to_owned())];
    assert!(matches!(d.handle_head(r.id, 302, &loc, false, 0), Err(DownloadError::Redirect { .. })));
}

// protocol E4: an expired URL asks for a manifest refresh once
#[test]
fn expired_url_refreshes_manifest_once() {
    let mut d = FileDownload::new(planned("https://h/f?g=0", false, None), &policy()).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 410, &[], false, 0).unwrap();
    assert_eq!(d.next_action(0).unwrap(), DownloadAction::RefreshManifest);
    d.replace_file(Some(planned("https://h/f?g=1", false, None))).unwrap();
    let r = send(&mut d, 0);
    assert_eq!(r.url, "https://h/f?g=1");
    assert!(matches!(d.handle_head(r.id, 410, &[], false, 0), Err(DownloadError::Http { status: 410, .. })));
}

// protocol H5: 401 → refresh the token once
#[test]
fn unauthorized_refreshes_token_once() {
    let mut d = FileDownload::new(planned("https://h/f", true, None), &policy()).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 401, &[], false, 0).unwrap();
    assert_eq!(d.next_action(0).unwrap(), DownloadAction::RefreshToken);
    let r = send(&mut d, 0);
    d.handle_head(r.id, 401, &[], false, 0).unwrap();
    assert_eq!(d.next_action(0).unwrap(), DownloadAction::RefreshManifest);
}

// protocol E6: 5xx retried within the budget, then a typed error
#[test]
fn server_errors_retry_then_give_up() {
    let mut d =
        FileDownload::new(planned("https://h/f", false, None), &RetryPolicy { max_download_retries: 2, ..policy() })
            .unwrap();
    let mut now = 0;
    for _ in 0..2 {
        let r = send(&mut d, now);
        d.handle_head(r.id, 503, &[], false, now).unwrap();
        now += 100_000;
    }
    let r = send(&mut d, now);
    assert!(matches!(d.handle_head(r.id, 503, &[], false, now), Err(DownloadError::RetriesExhausted { .. })));
}

// H: a file (or attachment, M9) given up after retries says the server's own
// words of its last answer, like an HTTP error does
#[test]
fn retries_exhausted_carries_the_last_answers_words() {
    let mut d = FileDownload::new(
        planned("https://h/f?sig=secret", false, None),
        &RetryPolicy { max_download_retries: 0, ..policy() },
    )
    .unwrap();
    let r = send(&mut d, 0);
    let e = d.handle_head(r.id, 500, &[], false, 0).unwrap_err();
    let body = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"attachment store unavailable"}]}"#;
    let e = e.with_body(body);
    assert_eq!(e.code(), "retries_exhausted");
    assert!(
        matches!(&e, DownloadError::RetriesExhausted { server_message: Some(m), .. } if m.contains("attachment store unavailable"))
    );
    let text = e.to_string();
    assert!(text.contains("attachment store unavailable") && !text.contains("secret"), "{text}");
    // JSON keeps it under the camelCase name every binding reads.
    assert_eq!(serde_json::to_value(&e).unwrap()["serverMessage"], "attachment store unavailable");
}

// protocol E6: a non-JSON line is reported, not a crash, and not lost
#[test]
fn invalid_lines_are_counted_not_dropped() {
    // issue 19 §7: the count is of resources (lines that parse as a JSON object).
    let mut d =
        FileDownload::new(planned("https://h/f", false, Some(2)), &policy()).unwrap().with_validation(Validation::Json);
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &[], false, 0).unwrap();
    let mut n = 0;
    d.feed(r.id, b"{\"a\":1}\n<html>oops</html>\n{\"b\":2}\n", 0, |_| n += 1).unwrap();
    d.finish(r.id, 0, |_| n += 1).unwrap();
    assert_eq!(n, 3);
    match d.next_action(0).unwrap() {
        DownloadAction::Done { report } => {
            assert_eq!((report.resources, report.invalid_lines), (2, 1));
            assert_eq!(report.first_invalid_line, Some(2));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn blocked_files_are_refused() {
    let mut p = planned("https://other/f", false, None);
    p.blocked = Some("no".into());
    assert!(matches!(FileDownload::new(p, &policy()), Err(DownloadError::Blocked { .. })));
}

fn run_body(d: &mut FileDownload, body: &[u8]) -> Result<(), DownloadError> {
    let r = send(d, 0);
    d.handle_head(r.id, 200, &[], false, 0)?;
    d.feed(r.id, body, 0, |_| {})?;
    d.finish(r.id, 0, |_| {})
}

// issue 10 §2: a count mismatch fails only this file, and the message names its kind
#[test]
fn count_mismatch_names_the_kind_of_file() {
    let file = PlannedFile { kind: FileKind::Deleted, resource_type: None, ..planned("https://h/d", false, Some(100)) };
    let mut d = FileDownload::new(file, &policy()).unwrap();
    let err = run_body(&mut d, b"{\"resourceType\":\"Bundle\"}\n").unwrap_err();
    assert_eq!(err.code(), "count_mismatch");
    let text = err.to_string();
    assert!(text.contains("deleted file") && text.contains("100") && text.contains(" 1 "), "{text}");
    assert!(matches!(err, DownloadError::CountMismatch { kind: FileKind::Deleted, expected: 100, actual: 1, .. }));
}

// issue 19: an error file is evidence: a real server counted 100 for its one line; the
// line is kept and the mismatch is a warning, even with the strict check
#[test]
fn an_error_files_count_mismatch_keeps_its_lines() {
    let file = PlannedFile {
        kind: FileKind::Error,
        resource_type: Some("OperationOutcome".into()),
        ..planned("https://h/e", false, Some(100))
    };
    let mut d = FileDownload::new(file, &policy()).unwrap();
    let mut lines = 0;
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &[], false, 0).unwrap();
    d.feed(r.id, b"{\"resourceType\":\"OperationOutcome\"}\n", 0, |_| lines += 1).unwrap();
    d.finish(r.id, 0, |_| lines += 1).unwrap();
    let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!() };
    assert_eq!((lines, report.resources), (1, 1));
    assert_eq!(report.count_mismatch, Some(CountMismatchInfo { expected: 100, actual: 1 }));
    assert!(report.warnings.iter().any(|w| w.contains("error file (OperationOutcome)")), "{:?}", report.warnings);
}

// issue 10 §2: with a lenient count check the file completes, with the mismatch in its report
#[test]
fn lenient_count_check_completes_with_a_warning() {
    let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy())
        .unwrap()
        .with_count_check(CountCheck::Lenient);
    run_body(&mut d, b"{\"id\":\"1\"}\n").unwrap();
    let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!() };
    assert_eq!(report.count_mismatch, Some(CountMismatchInfo { expected: 3, actual: 1 }));
    assert!(report.warnings.iter().any(|w| w.contains("Patient output file")), "{:?}", report.warnings);
}

// protocol D4, issue 10 §2: organized output's count may include or exclude the header lines
#[test]
fn organized_count_with_or_without_headers() {
    let body = b"{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"header\",\"valueReference\":{\"reference\":\"Patient/1\"}}]}\n{\"resourceType\":\"Patient\",\"id\":\"1\"}\n{\"resourceType\":\"Observation\",\"id\":\"o\"}\n";
    for count in [3, 2] {
        let file = PlannedFile { resource_type: None, ..planned("https://h/o", false, Some(count)) };
        let mut d = FileDownload::new(file, &policy()).unwrap();
        run_body(&mut d, body).unwrap_or_else(|e| panic!("count {count}: {e}"));
    }
    let file = PlannedFile { resource_type: None, ..planned("https://h/o", false, Some(1)) };
    let mut d = FileDownload::new(file, &policy()).unwrap();
    assert!(matches!(run_body(&mut d, body), Err(DownloadError::CountMismatch { .. })));
}

// protocol E6, issue 10 §3: bad lines are per-line reports; every line is handed out once
#[test]
fn invalid_lines_are_reported_per_line() {
    let mut d = FileDownload::new(planned("https://h/f", false, None), &policy()).unwrap();
    run_body(&mut d, b"{\"id\":\"1\"}\nnot json\n{\"id\":\"3\"}\n").unwrap();
    let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!() };
    assert_eq!((report.resources, report.invalid_lines, report.first_invalid_line), (2, 1, Some(2)));
    assert_eq!(report.invalid, vec![InvalidLine { line: 2, message: "not a JSON object".into() }]);
    // A binding that parses lines itself reports `{not json}` (it passes the structural check).
    let mut d =
        FileDownload::new(planned("https://h/f", false, None), &policy()).unwrap().with_validation(Validation::None);
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &[], false, 0).unwrap();
    d.feed(r.id, b"{\"id\":\"1\"}\n{not json}\n", 0, |_| {}).unwrap();
    d.report_invalid_line(2, "expected ident at line 1 column 2");
    d.finish(r.id, 0, |_| {}).unwrap();
    let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!() };
    assert_eq!((report.invalid_lines, report.first_invalid_line), (1, Some(2)));
    assert!(report.warnings.iter().any(|w| w.contains("line 2")));
    // Parsed after the body ended (another thread): the finished report counts it, once.
    d.report_invalid_line(1, "late");
    let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!() };
    assert_eq!((report.invalid_lines, report.first_invalid_line, report.invalid.len()), (2, Some(1), 2));
    assert_eq!(report.resources, 0, "a line reported late is no resource either");
    assert_eq!(report.warnings.iter().filter(|w| w.contains("not FHIR resources")).count(), 1);
}

// issue 10 §2: a 410 after the manifest refresh says so, with the server's words
#[test]
fn gone_after_refresh_says_so_with_the_server_text() {
    let mut d = FileDownload::new(planned("https://h/f", false, None), &policy()).unwrap();
    let r = send(&mut d, 0);
    assert_eq!(d.handle_head(r.id, 410, &[], false, 0).unwrap(), HeadDecision::Discard);
    assert_eq!(d.next_action(0).unwrap(), DownloadAction::RefreshManifest);
    d.replace_file(Some(planned("https://h/f2", false, None))).unwrap();
    let r = send(&mut d, 0);
    let err = d.handle_head(r.id, 410, &[], false, 0).unwrap_err();
    let body = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"deleted","details":{"text":"Export files expired"}}]}"#;
    let err = err.with_body(body);
    let text = err.to_string();
    assert!(
        text.contains("410") && text.contains("re-fetched once") && text.contains("Export files expired"),
        "{text}"
    );
    assert!(matches!(err, DownloadError::Http { manifest_refreshed: true, .. }));
    assert!(DownloadError::Http { url: "u".into(), status: 503, server_message: None, manifest_refreshed: false }
        .with_body(b"<html>\n  Service   Unavailable\n</html>")
        .to_string()
        .ends_with(": <html> Service Unavailable </html>"));
}

// issue 10 §2: a token that cannot be refreshed is not sent twice
#[test]
fn token_unavailable_ends_the_file() {
    let mut d = FileDownload::new(planned("https://h/f", true, None), &policy()).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 401, &[], false, 0).unwrap();
    assert_eq!(d.next_action(0).unwrap(), DownloadAction::RefreshToken);
    let err = d.token_unavailable("a fixed token string");
    assert_eq!(err.code(), "unauthorized");
    assert!(err.to_string().contains("a fixed token string"));
    assert!(d.next_action(0).is_err(), "nothing more is sent");
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

// protocol K1: a body that breaks after N bytes continues with Range and If-Range;
// a 206 continues the same file: every line once, nothing fetched twice
#[test]
fn range_resume_continues_the_file() {
    let body = b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\":\"3\"}\n";
    let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy()).unwrap();
    let mut got = Vec::new();
    let r = send(&mut d, 0);
    assert_eq!(r.header("Range"), None);
    let head = h(&[("Accept-Ranges", "bytes"), ("ETag", "\"v1\"")]);
    d.handle_head(r.id, 200, &head, false, 0).unwrap();
    d.feed(r.id, &body[..15], 0, |l| got.push(l.to_vec())).unwrap(); // one line and a half
    d.handle_transport_error(r.id, "reset", 0).unwrap();
    let r = send(&mut d, 1_000);
    assert_eq!((r.header("Range"), r.header("If-Range")), (Some("bytes=15-"), Some("\"v1\"")));
    let part = h(&[("Content-Range", "bytes 15-32/33"), ("ETag", "\"v1\"")]);
    assert_eq!(d.handle_head(r.id, 206, &part, false, 1_000).unwrap(), HeadDecision::Stream);
    d.feed(r.id, &body[15..], 1_000, |l| got.push(l.to_vec())).unwrap();
    d.finish(r.id, 1_000, |l| got.push(l.to_vec())).unwrap();
    assert_eq!(got, vec![b"{\"id\":\"1\"}".to_vec(), b"{\"id\":\"2\"}".to_vec(), b"{\"id\":\"3\"}".to_vec()]);
    let DownloadAction::Done { report } = d.next_action(1_000).unwrap() else { panic!() };
    assert_eq!((report.resources, report.bytes, report.range_resumes, report.range_restarts), (3, 33, 1, 0));
}

// protocol K1: a body cut many times continues at once each time, and the cuts do
// not spend the retry budget (each one is progress)
#[test]
fn many_cuts_each_continue_at_once() {
    let body: Vec<u8> = (0..100).flat_map(|i| format!("{{\"id\":\"{i}\"}}\n").into_bytes()).collect();
    let mut d = FileDownload::new(planned("https://h/f", false, Some(100)), &policy()).unwrap();
    let mut n = 0;
    let mut at = 0;
    let step = body.len() / 20 + 1;
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &h(&[("Accept-Ranges", "bytes"), ("ETag", "\"v\"")]), false, 0).unwrap();
    let mut id = r.id;
    loop {
        let end = (at + step).min(body.len());
        d.feed(id, &body[at..end], 0, |_| n += 1).unwrap();
        at = end;
        if at == body.len() {
            d.finish(id, 0, |_| n += 1).unwrap();
            break;
        }
        d.handle_transport_error(id, "cut", 0).unwrap();
        let r = send(&mut d, 0); // at once: no backoff after progress
        assert_eq!(r.header("Range"), Some(format!("bytes={at}-").as_str()));
        d.handle_head(
            r.id,
            206,
            &h(&[("Content-Range", &format!("bytes {at}-{}/{}", body.len() - 1, body.len()))]),
            false,
            0,
        )
        .unwrap();
        id = r.id;
    }
    assert_eq!(n, 100);
    let DownloadAction::Done { report } = d.next_action(0).unwrap() else { panic!() };
    assert!(report.range_resumes >= 19, "{}", report.range_resumes);
}

// protocol K1: a 200 to a range request means start over, safely (no line twice)
#[test]
fn a_200_to_a_range_request_starts_over() {
    let body = b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n";
    let mut d = FileDownload::new(planned("https://h/f", false, Some(2)), &policy()).unwrap();
    let mut got = Vec::new();
    let r = send(&mut d, 0);
    d.handle_head(
        r.id,
        200,
        &h(&[("Accept-Ranges", "bytes"), ("Last-Modified", "Mon, 30 Nov 2026 10:00:00 GMT")]),
        false,
        0,
    )
    .unwrap();
    d.feed(r.id, &body[..14], 0, |l| got.push(l.to_vec())).unwrap();
    d.handle_transport_error(r.id, "reset", 0).unwrap();
    let r = send(&mut d, 1_000);
    assert_eq!(
        r.header("If-Range"),
        Some("Mon, 30 Nov 2026 10:00:00 GMT"),
        "Last-Modified when there is no strong ETag"
    );
    d.handle_head(r.id, 200, &[], false, 1_000).unwrap();
    d.feed(r.id, body, 1_000, |l| got.push(l.to_vec())).unwrap();
    d.finish(r.id, 1_000, |l| got.push(l.to_vec())).unwrap();
    assert_eq!(got.len(), 2, "the first line is not handed out twice");
    let DownloadAction::Done { report } = d.next_action(1_000).unwrap() else { panic!() };
    assert_eq!((report.range_resumes, report.range_restarts), (0, 1));
}

// protocol K1: no validator (or a weak one) or no Accept-Ranges: no range request
#[test]
fn no_range_without_a_validator() {
    for head in [h(&[("Accept-Ranges", "bytes"), ("ETag", "W/\"weak\"")]), h(&[("ETag", "\"v\"")])] {
        let mut d = FileDownload::new(planned("https://h/f", false, None), &policy()).unwrap();
        let r = send(&mut d, 0);
        d.handle_head(r.id, 200, &head, false, 0).unwrap();
        d.feed(r.id, b"{}\n{", 0, |_| {}).unwrap();
        d.handle_transport_error(r.id, "reset", 0).unwrap();
        assert_eq!(send(&mut d, 1_000).header("Range"), None, "{head:?}");
    }
}

// protocol K2: with gzip the range is over the encoded bytes; the decoder's state
// lives on in this process, so the stream continues mid-deflate
#[cfg(feature = "gzip")]
#[test]
fn range_resume_within_a_gzip_stream() {
    use std::io::Write as _;
    let plain: Vec<u8> = (0..400).flat_map(|i| format!("{{\"id\":\"{i}\"}}\n").into_bytes()).collect();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&plain).unwrap();
    let gz = enc.finish().unwrap();
    let cut = gz.len() / 2;
    let mut d = FileDownload::new(planned("https://h/f", false, Some(400)), &policy()).unwrap();
    let mut n = 0;
    let r = send(&mut d, 0);
    let head = h(&[("Content-Encoding", "gzip"), ("Accept-Ranges", "bytes"), ("ETag", "\"g\"")]);
    d.handle_head(r.id, 200, &head, false, 0).unwrap();
    d.feed(r.id, &gz[..cut], 0, |_| n += 1).unwrap();
    d.handle_transport_error(r.id, "reset", 0).unwrap();
    let r = send(&mut d, 1_000);
    assert_eq!(r.header("Range"), Some(format!("bytes={cut}-").as_str()));
    let part =
        h(&[("Content-Encoding", "gzip"), ("Content-Range", &format!("bytes {cut}-{}/{}", gz.len() - 1, gz.len()))]);
    d.handle_head(r.id, 206, &part, false, 1_000).unwrap();
    d.feed(r.id, &gz[cut..], 1_000, |_| n += 1).unwrap();
    d.finish(r.id, 1_000, |_| n += 1).unwrap();
    assert_eq!(n, 400);
    let DownloadAction::Done { report } = d.next_action(1_000).unwrap() else { panic!() };
    assert_eq!(report.range_resumes, 1);
}

// protocol K1: a 206 for another range than asked is not trusted: start over
#[test]
fn a_206_for_another_range_starts_over() {
    let mut d = FileDownload::new(planned("https://h/f", false, None), &policy()).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &h(&[("Accept-Ranges", "bytes"), ("ETag", "\"v\"")]), false, 0).unwrap();
    d.feed(r.id, b"{}\n{", 0, |_| {}).unwrap();
    d.handle_transport_error(r.id, "reset", 0).unwrap();
    let r = send(&mut d, 1_000);
    assert_eq!(
        d.handle_head(r.id, 206, &h(&[("Content-Range", "bytes 0-9/10")]), false, 1_000).unwrap(),
        HeadDecision::Discard
    );
    let r = send(&mut d, 10_000);
    assert_eq!(r.header("Range"), None, "the next attempt fetches the whole file");
}

// protocol K5: a partly downloaded identity file continues in another process from
// the end of its last line: no line twice, none lost
#[test]
fn a_checkpoint_continues_in_another_process() {
    let body = b"{\"id\":\"1\"}\r\n\n{\"id\":\"2\"}\n{\"id\":\"3\"}\n";
    let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy()).unwrap();
    let mut first = Vec::new();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &h(&[("Accept-Ranges", "bytes"), ("ETag", "\"v\"")]), false, 0).unwrap();
    d.feed(r.id, &body[..20], 0, |l| first.push(l.to_vec())).unwrap(); // line 1, a blank line, half of line 2
    let cp = d.checkpoint().expect("identity with ranges");
    assert_eq!((cp.offset, cp.resources, cp.validator.as_str()), (13, 1, "\"v\""));
    // A new process.
    let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy()).unwrap().resume_from(cp.clone());
    let r = send(&mut d, 0);
    assert_eq!((r.header("Range"), r.header("If-Range")), (Some("bytes=13-"), Some("\"v\"")));
    let mut rest = Vec::new();
    d.handle_head(r.id, 206, &h(&[("Content-Range", "bytes 13-34/35")]), false, 0).unwrap();
    d.feed(r.id, &body[13..], 0, |l| rest.push(l.to_vec())).unwrap();
    d.finish(r.id, 0, |l| rest.push(l.to_vec())).unwrap();
    assert_eq!(rest, vec![b"{\"id\":\"2\"}".to_vec(), b"{\"id\":\"3\"}".to_vec()]);
    // The file changed meanwhile: a 200 starts over and skips what the caller has.
    let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy()).unwrap().resume_from(cp);
    let r = send(&mut d, 0);
    let mut again = Vec::new();
    d.handle_head(r.id, 200, &[], false, 0).unwrap();
    d.feed(r.id, body, 0, |l| again.push(l.to_vec())).unwrap();
    d.finish(r.id, 0, |l| again.push(l.to_vec())).unwrap();
    assert_eq!(again.len(), 2);
    // gzip bodies have no checkpoint.
    let mut d = FileDownload::new(planned("https://h/f", false, None), &policy()).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(
        r.id,
        200,
        &h(&[("Accept-Ranges", "bytes"), ("ETag", "\"v\""), ("Content-Encoding", "gzip")]),
        false,
        0,
    )
    .unwrap();
    assert_eq!(d.checkpoint(), None);
}

// issue 20: the invalid-line policy is the core's: `Raise` fails the file with a typed
// `invalid_line` at its first bad line (the lines before it are handed out, it and the
// rest are not); `Report` (the default) counts it and hands out every line
#[test]
fn invalid_lines_raise_fails_the_file_at_the_first_one() {
    let body = b"{\"id\":\"1\"}\nnot json\n{\"id\":\"3\"}\n";
    let mut d = FileDownload::new(planned("https://h/f?sig=1", false, None), &policy())
        .unwrap()
        .with_invalid_lines(InvalidLines::Raise);
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &[], false, 0).unwrap();
    let mut got = Vec::new();
    let e = d.feed(r.id, body, 0, |l| got.push(l.to_vec())).unwrap_err();
    assert_eq!(got, vec![b"{\"id\":\"1\"}".to_vec()]);
    assert_eq!(
        e,
        DownloadError::InvalidLine { url: "https://h/f?…".into(), line: 2, message: "not a JSON object".into() }
    );
    assert_eq!(e.code(), "invalid_line");
    assert!(d.next_action(0).is_err(), "the file is over");
    // The default reports it.
    let mut d = FileDownload::new(planned("https://h/f", false, None), &policy()).unwrap();
    run_body(&mut d, body).unwrap();
    assert_eq!(d.report().map(|r| (r.resources, r.invalid_lines)), Some((2, 1)));
    assert_eq!(serde_json::to_value(InvalidLines::Raise).unwrap(), "raise");
    assert_eq!(serde_json::from_value::<InvalidLines>("report".into()).unwrap(), InvalidLines::Report);
}

// issue 20: with `Raise`, a line a binding parsed itself and reports fails the file at its
// next call; reported after the file finished, the report gives way to the error
#[test]
fn invalid_lines_raise_from_a_binding_report() {
    let mut d = FileDownload::new(planned("https://h/f", false, None), &policy())
        .unwrap()
        .with_validation(Validation::None)
        .with_invalid_lines(InvalidLines::Raise);
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &[], false, 0).unwrap();
    d.feed(r.id, b"{\"id\":\"1\"}\n{not json}\n", 0, |_| {}).unwrap();
    let e = d.report_invalid_line(2, "expected ident").expect("raise");
    assert!(matches!(e, DownloadError::InvalidLine { line: 2, .. }));
    assert_eq!(d.feed(r.id, b"{}\n", 0, |_| {}).unwrap_err(), e);
    // Late: the finished file's report becomes the error.
    let mut d = FileDownload::new(planned("https://h/f", false, None), &policy())
        .unwrap()
        .with_validation(Validation::None)
        .with_invalid_lines(InvalidLines::Raise);
    run_body(&mut d, b"{}\n").unwrap();
    assert!(d.report_invalid_line(1, "late").is_some());
    assert!(d.report().is_none());
    // Report: nothing fails.
    let mut d =
        FileDownload::new(planned("https://h/f", false, None), &policy()).unwrap().with_validation(Validation::None);
    run_body(&mut d, b"{}\n").unwrap();
    assert_eq!(d.report_invalid_line(1, "late"), None);
}

// issue 20: `FileReport.bytes` counts the whole file after a resume in another process
// (the bytes before the checkpoint and this process's), not only the resumed tail
#[test]
fn report_bytes_count_the_whole_file_after_a_cross_process_resume() {
    let body = b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\":\"3\"}\n";
    let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy()).unwrap();
    let r = send(&mut d, 0);
    d.handle_head(r.id, 200, &h(&[("Accept-Ranges", "bytes"), ("ETag", "\"v\"")]), false, 0).unwrap();
    d.feed(r.id, &body[..15], 0, |_| {}).unwrap();
    let cp = d.checkpoint().unwrap();
    assert_eq!(cp.offset, 11);
    let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy()).unwrap().resume_from(cp.clone());
    let r = send(&mut d, 0);
    d.handle_head(r.id, 206, &h(&[("Content-Range", "bytes 11-32/33")]), false, 0).unwrap();
    d.feed(r.id, &body[11..], 0, |_| {}).unwrap();
    d.finish(r.id, 0, |_| {}).unwrap();
    assert_eq!(d.report().map(|r| (r.resources, r.bytes)), Some((3, 33)));
    // A 200 instead: the whole body came again, and is counted once.
    let mut d = FileDownload::new(planned("https://h/f", false, Some(3)), &policy()).unwrap().resume_from(cp);
    run_body(&mut d, body).unwrap();
    assert_eq!(d.report().map(|r| r.bytes), Some(33));
}

// issue 20: the core's words for a line that is not a resource, for a binding that parses
// lines itself (a line that is not UTF-8 included)
#[test]
fn line_problem_is_the_cores_message() {
    assert_eq!(line_problem(Validation::Json, b"{\"a\":1}"), None);
    assert_eq!(line_problem(Validation::Json, b"[1]").as_deref(), Some("not a JSON object"));
    assert!(
        line_problem(Validation::Json, b"{\"a\":\"\xff\"}").is_some_and(|m| m.contains("unicode") || m.contains("UTF"))
    );
    assert_eq!(line_problem(Validation::Structural, b"{not json}"), None);
    assert_eq!(line_problem(Validation::None, b"x"), None);
}
