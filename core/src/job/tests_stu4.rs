//! The STU3/STU4 kick-off items the job decides (protocol L2, L8): the form a server declared,
//! the one POST after a 405, `X-Export-Status` as code and phrase for any operation. The clock
//! is the `now` passed in.

use super::respond::export_status_code;
use super::{Action, Job, JobConfig};
use crate::http::{Method, Request, RequestKind, Response, TransportErrorKind};
use crate::kickoff::{ExportRequest, IgVersion, Operation, OperationRequest, PreferOptions};
use crate::outcome::OutcomeStatus;
use serde_json::{json, Value};

const T0: u64 = 1_767_225_600_000;

fn job(operation: Operation, prefer: PreferOptions) -> Job {
    Job::new(JobConfig {
        base_url: "https://h/fhir".into(),
        operation,
        prefer,
        retry: Default::default(),
        timeout_ms: None,
        allowed_origins: vec![],
    })
    .unwrap()
}

fn export(e: ExportRequest) -> Job {
    job(Operation::Export(e), PreferOptions::default())
}

fn auto() -> ExportRequest {
    ExportRequest {
        types: vec!["Patient".into(), "Observation".into()],
        include_associated_data: vec!["LatestProvenanceResources".into()],
        ig_version: IgVersion::Auto,
        ..Default::default()
    }
}

fn sent(job: &mut Job, now: u64) -> Request {
    match job.next_action(now) {
        Ok(Action::Send { request }) => request,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn capability_statement(definition: &str) -> Response {
    let cs = json!({"resourceType": "CapabilityStatement", "rest": [{"mode": "server",
        "operation": [{"name": "export", "definition": definition}]}]});
    Response::new(200).with_header("Content-Type", "application/fhir+json").with_body(cs.to_string())
}

fn accepted() -> Response {
    Response::new(202).with_header("Content-Location", "https://h/fhir/status/1")
}

fn refused_get() -> Response {
    let oo = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported"}]});
    Response::new(405).with_header("Allow", "POST").with_body(oo.to_string())
}

fn parameters(r: &Request) -> Vec<Value> {
    let body: Value = serde_json::from_str(r.body.as_deref().expect("a body")).unwrap();
    body["parameter"].as_array().unwrap().clone()
}

fn include_associated_data(r: &Request) -> Value {
    parameters(r).into_iter().find(|p| p["name"] == "includeAssociatedData").expect("includeAssociatedData")
}

fn is_post_of_parameters(r: &Request) -> bool {
    r.kind == RequestKind::Kickoff
        && r.method == Method::Post
        && r.url == "https://h/fhir/$export"
        && r.header("Content-Type") == Some("application/fhir+json")
}

// protocol L2: `auto` reads the CapabilityStatement; `export|4.0.0` gets the STU4 POST form
#[test]
fn l2_a_server_declaring_export_4_0_0_gets_the_stu4_post_kickoff() {
    let mut job = export(auto());
    assert_eq!(job.ig_version(), None, "not known before the CapabilityStatement");
    let metadata = sent(&mut job, T0);
    assert_eq!(
        (metadata.kind, metadata.method, metadata.url.as_str()),
        (RequestKind::Capabilities, Method::Get, "https://h/fhir/metadata")
    );
    assert_eq!(metadata.header("Accept"), Some("application/fhir+json"));
    assert!(matches!(job.next_action(T0), Err(crate::Error::Usage { .. })), "one request at a time");
    job.handle_response(
        metadata.id,
        capability_statement("http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export|4.0.0"),
        T0 + 5,
    )
    .unwrap();
    assert_eq!(job.ig_version(), Some(IgVersion::Stu4));
    let kickoff = sent(&mut job, T0 + 5);
    assert!(is_post_of_parameters(&kickoff), "{kickoff:?}");
    assert_eq!(include_associated_data(&kickoff)["valueCoding"]["code"], "LatestProvenanceResources");
    assert_eq!(parameters(&kickoff).iter().filter(|p| p["name"] == "_type").count(), 2);
    job.handle_response(kickoff.id, accepted(), T0 + 6).unwrap();
    assert_eq!(job.status_url(), Some("https://h/fhir/status/1"));
    assert!(job.warnings().is_empty(), "{:?}", job.warnings());
}

// protocol L2: a server declaring nothing newer gets the existing GET form; a pinned version reads nothing
#[test]
fn l2_a_server_declaring_no_stu4_export_gets_the_get_kickoff() {
    let mut job = export(auto());
    let metadata = sent(&mut job, T0);
    job.handle_response(
        metadata.id,
        capability_statement("http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"),
        T0,
    )
    .unwrap();
    assert_eq!(job.ig_version(), Some(IgVersion::Stu3));
    let kickoff = sent(&mut job, T0);
    assert_eq!((kickoff.kind, kickoff.method), (RequestKind::Kickoff, Method::Get));
    assert_eq!(
        kickoff.url,
        "https://h/fhir/$export?_type=Patient%2CObservation&includeAssociatedData=LatestProvenanceResources"
    );
    for v in [IgVersion::Stu2, IgVersion::Stu3, IgVersion::Stu4] {
        let mut pinned = export(ExportRequest { ig_version: v, ..Default::default() });
        assert_eq!(sent(&mut pinned, T0).kind, RequestKind::Kickoff, "{v:?}: no metadata read");
        assert_eq!(pinned.ig_version(), Some(v));
    }
    let mut other = job_of_operation(Method::Get);
    assert_eq!(sent(&mut other, T0).kind, RequestKind::Kickoff, "only exports read the CapabilityStatement");
    assert_eq!(other.ig_version(), None);
}

// protocol L2: no CapabilityStatement (an error, a page, a failure, a huge body) → the GET form, warned
#[test]
fn l2_an_unreadable_capability_statement_keeps_the_get_form_with_a_warning() {
    type Answer = fn(&mut Job, u64);
    let answers: [(&str, Answer); 5] = [
        ("404", |j, id| j.handle_response(id, Response::new(404), T0).unwrap()),
        ("html", |j, id| j.handle_response(id, Response::new(200).with_body("<html>hi</html>"), T0).unwrap()),
        ("401", |j, id| j.handle_response(id, Response::new(401), T0).unwrap()),
        ("reset", |j, id| j.handle_transport_error(id, TransportErrorKind::AfterSend, "reset", T0).unwrap()),
        ("too large", |j, id| j.response_too_large(id, T0).unwrap()),
    ];
    for (what, answer) in answers {
        let mut job = export(auto());
        let metadata = sent(&mut job, T0);
        answer(&mut job, metadata.id);
        let kickoff = sent(&mut job, T0);
        assert_eq!((kickoff.kind, kickoff.method), (RequestKind::Kickoff, Method::Get), "{what}");
        assert!(
            job.warnings().iter().any(|w| w.contains("STU3 form") && w.contains("L2")),
            "{what}: {:?}",
            job.warnings()
        );
        assert_eq!(job.ig_version(), Some(IgVersion::Stu3), "{what}");
    }
}

// protocol L2: a 405 to a GET kick-off is sent once more as POST at once; a second 405 ends the job
#[test]
fn l2_a_405_to_a_get_kickoff_is_retried_once_as_post() {
    let e = ExportRequest {
        types: vec!["Patient".into()],
        since: Some("2024-01-01T00:00:00Z".into()),
        ..Default::default()
    };
    let mut job = export(e.clone());
    let get = sent(&mut job, T0);
    assert_eq!(get.method, Method::Get);
    job.handle_response(get.id, refused_get(), T0 + 10).unwrap();
    assert!(job.outcome().is_none(), "not a failure yet");
    let post = sent(&mut job, T0 + 10);
    assert!(is_post_of_parameters(&post), "{post:?}");
    assert!(post.id > get.id);
    let p = parameters(&post);
    assert!(p.contains(&json!({"name": "_type", "valueString": "Patient"})), "{p:?}");
    assert!(p.contains(&json!({"name": "_since", "valueInstant": "2024-01-01T00:00:00Z"})), "{p:?}");
    assert!(job.warnings().iter().any(|w| w.contains("405") && w.contains("Allow: POST")), "{:?}", job.warnings());
    assert_eq!(job.ig_version(), Some(IgVersion::Stu3), "a pinned version keeps its POST form");
    job.handle_response(post.id, refused_get(), T0 + 20).unwrap();
    let outcome = job.outcome().expect("the second 405 ends the job");
    assert_eq!((outcome.status, outcome.http_status), (OutcomeStatus::Failed, Some(405)));

    // accepted on the POST, and the choice survives a restart before it
    let mut job = export(e);
    let get = sent(&mut job, T0);
    job.handle_response(get.id, refused_get(), T0).unwrap();
    let mut job = Job::from_json(&job.to_json()).unwrap();
    let post = sent(&mut job, T0);
    assert_eq!(post.method, Method::Post);
    job.handle_response(post.id, accepted(), T0).unwrap();
    assert_eq!(job.status_url(), Some("https://h/fhir/status/1"));
}

// protocol L2: under `auto`, the POST after a 405 is the STU4 form (the server is POST-only)
#[test]
fn l2_a_405_under_auto_is_retried_in_the_stu4_form() {
    let mut job = export(auto());
    let metadata = sent(&mut job, T0);
    job.handle_response(metadata.id, Response::new(404), T0).unwrap();
    let get = sent(&mut job, T0);
    job.handle_response(get.id, refused_get(), T0).unwrap();
    let post = sent(&mut job, T0);
    assert!(is_post_of_parameters(&post), "{post:?}");
    assert_eq!(
        include_associated_data(&post)["valueCoding"],
        json!({"system": crate::kickoff::INCLUDE_ASSOCIATED_DATA_SYSTEM, "code": "LatestProvenanceResources"})
    );
    assert_eq!(job.ig_version(), Some(IgVersion::Stu4));
}

// protocol L2 (with F1): a cancel asked while the CapabilityStatement is read, or while a GET
// kick-off that is then refused with 405 is in flight, ends the job: nothing more is sent
#[test]
fn l2_a_cancel_during_the_capability_statement_or_before_the_post_sends_nothing_more() {
    let mut job = export(auto());
    let metadata = sent(&mut job, T0);
    job.cancel(T0);
    assert!(job.outcome().is_none(), "the read is in flight");
    let cs = capability_statement("http://x/OperationDefinition/export|4.0.0");
    job.handle_response(metadata.id, cs, T0).unwrap();
    assert!(matches!(job.next_action(T0), Ok(Action::Done { .. })), "no kick-off after the cancel");
    assert_eq!(job.outcome().map(|o| o.status), Some(OutcomeStatus::Cancelled));

    let mut job = export(ExportRequest::default());
    let get = sent(&mut job, T0);
    job.cancel(T0);
    job.handle_response(get.id, refused_get(), T0).unwrap();
    assert!(matches!(job.next_action(T0), Ok(Action::Done { .. })), "no POST after the cancel");
    assert_eq!(job.outcome().map(|o| o.status), Some(OutcomeStatus::Cancelled));
}

fn job_of_operation(method: Method) -> Job {
    job(
        Operation::Operation(OperationRequest { method, path: "$reindex".into(), body: None }),
        PreferOptions { separate_export_status: true, ..Default::default() },
    )
}

// protocol L2: only a GET export is retried: a 405 to a POST, or to another operation, is its answer
#[test]
fn l2_a_405_to_a_post_or_to_another_operation_ends_the_job() {
    for mut job in [export(ExportRequest { post: true, ..Default::default() }), job_of_operation(Method::Get)] {
        let r = sent(&mut job, T0);
        job.handle_response(r.id, refused_get(), T0).unwrap();
        let outcome = job.outcome().expect("done");
        assert_eq!((outcome.status, outcome.http_status), (OutcomeStatus::Failed, Some(405)), "{r:?}");
    }
}

// protocol L2: the declared version is saved with the job; a read in flight at a restart is read again
#[test]
fn l2_the_declared_version_survives_a_restart() {
    let mut job = export(auto());
    let metadata = sent(&mut job, T0);
    let mut restarted = Job::from_json(&job.to_json()).unwrap();
    let again = sent(&mut restarted, T0 + 1);
    assert_eq!(again.kind, RequestKind::Capabilities, "a CapabilityStatement read is safe to repeat");
    job.handle_response(metadata.id, capability_statement("http://x/OperationDefinition/export|4.0.0"), T0).unwrap();
    let mut restarted = Job::from_json(&job.to_json()).unwrap();
    assert_eq!(restarted.ig_version(), Some(IgVersion::Stu4));
    assert!(is_post_of_parameters(&sent(&mut restarted, T0)));
}

// protocol L8: `X-Export-Status` is code + phrase; read `^\s*(\d{3})`
#[test]
fn l8_the_export_status_code_is_read_from_code_and_phrase() {
    for (value, code) in [
        ("202", Some(202)),
        ("202 Accepted", Some(202)),
        ("  200 OK", Some(200)),
        ("\t500 Internal Server Error", Some(500)),
        ("404Not Found", Some(404)),
        ("2020", None),
        ("20", None),
        ("Accepted", None),
        ("", None),
        ("２０２", None),
    ] {
        assert_eq!(export_status_code(value), code, "{value:?}");
    }
}

/// A `$reindex` whose kick-off was answered with `separate-export-status` applied, at its first
/// poll: the job, the poll, the time.
fn first_separate_poll() -> (Job, Request, u64) {
    let mut job = job_of_operation(Method::Post);
    let kickoff = sent(&mut job, T0);
    assert_eq!(kickoff.header("Prefer"), Some("respond-async, separate-export-status"));
    job.handle_response(kickoff.id, accepted().with_header("Preference-Applied", "separate-export-status"), T0)
        .unwrap();
    let Ok(Action::Wait { until_ms, .. }) = job.next_action(T0) else { panic!("a wait") };
    let poll = sent(&mut job, until_ms);
    assert_eq!(poll.kind, RequestKind::Status);
    (job, poll, until_ms)
}

fn export_status(value: &str, body: &Value) -> Response {
    Response::new(200).with_header("X-Export-Status", value).with_body(body.to_string())
}

// protocol L8: separate-export-status works for any async operation, with code and phrase
#[test]
fn l8_x_export_status_with_a_phrase_drives_any_async_operation() {
    let (mut job, poll, now) = first_separate_poll();
    let running = Response::new(200).with_header("X-Export-Status", "202 Accepted").with_header("Retry-After", "7");
    job.handle_response(poll.id, running, now).unwrap();
    assert!(matches!(job.next_action(now), Ok(Action::Wait { delay_ms: 7000, .. })), "202 Accepted: still running");
    let poll = sent(&mut job, now + 7000);
    let failed = json!({"resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": "reindex failed"}]});
    job.handle_response(poll.id, export_status("500 Internal Server Error", &failed), now + 7000).unwrap();
    let outcome = job.outcome().expect("done");
    assert_eq!((outcome.status, outcome.http_status), (OutcomeStatus::Failed, Some(500)));

    let (mut job, poll, now) = first_separate_poll();
    let done = json!({"resourceType": "Parameters", "parameter": []});
    job.handle_response(poll.id, export_status("200 OK", &done), now).unwrap();
    let outcome = job.outcome().expect("done");
    assert_eq!(outcome.status, OutcomeStatus::Completed, "{outcome:?}");
}

// protocol N4 / L2: `kickoff_request` is the kick-off in the form the job sent it: undecided before
// an `auto` export read the CapabilityStatement, the STU4 POST once the server declared 4.0.0, the
// POST after a 405 to the GET; never a token
#[test]
fn l2_kickoff_request_is_the_form_sent() {
    let mut job = export(auto());
    assert!(job.kickoff_request().is_none(), "undecided before the CapabilityStatement");
    let metadata = sent(&mut job, T0);
    job.handle_response(
        metadata.id,
        capability_statement("http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export|4.0.0"),
        T0,
    )
    .unwrap();
    let kickoff = sent(&mut job, T0);
    job.handle_response(kickoff.id, accepted(), T0).unwrap();
    let logged = job.kickoff_request().expect("known once sent");
    assert_eq!((logged.method, &logged.url, &logged.body), (kickoff.method, &kickoff.url, &kickoff.body));
    assert_eq!((&logged.headers, logged.auth), (&kickoff.headers, kickoff.auth));
    assert!(is_post_of_parameters(&logged), "{logged:?}");

    // STU3 GET refused with 405, sent again as POST: the POST is what was sent.
    let mut job = export(ExportRequest { types: vec!["Patient".into()], ..Default::default() });
    assert_eq!(job.kickoff_request().map(|r| r.method), Some(Method::Get));
    let get = sent(&mut job, T0);
    job.handle_response(get.id, refused_get(), T0).unwrap();
    let post = sent(&mut job, T0);
    job.handle_response(post.id, accepted(), T0).unwrap();
    let logged = job.kickoff_request().unwrap();
    assert_eq!((logged.method, &logged.body), (Method::Post, &post.body));
    assert!(!logged.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")));
}

// protocol L6: under `auto`, a `_typeFilter` whose search parameter the CapabilityStatement does
// not declare is a warning; the kick-off goes as asked
#[test]
fn l6_auto_export_warns_of_a_type_filter_the_server_does_not_declare() {
    let mut job = export(ExportRequest {
        type_filters: vec!["Observation?status=final".into(), "Observation?code=1".into()],
        ..auto()
    });
    let metadata = sent(&mut job, T0);
    let cs = json!({"resourceType": "CapabilityStatement", "rest": [{"mode": "server",
        "operation": [{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export|4.0.0"}],
        "resource": [{"type": "Observation", "searchParam": [{"name": "code", "type": "token"}]}]}]});
    job.handle_response(metadata.id, Response::new(200).with_body(cs.to_string()), T0).unwrap();
    let kickoff = sent(&mut job, T0);
    assert!(is_post_of_parameters(&kickoff), "{kickoff:?}");
    assert_eq!(parameters(&kickoff).iter().filter(|p| p["name"] == "_typeFilter").count(), 2);
    let w = job.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("Observation.status") && w[0].contains("L6"), "{w:?}");
}

// protocol L6: a kick-off with `_typeFilter` refused with an OperationOutcome `not-supported` says
// which parameter and that `handling=lenient` asks the server to ignore it
#[test]
fn l6_a_not_supported_refusal_names_the_parameter() {
    let mut job = export(ExportRequest {
        types: vec!["Observation".into()],
        type_filters: vec!["Observation?code:below=1".into()],
        ig_version: IgVersion::Stu3,
        ..Default::default()
    });
    let kickoff = sent(&mut job, T0);
    let oo = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported",
        "diagnostics": "modifier :below is not supported"}]});
    job.handle_response(kickoff.id, Response::new(400).with_body(oo.to_string()), T0).unwrap();
    let o = job.outcome().expect("refused");
    assert_eq!(o.status, OutcomeStatus::Failed);
    assert!(o.warnings.iter().any(|w| w.contains("_typeFilter") && w.contains("handling=lenient")), "{:?}", o.warnings);
    // Without an optional parameter sent, the refusal is only the refusal.
    let mut job = export(ExportRequest { types: vec!["Observation".into()], ..Default::default() });
    let kickoff = sent(&mut job, T0);
    job.handle_response(kickoff.id, Response::new(400).with_body(oo.to_string()), T0).unwrap();
    assert!(job.outcome().unwrap().warnings.is_empty());
}

// protocol L4 [R]: an export with `_elements` ends with a note that its files are subsets, never
// to replace full resources
#[test]
fn l4_an_elements_export_notes_its_files_are_subsets() {
    let mut job = export(ExportRequest {
        types: vec!["Patient".into()],
        elements: vec!["name".into()],
        ig_version: IgVersion::Stu3,
        ..Default::default()
    });
    let kickoff = sent(&mut job, T0);
    job.handle_response(kickoff.id, accepted(), T0).unwrap();
    let poll = sent(&mut job, T0 + 1_000_000);
    let manifest = json!({"transactionTime": "2026-01-01T00:00:00Z", "request": "x", "requiresAccessToken": true,
        "output": [{"type": "Patient", "url": "https://h/files/p.ndjson"}], "error": []});
    job.handle_response(poll.id, Response::new(200).with_body(manifest.to_string()), T0 + 1_000_000).unwrap();
    let o = job.outcome().expect("done");
    assert_eq!(o.status, OutcomeStatus::Completed);
    assert!(o.warnings.iter().any(|w| w.contains("SUBSETTED") && w.contains("L4")), "{:?}", o.warnings);
}
