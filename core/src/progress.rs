//! What a progress bar shows. `X-Progress` is display text only and never
//! drives control flow (protocol B2, divergence 1).

use serde::{Deserialize, Serialize};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Phase {
    /// Created, kick-off not sent yet.
    Pending,
    /// The kick-off is being sent (or retried after a 429).
    KickingOff,
    /// Waiting for the server to finish.
    Polling,
    /// Fetching the result (303 target or further manifest pages).
    FetchingResult,
    /// A cancel is being sent.
    Cancelling,
    /// Finished, with an outcome.
    Done,
    /// Stopped with an error.
    Failed,
}

/// A snapshot for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Progress {
    /// The phase.
    pub phase: Phase,
    /// The server's `X-Progress` text, as sent (trimmed, at most 200 chars).
    pub message: Option<String>,
    /// A percentage read from that text when it carries one (0–100).
    pub percent: Option<f64>,
    /// Status polls sent so far.
    pub polls: u32,
    /// When the next poll is due (Unix ms), while polling.
    pub next_poll_at_ms: Option<u64>,
    /// Milliseconds until the next poll, relative to the `now` asked with.
    pub next_poll_in_ms: Option<u64>,
    /// The status URL, once known.
    pub status_url: Option<String>,
    /// Files already listed by partial manifests (protocol B7).
    pub partial_files: usize,
    /// The latest warning (a clamped `Retry-After`, ...), for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Reads a percentage out of free text: `"45% complete"`, `"45.5 %"`,
/// `"3 of 4"`, `"3/4"`. Always finite and within 0–100.
pub fn parse_percent(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    // "NN%" / "NN.N %"
    if let Some(pct) = text.find('%') {
        let head = text[..pct].trim_end();
        // The number is the run of ASCII digits and dots just before the `%`
        // (byte-wise: those are one byte each, so the slice stays on a char boundary).
        let start = head.len() - head.bytes().rev().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        if let Ok(v) = head[start..].parse::<f64>() {
            return finite_percent(v);
        }
    }
    // "N of M" / "N/M"
    let numbers: Vec<f64> = text
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    let has_ratio = text.contains('/') || text.contains(" of ");
    if has_ratio && numbers.len() == 2 && numbers[1] > 0.0 && !bytes.is_empty() {
        return finite_percent(numbers[0] / numbers[1] * 100.0);
    }
    None
}

fn finite_percent(v: f64) -> Option<f64> {
    v.is_finite().then(|| v.clamp(0.0, 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    // protocol B2: percentage surfaced when the text carries one
    #[test]
    fn percentages() {
        assert_eq!(parse_percent("45% complete"), Some(45.0));
        assert_eq!(parse_percent("Processing: 12.5 %"), Some(12.5));
        assert_eq!(parse_percent("3 of 4 types"), Some(75.0));
        assert_eq!(parse_percent("3/4"), Some(75.0));
        assert_eq!(parse_percent("250%"), Some(100.0));
        assert_eq!(parse_percent("in-progress"), None);
        assert_eq!(parse_percent("completed"), None);
        assert_eq!(parse_percent("1/0"), None);
        assert_eq!(parse_percent("%"), None);
        assert_eq!(parse_percent(""), None);
        // Found by the `response` fuzz target: a multi-byte char before the number.
        assert_eq!(parse_percent("é5%"), Some(5.0));
        assert_eq!(parse_percent("ü%"), None);
        assert_eq!(parse_percent("进度 42% 完成"), Some(42.0));
    }
}
