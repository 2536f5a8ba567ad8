//! HealthConnect dialect (seed 001): cancel with DELETE on the Content-Location
//! (202, no body); every later poll of that URL is 404.
use fhir_async::{CancelResult, ExportRequest, Job, JobConfig, Operation, OutcomeStatus, RetryPolicy};
use fhir_async_examples::{now_ms, Driver, TestServer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::start(&[])?;
    let driver = Driver::new(None);
    let mut job = Job::new(JobConfig {
        base_url: format!("{}/_f/ms=60000/healthconnect/fhir", server.url),
        operation: Operation::Export(ExportRequest::default()),
        prefer: Default::default(),
        retry: RetryPolicy { min_wait_ms: 50, ..RetryPolicy::default() },
        timeout_ms: Some(30_000),
        allowed_origins: vec![],
    })?;
    let (_tx, inbox) = std::sync::mpsc::channel();
    while job.progress(0).polls < 1 {
        driver.step(&mut job, &inbox)?;
    }
    let status_url = job.status_url().unwrap_or_default().to_owned();
    println!("status URL: {status_url}");
    job.cancel(now_ms());
    let outcome = driver.run(&mut job, |_| {})?;
    assert_eq!(outcome.status, OutcomeStatus::Cancelled);
    assert!(matches!(job.cancel_result(), Some(CancelResult::Cancelled { http_status: Some(202) })));
    // The SDK stops polling; the server now answers 404 to that URL (seed 001).
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let after = agent.get(&status_url).call()?.status().as_u16();
    println!("poll after DELETE: {after}");
    assert_eq!(after, 404);
    println!("healthconnect example: ok");
    Ok(())
}
