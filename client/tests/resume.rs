//! Downloads that never start over and stay polite (issue 14) against the
//! reference server: cut bodies continued by range, a server that allows two
//! connections, a stopped download continued by the next process, a killed
//! process continued by the next one.

mod common;

use common::Server;
use fhir_async::{DownloadOptions, ExportRequest, OutcomeStatus};
use fhir_async_client::{ClientError, DownloadEvent, DownloadSummary, Stop};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

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

/// The folder's progress journal (K5), which the killed process leaves behind.
const JOURNAL: &str = ".fhir-async-progress.jsonl";
/// Set for the child process of `a_killed_process_resumes_without_refetching`: base URL and folder.
const CHILD: &str = "FHIR_ASYNC_TEST_K5_CHILD";

// protocol K5, issue 14: the process `a_killed_process_resumes_without_refetching` kills (it runs
// this test binary with `--exact` and CHILD set); on its own it does nothing. It exports, saves the
// job before downloading (as a user would), then downloads one file at a time.
#[test]
fn k5_child_downloads_until_killed() {
    let Ok(spec) = std::env::var(CHILD) else { return };
    let (base, dir) = spec.split_once('\n').unwrap();
    let dir = Path::new(dir);
    let client = fhir_async_client::Client::builder(base).retry(common::fast()).build().unwrap();
    let mut job = client
        .export(ExportRequest { types: vec!["Patient".into(), "Observation".into()], ..Default::default() })
        .unwrap();
    job.wait().unwrap();
    std::fs::write(dir.join("state.json"), job.to_json()).unwrap();
    let _ = job.download(dir.join("out"), DownloadOptions { max_per_origin: 1, ..identity() });
}

/// Whether `out` holds a finished file, and its journal a checkpoint of another file.
fn one_done_one_part_way(out: &Path) -> bool {
    let done: Vec<String> = std::fs::read_dir(out)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(".ndjson")).collect())
        .unwrap_or_default();
    let journal = std::fs::read_to_string(out.join(JOURNAL)).unwrap_or_default();
    !done.is_empty()
        && journal.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).any(|v| {
            v["record"]["checkpoint"].is_object() && !done.iter().any(|d| v["record"]["fileName"] == d.as_str())
        })
}

fn mtimes(dir: &Path) -> Vec<(String, SystemTime)> {
    let mut v: Vec<(String, SystemTime)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".ndjson"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().modified().unwrap()))
        .collect();
    v.sort();
    v
}

// protocol K5, issue 14: a process killed (SIGKILL: no stop, no saved progress) once one file is
// done and another part-way; the next process resumes the job saved before the download: the
// finished file is not requested again (request log, mtime), the part-way one continues with a
// 206 from the folder's journal, and the files are byte-identical to a clean download
#[test]
fn a_killed_process_resumes_without_refetching() {
    let srv = Server::start(|c| c.patients = 750);
    let clean = tmp("k5-kill-clean");
    let s_clean = download(&srv, "/bulk/fhir", &clean, &["Patient", "Observation"], identity());
    assert_eq!(s_clean.files.len(), 2);
    let dir = tmp("k5-kill");
    let out = dir.join("out");
    std::fs::create_dir_all(&dir).unwrap();
    // 0.74 MB of Patient, then 2.6 MB of Observation at 1 MB/s: the Observation file's first
    // checkpoint (journaled after a second of streaming) comes well before it ends.
    let base = format!("{}/_f/slow=1000000/bulk/fhir", srv.origin);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "k5_child_downloads_until_killed", "--nocapture", "--test-threads=1"])
        .env(CHILD, format!("{base}\n{}", dir.display()))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !one_done_one_part_way(&out) {
        assert!(child.try_wait().unwrap().is_none(), "the child ended before it was killed");
        assert!(Instant::now() < deadline, "no finished file and part-way file in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done = mtimes(&out);
    assert_eq!(done.len(), 1, "{done:?}");
    // The next process: the job as saved before the download, nothing else.
    let saved = std::fs::read_to_string(dir.join("state.json")).unwrap();
    let before = srv.stats();
    let mut resumed = srv.client("/bulk/fhir").resume(&saved).unwrap();
    let s = resumed.download(&out, DownloadOptions { max_per_origin: 1, ..identity() }).unwrap();
    assert!(s.is_complete(), "{:?}", fhir_async_client::failed_files(&s).collect::<Vec<_>>());
    let after = srv.stats();
    let files: Vec<&serde_json::Value> = after["requests"].as_array().unwrap()
        [before["requests"].as_array().unwrap().len()..]
        .iter()
        .filter(|r| r["route"].as_str().is_some_and(|r| r.ends_with(".file")))
        .collect();
    assert_eq!(files.len(), 1, "only the part-way file is requested: {files:?}");
    assert_eq!(files[0]["status"], 206, "it continues with a range: {files:?}");
    let plan = resumed.job().download_plan();
    let done_url = &plan.iter().find(|f| f.file_name == done[0].0).unwrap().url;
    assert!(!done_url.ends_with(files[0]["path"].as_str().unwrap()), "{} fetched again: {files:?}", done[0].0);
    assert!(s.files.iter().all(|f| f.result.file.file_name != done[0].0), "{} downloaded again", done[0].0);
    assert_eq!(mtimes(&out).into_iter().find(|(n, _)| *n == done[0].0), Some(done[0].clone()), "not rewritten");
    same_files(&clean, &out, &s_clean);
    let left: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert_eq!(left.len(), 2, "only the files: no journal, .tmp or .part left: {left:?}");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&clean).ok();
}
