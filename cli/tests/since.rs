//! Issue 23: `--since auto` asks from the last export's `ExportRequest::next_since`:
//! min(its `_until`, its `transactionTime`) (protocol D3, L5), with the folder's selection.

use serde_json::Value;
use std::path::{Path, PathBuf};

mod common;

use common::{run_env, Server};

fn out(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fhir-async-cli-since-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn kickoffs(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("log.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["eventId"] == "kickoff")
        .map(|e| e["eventDetail"]["requestParameters"].clone())
        .collect()
}

// protocol L5 [R]: after an export with `_until` earlier than its `transactionTime`, the next
// `--since auto` asks from that `_until` (what changed after it was not asked for), keeps the
// folder's `_type` and drops the `_until` (the next window is open)
#[test]
fn l5_since_auto_asks_from_the_until_of_the_last_export() {
    let srv = Server::start(|_| {});
    let base = format!("{}/stu4/fhir", srv.origin);
    let dir = out("until");
    let d = dir.to_str().unwrap();
    let until = "2020-01-01T00:00:00Z";
    let first = ["export", "--base", &base, "--ig-version", "stu4", "--type", "Patient", "--until", until, "--out", d];
    let (code, stdout, stderr) = run_env(&first, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let last: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("fhir-async-last.json")).unwrap()).unwrap();
    assert_eq!(last["nextSince"], until, "min(_until, transactionTime): {last}");
    assert!(last["transactionTime"].as_str().is_some_and(|t| t > until), "{last}");

    let (code, stdout, stderr) = run_env(&["export", "--since", "auto", "--out", d], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let k = kickoffs(&dir);
    assert_eq!(k.len(), 2, "{k:?}");
    assert_eq!(k[1]["_since"], until, "{:?}", k[1]);
    assert_eq!(k[1]["_type"], "Patient", "the folder's selection: {:?}", k[1]);
    assert!(k[1].get("_until").is_none(), "{:?}", k[1]);

    // Without `_until`, the next since is the transactionTime.
    let (code, stdout, stderr) = run_env(&["export", "--since", "auto", "--out", d], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let last: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("fhir-async-last.json")).unwrap()).unwrap();
    assert_eq!(last["nextSince"], last["transactionTime"], "{last}");
    std::fs::remove_dir_all(&dir).ok();
}
