//! Issue 23 (medplum.md, "Observed later"): a real Medplum accepts the cancel of an async batch
//! (202) and its AsyncJob reads `cancelled`, yet the batch runs on and reads `completed`, every
//! entry applied. The reference server's `medplum` dialect does the same; `fhir-async cancel`
//! confirms with one more poll and says the batch completed.

mod common;

use common::{run_env, Server};

#[test]
fn medplum_cancelled_batch_that_completes_is_reported_with_a_warning() {
    // The batch takes 2 s; the confirming poll goes 5 s after the AsyncJob read `cancelled`.
    let srv = Server::start(|c| c.job_ms = 2_000);
    let base = format!("{}/medplum/fhir/R4/", srv.origin);
    let batch =
        r#"{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient?_count=1"}}]}"#;
    let r = ureq::post(&base)
        .header("Prefer", "respond-async")
        .header("Content-Type", "application/fhir+json")
        .send(batch)
        .unwrap();
    assert_eq!(r.status(), 202);
    let url = r.headers().get("content-location").unwrap().to_str().unwrap().to_owned();
    assert!(url.contains("/job/") && url.ends_with("/status"), "{url}");
    let (code, stdout, stderr) = run_env(&["cancel", &url], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout.lines().next(), Some("Completed: the server accepted the cancel (HTTP 202)"), "{stdout}");
    assert!(stdout.contains("warning:") && stdout.contains("ran to completion"), "{stdout}");
}
