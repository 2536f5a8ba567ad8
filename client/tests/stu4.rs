//! Issue 23: an export against the reference server's `stu4` dialect (`/stu4/fhir`) completes
//! with the STU4 manifest (`outcome` with `countSeverity`, `manifestType`, an Extension array,
//! `fileSize` on every entry), and its Parquet output arrives in the folder intact
//! (protocol L10–L13).

use fhir_async::{DownloadOptions, ExportRequest, IgVersion, OutcomeStatus};
use fhir_async_client::LineEvent;

mod common;

use common::Server;

/// The bytes the server serves at `url`.
fn served(url: &str) -> Vec<u8> {
    ureq::get(url).call().unwrap().into_body().read_to_vec().unwrap()
}

// protocol L10–L13: the export completes (an informational outcome is not an error), the
// manifest reads in its STU4 shape, and every file is on disk as served, checked against fileSize
#[test]
fn l13_an_stu4_export_completes_with_its_parquet_file_downloaded_intact() {
    let srv = Server::start(|_| {});
    let client = srv.client("/stu4/fhir");
    // The STU4 POST kick-off (L1), asked for explicitly.
    let request = ExportRequest { ig_version: IgVersion::Stu4, ..Default::default() };
    let mut run = client.export(request).unwrap();
    let outcome = run.wait().unwrap();
    // L11: one outcome file whose countSeverity says "information": completed, not with errors
    assert_eq!(outcome.status, OutcomeStatus::Completed, "{outcome:?}");
    let m = outcome.manifest().expect("a manifest").clone();
    // L10, L12: the STU4 shape, read by the one reader without a note
    assert_eq!(m.manifest_type.as_deref(), Some(fhir_async::manifest::BULK_DATA_MANIFEST));
    assert!(m.extension.as_ref().is_some_and(|e| e.is_array()));
    assert!(m.error.is_empty());
    assert_eq!(m.error_files().count(), 1);
    assert_eq!(m.outcome[0].count_severity[0].code, "information");
    assert!(m.notes.is_empty(), "{:?}", m.notes);
    assert!(!run.job().warnings().iter().any(|w| w.contains("L10") || w.contains("L12")), "{:?}", run.job().warnings());
    let parquet = m.output.iter().find(|f| f.output_format.is_some()).expect("a Parquet output").clone();

    let dir = std::env::temp_dir().join(format!("fhir-async-client-stu4-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let summary = run.download(&dir, DownloadOptions::default()).unwrap();
    assert!(
        summary.is_complete(),
        "{:?}",
        summary.files.iter().filter_map(|f| f.result.error.as_ref()).collect::<Vec<_>>()
    );
    assert_eq!(summary.files.len(), m.output.len() + m.outcome.len());
    for f in &summary.files {
        let path = f.path.as_ref().expect("written");
        let entry = m
            .output
            .iter()
            .chain(&m.outcome)
            .find(|e| f.result.file.url.ends_with(e.url.as_str()) || e.url == f.result.file.url);
        let size = entry.and_then(|e| e.file_size).expect("fileSize on every entry");
        let on_disk = std::fs::read(path).unwrap();
        // fileSize is checked on every file (L13): what is on disk is that many bytes
        assert_eq!(on_disk.len() as u64, size, "{}", path.display());
        assert_eq!(f.result.report.as_ref().unwrap().bytes, size);
    }
    // L13: the Parquet file, opaque bytes: named with its extension, equal to what the server serves
    let pq = summary.files.iter().find(|f| f.result.file.opaque_format.is_some()).expect("the Parquet file downloaded");
    let path = pq.path.as_ref().unwrap();
    assert!(path.extension().is_some_and(|e| e == "parquet"), "{}", path.display());
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes, served(&parquet.url));
    assert_eq!(Some(bytes.len() as u64), parquet.file_size);
    assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
    let report = pq.result.report.as_ref().unwrap();
    assert_eq!((report.resources, report.expected), (0, None));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    // the NDJSON files were read as lines, with their counts checked
    let ndjson: Vec<_> = summary.files.iter().filter(|f| f.result.file.opaque_format.is_none()).collect();
    assert!(ndjson.iter().all(|f| f.path.as_ref().unwrap().extension().is_some_and(|e| e == "ndjson")));
    assert!(ndjson.iter().any(|f| f
        .result
        .report
        .as_ref()
        .is_some_and(|r| r.resources > 0 && r.expected == Some(r.resources))));
    // atomic: nothing but the finished files (and no .tmp) is left
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp") || n.ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

// protocol L13: a stream of resources leaves the Parquet file out (it has no lines)
#[test]
fn l13_a_stream_of_lines_leaves_the_parquet_file_out() {
    let srv = Server::start(|_| {});
    let client = srv.client("/stu4/fhir");
    let request = ExportRequest { ig_version: IgVersion::Stu4, types: vec!["Patient".into()], ..Default::default() };
    let mut run = client.export(request).unwrap();
    run.wait().unwrap();
    let opts = DownloadOptions { kinds: vec![fhir_async::FileKind::Output], ..Default::default() };
    let (mut lines, mut files) = (0, Vec::new());
    for event in run.lines(opts) {
        match event.unwrap() {
            LineEvent::Lines(batch) => {
                for line in batch.lines() {
                    assert!(line.starts_with(b"{"), "{}", String::from_utf8_lossy(line));
                    lines += 1;
                }
            }
            LineEvent::File(result) => files.push(result.file.file_name.clone()),
        }
    }
    assert!(lines > 0);
    assert!(files.iter().all(|n| n.ends_with(".ndjson")), "{files:?}");
}
