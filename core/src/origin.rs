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

/// A URL as it may be shown: without its query, fragment and user info
/// (protocol K10: a signed URL's query string is a credential, so no message,
/// log line or event carries it). `https://s3/f.ndjson?X-Amz-Signature=...`
/// becomes `https://s3/f.ndjson?…`.
pub fn redact_url(url: &str) -> String {
    let (head, cut) = match url.find(['?', '#']) {
        Some(i) => (&url[..i], true),
        None => (url, false),
    };
    // `scheme://user:pass@host/...`: the user info goes too.
    let head = match head.find("://") {
        Some(s) => {
            let rest = &head[s + 3..];
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{}{}", &head[..s + 3], &rest[at + 1..]),
                None => head.to_owned(),
            }
        }
        None => head.to_owned(),
    };
    if cut {
        format!("{head}?…")
    } else {
        head
    }
}

/// A message with every `http(s)://` URL in it redacted as [`redact_url`]
/// does (a transport library's error text may quote the URL it was given).
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("http://").into_iter().chain(rest.find("https://")).min() {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')'))
            .map_or(rest.len(), |e| i + e);
        out.push_str(&redact_url(&rest[i..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod redact_tests {
    use super::{redact_text, redact_url};

    #[test]
    fn k10_urls_inside_messages_lose_their_query() {
        let m = "io: Connection reset for url (https://h/f?sig=SECRET) and http://x/y?token=T2 done";
        let r = redact_text(m);
        assert!(!r.contains("SECRET") && !r.contains("T2"), "{r}");
        assert_eq!(r, "io: Connection reset for url (https://h/f?…) and http://x/y?… done");
    }

    #[test]
    fn k10_signed_urls_lose_their_query() {
        let signed = "https://s3.example/b/Patient.ndjson?X-Amz-Credential=AKIA&X-Amz-Signature=deadbeef";
        assert_eq!(redact_url(signed), "https://s3.example/b/Patient.ndjson?…");
        assert_eq!(redact_url("https://u:p@h/x#frag"), "https://h/x?…");
        assert_eq!(redact_url("https://h/fhir/Patient.ndjson"), "https://h/fhir/Patient.ndjson");
        assert_eq!(redact_url("not a url?sig=1"), "not a url?…");
    }
}
