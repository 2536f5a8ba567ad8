//! When to poll next: `Retry-After` in every form, clamped, and jittered
//! exponential backoff when the server gives no hint (protocol B3, B4).

use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};

/// Timing and retry limits. Every field has a sensible default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RetryPolicy {
    /// The shortest wait between two polls, whatever the server says (ms).
    /// Also the wait when `Retry-After` is in the past or zero.
    pub min_wait_ms: u64,
    /// The longest wait between two polls, whatever the server says (ms).
    pub max_wait_ms: u64,
    /// First backoff delay when the server sends no `Retry-After` (ms).
    pub initial_backoff_ms: u64,
    /// Cap on the backoff delay (ms).
    pub max_backoff_ms: u64,
    /// Backoff growth factor, in percent (200 = doubling).
    pub backoff_factor_percent: u32,
    /// Jitter as a percentage of the delay (20 = ±20 %).
    pub jitter_percent: u32,
    /// Seed for the jitter, so runs are reproducible.
    pub seed: u64,
    /// Failed polls in a row (5xx, 429, transient OperationOutcome, resets)
    /// before the job gives up.
    pub max_retries: u32,
    /// How many times a kick-off answered with 429 is retried (protocol A9).
    pub max_kickoff_retries: u32,
    /// How many times a file download is retried after 5xx or a reset (protocol E6).
    pub max_download_retries: u32,
    /// Read timeout for each request (ms); must exceed a long-polling hold (G4).
    pub request_timeout_ms: u64,
    /// The ceiling on a status, manifest, result or token answer's body, in
    /// bytes (protocol K9; default 256 MiB): each such [`crate::Request`]
    /// carries it as `max_body`, and a longer body ends with
    /// `response_too_large`. File bodies are streamed (their lines have
    /// `DownloadOptions::max_line`); error bodies are read up to
    /// [`crate::download::MAX_ERROR_BODY`].
    pub max_response_bytes: u64,
}

/// The default [`RetryPolicy::max_response_bytes`]: 256 MiB (a manifest of a
/// million files is about 135 MB).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 256 << 20;

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            min_wait_ms: 1_000,
            max_wait_ms: 3_600_000,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            backoff_factor_percent: 200,
            jitter_percent: 20,
            seed: 0x5eed,
            max_retries: 10,
            max_kickoff_retries: 3,
            max_download_retries: 5,
            request_timeout_ms: 120_000,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// What a `Retry-After` header said, once understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// Wait this many milliseconds (already clamped to the policy).
    Delay(u64),
    /// No usable value (absent or garbage): fall back to backoff.
    Absent,
}

/// Parses `Retry-After` (or Netsmart's `X-RetryAfter`, divergence 5) into a
/// delay, clamped to `[min_wait_ms, max_wait_ms]`. See [`read_retry_after`].
pub fn parse_retry_after(
    value: Option<&str>,
    date_header: Option<&str>,
    now_ms: u64,
    policy: &RetryPolicy,
) -> RetryAfter {
    read_retry_after(value, date_header, now_ms, policy).0
}

/// Epoch seconds from 2001 to the year 5138.
const EPOCH_SECONDS: std::ops::Range<u64> = 1_000_000_000..100_000_000_000;
/// Epoch milliseconds from 2001 to the year 33658.
const EPOCH_MILLIS: std::ops::Range<u64> = 1_000_000_000_000..1_000_000_000_000_000;

/// Parses `Retry-After` like [`parse_retry_after`], and also returns a note
/// for the user when the server asked for more than `max_wait_ms` and the
/// wait was cut to it (a silent cut once hid a 59-minute stall: issue 10).
///
/// * delta-seconds must match `^\d+$` (an unanchored match is the bug that
///   sends HTTP-dates down the seconds path in other clients);
/// * a number that reads as Unix time in seconds (10⁹..10¹¹) or milliseconds
///   (10¹²..10¹⁵) is an instant, not a delay: some servers send
///   `Date.now() + block` (`1796033082012`);
/// * all three HTTP-date forms (IMF-fixdate, RFC 850, asctime) are accepted;
/// * instants are measured from the response's `Date` header when it has
///   one, so a skewed client clock does not matter; a past instant waits the
///   minimum;
/// * anything else is [`RetryAfter::Absent`].
pub fn read_retry_after(
    value: Option<&str>,
    date_header: Option<&str>,
    now_ms: u64,
    policy: &RetryPolicy,
) -> (RetryAfter, Option<String>) {
    let Some(raw) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return (RetryAfter::Absent, None);
    };
    // Measure instants against the server's own clock when it said what time it is.
    let reference_ms = || date_header.and_then(parse_http_date_ms).unwrap_or(now_ms);
    let (wanted_ms, reading) = if raw.bytes().all(|b| b.is_ascii_digit()) {
        // Anchored: digits only. Saturate rather than overflow on absurd lengths.
        let n: u64 = raw.parse().unwrap_or(u64::MAX);
        if EPOCH_MILLIS.contains(&n) {
            (n.saturating_sub(reference_ms()), "an instant in Unix milliseconds")
        } else if EPOCH_SECONDS.contains(&n) {
            (n.saturating_mul(1000).saturating_sub(reference_ms()), "an instant in Unix seconds")
        } else {
            (n.saturating_mul(1000), "seconds")
        }
    } else {
        let Some(at_ms) = parse_http_date_ms(raw) else {
            return (RetryAfter::Absent, None);
        };
        (at_ms.saturating_sub(reference_ms()), "an HTTP date")
    };
    let max = policy.max_wait_ms.max(policy.min_wait_ms);
    let note = (wanted_ms > max).then(|| {
        format!(
            "Retry-After {raw:?} (read as {reading}) asks for a wait of {} s; waiting {} s instead, the configured maximum (retry.maxWaitMs)",
            wanted_ms / 1000,
            max / 1000
        )
    });
    (RetryAfter::Delay(wanted_ms.clamp(policy.min_wait_ms, max)), note)
}

/// A per-job (or per-file) jitter seed from the policy's seed and something
/// that differs between jobs (the status URL, a file URL, the start time):
/// deterministic, yet 1,000 jobs that hit the same 503 do not retry in lockstep (B4).
pub fn derive_seed(seed: u64, salt: &[u8]) -> u64 {
    // FNV-1a over the salt, then mixed with the seed.
    let h = salt.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    splitmix64(seed ^ h)
}

/// Parses any of the three HTTP-date forms into Unix milliseconds.
pub fn parse_http_date_ms(value: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(value.trim()).ok()?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(d.as_millis()).ok()
}

/// Formats Unix milliseconds as an IMF-fixdate (for tests and the server).
pub fn format_http_date(ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

/// The backoff delay before attempt `attempt` (0-based): exponential, capped,
/// with deterministic jitter derived from the policy seed and the attempt.
pub fn backoff_ms(policy: &RetryPolicy, attempt: u32) -> u64 {
    let factor = f64::from(policy.backoff_factor_percent.max(100)) / 100.0;
    let base = (policy.initial_backoff_ms as f64) * factor.powi(attempt.min(64) as i32);
    let capped = if base.is_finite() { base.min(policy.max_backoff_ms as f64) } else { policy.max_backoff_ms as f64 };
    let jitter_span = capped * f64::from(policy.jitter_percent.min(100)) / 100.0;
    // A value in [-1, 1) from the seed and the attempt: reproducible, no RNG state.
    let unit = (splitmix64(policy.seed ^ u64::from(attempt)) >> 11) as f64 / (1u64 << 53) as f64;
    let jittered = capped + jitter_span * (unit * 2.0 - 1.0);
    let ms = if jittered.is_finite() && jittered > 0.0 { jittered as u64 } else { 0 };
    ms.clamp(policy.min_wait_ms, policy.max_wait_ms.max(policy.min_wait_ms))
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { min_wait_ms: 1_000, max_wait_ms: 3_600_000, ..RetryPolicy::default() }
    }
    const NOW: u64 = 1_780_000_000_000;

    // protocol B3
    #[test]
    fn delta_seconds() {
        assert_eq!(parse_retry_after(Some("120"), None, NOW, &policy()), RetryAfter::Delay(120_000));
        assert_eq!(parse_retry_after(Some(" 5 "), None, NOW, &policy()), RetryAfter::Delay(5_000));
    }

    // protocol B3: zero and past dates go to the floor, never a zero-delay loop
    #[test]
    fn zero_and_past_hit_the_floor() {
        assert_eq!(parse_retry_after(Some("0"), None, NOW, &policy()), RetryAfter::Delay(1_000));
        let past = format_http_date(NOW - 60_000);
        assert_eq!(parse_retry_after(Some(&past), None, NOW, &policy()), RetryAfter::Delay(1_000));
    }

    // protocol B3: all three HTTP-date forms
    #[test]
    fn every_http_date_form() {
        let date = Some("Sun, 06 Nov 1994 08:49:37 GMT");
        for form in ["Sun, 06 Nov 1994 08:50:37 GMT", "Sunday, 06-Nov-94 08:50:37 GMT", "Sun Nov  6 08:50:37 1994"] {
            assert_eq!(parse_retry_after(Some(form), date, NOW, &policy()), RetryAfter::Delay(60_000), "{form}");
        }
    }

    // protocol B3 [R]: the Date header absorbs client clock skew
    #[test]
    fn date_header_absorbs_skew() {
        // The client clock is 1 hour ahead of the server's.
        let server_now = NOW - 3_600_000;
        let at = format_http_date(server_now + 30_000);
        let date = format_http_date(server_now);
        assert_eq!(parse_retry_after(Some(&at), Some(&date), NOW, &policy()), RetryAfter::Delay(30_000));
        // Without a Date header the skew would make it look past: the floor.
        assert_eq!(parse_retry_after(Some(&at), None, NOW, &policy()), RetryAfter::Delay(1_000));
    }

    // protocol B3 / divergence 5: nonsense never yields NaN, zero or a panic
    #[test]
    fn nonsense_values() {
        for garbage in ["-5", "1.5", "soon", "12abc", "Wed, 99 Foo 2026", "", "   ", "١٢"] {
            assert_eq!(parse_retry_after(Some(garbage), None, NOW, &policy()), RetryAfter::Absent, "{garbage:?}");
        }
        // Enormous: clamped to the ceiling, no overflow.
        assert_eq!(
            parse_retry_after(Some("99999999999999999999999999"), None, NOW, &policy()),
            RetryAfter::Delay(3_600_000)
        );
        // Epoch-looking and plausible: an instant 90 s ahead.
        let epoch = ((NOW / 1000) + 90).to_string();
        assert_eq!(parse_retry_after(Some(&epoch), None, NOW, &policy()), RetryAfter::Delay(90_000));
        // An epoch instant in the past: the floor.
        assert_eq!(parse_retry_after(Some("1000000000"), None, NOW, &policy()), RetryAfter::Delay(1_000));
    }

    // protocol B3, issue 10 §2: an epoch time in milliseconds is an instant
    // (measured against Date), not 57 years clamped to an hour
    #[test]
    fn epoch_milliseconds_are_an_instant() {
        let server_now = NOW - 7_000; // the client clock is 7 s ahead
        let at = (server_now + 300_000).to_string();
        let date = format_http_date(server_now);
        let (delay, note) = read_retry_after(Some(&at), Some(&date), NOW, &policy());
        assert_eq!(delay, RetryAfter::Delay(300_000));
        assert_eq!(note, None, "no clamp, no warning");
        // The observed value itself, against a clock 5 minutes before it.
        let (delay, _) = read_retry_after(Some("1796033082012"), None, 1_796_033_082_012 - 300_000, &policy());
        assert_eq!(delay, RetryAfter::Delay(300_000));
        // Epoch seconds the same way.
        let secs = ((server_now + 42_000) / 1000).to_string();
        assert_eq!(read_retry_after(Some(&secs), Some(&date), NOW, &policy()).0, RetryAfter::Delay(42_000));
    }

    // issue 10 §2: any cut to the ceiling is a note for the user
    #[test]
    fn a_clamp_is_a_note() {
        let (delay, note) = read_retry_after(Some("7200"), None, NOW, &policy());
        assert_eq!(delay, RetryAfter::Delay(3_600_000));
        let note = note.expect("a clamp is reported");
        assert!(note.contains("7200") && note.contains("3600 s"), "{note}");
        let far = (NOW + 86_400_000).to_string();
        assert!(read_retry_after(Some(&far), None, NOW, &policy()).1.is_some_and(|n| n.contains("milliseconds")));
        assert_eq!(read_retry_after(Some("120"), None, NOW, &policy()).1, None);
    }

    // protocol B4: exponential, capped, jittered, reproducible
    #[test]
    fn backoff_grows_caps_and_jitters_deterministically() {
        let p = RetryPolicy { jitter_percent: 0, ..policy() };
        assert_eq!(backoff_ms(&p, 0), 1_000);
        assert_eq!(backoff_ms(&p, 1), 2_000);
        assert_eq!(backoff_ms(&p, 3), 8_000);
        assert_eq!(backoff_ms(&p, 30), 60_000);
        assert_eq!(backoff_ms(&p, u32::MAX), 60_000);
        let j = policy();
        let a: Vec<u64> = (0..8).map(|i| backoff_ms(&j, i)).collect();
        let b: Vec<u64> = (0..8).map(|i| backoff_ms(&j, i)).collect();
        assert_eq!(a, b);
        for (i, d) in a.iter().enumerate() {
            let nominal = (1_000u64 << i).min(60_000) as f64;
            assert!((*d as f64) >= nominal * 0.8 - 1.0 && (*d as f64) <= nominal * 1.2 + 1.0);
        }
        let other_seed = RetryPolicy { seed: 7, ..policy() };
        assert_ne!(a, (0..8).map(|i| backoff_ms(&other_seed, i)).collect::<Vec<_>>());
    }
}
