//! The `fhir-async` command end to end against the in-process reference server.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::Server;

const BIN: &str = env!("CARGO_BIN_EXE_fhir-async");

fn out(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fhir-async-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(BIN).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn log(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("log.ndjson")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).unwrap().lines().count()
}

/// Starts a slow `--json` export of two types, one file at a time, and once
/// `files` files finished and the next one started, signals it (`-INT` or
/// `-KILL`); returns its exit code and stderr once it ended.
fn interrupt_mid_download(srv: &Server, dir: &Path, files: usize, signal: &str) -> (Option<i32>, String) {
    let base = format!("{}/_f/slow=20000/bulk/fhir", srv.origin);
    let args = ["--json", "export", "--base", &base, "--type", "Patient,Observation", "--concurrency", "1", "--out"];
    let mut child =
        Command::new(BIN).args(args).arg(dir).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out_lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut finished = 0;
    for line in out_lines.by_ref() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["eventId"] == "download_complete" {
            finished += 1;
        }
        if finished >= files && v["eventId"] == "download_request" {
            Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
            break;
        }
        assert!(Instant::now() < deadline, "no download started in time");
    }
    // Keep reading until the process ends, so it never writes into a closed pipe.
    let drain = std::thread::spawn(move || out_lines.count());
    let status = child.wait().unwrap();
    drain.join().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

// issue 13: an export into a folder (the folder is the job); a re-run resumes without a kick-off
#[test]
fn export_then_rerun_resumes() {
    let srv = Server::start(|_| {});
    let dir = out("export");
    let base = format!("{}/bulk/fhir", srv.origin);
    let (code, stdout, stderr) =
        run(&["export", "--base", &base, "--type", "Patient,Condition", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Patient") && stdout.contains("total"), "the summary table: {stdout}");
    let files = names(&dir);
    assert!(
        files.contains(&"Patient.000.ndjson".to_owned()) && files.contains(&"fhir-async-job.json".to_owned()),
        "{files:?}"
    );
    assert_eq!(lines(&dir.join("Patient.000.ndjson")), 20);
    let events: Vec<String> = log(&dir).iter().map(|e| e["eventId"].as_str().unwrap().to_owned()).collect();
    for e in ["kickoff", "status_progress", "outcome", "status_complete", "download_request", "download_complete"] {
        assert!(events.contains(&e.to_owned()), "{e} in {events:?}");
    }
    let all = std::fs::read_to_string(dir.join("log.ndjson")).unwrap();
    assert!(!all.contains("Bearer"));
    let (code, _, stderr) = run(&["export", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("no second kick-off") && stderr.contains("not fetched again"), "{stderr}");
    assert_eq!(srv.kickoffs(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

// issue 13: Ctrl-C stops cleanly (no .tmp), keeps the state, prints how to resume or cancel;
// the same command resumes without a second kick-off and never fetches a finished file again
#[test]
fn ctrl_c_then_resume() {
    let srv = Server::start(|c| {
        c.patients = 60;
        c.file_resources = 20;
    });
    let dir = out("ctrlc");
    let (code, stderr) = interrupt_mid_download(&srv, &dir, 1, "-INT");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("fhir-async export --out") && stderr.contains("fhir-async cancel"), "{stderr}");
    let files = names(&dir);
    assert!(!files.iter().any(|f| f.ends_with(".tmp")), "no .tmp left: {files:?}");
    let done_before: Vec<String> = files.iter().filter(|f| f.ends_with(".ndjson")).cloned().collect();
    assert!(!done_before.is_empty());
    let (code, _, stderr) = run(&["export", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(srv.kickoffs(), 1, "no second kick-off");
    let total_files = names(&dir).iter().filter(|f| f.ends_with(".ndjson")).count();
    assert!(total_files > done_before.len());
    // The second run's log: no file finished in the first run was started again.
    let events = log(&dir);
    let resumed_at = events.iter().position(|e| e["eventId"] == "resumed").expect("resumed");
    for e in &events[resumed_at..] {
        if e["eventId"] == "download_request" {
            let f = e["eventDetail"]["_fileName"].as_str().unwrap().to_owned();
            assert!(!done_before.contains(&f), "{e} was complete already");
        }
    }
    // Every file holds exactly the resources its (one) completed download reported.
    for e in events.iter().filter(|e| e["eventId"] == "download_complete") {
        let f = e["eventDetail"]["_fileName"].as_str().unwrap();
        assert_eq!(
            lines(&dir.join(f)) as u64,
            e["eventDetail"]["resourceCount"].as_u64().unwrap(),
            "{f}: every line once"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

// issue 13: exit codes a script can act on
#[test]
fn exit_codes() {
    let srv = Server::start(|c| c.token = Some("right".into()));
    let b = |spec: &str| format!("{}{}/bulk/fhir", srv.origin, spec);
    let dir = out("codes");
    let d = |n: &str| dir.join(n).to_string_lossy().into_owned();
    assert_eq!(run(&["--help"]).0, 0);
    assert_eq!(run(&["export", "--nonsense"]).0, 2);
    assert_eq!(run(&["export", "--base", &b(""), "--token", "right", "--out", &d("ok")]).0, 0);
    let (code, _, stderr) = run(&["export", "--base", &b(""), "--token", "wrong", "--out", &d("auth")]);
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("fixed string") && !stderr.contains("wrong"), "{stderr}");
    assert_eq!(run(&["export", "--base", &b("/_f/fail"), "--token", "right", "--out", &d("fail")]).0, 1);
    let (code, stdout, _) = run(&[
        "export",
        "--base",
        &b("/_f/partial;errcount=100"),
        "--token",
        "right",
        "--type",
        "Patient,Condition",
        "--out",
        &d("partial"),
    ]);
    assert_eq!(code, 3, "{stdout}");
    // An error file is evidence: its lines are kept, its count mismatch is a warning (issue 19).
    assert!(stdout.contains("(error)") && stdout.contains("WARNING"), "the error file is listed: {stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 13: status and cancel on a folder or a URL; --format ndjson.gz; --since auto
#[test]
fn status_cancel_gzip_and_since_auto() {
    let srv = Server::start(|_| {});
    let dir = out("misc");
    let base = format!("{}/bulk/fhir", srv.origin);
    let never = format!("{}/_f/never/bulk/fhir", srv.origin);
    // A job that never ends, cancelled by folder after an interrupted start.
    let d1 = dir.join("never");
    let mut child = Command::new(BIN)
        .args(["export", "--base", &never, "--out", d1.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for_file(&d1.join("fhir-async-job.json"));
    common::interrupt(&child);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let (code, stdout, _) = run(&["--json", "status", d1.to_str().unwrap()]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    let url = v["statusUrl"].as_str().unwrap().to_owned();
    let (code, stdout, _) = run(&["--json", "status", &url]);
    assert_eq!(code, 0, "status by URL");
    assert!(stdout.contains("polling"));
    let (code, stdout, stderr) = run(&["cancel", d1.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("Cancelled: the server accepted the cancel"), "{stdout}");
    // gzip output
    let d2 = dir.join("gz");
    assert_eq!(
        run(&["export", "--base", &base, "--type", "Patient", "--format", "ndjson.gz", "--out", d2.to_str().unwrap()])
            .0,
        0
    );
    let gz = d2.join("Patient.000.ndjson.gz");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap()), &mut text)
        .unwrap();
    assert_eq!(text.lines().count(), 20);
    // --since auto: the next export asks for what changed since the last one; the previous moves aside
    assert_eq!(run(&["export", "--since", "auto", "--out", d2.to_str().unwrap()]).0, 0);
    let kicks: Vec<Value> = log(&d2).into_iter().filter(|e| e["eventId"] == "kickoff").collect();
    assert_eq!(kicks.len(), 2);
    assert!(kicks[0]["eventDetail"]["requestParameters"]["_since"].is_null());
    let since = &kicks[1]["eventDetail"]["requestParameters"]["_since"];
    assert!(since.as_str().is_some_and(|s| s.len() > 10), "{}", kicks[1]);
    assert!(d2.join("previous").is_dir());
    std::fs::remove_dir_all(&dir).ok();
}

// issue 12 in the CLI: SMART Backend Services from flags and from a config file, short-lived tokens
#[test]
fn backend_services_from_flags_and_file() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/server/tests/fixtures");
    let srv = Server::start(|c| {
        c.jwks = Some(fixtures.join("jwks.json"));
        c.token_ttl = 1;
        c.job_ms = 2_500;
    });
    let dir = out("smart");
    let base = format!("{}/bulk/fhir", srv.origin);
    let key = fixtures.join("es384-private.pem");
    let d1 = dir.join("flags");
    let (code, _, stderr) = run(&[
        "export",
        "--base",
        &base,
        "--type",
        "Patient",
        "--client-id",
        "client-1",
        "--key",
        key.to_str().unwrap(),
        "--kid",
        "test-es384",
        "--out",
        d1.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let config = dir.join("smart.json");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&config, serde_json::json!({"clientId": "client-1", "privateJWKorJWKS": fixtures.join("jwks-private.json"), "kid": "test-rs384", "scope": "system/*.rs"}).to_string()).unwrap();
    let d2 = dir.join("file");
    let (code, _, stderr) = run(&[
        "export",
        "--base",
        &base,
        "--type",
        "Patient",
        "--auth",
        config.to_str().unwrap(),
        "--out",
        d2.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        srv.stats()["tokens"]["issued"].as_u64().unwrap_or(0) >= 4,
        "short-lived tokens were renewed: {}",
        srv.stats()["tokens"]
    );
    for d in [&d1, &d2] {
        let text = std::fs::read_to_string(d.join("log.ndjson")).unwrap()
            + &std::fs::read_to_string(d.join("fhir-async.json")).unwrap();
        assert!(!text.contains("BEGIN") && !text.contains("\"d\""), "no key material in the folder");
    }
    // A wrong key: exit 5 with the server's words.
    let wrong = fixtures.join("other-es384-private.pem");
    let (code, _, stderr) = run(&[
        "export",
        "--base",
        &base,
        "--client-id",
        "client-1",
        "--key",
        wrong.to_str().unwrap(),
        "--kid",
        "test-es384",
        "--out",
        dir.join("wrong").to_str().unwrap(),
    ]);
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("invalid_client"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 13: a process killed with SIGKILL mid-download, run again: no second kick-off,
// no duplicate line, finished files untouched (mtime)
#[test]
fn sigkill_then_rerun() {
    let srv = Server::start(|c| {
        c.patients = 60;
        c.file_resources = 20;
    });
    let dir = out("sigkill");
    // SIGKILL: no cleanup at all.
    let (code, _) = interrupt_mid_download(&srv, &dir, 2, "-KILL");
    assert_eq!(code, None, "killed by a signal");
    let done: Vec<(String, std::time::SystemTime)> = names(&dir)
        .into_iter()
        .filter(|f| f.ends_with(".ndjson") && f != "log.ndjson")
        .map(|f| {
            let m = std::fs::metadata(dir.join(&f)).unwrap().modified().unwrap();
            (f, m)
        })
        .collect();
    assert!(done.len() >= 2, "{done:?}");
    let (code, _, stderr) = run(&["export", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(srv.kickoffs(), 1, "no second kick-off");
    for (f, m) in &done {
        assert_eq!(std::fs::metadata(dir.join(f)).unwrap().modified().unwrap(), *m, "{f} untouched");
    }
    let mut ids = std::collections::HashSet::new();
    for f in names(&dir).iter().filter(|f| f.ends_with(".ndjson") && *f != "log.ndjson") {
        for l in std::fs::read_to_string(dir.join(f)).unwrap().lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            assert!(ids.insert(format!("{}/{}", v["resourceType"], v["id"])), "a duplicate line in {f}");
        }
    }
    assert!(!names(&dir).iter().any(|f| f.ends_with(".tmp")), "the rerun cleans up");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 13: cancel from a second process while the first one waits
#[test]
fn cancel_from_a_second_process() {
    let srv = Server::start(|_| {});
    let dir = out("cancel2");
    let never = format!("{}/_f/never/bulk/fhir", srv.origin);
    let mut first = Command::new(BIN)
        .args(["export", "--base", &never, "--out", dir.to_str().unwrap()])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for_file(&dir.join("fhir-async-job.json"));
    let (code, stdout, stderr) = run(&["cancel", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // The first process takes the other process's cancel from the folder: cancelled (issue 19).
    let t = Instant::now();
    let status = loop {
        if let Some(s) = first.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "the first process did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(4), "{status:?}");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 13: `--help` of every subcommand, snapshot-tested (UPDATE_SNAPSHOTS=1 rewrites them)
#[test]
fn help_snapshots() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    for sub in ["", "export", "status", "cancel", "download", "kickoff", "parquet", "publish"] {
        let args: Vec<&str> = if sub.is_empty() { vec!["--help"] } else { vec![sub, "--help"] };
        let (code, stdout, _) = run(&args);
        assert_eq!(code, 0);
        let file = dir.join(format!("help{}{}.txt", if sub.is_empty() { "" } else { "-" }, sub));
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&file, &stdout).unwrap();
        }
        let expected =
            std::fs::read_to_string(&file).unwrap_or_else(|_| panic!("{} missing: UPDATE_SNAPSHOTS=1", file.display()));
        assert_eq!(stdout, expected, "{sub} --help changed (UPDATE_SNAPSHOTS=1 to accept)");
    }
}

// issue 13: every selection flag reaches the kick-off (read back from the folder's log and
// the server's request log): level/group, types, since/until, type filters, elements,
// patients (POST), timeout
#[test]
fn every_export_flag() {
    let srv = Server::start(|_| {});
    let dir = out("flags");
    let base = format!("{}/bulk/fhir", srv.origin);
    let (code, _, stderr) = run(&[
        "export",
        "--base",
        &base,
        "--level",
        "group",
        "--group",
        "7",
        "--type",
        "Patient,Condition",
        "--since",
        "2020-01-01T00:00:00Z",
        "--until",
        "2030-01-01T00:00:00Z",
        "--type-filter",
        "Condition?clinical-status=active",
        "--elements",
        "id,meta",
        "--patient",
        "Patient/Patient-1",
        "--patient",
        "Patient/Patient-2",
        "--post",
        "--timeout",
        "2m",
        "--concurrency",
        "2",
        "--count-check",
        "lenient",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    // The log's kick-off: its URL and parameters (never `patient`, protocol N4)...
    let kick = log(&dir).into_iter().find(|e| e["eventId"] == "kickoff").unwrap();
    let (url, p) = (&kick["eventDetail"]["exportUrl"], &kick["eventDetail"]["requestParameters"]);
    assert!(url.as_str().is_some_and(|u| u.ends_with("/Group/7/$export")), "{kick}");
    assert_eq!((p["_type"].as_str(), p["_elements"].as_str()), (Some("Patient,Condition"), Some("id,meta")), "{kick}");
    assert_eq!(p["_typeFilter"], "Condition?clinical-status=active", "{kick}");
    assert_eq!(
        (p["_since"].as_str(), p["_until"].as_str()),
        (Some("2020-01-01T00:00:00Z"), Some("2030-01-01T00:00:00Z"))
    );
    assert!(p.get("patient").is_none(), "{kick}");
    // ...and the request the folder saved.
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("fhir-async.json")).unwrap()).unwrap();
    let r = &saved["request"];
    assert_eq!(
        (r["level"].as_str(), r["groupId"].as_str(), r["post"].as_bool()),
        (Some("group"), Some("7"), Some(true))
    );
    assert_eq!(r["types"], serde_json::json!(["Patient", "Condition"]));
    assert_eq!(r["typeFilters"], serde_json::json!(["Condition?clinical-status=active"]));
    assert_eq!(r["elements"], serde_json::json!(["id", "meta"]));
    assert_eq!(r["patients"], serde_json::json!(["Patient/Patient-1", "Patient/Patient-2"]));
    assert_eq!(
        (r["since"].as_str(), r["until"].as_str()),
        (Some("2020-01-01T00:00:00Z"), Some("2030-01-01T00:00:00Z"))
    );
    let reqs = srv.stats()["requests"].clone();
    let k = reqs.as_array().unwrap().iter().find(|q| q["route"] == "bulk.kickoff").unwrap().clone();
    assert_eq!((k["method"].as_str(), k["path"].as_str()), (Some("POST"), Some("/bulk/fhir/Group/7/$export")), "{k}");
    let settings: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("fhir-async.json")).unwrap()).unwrap();
    assert_eq!((settings["countCheck"].as_str(), settings["concurrency"].as_u64()), (Some("lenient"), Some(2)));
    std::fs::remove_dir_all(&dir).ok();
}

/// Rows of a Parquet file, read with the parquet crate.
fn parquet_rows(path: &Path) -> usize {
    use fhir_async_client::tables::parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    reader.metadata().file_metadata().num_rows() as usize
}

// issue 15: `export --format parquet` keeps the NDJSON and writes `<Type>.parquet` per type into the
// job folder; a re-run downloads and converts nothing again; a missing table is written again alone;
// `fhir-async parquet FOLDER --out DIR` converts any folder of NDJSON files
#[test]
fn export_format_parquet_and_the_parquet_command() {
    let srv = Server::start(|_| {});
    let dir = out("parquet");
    let base = format!("{}/bulk/fhir", srv.origin);
    let args = ["export", "--base", &base, "--type", "Patient,Condition", "--format", "parquet", "--out"];
    let (code, _, stderr) = run(&[&args[..], &[dir.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{stderr}");
    let files = names(&dir);
    for f in ["Patient.parquet", "Condition.parquet"] {
        assert!(files.contains(&f.to_owned()), "{f} in {files:?}");
    }
    assert!(!files.iter().any(|f| f.ends_with(".tmp")), "{files:?}");
    // The NDJSON is kept: the table has its lines.
    let ndjson = |ty: &str| -> usize {
        files
            .iter()
            .filter(|f| f.starts_with(&format!("{ty}.")) && f.ends_with(".ndjson"))
            .map(|f| lines(&dir.join(f)))
            .sum()
    };
    for ty in ["Patient", "Condition"] {
        assert!(ndjson(ty) > 0, "{files:?}");
        assert_eq!(parquet_rows(&dir.join(format!("{ty}.parquet"))), ndjson(ty), "{ty}");
    }
    let converted = |dir: &Path| -> Vec<String> {
        let done = log(dir).into_iter().filter(|e| e["eventId"] == "parquet_complete");
        done.map(|e| e["eventDetail"]["type"].to_string()).collect()
    };
    assert_eq!(converted(&dir).len(), 2);
    let settings: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("fhir-async.json")).unwrap()).unwrap();
    assert_eq!(settings["format"], "parquet");

    // The same command again: no kick-off, no download, no conversion.
    let (kickoffs, downloads) = (srv.kickoffs(), srv.stats()["routes"]["bulk.file"].as_u64());
    let modified = std::fs::metadata(dir.join("Patient.parquet")).unwrap().modified().unwrap();
    let (code, _, stderr) = run(&[&args[..], &[dir.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!((srv.kickoffs(), srv.stats()["routes"]["bulk.file"].as_u64()), (kickoffs, downloads));
    assert!(stderr.contains("Patient.parquet already written"), "{stderr}");
    assert_eq!(std::fs::metadata(dir.join("Patient.parquet")).unwrap().modified().unwrap(), modified);
    assert_eq!(converted(&dir).len(), 2);

    // A table that went missing is written again, alone (the format is the folder's).
    std::fs::remove_file(dir.join("Condition.parquet")).unwrap();
    let (code, _, stderr) = run(&["export", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(converted(&dir).last().map(String::as_str), Some("\"Condition\""));
    assert_eq!(converted(&dir).len(), 3);

    // Any folder: the type is each file's first resourceType.
    let other = out("parquet-cmd");
    let (code, stdout, stderr) = run(&["--json", "parquet", dir.to_str().unwrap(), "--out", other.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(names(&other), ["Condition.parquet", "Patient.parquet"]);
    let events: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.iter().filter(|e| e["eventId"] == "parquet_complete").count(), 2, "{stdout}");
    assert_eq!(parquet_rows(&other.join("Patient.parquet")), ndjson("Patient"));
    let (code, _, stderr) = run(&["parquet", other.to_str().unwrap()]);
    assert_eq!(code, 1, "a folder without NDJSON: {stderr}");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&other).ok();
}
