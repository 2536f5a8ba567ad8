//! Oracle Health dialect (seed 004): 202 with `X-Progress: in-progress` and a
//! long `Retry-After`, then 200 with `Expires` and a manifest that needs the
//! token; `cleanup()` (DELETE) after downloading, as Oracle asks.
use fhir_async::{ExportLevel, ExportRequest, Job, JobConfig, Operation, OutcomeStatus, RetryPolicy};
use fhir_async_examples::{Driver, TestServer};
use std::sync::atomic::AtomicU64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The seed's Retry-After is 600 s; the example asks the server for 2 s so it ends quickly.
    let server = TestServer::start(&["--token", "demo-token", "--oracle-retry-after", "2", "--patients", "30"])?;
    let driver = Driver::new(Some("demo-token".into()));
    let mut job = Job::new(JobConfig {
        base_url: format!("{}/_f/ms=1500/oracle/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d", server.url),
        operation: Operation::Export(ExportRequest {
            level: ExportLevel::Group,
            group_id: Some("252a42c0-5844-11ec-bf63-0242ac130002".into()),
            types: vec!["Patient".into(), "Observation".into()],
            ..Default::default()
        }),
        prefer: Default::default(),
        retry: RetryPolicy::default(),
        timeout_ms: Some(60_000),
        allowed_origins: vec![],
    })?;
    let mut seen = Vec::new();
    let outcome = driver.run(&mut job, |p| {
        if let (Some(m), Some(next)) = (&p.message, p.next_poll_in_ms) {
            if seen.last() != Some(m) {
                println!("X-Progress: {m} (next poll in {:.1} s, from Retry-After)", next as f64 / 1000.0);
                seen.push(m.clone());
            }
        }
    })?;
    assert!(seen.iter().any(|m| m == "in-progress"));
    assert_eq!(outcome.status, OutcomeStatus::CompletedWithErrors, "Oracle's manifest carries an error file");
    println!("Expires: {}", outcome.expires.as_deref().unwrap_or("-"));
    assert!(outcome.expires_at_ms.is_some());
    assert!(job.download_plan().iter().all(|f| f.send_token));
    let dir = std::env::temp_dir().join(format!("fhir-async-oracle-{}", std::process::id()));
    let files = driver.download_all(&mut job, &dir, 4, &AtomicU64::new(0), &AtomicU64::new(0))?;
    println!("downloaded {} files", files.len());
    // Tell the server we are done with the files.
    job.cleanup()?;
    driver.run(&mut job, |_| {})?;
    println!("cleanup: {:?}", job.cleanup_result());
    assert!(job.cleanup_result().is_some_and(|c| c.ok));
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let gone =
        agent.get(&job.download_plan()[0].url).header("Authorization", "Bearer demo-token").call()?.status().as_u16();
    assert_eq!(gone, 404, "files are removed after cleanup");
    std::fs::remove_dir_all(&dir)?;
    println!("oracle example: ok");
    Ok(())
}
