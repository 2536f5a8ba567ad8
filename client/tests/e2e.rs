//! The client against the in-process reference server: exports, downloads,
//! per-file failures, tokens, stops and resume.

use fhir_async::{DownloadOptions, ExportRequest, OutcomeStatus};
use fhir_async_client::{Client, ClientError, StaticToken, Stop};
use std::path::PathBuf;
use std::time::Duration;

mod common;

use common::{fast, Server};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fhir-async-client-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn tmp_files(dir: &PathBuf) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn lines(path: &PathBuf) -> usize {
    std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.trim().is_empty()).count()
}

// issue 11 §2: an export with a token, downloaded in parallel, each file checked and renamed into place
#[test]
fn export_and_download_with_a_token() {
    let srv = Server::start(|c| c.token = Some("t0k3n".into()));
    let client = Client::builder(&format!("{}/bulk/fhir", srv.origin))
        .token(StaticToken::new("t0k3n"))
        .retry(fast())
        .build()
        .unwrap();
    let mut job = client
        .export(ExportRequest { types: vec!["Patient".into(), "Observation".into()], ..Default::default() })
        .unwrap();
    assert!(job.job().status_url().is_some(), "export() returns once accepted");
    let outcome = job.wait().unwrap();
    assert_eq!(outcome.status, OutcomeStatus::Completed);
    let dir = tmp("export");
    let events = std::sync::Mutex::new(Vec::new());
    let summary = job
        .download_events(&dir, DownloadOptions { max_per_origin: 3, ..Default::default() }, |e| match e {
            fhir_async_client::DownloadEvent::Started { index, attempt, .. } => {
                events.lock().unwrap().push(format!("start {index} {attempt}"))
            }
            fhir_async_client::DownloadEvent::Finished { index, path, .. } => {
                assert!(path.is_some_and(|p| p.exists()), "renamed into place before the event");
                events.lock().unwrap().push(format!("end {index}"))
            }
            _ => {}
        })
        .unwrap();
    let mut events = events.into_inner().unwrap();
    events.sort();
    assert_eq!(events, vec!["end 0", "end 1", "start 0 1", "start 1 1"], "one start and one end per file");
    assert!(summary.is_complete(), "{:?}", summary.files);
    assert_eq!(summary.files.len(), 2);
    for f in &summary.files {
        let report = f.result.report.as_ref().unwrap();
        let path = f.path.as_ref().unwrap();
        assert_eq!(lines(path) as u64, report.resources);
        assert_eq!(Some(report.resources), report.expected);
    }
    assert!(summary.wire_bytes > 0);
    assert!(!tmp_files(&dir).iter().any(|n| n.ends_with(".tmp")));
    std::fs::remove_dir_all(&dir).ok();
}

// issue 10 §2, issue 19: an error file listed with count 100 for its one line (as a real server
// sent) is evidence: kept, with the mismatch as a warning; every file is kept
#[test]
fn an_error_files_wrong_count_keeps_its_lines() {
    let srv = Server::start(|_| {});
    let base = format!("{}/_f/partial;errcount=100/bulk/fhir", srv.origin);
    let client = Client::builder(&base).retry(fast()).build().unwrap();
    let mut job = client
        .export(ExportRequest { types: vec!["Patient".into(), "Condition".into()], ..Default::default() })
        .unwrap();
    assert_eq!(job.wait().unwrap().status, OutcomeStatus::CompletedWithErrors);
    let dir = tmp("badfile");
    let summary = job.download(&dir, DownloadOptions::default()).unwrap();
    assert!(summary.is_complete(), "{summary:?}");
    let error_file = summary.files.iter().find(|f| f.result.file.kind == fhir_async::FileKind::Error).unwrap();
    let report = error_file.result.report.as_ref().unwrap();
    assert_eq!((report.resources, report.count_mismatch.map(|m| m.expected)), (1, Some(100)));
    assert!(report.warnings.iter().any(|w| w.contains("error file (OperationOutcome)")), "{:?}", report.warnings);
    let kept = std::fs::read_to_string(error_file.path.as_ref().unwrap()).unwrap();
    assert!(kept.contains("OperationOutcome"), "the server's explanation is kept: {kept}");
    assert!(!tmp_files(&dir).iter().any(|n| n.ends_with(".tmp")), "{:?}", tmp_files(&dir));
    std::fs::remove_dir_all(&dir).ok();
}

// protocol H5, issue 10 §2: a fixed token the server refuses is sent once; the error has the server's words
#[test]
fn a_refused_fixed_token_is_sent_once() {
    let srv = Server::start(|c| c.token = Some("right".into()));
    let client = Client::builder(&format!("{}/bulk/fhir", srv.origin))
        .token(StaticToken::new("wrong"))
        .retry(fast())
        .build()
        .unwrap();
    let before = srv.stats();
    let err = client.export(ExportRequest::default()).unwrap_err();
    assert_eq!(err.code(), "unauthorized");
    let text = err.to_string();
    assert!(text.contains("fixed string") && !text.contains("even after a token refresh"), "{text}");
    assert!(!text.contains("wrong"), "the token is never in an error: {text}");
    let after = srv.stats();
    let total = |s: &serde_json::Value| s["total"].as_u64().unwrap_or(0);
    assert_eq!(total(&after) - total(&before), 1, "sent once: {after}");
}

// issue 11 §2: a stop ends the wait at once with `stopped`; the saved job resumes without a second kick-off
#[test]
fn stop_then_resume() {
    let srv = Server::start(|c| c.job_ms = 1500);
    let stop = Stop::default();
    let client =
        Client::builder(&format!("{}/bulk/fhir", srv.origin)).retry(fast()).stop(stop.clone()).build().unwrap();
    let mut job = client.export(ExportRequest { types: vec!["Patient".into()], ..Default::default() }).unwrap();
    let s2 = stop.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        s2.stop();
    });
    let err = job.wait().unwrap_err();
    t.join().unwrap();
    assert!(matches!(err, ClientError::Stopped), "{err}");
    let saved = job.to_json();
    assert!(!saved.contains("Bearer"));
    stop.reset();
    let kicks = |s: &serde_json::Value| s["routes"]["bulk.kickoff"].as_u64().unwrap_or(0);
    let before = kicks(&srv.stats());
    let mut resumed = client.resume(&saved).unwrap();
    assert_eq!(resumed.wait().unwrap().status, OutcomeStatus::Completed);
    assert_eq!(kicks(&srv.stats()), before, "no second kick-off");
}

// Medplum as it really answers: an async batch's Binary result needs the token, and is fetched with it
#[test]
fn medplum_batch_result_with_the_token() {
    let srv = Server::start(|c| c.token = Some("t".into()));
    let client = Client::builder(&format!("{}/medplum/fhir/R4", srv.origin))
        .token(StaticToken::new("t"))
        .retry(fast())
        .build()
        .unwrap();
    let bundle =
        r#"{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient?_count=1"}}]}"#;
    let op = fhir_async::Operation::Operation(fhir_async::OperationRequest {
        method: fhir_async::Method::Post,
        path: String::new(),
        body: Some(bundle.into()),
    });
    let mut job = client.start(op).unwrap();
    assert!(job.job().status_url().unwrap().ends_with("/status"));
    assert_eq!(job.wait().unwrap().status, OutcomeStatus::Completed);
    let dir = tmp("medplum");
    let summary = job.download(&dir, DownloadOptions::default()).unwrap();
    assert!(summary.is_complete(), "{summary:?}");
    let text = std::fs::read_to_string(summary.files[0].path.as_ref().unwrap()).unwrap();
    assert!(text.contains("batch-response"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 11 §2: streaming iterators of raw lines; every resource exactly once, per-file results at the end
#[test]
fn lines_stream_every_resource_once() {
    let srv = Server::start(|c| c.file_resources = 40);
    let client = Client::builder(&format!("{}/_f/reset/bulk/fhir", srv.origin)).retry(fast()).build().unwrap();
    let mut job = client.export(ExportRequest { types: vec!["Observation".into()], ..Default::default() }).unwrap();
    job.wait().unwrap();
    let mut ids = std::collections::HashSet::new();
    let mut files_done = 0;
    let mut stream = job.lines(DownloadOptions { max_per_origin: 3, ..Default::default() });
    for ev in stream.by_ref() {
        match ev.unwrap() {
            fhir_async_client::LineEvent::Lines(batch) => {
                for l in batch.lines() {
                    let v: serde_json::Value = serde_json::from_slice(l).unwrap();
                    assert!(ids.insert(v["id"].as_str().unwrap().to_owned()), "a resource came twice");
                }
            }
            fhir_async_client::LineEvent::File(r) => {
                assert!(r.error.is_none(), "{r:?}");
                files_done += 1;
            }
        }
    }
    let summary = stream.summary().expect("exhausted");
    assert!(files_done > 1 && files_done == summary.files.len());
    let expected: u64 = summary.files.iter().map(|f| f.result.report.as_ref().unwrap().resources).sum();
    assert_eq!(ids.len() as u64, expected);
    assert!((0..ids.len()).all(|i| ids.contains(&format!("Observation-{i}"))));
}
