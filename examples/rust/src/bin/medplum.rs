//! Medplum dialect (seeds 000, 002): `$export` answered with an `AsyncJob`
//! status URL, files on presigned storage (no token), and `AsyncJob/$cancel`.
use fhir_async::{CancelResult, ExportRequest, Job, JobConfig, Operation, OutcomeStatus, ResultBody, RetryPolicy};
use fhir_async_examples::{Driver, TestServer};
use std::sync::atomic::AtomicU64;

fn config(base: &str) -> JobConfig {
    JobConfig {
        base_url: base.into(),
        operation: Operation::Export(ExportRequest {
            types: vec!["Patient".into(), "Observation".into()],
            ..Default::default()
        }),
        prefer: Default::default(),
        retry: RetryPolicy { min_wait_ms: 50, initial_backoff_ms: 50, ..RetryPolicy::default() },
        timeout_ms: Some(60_000),
        allowed_origins: vec![],
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::start(&["--token", "demo-token", "--patients", "50"])?;
    let driver = Driver::new(Some("demo-token".into()));

    // 1. Export: the status URL is AsyncJob/{id}; GET answers 200 AsyncJob while `accepted`.
    let mut job = Job::new(config(&format!("{}/_f/ms=300/medplum/fhir/R4", server.url)))?;
    let outcome = driver.run(&mut job, |_| {})?;
    println!("status URL: {}", job.status_url().unwrap_or_default());
    assert!(job.status_url().unwrap_or_default().contains("/AsyncJob/"));
    assert_eq!(outcome.status, OutcomeStatus::Completed);
    assert!(matches!(&outcome.result, ResultBody::AsyncJob { job_status, .. } if job_status == "completed"));
    let plan = job.download_plan();
    assert!(plan.iter().all(|f| !f.send_token && f.url.starts_with(&server.storage_url)));
    let dir = std::env::temp_dir().join(format!("fhir-async-medplum-{}", std::process::id()));
    let files = driver.download_all(&mut job, &dir, 4, &AtomicU64::new(0), &AtomicU64::new(0))?;
    for (path, r) in &files {
        println!("  {} {} resources (presigned storage, no token)", path.display(), r.resources);
    }
    let stats: serde_json::Value =
        serde_json::from_str(&ureq::get(format!("{}/_admin/stats", server.url)).call()?.into_body().read_to_string()?)?;
    assert_eq!(stats["storage_requests_with_authorization"], 0, "the token never reaches the storage origin");
    std::fs::remove_dir_all(&dir)?;

    // 2. Cancel a running job: POST AsyncJob/{id}/$cancel → "All OK".
    let mut job = Job::new(config(&format!("{}/_f/ms=60000/medplum/fhir/R4", server.url)))?;
    let (_tx, inbox) = std::sync::mpsc::channel();
    while job.progress(0).polls < 1 {
        driver.step(&mut job, &inbox)?;
    }
    job.cancel(fhir_async_examples::now_ms());
    let outcome = driver.run(&mut job, |_| {})?;
    assert_eq!(outcome.status, OutcomeStatus::Cancelled);
    println!("cancel: {:?}", job.cancel_result());
    assert!(matches!(job.cancel_result(), Some(CancelResult::Cancelled { .. })));
    println!("medplum example: ok");
    Ok(())
}
