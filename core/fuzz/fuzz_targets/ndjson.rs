//! The NDJSON splitter and gzip decoder never panic, and chunking never changes the lines.
#![no_main]
use fhir_async::{BodyDecoder, LineSplitter};
use libfuzzer_sys::fuzz_target;

fn split(data: &[u8], chunk: usize, max: usize) -> Result<Vec<Vec<u8>>, ()> {
    let mut s = LineSplitter::new(max);
    let mut out = Vec::new();
    for c in data.chunks(chunk) {
        s.feed(c, |l| out.push(l.to_vec())).map_err(|_| ())?;
    }
    s.finish(|l| out.push(l.to_vec())).map_err(|_| ())?;
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let chunk = usize::from(first % 31) + 1;
    let whole = split(rest, rest.len().max(1), 1 << 20);
    let chunked = split(rest, chunk, 1 << 20);
    assert_eq!(whole, chunked);
    if let Ok(mut d) = BodyDecoder::new(Some("gzip")) {
        let mut n = 0usize;
        for c in rest.chunks(chunk) {
            if d.decode(c, |b| -> Result<(), ()> { n += b.len(); Ok(()) }).is_err() {
                return;
            }
        }
        let _ = d.finish(|b| -> Result<(), ()> { n += b.len(); Ok(()) });
    }
});
