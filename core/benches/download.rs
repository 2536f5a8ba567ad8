//! One file's download through the engine (`FileDownload`): split, validate,
//! count and (since issue 19) the digest of the lines handed out (K7), for
//! each validation level. `cargo bench -p fhir-async --bench download`.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fhir_async::{FileDownload, FileKind, PlannedFile, RetryPolicy, Validation};
use std::hint::black_box;

mod common;
use common::data;

fn planned() -> PlannedFile {
    PlannedFile {
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
    }
}

fn bench(c: &mut Criterion) {
    let d = data();
    let mut g = c.benchmark_group("download");
    g.throughput(Throughput::Bytes(d.len() as u64));
    g.sample_size(10);
    for (name, v) in [("none", Validation::None), ("structural", Validation::Structural), ("json", Validation::Json)] {
        g.bench_function(format!("feed_64MiB_identity_{name}"), |b| {
            b.iter(|| {
                let mut dl = FileDownload::new(planned(), &RetryPolicy::default()).unwrap().with_validation(v);
                let fhir_async::DownloadAction::Send { request } = dl.next_action(0).unwrap() else { panic!() };
                dl.handle_head(request.id, 200, &[], false, 0).unwrap();
                let mut n = 0u64;
                for chunk in d.chunks(256 << 10) {
                    dl.feed(request.id, chunk, 0, |l| n += l.len() as u64).unwrap();
                }
                dl.finish(request.id, 0, |l| n += l.len() as u64).unwrap();
                black_box(n)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
