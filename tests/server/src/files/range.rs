//! Validators and byte ranges of file downloads (RFC 9110 §8.8, §13.1.5, §14).

use std::time::{Duration, SystemTime};

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

/// A file representation's validators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// Strong entity tag, quoted.
    pub etag: String,
    /// `Last-Modified` in Unix seconds.
    pub modified: u64,
}

impl Validators {
    /// Validators of file `name` of job `job` as served with (or without) gzip under URL
    /// generation `gen`; `variant` > 0 is a changed representation (fault `rangechange`: +1,
    /// fault `changeafter`'s second version: +2).
    /// `Last-Modified` is two seconds before the job was created (one more per variant), so
    /// every response is dated at least a second after it and the date is a strong validator
    /// (RFC 9110 §8.8.2.2).
    pub fn new(job: &str, name: &str, gzip: bool, gen: u64, variant: u64, created_ms: i64) -> Validators {
        let mut h = Sha256::new();
        for part in [job, name, if gzip { "gzip" } else { "identity" }, &gen.to_string(), &variant.to_string()] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let etag = format!("\"{}\"", hex::encode(&h.finalize()[..16]));
        let created = u64::try_from(created_ms / 1000).unwrap_or(0);
        Validators { etag, modified: created.saturating_sub(2) + variant.min(1) }
    }

    /// `Last-Modified` as an IMF-fixdate.
    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(self.modified))
    }

    /// Whether an `If-Range` value names this representation: a strong entity tag equal to
    /// ours (weak tags never match), or a date equal to `Last-Modified`.
    pub fn matches(&self, if_range: &str) -> bool {
        let v = if_range.trim();
        if v.starts_with('"') {
            return v == self.etag;
        }
        if v.starts_with("W/") {
            return false;
        }
        httpdate::parse_http_date(v)
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .is_some_and(|d| d.as_secs() == self.modified)
    }
}

/// One requested byte range, before the length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// `N-` or `N-M` (`last` inclusive).
    From {
        /// First byte.
        first: u64,
        /// Last byte, inclusive.
        last: Option<u64>,
    },
    /// `-S`: the last S bytes.
    Suffix(u64),
}

/// The single range of a `Range` header, if it is one well-formed `bytes` range. Anything else
/// (no header, another unit, several ranges, bad syntax) is ignored: the whole file is sent.
pub fn requested(h: &HeaderMap) -> Option<Spec> {
    let mut all = h.get_all(header::RANGE).iter();
    let v = all.next()?.to_str().ok()?.trim();
    if all.next().is_some() {
        return None;
    }
    let (unit, set) = v.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return None;
    }
    let (a, b) = set.trim().split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    if a.trim().is_empty() {
        return num(b).map(Spec::Suffix);
    }
    let first = num(a)?;
    if b.trim().is_empty() {
        return Some(Spec::From { first, last: None });
    }
    let last = num(b)?;
    (last >= first).then_some(Spec::From { first, last: Some(last) })
}

/// The bytes `[start, end)` a range selects in a representation of `total` bytes, or `None`
/// when it is unsatisfiable (416).
pub fn resolve(spec: Spec, total: u64) -> Option<(u64, u64)> {
    match spec {
        Spec::From { first, last } => {
            (first < total).then(|| (first, last.map_or(total, |l| l.saturating_add(1).min(total))))
        }
        Spec::Suffix(n) => (n > 0 && total > 0).then(|| (total - n.min(total), total)),
    }
}

/// Whether the request carries `If-Range` and it does not name this representation.
pub fn if_range_fails(h: &HeaderMap, v: &Validators) -> bool {
    h.get(header::IF_RANGE).is_some_and(|ir| !ir.to_str().is_ok_and(|s| v.matches(s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn range(v: &str) -> Option<Spec> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        requested(&h)
    }

    // issue 14 (protocol K1): the range forms the server honours, and the ones it ignores.
    #[test]
    fn parses_ranges() {
        assert_eq!(range("bytes=10-"), Some(Spec::From { first: 10, last: None }));
        assert_eq!(range("bytes=10-19"), Some(Spec::From { first: 10, last: Some(19) }));
        assert_eq!(range("Bytes = -5"), Some(Spec::Suffix(5)));
        for bad in ["bytes=5-1", "bytes=0-1,4-5", "items=0-1", "bytes=x-", "bytes=-", "bytes=+1-"] {
            assert_eq!(range(bad), None, "{bad}");
        }
        assert_eq!(resolve(Spec::From { first: 10, last: None }, 100), Some((10, 100)));
        assert_eq!(resolve(Spec::From { first: 10, last: Some(500) }, 100), Some((10, 100)));
        assert_eq!(resolve(Spec::From { first: 100, last: None }, 100), None);
        assert_eq!(resolve(Spec::Suffix(30), 100), Some((70, 100)));
        assert_eq!(resolve(Spec::Suffix(300), 100), Some((0, 100)));
        assert_eq!(resolve(Spec::Suffix(0), 100), None);
    }

    #[test]
    fn validators() {
        let v = Validators::new("job", "Patient-0.ndjson", false, 0, 0, 1_700_000_000_500);
        assert_eq!(v, Validators::new("job", "Patient-0.ndjson", false, 0, 0, 1_700_000_000_999));
        assert_ne!(v.etag, Validators::new("job", "Patient-0.ndjson", true, 0, 0, 0).etag);
        assert_ne!(v.etag, Validators::new("job", "Patient-0.ndjson", false, 0, 1, 0).etag);
        assert!(v.matches(&v.etag));
        assert!(!v.matches(&format!("W/{}", v.etag)));
        assert!(v.matches(&v.last_modified()));
        assert!(!v.matches("Thu, 01 Jan 1970 00:00:00 GMT"));
        assert!(!v.matches("garbage"));
    }
}
