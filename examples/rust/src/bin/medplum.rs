//! Medplum, as a real server answers (`../shared/servers/medplum.md`) and as
//! its documentation says (seeds 000, 002):
//! - `$export` → `bulkdata/export/{id}` (Bulk Data style), files on signed
//!   storage URLs (no token), cancel = `DELETE bulkdata/export/{id}`;
//! - any other async operation → `job/{id}/status` answering the `AsyncJob`
//!   (`accepted`, `active`, then `completed` with `Binary/{id}` outputs that
//!   need the token, or `error` with an OperationOutcome);
//! - the documented form: `AsyncJob/{id}` status URLs and `AsyncJob/$cancel`.
use fhir_async::{
    CancelResult, ExportRequest, Job, JobConfig, Method, Operation, OperationRequest, OutcomeStatus, ResultBody,
    RetryPolicy,
};
use fhir_async_examples::{Driver, TestServer};
use std::sync::atomic::AtomicU64;

fn config(base: &str, operation: Operation) -> JobConfig {
    JobConfig {
        base_url: base.into(),
        operation,
        prefer: Default::default(),
        retry: RetryPolicy { min_wait_ms: 50, initial_backoff_ms: 50, max_backoff_ms: 200, ..RetryPolicy::default() },
        timeout_ms: Some(60_000),
        allowed_origins: vec![],
    }
}

fn export() -> Operation {
    Operation::Export(ExportRequest { types: vec!["Patient".into(), "Observation".into()], ..Default::default() })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::start(&["--token", "demo-token", "--patients", "50"])?;
    let driver = Driver::new(Some("demo-token".into()));
    let real = |spec: &str| format!("{}/_f/{spec}/medplum/fhir/R4", server.url);
    let dir = std::env::temp_dir().join(format!("fhir-async-medplum-{}", std::process::id()));

    // 1. Export: Bulk Data style status URL; signed files on the FHIR origin, sent without the token.
    let mut job = Job::new(config(&real("ms=300"), export()))?;
    let outcome = driver.run(&mut job, |_| {})?;
    println!("export status URL: {}", job.status_url().unwrap_or_default());
    assert!(job.status_url().unwrap_or_default().contains("/bulkdata/export/"));
    assert_eq!(outcome.status, OutcomeStatus::Completed);
    let plan = job.download_plan();
    assert!(plan.iter().all(|f| !f.send_token && f.url.contains("/storage/")));
    let files = driver.download_all(&mut job, &dir, 4, &AtomicU64::new(0), &AtomicU64::new(0))?;
    for (path, r) in &files {
        println!("  {} {} resources (signed storage URL, no token)", path.display(), r.resources);
    }
    assert!(!files.is_empty());

    // 2. An async batch: job/{id}/status, AsyncJob `accepted` then `completed` with a
    //    `Binary/{id}` result relative to the FHIR base, fetched with the token.
    let bundle =
        r#"{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient?_count=1"}}]}"#;
    let batch =
        Operation::Operation(OperationRequest { method: Method::Post, path: String::new(), body: Some(bundle.into()) });
    let mut job = Job::new(config(&real("ms=200"), batch))?;
    let outcome = driver.run(&mut job, |_| {})?;
    println!("batch status URL: {}", job.status_url().unwrap_or_default());
    assert!(job.status_url().unwrap_or_default().ends_with("/status"));
    assert!(matches!(&outcome.result, ResultBody::AsyncJob { job_status, .. } if job_status == "completed"));
    let plan = job.download_plan();
    assert!(plan.len() == 1 && plan[0].send_token && plan[0].url.contains("/medplum/fhir/R4/Binary/"), "{plan:?}");
    let files = driver.download_all(&mut job, &dir, 1, &AtomicU64::new(0), &AtomicU64::new(0))?;
    println!("  batch-response: {} ({} resource)", files[0].0.display(), files[0].1.resources);

    // 3. A batch the server rejects: 200 AsyncJob `error`; the outcome's text is the message.
    let bad = r#"{"resourceType":"Bundle","type":"searchset","entry":[{"request":{"method":"GET","url":"Patient"}}]}"#;
    let op =
        Operation::Operation(OperationRequest { method: Method::Post, path: String::new(), body: Some(bad.into()) });
    let mut job = Job::new(config(&real("ms=100"), op))?;
    let outcome = driver.run(&mut job, |_| {})?;
    println!("rejected batch: {:?}", outcome.message);
    assert_eq!(outcome.status, OutcomeStatus::Failed);
    assert!(outcome.message.as_deref().unwrap_or_default().contains("Unrecognized bundle type"));

    // 4. Cancel a running export: DELETE bulkdata/export/{id} → 202 → cancelled.
    let mut job = Job::new(config(&real("ms=60000"), export()))?;
    let (_tx, inbox) = std::sync::mpsc::channel();
    while job.progress(0).polls < 1 {
        driver.step(&mut job, &inbox)?;
    }
    job.cancel(fhir_async_examples::now_ms());
    let outcome = driver.run(&mut job, |_| {})?;
    assert_eq!(outcome.status, OutcomeStatus::Cancelled);
    println!("cancel (real): {:?}", job.cancel_result());
    assert!(matches!(job.cancel_result(), Some(CancelResult::Cancelled { http_status: Some(202) })));

    // 5. The documented form: AsyncJob/{id} status URLs; POST AsyncJob/{id}/$cancel → "All OK".
    let doc = format!("{}/_f/ms=60000/medplum-doc/fhir/R4", server.url);
    let mut job = Job::new(config(&doc, export()))?;
    while job.progress(0).polls < 1 {
        driver.step(&mut job, &inbox)?;
    }
    assert!(job.status_url().unwrap_or_default().contains("/AsyncJob/"));
    job.cancel(fhir_async_examples::now_ms());
    let outcome = driver.run(&mut job, |_| {})?;
    assert_eq!(outcome.status, OutcomeStatus::Cancelled);
    println!("cancel (documented): {:?}", job.cancel_result());

    let stats: serde_json::Value =
        serde_json::from_str(&ureq::get(format!("{}/_admin/stats", server.url)).call()?.into_body().read_to_string()?)?;
    assert_eq!(stats["storage_requests_with_authorization"], 0, "the token never reaches the storage origin");
    std::fs::remove_dir_all(&dir).ok();
    println!("medplum example: ok");
    Ok(())
}
