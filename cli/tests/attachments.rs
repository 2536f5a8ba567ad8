//! Issue 24 (protocol M): `fhir-async export` / `download` with `--attachments` against the
//! reference server's attachments dialect (`/attach/fhir`): each mode completes, every
//! attachment is fetched once with its hash checked, no token reaches the storage origin unless
//! it is allowed, a failing attachment is in `attachments.json`, the log and the summary with
//! the server's words and exit code 3, and a second run fetches nothing again.

mod common;

use common::{run_env, Server};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn out(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fhir-async-cli-attach-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// `fhir-async export` of the attachments dialect into `dir` with a token and `extra`.
fn export(srv: &Server, dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let base = format!("{}/attach/fhir", srv.origin);
    let mut args = vec!["export", "--base", &base, "--token", "attach-token", "--out", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_env(&args, &[])
}

fn listing(srv: &Server) -> Vec<Value> {
    let t =
        ureq::get(format!("{}/_admin/attachments", srv.origin)).call().unwrap().into_body().read_to_string().unwrap();
    serde_json::from_str::<Value>(&t).unwrap()["attachments"].as_array().unwrap().clone()
}

fn listed(list: &[Value], id: &str) -> Value {
    list.iter().find(|a| a["id"] == id).cloned().unwrap_or_else(|| panic!("{id} not listed"))
}

fn report(dir: &Path) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&std::fs::read(dir.join("attachments.json")).unwrap()).unwrap();
    v["attachments"].as_array().unwrap().clone()
}

fn reported(reports: &[Value], url: &str) -> Value {
    reports.iter().find(|r| r["url"] == url).cloned().unwrap_or_else(|| panic!("{url} not in {reports:?}"))
}

fn log(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("log.ndjson")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The folder's NDJSON files: each one's lines, checked equal to its `download_complete` count.
fn ndjson(dir: &Path) -> Vec<Value> {
    let log = log(dir);
    let mut all = Vec::new();
    for e in log.iter().filter(|e| e["eventId"] == "download_complete") {
        let name = e["eventDetail"]["_fileName"].as_str().unwrap();
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(Some(lines.len() as u64), e["eventDetail"]["resourceCount"].as_u64(), "{name}");
        all.extend(lines);
    }
    assert!(!all.is_empty());
    all
}

fn resource<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    lines.iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("{id} not in the files"))
}

const FETCHED: [&str; 6] = ["att-text", "att-pdf", "att-json", "att-slow", "att-notype", "att-report"];

fn counts(srv: &Server) -> Vec<u64> {
    FETCHED.iter().map(|id| srv.route(&format!("attach.binary.{id}"))).collect()
}

// protocol M (off): without --attachments the export completes and fetches no attachment
#[test]
fn m_off_export_fetches_no_attachment() {
    let srv = Server::start(|_| {});
    let dir = out("off");
    let (code, stdout, stderr) = export(&srv, &dir, &["--attachments", "off"]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(counts(&srv).iter().all(|&n| n == 0));
    assert!(!dir.join("attachments.json").exists());
    ndjson(&dir);
}

// protocol M8, M9, M4: files mode saves each attachment once (hash checked), the failing one is
// in attachments.json, the log and the summary with the server's words, exit code 3, the NDJSON
// files intact, the big one refused, and no token on the storage origin
#[test]
fn m9_failing_attachment_reported_with_exit_code_3() {
    let srv = Server::start(|_| {});
    let dir = out("files");
    let (code, stdout, stderr) = export(&srv, &dir, &["--attachments", "files"]);
    assert_eq!(code, 3, "stdout: {stdout}\nstderr: {stderr}");
    let list = listing(&srv);
    let reports = report(&dir);
    for id in FETCHED.iter().chain(&["att-storage"]) {
        let a = listed(&list, id);
        let r = reported(&reports, a["url"].as_str().unwrap());
        assert!(r.get("error").is_none(), "{id}: {r}");
        assert_eq!(r["sha1"], a["sha1"], "{id}");
        assert_eq!(r["size"], a["size"], "{id}");
        let bytes = std::fs::read(dir.join(r["fileName"].as_str().unwrap())).unwrap();
        assert_eq!(Some(bytes.len() as u64), a["size"].as_u64(), "{id}");
    }
    assert!(counts(&srv).iter().all(|&n| n == 1), "{:?}", counts(&srv));
    assert_eq!(srv.route("storage.attachment.att-storage"), 1);
    // M4: no token reached the storage origin
    assert_eq!(srv.stats()["storage_requests_with_authorization"], 0, "{}", srv.stats());
    let fail = reported(&reports, listed(&list, "att-fail")["url"].as_str().unwrap());
    let message = fail["error"]["message"].as_str().unwrap();
    assert!(message.contains("attachment store unavailable"), "{fail}");
    let big = reported(&reports, listed(&list, "att-big")["url"].as_str().unwrap());
    assert!(big["error"]["code"] == "too_large" || big["error"]["message"].as_str().unwrap().contains("size limit"));
    assert_eq!(srv.route("attach.binary.att-big"), 0);
    // the summary lists the counts and each failure with its message
    assert!(stdout.contains("attachments: 7 saved"), "{stdout}");
    assert!(stdout.contains("2 failed"), "{stdout}");
    assert!(stdout.contains("FAILED attachment") && stdout.contains("attachment store unavailable"), "{stdout}");
    // the log: each attachment under its own eventId
    let log = log(&dir);
    let of = |id: &str| log.iter().filter(|e| e["eventId"] == id).count();
    assert_eq!(of("attachment_download_complete"), 7);
    assert_eq!(of("attachment_download_error"), 2);
    let complete = log.iter().rev().find(|e| e["eventId"] == "export_complete").unwrap();
    assert_eq!(complete["eventDetail"]["attachments"], 7, "{complete}");
    // M9: the NDJSON files are whole, the failed attachment's resource unchanged
    let lines = ndjson(&dir);
    assert!(resource(&lines, "docref-fail")["content"][0]["attachment"].get("data").is_none());
    assert!(resource(&lines, "docref-text-1")["content"][0]["attachment"].get("data").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

// protocol M4: with --allowed-origin the storage origin receives the token
#[test]
fn m4_allowed_origin_receives_the_token() {
    let srv = Server::start(|_| {});
    let dir = out("allowed");
    let storage = listed(&listing(&srv), "att-storage")["url"].as_str().unwrap().to_owned();
    let origin = storage.split("/attachments/").next().unwrap().to_owned();
    let (code, stdout, stderr) = export(
        &srv,
        &dir,
        &["--attachments", "files", "--attachment-types", "text/plain", "--allowed-origin", &origin],
    );
    assert_eq!(code, 3, "stdout: {stdout}\nstderr: {stderr}"); // att-fail is text/plain
    assert_eq!(srv.stats()["routes_with_authorization"]["storage.attachment.att-storage"], 1, "{}", srv.stats());
    let _ = std::fs::remove_dir_all(&dir);
}

// protocol M7, M2: inline mode with --attachment-types (comma-separated and repeated) and
// --attachment-max-size completes (exit 0): the asked types' data, size and hash are in the
// NDJSON with url kept; other types are not fetched
#[test]
fn m7_inline_export_with_types_completes() {
    let srv = Server::start(|_| {});
    let dir = out("inline");
    let (code, stdout, stderr) = export(
        &srv,
        &dir,
        &[
            "--attachments",
            "inline",
            "--attachment-types",
            "text/html,image/png",
            "--attachment-types",
            "application/xml",
            "--attachment-max-size",
            "1000000",
        ],
    );
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let list = listing(&srv);
    let lines = ndjson(&dir);
    let a = &resource(&lines, "diagrep-json")["presentedForm"][0];
    let json = listed(&list, "att-json");
    assert_eq!(a["hash"], json["sha1"]);
    assert_eq!(a["size"], json["size"]);
    assert!(a["data"].is_string() && a["url"].is_string(), "{a}");
    assert_eq!(srv.route("attach.binary.att-json"), 1);
    assert_eq!(srv.route("attach.binary.att-text"), 0);
    assert!(resource(&lines, "docref-text-1")["content"][0]["attachment"].get("data").is_none());
    assert!(stdout.contains("attachments: 1 saved"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

// protocol K5 for attachments: the same command again resumes the folder and fetches no saved
// attachment again (proven by size and SHA-1); `download --attachments` on a folder exported
// without them fetches them
#[test]
fn k5_a_second_run_fetches_nothing_again() {
    let srv = Server::start(|_| {});
    let dir = out("resume");
    let (code, stdout, stderr) = export(&srv, &dir, &[]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(counts(&srv).iter().all(|&n| n == 0));
    let base = format!("{}/attach/fhir", srv.origin);
    let download = |extra: &[&str]| {
        let mut args = vec!["download", dir.to_str().unwrap(), "--base", &base, "--token", "attach-token"];
        args.extend_from_slice(extra);
        run_env(&args, &[])
    };
    // Not the always-failing one (its retries take half a minute): the big one fails (exit 3).
    let types = ["--attachments", "files", "--attachment-types", "application/pdf,text/html"];
    let (code, stdout, stderr) = download(&types);
    assert_eq!(code, 3, "stdout: {stdout}\nstderr: {stderr}");
    let first = counts(&srv);
    assert_eq!(first, [0, 1, 1, 0, 0, 0], "{FETCHED:?}");
    let saved = report(&dir);
    assert_eq!(saved.iter().filter(|r| r.get("error").is_none()).count(), 2, "{saved:?}");
    let (code, stdout, stderr) = download(&types);
    assert_eq!(code, 3, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(counts(&srv), first, "fetched again");
    let ok = |r: &[Value]| -> Vec<Value> {
        let mut v: Vec<Value> = r.iter().filter(|e| e.get("error").is_none()).cloned().collect();
        v.sort_by_key(|e| e["url"].to_string());
        v
    };
    assert_eq!(ok(&report(&dir)), ok(&saved));
    let _ = std::fs::remove_dir_all(&dir);
}

// protocol M7 with `--format ndjson.gz`: the files are compressed once the attachments are in
// their lines (the attachment pass reads and rewrites them before the compressor takes them)
#[test]
fn m7_inline_then_gzip() {
    use std::io::Read;
    let srv = Server::start(|_| {});
    let dir = out("gzip");
    let (code, stdout, stderr) =
        export(&srv, &dir, &["--attachments", "inline", "--attachment-types", "text/html", "--format", "ndjson.gz"]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let gz = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".ndjson.gz") && p.to_string_lossy().contains("DiagnosticReport"))
        .expect("DiagnosticReport compressed");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap()).read_to_string(&mut text).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let a = &resource(&lines, "diagrep-json")["presentedForm"][0];
    assert_eq!(a["hash"], listed(&listing(&srv), "att-json")["sha1"], "{a}");
    assert!(a["data"].is_string());
    let _ = std::fs::remove_dir_all(&dir);
}
