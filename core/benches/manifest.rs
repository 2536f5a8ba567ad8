//! Manifest parser throughput.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fhir_async::Manifest;
use std::hint::black_box;

fn manifest(files: usize) -> Vec<u8> {
    let mut s = String::from(
        r#"{"transactionTime":"2026-01-01T00:00:00Z","request":"https://fhir.example/r4/$export","requiresAccessToken":true,"output":["#,
    );
    for i in 0..files {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"type":"Observation","url":"https://fhir.example/r4/files/{i:08}.ndjson","count":{}}}"#,
            1000 + i
        ));
    }
    s.push_str(r#"],"error":[{"type":"OperationOutcome","url":"https://fhir.example/r4/files/err.ndjson"}]}"#);
    s.into_bytes()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("manifest");
    for files in [10, 10_000] {
        let m = manifest(files);
        g.throughput(Throughput::Bytes(m.len() as u64));
        g.bench_function(format!("parse_{files}_files"), |b| {
            b.iter(|| black_box(Manifest::parse(black_box(&m)).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
