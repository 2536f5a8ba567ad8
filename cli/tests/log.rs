//! Issue 23, the SMART log: `log.ndjson` in the SMART bulk-data log format (protocol N), end to
//! end against the reference server, and read by cumulus-etl's own reader
//! (`cumulus_etl/loaders/fhir/export_log.py`, from PyPI; see [`n1_cumulus_etl_reader_accepts_the_log`]).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{run_env, Server};

fn out(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fhir-async-cli-log-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(args: &[&str]) -> (i32, String, String) {
    run_env(args, &[])
}

fn log_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("log.ndjson")).unwrap()
}

fn read_log(dir: &Path) -> Vec<Value> {
    log_text(dir).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn events<'a>(log: &'a [Value], id: &str) -> Vec<&'a Value> {
    log.iter().filter(|e| e["eventId"] == id).collect()
}

fn one<'a>(log: &'a [Value], id: &str) -> &'a Value {
    let found = events(log, id);
    assert_eq!(found.len(), 1, "one {id} in {log:#?}");
    &found[0]["eventDetail"]
}

fn ids(log: &[Value]) -> Vec<&str> {
    log.iter().map(|e| e["eventId"].as_str().unwrap()).collect()
}

fn status_url(dir: &Path) -> String {
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("fhir-async-job.json")).unwrap()).unwrap();
    state["statusUrl"].as_str().unwrap().to_owned()
}

/// An export of `types` from `base` into `dir` that exits `code`: the folder's log.
fn export_exit(code: i32, base: &str, types: &str, dir: &Path, more: &[&str]) -> Vec<Value> {
    let mut args = vec!["export", "--base", base, "--type", types, "--out", dir.to_str().unwrap()];
    args.extend_from_slice(more);
    let (exit, stdout, stderr) = run(&args);
    assert_eq!(exit, code, "{stdout}{stderr}");
    read_log(dir)
}

/// An export that succeeds (exit 0): the folder's log.
fn export(base: &str, types: &str, dir: &Path, more: &[&str]) -> Vec<Value> {
    export_exit(0, base, types, dir, more)
}

/// The data files of the folder (not the log), with their sizes.
fn data_files(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
        .filter(|(n, _)| n.ends_with(".ndjson") && n != "log.ndjson")
        .collect();
    v.sort();
    v
}

// protocol N1: one JSON event per line, appended to `log.ndjson` in the export folder: a second
// run in the folder adds its lines after the first run's, which stay as they were.
#[test]
fn n1_one_event_per_line_appended_in_the_folder() {
    let srv = Server::start(|_| {});
    let dir = out("n1");
    export(&srv.base(""), "Patient", &dir, &[]);
    let first = log_text(&dir);
    assert!(
        first.ends_with('\n') && first.lines().all(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v.is_object()))
    );
    export(&srv.base(""), "Patient", &dir, &[]);
    let both = log_text(&dir);
    assert!(both.starts_with(&first) && both.len() > first.len(), "appended");
    let second: Vec<Value> = both[first.len()..].lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(second[0]["eventId"], "resumed", "{second:?}");
    std::fs::remove_dir_all(&dir).ok();
}

// protocol N2: every line has `exportId`, `timestamp`, `eventId`, `eventDetail` and nothing else
// but `_client`/`_clientVersion` on `kickoff` (smart-fetch, cumulus-etl); `timestamp` is the local
// time with its offset (here TZ says +05:30).
#[test]
fn n2_top_level_fields_and_a_local_timestamp() {
    let srv = Server::start(|_| {});
    let dir = out("n2");
    let args = ["export", "--base", &srv.base(""), "--type", "Patient", "--out", dir.to_str().unwrap()];
    let (code, stdout, stderr) = run_env(&args, &[("TZ", "<+0530>-05:30")]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for e in read_log(&dir) {
        let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let expected = if e["eventId"] == "kickoff" {
            vec!["_client", "_clientVersion", "eventDetail", "eventId", "exportId", "timestamp"]
        } else {
            vec!["eventDetail", "eventId", "exportId", "timestamp"]
        };
        assert_eq!(keys, expected, "{e}");
        assert!(e["eventDetail"].is_object(), "{e}");
        let t = e["timestamp"].as_str().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|_| panic!("{t}"));
        assert_eq!(parsed.offset().local_minus_utc(), 5 * 3600 + 30 * 60, "{t}");
        assert!(t.ends_with("+05:30"), "{t}");
    }
    let kickoff = &events(&read_log(&dir), "kickoff")[0].clone();
    assert_eq!(
        (kickoff["_client"].as_str(), kickoff["_clientVersion"].as_str()),
        (Some("fhir-async"), Some(env!("CARGO_PKG_VERSION")))
    );
    std::fs::remove_dir_all(&dir).ok();
}

// protocol N3: `exportId` is the status URL on every line of the export, the kick-off's included
// (cumulus-etl keys on the last kick-off's id); a kick-off the server never answered has a UUID.
#[test]
fn n3_export_id_is_the_status_url() {
    let srv = Server::start(|_| {});
    let dir = out("n3");
    let log = export(&srv.base(""), "Patient,Condition", &dir, &[]);
    let url = status_url(&dir);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(log.iter().all(|e| e["exportId"] == url.as_str()), "{log:#?}");
    // Nothing listens on a port just freed: the kick-off fails before any status URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = out("n3-dead");
    let base = format!("http://127.0.0.1:{port}/fhir");
    let log = export_exit(1, &base, "Patient", &dead, &["--timeout", "5"]);
    let kickoff = &events(&log, "kickoff")[0];
    let id = kickoff["exportId"].as_str().unwrap();
    let hex: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(hex, [8, 4, 4, 4, 12], "a UUID: {id}");
    assert_eq!(&id[14..15], "4", "version 4: {id}");
    assert!(kickoff["eventDetail"]["errorBody"].is_string(), "{kickoff}");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&dead).ok();
}

// protocol N4: `kickoff` with the fields bulk-data-client and smart-fetch write: `exportUrl`,
// `requestParameters` (never `patient`; a POST's from its body), the server software fields,
// `responseHeaders`; `errorCode`/`errorBody` null on success, the status and the server's words
// on a refusal.
#[test]
fn n4_kickoff_fields() {
    let srv = Server::start(|_| {});
    let dir = out("n4");
    let log = export(&srv.base(""), "Patient,Condition", &dir, &["--since", "2024-01-01T00:00:00Z"]);
    let k = one(&log, "kickoff");
    let keys = [
        "exportUrl",
        "errorCode",
        "errorBody",
        "softwareName",
        "softwareVersion",
        "softwareReleaseDate",
        "fhirVersion",
        "requestParameters",
        "responseHeaders",
    ];
    for key in keys {
        assert!(k.get(key).is_some(), "{key} in {k}");
    }
    // Besides those, only fields of our own (`_method`, `_requestHeaders`, `_requestBody`).
    assert_eq!(k.as_object().unwrap().keys().filter(|k| !k.starts_with('_')).count(), keys.len(), "{k}");
    assert_eq!(k["_method"], "GET", "{k}");
    assert!(k["_requestBody"].is_null() && k["_requestHeaders"]["Prefer"] == "respond-async", "{k}");
    assert!(k["_requestHeaders"].get("Authorization").is_none(), "{k}");
    let url = k["exportUrl"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/$export?", srv.base(""))), "{url}");
    assert_eq!(k["requestParameters"]["_type"], "Patient,Condition", "{k}");
    assert_eq!(k["requestParameters"]["_since"], "2024-01-01T00:00:00Z", "{k}");
    assert!(k["errorCode"].is_null() && k["errorBody"].is_null(), "{k}");

    // A POST kick-off with patients: its parameters are the body's, without `patient`.
    let post = out("n4-post");
    let log = export(&srv.base(""), "Patient", &post, &["--level", "patient", "--patient", "Patient/Patient-1"]);
    let k = one(&log, "kickoff");
    assert_eq!(k["requestParameters"]["_type"], "Patient", "{k}");
    assert!(k["requestParameters"].get("patient").is_none(), "{k}");
    assert!(!log_text(&post).contains("Patient/Patient-1"), "no patient anywhere in the log");

    // A refused kick-off: its status and the server's words.
    let refused = out("n4-refused");
    let log = export_exit(1, &srv.base(""), "Bogus", &refused, &[]);
    let k = one(&log, "kickoff");
    assert_eq!(k["errorCode"], 400, "{k}");
    assert!(k["errorBody"].as_str().is_some_and(|b| !b.is_empty()), "{k}");
    assert!(events(&log, "status_error").is_empty(), "the refusal is the kick-off's: {log:#?}");
    for d in [dir, post, refused] {
        std::fs::remove_dir_all(&d).ok();
    }
}

// protocol N4 (issue 23): the `kickoff` event logs the request the engine really sent: under
// `--ig-version auto` against a server declaring STU4 (`/stu4/fhir`), the POST with its Parameters
// body, not the STU3 GET a job built from the command line would send first.
#[test]
fn n4_kickoff_logs_the_request_sent_under_ig_version_auto() {
    let srv = Server::start(|_| {});
    let dir = out("n4-auto");
    let base = format!("{}/stu4/fhir", srv.origin);
    let log = export(&base, "Patient", &dir, &["--ig-version", "auto", "--since", "2024-01-01T00:00:00Z"]);
    let k = one(&log, "kickoff");
    assert_eq!(k["_method"], "POST", "{k}");
    assert_eq!(k["exportUrl"], format!("{base}/$export"), "no query: the parameters are in the body: {k}");
    assert_eq!(k["_requestBody"]["resourceType"], "Parameters", "{k}");
    let params = k["_requestBody"]["parameter"].as_array().unwrap();
    assert!(params.contains(&serde_json::json!({"name": "_type", "valueString": "Patient"})), "{k}");
    assert_eq!(k["requestParameters"]["_type"], "Patient", "{k}");
    assert_eq!(k["requestParameters"]["_since"], "2024-01-01T00:00:00Z", "{k}");
    assert_eq!(k["_requestHeaders"]["Content-Type"], "application/fhir+json", "{k}");
    std::fs::remove_dir_all(&dir).ok();
}

// protocol N5: each poll that says "not yet" is a `status_progress` with `body`, `xProgress`
// (the server's X-Progress) and `retryAfter`.
#[test]
fn n5_status_progress() {
    let srv = Server::start(|c| c.job_ms = 1500);
    let dir = out("n5");
    let log = export(&srv.base("/_f/retry=1"), "Patient", &dir, &[]);
    let progress = events(&log, "status_progress");
    assert!(!progress.is_empty(), "{log:#?}");
    for p in &progress {
        let d = &p["eventDetail"];
        assert!(d.get("body").is_some() && d.get("xProgress").is_some() && d.get("retryAfter").is_some(), "{d}");
    }
    assert!(
        progress.iter().any(|p| p["eventDetail"]["xProgress"].as_str().is_some_and(|x| x.contains('%'))),
        "{progress:?}"
    );
    assert!(progress.iter().any(|p| p["eventDetail"]["retryAfter"] == "1"), "{progress:?}");
    // They come between the kick-off and the completion.
    let order = ids(&log);
    let first = order.iter().position(|e| *e == "status_progress").unwrap();
    assert!(order.iter().position(|e| *e == "kickoff").unwrap() < first);
    assert!(first < order.iter().position(|e| *e == "status_complete").unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

// protocol N6: a job that fails is a `status_error` with `body`, `code` (the HTTP status),
// `message` and `responseHeaders`.
#[test]
fn n6_status_error() {
    let srv = Server::start(|_| {});
    let dir = out("n6");
    let log = export_exit(1, &srv.base("/_f/fail"), "Patient", &dir, &[]);
    let e = one(&log, "status_error");
    let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["body", "code", "message", "responseHeaders"], "{e}");
    assert_eq!(e["code"], 500, "{e}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    assert!(events(&log, "status_complete").is_empty() && events(&log, "export_complete").is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

// protocol N7: `status_complete`, `status_page_complete`, `manifest_complete`, in that order,
// with the manifest's transaction time and its counts of output, deleted and error files.
#[test]
fn n7_status_complete_page_and_manifest() {
    let srv = Server::start(|_| {});
    let dir = out("n7");
    // `partial`: the second type fails, with an error file.
    let log = export_exit(3, &srv.base("/_f/partial"), "Patient,Condition", &dir, &[]);
    let order: Vec<&str> = ids(&log)
        .into_iter()
        .filter(|e| matches!(*e, "status_complete" | "status_page_complete" | "manifest_complete"))
        .collect();
    assert_eq!(order, ["status_complete", "status_page_complete", "manifest_complete"]);
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("fhir-async-job.json")).unwrap()).unwrap();
    let t = one(&log, "status_complete")["transactionTime"].as_str().unwrap().to_owned();
    assert!(!t.is_empty() && state.to_string().contains(&t), "{t}");
    let page = one(&log, "status_page_complete");
    assert_eq!(
        (page["transactionTime"].as_str(), page["outputFileCount"].as_u64()),
        (Some(t.as_str()), Some(1)),
        "{page}"
    );
    assert_eq!((page["deletedFileCount"].as_u64(), page["errorFileCount"].as_u64()), (Some(0), Some(1)), "{page}");
    let m = one(&log, "manifest_complete");
    assert_eq!(
        [&m["totalOutputFileCount"], &m["totalDeletedFileCount"], &m["totalErrorFileCount"], &m["totalManifests"]],
        [1, 0, 1, 1],
        "{m}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

// protocol N7 [R]: a Bulk Data STU4 manifest's `outcome` files count as error files (the reference
// server's `/stu4/fhir` lists one informational outcome file) and are requested as `error` items.
#[test]
fn n7_stu4_outcome_files_count_as_error_files() {
    let srv = Server::start(|_| {});
    let dir = out("n7-stu4");
    let base = format!("{}/stu4/fhir", srv.origin);
    let (code, stdout, stderr) = run(&["export", "--base", &base, "--post", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let log = read_log(&dir);
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("fhir-async-job.json")).unwrap()).unwrap();
    // The manifest lists it under STU4's `outcome`, not `error`.
    assert!(state.to_string().contains("\"outcome\":[{"), "{state}");
    let m = one(&log, "manifest_complete");
    assert_eq!(m["totalErrorFileCount"], 1, "{m}");
    let errors: Vec<&Value> =
        events(&log, "download_request").into_iter().filter(|e| e["eventDetail"]["itemType"] == "error").collect();
    assert_eq!(errors.len(), 1, "{log:#?}");
    std::fs::remove_dir_all(&dir).ok();
}

// protocol N8: per file, `download_request` (`fileUrl`, `itemType`, `resourceType`) and
// `download_complete` (`fileUrl`, `resourceCount`, `fileSize`: the decoded bytes, those in the
// folder); a file that fails is a `download_error` (`fileUrl`, `body`, `code`, `message`,
// `responseHeaders`).
#[test]
fn n8_download_request_complete_and_error() {
    let srv = Server::start(|_| {});
    let dir = out("n8");
    let log = export(&srv.base(""), "Patient,Condition", &dir, &[]);
    let requests = events(&log, "download_request");
    let complete = events(&log, "download_complete");
    let files = data_files(&dir);
    assert_eq!((requests.len(), complete.len()), (files.len(), files.len()), "{log:#?}");
    for r in &requests {
        let d = &r["eventDetail"];
        assert_eq!(d["itemType"], "output", "{d}");
        assert!(matches!(d["resourceType"].as_str(), Some("Patient" | "Condition")), "{d}");
        assert!(d["fileUrl"].as_str().is_some_and(|u| u.starts_with("http://127.0.0.1:")), "{d}");
    }
    for c in &complete {
        let d = &c["eventDetail"];
        let name = d["_fileName"].as_str().unwrap();
        let (_, size) = files.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(d["fileSize"].as_u64(), Some(*size), "{d}");
        let lines = std::fs::read_to_string(dir.join(name)).unwrap().lines().count() as u64;
        assert_eq!(d["resourceCount"].as_u64(), Some(lines), "{d}");
        assert!(requests.iter().any(|r| r["eventDetail"]["fileUrl"] == d["fileUrl"]), "{d}");
    }
    assert_eq!(data_files(&dir).iter().filter(|(n, _)| n.starts_with("Patient")).count(), 1);

    let failing = out("n8-error");
    let log = export_exit(3, &srv.base("/_f/signedfail"), "Patient", &failing, &[]);
    let e = one(&log, "download_error");
    for key in ["fileUrl", "body", "code", "message", "responseHeaders"] {
        assert!(e.get(key).is_some(), "{key} in {e}");
    }
    assert_eq!(e["code"], 500, "{e}");
    assert!(e["message"].as_str().is_some_and(|m| m.contains("500")), "{e}");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&failing).ok();
}

// protocol N9: `export_complete` ends the download: `files`, `resources` and `bytes` are the
// sums of the `download_complete`s, `attachments` null (as smart-fetch), `duration` in ms.
#[test]
fn n9_export_complete() {
    let srv = Server::start(|_| {});
    let dir = out("n9");
    let log = export(&srv.base(""), "Patient,Condition,Encounter", &dir, &[]);
    assert_eq!(ids(&log).last(), Some(&"export_complete"), "{log:#?}");
    let c = one(&log, "export_complete");
    let complete = events(&log, "download_complete");
    let sum = |k: &str| complete.iter().map(|e| e["eventDetail"][k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(c["files"].as_u64(), Some(complete.len() as u64), "{c}");
    assert_eq!(
        (c["resources"].as_u64(), c["bytes"].as_u64()),
        (Some(sum("resourceCount")), Some(sum("fileSize"))),
        "{c}"
    );
    assert_eq!(c["bytes"].as_u64(), Some(data_files(&dir).iter().map(|(_, s)| s).sum()), "{c}");
    assert!(c["attachments"].is_null() && c["duration"].is_u64(), "{c}");
    std::fs::remove_dir_all(&dir).ok();
}

// protocol N10: a signed file URL is logged without its query string (the signature is a
// credential), and no token is in the log.
#[test]
fn n10_file_urls_without_query_and_no_token() {
    let srv = Server::start(|c| c.token = Some("log-secret-token".into()));
    let dir = out("n10");
    let log = export(&srv.base("/_f/signed"), "Patient", &dir, &["--token", "log-secret-token"]);
    let text = log_text(&dir);
    assert!(!text.contains("X-Amz-Signature") && !text.contains("AKIAFHIRASYNCTEST019"), "{text}");
    assert!(!text.contains("log-secret-token"), "no token in the log");
    let urls: Vec<&str> = log.iter().filter_map(|e| e["eventDetail"]["fileUrl"].as_str()).collect();
    assert!(!urls.is_empty());
    assert!(urls.iter().all(|u| u.ends_with("?…")), "{urls:?}");
    std::fs::remove_dir_all(&dir).ok();
}

// Our own events keep their own `eventId`s beside the SMART ones: an origin's limit of files at
// once (`concurrency_change`), a resumed job (`resumed`), Parquet tables (`parquet_complete`).
#[test]
fn n2_our_own_events_have_their_own_event_ids() {
    let srv = Server::start(|_| {});
    let dir = out("own");
    // throttled bodies keep each file in flight long enough for the others to start beside it, so
    // the server's limit of one is always met (a 429, then a lower limit)
    let log = export(
        &srv.base("/_f/conn=1;slow=20000"),
        "Patient,Condition,Encounter,Observation",
        &dir,
        &["--format", "parquet"],
    );
    assert!(events(&log, "concurrency_change").iter().any(|e| e["eventDetail"]["to"].is_u64()), "{log:#?}");
    assert_eq!(events(&log, "parquet_complete").len(), 4, "{log:#?}");
    let log = export(&srv.base("/_f/conn=1;slow=20000"), "Patient,Condition,Encounter,Observation", &dir, &[]);
    assert_eq!(events(&log, "resumed").len(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

// Our own events: a file cut mid-body and continued by byte range is a `range_resume` (how many
// resumes, how many restarts) before its `download_complete`.
#[test]
fn n8_range_resumes_have_an_event_of_their_own() {
    let srv = Server::start(|c| c.patients = 200);
    let dir = out("range");
    let log = export(&srv.base("/_f/cut=30000"), "Patient", &dir, &["--no-gzip"]);
    let resume = one(&log, "range_resume");
    assert!(resume["resumes"].as_u64() > Some(0), "{resume}");
    assert_eq!(resume["fileName"], "Patient.000.ndjson", "{resume}");
    let order = ids(&log);
    let at = order.iter().position(|e| *e == "range_resume").unwrap();
    assert_eq!(order[at + 1], "download_complete", "{order:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// cumulus-etl's log reader, from its wheel on PyPI (pinned), run by `python3` with the reader's
/// two imports installed into a virtualenv of their own; cached under the target directory.
/// Prints `{"group", "exportUrl", "exportDatetime"}` of the folder it reads, or fails with the
/// reader's error.
fn cumulus_etl_reader(folder: &Path) -> Result<Value, String> {
    const VERSION: &str = "4.3.6";
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cumulus-etl-{VERSION}"));
    let py = cache.join("venv/bin/python");
    let src = cache.join("src");
    if !cache.join("ready").is_file() {
        // Built aside, then renamed: two test processes never see a half-made one.
        let tmp = cache.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        let sh = |cmd: &mut Command| {
            let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
            assert!(
                o.status.success(),
                "{cmd:?}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        };
        sh(Command::new("python3").args(["-m", "venv"]).arg(tmp.join("venv")));
        let pip = |args: &[&str]| {
            let mut c = Command::new(tmp.join("venv/bin/python"));
            c.args(["-m", "pip", "--disable-pip-version-check", "-q"]).args(args);
            sh(&mut c);
        };
        // The reader imports `cumulus_fhir_support` and, through `cumulus_etl.common`, `rich`.
        pip(&["install", "cumulus-fhir-support>=1.12,<2", "rich"]);
        pip(&["download", "--no-deps", "-d", tmp.join("wheel").to_str().unwrap(), &format!("cumulus-etl=={VERSION}")]);
        let unzip =
            "import sys, zipfile, glob; zipfile.ZipFile(glob.glob(sys.argv[1] + '/*.whl')[0]).extractall(sys.argv[2])";
        sh(Command::new(tmp.join("venv/bin/python")).args(["-c", unzip]).arg(tmp.join("wheel")).arg(tmp.join("src")));
        std::fs::write(tmp.join("ready"), VERSION).unwrap();
        let _ = std::fs::remove_dir_all(&cache);
        // Another process may have made it first: theirs is as good.
        if std::fs::rename(&tmp, &cache).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        // A venv's interpreter path is its own: made in `tmp`, it still runs from `cache`.
    }
    // `export_log.py` alone, not `cumulus_etl.loaders` (whose `__init__` imports the whole ETL).
    let script = r#"
import importlib.util, json, sys
sys.path.insert(0, sys.argv[1])
spec = importlib.util.spec_from_file_location("export_log", sys.argv[1] + "/cumulus_etl/loaders/fhir/export_log.py")
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
import cumulus_fhir_support as cfs
p = m.BulkExportLogParser(cfs.FsPath(sys.argv[2]))
print(json.dumps({"group": p.group_name, "exportUrl": p.export_url, "exportDatetime": p.export_datetime.isoformat()}))
"#;
    let o = Command::new(&py).arg("-c").arg(script).arg(&src).arg(folder).output().unwrap();
    if o.status.success() {
        Ok(serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

// protocol N1 (issue 23's done-when): cumulus-etl's reader accepts the folder's log: it finds
// `log.ndjson`, keys on the last kick-off's `exportId`, reads the group from its `exportUrl` and
// the export's time from that export's `status_complete`. A re-run in the folder (a resume,
// with no kick-off) keeps it readable; a log with no `status_complete` is refused, so the reader
// does check.
#[test]
fn n1_cumulus_etl_reader_accepts_the_log() {
    let srv = Server::start(|_| {});
    let dir = out("cumulus");
    let log = export(&srv.base(""), "Patient,Condition", &dir, &["--level", "group", "--group", "cohort-7"]);
    let read = cumulus_etl_reader(&dir).unwrap();
    assert_eq!(read["group"], "cohort-7", "{read}");
    assert_eq!(read["exportUrl"], one(&log, "kickoff")["exportUrl"], "{read}");
    let t = one(&log, "status_complete")["transactionTime"].as_str().unwrap();
    let want = chrono::DateTime::parse_from_rfc3339(t).unwrap();
    let got = chrono::DateTime::parse_from_rfc3339(read["exportDatetime"].as_str().unwrap()).unwrap();
    assert_eq!(got, want, "{read}");
    export(&srv.base(""), "Patient,Condition", &dir, &["--level", "group", "--group", "cohort-7"]);
    assert_eq!(cumulus_etl_reader(&dir).unwrap()["group"], "cohort-7");

    // The reader is not a rubber stamp: a log whose export never completed is refused.
    let failed = out("cumulus-failed");
    export_exit(1, &srv.base("/_f/fail"), "Patient", &failed, &[]);
    let e = cumulus_etl_reader(&failed).unwrap_err();
    assert!(e.contains("No status_complete event"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&failed).ok();
}
