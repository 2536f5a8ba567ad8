//! HealthConnect dialect (seed 001): cancel with DELETE on the Content-Location
//! (202, no body); every later poll of that URL is 404.
use fhir_async::{CancelResult, ExportRequest, OutcomeStatus, RetryPolicy};
use fhir_async_client::Client;
use fhir_async_examples::TestServer;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::start(&[])?;
    let client = Client::builder(&format!("{}/_f/ms=60000/healthconnect/fhir", server.url))
        .retry(RetryPolicy { min_wait_ms: 50, ..RetryPolicy::default() })
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut run = client.export(ExportRequest::default())?;
    while run.progress().polls < 1 {
        run.step(Duration::from_millis(100))?;
    }
    let status_url = run.job().status_url().unwrap_or_default().to_owned();
    println!("status URL: {status_url}");
    let outcome = run.cancel()?;
    assert_eq!(outcome.status, OutcomeStatus::Cancelled);
    assert!(matches!(run.job().cancel_result(), Some(CancelResult::Cancelled { http_status: Some(202) })));
    // The SDK stops polling; the server now answers 404 to that URL (seed 001).
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let after = agent.get(&status_url).call()?.status().as_u16();
    println!("poll after DELETE: {after}");
    assert_eq!(after, 404);
    println!("healthconnect example: ok");
    Ok(())
}
