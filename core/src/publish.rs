//! A reader of published manifests (`$bulk-publish`, Bulk Data STU4 ballot `publish.md`;
//! protocol L14), sans-IO like a [`crate::Job`]: it says which page to fetch, which files to
//! apply and in what order, and when to look again; the caller moves the bytes.
//!
//! ```text
//!  Root ─GET─> page ─link URL──> next page ─ ... ─> no link: Committed ─cadence─> GET root
//!               │                                       ▲                          │ 304: wait
//!               ├─ #pending: keep page + ETag ─cadence─> GET page (If-None-Match)  │ 200: new dataset
//!               │                 304: wait; 200: apply what is new, follow link   ▼
//!               └─ #closed: drop the dataset (Reset) ───────────────────────────> Root
//! ```
//!
//! Per page, `output` files are applied in array order, then `deleted`; `outcome` is only
//! reported. File URLs are immutable, so a URL already applied is never applied twice, across
//! re-reads of a changed page and across processes (the state serializes). `#pending` and
//! `#closed` are tested as raw strings before any resolving (RFC 3986 would turn `#pending`
//! into the current page). A 5xx or a dropped connection backs off, bounded by the
//! `updateCadence`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{Method, Request, RequestKind, Response};
use crate::manifest::{FileKind, Manifest, ManifestFile};
use crate::origin;
use crate::retry::{backoff_ms, RetryPolicy};

/// The `link` marker: the dataset goes on; poll this page again (L14).
pub const PENDING: &str = "#pending";
/// The `link` marker: the dataset is closed; restart at the root (L14).
pub const CLOSED: &str = "#closed";
/// How often to look again when a manifest gives no `updateCadence`: one hour.
pub const DEFAULT_CADENCE_MS: u64 = 3_600_000;

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum PublishAction {
    /// Send this GET and hand the answer to [`PublishReader::handle_response`].
    Send {
        /// The request.
        request: Request,
    },
    /// Download this file and apply it (in this order), then call
    /// [`PublishReader::applied`] with its URL.
    Apply {
        /// The file.
        file: PublishedFile,
    },
    /// The dataset was closed or replaced: drop what was applied of it, then ask again.
    Reset {
        /// Why, for the user.
        reason: String,
    },
    /// Nothing to do before `until_ms` (a pending page or a committed dataset waits for its
    /// cadence; an error backs off).
    Wait {
        /// When to ask again (Unix ms).
        until_ms: u64,
    },
}

/// A file to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedFile {
    /// `output` (resources to upsert, a later one of the same type and id wins) or `deleted`
    /// (transaction Bundles of deletions).
    pub kind: FileKind,
    /// The absolute URL.
    pub url: String,
    /// The manifest's `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// The manifest's `count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The manifest's `fileSize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    /// Which file of the dataset this is (0, 1, ...): its place in the order of application.
    pub seq: u64,
    /// The GET to send for it: the token only when the manifest says `requiresAccessToken` and
    /// the file is on the publisher's origin (I2); a redirect is never followed with it.
    pub request: Request,
}

/// Where the reader stands (saved with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "camelCase")]
enum Phase {
    /// Fetch this page (the root, a next page, or a pending page again).
    Fetch { url: String, etag: Option<String>, root: bool },
    /// The page's files are being applied; then go to `then`.
    Applying { then: Box<Phase> },
    /// Waiting until `until_ms`, then `then`.
    Waiting { until_ms: u64, then: Box<Phase> },
    /// Wait one cadence from now, then `then`.
    AfterCadence { then: Box<Phase> },
    /// Hand out a Reset, then read the root.
    Resetting { reason: String },
}

/// The state of one published dataset's reader. Serializes (no token in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishReader {
    root: String,
    phase: Phase,
    /// The root's ETag once the dataset is committed (a change means a new dataset).
    root_etag: Option<String>,
    /// URLs already applied in this dataset.
    applied: BTreeSet<String>,
    /// Files of the current page still to hand out, in order.
    queue: Vec<PublishedFile>,
    /// Files handed out and not yet reported applied.
    outstanding: Vec<PublishedFile>,
    /// How many files of this dataset were handed out.
    seq: u64,
    cadence_ms: u64,
    failures: u32,
    next_id: u64,
    #[serde(default)]
    policy: RetryPolicy,
    /// Whether the dataset's last page was read (no `link`).
    committed: bool,
    warnings: Vec<String>,
    /// [`PublishReader::poll_now`] was asked: the next wait is skipped.
    #[serde(default)]
    wake: bool,
}

/// Why a published page could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The server answered something that is not a published manifest (a 4xx, a malformed
    /// body, a non-GET-able link); the reader stops.
    #[error("the published manifest at {url} could not be used: {message}")]
    Protocol {
        /// The page.
        url: String,
        /// What was wrong, with the server's own words when it gave some.
        message: String,
    },
    /// [`PublishReader::applied`] named a URL that was not handed out.
    #[error("usage: {0}")]
    Usage(String),
}

impl PublishError {
    /// The stable code (`protocol`, `usage`), as every binding spells it.
    pub fn code(&self) -> &'static str {
        match self {
            PublishError::Protocol { .. } => "protocol",
            PublishError::Usage(_) => "usage",
        }
    }
}

impl PublishReader {
    /// A reader of the dataset published at `root` (`[base]/$bulk-publish`).
    pub fn new(root: &str, policy: RetryPolicy) -> PublishReader {
        PublishReader {
            root: root.to_owned(),
            phase: Phase::Fetch { url: root.to_owned(), etag: None, root: true },
            root_etag: None,
            applied: BTreeSet::new(),
            queue: Vec::new(),
            outstanding: Vec::new(),
            seq: 0,
            cadence_ms: DEFAULT_CADENCE_MS,
            failures: 0,
            next_id: 1,
            policy,
            committed: false,
            warnings: Vec::new(),
            wake: false,
        }
    }

    /// Whether the dataset's pages were all read and applied (until the root changes).
    pub fn is_committed(&self) -> bool {
        self.committed && self.queue.is_empty() && self.outstanding.is_empty()
    }

    /// The URLs applied in the current dataset.
    pub fn applied_urls(&self) -> impl Iterator<Item = &str> {
        self.applied.iter().map(String::as_str)
    }

    /// What the server said that did not stop the reader (unknown `manifestType`, outcome files).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The `updateCadence` in force, in ms.
    pub fn cadence_ms(&self) -> u64 {
        self.cadence_ms
    }

    /// The next thing to do at `now_ms`.
    pub fn next_action(&mut self, now_ms: u64) -> PublishAction {
        loop {
            match &self.phase {
                Phase::Resetting { reason } => {
                    let reason = reason.clone();
                    self.phase = Phase::Fetch { url: self.root.clone(), etag: None, root: true };
                    return PublishAction::Reset { reason };
                }
                Phase::AfterCadence { then } if self.wake => {
                    self.wake = false;
                    self.phase = (**then).clone();
                }
                Phase::AfterCadence { then } => {
                    let then = (**then).clone();
                    self.wait_then(now_ms, then);
                }
                Phase::Waiting { until_ms, then } => {
                    if now_ms < *until_ms && !self.wake {
                        return PublishAction::Wait { until_ms: *until_ms };
                    }
                    self.wake = false;
                    self.phase = (**then).clone();
                }
                Phase::Applying { then } => {
                    if !self.queue.is_empty() {
                        let file = self.queue.remove(0);
                        self.outstanding.push(file.clone());
                        return PublishAction::Apply { file };
                    }
                    if !self.outstanding.is_empty() {
                        // the caller still applies files; nothing else may overtake them
                        return PublishAction::Wait { until_ms: now_ms };
                    }
                    self.phase = (**then).clone();
                }
                Phase::Fetch { url, etag, .. } => {
                    let mut headers = vec![("Accept".to_owned(), "application/json".to_owned())];
                    if let Some(e) = etag {
                        headers.push(("If-None-Match".to_owned(), e.clone()));
                    }
                    let id = self.next_id;
                    self.next_id += 1;
                    return PublishAction::Send {
                        request: Request {
                            id,
                            kind: RequestKind::ManifestPage,
                            method: Method::Get,
                            url: url.clone(),
                            headers,
                            body: None,
                            auth: true,
                            timeout_ms: self.policy.request_timeout_ms,
                            max_body: Some(self.policy.max_response_bytes),
                        },
                    };
                }
            }
        }
    }

    /// Ends the current wait (a cadence or a back-off): the next action looks again at once.
    pub fn poll_now(&mut self) {
        self.wake = true;
    }

    /// The caller applied (downloaded and merged) the file at `url`.
    pub fn applied(&mut self, url: &str) -> Result<(), PublishError> {
        let Some(i) = self.outstanding.iter().position(|f| f.url == url) else {
            return Err(PublishError::Usage(format!("{url} was not handed out to apply")));
        };
        self.outstanding.remove(i);
        self.applied.insert(url.to_owned());
        Ok(())
    }

    /// Hands out again, first and in order, the files handed out but never reported applied
    /// (a process that ended or failed while applying them; call it on a resumed reader).
    pub fn requeue_outstanding(&mut self) {
        let mut back = std::mem::take(&mut self.outstanding);
        back.sort_by_key(|f| f.seq);
        back.append(&mut self.queue);
        self.queue = back;
    }

    /// The request never got an answer (connect failure, reset): back off, bounded by the
    /// cadence, and fetch the same page again.
    pub fn handle_transport_error(&mut self, now_ms: u64) {
        self.back_off(now_ms);
    }

    /// The answer to the last [`PublishAction::Send`].
    pub fn handle_response(&mut self, resp: &Response, now_ms: u64) -> Result<(), PublishError> {
        let Phase::Fetch { url, etag, root } = self.phase.clone() else {
            return Err(PublishError::Usage("no request is outstanding".into()));
        };
        match resp.status {
            304 => {
                // unchanged: look again after the cadence
                self.failures = 0;
                self.wait_then(now_ms, Phase::Fetch { url, etag, root });
                Ok(())
            }
            200 => {
                self.failures = 0;
                let page = Self::parse(&url, &resp.body)?;
                let new_etag = resp.header("ETag").map(str::to_owned);
                if root && self.committed {
                    let same_etag = new_etag.is_some() && new_etag == self.root_etag;
                    // a server without ETags: unchanged when it lists nothing new
                    let nothing_new = page.0.output.iter().chain(&page.0.deleted).all(|f| {
                        self.applied.contains(&origin::resolve(&url, &f.url).unwrap_or_else(|| f.url.clone()))
                    });
                    if same_etag || (new_etag.is_none() && nothing_new) {
                        self.wait_then(now_ms, Phase::Fetch { url, etag, root });
                        return Ok(());
                    }
                    // the committed dataset's root changed: a new dataset
                    self.drop_dataset();
                    self.phase =
                        Phase::Resetting { reason: "the published dataset was replaced (its root changed)".into() };
                    return Ok(());
                }
                self.read_page(&url, root, new_etag, &page);
                Ok(())
            }
            s if s >= 500 || s == 429 || s == 408 => {
                self.back_off(now_ms);
                Ok(())
            }
            s => Err(PublishError::Protocol {
                url: origin::redact_url(&url),
                message: format!("HTTP {s}: {}", server_words(&resp.body)),
            }),
        }
    }

    fn parse(url: &str, body: &[u8]) -> Result<(Manifest, PageExtras), PublishError> {
        let bad = |m: String| PublishError::Protocol { url: origin::redact_url(url), message: m };
        let value: Value = serde_json::from_slice(body).map_err(|e| bad(format!("not JSON: {e}")))?;
        // the few publish-only fields are read first, so the page moves into the manifest uncopied
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let extras = PageExtras {
            update_cadence: text(&value["updateCadence"]),
            manifest_type: text(&value["manifestType"]),
            // the markers are raw strings, tested before any resolving
            next: value["link"]
                .as_array()
                .and_then(|l| l.iter().find(|x| x["relation"].as_str().is_some_and(|r| r.eq_ignore_ascii_case("next"))))
                .and_then(|l| text(&l["url"])),
        };
        let manifest = Manifest::from_value(value).map_err(|e| bad(e.to_string()))?;
        Ok((manifest, extras))
    }

    fn read_page(&mut self, url: &str, root: bool, etag: Option<String>, (m, extras): &(Manifest, PageExtras)) {
        if let Some(c) = extras.update_cadence.as_deref() {
            match parse_duration_ms(c) {
                Some(ms) if ms > 0 => self.cadence_ms = ms,
                _ => self
                    .warnings
                    .push(format!("updateCadence '{c}' is not an ISO 8601 duration; kept {} ms", self.cadence_ms)),
            }
        }
        match extras.manifest_type.as_deref() {
            None => {}
            Some(t) if t.ends_with("/BulkPublishManifest") => {}
            Some(t) => self.warnings.push(format!("manifestType '{t}' is not BulkPublishManifest; read as one")),
        }
        if m.error_files().count() > 0 {
            self.warnings.push(format!(
                "{} outcome file(s) listed at {}",
                m.error_files().count(),
                origin::redact_url(url)
            ));
        }
        // output in array order, then deleted; a URL already applied is skipped
        let resolve = |f: &ManifestFile| origin::resolve(url, &f.url).unwrap_or_else(|| f.url.clone());
        // one set per page, so each listed file costs O(log n)
        let mut handed: BTreeSet<String> = self.outstanding.iter().chain(&self.queue).map(|q| q.url.clone()).collect();
        for (kind, files) in [(FileKind::Output, &m.output), (FileKind::Deleted, &m.deleted)] {
            for f in files {
                let abs = resolve(f);
                if self.applied.contains(&abs) || !handed.insert(abs.clone()) {
                    continue;
                }
                if origin::is_downgrade(&self.root, &abs) {
                    self.warnings
                        .push(format!("{} is http from an https publisher: not fetched", origin::redact_url(&abs)));
                    continue;
                }
                let id = self.next_id;
                self.next_id += 1;
                let request = Request {
                    id,
                    kind: RequestKind::File,
                    method: Method::Get,
                    url: abs.clone(),
                    headers: vec![("Accept".to_owned(), "application/fhir+ndjson".to_owned())],
                    body: None,
                    auth: m.requires_access_token && origin::same_origin_urls(&self.root, &abs),
                    timeout_ms: self.policy.request_timeout_ms,
                    max_body: None,
                };
                self.queue.push(PublishedFile {
                    kind,
                    url: abs,
                    resource_type: f.resource_type.clone(),
                    count: f.count,
                    file_size: f.file_size,
                    seq: self.seq,
                    request,
                });
                self.seq += 1;
            }
        }
        if root {
            self.root_etag = etag.clone();
        }
        let then = match extras.next.as_deref() {
            Some(PENDING) => Phase::AfterCadence { then: Box::new(Phase::Fetch { url: url.to_owned(), etag, root }) },
            Some(CLOSED) => {
                // a closed dataset: nothing more of it is applied
                self.drop_dataset();
                self.phase = Phase::Resetting {
                    reason: format!("the published dataset was closed ({})", origin::redact_url(url)),
                };
                return;
            }
            Some(next) => {
                let abs = origin::resolve(url, next).unwrap_or_else(|| next.to_owned());
                Phase::Fetch { url: abs, etag: None, root: false }
            }
            None => {
                self.committed = true;
                let root_etag = self.root_etag.clone();
                Phase::AfterCadence {
                    then: Box::new(Phase::Fetch { url: self.root.clone(), etag: root_etag, root: true }),
                }
            }
        };
        self.phase = Phase::Applying { then: Box::new(then) };
    }

    fn drop_dataset(&mut self) {
        self.applied.clear();
        self.queue.clear();
        self.outstanding.clear();
        self.seq = 0;
        self.committed = false;
        self.root_etag = None;
    }

    fn wait_then(&mut self, now_ms: u64, then: Phase) {
        self.phase = Phase::Waiting { until_ms: now_ms.saturating_add(self.cadence_ms), then: Box::new(then) };
    }

    fn back_off(&mut self, now_ms: u64) {
        let Phase::Fetch { .. } = &self.phase else { return };
        let delay = backoff_ms(&self.policy, self.failures).min(self.cadence_ms);
        self.failures = self.failures.saturating_add(1);
        let then = self.phase.clone();
        self.phase = Phase::Waiting { until_ms: now_ms.saturating_add(delay), then: Box::new(then) };
    }
}

/// What a publish page says beside its manifest.
struct PageExtras {
    update_cadence: Option<String>,
    manifest_type: Option<String>,
    /// the `next` link's URL as sent: a page URL, `#pending` or `#closed`
    next: Option<String>,
}

/// The server's own words in an error body: an OperationOutcome's text, else the start of it.
fn server_words(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let issue = &v["issue"][0];
    let words = issue["diagnostics"].as_str().or_else(|| issue["details"]["text"].as_str());
    match words {
        Some(w) => w.to_owned(),
        None => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// An ISO 8601 duration (`PT1S`, `PT30M`, `P1D`, `P1DT12H`, `PT0.5S`) in ms; weeks, months and
/// years are read as 7, 30 and 365 days. `None` for anything else.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let rest = s.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, t),
        Some(_) => return None,
        None => (rest, ""),
    };
    fn parts(s: &str, units: &[(char, f64)]) -> Option<f64> {
        let mut total = 0.0;
        let mut num = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() || c == '.' || c == ',' {
                num.push(if c == ',' { '.' } else { c });
            } else {
                let (_, ms) = units.iter().find(|(u, _)| *u == c)?;
                let n: f64 = num.parse().ok()?;
                total += n * ms;
                num.clear();
            }
        }
        num.is_empty().then_some(total)
    }
    const DAY: f64 = 86_400_000.0;
    let d = parts(date, &[('Y', 365.0 * DAY), ('M', 30.0 * DAY), ('W', 7.0 * DAY), ('D', DAY)])?;
    let t = parts(time, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1_000.0)])?;
    if date.is_empty() && time.is_empty() {
        return None;
    }
    let total = d + t;
    (0.0..1e15).contains(&total).then_some(total as u64)
}

#[cfg(test)]
mod tests;
