//! NDJSON splitter throughput.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fhir_async::LineSplitter;
use std::hint::black_box;

mod common;
use common::data;

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
