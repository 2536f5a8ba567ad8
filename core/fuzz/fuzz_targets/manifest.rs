//! The manifest parser and the download plan never panic on any bytes.
#![no_main]
use fhir_async::{plan_downloads, Manifest, TokenPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        let policy = TokenPolicy { base_url: "https://fhir.example/r4".into(), allowed_origins: vec!["https://storage.example".into()] };
        for f in plan_downloads(&m, "https://fhir.example/r4/jobs/1", &policy) {
            assert!(!f.file_name.contains('/') && !f.file_name.contains(".."));
            if f.send_token {
                assert!(f.blocked.is_none());
            }
        }
    }
});
