//! Issue 24 (protocol M): a folder download against the reference server's attachments dialect
//! (`/attach/fhir`) fetches the attachments its resources point at, in each mode: every URL
//! once (per-route counts from `/_admin/stats`), each hash checked against `/_admin/attachments`,
//! the token only where it may go, a failing one reported without failing its file, the big one
//! refused, inline data in the NDJSON, and nothing fetched again on a second run.

use fhir_async::attachments::{AttachmentMode, AttachmentOptions, AttachmentReport};
use fhir_async::{DownloadOptions, ExportRequest, OutcomeStatus};
use fhir_async_client::{Client, DownloadSummary, JobRun, StaticToken};
use serde_json::Value;
use std::path::{Path, PathBuf};

mod common;

use common::{fast, Server};

/// `GET /_admin/attachments`: what each attachment serves.
fn listing(srv: &Server) -> Vec<Value> {
    let text =
        ureq::get(format!("{}/_admin/attachments", srv.origin)).call().unwrap().into_body().read_to_string().unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["attachments"].as_array().unwrap().clone()
}

fn entry<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter().find(|a| a["id"] == id).unwrap_or_else(|| panic!("{id} not listed"))
}

/// A client of the attachments dialect with a token (a Binary read is a FHIR read).
fn client(srv: &Server, allowed: Vec<String>) -> Client {
    Client::builder(&format!("{}/attach/fhir", srv.origin))
        .token(StaticToken::new("attach-token"))
        .retry(fast())
        .allowed_origins(allowed)
        .build()
        .unwrap()
}

fn finished(client: &Client) -> JobRun {
    let mut run = client.export(ExportRequest::default()).unwrap();
    let outcome = run.wait().unwrap();
    assert_eq!(outcome.status, OutcomeStatus::Completed, "{outcome:?}");
    run
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fhir-async-client-attach-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn options(mode: AttachmentMode) -> DownloadOptions {
    DownloadOptions { attachments: AttachmentOptions { mode, ..Default::default() }, ..DownloadOptions::default() }
}

fn report<'a>(s: &'a DownloadSummary, url: &str) -> &'a AttachmentReport {
    s.attachments.iter().find(|r| r.url == url).unwrap_or_else(|| panic!("{url} not reported: {:?}", s.attachments))
}

fn route(srv: &Server, route: &str) -> u64 {
    srv.stats()["routes"][route].as_u64().unwrap_or(0)
}

/// Each NDJSON file's lines, checked equal to the manifest's count (the files are intact).
fn lines_intact(run: &JobRun, s: &DownloadSummary) -> Vec<Value> {
    let mut all = Vec::new();
    for f in &s.files {
        let text = std::fs::read_to_string(f.path.as_ref().expect("written")).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(Some(lines.len() as u64), f.result.file.expected_count, "{}", f.result.file.file_name);
        all.extend(lines);
    }
    assert!(run.outcome().is_some());
    all
}

fn resource<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    lines.iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("{id} not in the files"))
}

/// The saved attachments each match what the server lists: size and SHA-1, on disk too.
fn check_saved(srv: &Server, out: &Path, s: &DownloadSummary) {
    let list = listing(srv);
    for id in ["att-text", "att-pdf", "att-storage", "att-json", "att-slow", "att-notype", "att-report"] {
        let a = entry(&list, id);
        let r = report(s, a["url"].as_str().unwrap());
        assert!(r.error.is_none(), "{id}: {r:?}");
        assert_eq!(r.size, a["size"].as_u64(), "{id}");
        assert_eq!(r.sha1.as_deref(), a["sha1"].as_str(), "{id}");
        let path = out.join(r.file_name.as_deref().expect("saved"));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(Some(bytes.len() as u64), a["size"].as_u64(), "{}", path.display());
    }
    // M5: the Binary answered as FHIR JSON is saved decoded, with the Binary's content type
    let json = report(s, entry(&list, "att-json")["url"].as_str().unwrap());
    assert_eq!(json.content_type.as_deref(), Some("text/html"));
    // the report on disk is the summary's
    let on_disk: Value = serde_json::from_slice(&std::fs::read(out.join("attachments.json")).unwrap()).unwrap();
    let reports: Vec<AttachmentReport> = serde_json::from_value(on_disk["attachments"].clone()).unwrap();
    assert_eq!(reports, s.attachments);
    assert!(!std::fs::read_dir(out.join("attachments")).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
}

// protocol M8, M3, M5: files mode saves each attachment once under attachments/ (relative
// Binary/{id} resolved against the FHIR base, the JSON Binary decoded), hashes checked, one
// report entry per URL (the duplicate URL fetched once, the inline one never)
#[test]
fn m8_files_mode_saves_every_attachment_once_with_its_hash() {
    let srv = Server::start(|_| {});
    let mut run = finished(&client(&srv, Vec::new()));
    let out = dir("files");
    let s = run.download(&out, options(AttachmentMode::Files)).unwrap();
    assert!(s.is_complete(), "{:?}", s.files);
    check_saved(&srv, &out, &s);
    let list = listing(&srv);
    // every attachment fetched exactly once (att-text is in two resources)
    for id in ["att-text", "att-pdf", "att-json", "att-slow", "att-notype", "att-report"] {
        assert_eq!(route(&srv, &format!("attach.binary.{id}")), 1, "{id}: {}", srv.stats()["routes"]);
    }
    assert_eq!(route(&srv, "storage.attachment.att-storage"), 1);
    // M2: the attachment with data is not fetched, not reported
    assert_eq!(s.attachments.len(), 9, "{:?}", s.attachments);
    assert!(entry(&list, "att-inline")["url"].is_null());
}

// protocol M4: the token goes with Binary reads on the FHIR origin, never to the storage origin
#[test]
fn m4_no_token_to_second_origin() {
    let srv = Server::start(|_| {});
    let mut run = finished(&client(&srv, Vec::new()));
    let out = dir("m4");
    let s = run.download(&out, options(AttachmentMode::Files)).unwrap();
    let stats = srv.stats();
    assert_eq!(route(&srv, "storage.attachment.att-storage"), 1);
    assert_eq!(stats["storage_requests_with_authorization"], 0, "{stats}");
    assert!(stats["routes_with_authorization"]["storage.attachment.att-storage"].as_u64().unwrap_or(0) == 0);
    assert_eq!(stats["routes_with_authorization"]["attach.binary.att-text"], 1, "{stats}");
    assert!(report(&s, entry(&listing(&srv), "att-storage")["url"].as_str().unwrap()).error.is_none());
}

// protocol M4: an allowed origin receives the token (requiresAccessToken is true)
#[test]
fn m4_token_to_second_origin_when_allowed() {
    let srv = Server::start(|_| {});
    let storage = entry(&listing(&srv), "att-storage")["url"].as_str().unwrap().to_owned();
    let origin = storage.split("/attachments/").next().unwrap().to_owned();
    let mut run = finished(&client(&srv, vec![origin]));
    let out = dir("m4-allowed");
    let s = run.download(&out, options(AttachmentMode::Files)).unwrap();
    assert!(report(&s, &storage).error.is_none());
    assert_eq!(srv.stats()["routes_with_authorization"]["storage.attachment.att-storage"], 1, "{}", srv.stats());
}

// protocol M9, M6: the failing attachment is in the report with the server's words, the big
// one is refused by its size, and the NDJSON files are complete and unchanged
#[test]
fn m9_a_failed_attachment_fails_no_file() {
    let srv = Server::start(|_| {});
    let mut run = finished(&client(&srv, Vec::new()));
    let out = dir("m9");
    let s = run.download(&out, options(AttachmentMode::Files)).unwrap();
    assert!(s.is_complete(), "{:?}", s.files);
    let list = listing(&srv);
    let fail = report(&s, entry(&list, "att-fail")["url"].as_str().unwrap());
    let e = fail.error.as_ref().expect("att-fail failed");
    assert!(e.message.contains("attachment store unavailable"), "{e:?}");
    assert!(fail.file_name.is_none() && fail.sha1.is_none());
    // M6: declared 20 MiB over the 4 MiB default: never fetched
    let big = report(&s, entry(&list, "att-big")["url"].as_str().unwrap());
    let e = big.error.as_ref().expect("att-big refused");
    assert!(e.code == "too_large" || e.message.contains("size limit"), "{e:?}");
    assert_eq!(route(&srv, "attach.binary.att-big"), 0);
    assert_eq!(s.failed_attachments().count(), 2, "{:?}", s.attachments);
    let lines = lines_intact(&run, &s);
    assert!(resource(&lines, "docref-fail")["content"][0]["attachment"].get("data").is_none());
}

// protocol M7: inline mode writes data, size, hash and contentType into the NDJSON, url kept;
// a failed one leaves its resource as it was (M9)
#[test]
fn m7_inline_mode_writes_data_size_hash_and_keeps_url() {
    use base64::Engine;
    let srv = Server::start(|_| {});
    let mut run = finished(&client(&srv, Vec::new()));
    let out = dir("inline");
    let s = run.download(&out, options(AttachmentMode::Inline)).unwrap();
    assert!(s.is_complete(), "{:?}", s.files);
    check_saved(&srv, &out, &s);
    let list = listing(&srv);
    let lines = lines_intact(&run, &s);
    for (id, att) in [("docref-text-1", "att-text"), ("docref-text-2", "att-text"), ("docref-storage", "att-storage")] {
        let a = &resource(&lines, id)["content"][0]["attachment"];
        let data = base64::engine::general_purpose::STANDARD.decode(a["data"].as_str().expect("data")).unwrap();
        let listed = entry(&list, att);
        assert_eq!(Some(data.len() as u64), listed["size"].as_u64(), "{id}");
        assert_eq!(a["size"], listed["size"], "{id}");
        assert_eq!(a["hash"], listed["sha1"], "{id}");
        assert!(a["url"].is_string(), "{id}: url kept");
    }
    let json = &resource(&lines, "diagrep-json")["presentedForm"][0];
    assert_eq!(json["contentType"], "text/html");
    assert_eq!(json["hash"], entry(&list, "att-json")["sha1"]);
    for id in ["docref-fail", "docref-big"] {
        assert!(resource(&lines, id)["content"][0]["attachment"].get("data").is_none(), "{id}");
    }
    assert_eq!(route(&srv, "attach.binary.att-text"), 1);
}

// protocol K5 for attachments: a second download into the folder proves the saved files
// (size + SHA-1 of the report) and fetches none of them again; after inline nothing is left
#[test]
fn k5_a_second_download_fetches_no_attachment_again() {
    for mode in [AttachmentMode::Files, AttachmentMode::Inline] {
        let srv = Server::start(|_| {});
        let mut run = finished(&client(&srv, Vec::new()));
        let out = dir(&format!("resume-{mode:?}"));
        let first = run.download(&out, options(mode)).unwrap();
        let ok = ["att-text", "att-pdf", "att-json", "att-slow", "att-notype", "att-report"];
        let before: Vec<u64> = ok.iter().map(|id| route(&srv, &format!("attach.binary.{id}"))).collect();
        assert!(before.iter().all(|&n| n == 1), "{before:?}");
        let second = run.download(&out, options(mode)).unwrap();
        let after: Vec<u64> = ok.iter().map(|id| route(&srv, &format!("attach.binary.{id}"))).collect();
        assert_eq!(before, after, "{mode:?}: fetched again");
        assert_eq!(route(&srv, "storage.attachment.att-storage"), 1);
        let ok_reports = |s: &DownloadSummary| -> Vec<AttachmentReport> {
            let mut v: Vec<AttachmentReport> = s.attachments.iter().filter(|r| r.error.is_none()).cloned().collect();
            v.sort_by(|a, b| a.url.cmp(&b.url));
            v
        };
        assert_eq!(ok_reports(&first), ok_reports(&second), "{mode:?}");
        check_saved(&srv, &out, &second);
    }
}

// protocol M2: --attachment-types filters by media type (prefix); without contentType an
// attachment is fetched only when no type is asked for
#[test]
fn m2_only_the_asked_media_types_are_fetched() {
    let srv = Server::start(|_| {});
    let mut run = finished(&client(&srv, Vec::new()));
    let out = dir("types");
    let mut opts = options(AttachmentMode::Files);
    opts.attachments.types = vec!["application/pdf".into()];
    let s = run.download(&out, opts).unwrap();
    assert_eq!(route(&srv, "attach.binary.att-pdf"), 1);
    for id in ["att-text", "att-notype", "att-json", "att-report"] {
        assert_eq!(route(&srv, &format!("attach.binary.{id}")), 0, "{id}");
    }
    assert!(
        s.attachments.iter().all(|r| r.url.contains("att-pdf") || r.url.contains("att-big")),
        "{:?}",
        s.attachments
    );
}

// protocol M6: an attachment whose declared size fits but whose answer is larger (the FHIR JSON
// Binary: base64 plus its wrapper) is refused as too_large, its resource left as it was
#[test]
fn m6_an_answer_over_the_limit_is_too_large() {
    let srv = Server::start(|_| {});
    let mut run = finished(&client(&srv, Vec::new()));
    let out = dir("too-large");
    let json = entry(&listing(&srv), "att-json").clone();
    let declared = json["size"].as_u64().unwrap();
    let mut opts = options(AttachmentMode::Inline);
    opts.attachments.types = vec!["text/html".into()];
    opts.attachments.max_size = declared + 10;
    let s = run.download(&out, opts).unwrap();
    assert!(s.is_complete(), "{:?}", s.files);
    let r = report(&s, json["url"].as_str().unwrap());
    assert_eq!(r.error.as_ref().map(|e| e.code.as_str()), Some("too_large"), "{r:?}");
    let lines = lines_intact(&run, &s);
    assert!(resource(&lines, "diagrep-json")["presentedForm"][0].get("data").is_none());
}
