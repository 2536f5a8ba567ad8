//! Measures raw NDJSON generation speed (no HTTP): `cargo run --release -p fhir-async-testserver --example gen_rate [PATIENTS]`.

use std::time::Instant;

use fhir_async_testserver::data::{Dataset, TYPES};

fn main() {
    let patients: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let ds = Dataset::new(patients, 1);
    let mut buf = Vec::with_capacity(1 << 20);
    let mut total = 0usize;
    let t = Instant::now();
    for ty in 0..TYPES.len() {
        let mut p = 0;
        for i in 0..ds.count(ty) {
            while ds.start(ty, p + 1) <= i {
                p += 1;
            }
            ds.write(&mut buf, ty, i, p);
            if buf.len() > 64 * 1024 {
                total += buf.len();
                buf.clear();
            }
        }
    }
    total += buf.len();
    let s = t.elapsed().as_secs_f64();
    println!("generated {total} bytes in {s:.2}s: {:.2} GB/s (one core)", total as f64 / 1e9 / s);
}
