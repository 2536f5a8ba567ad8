//! NDJSON splitter throughput.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fhir_async::LineSplitter;
use std::hint::black_box;

fn data() -> Vec<u8> {
    let line = br#"{"resourceType":"Observation","id":"obs-000001","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/p-000001"},"effectiveDateTime":"2024-01-01T10:00:00Z","valueQuantity":{"value":72,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}"#;
    let mut v = Vec::with_capacity(64 << 20);
    while v.len() < (64 << 20) {
        v.extend_from_slice(line);
        v.push(b'\n');
    }
    v
}

fn bench(c: &mut Criterion) {
    let d = data();
    let mut g = c.benchmark_group("ndjson");
    g.throughput(Throughput::Bytes(d.len() as u64));
    g.sample_size(20);
    for chunk in [64 << 10, 1 << 20] {
        g.bench_function(format!("split_64MiB_chunks_{}KiB", chunk >> 10), |b| {
            b.iter(|| {
                let mut s = LineSplitter::default();
                let mut n = 0u64;
                for c in d.chunks(chunk) {
                    s.feed(c, |l| n += l.len() as u64).unwrap();
                }
                s.finish(|l| n += l.len() as u64).unwrap();
                black_box(n)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
