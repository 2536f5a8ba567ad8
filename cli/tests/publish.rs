//! `fhir-async publish URL --out DIR` (protocol L14) against the reference server's
//! `$bulk-publish`: three publications (pending; more files; closed and a new dataset), each
//! caught up by one run of the command, nothing fetched twice.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::Server;

const BIN: &str = env!("CARGO_BIN_EXE_fhir-async");

fn out(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fhir-async-cli-publish-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The folder's files in the order to apply them, as the client lists them.
fn names(dir: &Path) -> Vec<String> {
    let client = fhir_async_client::Client::builder("http://127.0.0.1:9").build().unwrap();
    let p = client.publish("http://127.0.0.1:9/$bulk-publish", dir).unwrap();
    p.files().unwrap().iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect()
}

fn publish(url: &str, dir: &Path) -> (i32, Vec<serde_json::Value>) {
    let o = Command::new(BIN).args(["--json", "publish", url, "--now", "--out"]).arg(dir).output().unwrap();
    let events = String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (o.status.code().unwrap_or(-1), events)
}

#[test]
fn l14_publish_keeps_a_folder_current_across_three_publications() {
    let srv = Server::start(|_| {});
    let url = format!("{}/stu4/fhir/$bulk-publish", srv.origin);
    let dir = out("three");
    let (code, events) = publish(&url, &dir);
    assert_eq!(code, 0, "{events:?}");
    assert_eq!(names(&dir), ["000000-Patient.ndjson", "000001-Observation.ndjson", "000002-Patient.ndjson"]);
    assert!(events.iter().any(|e| e["event"] == "publish_waiting" && e["committed"] == false));
    let files_before = srv.route("stu4.publish.file");
    assert_eq!(files_before, 3);

    ureq::post(format!("{}/_admin/publish", srv.origin)).send_empty().unwrap();
    // --now: the next run looks again at once instead of after the cadence
    let code_events = publish(&url, &dir);
    assert_eq!(code_events.0, 0);
    assert_eq!(names(&dir).len(), 5, "{:?}", names(&dir));
    assert_eq!(names(&dir)[4], "000004-deleted.ndjson");
    assert_eq!(srv.route("stu4.publish.file"), 5, "nothing fetched twice");

    ureq::post(format!("{}/_admin/publish", srv.origin)).send_empty().unwrap();
    let (code, events) = publish(&url, &dir);
    assert_eq!(code, 0, "{events:?}");
    assert!(events.iter().any(|e| e["event"] == "publish_reset"), "{events:?}");
    assert_eq!(names(&dir), ["000000-Patient.ndjson"]);
    let text = std::fs::read_to_string(dir.join("000000-Patient.ndjson")).unwrap();
    assert!(text.contains("Published2"));
    let _ = std::fs::remove_dir_all(&dir);
}
