//! Wall-clock helpers: FHIR instants and HTTP dates.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::data::{civil_from_days, days_from_civil};

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Formats Unix milliseconds as a FHIR instant `YYYY-MM-DDThh:mm:ss.sssZ`.
pub fn instant_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", s / 3600, s / 60 % 60, s % 60, ms.rem_euclid(1000))
}

/// An IMF-fixdate `secs_from_now` seconds from now.
pub fn http_date_in(secs_from_now: u64) -> String {
    let now = SystemTime::now();
    // Clamp absurd values (a fault spec may say retry=18446744073709551615) to ~100 years.
    let when = now.checked_add(Duration::from_secs(secs_from_now.min(3_155_760_000))).unwrap_or(now);
    httpdate::fmt_http_date(when)
}

/// Parses a FHIR date, dateTime or instant (`YYYY[-MM[-DD[Thh:mm[:ss[.fff]][Z|±hh:mm]]]]`)
/// into Unix milliseconds (UTC when no zone is given).
pub fn parse_instant(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    let y = digits(0..4)?;
    let (mut m, mut d) = (1, 1);
    let mut pos = 4;
    if b.len() > pos {
        if b[pos] != b'-' {
            return None;
        }
        m = digits(5..7)?;
        pos = 7;
    }
    if b.len() > pos {
        if b[pos] != b'-' {
            return None;
        }
        d = digits(8..10)?;
        pos = 10;
    }
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, m as u32, d as u32) * 86_400;
    let mut ms = 0;
    if b.len() > pos {
        if b[pos] != b'T' {
            return None;
        }
        let hh = digits(11..13)?;
        if b.get(13) != Some(&b':') {
            return None;
        }
        let mm = digits(14..16)?;
        pos = 16;
        let mut ss = 0;
        if b.get(pos) == Some(&b':') {
            ss = digits(17..19)?;
            pos = 19;
            if b.get(pos) == Some(&b'.') {
                let start = pos + 1;
                let mut end = start;
                while b.get(end).is_some_and(u8::is_ascii_digit) {
                    end += 1;
                }
                if end == start {
                    return None;
                }
                let frac = &s[start..end.min(start + 3)];
                ms = frac.parse::<i64>().ok()? * 10i64.pow(3 - frac.len() as u32);
                pos = end;
            }
        }
        if hh > 23 || mm > 59 || ss > 60 {
            return None;
        }
        secs += hh * 3600 + mm * 60 + ss;
        match b.get(pos) {
            None | Some(b'Z') if b.len() <= pos + 1 => {}
            Some(&sign @ (b'+' | b'-')) if b.len() == pos + 6 && b[pos + 3] == b':' => {
                let off = digits(pos + 1..pos + 3)? * 3600 + digits(pos + 4..pos + 6)? * 60;
                secs -= if sign == b'+' { off } else { -off };
            }
            _ => return None,
        }
    }
    Some(secs * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants() {
        assert_eq!(parse_instant("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_instant("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_instant("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_instant("1970-01-01T00:00:00.25Z"), Some(250));
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(parse_instant("2020-13-01"), None);
        assert_eq!(instant_ms(1500), "1970-01-01T00:00:01.500Z");
    }
}
