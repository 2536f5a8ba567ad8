//! What the benches share: 64 MiB of one Observation line after another.

/// 64 MiB of NDJSON, one typical Observation per line.
pub fn data() -> Vec<u8> {
    let line = br#"{"resourceType":"Observation","id":"obs-000001","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/p-000001"},"effectiveDateTime":"2024-01-01T10:00:00Z","valueQuantity":{"value":72,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}"#;
    let mut v = Vec::with_capacity(64 << 20);
    while v.len() < (64 << 20) {
        v.extend_from_slice(line);
        v.push(b'\n');
    }
    v
}
