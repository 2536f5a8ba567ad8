//! Aidbox `callback-url`: one best-effort POST when a job completes, fails or is cancelled,
//! signed `X-Signature: sha256=<lowercase hex HMAC-SHA256(secret, body)>`.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::app::App;
use crate::dialects::status_url;
use crate::http::oo_value;
use crate::jobs::{Job, Mode, Phase};

/// The `X-Signature` header value for a body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| Hmac::<Sha256>::new_from_slice(b"k").expect("hmac accepts any key"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Only loopback callbacks are sent (this server never talks to the outside world).
fn allowed(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| u.scheme() == "http" && u.host_str() == Some("127.0.0.1"))
}

/// Starts the background task that waits for the job to end and posts the callback.
pub fn spawn(app: Arc<App>, job: Arc<Job>, url: String) {
    if !allowed(&url) {
        return;
    }
    tokio::spawn(async move {
        let phase = loop {
            let notified = job.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match job.phase() {
                Phase::Running(_) => {}
                p => break p,
            }
            match job.done_at() {
                Some(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
                    }
                }
                None => notified.await,
            }
        };
        let status_url = status_url(&app, &job);
        let result_url = if job.mode == Mode::Redirect { format!("{status_url}/result") } else { status_url };
        let mut params = vec![
            json!({"name":"status","valueCode": match phase {
                Phase::Completed => "completed",
                Phase::Failed => "failed",
                _ => "cancelled",
            }}),
            json!({"name":"resultUrl","valueUrl": result_url}),
        ];
        if phase == Phase::Failed {
            params.push(json!({"name":"outcome","resource": oo_value("error","processing","The operation failed (fault 'fail')")}));
        }
        let body = json!({"resourceType":"Parameters","parameter":params}).to_string();
        let sig = signature(&app.cfg.callback_secret, body.as_bytes());
        // Best effort: one attempt, errors ignored.
        let _ = app
            .http
            .post(&url)
            .header("content-type", "application/fhir+json")
            .header("x-signature", sig)
            .body(body)
            .send()
            .await;
    });
}
