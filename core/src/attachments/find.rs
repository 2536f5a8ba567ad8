//! Finding the attachments a resource points at (M1, M2) and resolving their
//! URLs against the FHIR base (M3).

use super::{media_type, AttachmentOptions, AttachmentRef};
use serde_json::{Map, Value};
use url::Url;

/// The attachments of one resource to fetch (M1, M2):
/// `DocumentReference.content[].attachment`, `DiagnosticReport.presentedForm[]`,
/// `Media.content`, and with [`AttachmentOptions::all_elements`] every other
/// Attachment-shaped object (`url` and one of `contentType`, `size`, `hash`,
/// `title`). Only ones with a `url` and no `data`, whose media type passes
/// [`AttachmentOptions::types`], each pointer once.
pub fn find_attachments(resource: &Value, options: &AttachmentOptions) -> Vec<AttachmentRef> {
    let mut found = Vec::new();
    let Some(obj) = resource.as_object() else { return found };
    if options.all_elements {
        walk(resource, &mut String::new(), &mut found, options);
        return found;
    }
    let mut take = |pointer: String, v: Option<&Value>| {
        if let Some(r) = v.and_then(Value::as_object).and_then(|a| attachment_ref(pointer, a, options)) {
            found.push(r);
        }
    };
    match obj.get("resourceType").and_then(Value::as_str) {
        Some("DocumentReference") => {
            for (i, c) in array(obj.get("content")).iter().enumerate() {
                take(format!("/content/{i}/attachment"), c.get("attachment"));
            }
        }
        Some("DiagnosticReport") => {
            for (i, a) in array(obj.get("presentedForm")).iter().enumerate() {
                take(format!("/presentedForm/{i}"), Some(a));
            }
        }
        Some("Media") => take("/content".to_owned(), obj.get("content")),
        _ => {}
    }
    found
}

/// [`find_attachments`] on one NDJSON line. A line that is not a JSON object
/// gives none; a line without `"url"` in it is not parsed at all.
pub fn find_in_line(line: &[u8], options: &AttachmentOptions) -> Vec<AttachmentRef> {
    if memchr::memmem::find(line, b"\"url\"").is_none() {
        return Vec::new();
    }
    match serde_json::from_slice::<Value>(line) {
        Ok(v) => find_attachments(&v, options),
        Err(_) => Vec::new(),
    }
}

/// M3: an absolute http(s) URL stays as it is (normalized); anything else is
/// resolved against the FHIR base: `Binary/1` → `<base>/Binary/1` (the base
/// keeps its path, unlike URL resolution against a file URL); a path from
/// the root (`/fhir/Binary/1`) against the base's origin. `None` for what
/// cannot be an http(s) URL (`urn:`, `#contained`, an empty string).
pub fn resolve_attachment_url(url: &str, base_url: &str) -> Option<String> {
    let url = url.trim();
    if url.is_empty() || url.starts_with('#') {
        return None;
    }
    let resolved = match Url::parse(url) {
        Ok(abs) => abs,
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            let base = Url::parse(base_url.trim()).ok()?;
            if url.starts_with('/') {
                base.join(url).ok()?
            } else {
                let joined = format!("{}/{}", base.as_str().split(['?', '#']).next()?.trim_end_matches('/'), url);
                Url::parse(&joined).ok()?
            }
        }
        Err(_) => return None,
    };
    (matches!(resolved.scheme(), "http" | "https") && resolved.host_str().is_some()).then(|| resolved.to_string())
}

/// Whether a media type is asked for (M2): prefix match without parameters;
/// none given passes only when every type is asked for.
pub(crate) fn type_wanted(content_type: Option<&str>, types: &[String]) -> bool {
    if types.is_empty() {
        return true;
    }
    let Some(ct) = content_type.map(media_type).filter(|c| !c.is_empty()) else { return false };
    types.iter().map(|t| media_type(t)).any(|t| !t.is_empty() && ct.starts_with(&t))
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// An Attachment object → its ref, when it has a `url`, no `data`, and a wanted type.
fn attachment_ref(pointer: String, a: &Map<String, Value>, options: &AttachmentOptions) -> Option<AttachmentRef> {
    let url = a.get("url")?.as_str()?.trim();
    if url.is_empty() || a.get("data").is_some_and(|d| !d.is_null()) {
        return None;
    }
    let content_type = a.get("contentType").and_then(Value::as_str).map(str::to_owned);
    if !type_wanted(content_type.as_deref(), &options.types) {
        return None;
    }
    let size = match a.get("size") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let hash = a.get("hash").and_then(Value::as_str).map(str::to_owned);
    Some(AttachmentRef { pointer, url: url.to_owned(), content_type, size, hash })
}

/// Whether an object looks like an Attachment (M1, other elements).
fn attachment_shaped(o: &Map<String, Value>) -> bool {
    o.get("url").is_some_and(Value::is_string)
        && ["contentType", "size", "hash", "title"].iter().any(|k| o.contains_key(*k))
}

/// Every Attachment-shaped object, depth first (keys in sorted order; not inside one).
fn walk(v: &Value, pointer: &mut String, found: &mut Vec<AttachmentRef>, options: &AttachmentOptions) {
    let len = pointer.len();
    match v {
        Value::Object(o) if attachment_shaped(o) => {
            if let Some(r) = attachment_ref(pointer.clone(), o, options) {
                found.push(r);
            }
        }
        Value::Object(o) => {
            for (k, child) in o {
                pointer.push('/');
                pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
                walk(child, pointer, found, options);
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointer.push('/');
                pointer.push_str(&i.to_string());
                walk(child, pointer, found, options);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}
