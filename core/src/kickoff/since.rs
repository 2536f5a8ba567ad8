//! The `_since` of the next incremental export (protocol D3, L5): the last export's
//! `transactionTime`, unless its `_until` was earlier: what changed after `_until` was not asked
//! for, so it must be asked for next time.

use super::ExportRequest;

impl ExportRequest {
    /// The `_since` for the export that follows this one, which ended with the manifest's
    /// `transactionTime` (protocol D3): min(`_until`, `transactionTime`) (L5). Either value that
    /// is not a FHIR instant (`YYYY-MM-DDThh:mm:ss[.f]` and `Z` or `±hh:mm`) is not compared:
    /// the `transactionTime` is kept.
    pub fn next_since(&self, transaction_time: &str) -> String {
        match (self.until.as_deref(), instant_ms(transaction_time)) {
            (Some(until), Some(t)) if instant_ms(until).is_some_and(|u| u < t) => until.to_owned(),
            _ => transaction_time.to_owned(),
        }
    }
}

/// A FHIR instant as Unix milliseconds (fractions past the millisecond cut).
fn instant_ms(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let d = b.get(from..from + len)?;
        d.iter().all(u8::is_ascii_digit).then(|| d.iter().fold(0, |n, c| n * 10 + i64::from(c - b'0')))
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if sep(i, b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let kept = digits.min(3);
        millis = num(i + 1, kept)? * 10_i64.pow(3 - kept as u32);
        i += 1 + digits;
    }
    let offset_min = match b.get(i..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let m = num(i + 1, 2)? * 60 + num(i + 4, 2)?;
            if *sign == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some((((days * 24 + hour) * 60 + minute - offset_min) * 60 + second) * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l5_instants_parse_with_offsets_and_fractions() {
        assert_eq!(instant_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(instant_ms("2026-01-01T00:00:00Z"), Some(1_767_225_600_000));
        assert_eq!(instant_ms("2026-01-01T01:00:00+01:00"), Some(1_767_225_600_000));
        assert_eq!(instant_ms("2025-12-31T19:00:00.250-05:00"), Some(1_767_225_600_250));
        assert_eq!(instant_ms("2026-01-01T00:00:00.123456789Z"), Some(1_767_225_600_123));
        assert_eq!(instant_ms("2024-02-29T12:00:00Z"), Some(1_709_208_000_000));
        for bad in [
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00.Z",
            "x",
            "",
            "2026-01-01T00:00:00+0100",
        ] {
            assert_eq!(instant_ms(bad), None, "{bad:?}");
        }
    }

    // protocol L5: with `_until` set, the next `_since` is min(`_until`, `transactionTime`)
    #[test]
    fn l5_the_next_since_is_the_earlier_of_until_and_the_transaction_time() {
        let t = "2026-01-01T00:00:00Z";
        assert_eq!(ExportRequest::default().next_since(t), t, "no _until: the transactionTime");
        let until = |u: &str| ExportRequest { until: Some(u.into()), ..Default::default() };
        assert_eq!(until("2025-06-01T00:00:00Z").next_since(t), "2025-06-01T00:00:00Z", "an earlier _until");
        assert_eq!(until("2027-01-01T00:00:00Z").next_since(t), t, "a later _until");
        assert_eq!(
            until("2026-01-01T00:30:00+01:00").next_since(t),
            "2026-01-01T00:30:00+01:00",
            "earlier once offset"
        );
        assert_eq!(until("2025-12-31T23:30:00-01:00").next_since(t), t, "later once offset");
        assert_eq!(until("soon").next_since(t), t, "an _until that is no instant is not compared");
        assert_eq!(until("2025-06-01T00:00:00Z").next_since("garbage"), "garbage");
    }
}
