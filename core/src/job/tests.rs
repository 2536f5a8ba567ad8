//! Unit tests of the job that need its private state (the scenarios are in `tests/vectors/`).

use super::respond::{cancelled_outcome, job_status_in, medplum_cancel_url};
use super::state::State;
use super::{Action, CancelResult, Job, JobConfig};
use crate::http::RequestKind;
use crate::kickoff::Operation;
use crate::tagged;
use crate::Error;

// protocol I2: the token rule's answer is memoized per URL; the memo is
// not state (left out of the saved job, rebuilt on demand with the same answers)
#[test]
fn token_memo_answers_per_url() {
    let mut job = Job::new(JobConfig {
        base_url: "https://h:443/fhir".into(),
        operation: Operation::Export(Default::default()),
        prefer: Default::default(),
        retry: Default::default(),
        timeout_ms: None,
        allowed_origins: vec!["https://files.example".into()],
    })
    .unwrap();
    let cases = [
        ("https://h/status/1", true),
        ("https://h/status/1", true),
        ("https://other/status/1", false),
        ("https://other/status/1", false),
        ("http://h/status/1", false),
        ("https://H:443/x", true),
        ("https://files.example/f", true),
        ("http://files.example/f", false),
        ("not a url", false),
    ];
    for (url, allowed) in cases {
        assert_eq!(job.may_send_token(url), allowed, "{url}");
        assert_eq!(job.token_memo.0, Some((url.to_owned(), allowed)), "the memo holds the last answer");
    }
    let saved = job.to_json();
    assert!(!saved.contains("not a url") && !saved.contains("Memo"), "the memo is not saved: {saved}");
    let mut resumed = Job::from_json(&saved).unwrap();
    assert_eq!(resumed.token_memo.0, None, "a resumed job starts with an empty memo");
    for (url, allowed) in cases {
        assert_eq!(resumed.may_send_token(url), allowed, "resumed: {url}");
    }
}

#[test]
fn every_state_and_cancel_result_round_trips() {
    tagged::round_trip(&[
        CancelResult::Cancelled { http_status: Some(202) },
        CancelResult::Cancelled { http_status: None },
        CancelResult::AlreadyTerminal { job_status: Some("completed".into()), http_status: 400 },
        CancelResult::AlreadyTerminal { job_status: None, http_status: 404 },
        CancelResult::NotFound { http_status: 404 },
        CancelResult::Rejected { http_status: 400, outcome: Some(serde_json::json!({"issue": []})) },
        CancelResult::Rejected { http_status: 400, outcome: None },
    ]);
    tagged::round_trip(&[
        State::Ready,
        State::KickoffRetry { at_ms: 1 },
        State::Polling { at_ms: 2 },
        State::Fetching { url: "https://h/r".into(), kind: RequestKind::Result, at_ms: 3, auth: true },
        State::Done { outcome: Box::new(cancelled_outcome(Some(202), None)) },
        State::Errored { error: Error::usage("m") },
    ]);
}

#[test]
fn poll_now_overrides_retry_after_once() {
    use crate::{ExportRequest, Response};
    let mut job = Job::new(JobConfig {
        base_url: "https://h/fhir".into(),
        operation: Operation::Export(ExportRequest::default()),
        prefer: Default::default(),
        retry: Default::default(),
        timeout_ms: None,
        allowed_origins: vec![],
    })
    .unwrap();
    let Ok(Action::Send { request }) = job.next_action(0) else { panic!() };
    job.handle_response(
        request.id,
        Response::new(202).with_header("Content-Location", "https://h/s").with_header("Retry-After", "600"),
        0,
    )
    .unwrap();
    assert!(matches!(job.next_action(10), Ok(Action::Wait { delay_ms: 599_990, .. })), "early wake is a no-op");
    assert!(job.poll_now(10));
    assert!(matches!(job.next_action(10), Ok(Action::Send { .. })));
    assert!(!job.poll_now(10), "nothing to bring forward while a request is in flight");
}

#[test]
fn medplum_urls() {
    assert_eq!(
        medplum_cancel_url("https://api.medplum.com/fhir/R4/AsyncJob/abc123").as_deref(),
        Some("https://api.medplum.com/fhir/R4/AsyncJob/abc123/$cancel")
    );
    assert_eq!(medplum_cancel_url("https://h/fhir/$export-poll-status?_jobId=1"), None);
}

#[test]
fn medplum_refusal_text() {
    assert_eq!(
        job_status_in("AsyncJob cannot be cancelled if status is not 'accepted', job had status 'completed'")
            .as_deref(),
        Some("completed")
    );
    assert_eq!(job_status_in("nope"), None);
}

fn export_job(seed_default: bool) -> Job {
    let mut retry = crate::RetryPolicy::default();
    if !seed_default {
        retry.seed = 7;
    }
    Job::new(JobConfig {
        base_url: "https://h/fhir".into(),
        operation: Operation::Export(Default::default()),
        prefer: Default::default(),
        retry,
        timeout_ms: None,
        allowed_origins: vec![],
    })
    .unwrap()
}

// protocol B4, issue 10 §3: 1,000 jobs that hit the same 503 at the same
// moment do not retry in lockstep (the seed is derived per job)
#[test]
fn retries_of_many_jobs_spread() {
    use crate::Response;
    let delay_for = |i: usize| {
        let mut job = export_job(true);
        let Ok(Action::Send { request }) = job.next_action(0) else { panic!() };
        let accepted = Response::new(202).with_header("Content-Location", &format!("https://h/fhir/jobs/{i}"));
        job.handle_response(request.id, accepted, 0).unwrap();
        let Ok(Action::Send { request }) = job.next_action(3_600_000) else { panic!() };
        job.handle_response(request.id, Response::new(503), 3_600_000).unwrap();
        let Ok(Action::Wait { delay_ms, .. }) = job.next_action(3_600_000) else { panic!() };
        delay_ms
    };
    let delays: Vec<u64> = (0..1000).map(delay_for).collect();
    let min = *delays.iter().min().unwrap();
    let max = *delays.iter().max().unwrap();
    let mut distinct = delays.clone();
    distinct.sort_unstable();
    distinct.dedup();
    // Default policy: 1 s ± 20 %, floored at the 1 s minimum wait.
    assert!(distinct.len() > 150, "only {} distinct delays", distinct.len());
    assert!(min >= 1_000 && max <= 1_200 && max - min > 150, "{min}..{max}");
    // Deterministic: the same inputs give the same delay.
    assert_eq!((delay_for(0), delay_for(999)), (delays[0], delays[999]));
}

// protocol H5, issue 10 §2: with no way to refresh, the refused token is
// not sent again, and the error has the server's words
#[test]
fn token_unavailable_fails_with_the_server_text() {
    use crate::Response;
    let mut job = export_job(false);
    let Ok(Action::Send { request }) = job.next_action(0) else { panic!() };
    let refused = Response::new(401).with_body(
        r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login","details":{"text":"Invalid token jwt malformed"}}]}"#,
    );
    job.handle_response(request.id, refused, 0).unwrap();
    assert_eq!(job.next_action(0).unwrap(), Action::RefreshToken);
    let err = job.token_unavailable("no token was configured");
    let text = err.to_string();
    assert!(text.contains("Invalid token jwt malformed") && text.contains("no token was configured"), "{text}");
    assert!(!text.contains("even after a token refresh"), "{text}");
    assert_eq!(job.next_action(0).unwrap_err(), err, "nothing more is sent");
}

// issue 11 §5: cancel, cleanup and the token are sub-states of the saved job,
// and survive a restart in every phase
#[test]
fn sub_states_survive_a_restart() {
    use super::state::{Cancel, Cleanup, Phase3, Refusal, TokenPhase};
    use super::CleanupResult;
    let mut job = export_job(false);
    for phase in [Phase3::Asked, Phase3::Sent, Phase3::Answered] {
        job.cancel = Some(Cancel {
            phase,
            result: (phase == Phase3::Answered).then_some(CancelResult::Rejected { http_status: 400, outcome: None }),
            fallback: Some("https://h/fhir/bulkdata/export/1".into()),
        });
        job.cleanup = Some(Cleanup { phase, result: Some(CleanupResult { http_status: Some(202), ok: true }) });
        job.token = TokenPhase::Refused;
        job.refusal = Some(Refusal { url: "https://h/s".into(), http_status: 401, server_message: Some("bad".into()) });
        let back = Job::from_json(&job.to_json()).unwrap();
        assert_eq!(back, job, "{phase:?}");
    }
}

// issue 13: a job attached to a status URL polls it at once, never kicks off
#[test]
fn attach_polls_the_status_url() {
    use crate::Response;
    let cfg = export_job(false).config().clone();
    let mut job = Job::attach(cfg.clone(), "https://h/fhir/jobs/9").unwrap();
    let Ok(Action::Send { request }) = job.next_action(1_000) else { panic!() };
    assert_eq!(
        (request.kind, request.url.as_str(), request.auth),
        (RequestKind::Status, "https://h/fhir/jobs/9", true)
    );
    let manifest = r#"{"transactionTime":"t","requiresAccessToken":true,"output":[],"error":[]}"#;
    job.handle_response(request.id, Response::new(200).with_body(manifest), 1_000).unwrap();
    assert!(matches!(job.next_action(1_000), Ok(Action::Done { .. })));
    assert!(Job::attach(cfg.clone(), "ftp://x").is_err());
    let https = JobConfig { base_url: "https://h/fhir".into(), ..cfg };
    assert_eq!(Job::attach(https, "http://h/fhir/jobs/1").unwrap_err().code(), "insecure_url");
}

// protocol K5: a record replaces the earlier one of its file; of two in one call the later wins;
// the merge keeps every other file's record
#[test]
fn records_merge_by_file_name() {
    use crate::coordinator::FileRecord;
    let done = |name: &str, n: u64| FileRecord {
        file_name: name.into(),
        identity: None,
        resources: n,
        bytes: Some(n * 10),
        checkpoint: None,
    };
    let part = |name: &str, n: u64| FileRecord {
        file_name: name.into(),
        identity: None,
        resources: n,
        bytes: None,
        checkpoint: Some(crate::FileCheckpoint {
            offset: n * 10,
            validator: "\"v\"".into(),
            resources: n,
            invalid: 0,
            taken: Vec::new(),
        }),
    };
    let mut job = export_job(true);
    job.record_files(vec![part("b", 1), done("a", 2), part("c", 3)]);
    job.record_files(vec![]);
    job.record_files(vec![part("c", 4), done("b", 5), done("d", 6), done("c", 7)]);
    let got: Vec<(&str, u64, bool)> =
        job.file_records().iter().map(|r| (r.file_name.as_str(), r.resources, r.is_done())).collect();
    assert_eq!(got, vec![("a", 2, true), ("b", 5, true), ("c", 7, true), ("d", 6, true)]);
}

// protocol K5: record_file replaces a file's record or inserts it in name order, like
// record_files; a saved state whose records are out of order (or name a file twice) is
// put in order on resume, the later record winning
#[test]
fn record_one_file_and_order_on_resume() {
    use crate::coordinator::FileRecord;
    let rec = |name: &str, n: u64| FileRecord {
        file_name: name.into(),
        identity: None,
        resources: n,
        bytes: Some(n),
        checkpoint: None,
    };
    let names = |job: &Job| job.file_records().iter().map(|r| (r.file_name.clone(), r.resources)).collect::<Vec<_>>();
    let mut job = export_job(true);
    job.record_file(rec("c", 1));
    job.record_file(rec("a", 2));
    job.record_file(rec("b", 3));
    job.record_file(rec("a", 4));
    let want = vec![("a".to_string(), 4), ("b".to_string(), 3), ("c".to_string(), 1)];
    assert_eq!(names(&job), want);
    let mut saved: serde_json::Value = serde_json::from_str(&job.to_json()).unwrap();
    saved["files"] = serde_json::json!([
        {"fileName": "c", "resources": 1, "bytes": 1},
        {"fileName": "a", "resources": 9, "bytes": 9},
        {"fileName": "b", "resources": 3, "bytes": 3},
        {"fileName": "a", "resources": 4, "bytes": 4}
    ]);
    assert_eq!(names(&Job::from_json(&saved.to_string()).unwrap()), want);
}

/// A finished export with a one-file manifest, its status URL `https://h/status/1`.
fn finished(retry: crate::RetryPolicy, timeout_ms: Option<u64>) -> Job {
    let mut job = Job::new(JobConfig {
        base_url: "https://h/fhir".into(),
        operation: Operation::Export(Default::default()),
        prefer: Default::default(),
        retry,
        timeout_ms,
        allowed_origins: Vec::new(),
    })
    .unwrap();
    let manifest = r#"{"transactionTime":"2026-01-01T00:00:00Z","request":"https://h/fhir/$export","requiresAccessToken":false,"output":[{"type":"Patient","url":"https://h/f/1"}],"error":[]}"#;
    let mut now = 0;
    loop {
        match job.next_action(now).unwrap() {
            Action::Send { request } if request.kind == RequestKind::Kickoff => {
                let r = crate::Response::new(202).with_header("Content-Location", "https://h/status/1");
                job.handle_response(request.id, r, now).unwrap();
            }
            Action::Send { request } => {
                job.handle_response(request.id, crate::Response::new(200).with_body(manifest), now).unwrap();
            }
            Action::Wait { until_ms, .. } => now = until_ms,
            Action::Done { .. } => return job,
            other => panic!("{other:?}"),
        }
    }
}

/// Drives a refresh answered by `answer` until the job is done again; the last error, if any.
fn refresh_with(job: &mut Job, now: &mut u64, answer: impl Fn() -> crate::Response) -> Option<Error> {
    job.refresh_manifest(*now).unwrap();
    let mut last = None;
    for _ in 0..1000 {
        match job.next_action(*now) {
            Ok(Action::Send { request }) => job.handle_response(request.id, answer(), *now).unwrap(),
            Ok(Action::Wait { until_ms, .. }) => *now = until_ms.max(*now + 1),
            Ok(Action::Done { .. }) => return last,
            Ok(other) => panic!("{other:?}"),
            Err(e) => last = Some(e),
        }
    }
    panic!("the refresh never ended");
}

// protocol K8: a refresh that fails (500 until the retries run out) leaves the finished job's
// result; the cause is the job's refresh error, not its error
#[test]
fn k8_a_failed_refresh_keeps_the_outcome() {
    let retry = crate::RetryPolicy { max_retries: 2, ..Default::default() };
    let mut job = finished(retry, None);
    let mut now = 10;
    refresh_with(&mut job, &mut now, || crate::Response::new(500));
    assert!(job.outcome().is_some_and(|o| o.is_success()), "the result is kept");
    assert!(job.error().is_none());
    let e = job.refresh_error().expect("the refresh's cause");
    assert_eq!(e.code(), "retries_exhausted", "{e}");
    // Saved and resumed: still the finished job, no trace of the failed refresh.
    let resumed = Job::from_json(&job.to_json()).unwrap();
    assert!(resumed.outcome().is_some_and(|o| o.is_success()) && resumed.refresh_error().is_none());
}

// protocol K8: a refresh answered 202 (still running) for ever ends within the retry budget
#[test]
fn k8_a_refresh_answered_202_for_ever_ends() {
    let retry = crate::RetryPolicy { max_retries: 3, ..Default::default() };
    let mut job = finished(retry, None);
    let mut now = 10;
    refresh_with(&mut job, &mut now, || crate::Response::new(202).with_header("Retry-After", "1"));
    let e = job.refresh_error().expect("the refresh failed");
    assert!(e.to_string().contains("202"), "{e}");
    assert!(job.outcome().is_some_and(|o| o.is_success()));
}

// protocol K8: the overall deadline covers a refresh: it ends the refresh, not the result
#[test]
fn k8_the_deadline_covers_a_refresh() {
    let mut job = finished(crate::RetryPolicy::default(), Some(60_000));
    let mut now = 59_000;
    refresh_with(&mut job, &mut now, || crate::Response::new(202).with_header("Retry-After", "30"));
    assert!(now <= 60_001, "no wait past the deadline: {now}");
    assert_eq!(job.refresh_error().map(Error::code), Some("deadline_exceeded"));
    assert!(job.outcome().is_some_and(|o| o.is_success()));
}

// protocol K9: a status answer over its ceiling ends the job with response_too_large; the
// ceiling travels with every job request
#[test]
fn k9_a_body_over_the_ceiling_is_typed() {
    let mut job = Job::new(JobConfig {
        base_url: "https://h/fhir".into(),
        operation: Operation::Export(Default::default()),
        prefer: Default::default(),
        retry: crate::RetryPolicy { max_response_bytes: 1024, ..Default::default() },
        timeout_ms: None,
        allowed_origins: Vec::new(),
    })
    .unwrap();
    let Action::Send { request } = job.next_action(0).unwrap() else { panic!() };
    assert_eq!(request.max_body, Some(1024));
    let r = crate::Response::new(202).with_header("Content-Location", "https://h/status/1?sig=SECRET");
    job.handle_response(request.id, r, 0).unwrap();
    let Action::Send { request } = job.next_action(10_000).unwrap() else { panic!() };
    assert_eq!(request.max_body, Some(1024));
    job.response_too_large(request.id, 10_000).unwrap();
    let e = job.error().expect("failed");
    assert_eq!(e.code(), "response_too_large");
    assert!(!e.to_string().contains("SECRET"), "{e}");
}

// issue 23 (medplum.md, "Observed later"): Medplum accepts the cancel of an async batch and its
// AsyncJob reads `cancelled`, yet about 3 s later it reads `completed` with every entry applied.
// After such a cancel the job polls at once and, once the AsyncJob read `cancelled`, once more.
mod medplum_cancel_confirm {
    use super::super::state::CONFIRM_CANCEL_MS;
    use super::*;
    use crate::http::Method;
    use crate::kickoff::OperationRequest;
    use crate::{OutcomeStatus, Response};

    const STATUS: &str = "https://h/fhir/job/b813/status";

    fn batch_job(timeout_ms: Option<u64>) -> Job {
        let retry = crate::RetryPolicy { jitter_percent: 0, ..Default::default() };
        Job::new(JobConfig {
            base_url: "https://h/fhir".into(),
            operation: Operation::Operation(OperationRequest {
                method: Method::Post,
                path: String::new(),
                body: Some(r#"{"resourceType":"Bundle","type":"batch","entry":[]}"#.into()),
            }),
            prefer: Default::default(),
            retry,
            timeout_ms,
            allowed_origins: vec![],
        })
        .unwrap()
    }

    fn send(job: &mut Job, now: u64) -> crate::http::Request {
        match job.next_action(now) {
            Ok(Action::Send { request }) => request,
            other => panic!("expected a request at {now}, got {other:?}"),
        }
    }

    fn asyncjob(status: &str) -> Response {
        let body = serde_json::json!({"resourceType": "AsyncJob", "id": "b813", "status": status,
            "request": "https://h/fhir/", "requestTime": "2026-11-30T09:36:04.325Z"});
        let code = if matches!(status, "completed" | "error") { 200 } else { 202 };
        let mut body = body;
        if status == "completed" {
            body["output"] = serde_json::json!({"resourceType": "Parameters",
                "parameter": [{"name": "results", "valueReference": {"reference": "Binary/1"}}]});
        }
        Response::new(code).with_body(body.to_string())
    }

    /// Kick-off (202 to the job route), cancel (DELETE job/{id}/status, 202 "Accepted").
    fn cancelled_batch(timeout_ms: Option<u64>) -> Job {
        let mut job = batch_job(timeout_ms);
        let k = send(&mut job, 0);
        job.handle_response(k.id, Response::new(202).with_header("Content-Location", STATUS), 0).unwrap();
        job.cancel(100);
        let c = send(&mut job, 100);
        assert_eq!((c.kind, c.method, c.url.as_str()), (RequestKind::Cancel, Method::Delete, STATUS));
        job.handle_response(c.id, Response::new(202).with_body("Accepted"), 100).unwrap();
        assert_eq!(job.cancel_result(), Some(&CancelResult::Cancelled { http_status: Some(202) }));
        job
    }

    fn done(job: &mut Job, now: u64) -> crate::Outcome {
        match job.next_action(now) {
            Ok(Action::Done { outcome }) => outcome,
            other => panic!("expected the end at {now}, got {other:?}"),
        }
    }

    #[test]
    fn medplum_cancelled_batch_that_completes_warns() {
        let mut job = cancelled_batch(None);
        // The confirming read goes at once: the AsyncJob reads `cancelled`.
        let p = send(&mut job, 100);
        assert_eq!((p.kind, p.url.as_str()), (RequestKind::Status, STATUS));
        job.handle_response(p.id, asyncjob("cancelled"), 100).unwrap();
        // One more poll, CONFIRM_CANCEL_MS later (a saved job keeps the confirmation).
        let mut job = Job::from_json(&job.to_json()).unwrap();
        assert!(
            matches!(job.next_action(200), Ok(Action::Wait { until_ms, .. }) if until_ms == 100 + CONFIRM_CANCEL_MS)
        );
        let p = send(&mut job, 100 + CONFIRM_CANCEL_MS);
        job.handle_response(p.id, asyncjob("completed"), 100 + CONFIRM_CANCEL_MS).unwrap();
        let o = done(&mut job, 100 + CONFIRM_CANCEL_MS);
        assert_eq!(o.status, OutcomeStatus::Completed, "the job's real outcome: its work was applied");
        assert!(
            o.warnings.iter().any(|w| w.contains("read `cancelled`") && w.contains("ran to completion")),
            "{:?}",
            o.warnings
        );
    }

    #[test]
    fn medplum_cancelled_batch_confirmed_cancelled() {
        let mut job = cancelled_batch(None);
        let p = send(&mut job, 100);
        job.handle_response(p.id, asyncjob("cancelled"), 100).unwrap();
        let p = send(&mut job, 100 + CONFIRM_CANCEL_MS);
        job.handle_response(p.id, asyncjob("cancelled"), 100 + CONFIRM_CANCEL_MS).unwrap();
        let o = done(&mut job, 100 + CONFIRM_CANCEL_MS);
        assert_eq!(o.status, OutcomeStatus::Cancelled);
        assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    }

    #[test]
    fn medplum_cancel_too_late_reports_the_completed_batch() {
        let mut job = cancelled_batch(None);
        let p = send(&mut job, 100);
        job.handle_response(p.id, asyncjob("completed"), 100).unwrap();
        let o = done(&mut job, 100);
        assert_eq!(o.status, OutcomeStatus::Completed);
        assert!(o.warnings.iter().any(|w| w.contains("ran to completion")), "{:?}", o.warnings);
    }

    #[test]
    fn medplum_cancel_that_still_reads_running_ends_cancelled_with_a_warning() {
        let mut job = cancelled_batch(None);
        let p = send(&mut job, 100);
        job.handle_response(p.id, asyncjob("active"), 100).unwrap();
        let p = send(&mut job, 100 + CONFIRM_CANCEL_MS);
        job.handle_response(p.id, asyncjob("active"), 100 + CONFIRM_CANCEL_MS).unwrap();
        let o = done(&mut job, 100 + CONFIRM_CANCEL_MS);
        assert_eq!(o.status, OutcomeStatus::Cancelled);
        assert!(o.warnings.iter().any(|w| w.contains("still reads as running")), "{:?}", o.warnings);
    }

    #[test]
    fn medplum_cancel_confirm_bounded_by_the_deadline() {
        // The deadline falls before the confirming poll: cancelled, with a warning, never a deadline error.
        let mut job = cancelled_batch(Some(2_000));
        let p = send(&mut job, 100);
        job.handle_response(p.id, asyncjob("cancelled"), 100).unwrap();
        let o = done(&mut job, 100);
        assert_eq!(o.status, OutcomeStatus::Cancelled);
        assert!(o.warnings.iter().any(|w| w.contains("deadline")), "{:?}", o.warnings);
    }

    #[test]
    fn medplum_job_route_attached_as_export_is_confirmed() {
        // `fhir-async cancel <status URL>` attaches the URL as an export: the job route still confirms.
        let cfg = JobConfig { operation: Operation::Export(Default::default()), ..batch_job(None).config().clone() };
        let mut job = Job::attach(cfg, STATUS).unwrap();
        job.cancel(0);
        let c = send(&mut job, 0);
        assert_eq!((c.kind, c.method), (RequestKind::Cancel, Method::Delete));
        job.handle_response(c.id, Response::new(202).with_body("Accepted"), 0).unwrap();
        let p = send(&mut job, 0);
        job.handle_response(p.id, asyncjob("cancelled"), 0).unwrap();
        let p = send(&mut job, CONFIRM_CANCEL_MS);
        job.handle_response(p.id, asyncjob("completed"), CONFIRM_CANCEL_MS).unwrap();
        let o = done(&mut job, CONFIRM_CANCEL_MS);
        assert_eq!(o.status, OutcomeStatus::Completed);
        assert!(o.warnings.iter().any(|w| w.contains("ran to completion")), "{:?}", o.warnings);
    }

    #[test]
    fn medplum_export_cancel_is_not_confirmed() {
        // An export's cancel stops it: no confirming poll (the vectors f04_* keep their shape).
        let mut job = Job::new(JobConfig {
            operation: Operation::Export(Default::default()),
            ..batch_job(None).config().clone()
        })
        .unwrap();
        let k = send(&mut job, 0);
        job.handle_response(k.id, Response::new(202).with_header("Content-Location", "https://h/fhir/AsyncJob/1"), 0)
            .unwrap();
        job.cancel(100);
        let c = send(&mut job, 100);
        job.handle_response(
            c.id,
            Response::new(200).with_body(r#"{"resourceType":"OperationOutcome","issue":[]}"#),
            100,
        )
        .unwrap();
        assert_eq!(done(&mut job, 100).status, OutcomeStatus::Cancelled);
    }
}
