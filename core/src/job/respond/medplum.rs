//! Medplum's AsyncJob dialect: which URLs name an AsyncJob, its cancel URL, its statuses and
//! refusal text, and its outcome.

use crate::outcome::{asyncjob_manifest, outcome_text, Delivery, Outcome, OutcomeStatus, ResultBody};
use serde_json::Value;

/// Medplum's refusal text: "... job had status 'completed'".
pub(in crate::job) fn job_status_in(text: &str) -> Option<String> {
    let rest = &text[text.find("had status '")? + "had status '".len()..];
    let end = rest.find('\'')?;
    let s = &rest[..end];
    (!s.is_empty() && s.len() < 40).then(|| s.to_owned())
}

/// The AsyncJob statuses that end a job. Real Medplum says `active` while a
/// job runs (the documented `accepted` is the state before a worker takes it).
pub(in crate::job) const ASYNCJOB_ENDS: [&str; 4] = ["completed", "error", "cancelled", "failed"];

pub(super) fn asyncjob_finished(job: &Value) -> bool {
    job.get("status").and_then(Value::as_str).is_some_and(|s| ASYNCJOB_ENDS.contains(&s))
}

/// Whether a URL names an `AsyncJob` resource, which a DELETE would delete.
pub(in crate::job) fn is_asyncjob_url(url: &str) -> bool {
    url.contains("/AsyncJob/")
}

/// The job id of a Medplum status URL: `.../AsyncJob/{id}[/...]` or `.../job/{id}/status`.
pub(super) fn medplum_job_id(status_url: &str) -> Option<String> {
    let u = url::Url::parse(status_url).ok()?;
    let segs: Vec<&str> = u.path_segments()?.filter(|s| !s.is_empty()).collect();
    let id = match segs.iter().rposition(|s| *s == "AsyncJob") {
        Some(i) => segs.get(i + 1)?,
        None => match segs.as_slice() {
            [.., "job", id, "status"] => id,
            _ => return None,
        },
    };
    (!id.starts_with('$')).then(|| (*id).to_owned())
}

/// Whether a status URL is Medplum's job route, `.../job/{id}/status`.
pub(super) fn is_job_route(status_url: &str) -> bool {
    url::Url::parse(status_url).ok().is_some_and(|u| {
        let segs: Vec<&str> = u.path_segments().into_iter().flatten().filter(|s| !s.is_empty()).collect();
        matches!(segs.as_slice(), [.., "job", _, "status"])
    })
}

/// `.../AsyncJob/{id}` (also with a trailing slash or a query) →
/// `.../AsyncJob/{id}/$cancel` (seed 000).
pub(in crate::job) fn medplum_cancel_url(status_url: &str) -> Option<String> {
    if !is_asyncjob_url(status_url) {
        return None; // the common case, without parsing the URL
    }
    let id = medplum_job_id(status_url)?;
    let u = url::Url::parse(status_url).ok()?;
    let path = u.path();
    let prefix = &path[..path.rfind("/AsyncJob/")?];
    let mut c = u.clone();
    c.set_query(None);
    c.set_path(&format!("{prefix}/AsyncJob/{id}/$cancel"));
    Some(c.to_string())
}

pub(super) fn asyncjob_outcome_text(job: &Value) -> Option<String> {
    job.pointer("/output/parameter")?
        .as_array()?
        .iter()
        .filter(|p| p.get("name").and_then(Value::as_str) == Some("outcome"))
        .find_map(|p| p.get("resource").and_then(outcome_text))
}

pub(super) fn asyncjob_outcome(job: Value, http_status: u16, url: Option<String>) -> Outcome {
    let job_status = job.get("status").and_then(Value::as_str).unwrap_or("").to_owned();
    let status = match job_status.as_str() {
        "completed" => OutcomeStatus::Completed,
        "cancelled" => OutcomeStatus::Cancelled,
        _ => OutcomeStatus::Failed,
    };
    let manifest = asyncjob_manifest(&job);
    let message = match status {
        // A failed generic job carries an `outcome` parameter: its text is the server's words.
        OutcomeStatus::Failed => Some(match asyncjob_outcome_text(&job) {
            Some(text) => format!("AsyncJob status {job_status:?}: {text}"),
            None => format!("AsyncJob status {job_status:?}"),
        }),
        _ => None,
    };
    Outcome {
        status,
        delivery: Delivery::Inline,
        http_status: Some(http_status),
        result: ResultBody::AsyncJob { job, job_status, manifest },
        message,
        expires: None,
        expires_at_ms: None,
        result_url: url,
        warnings: Vec::new(),
    }
}
