//! Issue 19, "the CLI keeps its folder honest", end to end against the reference server: the
//! folder lock, done files by the job's records, a selection that differs, the folder's saved
//! options, credentials that follow the command line (not the folder), invalid lines, a cancel
//! from another process, gzip failures, and a re-run after a failed manifest refresh.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{run_env, Server};

const BIN: &str = env!("CARGO_BIN_EXE_fhir-async");

/// Requests the server received carrying an `Authorization` header that contains `text`.
fn authorized_with(srv: &Server, text: &str) -> usize {
    let stats = srv.stats();
    stats["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["headers"]["authorization"].as_str().is_some_and(|a| a.contains(text)))
        .count()
}

fn out(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fhir-async-cli-folder-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (i32, String, String) {
    run_env(args, &[])
}

fn log(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("log.ndjson")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn state(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("fhir-async-job.json")).unwrap()).unwrap()
}

/// A `--json` process started with `args`, once it printed the event `event` (bounded: 60 s);
/// its stdout is drained from then on so it never blocks on a full pipe.
fn spawn_until(args: &[&str], event: &str) -> Child {
    let mut child = Command::new(BIN)
        .arg("--json")
        .args(args)
        .env_remove("FHIR_ASYNC_TOKEN")
        .env_remove("FHIR_ASYNC_CLIENT_SECRET")
        .env_remove("FHIR_ASYNC_BASE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = lines.next().expect("the process ended before the event").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["eventId"] == event {
            break;
        }
        assert!(Instant::now() < deadline, "no {event} event in time");
    }
    std::thread::spawn(move || lines.count());
    child
}

/// Waits (bounded) for the process to end; its exit code and stderr.
fn ended(mut child: Child, within: Duration) -> (Option<i32>, String) {
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > within {
            let _ = child.kill();
            panic!("the process did not end within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

/// The summary table's row for `label`: (files, resources, invalid).
fn row(stdout: &str, label: &str) -> (u64, u64, u64) {
    let line =
        stdout.lines().find(|l| l.split_whitespace().next() == Some(label)).unwrap_or_else(|| panic!("{stdout}"));
    let f: Vec<u64> = line.split_whitespace().skip(1).take(3).map(|n| n.parse().unwrap()).collect();
    (f[0], f[1], f[2])
}

// issue 19: a second process working in the same job folder (export, download) exits 2 and
// names the holder's pid; status runs beside it; the OS lock goes with the process, even killed
#[test]
fn a_second_process_in_the_folder_exits_2_naming_the_holders_pid() {
    let srv = Server::start(|_| {});
    let dir = out("lock");
    let d = dir.to_str().unwrap();
    let never = srv.base("/_f/never");
    let first = spawn_until(&["export", "--base", &never, "--out", d], "kickoff");
    let pid = first.id();
    for args in [vec!["export", "--out", d], vec!["export", "--base", &never, "--out", d], vec!["download", d]] {
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("pid {pid}")) && stderr.contains("in use"), "{stderr}");
    }
    let (code, stdout, stderr) = run(&["--json", "status", d]);
    assert_eq!(code, 0, "status runs beside the holder: {stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["workingPid"].as_u64(), Some(u64::from(pid)), "{v}");
    Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    let (code, _) = ended(first, Duration::from_secs(30));
    assert_eq!(code, None, "killed");
    // Killed: the lock went with it. The next run works in the folder (and ends at its own deadline).
    let (code, _, stderr) = run(&["export", "--out", d, "--timeout", "1s"]);
    assert!(code != 2 && !stderr.contains("in use"), "{code}: {stderr}");
    assert!(stderr.contains("resuming the job"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19: a file counts as done only when the job's records say so: a file of the same name
// from another export is fetched again, not trusted; a re-run leaves out the recorded ones
#[test]
fn a_file_of_the_same_name_from_another_export_is_fetched_again() {
    let srv = Server::start(|_| {});
    let dir = out("samename");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Patient.000.ndjson"), "{\"resourceType\":\"Patient\",\"id\":\"from-another-export\"}\n")
        .unwrap();
    let base = srv.base("");
    let d = dir.to_str().unwrap();
    let (code, _, stderr) = run(&["export", "--base", &base, "--type", "Patient", "--out", d]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("not fetched again"), "{stderr}");
    let text = std::fs::read_to_string(dir.join("Patient.000.ndjson")).unwrap();
    assert!(!text.contains("from-another-export"), "the other export's file was replaced");
    assert_eq!(text.lines().count(), 20);
    let files = srv.route("bulk.file");
    let (code, _, stderr) = run(&["export", "--base", &base, "--out", d]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("the job's records") && stderr.contains("not fetched again"), "{stderr}");
    assert_eq!(srv.route("bulk.file"), files, "nothing fetched again");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19: `export --out DIR` with another selection than the folder's refuses (exit 2) and says
// how to start it (another folder, or --new); the same selection resumes; --new moves the old aside
#[test]
fn another_selection_in_a_job_folder_is_refused_with_exit_2() {
    let srv = Server::start(|_| {});
    let dir = out("selection");
    let base = srv.base("");
    let d = dir.to_str().unwrap();
    assert_eq!(run(&["export", "--base", &base, "--type", "Patient", "--out", d]).0, 0);
    for other in [
        vec!["--type", "Observation"],
        vec!["--type", "Patient", "--since", "2020-01-01T00:00:00Z"],
        vec!["--type", "Patient", "--elements", "id"],
    ] {
        let args = [&["export", "--base", &base, "--out", d][..], &other[..]].concat();
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 2, "{other:?}: {stderr}");
        assert!(stderr.contains("--new") && stderr.contains("--out OTHER"), "{stderr}");
    }
    assert_eq!(srv.route("bulk.kickoff"), 1, "no kick-off for a refused selection");
    let (code, _, stderr) = run(&["export", "--base", &base, "--type", "Patient", "--out", d]);
    assert_eq!(code, 0, "the same selection resumes: {stderr}");
    assert_eq!(srv.route("bulk.kickoff"), 1);
    let (code, _, stderr) = run(&["export", "--base", &base, "--type", "Observation", "--new", "--out", d]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(srv.route("bulk.kickoff"), 2);
    let files = names(&dir);
    assert!(files.contains(&"Observation.000.ndjson".to_owned()) && !files.contains(&"Patient.000.ndjson".to_owned()));
    assert!(dir.join("previous").is_dir(), "{files:?}");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19: `download <folder>` uses the options the folder saved (here --format ndjson.gz), not defaults
#[test]
fn download_of_a_folder_uses_its_saved_options() {
    let srv = Server::start(|_| {});
    let dir = out("saved");
    let base = srv.base("");
    let d = dir.to_str().unwrap();
    let (code, _, stderr) = run(&["export", "--base", &base, "--type", "Patient", "--format", "ndjson.gz", "--out", d]);
    assert_eq!(code, 0, "{stderr}");
    std::fs::remove_file(dir.join("Patient.000.ndjson.gz")).unwrap();
    let (code, _, stderr) = run(&["download", d]);
    assert_eq!(code, 0, "{stderr}");
    let files = names(&dir);
    assert!(
        files.contains(&"Patient.000.ndjson.gz".to_owned()) && !files.contains(&"Patient.000.ndjson".to_owned()),
        "{files:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19: `download URL --out DIR` again: the folder's job and records, nothing fetched again
// (and the folder keeps the options for the next download)
#[test]
fn download_of_a_status_url_again_into_its_folder_fetches_nothing_again() {
    let srv = Server::start(|_| {});
    let dir = out("download-url");
    let base = srv.base("");
    let (job, files) = (dir.join("job"), dir.join("files"));
    let args = ["export", "--base", &base, "--type", "Patient", "--out", job.to_str().unwrap()];
    assert_eq!(run(&args).0, 0);
    let url = state(&job)["statusUrl"].as_str().unwrap().to_owned();
    let get = ["download", &url, "--format", "ndjson.gz", "--out", files.to_str().unwrap()];
    let (code, _, stderr) = run(&get);
    assert_eq!(code, 0, "{stderr}");
    assert!(files.join("Patient.000.ndjson.gz").is_file(), "{:?}", names(&files));
    let fetched = srv.route("bulk.file");
    let (code, _, stderr) = run(&["download", &url, "--out", files.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("not fetched again"), "{stderr}");
    assert_eq!(srv.route("bulk.file"), fetched, "nothing fetched again");
    assert!(!files.join("Patient.000.ndjson").exists(), "the folder's format: {:?}", names(&files));
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19: credentials follow the command line, not the folder: FHIR_ASYNC_TOKEN or a client
// secret goes to a job folder's server only once --base confirms it; without, none is sent (the
// server's request log shows no Authorization, no token request) and stderr says why
#[test]
fn credentials_go_only_to_a_base_given_on_the_command_line() {
    let srv = Server::start(|_| {});
    let dir = out("creds");
    let d = dir.to_str().unwrap();
    let never = srv.base("/_f/never");
    // Someone else's folder: a job that polls, stopped cleanly.
    let first = spawn_until(&["export", "--base", &never, "--out", d], "kickoff");
    common::interrupt(&first);
    assert_eq!(ended(first, Duration::from_secs(30)).0, Some(130));
    let polls = srv.route("bulk.status");

    let token = [("FHIR_ASYNC_TOKEN", "mine-123")];
    let (code, _, stderr) = run_env(&["status", d], &token);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("no credential is sent") && stderr.contains("--base"), "{stderr}");
    assert!(srv.route("bulk.status") > polls, "the status was asked");
    let (code, _, stderr) = run_env(&["status", d, "--token", "mine-123"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let secret = [("FHIR_ASYNC_CLIENT_SECRET", "s3cret-456")];
    let (code, _, stderr) = run_env(&["status", d, "--client-id", "client-s"], &secret);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("no credential is sent"), "{stderr}");
    assert_eq!(authorized_with(&srv, ""), 0, "no Authorization reached the folder's server");
    assert_eq!(srv.route("auth.token"), 0, "no token request with the secret");

    // Another --base than the folder's: a usage error, nothing sent.
    let (code, _, stderr) = run_env(&["status", d, "--base", &srv.base("")], &token);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&never), "{stderr}");
    // Confirmed with --base, a token URL the folder saved on another origin is still not used:
    // the secret goes to the token endpoint the base's server names.
    let path = dir.join("fhir-async.json");
    let mut settings: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    settings["auth"] =
        serde_json::json!({"kind": "clientSecret", "clientId": "client-s", "tokenUrl": "http://127.0.0.1:9/token"});
    std::fs::write(&path, settings.to_string()).unwrap();
    let (_, _, stderr) = run_env(&["status", d, "--base", &never], &secret);
    assert!(stderr.contains("token URL saved in") && stderr.contains("not used"), "{stderr}");
    assert!(srv.route("auth.token") >= 1, "the base's own token endpoint: {stderr}");
    // Confirmed with --base: the token goes.
    let (code, _, stderr) = run_env(&["status", d, "--base", &never], &token);
    assert_eq!(code, 0, "{stderr}");
    let sent = authorized_with(&srv, "mine-123");
    assert!(sent >= 1, "the confirmed base gets the token");
    // A cancel without --base sends none either.
    let (code, stdout, stderr) = run_env(&["cancel", d], &token);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(authorized_with(&srv, "mine-123"), sent, "the cancel carried no token");
    let all = std::fs::read_to_string(dir.join("log.ndjson")).unwrap();
    assert!(!all.contains("mine-123") && !all.contains("s3cret"), "no credential in the log");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19 §7: lines that are not JSON objects (`hello`, `{not json}`) are not resources: with a
// lenient count check the summary counts them as invalid, and the exit code is 3; with the
// strict one the file fails its count (3 in the manifest, 1 resource), exit 3 too
#[test]
fn lines_that_are_not_json_objects_show_in_the_summary_and_exit_3() {
    let srv = Server::start(|_| {});
    let dir = out("junk");
    let base = srv.base("/_f/junklines");
    let d = dir.join("lenient");
    let args =
        ["export", "--base", &base, "--type", "Patient", "--count-check", "lenient", "--out", d.to_str().unwrap()];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 3, "{stdout}{stderr}");
    let (files, resources, invalid) = row(&stdout, "Patient");
    assert!(files >= 1);
    assert_eq!((resources, invalid), (files, 2 * files), "{stdout}");
    assert!(stdout.contains("not JSON objects") && stdout.contains("WARNING Patient.000.ndjson"), "{stdout}");
    let finished = log(&d).into_iter().find(|e| e["eventId"] == "download_complete").unwrap();
    let finished = &finished["eventDetail"];
    assert_eq!((finished["resourceCount"].as_u64(), finished["_invalidLines"].as_u64()), (Some(1), Some(2)));
    let d = dir.join("strict");
    let (code, stdout, stderr) = run(&["export", "--base", &base, "--type", "Patient", "--out", d.to_str().unwrap()]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stdout.contains("FAILED Patient.000.ndjson") && stdout.contains("count"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19 §8: a cut last line and no manifest count: the summary does not count the broken line
// as a resource, the console shows the warning, and the exit code is 3
#[test]
fn a_cut_last_line_without_a_count_is_no_resource_and_the_console_warns() {
    let srv = Server::start(|_| {});
    let dir = out("cutlast");
    let base = srv.base("/_f/cutlast");
    let (code, stdout, stderr) = run(&["export", "--base", &base, "--type", "Patient", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert_eq!(row(&stdout, "Patient"), (1, 19, 1), "{stdout}");
    assert!(stdout.contains("WARNING Patient.000.ndjson") && stdout.contains("line 20"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A cancel from another process while an export waits: `cancel DIR` exits 0; the export ends
/// as cancelled (exit 4) and the folder's state stays cancelled; `status DIR` says so.
fn cancel_beside_a_running_export(base: &str, dir: &Path) {
    let d = dir.to_str().unwrap();
    let first = spawn_until(&["export", "--base", base, "--out", d], "kickoff");
    let (code, stdout, stderr) = run(&["cancel", d]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("Cancelled") && stdout.contains(&format!("pid {}", first.id())), "{stdout}");
    let (code, stderr) = ended(first, Duration::from_secs(60));
    assert_eq!(code, Some(4), "the running export ends as cancelled: {stderr}");
    assert!(stderr.contains("cancelled"), "{stderr}");
    assert_eq!(state(dir)["state"]["outcome"]["status"], "cancelled", "{}", state(dir));
    let (code, stdout, stderr) = run(&["status", d]);
    assert_eq!(code, 4, "{stdout}{stderr}");
    assert!(stdout.contains("outcome: Cancelled") && !stdout.contains("Not found"), "{stdout}");
    assert!(!dir.join("fhir-async-cancelled.json").exists() && !dir.join(".fhir-async-cancel-asked").exists());
}

// issue 19 §9: on Medplum (the status URL answers 404 after a cancel) a cancel from a second
// terminal ends the running export as cancelled (exit 4), not failed ("Not found")
#[test]
fn a_cancel_from_another_process_ends_the_medplum_export_as_cancelled() {
    let srv = Server::start(|c| c.job_ms = 600_000);
    let dir = out("cancel-medplum");
    cancel_beside_a_running_export(&format!("{}/medplum/fhir/R4", srv.origin), &dir);
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19: the same on a Bulk Data server (DELETE on the status URL)
#[test]
fn a_cancel_from_another_process_ends_the_bulk_export_as_cancelled() {
    let srv = Server::start(|_| {});
    let dir = out("cancel-bulk");
    cancel_beside_a_running_export(&srv.base("/_f/never"), &dir);
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19: a file that cannot be compressed (--format ndjson.gz) is a reported failure of that
// file (summary, `file.failed` code gzip, exit 3), kept uncompressed; a re-run compresses it
// without fetching it again
#[test]
fn a_gzip_error_fails_that_file_with_exit_3_and_a_rerun_compresses_it() {
    let srv = Server::start(|_| {});
    let dir = out("gzfail");
    std::fs::create_dir_all(dir.join("Patient.000.ndjson.gz.tmp")).unwrap(); // in the way
    let base = srv.base("");
    let d = dir.to_str().unwrap();
    let args = ["export", "--base", &base, "--type", "Patient,Condition", "--format", "ndjson.gz", "--out", d];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stdout.contains("FAILED Patient.000.ndjson: gzip"), "{stdout}");
    let failed = log(&dir).into_iter().find(|e| e["eventId"] == "download_error").unwrap();
    let failed = &failed["eventDetail"];
    assert_eq!((failed["_fileName"].as_str(), failed["_code"].as_str()), (Some("Patient.000.ndjson"), Some("gzip")));
    let files = names(&dir);
    assert!(
        files.contains(&"Patient.000.ndjson".to_owned())
            && files.iter().any(|f| f.starts_with("Condition.") && f.ends_with(".ndjson.gz")),
        "{files:?}"
    );
    std::fs::remove_dir(dir.join("Patient.000.ndjson.gz.tmp")).unwrap();
    let fetched = srv.route("bulk.file");
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(srv.route("bulk.file"), fetched, "nothing fetched again");
    let files = names(&dir);
    assert!(files.contains(&"Patient.000.ndjson.gz".to_owned()) && !files.contains(&"Patient.000.ndjson".to_owned()));
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19 §3, protocol K8: a manifest refresh that fails (500 past this run's --timeout) costs
// the files that needed it, not the finished job; the same command again continues the download
// without a new kick-off once the server answers
#[test]
fn a_rerun_after_a_failed_manifest_refresh_continues_without_a_kickoff() {
    let srv = Server::start(|_| {});
    let dir = out("refresh500");
    let base = srv.base("/_f/expire;refresh500=2");
    let args = ["export", "--base", &base, "--type", "Patient", "--timeout", "3s", "--out", dir.to_str().unwrap()];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 3, "the file failed, the job did not: {stdout}{stderr}");
    assert_eq!(state(&dir)["state"]["outcome"]["status"], "completed", "{}", state(&dir));
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(srv.route("bulk.kickoff"), 1, "no second kick-off");
    assert_eq!(std::fs::read_to_string(dir.join("Patient.000.ndjson")).unwrap().lines().count(), 20);
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19 §4: --timeout bounds a manifest refresh answered 202 for ever; the job keeps its result
#[test]
fn timeout_bounds_a_refresh_answered_202_for_ever() {
    let srv = Server::start(|_| {});
    let dir = out("refresh202");
    let base = srv.base("/_f/expire;refresh202");
    let t = Instant::now();
    let (code, stdout, stderr) =
        run(&["export", "--base", &base, "--type", "Patient", "--timeout", "2s", "--out", dir.to_str().unwrap()]);
    // Without the deadline the refresh's own budget (10 answers 202, Retry-After: 1) ends it after ~11 s.
    assert!(t.elapsed() < Duration::from_secs(9), "ended at the deadline, not later: {:?}", t.elapsed());
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert_eq!(state(&dir)["state"]["outcome"]["status"], "completed", "{}", state(&dir));
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19 §6, protocol K10: a signed file URL that fails reaches neither the console nor
// log.ndjson with its query string (the signature is a credential)
#[test]
fn a_failing_signed_url_is_shown_without_its_signature() {
    let srv = Server::start(|_| {});
    let dir = out("signed");
    let base = srv.base("/_f/signedfail");
    let (code, stdout, stderr) = run(&["export", "--base", &base, "--type", "Patient", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stdout.contains("FAILED Patient.000.ndjson"), "{stdout}");
    let log = std::fs::read_to_string(dir.join("log.ndjson")).unwrap();
    for (what, text) in [("stdout", &stdout), ("stderr", &stderr), ("log.ndjson", &log)] {
        assert!(!text.contains("Signature=") && !text.contains("X-Amz-Credential"), "{what}: {text}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Every resource of the folder's NDJSON files by type (`Type.NNN.ndjson` holds only `Type`):
/// type → (ids, versionIds seen); panics on a line of another type or a duplicate.
fn resources_by_type(dir: &Path) -> std::collections::BTreeMap<String, (Vec<String>, Vec<String>)> {
    let mut by: std::collections::BTreeMap<String, (Vec<String>, Vec<String>)> = Default::default();
    for f in names(dir).iter().filter(|f| f.ends_with(".ndjson") && *f != "log.ndjson") {
        let ty = f.split('.').next().unwrap().to_owned();
        for l in std::fs::read_to_string(dir.join(f)).unwrap().lines() {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{f}: {e}: {l}"));
            assert_eq!(v["resourceType"].as_str(), Some(ty.as_str()), "{f} holds another type: {l}");
            let e = by.entry(ty.clone()).or_default();
            let id = v["id"].as_str().unwrap().to_owned();
            assert!(!e.0.contains(&id), "{f}: {ty}/{id} twice");
            e.0.push(id);
            e.1.push(v["meta"]["versionId"].to_string());
        }
    }
    by
}

// issue 19 §1, protocol K6: links that expire mid-file and a refreshed manifest that lists the
// files in another order (no counts): each file keeps its own type, no resource lost or doubled
#[test]
fn a_refreshed_manifest_in_another_order_never_mixes_types() {
    let srv = Server::start(|c| {
        c.patients = 60;
        c.file_resources = 40;
    });
    let dir = out("reorder");
    let (plain, mixed) = (dir.join("plain"), dir.join("reorder"));
    let types = "Patient,Observation";
    let args = |base: &str, d: &Path| -> Vec<String> {
        ["export", "--base", base, "--type", types, "--out", d.to_str().unwrap()].map(str::to_owned).to_vec()
    };
    let (code, _, stderr) = run(&args(&srv.base(""), &plain));
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(&args(&srv.base("/_f/reorder;expireafter;cut=6000"), &mixed));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (want, got) = (resources_by_type(&plain), resources_by_type(&mixed));
    for (ty, (ids, _)) in &want {
        let mut a = ids.clone();
        let mut b = got.get(ty).map(|g| g.0.clone()).unwrap_or_default();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{ty}: every resource once");
    }
    std::fs::remove_dir_all(&dir).ok();
}
