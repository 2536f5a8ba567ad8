//! Protocol L14 end to end: a folder kept current with the reference server's `$bulk-publish`
//! across three publications (pending; more files; closed and a new dataset), and a second
//! process that goes on from the saved reader without fetching anything twice.

mod common;

use common::Server;
use fhir_async_client::{PublishEvent, PublishUntil};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fhir-async-publish-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn names(p: &fhir_async_client::Publication) -> Vec<String> {
    p.files().unwrap().iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect()
}

fn advance(srv: &Server) {
    ureq::post(format!("{}/_admin/publish", srv.origin)).send_empty().unwrap();
}

#[test]
fn l14_a_folder_stays_current_across_three_publications() {
    let srv = Server::start(|_| {});
    let client = srv.client("/stu4/fhir");
    let root = format!("{}/stu4/fhir/$bulk-publish", srv.origin);
    let dir = tmp("three");
    let mut events = Vec::new();
    let mut p = client.publish(&root, &dir).unwrap();
    p.run(PublishUntil::Current, &mut |e| events.push(e.clone())).unwrap();
    assert_eq!(names(&p), ["000000-Patient.ndjson", "000001-Observation.ndjson", "000002-Patient.ndjson"]);
    let first = std::fs::read(dir.join("000000-Patient.ndjson")).unwrap();
    assert_eq!(first.iter().filter(|&&b| b == b'\n').count(), 5);
    assert!(matches!(events.last(), Some(PublishEvent::Waiting { committed: false, .. })));

    // publication 2, read by a new process from the saved reader: only the new files
    advance(&srv);
    drop(p);
    let mut p = client.publish(&root, &dir).unwrap();
    p.poll_now();
    let mut applied = Vec::new();
    p.run(PublishUntil::Current, &mut |e| {
        if let PublishEvent::Applied { path, .. } = e {
            applied.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    })
    .unwrap();
    assert_eq!(applied, ["000003-Patient.ndjson", "000004-deleted.ndjson"]);
    assert_eq!(std::fs::read(dir.join("000000-Patient.ndjson")).unwrap(), first, "nothing fetched twice");

    // publication 3: closed, and the root is a new dataset
    advance(&srv);
    p.poll_now();
    let mut events = Vec::new();
    p.run(PublishUntil::Committed, &mut |e| events.push(e.clone())).unwrap();
    assert!(matches!(events.first(), Some(PublishEvent::Reset { .. })), "{events:?}");
    assert_eq!(names(&p), ["000000-Patient.ndjson"]);
    let text = std::fs::read_to_string(dir.join("000000-Patient.ndjson")).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(text.contains("Published2"));
    assert!(p.reader().is_committed());
    // the saved state holds no token and is the reader's
    let saved = std::fs::read_to_string(dir.join(fhir_async_client::PUBLISH_STATE_FILE)).unwrap();
    assert!(saved.contains("\"committed\":true"));
    let _ = std::fs::remove_dir_all(&dir);
}
