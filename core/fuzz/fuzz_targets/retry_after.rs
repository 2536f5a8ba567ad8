//! Retry-After parsing never panics and always lands within the floor and ceiling.
#![no_main]
use fhir_async::retry::{parse_retry_after, RetryAfter, RetryPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (value, date) = text.split_once('\n').map_or((text.as_ref(), None), |(a, b)| (a, Some(b)));
    let policy = RetryPolicy::default();
    let now = 1_767_225_600_000u64.wrapping_add(data.len() as u64 * 7_919_000);
    if let RetryAfter::Delay(ms) = parse_retry_after(Some(value), date, now, &policy) {
        assert!(ms >= policy.min_wait_ms && ms <= policy.max_wait_ms, "{ms}");
    }
});
