//! issue 10 §2 "The demo": Ctrl-C stops cleanly, saves the job (no token in
//! it) and prints how to resume or cancel; `--resume` finishes without a second
//! kick-off and keeps the files already complete; `--cancel` cancels on the server.
//! Needs target/release/fhir-async-testserver (`make server`).

mod common;

use common::{assert_user_agent, files, mtime, out_dir, stats, Demo, BOUND};
use fhir_async_examples::TestServer;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

const TOKEN: &str = "demo-secret-token";

// issue 10 §2: Ctrl-C while downloading, then --resume.
#[test]
fn ctrl_c_while_downloading_then_resume_without_a_second_kickoff() {
    let server = TestServer::start(&["--token", TOKEN, "--patients", "100", "--job-ms", "500"]).expect("server");
    let out = out_dir("resume");
    let base = format!("{}/_f/slow=40000/bulk/fhir", server.url);
    let o = out.to_str().expect("utf-8 path");
    let mut demo = Demo::start(&["--server", &base, "--token", TOKEN, "--out", o, "--concurrency", "2"]);
    demo.wait_line("Downloading");
    // Interrupt once at least one file is complete and others are not.
    let deadline = Instant::now() + BOUND;
    while files(&out, ".ndjson").is_empty() {
        assert!(Instant::now() < deadline, "no file completed within {BOUND:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    demo.interrupt();
    let (status, stdout) = demo.finish();
    assert_eq!(status.code(), Some(130), "{stdout}");
    assert!(stdout.contains(&format!("--resume --out {o}")), "{stdout}");
    assert!(stdout.contains(&format!("--cancel --out {o}")), "{stdout}");
    assert!(files(&out, ".tmp").is_empty(), "no partial file is left: {:?}", files(&out, ".tmp"));
    let state = std::fs::read_to_string(out.join("fhir-async-job.json")).expect("saved state");
    assert!(!state.contains(TOKEN), "the saved state holds no token");
    let kept: Vec<(PathBuf, SystemTime)> = files(&out, ".ndjson").into_iter().map(|p| (p.clone(), mtime(&p))).collect();
    assert!(kept.len() < 6, "the interrupt came before the last file: {kept:?}");

    let (status, stdout) = Demo::start(&["--resume", "--out", o, "--token", TOKEN]).finish();
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(&format!("{} files were already complete", kept.len())), "{stdout}");
    assert!(stdout.contains("Export completed:"), "{stdout}");
    // issue 10 §2: an absolute --out is printed as given, with no "./" glued in front.
    assert!(stdout.contains(&format!("files are in {o}/ ")), "{stdout}");
    assert_eq!(files(&out, ".ndjson").len(), 6);
    assert!(files(&out, ".tmp").is_empty());
    assert!(!out.join("fhir-async-job.json").exists(), "the state is removed once done");
    for (p, t) in &kept {
        assert_eq!(mtime(p), *t, "{} was not downloaded again", p.display());
    }
    let stats = stats(&server);
    assert_eq!(stats["jobs"].as_object().map(|j| j.len()), Some(1), "one kick-off in all: {}", stats["jobs"]);
    assert_user_agent(&stats);
    let _ = std::fs::remove_dir_all(&out);
}

// issue 10 §2: Ctrl-C while polling, then --cancel.
#[test]
fn ctrl_c_while_polling_then_cancel() {
    let server = TestServer::start(&["--patients", "10"]).expect("server");
    let out = out_dir("cancel");
    let o = out.to_str().expect("utf-8 path");
    let base = format!("{}/_f/ms=600000/bulk/fhir", server.url);
    let mut demo = Demo::start(&["--server", &base, "--out", o]);
    demo.wait_line("Kicked off; polling");
    demo.interrupt();
    let (status, stdout) = demo.finish();
    assert_eq!(status.code(), Some(130), "{stdout}");
    assert!(out.join("fhir-async-job.json").is_file(), "{stdout}");
    assert!(stdout.contains(&format!("--cancel --out {o}")), "{stdout}");

    let (status, stdout) = Demo::start(&["--cancel", "--out", o]).finish();
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("Cancelled"), "{stdout}");
    assert!(!out.join("fhir-async-job.json").exists());
    let stats = stats(&server);
    let jobs = stats["jobs"].as_object().expect("jobs");
    assert_eq!(jobs.len(), 1, "no second kick-off: {jobs:?}");
    let job = jobs.values().next().expect("job");
    assert_eq!(job["counts"]["kickoff"], 1, "{job}");
    let deletes = stats["requests"].as_array().expect("requests").iter().filter(|r| r["method"] == "DELETE").count();
    assert_eq!(deletes, 1, "the cancel is one DELETE of the status URL");
    assert_user_agent(&stats);
    let _ = std::fs::remove_dir_all(&out);
}
