//! Unit tests of the coordinator (the scenarios are in `tests/vectors/downloads/`).
use super::*;
use crate::download::{FileCheckpoint, HeadDecision, InvalidLines, Validation};
use crate::http::Request;
use crate::manifest::FileKind;

fn file(kind: FileKind, index: usize, ty: &str, url: &str, count: Option<u64>) -> PlannedFile {
    PlannedFile {
        kind,
        index,
        resource_type: Some(ty.into()),
        url: url.into(),
        send_token: true,
        expected_count: count,
        expected_bytes: None,
        opaque_format: None,
        file_name: format!("{ty}.{index:03}.ndjson"),
        max_bytes: None,
        blocked: None,
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy { min_wait_ms: 10, initial_backoff_ms: 10, jitter_percent: 0, ..RetryPolicy::default() }
}

/// Every Send until the coordinator has nothing more to start.
fn sends(d: &mut Downloads, now: u64) -> (Vec<(usize, Request)>, DownloadStep) {
    let mut out = Vec::new();
    loop {
        match d.next(now).unwrap() {
            DownloadStep::Send { file, request } => out.push((file, request)),
            other => return (out, other),
        }
    }
}

fn serve(d: &mut Downloads, file: usize, id: u64, body: &[u8]) {
    assert_eq!(d.handle_head(file, id, 200, &[], false, 0).unwrap(), HeadDecision::Stream);
    d.feed(file, id, body, 0, |_| {}).unwrap();
    d.finish(file, id, 0, |_| {}).unwrap();
}

// issue 11 §1, K3: at most `max_per_origin` files at once per origin; others origins independent
#[test]
fn per_origin_limit() {
    let plan = (0..5)
        .map(|i| file(FileKind::Output, i, "Patient", &format!("https://a/{i}"), None))
        .chain([file(FileKind::Output, 5, "Patient", "https://b/5", None)])
        .collect();
    let mut d = Downloads::new(plan, DownloadOptions { max_per_origin: 2, ..Default::default() }, &policy());
    let (first, step) = sends(&mut d, 0);
    assert_eq!(first.iter().map(|(f, _)| *f).collect::<Vec<_>>(), vec![0, 1, 5]);
    assert_eq!(step, DownloadStep::Idle);
    serve(&mut d, 0, first[0].1.id, b"{}\n");
    let (more, _) = sends(&mut d, 0);
    assert_eq!(more.iter().map(|(f, _)| *f).collect::<Vec<_>>(), vec![2], "one finished, one more starts");
    let p = d.progress();
    assert_eq!((p.files_active, p.files_done), (3, 1));
}

// protocol K5: one file's record is the one `records` lists for it; none for a file not started
#[test]
fn record_of_one_file() {
    let plan = vec![
        file(FileKind::Output, 0, "Patient", "https://a/0", None),
        file(FileKind::Output, 1, "Patient", "https://a/1", None),
    ];
    let mut d = Downloads::new(plan, DownloadOptions { max_per_origin: 1, ..Default::default() }, &policy());
    let (first, _) = sends(&mut d, 0);
    serve(&mut d, 0, first[0].1.id, b"{}\n{}\n");
    let (second, _) = sends(&mut d, 0);
    assert_eq!(second.len(), 1, "file 1 started, nothing received yet");
    let done = d.record(0).unwrap();
    assert_eq!((done.file_name.as_str(), done.resources, done.bytes), ("Patient.000.ndjson", 2, Some(6)));
    assert_eq!((d.record(1), d.record(2)), (None, None));
    assert_eq!(d.records(), vec![done]);
}

// issue 10 §2 / issue 11 §1: a file that fails its count check is a per-file result; the others complete
#[test]
fn one_bad_file_loses_nothing_else() {
    let plan = vec![
        file(FileKind::Output, 0, "Patient", "https://a/0", Some(2)),
        file(FileKind::Output, 1, "Observation", "https://a/e", Some(100)),
    ];
    let mut d = Downloads::new(plan, DownloadOptions::default(), &policy());
    let (reqs, _) = sends(&mut d, 0);
    serve(&mut d, 0, reqs[0].1.id, b"{}\n{}\n");
    serve(&mut d, 1, reqs[1].1.id, b"{}\n");
    assert_eq!(d.next(0).unwrap(), DownloadStep::Done);
    let results = d.results();
    assert_eq!(results[0].report.as_ref().map(|r| r.resources), Some(2));
    let err = results[1].error.as_ref().expect("the error file failed");
    assert!(err.to_string().contains("Observation output file"), "{err}");
    let p = d.progress();
    assert_eq!((p.files_done, p.files_failed, p.resources), (1, 1, 2));
}

// protocol E4, issue 11 §1: two expired files cause one manifest refresh; both are re-bound
#[test]
fn one_refresh_for_all_files() {
    let plan = vec![
        file(FileKind::Output, 0, "Patient", "https://a/old0", None),
        file(FileKind::Output, 1, "Patient", "https://a/old1", None),
        file(FileKind::Output, 2, "Patient", "https://a/old2", None),
    ];
    let mut d = Downloads::new(plan, DownloadOptions { max_per_origin: 2, ..Default::default() }, &policy());
    let (reqs, _) = sends(&mut d, 0);
    assert_eq!(reqs.len(), 2);
    for (f, r) in &reqs {
        assert_eq!(d.handle_head(*f, r.id, 410, &[], false, 0).unwrap(), HeadDecision::Discard);
    }
    assert_eq!(d.next(0).unwrap(), DownloadStep::RefreshManifest);
    assert_eq!(d.next(0).unwrap(), DownloadStep::Idle, "asked once, the other file waits; nothing new starts");
    // The same files with fresh queries, listed in another order: matched by what they are (K6).
    let fresh = (0..3)
        .rev()
        .map(|i| file(FileKind::Output, 2 - i, "Patient", &format!("https://a/old{i}?g=1"), None))
        .collect();
    d.manifest_refreshed(fresh);
    let (reqs, _) = sends(&mut d, 0);
    let urls: Vec<&str> = reqs.iter().map(|(_, r)| r.url.as_str()).collect();
    assert_eq!(urls, vec!["https://a/old0?g=1", "https://a/old1?g=1"]);
    for (f, r) in &reqs {
        serve(&mut d, *f, r.id, b"{}\n");
    }
    let (reqs, _) = sends(&mut d, 0);
    assert_eq!(reqs[0].1.url, "https://a/old2?g=1", "a file started after the refresh uses the fresh plan");
    serve(&mut d, 2, reqs[0].1.id, b"{}\n");
    assert_eq!(d.next(0).unwrap(), DownloadStep::Done);
    assert_eq!(d.files()[0].url, "https://a/old0?g=1", "results carry the fresh entry");
}

// protocol H5: one token refresh for the files that got 401; no refresh possible → those files fail
#[test]
fn shared_token_refresh_and_unavailable() {
    let plan = vec![
        file(FileKind::Output, 0, "Patient", "https://a/0", None),
        file(FileKind::Output, 1, "Patient", "https://a/1", None),
    ];
    let mut d = Downloads::new(plan, DownloadOptions::default(), &policy());
    let (reqs, _) = sends(&mut d, 0);
    for (f, r) in &reqs {
        d.handle_head(*f, r.id, 401, &[], false, 0).unwrap();
    }
    assert_eq!(d.next(0).unwrap(), DownloadStep::RefreshToken);
    assert_eq!(d.next(0).unwrap(), DownloadStep::Idle);
    d.token_unavailable("a fixed token string");
    assert_eq!(d.next(0).unwrap(), DownloadStep::Done);
    assert!(d.results().iter().all(|r| r.error.as_ref().is_some_and(|e| e.code() == "unauthorized")));
}

// K3 / E6: a 429 on a file waits for its Retry-After; other files go on
#[test]
fn file_429_waits_retry_after() {
    let plan = vec![file(FileKind::Output, 0, "Patient", "https://a/0", None)];
    let mut d = Downloads::new(plan, DownloadOptions::default(), &policy());
    let (reqs, _) = sends(&mut d, 0);
    let ra = [("Retry-After".to_owned(), "3".to_owned())];
    assert_eq!(d.handle_head(0, reqs[0].1.id, 429, &ra, false, 0).unwrap(), HeadDecision::Discard);
    assert_eq!(d.next(0).unwrap(), DownloadStep::Wait { until_ms: 3_000, delay_ms: 3_000 });
    assert!(matches!(d.next(3_000).unwrap(), DownloadStep::Send { file: 0, .. }));
}

// issue 11 §1: which files (kinds, types); error files kept whatever the types
#[test]
fn selection_by_kind_and_type() {
    let plan = vec![
        file(FileKind::Output, 0, "Patient", "https://a/0", None),
        file(FileKind::Output, 1, "Observation", "https://a/1", None),
        file(FileKind::Error, 0, "OperationOutcome", "https://a/e", None),
        file(FileKind::Deleted, 0, "Bundle", "https://a/d", None),
    ];
    let opts = DownloadOptions {
        kinds: vec![FileKind::Output, FileKind::Error],
        types: vec!["Observation".into()],
        ..Default::default()
    };
    let d = Downloads::new(plan.clone(), opts.clone(), &policy());
    let urls: Vec<&str> = d.files().iter().map(|f| f.url.as_str()).collect();
    assert_eq!(urls, vec!["https://a/1", "https://a/e"]);
    // A resumed download leaves out the files an earlier run completed.
    let d =
        Downloads::new(plan, DownloadOptions { skip_files: vec!["Observation.001.ndjson".into()], ..opts }, &policy());
    assert_eq!(d.files().len(), 1);
}

// L13: a stream of resources leaves opaque files (Parquet) out; a folder download takes them
#[test]
fn l13_opaque_files_are_taken_only_by_a_sink_of_bytes() {
    let parquet = PlannedFile {
        opaque_format: Some("application/vnd.apache.parquet".into()),
        file_name: "Patient.001.parquet".into(),
        ..file(FileKind::Output, 1, "Patient", "https://a/p", None)
    };
    let plan = vec![file(FileKind::Output, 0, "Patient", "https://a/0", None), parquet];
    let d = Downloads::new(plan.clone(), DownloadOptions::default(), &policy());
    let names: Vec<&str> = d.files().iter().map(|f| f.file_name.as_str()).collect();
    assert_eq!(names, ["Patient.000.ndjson"]);
    let d = Downloads::new(plan, DownloadOptions { opaque_files: true, ..Default::default() }, &policy());
    let names: Vec<&str> = d.files().iter().map(|f| f.file_name.as_str()).collect();
    assert_eq!(names, ["Patient.000.ndjson", "Patient.001.parquet"]);
}

// I2: a blocked file is a failed result at once, never sent
#[test]
fn blocked_file_fails_without_a_request() {
    let mut f = file(FileKind::Output, 0, "Patient", "http://a/0", None);
    f.blocked = Some("an http: file URL under an https: base (protocol I4)".into());
    let mut d = Downloads::new(vec![f], DownloadOptions::default(), &policy());
    assert_eq!(d.next(0).unwrap(), DownloadStep::Done);
    assert_eq!(d.results()[0].error.as_ref().map(DownloadError::code), Some("blocked"));
}

// issue 11 §2: a thread streams a lent download without the coordinator; an error it
// returns fails that file only
#[test]
fn lend_and_give_back() {
    let plan = vec![
        file(FileKind::Output, 0, "Patient", "https://a/0", Some(1)),
        file(FileKind::Output, 1, "Patient", "https://a/1", Some(5)),
    ];
    let mut d = Downloads::new(plan, DownloadOptions { max_per_origin: 1, ..Default::default() }, &policy());
    let (reqs, _) = sends(&mut d, 0);
    assert_eq!(reqs.len(), 1);
    let mut dl = d.lend(0).expect("in flight");
    assert!(d.lend(0).is_none(), "lent once");
    assert_eq!(sends(&mut d, 0).0.len(), 0, "a lent file still counts against the origin's limit");
    dl.handle_head(reqs[0].1.id, 200, &[], false, 0).unwrap();
    dl.feed(reqs[0].1.id, b"{}\n", 0, |_| {}).unwrap();
    let ended = dl.finish(reqs[0].1.id, 0, |_| {});
    d.give_back(0, dl, ended);
    let (reqs, _) = sends(&mut d, 0);
    assert_eq!(reqs[0].0, 1);
    let mut dl = d.lend(1).unwrap();
    dl.handle_head(reqs[0].1.id, 200, &[], false, 0).unwrap();
    let ended = dl.finish(reqs[0].1.id, 0, |_| {});
    assert!(ended.is_err(), "count mismatch");
    d.give_back(1, dl, ended);
    assert_eq!(d.next(0).unwrap(), DownloadStep::Done);
    let r = d.results();
    assert!(r[0].error.is_none() && r[1].error.as_ref().is_some_and(|e| e.code() == "count_mismatch"));
}

// protocol K3: against a server that answers 429 above 2 connections, the per-origin
// limit settles at 2 and no file fails; each change is reported
#[test]
fn the_limit_settles_where_the_server_stops_throttling() {
    let plan = (0..40).map(|i| file(FileKind::Output, i, "Patient", &format!("https://a/{i}"), Some(1))).collect();
    let mut d = Downloads::new(plan, DownloadOptions { max_per_origin: 6, ..Default::default() }, &policy());
    let mut now = 0;
    let mut in_flight: Vec<(usize, u64)> = Vec::new();
    let mut max_seen_after_settling = 0;
    let mut changes = Vec::new();
    for _round in 0..10_000 {
        loop {
            match d.next(now).unwrap() {
                DownloadStep::Send { file, request } => in_flight.push((file, request.id)),
                DownloadStep::Done => {
                    let r = d.results();
                    assert!(r.iter().all(|f| f.error.is_none()), "no file fails");
                    changes.extend(d.take_limit_changes());
                    assert!(changes.iter().any(|c| c.reason == "throttled"), "{changes:?}");
                    assert_eq!(d.progress().origin_limits[0].limit, 2, "{changes:?}");
                    assert!(max_seen_after_settling <= 3, "probes stay one above");
                    return;
                }
                DownloadStep::Wait { until_ms, .. } if in_flight.is_empty() => now = until_ms,
                _ => break,
            }
        }
        // The server sees every request in flight at once; the third and later are throttled.
        let batch = std::mem::take(&mut in_flight);
        let n = batch.len();
        for (k, (f, id)) in batch.into_iter().enumerate() {
            if k >= 2 {
                let ra = [("Retry-After".to_owned(), "1".to_owned())];
                d.handle_head(f, id, 429, &ra, false, now).unwrap();
            } else {
                serve(&mut d, f, id, b"{}\n");
            }
        }
        if changes.iter().any(|c| c.reason == "throttled") {
            // After the first congestion, at most one more than the server allows.
            max_seen_after_settling = max_seen_after_settling.max(n);
        }
        changes.extend(d.take_limit_changes());
        now += 100;
    }
    panic!("did not finish");
}

// protocol E4: a file that meets an expired link after the one refresh is re-bound to
// the fresh plan and sent at once: never a bare Idle with nothing in flight
#[test]
fn a_late_expiry_is_rebound_and_sent_at_once() {
    let plan = (0..2).map(|i| file(FileKind::Output, i, "Patient", &format!("https://a/old{i}"), None)).collect();
    let mut d = Downloads::new(plan, DownloadOptions { max_per_origin: 2, ..Default::default() }, &policy());
    let (reqs, _) = sends(&mut d, 0);
    d.handle_head(reqs[0].0, reqs[0].1.id, 410, &[], false, 0).unwrap();
    assert_eq!(d.next(0).unwrap(), DownloadStep::RefreshManifest);
    d.manifest_refreshed(
        (0..2).map(|i| file(FileKind::Output, i, "Patient", &format!("https://a/old{i}?g=1"), None)).collect(),
    );
    let (again, _) = sends(&mut d, 0);
    assert_eq!(again[0].1.url, "https://a/old0?g=1");
    serve(&mut d, again[0].0, again[0].1.id, b"{}\n");
    // File 1 was in flight with its old link during the refresh; it now meets the 410.
    d.handle_head(reqs[1].0, reqs[1].1.id, 410, &[], false, 0).unwrap();
    match d.next(0).unwrap() {
        DownloadStep::Send { file: 1, request } => assert_eq!(request.url, "https://a/old1?g=1"),
        other => panic!("expected the re-bound file at once, got {other:?}"),
    }
}

// protocol K4: links that expire within the margin: the manifest is re-fetched before
// any file starts, once for all
#[test]
fn expiring_links_are_refreshed_before_starting() {
    let plan = vec![file(FileKind::Output, 0, "Patient", "https://a/old", None)];
    let opts = DownloadOptions { expires_at_ms: Some(100_000), ..Default::default() };
    let mut d = Downloads::new(plan.clone(), opts.clone(), &policy());
    assert_eq!(d.next(50_000).unwrap(), DownloadStep::RefreshManifest, "within a minute of expiry");
    d.manifest_refreshed(vec![file(FileKind::Output, 0, "Patient", "https://a/new", None)]);
    let (reqs, _) = sends(&mut d, 50_000);
    assert_eq!(reqs[0].1.url, "https://a/new");
    // Far from expiry: no refresh.
    let mut d = Downloads::new(plan, opts, &policy());
    assert!(matches!(d.next(0).unwrap(), DownloadStep::Send { .. }));
}

#[test]
fn misuse_is_an_error_not_a_file_failure() {
    let mut d =
        Downloads::new(vec![file(FileKind::Output, 0, "P", "https://a/0", None)], Default::default(), &policy());
    assert_eq!(d.handle_head(0, 99, 200, &[], false, 0).unwrap_err().code(), "usage");
    assert_eq!(d.handle_head(7, 1, 200, &[], false, 0).unwrap_err().code(), "usage");
}

// issue 20: a total limit beside the per-origin one: at most `max_total` files at once,
// whatever their origins; a finished file frees a place
#[test]
fn total_limit_across_origins() {
    let plan =
        (0..6).map(|i| file(FileKind::Output, i, "Patient", &format!("https://h{i}.example/{i}"), None)).collect();
    let opts = DownloadOptions { max_per_origin: 4, max_total: 2, ..Default::default() };
    let mut d = Downloads::new(plan, opts, &policy());
    let (first, step) = sends(&mut d, 0);
    assert_eq!(first.iter().map(|(f, _)| *f).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(step, DownloadStep::Idle);
    serve(&mut d, 1, first[1].1.id, b"{}\n");
    let (more, _) = sends(&mut d, 0);
    assert_eq!(more.iter().map(|(f, _)| *f).collect::<Vec<_>>(), vec![2]);
    assert_eq!(DownloadOptions::default().max_total, crate::limits::DEFAULT_MAX_TOTAL);
}

// issue 20: `invalid_lines: "raise"` in the options fails the file with `invalid_line`;
// the others complete. A line a binding reports after the file finished fails it too.
#[test]
fn invalid_lines_option_passes_through() {
    let plan = vec![
        file(FileKind::Output, 0, "Patient", "https://a/0", None),
        file(FileKind::Output, 1, "Patient", "https://a/1", None),
    ];
    let opts: DownloadOptions = serde_json::from_str(r#"{"invalidLines":"raise"}"#).unwrap();
    assert_eq!(opts.invalid_lines, InvalidLines::Raise);
    let mut d = Downloads::new(plan.clone(), opts.clone(), &policy());
    let (sent, _) = sends(&mut d, 0);
    assert_eq!(d.handle_head(0, sent[0].1.id, 200, &[], false, 0).unwrap(), HeadDecision::Stream);
    assert_eq!(d.feed(0, sent[0].1.id, b"{}\n[1]\n", 0, |_| {}).unwrap(), HeadDecision::Discard);
    serve(&mut d, 1, sent[1].1.id, b"{}\n");
    assert_eq!(d.next(0).unwrap(), DownloadStep::Done);
    assert_eq!(d.result(0).and_then(|r| r.error.as_ref()).map(DownloadError::code), Some("invalid_line"));
    assert!(d.result(1).is_some_and(|r| r.report.is_some()));
    // Reported by the binding after the end: the result becomes the error, the totals follow.
    let opts = DownloadOptions { validation: Validation::None, ..opts };
    let mut d = Downloads::new(plan, opts, &policy());
    let (sent, _) = sends(&mut d, 0);
    serve(&mut d, 0, sent[0].1.id, b"{}\n");
    d.next(0).unwrap();
    assert_eq!(d.progress().files_done, 1);
    assert!(d.report_invalid_line(0, 1, "bad").is_some());
    assert_eq!((d.progress().files_done, d.progress().files_failed), (0, 1));
    assert_eq!(d.result(0).and_then(|r| r.error.as_ref()).map(DownloadError::code), Some("invalid_line"));
}

// issue 20, K5, K6: the resume-skip decision is the core's: a record counts for the plan
// file that is the same file by identity and has its name; done files the caller holds
// are skipped, part-way ones it can continue continue, anything else is fetched again
#[test]
fn resume_decision_by_identity() {
    let plan = vec![
        file(FileKind::Output, 0, "Patient", "https://a/f/0?sig=2", Some(2)),
        file(FileKind::Output, 1, "Patient", "https://a/f/1?sig=2", Some(3)),
        file(FileKind::Output, 2, "Observation", "https://a/f/2?sig=2", None),
        file(FileKind::Output, 3, "Observation", "https://a/f/3?sig=2", None),
    ];
    // Records from an earlier process: made by the coordinator itself.
    let mut d = Downloads::new(plan.clone(), DownloadOptions::default(), &policy());
    let (sent, _) = sends(&mut d, 0);
    serve(&mut d, 0, sent[0].1.id, b"{}\n{}\n");
    serve(&mut d, 2, sent[2].1.id, b"{}\n");
    d.next(0).unwrap();
    let mut records = d.records();
    assert_eq!(records[0].identity.as_ref().map(|i| i.path.as_str()), Some("/f/0"));
    let json = serde_json::to_value(&records[0]).unwrap();
    assert_eq!(json["identity"]["resourceType"], "Patient");
    // A part-way file of the right identity, and a record of another file under a plan's name.
    let cp = FileCheckpoint { offset: 3, validator: "\"v\"".into(), resources: 1, invalid: 0, taken: vec![] };
    let mut part = FileRecord {
        file_name: plan[1].file_name.clone(),
        identity: Some(FileIdentity::of(&plan[1])),
        resources: 1,
        bytes: None,
        checkpoint: Some(cp),
    };
    records.push(part.clone());
    let all = resume_decision(&plan, &records, |_| true, |_| true);
    assert_eq!(all.skip_files, vec!["Patient.000.ndjson", "Observation.002.ndjson"]);
    assert_eq!(all.continue_files, vec![part.clone()]);
    // The caller no longer holds a file: it is fetched again.
    let some = resume_decision(&plan, &records, |n| n != "Patient.000.ndjson", |_| false);
    assert_eq!(some.skip_files, vec!["Observation.002.ndjson"]);
    assert!(some.continue_files.is_empty());
    // A record of file 0 under file 1's name is file 0's: file 1 is fetched (not by position, K6).
    let stranger = FileRecord { file_name: plan[1].file_name.clone(), ..records[0].clone() };
    assert!(resume_decision(&plan, &[stranger], |_| true, |_| true).skip_files.is_empty());
    // Another count is another file, even under the same name (K6).
    part.identity.as_mut().unwrap().count = Some(4);
    assert!(resume_decision(&plan, &[part], |_| true, |_| true).continue_files.is_empty());
    // A record saved before identities: by its name.
    let old = FileRecord { identity: None, ..records[0].clone() };
    assert_eq!(resume_decision(&plan, &[old], |_| true, |_| true).skip_files, vec!["Patient.000.ndjson"]);
}
