//! Planning attachment fetches: one [`PlannedFile`] per resolved URL, with
//! the token rule (M4), the https rule (I4) and the size limit (M6), and a
//! deterministic file name (M8).

use super::find::resolve_attachment_url;
use super::{AttachmentMode, AttachmentOptions, AttachmentRef};
use crate::manifest::{FileKind, PlannedFile, TokenPolicy};
use crate::origin::Origin;
use sha1::{Digest, Sha1};
use std::collections::HashMap;

/// Plans attachment fetches, deduplicated by resolved URL (each fetched once).
#[derive(Debug, Clone)]
pub struct AttachmentPlan {
    policy: TokenPolicy,
    options: AttachmentOptions,
    base_https: bool,
    files: Vec<PlannedFile>,
    /// The Attachment `hash` of each planned URL: the first one a ref gave.
    hashes: Vec<Option<String>>,
    by_url: HashMap<String, usize>,
}

impl AttachmentPlan {
    /// An empty plan under the job's token rule and the attachment options.
    pub fn new(policy: TokenPolicy, options: AttachmentOptions) -> Self {
        let base_https = Origin::parse(&policy.base_url).is_some_and(|o| o.scheme == "https");
        AttachmentPlan { policy, options, base_https, files: Vec::new(), hashes: Vec::new(), by_url: HashMap::new() }
    }

    /// The options the plan was made with.
    pub fn options(&self) -> &AttachmentOptions {
        &self.options
    }

    /// The token rule the plan was made with (its `base_url` is the FHIR base).
    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    /// Resolves (M3), dedupes and plans one ref; returns its id (its index
    /// into [`files`](Self::files)). A URL already planned gives its id again.
    /// `None` when the mode is off or the URL cannot be an http(s) URL.
    pub fn add(&mut self, r: &AttachmentRef) -> Option<usize> {
        if self.options.mode == AttachmentMode::Off {
            return None;
        }
        let url = resolve_attachment_url(&r.url, &self.policy.base_url)?;
        if let Some(&id) = self.by_url.get(&url) {
            if self.hashes[id].is_none() {
                self.hashes[id].clone_from(&r.hash);
            }
            return Some(id);
        }
        let id = self.files.len();
        let https_only = self.base_https && Origin::parse(&url).is_some_and(|o| o.scheme != "https");
        let max = self.options.max_size;
        let blocked = if https_only {
            Some("an http: attachment URL under an https: base (protocol I4)".to_owned())
        } else {
            r.size.filter(|s| *s > max).map(|s| format!("over the attachment size limit: {s} bytes > {max}"))
        };
        self.files.push(PlannedFile {
            kind: FileKind::Attachment,
            index: id,
            resource_type: None,
            // M4: the FHIR origin or an allowed one (https under https), whatever
            // requiresAccessToken says; never another origin.
            send_token: self.policy.may_send_token(&url),
            expected_count: None,
            expected_bytes: None,
            opaque_format: Some(
                r.content_type.clone().filter(|c| !c.trim().is_empty()).unwrap_or_else(|| "*/*".into()),
            ),
            file_name: attachment_file_name(&url, r.content_type.as_deref()),
            max_bytes: Some(max),
            blocked,
            url: url.clone(),
        });
        self.hashes.push(r.hash.clone());
        self.by_url.insert(url, id);
        Some(id)
    }

    /// The planned files, by id.
    pub fn files(&self) -> &[PlannedFile] {
        &self.files
    }

    /// The `hash` (base64 SHA-1) the resources give for attachment `id`: the
    /// first one any ref to its URL gave, checked after download (M5).
    pub fn hash(&self, id: usize) -> Option<&str> {
        self.hashes.get(id)?.as_deref()
    }

    /// The id of a resolved URL, when planned.
    pub fn id_of(&self, resolved_url: &str) -> Option<usize> {
        self.by_url.get(resolved_url).copied()
    }

    /// How many attachments are planned.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether none is planned.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// M8: a deterministic file name without separators: the first 16 hex
/// digits of the SHA-1 of the resolved URL, a dot, and an extension from the
/// media type (`txt`, `pdf`, `html`, `xml`, `json`, `png`, `jpg`, ...; else
/// `bin`). The binding stores it under `attachments/`.
pub fn attachment_file_name(resolved_url: &str, content_type: Option<&str>) -> String {
    let digest = Sha1::digest(resolved_url.as_bytes());
    let hex = hex::encode(digest);
    format!("{}.{}", &hex[..16], extension(content_type))
}

fn extension(content_type: Option<&str>) -> &'static str {
    let m = content_type.map(super::media_type).unwrap_or_default();
    match m.as_str() {
        "text/plain" => "txt",
        "application/pdf" => "pdf",
        "text/html" => "html",
        "application/xhtml+xml" => "xhtml",
        "text/xml" | "application/xml" | "application/fhir+xml" => "xml",
        "application/json" | "application/fhir+json" => "json",
        "text/markdown" => "md",
        "text/csv" => "csv",
        "text/rtf" | "application/rtf" => "rtf",
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpg",
        "image/gif" => "gif",
        "image/tiff" => "tiff",
        "image/svg+xml" => "svg",
        "image/webp" => "webp",
        "application/dicom" => "dcm",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/zip" => "zip",
        "audio/mpeg" => "mp3",
        "audio/wav" | "audio/x-wav" => "wav",
        "video/mp4" => "mp4",
        _ => "bin",
    }
}
