//! URL origins and resolution (RFC 3986 / WHATWG URL via the `url` crate).

use url::Url;

/// A scheme + host + port triple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// The host, lower-cased.
    pub host: String,
    /// The port, defaulted by scheme.
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute http(s) URL; `None` for anything else.
    pub fn parse(url: &str) -> Option<Origin> {
        let u = Url::parse(url).ok()?;
        if u.scheme() != "http" && u.scheme() != "https" {
            return None;
        }
        Some(Origin {
            scheme: u.scheme().to_owned(),
            host: u.host_str()?.to_ascii_lowercase(),
            port: u.port_or_known_default()?,
        })
    }
}

/// Whether two URLs share an origin (false if either is not http(s)).
pub fn same_origin_urls(a: &str, b: &str) -> bool {
    matches!((Origin::parse(a), Origin::parse(b)), (Some(x), Some(y)) if x == y)
}

/// Resolves `reference` against `base` (keeps query strings), returning an
/// absolute http(s) URL or `None`.
pub fn resolve(base: &str, reference: &str) -> Option<String> {
    let reference = reference.trim();
    if reference.is_empty() {
        return None;
    }
    let joined = match Url::parse(reference) {
        Ok(abs) => abs,
        Err(url::ParseError::RelativeUrlWithoutBase) => Url::parse(base).ok()?.join(reference).ok()?,
        Err(_) => return None,
    };
    matches!(joined.scheme(), "http" | "https").then(|| joined.to_string())
}

/// Whether a URL is an https→http downgrade relative to `base`.
pub fn is_downgrade(base: &str, url: &str) -> bool {
    matches!((Origin::parse(base), Origin::parse(url)), (Some(b), Some(u)) if b.scheme == "https" && u.scheme == "http")
}

#[cfg(test)]
mod tests {
    use super::*;

    // protocol A8: relative Content-Location resolves against the request, query kept
    #[test]
    fn resolves_relative_and_keeps_query() {
        assert_eq!(
            resolve("https://h/fhir/$export?_type=Patient", "$export-poll-status?_jobId=42").as_deref(),
            Some("https://h/fhir/$export-poll-status?_jobId=42")
        );
        assert_eq!(resolve("https://h/fhir/$export", "/jobs/1").as_deref(), Some("https://h/jobs/1"));
        assert_eq!(resolve("https://h/a", "ftp://x/y"), None);
        assert_eq!(resolve("https://h/a", "   "), None);
    }

    #[test]
    fn origins() {
        assert!(same_origin_urls("https://h/a", "https://H:443/b"));
        assert!(!same_origin_urls("https://h/a", "http://h/a"));
        assert!(!same_origin_urls("https://h/a", "https://h:8443/a"));
        assert!(is_downgrade("https://h/a", "http://h/b"));
        assert!(!is_downgrade("http://h/a", "https://h/b"));
    }
}
