//! Issue 24 (protocol M): the client's line stream (`JobRun::lines`, what Python's
//! `resources()` reads) with attachments, against the reference server's `/attach/fhir`: lines
//! with attachments are held, the attachments fetched once each, then the lines come hydrated
//! (inline) or unchanged (files, written to the stream's attachments folder); every other
//! line comes as it was, and the per-file counts match the manifest.

use base64::Engine;
use fhir_async::attachments::{AttachmentMode, AttachmentOptions, AttachmentReport};
use fhir_async::{DownloadOptions, ExportRequest, FileKind, OutcomeStatus};
use fhir_async_client::{Client, JobRun, LineEvent, Lines, StaticToken};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

mod common;

use common::{fast, Server};

fn listing(srv: &Server) -> Vec<Value> {
    let text =
        ureq::get(format!("{}/_admin/attachments", srv.origin)).call().unwrap().into_body().read_to_string().unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["attachments"].as_array().unwrap().clone()
}

fn entry<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter().find(|a| a["id"] == id).unwrap_or_else(|| panic!("{id} not listed"))
}

fn finished(srv: &Server) -> JobRun {
    let client = Client::builder(&format!("{}/attach/fhir", srv.origin))
        .token(StaticToken::new("attach-token"))
        .retry(fast())
        .build()
        .unwrap();
    let mut run = client.export(ExportRequest::default()).unwrap();
    let outcome = run.wait().unwrap();
    assert_eq!(outcome.status, OutcomeStatus::Completed, "{outcome:?}");
    run
}

fn options(mode: AttachmentMode) -> DownloadOptions {
    DownloadOptions {
        kinds: vec![FileKind::Output],
        attachments: AttachmentOptions { mode, ..Default::default() },
        ..DownloadOptions::default()
    }
}

/// Every line of the stream (as JSON) and the lines per file; the stream ends cleanly.
fn drain(lines: &mut Lines) -> (Vec<Value>, HashMap<usize, u64>) {
    let mut all = Vec::new();
    let mut per_file = HashMap::new();
    for ev in lines.by_ref() {
        match ev.unwrap() {
            LineEvent::Lines(b) => {
                *per_file.entry(b.file).or_insert(0) += b.len() as u64;
                all.extend(b.lines().map(|l| serde_json::from_slice::<Value>(l).unwrap()));
            }
            LineEvent::File(f) => assert!(f.error.is_none(), "{f:?}"),
        }
    }
    (all, per_file)
}

fn resource<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    lines.iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("{id} not in the stream"))
}

fn report<'a>(reports: &'a [AttachmentReport], url: &str) -> &'a AttachmentReport {
    reports.iter().find(|r| r.url == url).unwrap_or_else(|| panic!("{url} not reported: {reports:?}"))
}

fn route(srv: &Server, route: &str) -> u64 {
    srv.stats()["routes"][route].as_u64().unwrap_or(0)
}

/// Each file's lines, counted, are the manifest's count (held lines included, none twice).
fn counts_match(run: &JobRun, per_file: &HashMap<usize, u64>, lines: &[Value]) {
    let plan = run.job().download_plan();
    let expected: u64 = plan.iter().filter(|f| f.kind == FileKind::Output).filter_map(|f| f.expected_count).sum();
    assert_eq!(per_file.values().sum::<u64>(), expected);
    assert_eq!(lines.len() as u64, expected);
    let mut ids: Vec<&str> = lines.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), lines.len(), "a line came twice");
}

// protocol M7 in a stream: inline mode yields the resources with data, size, hash and
// contentType, url kept; each attachment fetched once; a failed one leaves its resource as it
// was (M9); no token to the storage origin (M4)
#[test]
fn m7_a_stream_in_inline_mode_yields_hydrated_resources() {
    let srv = Server::start(|_| {});
    let run = finished(&srv);
    let mut lines = run.lines(options(AttachmentMode::Inline));
    let (all, per_file) = drain(&mut lines);
    counts_match(&run, &per_file, &all);
    let list = listing(&srv);
    for (id, att) in [("docref-text-1", "att-text"), ("docref-text-2", "att-text"), ("docref-storage", "att-storage")] {
        let a = &resource(&all, id)["content"][0]["attachment"];
        let data = base64::engine::general_purpose::STANDARD.decode(a["data"].as_str().expect("data")).unwrap();
        let listed = entry(&list, att);
        assert_eq!(Some(data.len() as u64), listed["size"].as_u64(), "{id}");
        assert_eq!(a["hash"], listed["sha1"], "{id}");
        assert!(a["url"].is_string(), "{id}: url kept");
    }
    assert_eq!(resource(&all, "diagrep-json")["presentedForm"][0]["hash"], entry(&list, "att-json")["sha1"]);
    for id in ["docref-fail", "docref-big"] {
        assert!(resource(&all, id)["content"][0]["attachment"].get("data").is_none(), "{id}");
    }
    for id in ["att-text", "att-pdf", "att-json", "att-slow", "att-notype", "att-report", "att-fail"] {
        let n = route(&srv, &format!("attach.binary.{id}"));
        // att-fail answers 500: retried like a file, then reported
        assert!(if id == "att-fail" { n >= 1 } else { n == 1 }, "{id}: {n}");
    }
    assert_eq!(route(&srv, "attach.binary.att-big"), 0);
    let stats = srv.stats();
    assert_eq!(route(&srv, "storage.attachment.att-storage"), 1);
    assert_eq!(stats["routes_with_authorization"]["storage.attachment.att-storage"].as_u64().unwrap_or(0), 0);
    let reports = lines.attachments();
    let fail = report(reports, entry(&list, "att-fail")["url"].as_str().unwrap());
    assert!(fail.error.is_some(), "{fail:?}");
    let big = report(reports, entry(&list, "att-big")["url"].as_str().unwrap());
    assert!(big.error.is_some(), "{big:?}");
    let text = report(reports, entry(&list, "att-text")["url"].as_str().unwrap());
    assert_eq!(text.sha1.as_deref(), entry(&list, "att-text")["sha1"].as_str());
    assert!(text.file_name.is_none(), "inline mode saves nothing");
}

// protocol M8 in a stream: files mode writes each attachment into the stream's folder (its
// report names the path, size and SHA-1 as the server lists them); the lines come unchanged
#[test]
fn m8_a_stream_in_files_mode_writes_the_attachments_and_leaves_the_lines() {
    let srv = Server::start(|_| {});
    let run = finished(&srv);
    let dir: PathBuf = std::env::temp_dir().join(format!("fhir-async-stream-attach-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut lines = run.lines_with_attachments_dir(options(AttachmentMode::Files), &dir);
    let (all, per_file) = drain(&mut lines);
    counts_match(&run, &per_file, &all);
    assert!(resource(&all, "docref-text-1")["content"][0]["attachment"].get("data").is_none());
    let list = listing(&srv);
    for id in ["att-text", "att-pdf", "att-storage", "att-json", "att-notype", "att-report"] {
        let a = entry(&list, id);
        let r = report(lines.attachments(), a["url"].as_str().unwrap());
        assert_eq!(r.sha1.as_deref(), a["sha1"].as_str(), "{id}");
        let path = PathBuf::from(r.file_name.as_deref().expect("written"));
        assert!(path.starts_with(&dir), "{}", path.display());
        assert_eq!(Some(std::fs::metadata(&path).unwrap().len()), a["size"].as_u64(), "{id}");
    }
    assert_eq!(route(&srv, "attach.binary.att-text"), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

// protocol M: attachments off, the stream is as before and fetches nothing
#[test]
fn m_a_stream_with_attachments_off_fetches_none() {
    let srv = Server::start(|_| {});
    let run = finished(&srv);
    let mut lines = run.lines(options(AttachmentMode::Off));
    let (all, _) = drain(&mut lines);
    assert!(resource(&all, "docref-text-1")["content"][0]["attachment"].get("data").is_none());
    assert!(lines.attachments().is_empty());
    let routes = srv.stats()["routes"].clone();
    assert!(!routes.as_object().unwrap().keys().any(|k| k.starts_with("attach.binary")), "{routes}");
}

// protocol M: a stream dropped while its attachments are being fetched ends without a hang
// (the fetches stop at their next request), and the job streams again afterwards
#[test]
fn m_a_stream_dropped_with_attachments_in_flight_ends_cleanly() {
    let srv = Server::start(|_| {});
    let run = finished(&srv);
    let mut lines = run.lines(options(AttachmentMode::Inline));
    let files = run.job().download_plan().iter().filter(|f| f.kind == FileKind::Output).count();
    let mut ended = 0;
    while ended < files {
        if let LineEvent::File(_) = lines.next().expect("an event").unwrap() {
            ended += 1;
        }
    }
    // the NDJSON files are in: the attachments (att-slow takes a second) are on their way
    drop(lines);
    let mut again = run.lines(options(AttachmentMode::Inline));
    let (all, per_file) = drain(&mut again);
    counts_match(&run, &per_file, &all);
    assert!(resource(&all, "docref-text-1")["content"][0]["attachment"]["data"].is_string());
}
