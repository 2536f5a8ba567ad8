//! Oracle Health dialect (seed 004): 202 with `X-Progress: in-progress` and a
//! long `Retry-After`, then 200 with `Expires` and a manifest that needs the
//! token; `cleanup()` (DELETE) after downloading, as Oracle asks.
use fhir_async::{DownloadOptions, ExportLevel, ExportRequest, OutcomeStatus};
use fhir_async_client::{Client, StaticToken};
use fhir_async_examples::TestServer;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The seed's Retry-After is 600 s; the example asks the server for 2 s so it ends quickly.
    let server = TestServer::start(&["--token", "demo-token", "--oracle-retry-after", "2", "--patients", "30"])?;
    let client = Client::builder(&format!("{}/_f/ms=1500/oracle/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d", server.url))
        .token(StaticToken::new("demo-token"))
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut run = client.export(ExportRequest {
        level: ExportLevel::Group,
        group_id: Some("252a42c0-5844-11ec-bf63-0242ac130002".into()),
        types: vec!["Patient".into(), "Observation".into()],
        ..Default::default()
    })?;
    let mut seen = Vec::new();
    let outcome = run.wait_with(|p| {
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
    assert!(run.job().download_plan().iter().all(|f| f.send_token));
    let dir = std::env::temp_dir().join(format!("fhir-async-oracle-{}", std::process::id()));
    let summary = run.download(&dir, DownloadOptions::default())?;
    assert!(summary.is_complete(), "{summary:?}");
    println!("downloaded {} files", summary.files.len());
    // Tell the server we are done with the files.
    let cleanup = run.cleanup()?;
    println!("cleanup: {cleanup:?}");
    assert!(cleanup.ok);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let file = &run.job().download_plan()[0].url;
    let gone = agent.get(file).header("Authorization", "Bearer demo-token").call()?.status().as_u16();
    assert_eq!(gone, 404, "files are removed after cleanup");
    std::fs::remove_dir_all(&dir)?;
    println!("oracle example: ok");
    Ok(())
}
