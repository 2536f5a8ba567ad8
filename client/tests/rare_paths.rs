//! Nothing lost, nothing mixed (issue 19): the rare but legal paths of a
//! download against the reference server's faults, in the native client
//! (what Python and the CLI run on). Each test is named for its case and the
//! protocol items (K6–K10) it proves.

mod common;

use common::{fast, Server};
use fhir_async::{DownloadOptions, ExportRequest, OutcomeStatus, RetryPolicy};
use fhir_async_client::{Client, DownloadSummary, LineEvent};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fhir-async-rare-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn identity() -> DownloadOptions {
    DownloadOptions { gzip: false, ..DownloadOptions::default() }
}

fn export(client: &Client, types: &[&str]) -> fhir_async_client::JobRun {
    let mut job = client
        .export(ExportRequest { types: types.iter().map(|t| (*t).to_owned()).collect(), ..Default::default() })
        .unwrap();
    assert!(job.wait().unwrap().is_success());
    job
}

/// Every line of every downloaded file: (file type, line's resourceType, id, versionId).
fn lines_of(dir: &Path, s: &DownloadSummary) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for f in &s.files {
        let Some(path) = &f.path else { continue };
        let ty = f.result.file.resource_type.clone().unwrap_or_default();
        for line in std::fs::read_to_string(dir.join(path)).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{path:?}: not JSON ({e}): {line}"));
            let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
            out.push((ty.clone(), s("/resourceType"), s("/id"), s("/meta/versionId")));
        }
    }
    out
}

fn ids(lines: &[(String, String, String, String)]) -> BTreeSet<(String, String)> {
    lines.iter().map(|(_, t, id, _)| (t.clone(), id.clone())).collect()
}

// issue 19 case 1, K6: a refresh that lists the files in another order, without counts, after
// links expired mid-file: every file holds only its own type, every resource arrives once
#[test]
fn k6_a_reordered_refresh_mid_file_mixes_nothing() {
    let srv = Server::start(|c| {
        c.patients = 200;
        c.file_resources = 120;
        c.job_ms = 0;
    });
    let clean_dir = tmp("k6-clean");
    let clean = export(&srv.client("/bulk/fhir"), &[]).download(&clean_dir, identity()).unwrap();
    let dir = tmp("k6");
    let mut job = export(&srv.client("/_f/reorder;expireafter;cut=20000/bulk/fhir"), &[]);
    let s = job.download(&dir, identity()).unwrap();
    assert!(s.is_complete(), "{:?}", s.files.iter().filter_map(|f| f.result.error.as_ref()).collect::<Vec<_>>());
    let got = lines_of(&dir, &s);
    for (file_type, line_type, id, _) in &got {
        assert_eq!(file_type, line_type, "a {file_type} file holds {line_type}/{id}");
    }
    assert_eq!(got.len(), ids(&got).len(), "no resource twice");
    assert_eq!(ids(&got), ids(&lines_of(&clean_dir, &clean)), "every resource of a clean download, once");
    let resumed: u32 =
        s.files.iter().filter_map(|f| f.result.report.as_ref()).map(|r| r.range_resumes + r.range_restarts).sum();
    assert!(resumed > 0 || s.files.iter().any(|f| f.result.report.as_ref().is_some_and(|r| r.attempts > 1)));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&clean_dir).ok();
}

// issue 19 case 2, K7: a continuation answered 200 with a new ETag (the file changed): a folder
// holds exactly the new version; a stream fails the file with file_changed, nothing mixed
#[test]
fn k7_a_file_that_changed_is_one_version_or_a_typed_error() {
    let srv = Server::start(|c| {
        c.patients = 300;
        c.job_ms = 0;
    });
    let dir = tmp("k7");
    let mut job = export(&srv.client("/_f/changeafter;cut=20000/bulk/fhir"), &["Patient"]);
    let s = job.download(&dir, identity()).unwrap();
    assert!(s.is_complete());
    let got = lines_of(&dir, &s);
    // The second version: patients k with k % 3 == 2 gone, versionId 2 everywhere.
    assert_eq!(got.len(), 300 - 100, "exactly the new version's lines");
    assert!(got.iter().all(|(_, _, _, v)| v == "2"), "no line of the old version");
    assert_eq!(ids(&got).len(), got.len());
    let report = s.files[0].result.report.as_ref().unwrap();
    assert!(report.warnings.iter().any(|w| w.contains("changed on the server")), "{:?}", report.warnings);

    // The same through a stream: the lines already handed out cannot be taken back.
    let job = export(&srv.client("/_f/changeafter;cut=20000/bulk/fhir"), &["Patient"]);
    let mut lines = job.lines(identity());
    let (mut taken, mut failed) = (0usize, None);
    for event in lines.by_ref() {
        match event.unwrap() {
            LineEvent::Lines(b) => taken += b.len(),
            LineEvent::File(r) => failed = r.error.clone(),
        }
    }
    let e = failed.expect("the changed file failed");
    assert_eq!(e.code(), "file_changed", "{e}");
    assert!(taken < 300, "only lines of the first version up to the cut were handed out: {taken}");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19 case 3, K8: the manifest refresh fails until its retries run out: the job keeps its
// result, the files that needed fresh links fail with the refresh's cause, and a later download
// of the same job (the server recovered) completes without a new kick-off
#[test]
fn k8_a_failed_refresh_keeps_the_jobs_result() {
    let srv = Server::start(|c| {
        c.patients = 40;
        c.job_ms = 0;
    });
    let retry = RetryPolicy { max_retries: 2, ..fast() };
    let client =
        Client::builder(&format!("{}/_f/expire;refresh500=3/bulk/fhir", srv.origin)).retry(retry).build().unwrap();
    let mut job = export(&client, &["Patient"]);
    let dir = tmp("k8");
    let s = job.download(&dir, identity()).unwrap();
    let e = s.files[0].result.error.as_ref().expect("the expired file failed");
    assert_eq!(e.code(), "refresh_failed", "{e}");
    assert!(e.to_string().contains("500") || e.to_string().contains("gave up"), "{e}");
    assert_eq!(job.outcome().map(|o| o.status), Some(OutcomeStatus::Completed), "the job kept its result");
    assert!(job.job().error().is_none());
    let kickoffs = srv.stats()["kickoffs"].clone();
    // The fourth refresh answers: the same job downloads without a new kick-off.
    let s = job.download(&dir, identity()).unwrap();
    assert!(s.is_complete(), "{:?}", s.files[0].result.error);
    assert_eq!(srv.stats()["kickoffs"], kickoffs, "no new kick-off");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19 case 4, K8: a refresh answered 202 for ever ends within the retry budget
#[test]
fn k8_a_refresh_that_answers_202_for_ever_ends() {
    let srv = Server::start(|c| {
        c.patients = 10;
        c.job_ms = 0;
    });
    let retry = RetryPolicy { max_retries: 2, max_wait_ms: 50, ..fast() };
    let client =
        Client::builder(&format!("{}/_f/expire;refresh202/bulk/fhir", srv.origin)).retry(retry).build().unwrap();
    let mut job = export(&client, &["Patient"]);
    let dir = tmp("k8-202");
    let s = job.download(&dir, identity()).unwrap();
    let e = s.files[0].result.error.as_ref().expect("the file failed");
    assert_eq!(e.code(), "refresh_failed", "{e}");
    assert!(e.to_string().contains("202"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19 case 5, K9: a status answer of 1 GiB: a typed response_too_large, read no further
// than the ceiling
#[test]
fn k9_a_huge_status_answer_is_typed_and_bounded() {
    let srv = Server::start(|c| c.job_ms = 0);
    let retry = RetryPolicy { max_response_bytes: 4 << 20, ..fast() };
    let client =
        Client::builder(&format!("{}/_f/hugestatus=1073741824/bulk/fhir", srv.origin)).retry(retry).build().unwrap();
    let mut job = client.export(ExportRequest::default()).unwrap();
    let e = job.wait().unwrap_err();
    assert_eq!(e.code(), "response_too_large", "{e}");
    assert!(e.to_string().contains("4194304"), "{e}");
}

// issue 19 case 6, K10: a signed file URL that fails: its query never reaches a message
#[test]
fn k10_a_signed_urls_query_is_in_no_message() {
    let srv = Server::start(|c| c.job_ms = 0);
    let retry = RetryPolicy { max_download_retries: 1, ..fast() };
    let client = Client::builder(&format!("{}/_f/signedfail/bulk/fhir", srv.origin)).retry(retry).build().unwrap();
    let mut job = export(&client, &["Patient"]);
    let url = &job.job().download_plan()[0].url;
    let signature = url.split("X-Amz-Signature=").nth(1).expect("a signed URL").split('&').next().unwrap().to_owned();
    let dir = tmp("k10");
    let events = std::sync::Mutex::new(String::new());
    let s = job
        .download_events(&dir, identity(), |e| {
            // What the events say (a Started event carries the plan, whose URL is for sending).
            if let fhir_async_client::DownloadEvent::Finished { result, .. } = e {
                events.lock().unwrap().push_str(&format!("{:?}\n", result.error));
            }
        })
        .unwrap();
    let e = s.files[0].result.error.as_ref().expect("the file failed");
    let report = serde_json::to_string(&s.files[0].result.error).unwrap();
    let said = format!("{e} {e:?} {report} {}", events.lock().unwrap());
    for secret in [signature.as_str(), "X-Amz-Signature", "AKIAFHIRASYNCTEST019"] {
        assert!(!said.contains(secret), "{secret} in {said}");
    }
    assert!(said.contains("Patient"), "the message still says which file: {said}");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19 case 7: `hello`, `{not json}` and one Patient with a count of 3: one resource, two
// invalid lines, and the count check fails the file (every line is still handed out)
#[test]
fn only_json_objects_are_resources() {
    let srv = Server::start(|c| c.job_ms = 0);
    let job = export(&srv.client("/_f/junklines/bulk/fhir"), &["Patient"]);
    let mut lines = job.lines(identity());
    let (mut taken, mut result) = (0usize, None);
    for event in lines.by_ref() {
        match event.unwrap() {
            LineEvent::Lines(b) => taken += b.len(),
            LineEvent::File(r) => result = Some(r),
        }
    }
    let r = result.unwrap();
    let e = r.error.as_ref().expect("count 3 against one resource");
    assert!(matches!(e, fhir_async::DownloadError::CountMismatch { expected: 3, actual: 1, .. }), "{e}");
    assert_eq!(taken, 3, "every line is handed out; the report says which are resources");
}

/// Downloads `Patient` of a fresh export at `path` into `dir` until about 1.2 MB arrived, then
/// stops (the file is left part-way, with its checkpoint): the job as a next process resumes it.
fn stopped_part_way(srv: &Server, path: &str, dir: &Path) -> (Client, String) {
    let stop = fhir_async_client::Stop::default();
    let client = Client::builder(&format!("{}{path}", srv.origin)).retry(fast()).stop(stop.clone()).build().unwrap();
    let mut job = export(&client, &["Patient"]);
    let stopper = stop.clone();
    let r = job.download_events(dir, identity(), move |e| {
        if let fhir_async_client::DownloadEvent::Bytes { wire_bytes } = e {
            if wire_bytes > 1_200_000 {
                stopper.stop();
            }
        }
    });
    assert!(r.is_err(), "stopped part-way");
    let part = dir.join("Patient.000.ndjson.part");
    assert!(part.is_file(), "a part-way file with its checkpoint");
    stop.reset();
    (client, job.to_json())
}

// K7 across processes (K5): a `.part` whose bytes are not the ones its checkpoint took (changed
// on disk) is not continued: the file is fetched again whole, identical to a clean download
#[test]
fn k7_a_part_is_proven_against_its_checkpoint_before_it_continues() {
    let srv = Server::start(|c| {
        c.patients = 3000;
        c.job_ms = 0;
    });
    let clean_dir = tmp("k7p-clean");
    export(&srv.client("/bulk/fhir"), &["Patient"]).download(&clean_dir, identity()).unwrap();
    let dir = tmp("k7p");
    let (client, saved) = stopped_part_way(&srv, "/_f/slow=3000000/bulk/fhir", &dir);
    // Same length, other bytes: a length check alone would continue it.
    let part = dir.join("Patient.000.ndjson.part");
    let mut bytes = std::fs::read(&part).unwrap();
    let at = bytes.iter().position(|&b| b == b'1').expect("a digit to change");
    bytes[at] = b'7';
    std::fs::write(&part, &bytes).unwrap();
    let before = srv.stats();
    let s = client.resume(&saved).unwrap().download(&dir, identity()).unwrap();
    assert!(s.is_complete());
    let n = |v: &Value| v["files"]["206"].as_u64().unwrap_or(0);
    assert_eq!(n(&srv.stats()), n(&before), "the changed part was not continued by a range");
    let name = "Patient.000.ndjson";
    assert!(std::fs::read(dir.join(name)).unwrap() == std::fs::read(clean_dir.join(name)).unwrap(), "{name} differs");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&clean_dir).ok();
}

// issue 19 case 2 across processes, K7: the file changes on the server between a stopped process
// and the next one (the range request is answered 200 with a new ETag): the folder ends with
// exactly the new version, never the first part of the old one and the rest of the new
#[test]
fn k7_a_file_that_changed_between_processes_is_one_version() {
    let srv = Server::start(|c| {
        c.patients = 3000;
        c.job_ms = 0;
    });
    let dir = tmp("k7x");
    let (client, saved) = stopped_part_way(&srv, "/_f/changeafter;slow=3000000/bulk/fhir", &dir);
    let s = client.resume(&saved).unwrap().download(&dir, identity()).unwrap();
    assert!(s.is_complete());
    let got = lines_of(&dir, &s);
    assert_eq!(got.len(), 3000 - 1000, "exactly the new version's lines");
    assert!(got.iter().all(|(_, _, _, v)| v == "2"), "no line of the old version");
    assert_eq!(ids(&got).len(), got.len(), "no resource twice");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19 case 8: a cut last line and no count: the broken line is an invalid line, not a
// resource, and a warning says so
#[test]
fn a_cut_last_line_is_no_resource() {
    let srv = Server::start(|c| {
        c.patients = 20;
        c.job_ms = 0;
    });
    let dir = tmp("cutlast");
    let s = export(&srv.client("/_f/cutlast/bulk/fhir"), &["Patient"]).download(&dir, identity()).unwrap();
    let r = s.files[0].result.report.as_ref().expect("the file completes (no count to check)");
    let lines = std::fs::read_to_string(dir.join("Patient.000.ndjson")).unwrap().lines().count() as u64;
    assert_eq!((r.resources, r.invalid_lines), (lines - 1, 1), "{r:?}");
    assert_eq!(r.first_invalid_line, Some(lines));
    assert!(r.warnings.iter().any(|w| w.contains("not FHIR resources")), "{:?}", r.warnings);
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19 (reading): no user callback runs under the coordinator's lock: while the callback of
// one file's Finished event blocks, the other file still finishes (under the lock it never could)
#[test]
fn a_slow_finished_callback_does_not_stall_the_other_files() {
    let srv = Server::start(|c| {
        c.patients = 50;
        c.job_ms = 0;
    });
    let dir = tmp("callback");
    let mut job = export(&srv.client("/bulk/fhir"), &["Patient", "Observation"]);
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    let (tx, rx) = (std::sync::Mutex::new(tx), std::sync::Mutex::new(rx));
    let first = std::sync::Mutex::new(None::<usize>);
    let waited = std::sync::Mutex::new(None::<bool>);
    let s = job
        .download_events(&dir, DownloadOptions { max_per_origin: 2, ..identity() }, |e| {
            if let fhir_async_client::DownloadEvent::Finished { index, .. } = e {
                let mut f = first.lock().unwrap();
                if f.is_none() {
                    *f = Some(index);
                    drop(f);
                    // Hold this callback until another file finished (bounded: 20 s).
                    let other = rx.lock().unwrap().recv_timeout(std::time::Duration::from_secs(20));
                    *waited.lock().unwrap() = Some(other.is_ok());
                } else {
                    let _ = tx.lock().unwrap().send(index);
                }
            }
        })
        .unwrap();
    assert!(s.is_complete());
    assert_eq!(*waited.lock().unwrap(), Some(true), "the other file finished while the first callback ran");
    std::fs::remove_dir_all(&dir).ok();
}
