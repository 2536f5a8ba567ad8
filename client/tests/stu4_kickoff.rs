//! Issue 23: the client's kick-off against the reference server's `stu4` dialect (`/stu4/fhir`:
//! POST + Parameters only, a GET → 405, `metadata` declaring `…/export|4.0.0`). The form is
//! found from the CapabilityStatement (`igVersion: auto`) or, unpinned, by the one POST after
//! the 405 (protocol L1, L2, L3, L5, L7, L8).

use fhir_async::{ExportRequest, IgVersion, OutcomeStatus, PreferOptions};
use fhir_async_client::Client;
use serde_json::Value;
use std::time::Duration;

mod common;

use common::{fast, Server};

/// The server's requests on `/stu4/fhir` as `METHOD path-without-query status`.
fn exchanges(srv: &Server) -> Vec<String> {
    let stats = srv.stats();
    let requests = stats["requests"].as_array().cloned().unwrap_or_default();
    requests
        .iter()
        .filter_map(|r| {
            let path = r["path"].as_str()?;
            let path = path.split('?').next()?.strip_prefix("/stu4/fhir/")?;
            Some(format!("{} {path} {}", r["method"].as_str()?, r["status"]))
        })
        .collect()
}

fn every_ballot_parameter(ig_version: IgVersion) -> ExportRequest {
    ExportRequest {
        types: vec!["Patient".into(), "Observation".into()],
        since: Some("2020-01-01T00:00:00Z".into()),
        until: Some("2999-01-01T00:00:00Z".into()),
        elements: vec!["id".into()],
        type_filters: vec!["Observation?category=laboratory,vital-signs".into()],
        include_associated_data: vec!["LatestProvenanceResources".into()],
        allow_partial_manifests: Some(false),
        minimum_file_size: Some(1),
        maximum_file_size: Some(10_000_000),
        ig_version,
        ..Default::default()
    }
}

// protocol L2 (with L1, L3, L5, L7): `auto` reads the CapabilityStatement, the server declares
// `export|4.0.0`, and the one kick-off is the STU4 POST, every ballot parameter accepted
#[test]
fn l2_the_stu4_server_accepts_the_kickoff_in_the_form_its_capability_statement_declares() {
    let srv = Server::start(|_| {});
    let client = srv.client("/stu4/fhir");
    let mut run = client.export(every_ballot_parameter(IgVersion::Auto)).unwrap();
    assert!(run.job().status_url().is_some_and(|u| u.contains("/stu4/")), "accepted: {:?}", run.outcome());
    assert_eq!(run.job().ig_version(), Some(IgVersion::Stu4));
    assert_eq!(exchanges(&srv), ["GET metadata 200", "POST $export 202"], "no GET kick-off, no 405");
    assert!(run.job().warnings().is_empty(), "{:?}", run.job().warnings());
    // A poll or more, within a bound: the job is known and answered (the manifest is another item).
    assert!(run.step(Duration::from_secs(10)).is_ok());
    assert!(exchanges(&srv).iter().skip(2).all(|e| e.contains(" 20")), "{:?}", exchanges(&srv));
}

// protocol L2: unpinned (STU3 GET form), the 405 to the GET is answered by one POST, accepted
#[test]
fn l2_a_405_to_the_get_kickoff_is_retried_once_as_post_and_accepted() {
    let srv = Server::start(|_| {});
    let client = srv.client("/stu4/fhir");
    let request = ExportRequest {
        types: vec!["Patient".into(), "Observation".into()],
        since: Some("2020-01-01T00:00:00Z".into()),
        ..Default::default()
    };
    let run = client.export(request).unwrap();
    assert!(run.job().status_url().is_some(), "accepted: {:?}", run.outcome());
    assert_eq!(exchanges(&srv), ["GET $export 405", "POST $export 202"]);
    assert!(
        run.job().warnings().iter().any(|w| w.contains("405") && w.contains("Allow: POST")),
        "{:?}",
        run.job().warnings()
    );
}

// protocol L2: the bulk dialect declares the unversioned export: `auto` keeps its GET form there
#[test]
fn l2_auto_keeps_the_get_form_on_a_server_declaring_no_stu4_export() {
    let srv = Server::start(|_| {});
    let client = srv.client("/bulk/fhir");
    let run = client
        .export(ExportRequest { types: vec!["Patient".into()], ig_version: IgVersion::Auto, ..Default::default() })
        .unwrap();
    assert!(run.job().status_url().is_some());
    assert_eq!(run.job().ig_version(), Some(IgVersion::Stu3));
    let seen: Vec<String> = srv.stats()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r["method"].as_str().unwrap(), r["path"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, ["GET /bulk/fhir/metadata", "GET /bulk/fhir/$export?_type=Patient"]);
}

// protocol L8: separate-export-status on the stu4 server: every poll is a 200 with
// `X-Export-Status: 202 Accepted` until `200 OK`; the job runs to its end through them
#[test]
fn l8_separate_export_status_with_code_and_phrase_runs_to_the_end() {
    // `Retry-After: 0`: the client polls every 20 ms, so the 300 ms job answers `202 Accepted` first.
    let srv = Server::start(|c| c.retry_after = 0);
    let client = Client::builder(&format!("{}/stu4/fhir", srv.origin))
        .retry(fast())
        .prefer(PreferOptions { separate_export_status: true, ..Default::default() })
        .build()
        .unwrap();
    let mut run = client
        .export(ExportRequest { types: vec!["Patient".into()], ig_version: IgVersion::Stu4, ..Default::default() })
        .unwrap();
    assert_eq!(run.job().preference_applied(), ["separate-export-status"]);
    let outcome = run.wait().unwrap();
    assert_eq!(outcome.status, OutcomeStatus::Completed, "{outcome:?}");
    let stats = srv.stats();
    let polls: Vec<&Value> =
        stats["requests"].as_array().unwrap().iter().filter(|r| r["route"].as_str() == Some("stu4.status")).collect();
    assert!(polls.len() >= 2, "at least one `202 Accepted` before `200 OK`: {polls:?}");
    assert!(polls.iter().all(|r| r["status"] == 200), "{polls:?}");
}
