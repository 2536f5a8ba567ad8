//! Medplum, as a real server answers (`../shared/servers/medplum.md`) and as
//! its documentation says (seeds 000, 002):
//! - `$export` → `bulkdata/export/{id}` (Bulk Data style), files on signed
//!   storage URLs (no token), cancel = `DELETE bulkdata/export/{id}`;
//! - any other async operation → `job/{id}/status` answering the `AsyncJob`
//!   (`accepted`, `active`, then `completed` with `Binary/{id}` outputs that
//!   need the token, or `error` with an OperationOutcome);
//! - the documented form: `AsyncJob/{id}` status URLs and `AsyncJob/$cancel`.
use fhir_async::{
    CancelResult, DownloadOptions, ExportRequest, Method, Operation, OperationRequest, OutcomeStatus, ResultBody,
    RetryPolicy,
};
use fhir_async_client::{Client, ClientError, JobRun, StaticToken};
use fhir_async_examples::TestServer;
use std::time::Duration;

fn client(base: &str) -> Result<Client, ClientError> {
    Client::builder(base)
        .token(StaticToken::new("demo-token"))
        .retry(RetryPolicy { min_wait_ms: 50, initial_backoff_ms: 50, max_backoff_ms: 200, ..RetryPolicy::default() })
        .timeout(Duration::from_secs(60))
        .build()
}

fn export() -> ExportRequest {
    ExportRequest { types: vec!["Patient".into(), "Observation".into()], ..Default::default() }
}

fn batch(bundle: &str) -> Operation {
    Operation::Operation(OperationRequest { method: Method::Post, path: String::new(), body: Some(bundle.into()) })
}

/// Cancels a running export once it has been polled.
fn cancel_after_a_poll(mut run: JobRun) -> Result<JobRun, ClientError> {
    while run.progress().polls < 1 {
        run.step(Duration::from_millis(100))?;
    }
    assert_eq!(run.cancel()?.status, OutcomeStatus::Cancelled);
    Ok(run)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::start(&["--token", "demo-token", "--patients", "50"])?;
    let real = |spec: &str| format!("{}/_f/{spec}/medplum/fhir/R4", server.url);
    let dir = std::env::temp_dir().join(format!("fhir-async-medplum-{}", std::process::id()));

    // 1. Export: Bulk Data style status URL; signed files on the FHIR origin, sent without the token.
    let mut run = client(&real("ms=300"))?.export(export())?;
    let outcome = run.wait()?;
    println!("export status URL: {}", run.job().status_url().unwrap_or_default());
    assert!(run.job().status_url().unwrap_or_default().contains("/bulkdata/export/"));
    assert_eq!(outcome.status, OutcomeStatus::Completed);
    let plan = run.job().download_plan();
    assert!(plan.iter().all(|f| !f.send_token && f.url.contains("/storage/")));
    let summary = run.download(&dir, DownloadOptions::default())?;
    assert!(summary.is_complete() && !summary.files.is_empty(), "{summary:?}");
    for f in &summary.files {
        let resources = f.result.report.as_ref().map_or(0, |r| r.resources);
        println!("  {} {resources} resources (signed storage URL, no token)", f.result.file.file_name);
    }

    // 2. An async batch: job/{id}/status, AsyncJob `accepted` then `completed` with a
    //    `Binary/{id}` result relative to the FHIR base, fetched with the token.
    let bundle =
        r#"{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient?_count=1"}}]}"#;
    let mut run = client(&real("ms=200"))?.start(batch(bundle))?;
    let outcome = run.wait()?;
    println!("batch status URL: {}", run.job().status_url().unwrap_or_default());
    assert!(run.job().status_url().unwrap_or_default().ends_with("/status"));
    assert!(matches!(&outcome.result, ResultBody::AsyncJob { job_status, .. } if job_status == "completed"));
    let plan = run.job().download_plan();
    assert!(plan.len() == 1 && plan[0].send_token && plan[0].url.contains("/medplum/fhir/R4/Binary/"), "{plan:?}");
    let summary = run.download(&dir, DownloadOptions { max_per_origin: 1, ..Default::default() })?;
    assert!(summary.is_complete(), "{summary:?}");
    let resources = summary.files[0].result.report.as_ref().map_or(0, |r| r.resources);
    println!("  batch-response: {} ({resources} resource)", summary.files[0].result.file.file_name);

    // 3. A batch the server rejects: 200 AsyncJob `error`; the outcome's text is the message.
    let bad = r#"{"resourceType":"Bundle","type":"searchset","entry":[{"request":{"method":"GET","url":"Patient"}}]}"#;
    let outcome = client(&real("ms=100"))?.start(batch(bad))?.wait()?;
    println!("rejected batch: {:?}", outcome.message);
    assert_eq!(outcome.status, OutcomeStatus::Failed);
    assert!(outcome.message.as_deref().unwrap_or_default().contains("Unrecognized bundle type"));

    // 4. Cancel a running export: DELETE bulkdata/export/{id} → 202 → cancelled.
    let run = cancel_after_a_poll(client(&real("ms=60000"))?.export(export())?)?;
    println!("cancel (real): {:?}", run.job().cancel_result());
    assert!(matches!(run.job().cancel_result(), Some(CancelResult::Cancelled { http_status: Some(202) })));

    // 5. The documented form: AsyncJob/{id} status URLs; POST AsyncJob/{id}/$cancel → "All OK".
    let doc = format!("{}/_f/ms=60000/medplum-doc/fhir/R4", server.url);
    let run = cancel_after_a_poll(client(&doc)?.export(export())?)?;
    assert!(run.job().status_url().unwrap_or_default().contains("/AsyncJob/"));
    println!("cancel (documented): {:?}", run.job().cancel_result());

    let stats: serde_json::Value =
        serde_json::from_str(&ureq::get(format!("{}/_admin/stats", server.url)).call()?.into_body().read_to_string()?)?;
    assert_eq!(stats["storage_requests_with_authorization"], 0, "the token never reaches the storage origin");
    std::fs::remove_dir_all(&dir).ok();
    println!("medplum example: ok");
    Ok(())
}
