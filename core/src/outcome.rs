//! How a job ended, and how response bodies are classified (protocol C, H1–H2).

use crate::manifest::{Manifest, ManifestFile};
use crate::tagged;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The final state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum OutcomeStatus {
    /// The operation succeeded.
    Completed,
    /// A bulk export finished but the manifest lists errors (protocol C2).
    CompletedWithErrors,
    /// The server reports that the operation failed.
    Failed,
    /// The job was cancelled.
    Cancelled,
}

/// How the result was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Delivery {
    /// The kick-off itself answered synchronously (protocol A10).
    Sync,
    /// A 200 from the status URL (manifest, Bundle, AsyncJob, ...).
    Inline,
    /// A `303 See Other` and a GET of its target (protocol C4).
    Redirect,
    /// The job was cancelled; no result.
    None,
}

/// The result payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum ResultBody {
    /// A Bulk Data manifest (all pages merged).
    Manifest {
        /// The manifest.
        manifest: Manifest,
    },
    /// A Bundle. For an R5 async-bundle (`batch-response`), `entryStatus` is the
    /// status code from `entry[0].response.status` (protocol C3).
    Bundle {
        /// The Bundle.
        #[cfg_attr(feature = "ts", ts(type = "FhirResource"))]
        bundle: Value,
        /// `entry[0].response.status` as a number, when present.
        entry_status: Option<u16>,
    },
    /// A Medplum `AsyncJob`; `manifest` is derived from its `output` when that
    /// lists files.
    AsyncJob {
        /// The AsyncJob resource.
        #[cfg_attr(feature = "ts", ts(type = "FhirResource"))]
        job: Value,
        /// `AsyncJob.status`.
        job_status: String,
        /// A manifest built from `output` file parameters, if any.
        manifest: Option<Manifest>,
    },
    /// An OperationOutcome.
    OperationOutcome {
        /// The OperationOutcome.
        #[cfg_attr(feature = "ts", ts(type = "FhirResource"))]
        outcome: Value,
    },
    /// Any other FHIR resource (a Parameters, a Patient, ...).
    Resource {
        /// The resource.
        #[cfg_attr(feature = "ts", ts(type = "FhirResource"))]
        resource: Value,
    },
    /// A body that is not JSON (a redirect target may be anything).
    Text {
        /// The body, decoded as UTF-8 (lossy).
        text: String,
        /// Its `Content-Type`.
        content_type: Option<String>,
    },
    /// No body.
    Empty,
}

/// How a job ended. Server-reported failure is an outcome, not an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Outcome {
    /// Completed, completed with errors, failed or cancelled.
    pub status: OutcomeStatus,
    /// How the result arrived.
    pub delivery: Delivery,
    /// The HTTP status of the response that settled the job.
    pub http_status: Option<u16>,
    /// The payload.
    pub result: ResultBody,
    /// A one-line human summary (the OperationOutcome text, for failures).
    pub message: Option<String>,
    /// The `Expires` header of the manifest response, as sent.
    pub expires: Option<String>,
    /// `Expires` as Unix ms, when it parses (protocol C1).
    pub expires_at_ms: Option<u64>,
    /// The URL the result came from (status URL, or the redirect target).
    pub result_url: Option<String>,
    /// Everything worth telling a human that did not stop the job: a clamped
    /// `Retry-After`, resource types the manifest lists that were not asked
    /// for, a status URL on another origin, ... (the job's warnings when it ended).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Outcome {
    /// Whether the job succeeded (possibly with errors in the manifest).
    pub fn is_success(&self) -> bool {
        matches!(self.status, OutcomeStatus::Completed | OutcomeStatus::CompletedWithErrors)
    }

    /// The manifest, if the result carries one (directly or via an AsyncJob).
    pub fn manifest(&self) -> Option<&Manifest> {
        match &self.result {
            ResultBody::Manifest { manifest } => Some(manifest),
            ResultBody::AsyncJob { manifest, .. } => manifest.as_ref(),
            _ => None,
        }
    }

    /// The manifest, to change in place (a refresh aligned to the first, K6).
    pub(crate) fn manifest_mut(&mut self) -> Option<&mut Manifest> {
        match &mut self.result {
            ResultBody::Manifest { manifest } => Some(manifest),
            ResultBody::AsyncJob { manifest, .. } => manifest.as_mut(),
            _ => None,
        }
    }

    /// The server's OperationOutcome, wherever it sits in the result.
    pub fn operation_outcome(&self) -> Option<&Value> {
        match &self.result {
            ResultBody::OperationOutcome { outcome } => Some(outcome),
            ResultBody::Bundle { bundle, .. } => bundle.pointer("/entry/0/response/outcome"),
            _ => None,
        }
    }
}

// Same shape as a derive with `tag = "kind"`, without serde's `Content` buffering (see `tagged`).
impl<'de> Deserialize<'de> for ResultBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const KINDS: &[&str] = &["manifest", "bundle", "asyncJob", "operationOutcome", "resource", "text", "empty"];
        tagged::deserialize(d, "kind", |kind, f| {
            Ok(match kind {
                "manifest" => ResultBody::Manifest { manifest: f.req("manifest")? },
                "bundle" => ResultBody::Bundle { bundle: f.req("bundle")?, entry_status: f.opt("entryStatus")? },
                "asyncJob" => ResultBody::AsyncJob {
                    job: f.req("job")?,
                    job_status: f.req("jobStatus")?,
                    manifest: f.opt("manifest")?,
                },
                "operationOutcome" => ResultBody::OperationOutcome { outcome: f.req("outcome")? },
                "resource" => ResultBody::Resource { resource: f.req("resource")? },
                "text" => ResultBody::Text { text: f.req("text")?, content_type: f.opt("contentType")? },
                "empty" => ResultBody::Empty,
                other => return Err(tagged::unknown(other, KINDS)),
            })
        })
    }
}

/// Issue codes the Bulk Data IG treats as transient (protocol H1).
const TRANSIENT_CODES: [&str; 7] =
    ["transient", "lock-error", "no-store", "exception", "timeout", "incomplete", "throttled"];

/// What a body turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    Empty,
    NotJson,
    Json(Value),
}

pub(crate) fn parse_body(bytes: &[u8]) -> Body {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Body::Empty;
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => Body::Json(v),
        Err(_) => Body::NotJson,
    }
}

pub(crate) fn resource_type(v: &Value) -> Option<&str> {
    v.get("resourceType").and_then(Value::as_str)
}

/// Whether every issue of an OperationOutcome is in the transient family.
pub(crate) fn is_transient_outcome(oo: &Value) -> bool {
    let Some(issues) = oo.get("issue").and_then(Value::as_array) else {
        return false;
    };
    !issues.is_empty()
        && issues.iter().all(|i| i.get("code").and_then(Value::as_str).is_some_and(|c| TRANSIENT_CODES.contains(&c)))
}

/// Whether an OperationOutcome carries an error or fatal issue.
pub(crate) fn outcome_is_error(oo: &Value) -> bool {
    oo.get("issue").and_then(Value::as_array).is_some_and(|issues| {
        issues.iter().any(|i| matches!(i.get("severity").and_then(Value::as_str), Some("error" | "fatal")))
    })
}

/// The first human text of an OperationOutcome (details.text, then diagnostics).
pub(crate) fn outcome_text(oo: &Value) -> Option<String> {
    let issues = oo.get("issue")?.as_array()?;
    issues.iter().find_map(|i| {
        i.pointer("/details/text")
            .and_then(Value::as_str)
            .or_else(|| i.get("diagnostics").and_then(Value::as_str))
            .map(str::to_owned)
    })
}

/// Leading status code of a Bundle `response.status` such as `"400 Bad Request"`.
/// The server's own words in an error body, for error messages: an
/// OperationOutcome's text, an OAuth `error_description`/`error`, a `message`,
/// or the start of a text body. Bounded to 300 characters, whitespace collapsed.
pub(crate) fn server_text(body: &[u8]) -> Option<String> {
    let text = match parse_body(body) {
        Body::Empty => return None,
        Body::Json(v) => {
            let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            match resource_type(&v) {
                Some("OperationOutcome") => outcome_text(&v),
                _ => field("error_description").or_else(|| field("error")).or_else(|| field("message")),
            }
            .unwrap_or_else(|| v.to_string())
        }
        Body::NotJson => String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned(),
    };
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = collapsed.chars().take(300).collect();
    if collapsed.chars().nth(300).is_some() {
        out.push('…');
    }
    (!out.is_empty()).then_some(out)
}

pub(crate) fn entry_status(bundle: &Value) -> Option<u16> {
    let s = bundle.pointer("/entry/0/response/status")?.as_str()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Builds a manifest out of a Medplum AsyncJob `output` Parameters that lists
/// files as `output`/`error`/`deleted` parameters with `type`, `url`, `count` parts.
pub(crate) fn asyncjob_manifest(job: &Value) -> Option<Manifest> {
    let params = job.pointer("/output/parameter")?.as_array()?;
    let mut m = Manifest {
        transaction_time: job.get("transactionTime").and_then(Value::as_str).map(str::to_owned),
        request: job.get("request").and_then(Value::as_str).map(str::to_owned),
        // Medplum's `Binary/{id}` outputs need the token and carry no
        // `requiresAccessToken`; the token still never leaves the FHIR origin.
        requires_access_token: true,
        output: Vec::new(),
        error: Vec::new(),
        outcome: Vec::new(),
        deleted: Vec::new(),
        link: Vec::new(),
        extension: None,
        output_organized_by: None,
        message: None,
        manifest_type: None,
        output_format: None,
        notes: Vec::new(),
    };
    let mut any = false;
    for p in params {
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if name == "requiresAccessToken" {
            m.requires_access_token = p.get("valueBoolean").and_then(Value::as_bool).unwrap_or(false);
            continue;
        }
        // An async batch's result: `results` with a `valueReference` to the
        // batch-response Bundle (`Binary/{id}`), one JSON line.
        if name == "results" {
            if let Some(r) = p.pointer("/valueReference/reference").and_then(Value::as_str) {
                m.output.push(ManifestFile {
                    resource_type: Some("Bundle".into()),
                    url: r.to_owned(),
                    count: None,
                    file_size: None,
                    continues_in_file: None,
                    output_format: None,
                    count_severity: Vec::new(),
                });
                any = true;
            }
            continue;
        }
        let list = match name {
            "output" => &mut m.output,
            "error" => &mut m.error,
            "deleted" => &mut m.deleted,
            _ => continue,
        };
        let parts = p.get("part").and_then(Value::as_array);
        let part =
            |n: &str| -> Option<&Value> { parts?.iter().find(|q| q.get("name").and_then(Value::as_str) == Some(n)) };
        let Some(url) = part("url")
            .and_then(|q| q.get("valueUri").or_else(|| q.get("valueUrl")).or_else(|| q.get("valueString")))
            .and_then(Value::as_str)
        else {
            continue;
        };
        list.push(ManifestFile {
            resource_type: part("type")
                .and_then(|q| q.get("valueCode").or_else(|| q.get("valueString")))
                .and_then(Value::as_str)
                .map(str::to_owned),
            url: url.to_owned(),
            count: part("count").and_then(|q| q.get("valueInteger")).and_then(Value::as_u64),
            file_size: None,
            continues_in_file: None,
            output_format: None,
            count_severity: Vec::new(),
        });
        any = true;
    }
    any.then_some(m)
}

#[cfg(test)]
mod tests;
