//! What a caller asks of a job besides waiting and downloading: cleanup,
//! callbacks, and resuming a download in a folder (issue 11: what the Rust
//! examples need from the client).

use fhir_async::{CallbackEffect, CallbackPayload, CallbackStatus, DownloadOptions, ExportRequest, OutcomeStatus};
use std::time::{Duration, Instant};

mod common;

use common::Server;

fn deletes(stats: &serde_json::Value) -> usize {
    stats["requests"].as_array().unwrap().iter().filter(|r| r["method"] == "DELETE").count()
}

// protocol F3: cleanup() after the download is one DELETE of the status URL; the files are gone
#[test]
fn cleanup_deletes_the_finished_job() {
    let srv = Server::start(|c| c.patients = 20);
    let mut job = srv.client("/bulk/fhir").export(ExportRequest::default()).unwrap();
    assert_eq!(job.wait().unwrap().status, OutcomeStatus::Completed);
    let before = deletes(&srv.stats());
    let result = job.cleanup().unwrap();
    assert!(result.ok, "{result:?}");
    assert_eq!(deletes(&srv.stats()) - before, 1);
    assert_eq!(job.job().cleanup_result(), Some(&result));
}

// protocol G2, G3: a trusted callback ends a long Retry-After early; an untrusted one is ignored
#[test]
fn a_callback_wakes_a_long_wait() {
    let srv = Server::start(|c| c.patients = 20);
    let mut job = srv.client("/_f/ms=300;retry=600/bulk/fhir").export(ExportRequest::default()).unwrap();
    let status_url = job.job().status_url().unwrap().to_owned();
    let foreign = CallbackPayload {
        status: CallbackStatus::Completed,
        result_url: Some("https://elsewhere.example/result".into()),
        outcome: None,
    };
    assert!(matches!(job.handle_callback(&foreign), CallbackEffect::Ignored { .. }));

    // The server's callback, re-sent every 100 ms until the job notices (as a server retries one).
    let (tx, inbox) = std::sync::mpsc::channel();
    let sender = std::thread::spawn(move || {
        let payload =
            CallbackPayload { status: CallbackStatus::Completed, result_url: Some(status_url), outcome: None };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && tx.send(payload.clone()).is_ok() {
            std::thread::park_timeout(Duration::from_millis(100));
        }
    });
    let started = Instant::now();
    let outcome = job.wait_with_callbacks(&inbox, |_| {}).unwrap();
    drop(inbox);
    sender.join().unwrap();
    assert_eq!(outcome.status, OutcomeStatus::Completed);
    assert!(started.elapsed() < Duration::from_secs(30), "woken long before the 600 s Retry-After");
}

// issue 10 §2: a resumed download skips the files an earlier one completed in the folder
#[test]
fn completed_files_are_skipped_on_resume() {
    let srv = Server::start(|c| c.patients = 20);
    let client = srv.client("/bulk/fhir");
    let mut job = client
        .export(ExportRequest { types: vec!["Patient".into(), "Condition".into()], ..Default::default() })
        .unwrap();
    job.wait().unwrap();
    let dir = std::env::temp_dir().join(format!("fhir-async-client-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(job.completed_in(&dir).is_empty());
    let first = &job.job().download_plan()[0].file_name;
    let partial = job.download(&dir, DownloadOptions { types: vec!["Patient".into()], ..Default::default() }).unwrap();
    assert!(partial.is_complete());
    // A file still being written (name.tmp) is not complete.
    std::fs::write(dir.join("Condition.000.ndjson.tmp"), "{}\n").unwrap();
    let done = job.completed_in(&dir);
    assert_eq!(done, vec![first.clone()], "only the Patient file");

    let mut resumed = client.resume(&job.to_json()).unwrap();
    let rest = resumed.download(&dir, DownloadOptions { skip_files: done, ..Default::default() }).unwrap();
    assert!(rest.is_complete());
    assert!(rest.files.iter().all(|f| f.result.file.resource_type.as_deref() != Some("Patient")), "{rest:?}");
    assert_eq!(resumed.completed_in(&dir).len(), resumed.job().download_plan().len());
    std::fs::remove_dir_all(&dir).ok();
}
