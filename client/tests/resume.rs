//! Downloads that never start over and stay polite (issue 14) against the
//! reference server: cut bodies continued by range, a server that allows two
//! connections, a stopped download continued by the next process.

mod common;

use common::Server;
use fhir_async::{DownloadOptions, ExportRequest, OutcomeStatus};
use fhir_async_client::{ClientError, DownloadEvent, DownloadSummary, Stop};
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fhir-async-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn identity() -> DownloadOptions {
    // Ranges over identity bodies: the byte counts compare with the file sizes directly.
    DownloadOptions { gzip: false, ..DownloadOptions::default() }
}

fn download(srv: &Server, path: &str, dir: &Path, types: &[&str], opts: DownloadOptions) -> DownloadSummary {
    let client = srv.client(path);
    let mut job = client
        .export(ExportRequest { types: types.iter().map(|t| (*t).to_owned()).collect(), ..Default::default() })
        .unwrap();
    assert_eq!(job.wait().unwrap().status, OutcomeStatus::Completed);
    job.download(dir, opts).unwrap()
}

fn same_files(a: &Path, b: &Path, s: &DownloadSummary) {
    for f in &s.files {
        let name = &f.result.file.file_name;
        assert!(std::fs::read(a.join(name)).unwrap() == std::fs::read(b.join(name)).unwrap(), "{name} differs");
    }
}

// protocol K1, issue 14: a ~1 GB export whose bodies are cut every 100 MB is downloaded with
// bytes on the wire ≤ 1.05 × the file sizes, byte-identical to a clean download
#[test]
fn a_gigabyte_cut_every_100_mb() {
    let srv = Server::start(|c| {
        c.patients = 100_000;
        c.job_ms = 0;
    });
    let clean = tmp("clean");
    let cut = tmp("cut");
    let s = download(&srv, "/bulk/fhir", &clean, &[], identity());
    let sizes: u64 = s.files.iter().map(|f| f.result.report.as_ref().unwrap().bytes).sum();
    assert!(sizes > 900_000_000, "about 1 GB: {sizes}");
    let before = srv.stats()["file_bytes_sent"].as_u64().unwrap();
    let s2 = download(&srv, "/_f/cut=100000000/bulk/fhir", &cut, &[], identity());
    let sent = srv.stats()["file_bytes_sent"].as_u64().unwrap() - before;
    assert!(s2.is_complete());
    assert!(sent as f64 <= sizes as f64 * 1.05, "{sent} bytes on the wire for {sizes} of files");
    let resumes: u32 = s2.files.iter().map(|f| f.result.report.as_ref().unwrap().range_resumes).sum();
    assert!(resumes >= 6, "the cuts were continued by range: {resumes}");
    same_files(&clean, &cut, &s2);
    std::fs::remove_dir_all(&clean).ok();
    std::fs::remove_dir_all(&cut).ok();
}

// protocol K3, issue 14: a server that answers 429 above 2 connections: the limit settles at 2,
// no file fails, each change is reported
#[test]
fn two_connections_allowed() {
    let srv = Server::start(|c| {
        c.patients = 400;
        c.file_resources = 150;
    });
    let dir = tmp("conn");
    let client = srv.client("/_f/conn=2;slow=400000/bulk/fhir");
    let mut job = client.export(ExportRequest::default()).unwrap();
    job.wait().unwrap();
    let changes = std::sync::Mutex::new(Vec::new());
    let last = std::sync::Mutex::new(0u32);
    let s = job
        .download_events(&dir, DownloadOptions { max_per_origin: 6, ..identity() }, |e| match e {
            DownloadEvent::Limit { change } => changes.lock().unwrap().push((change.from, change.to)),
            DownloadEvent::Progress { totals, .. } => *last.lock().unwrap() = totals.origin_limits[0].limit,
            _ => {}
        })
        .unwrap();
    assert!(s.is_complete(), "no file fails: {:?}", fhir_async_client::failed_files(&s).collect::<Vec<_>>());
    let changes = changes.into_inner().unwrap();
    assert!(!changes.is_empty() && changes[0].0 == 6 && changes[0].1 < 6, "{changes:?}");
    assert_eq!(last.into_inner().unwrap(), 2, "{changes:?}");
    std::fs::remove_dir_all(&dir).ok();
}

// protocol K5, issue 14: a download stopped mid-file is continued by the next process from the
// saved job: finished files are not fetched again, the part-way file continues with a range
#[test]
fn a_stopped_download_continues_in_the_next_process() {
    let srv = Server::start(|c| c.patients = 3000);
    let clean = tmp("k5-clean");
    let s_clean = download(&srv, "/bulk/fhir", &clean, &["Observation", "Patient"], identity());
    let dir = tmp("k5");
    let stop = Stop::default();
    let client = fhir_async_client::Client::builder(&format!("{}/_f/slow=3000000/bulk/fhir", srv.origin))
        .retry(common::fast())
        .stop(stop.clone())
        .build()
        .unwrap();
    let mut job = client
        .export(ExportRequest { types: vec!["Observation".into(), "Patient".into()], ..Default::default() })
        .unwrap();
    job.wait().unwrap();
    let stopper = stop.clone();
    let r = job.download_events(&dir, DownloadOptions { max_per_origin: 1, ..identity() }, move |e| {
        // Stop once the first file is done and the second is part-way.
        if let DownloadEvent::Bytes { wire_bytes } = e {
            if wire_bytes > 1_200_000 {
                stopper.stop();
            }
        }
    });
    assert!(matches!(r, Err(ClientError::Stopped)), "{r:?}");
    let saved = job.to_json();
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().any(|n| n.ends_with(".part")) && !names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    // The next process.
    stop.reset();
    let before = srv.stats();
    let mut resumed = client.resume(&saved).unwrap();
    let s = resumed.download(&dir, DownloadOptions { max_per_origin: 1, ..identity() }).unwrap();
    assert!(s.is_complete());
    let after = srv.stats();
    let n = |v: &serde_json::Value, k: &str| v["files"][k].as_u64().unwrap_or(0);
    assert!(n(&after, "206") > n(&before, "206"), "the part-way file continued with a range: {}", after["files"]);
    let finished_before: Vec<&String> = names.iter().filter(|n| n.ends_with(".ndjson")).collect();
    for f in &s.files {
        assert!(!finished_before.contains(&&f.result.file.file_name), "{} was fetched again", f.result.file.file_name);
    }
    for f in &s_clean.files {
        let name = &f.result.file.file_name;
        assert!(std::fs::read(clean.join(name)).unwrap() == std::fs::read(dir.join(name)).unwrap(), "{name} differs");
    }
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&clean).ok();
}
