//! Inline mode (M7): fetched attachments become `data`, `size`, `hash` and
//! `contentType` in the line, `url` kept. Only the Attachment objects are
//! rewritten; every other byte of the line stays as the server sent it.

use super::decode::Fetched;
use super::find::{find_attachments, resolve_attachment_url};
use super::AttachmentOptions;
use crate::ndjson::DEFAULT_MAX_LINE;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};

/// M7: the line with each fetched attachment's `data` (base64), `size`,
/// `hash` (base64 SHA-1) and `contentType` set, `url` kept. `lookup` gets
/// the RESOLVED URL ([`resolve_attachment_url`] against `base_url`) and gives
/// the fetched attachment, or `None` when it was not fetched (M9: left as it
/// is). `None` when nothing changed (no attachments, none fetched, or a line
/// that is not a JSON object). Attachments already carrying `data` are never
/// touched (M2). M6: an attachment that would make the line longer than
/// [`DEFAULT_MAX_LINE`] (what the NDJSON readers take) is left out, as if not
/// fetched (its bytes stay available in files mode).
pub fn inline_attachments<'a>(
    line: &[u8],
    base_url: &str,
    options: &AttachmentOptions,
    lookup: impl Fn(&str) -> Option<&'a Fetched>,
) -> Option<Vec<u8>> {
    inline_within(line, base_url, options, lookup, DEFAULT_MAX_LINE)
}

/// [`inline_attachments`] with the longest line allowed.
pub(crate) fn inline_within<'a>(
    line: &[u8],
    base_url: &str,
    options: &AttachmentOptions,
    lookup: impl Fn(&str) -> Option<&'a Fetched>,
    max_line: usize,
) -> Option<Vec<u8>> {
    let resource: Value = serde_json::from_slice(line).ok()?;
    let mut length = line.len();
    // (start, end, replacement) of each Attachment object, in line order.
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for r in find_attachments(&resource, options) {
        let Some(fetched) = resolve_attachment_url(&r.url, base_url).and_then(|u| lookup(&u)) else { continue };
        let Some(Value::Object(original)) = resource.pointer(&r.pointer) else { continue };
        let Some((start, end)) = span(line, &r.pointer) else { continue };
        let mut a: Map<String, Value> = original.clone();
        a.insert("data".into(), Value::String(STANDARD.encode(&fetched.bytes)));
        a.insert("size".into(), Value::from(fetched.size));
        a.insert("hash".into(), Value::String(fetched.sha1.clone()));
        if let Some(ct) = &fetched.content_type {
            a.insert("contentType".into(), Value::String(ct.clone()));
        }
        let text = serde_json::to_vec(&a).ok()?;
        let grown = (length + text.len()).saturating_sub(end - start);
        if grown > max_line {
            continue; // M6: the line would outgrow what a reader takes
        }
        length = grown;
        edits.push((start, end, text));
    }
    if edits.is_empty() {
        return None;
    }
    edits.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(line.len() + edits.iter().map(|e| e.2.len()).sum::<usize>());
    let mut at = 0;
    for (start, end, text) in edits {
        if start < at {
            return None; // nested spans cannot happen (an Attachment holds no Attachment); be safe
        }
        out.extend_from_slice(&line[at..start]);
        out.extend_from_slice(&text);
        at = end;
    }
    out.extend_from_slice(&line[at..]);
    Some(out)
}

/// The byte range of the value at a JSON pointer inside a JSON text that is
/// known to parse. `None` when the pointer leads nowhere.
pub(crate) fn span(text: &[u8], pointer: &str) -> Option<(usize, usize)> {
    let mut at = skip_ws(text, 0);
    for token in pointer.split('/').skip(1) {
        let key = token.replace("~1", "/").replace("~0", "~");
        at = match text.get(at)? {
            b'{' => member(text, at, &key)?,
            b'[' => element(text, at, key.parse().ok()?)?,
            _ => return None,
        };
    }
    Some((at, skip_value(text, at)?))
}

/// In the object at `at`, where the value of `key` starts.
fn member(text: &[u8], at: usize, key: &str) -> Option<usize> {
    let mut i = skip_ws(text, at + 1);
    while *text.get(i)? != b'}' {
        let key_end = skip_value(text, i)?;
        let name: String = serde_json::from_slice(&text[i..key_end]).ok()?;
        i = skip_ws(text, key_end);
        if *text.get(i)? != b':' {
            return None;
        }
        i = skip_ws(text, i + 1);
        if name == key {
            return Some(i);
        }
        i = skip_ws(text, skip_value(text, i)?);
        if *text.get(i)? == b',' {
            i = skip_ws(text, i + 1);
        }
    }
    None
}

/// In the array at `at`, where element `index` starts.
fn element(text: &[u8], at: usize, index: usize) -> Option<usize> {
    let mut i = skip_ws(text, at + 1);
    let mut n = 0;
    while *text.get(i)? != b']' {
        if n == index {
            return Some(i);
        }
        i = skip_ws(text, skip_value(text, i)?);
        if *text.get(i)? == b',' {
            i = skip_ws(text, i + 1);
        }
        n += 1;
    }
    None
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while text.get(i).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// Where the value starting at `i` ends (exclusive).
fn skip_value(text: &[u8], i: usize) -> Option<usize> {
    match *text.get(i)? {
        b'"' => {
            let mut j = i + 1;
            loop {
                match *text.get(j)? {
                    b'\\' => j += 2,
                    b'"' => return Some(j + 1),
                    _ => j += 1,
                }
            }
        }
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *text.get(j)? {
                    b'"' => {
                        j = skip_value(text, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while text.get(j).is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')) {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}
