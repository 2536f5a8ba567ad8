//! The Bulk Data manifest (STU2, STU3 and the STU4 ballot) and the download
//! plan derived from it, with the token rules (protocol D, E1, I2–I4).

use crate::origin::Origin;
use serde::{de, Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A completion manifest. Unknown keys are ignored; both the STU2/STU3 `error`
/// and the STU4 `outcome` arrays are read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Manifest {
    /// The instant the export reflects; the next incremental export's `_since` (D3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_time: Option<String>,
    /// The kick-off URL (required in STU2/STU3, gone in STU4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// Whether file downloads need the bearer token. Accepts `true`/`false` and
    /// the strings `"true"`/`"false"` (divergence 10). When absent the engine
    /// assumes `true`, which still never sends the token off the FHIR origin.
    #[serde(default = "default_true", deserialize_with = "bool_or_string")]
    pub requires_access_token: bool,
    /// The data files (required: a body without `output` is not a manifest).
    #[serde(deserialize_with = "files")]
    pub output: Vec<ManifestFile>,
    /// OperationOutcome files (STU2/STU3 name).
    #[serde(default, deserialize_with = "files")]
    pub error: Vec<ManifestFile>,
    /// OperationOutcome files (STU4 name for `error`).
    #[serde(default, deserialize_with = "files", skip_serializing_if = "Vec::is_empty")]
    pub outcome: Vec<ManifestFile>,
    /// Files of transaction Bundles of deletions (with `_since`).
    #[serde(default, deserialize_with = "files", skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<ManifestFile>,
    /// Paging links (STU3 `allowPartialManifests`).
    #[serde(default, deserialize_with = "links", skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<ManifestLink>,
    /// `extension`: an object in STU2/STU3, an array of Extensions in STU4. Kept as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(type = "Json", optional))]
    pub extension: Option<Value>,
    /// STU3 `outputOrganizedBy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_organized_by: Option<String>,
    /// A non-standard `message` some servers add (HealthConnect, HAPI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// STU4 `manifestType` (L12): absent means a `BulkDataManifest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_type: Option<String>,
    /// A manifest-wide `outputFormat`, for files that do not give their own
    /// (L10); absent means `application/fhir+ndjson`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    /// What the reader noticed about the manifest's shape (L10, L12: both
    /// `outcome` and `error`, an unknown `manifestType`): the job adds them to
    /// its warnings. Not part of the manifest's JSON.
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// The media type every binding reads as lines when a file gives no `outputFormat` (L10).
pub const DEFAULT_OUTPUT_FORMAT: &str = "application/fhir+ndjson";

/// The `manifestType` of a Bulk Data export manifest (L12).
pub const BULK_DATA_MANIFEST: &str = "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/BulkDataManifest";

/// Whether `format` (a media type, parameters ignored) is one of the NDJSON
/// aliases of protocol A3: such a file is read as lines; any other (Parquet,
/// ...) is opaque bytes (L13).
pub fn is_ndjson_format(format: &str) -> bool {
    let media = format.split(';').next().unwrap_or("").trim();
    ["application/fhir+ndjson", "application/ndjson", "ndjson"].iter().any(|a| media.eq_ignore_ascii_case(a))
}

/// One `countSeverity` entry of an `outcome` file (STU4 ballot, L11): how
/// many issues of one severity the file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CountSeverity {
    /// `fatal`, `error`, `warning`, `information` or `success`.
    pub code: String,
    /// How many.
    pub count: u64,
}

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ManifestFile {
    /// The resource type in the file (absent when output is organized).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// The file URL (absolute per the IG; relative values are resolved).
    pub url: String,
    /// The number of resources in the file, when the server says.
    #[serde(default, deserialize_with = "lenient_u64", skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// STU4 `fileSize` in bytes.
    #[serde(default, deserialize_with = "lenient_u64", skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    /// STU3 `continuesInFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues_in_file: Option<String>,
    /// STU4 `outputFormat` of this file (L10, L13); absent: the manifest's,
    /// else `application/fhir+ndjson`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    /// STU4 `countSeverity` of an `outcome` file (L11); entries that are not
    /// `{code, count}` are left out.
    #[serde(default, deserialize_with = "count_severity", skip_serializing_if = "Vec::is_empty")]
    pub count_severity: Vec<CountSeverity>,
}

/// A manifest paging link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ManifestLink {
    /// `next` for the following page.
    pub relation: String,
    /// The page URL.
    pub url: String,
}

/// Why a body is not a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed manifest: {0}")]
pub struct ManifestError(pub String);

impl Manifest {
    /// This manifest, a refresh of `old` (E4, K4), with its files in `old`'s
    /// order (protocol K6): a file is known by what it is, not where it stands.
    /// Each file of `old` takes the fresh entry of the same list and resource
    /// type (and `count` and `fileSize`, when both give them) at the same URL
    /// path; failing that, the only such entry. A file with no such entry
    /// keeps its old one (its expired link then fails that file alone), and a
    /// fresh entry that matches nothing is left out: nothing is downloaded
    /// twice, nothing is stitched from another file. Returns what was left
    /// out or unmatched, for a warning.
    pub fn aligned_to(mut self, old: &Manifest) -> (Manifest, Vec<String>) {
        let mut notes = Vec::new();
        self.output = align(&old.output, std::mem::take(&mut self.output), "output", &mut notes);
        self.error = align(&old.error, std::mem::take(&mut self.error), "error", &mut notes);
        self.outcome = align(&old.outcome, std::mem::take(&mut self.outcome), "outcome", &mut notes);
        self.deleted = align(&old.deleted, std::mem::take(&mut self.deleted), "deleted", &mut notes);
        (self, notes)
    }

    /// Parses a manifest from JSON bytes. Never panics.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        // A FHIR resource is not a manifest; only pay for a generic parse when
        // the bytes could be one.
        // Straight from the bytes is about twice as fast on big manifests, but a
        // second deserializer path for the manifest types costs the `.wasm`
        // size; builds without the `fast-manifest` feature go through `Value`.
        if cfg!(feature = "fast-manifest") && memchr::memmem::find(bytes, b"\"resourceType\"").is_none() {
            return serde_json::from_slice(bytes).map(Manifest::normalized).map_err(|e| ManifestError(e.to_string()));
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ManifestError(e.to_string()))?;
        Manifest::from_value(value)
    }

    /// Reads a manifest from a parsed JSON value.
    pub fn from_value(value: Value) -> Result<Manifest, ManifestError> {
        let Value::Object(map) = &value else {
            return Err(ManifestError("not a JSON object".into()));
        };
        if let Some(rt) = map.get("resourceType") {
            return Err(ManifestError(format!("a FHIR resource ({rt}), not a manifest")));
        }
        serde_json::from_value(value).map(Manifest::normalized).map_err(|e| ManifestError(e.to_string()))
    }

    /// One reader for both shapes (L10, L12): `outcome` ?? `error` (both
    /// present: `outcome`, with a note), and a note for a `manifestType` that
    /// is not a `BulkDataManifest` (read as one).
    fn normalized(mut self) -> Manifest {
        if !self.outcome.is_empty() && !self.error.is_empty() {
            self.notes.push(format!(
                "the manifest has both `outcome` ({} file(s)) and `error` ({} file(s)): `outcome` is read, `error` ignored (protocol L10)",
                self.outcome.len(),
                self.error.len()
            ));
            self.error.clear();
        }
        match self.manifest_type.as_deref() {
            None | Some(BULK_DATA_MANIFEST) => {}
            Some(t) => self.notes.push(format!(
                "manifestType '{}' is not a BulkDataManifest: read as one (protocol L12)",
                crate::origin::redact_text(t)
            )),
        }
        self
    }

    /// Error files from either `error` (STU2/STU3) or `outcome` (STU4); a
    /// file listed under both names (pages that disagree) once.
    pub fn error_files(&self) -> impl Iterator<Item = &ManifestFile> {
        self.outcome.iter().chain(self.error.iter().filter(|e| !self.outcome.iter().any(|o| o.url == e.url)))
    }

    /// Whether the job "completed with errors" (C2, L11): an `outcome`/`error`
    /// file with a `countSeverity` counts only when it gives `fatal` or `error`
    /// issues; one without it may hold errors (its lines would tell), so it
    /// counts. Informational outcome files alone are not errors.
    pub fn has_errors(&self) -> bool {
        self.error_files().any(|f| {
            f.count_severity.is_empty()
                || f.count_severity.iter().any(|c| c.count > 0 && matches!(c.code.as_str(), "fatal" | "error"))
        })
    }

    /// The `outputFormat` of `file`: its own, else the manifest's, else
    /// `application/fhir+ndjson` (L10).
    pub fn format_of<'a>(&'a self, file: &'a ManifestFile) -> &'a str {
        file.output_format.as_deref().or(self.output_format.as_deref()).unwrap_or(DEFAULT_OUTPUT_FORMAT)
    }

    /// The `next` page link, if any.
    pub fn next_link(&self) -> Option<&str> {
        self.link.iter().find(|l| l.relation.eq_ignore_ascii_case("next")).map(|l| l.url.as_str())
    }

    /// Appends another page's files (paged or partial manifests), skipping
    /// files already listed (a page may be returned again with a `link`).
    pub fn merge_page(&mut self, page: Manifest) {
        fn add(into: &mut Vec<ManifestFile>, from: Vec<ManifestFile>, also: &[ManifestFile]) {
            for f in from {
                if !into.iter().chain(also).any(|g| g.url == f.url) {
                    into.push(f);
                }
            }
        }
        add(&mut self.output, page.output, &[]);
        // Outcome files by url across pages and names (L10: BD3 repeats `error` on every page).
        add(&mut self.error, page.error, &self.outcome);
        add(&mut self.outcome, page.outcome, &self.error);
        add(&mut self.deleted, page.deleted, &[]);
        for n in page.notes {
            if !self.notes.contains(&n) {
                self.notes.push(n);
            }
        }
        self.link = page.link;
        if self.transaction_time.is_none() {
            self.transaction_time = page.transaction_time;
        }
    }

    /// Sum of `count` over output files, when every file has one.
    pub fn total_count(&self) -> Option<u64> {
        self.output.iter().map(|f| f.count).sum()
    }
}

/// Which list of the manifest a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum FileKind {
    /// `output`: the data.
    Output,
    /// `error` / `outcome`: OperationOutcome files.
    Error,
    /// `deleted`: transaction Bundles of deletions.
    Deleted,
    /// An attachment a resource points at (protocol M): not a manifest list,
    /// planned by [`crate::attachments::AttachmentPlan`].
    Attachment,
}

/// What the engine decided about one file before anything is downloaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PlannedFile {
    /// Which list the file is from.
    pub kind: FileKind,
    /// Position in that list (stable across manifest refreshes, protocol E4).
    pub index: usize,
    /// The resource type, when the manifest says.
    pub resource_type: Option<String>,
    /// The absolute URL.
    pub url: String,
    /// Whether the bearer token goes with the request.
    pub send_token: bool,
    /// The line count the manifest promises.
    pub expected_count: Option<u64>,
    /// The `fileSize` the manifest gives: the decoded bytes the file must
    /// have (L13), for NDJSON and opaque files alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_bytes: Option<u64>,
    /// Set when the file is not NDJSON (its `outputFormat` is not an NDJSON
    /// alias, e.g. Parquet, L13): its media type. Such a file is opaque bytes:
    /// asked for with `Accept` = this, handed out as the body's bytes (no
    /// lines, no count check) and checked against `expected_bytes` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque_format: Option<String>,
    /// A file name safe to use inside any target directory (no separators, no
    /// `..`), unique within the plan: `{Type}.{index:03}.ndjson` style (an
    /// opaque file keeps its format's extension: `Patient.003.parquet`).
    pub file_name: String,
    /// The most decoded bytes the file may have: a larger `Content-Length`,
    /// or a body passing it while streaming, fails the file with
    /// [`DownloadError::TooLarge`](crate::DownloadError::TooLarge) (attachments, protocol M6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Set when the file must not be fetched at all, with the reason
    /// (an `http:` URL under an `https:` base, or a token needed on an origin
    /// that is not allowed).
    pub blocked: Option<String>,
}

/// The inputs of the token rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TokenPolicy {
    /// The FHIR server's base URL: its origin receives the token.
    pub base_url: String,
    /// Other origins (`https://host:port`) allowed to receive the token when a
    /// manifest says `requiresAccessToken: true`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

impl TokenPolicy {
    /// Whether the token may be sent to `url` (protocol I2–I4): only over https
    /// when the base is https, and only to the base origin or an allowed one.
    pub fn may_send_token(&self, url: &str) -> bool {
        let (Some(base), Some(target)) = (Origin::parse(&self.base_url), Origin::parse(url)) else {
            return false;
        };
        if base.scheme == "https" && target.scheme != "https" {
            return false;
        }
        base == target || self.allowed_origins.iter().filter_map(|o| Origin::parse(o)).any(|o| o == target)
    }
}

/// Builds the download plan for every file of a manifest (protocol E1, I2–I4).
///
/// `manifest_url` is where the manifest came from; relative file URLs are
/// resolved against it.
pub fn plan_downloads(manifest: &Manifest, manifest_url: &str, policy: &TokenPolicy) -> Vec<PlannedFile> {
    let base_https = Origin::parse(&policy.base_url).is_some_and(|o| o.scheme == "https");
    let mut plan = Vec::new();
    let lists: [(FileKind, Vec<&ManifestFile>); 3] = [
        (FileKind::Output, manifest.output.iter().collect()),
        (FileKind::Error, manifest.error_files().collect()),
        (FileKind::Deleted, manifest.deleted.iter().collect()),
    ];
    for (kind, files) in lists {
        for (index, f) in files.into_iter().enumerate() {
            let url = crate::origin::resolve(manifest_url, &f.url).unwrap_or_else(|| f.url.clone());
            let target = Origin::parse(&url);
            let mut blocked = None;
            let mut send_token = false;
            match &target {
                None => blocked = Some(format!("not an absolute http(s) URL: {}", crate::origin::redact_url(&f.url))),
                Some(t) if base_https && t.scheme != "https" => {
                    blocked = Some("an http: file URL under an https: base (protocol I4)".into())
                }
                Some(_) if manifest.requires_access_token => {
                    if policy.may_send_token(&url) {
                        send_token = true;
                    } else {
                        blocked = Some(
                            "requiresAccessToken is true but the file is on another origin that is not in allowedOrigins (protocol I2)"
                                .into(),
                        );
                    }
                }
                Some(_) => {}
            }
            let label = match kind {
                FileKind::Output => crate::names::table_name(f.resource_type.as_deref().unwrap_or("output")),
                FileKind::Error => "error".to_owned(),
                FileKind::Deleted => "deleted".to_owned(),
                FileKind::Attachment => "attachment".to_owned(),
            };
            let format = manifest.format_of(f);
            let opaque_format = (!is_ndjson_format(format)).then(|| format.to_owned());
            let extension = opaque_format.as_deref().map_or_else(|| "ndjson".to_owned(), |m| extension_of(m, &url));
            plan.push(PlannedFile {
                kind,
                index,
                resource_type: f.resource_type.clone(),
                url,
                send_token,
                // Opaque bytes have no lines to count (L13).
                expected_count: f.count.filter(|_| opaque_format.is_none()),
                expected_bytes: f.file_size,
                opaque_format,
                file_name: format!("{label}.{index:03}.{extension}"),
                max_bytes: None,
                blocked,
            });
        }
    }
    plan
}

/// The file name extension of an opaque file (L13): `parquet` for Parquet,
/// else the URL's own (letters and digits, at most 10), else `bin`.
fn extension_of(media_type: &str, url: &str) -> String {
    if media_type.to_ascii_lowercase().contains("parquet") {
        return "parquet".to_owned();
    }
    let path = url.split(['?', '#']).next().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    match last.rsplit_once('.') {
        Some((_, ext)) if (1..=10).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            ext.to_ascii_lowercase()
        }
        _ => "bin".to_owned(),
    }
}

/// `fresh` in `old`'s order (see [`Manifest::aligned_to`]).
fn align(old: &[ManifestFile], fresh: Vec<ManifestFile>, list: &str, notes: &mut Vec<String>) -> Vec<ManifestFile> {
    use crate::identity::{match_files, url_path, Identity};
    fn id(f: &ManifestFile) -> Identity<'_> {
        Identity::new(0, f.resource_type.as_deref(), f.count, f.file_size, &f.url)
    }
    let matches = match_files(&old.iter().map(id).collect::<Vec<_>>(), &fresh.iter().map(id).collect::<Vec<_>>());
    let mut pool: Vec<Option<ManifestFile>> = fresh.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(old.len());
    for (o, m) in old.iter().zip(matches) {
        match m.and_then(|j| pool[j].take()) {
            Some(n) => out.push(n),
            None => {
                notes.push(format!(
                    "the refreshed manifest has no entry that is surely the {list} file {} ({}): its old link is kept",
                    url_path(&o.url),
                    o.resource_type.as_deref().unwrap_or("no type")
                ));
                out.push(o.clone());
            }
        }
    }
    let extra = pool.iter().flatten().count();
    if extra > 0 {
        notes.push(format!(
            "the refreshed manifest lists {extra} {list} file(s) the first one did not: left out (a refresh does not add files)"
        ));
    }
    out
}

/// Keeps `[A-Za-z0-9_-]`, so a manifest can never steer a path.
fn default_true() -> bool {
    true
}

fn bool_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        Value::Null => Ok(true),
        other => Err(de::Error::custom(format!("requiresAccessToken must be a boolean, got {other}"))),
    }
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    // Through `Value` rather than an untagged enum: the same leniency without
    // serde's `Content` buffering in the `.wasm`.
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().or_else(|| {
            let f = n.as_f64()?;
            (f >= 0.0 && f.fract() == 0.0 && f < 1.8e19).then_some(f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn files<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ManifestFile>, D::Error> {
    Ok(Option::<Vec<ManifestFile>>::deserialize(d)?.unwrap_or_default())
}

fn count_severity<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<CountSeverity>, D::Error> {
    // Leniently: a malformed `countSeverity` is no reason to refuse the manifest.
    let one = |v: &Value| {
        Some(CountSeverity {
            code: v.get("code")?.as_str()?.to_owned(),
            count: v.get("count").and_then(|c| c.as_u64().or_else(|| c.as_str()?.trim().parse().ok()))?,
        })
    };
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        v @ Value::Object(_) => one(&v).into_iter().collect(),
        _ => Vec::new(),
    })
}

fn links<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ManifestLink>, D::Error> {
    Ok(Option::<Vec<ManifestLink>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests;
