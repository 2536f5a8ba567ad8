//! Aidbox's unified pattern (seed 003): redirect mode (303 See Other to the
//! result) and a signed callback that wakes a job early.
use fhir_async::{
    verify_callback, AsyncMode, Delivery, Method, Operation, OperationRequest, OutcomeStatus, PreferOptions,
    RetryPolicy,
};
use fhir_async_client::{Client, ClientError, JobRun};
use fhir_async_examples::TestServer;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Starts `$reindex` on `base` with these `Prefer` options.
fn reindex(base: &str, prefer: PreferOptions) -> Result<JobRun, ClientError> {
    let client = Client::builder(base)
        .prefer(prefer)
        .retry(RetryPolicy { min_wait_ms: 50, ..RetryPolicy::default() })
        .timeout(Duration::from_secs(60))
        .build()?;
    client.start(Operation::Operation(OperationRequest {
        method: Method::Post,
        path: "$reindex".into(),
        body: Some("{\"resourceType\":\"Parameters\"}".into()),
    }))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::start(&[])?;

    // Redirect mode: the status URL answers 303; the result URL answers like the synchronous call.
    let mut job = reindex(
        &format!("{}/_f/ms=300/aidbox/fhir", server.url),
        PreferOptions { async_mode: Some(AsyncMode::Redirect), ..Default::default() },
    )?;
    let outcome = job.wait()?;
    println!(
        "redirect mode: {:?} via {:?} from {}",
        outcome.status,
        outcome.delivery,
        outcome.result_url.as_deref().unwrap_or("-")
    );
    assert_eq!(outcome.delivery, Delivery::Redirect);
    assert_eq!(outcome.status, OutcomeStatus::Completed);
    assert!(job.job().preference_applied().iter().any(|p| p == "async-mode=redirect"));

    // Callback: the server would tell us to come back in 600 s; its callback wakes us at once.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let callback_url = format!("http://{}/callback", listener.local_addr()?);
    let (tx, inbox) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let (mut len, mut sig) = (0usize, None);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("x-signature:") {
                    sig = line.split_once(':').map(|(_, v)| v.trim().to_owned());
                }
                line.clear();
            }
            let mut body = vec![0; len];
            let ok = reader.read_exact(&mut body).is_ok();
            let verified = ok.then(|| verify_callback(&body, sig.as_deref(), b"fhir-async-demo-secret").ok()).flatten();
            let status = if verified.is_some() { "204 No Content" } else { "401 Unauthorized" };
            let _ = reader.get_mut().write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes());
            if let Some(payload) = verified {
                let _ = tx.send(payload);
            }
        }
    });
    let mut job = reindex(
        &format!("{}/_f/ms=500;retry=600/aidbox/fhir", server.url),
        PreferOptions { callback_url: Some(callback_url), ..Default::default() },
    )?;
    let started = Instant::now();
    let outcome = job.wait_with_callbacks(&inbox, |_| {})?;
    println!(
        "callback mode: {:?} after {:.1} s (Retry-After was 600 s)",
        outcome.status,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(outcome.status, OutcomeStatus::Completed);
    assert!(started.elapsed().as_secs() < 30, "the callback woke the job early");
    println!("aidbox example: ok");
    Ok(())
}
