//! One pass of 64 MiB of NDJSON through `FileDownload` (split, validate, count,
//! and since issue 19 the digest of the lines taken), for instruction counts
//! that do not depend on the machine's load:
//! `valgrind --tool=callgrind target/release/examples/feed json` (or `none`, `structural`).
use fhir_async::{DownloadAction, FileDownload, FileKind, PlannedFile, RetryPolicy, Validation};

fn main() {
    let validation = match std::env::args().nth(1).as_deref() {
        Some("none") => Validation::None,
        Some("structural") => Validation::Structural,
        _ => Validation::Json,
    };
    let line = br#"{"resourceType":"Observation","id":"obs-000001","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/p-000001"},"effectiveDateTime":"2024-01-01T10:00:00Z","valueQuantity":{"value":72,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}"#;
    let mut data = Vec::with_capacity(64 << 20);
    while data.len() < (64 << 20) {
        data.extend_from_slice(line);
        data.push(b'\n');
    }
    let file = PlannedFile {
        kind: FileKind::Output,
        index: 0,
        resource_type: Some("Observation".into()),
        url: "https://h/f".into(),
        send_token: false,
        expected_count: None,
        expected_bytes: None,
        opaque_format: None,
        file_name: "Observation.000.ndjson".into(),
        max_bytes: None,
        blocked: None,
    };
    let mut dl = FileDownload::new(file, &RetryPolicy::default()).unwrap().with_validation(validation);
    let DownloadAction::Send { request } = dl.next_action(0).unwrap() else { panic!("a request") };
    dl.handle_head(request.id, 200, &[], false, 0).unwrap();
    let mut bytes = 0u64;
    for chunk in data.chunks(256 << 10) {
        dl.feed(request.id, chunk, 0, |l| bytes += l.len() as u64).unwrap();
    }
    dl.finish(request.id, 0, |l| bytes += l.len() as u64).unwrap();
    println!("{bytes} bytes of lines");
}
