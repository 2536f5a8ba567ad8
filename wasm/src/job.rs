//! `Job`: the engine's job state machine, as is, for JavaScript.

use fhir_async::{Job, JobConfig, Response, TransportErrorKind};
use wasm_bindgen::prelude::*;

use crate::convert::{from_js, header_pairs, id, ms, to_js};
use crate::errors::{job_error, usage};

/// A FHIR asynchronous job (the engine's `Job`): feed it responses and the
/// time, it answers with the next action. No I/O.
#[wasm_bindgen(js_name = Job)]
#[derive(Debug)]
pub struct WasmJob {
    pub(crate) inner: Job,
}

#[wasm_bindgen(js_class = Job)]
impl WasmJob {
    /// Creates a job from a `JobConfig` object; a bad configuration throws a `usage` error.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Result<WasmJob, JsValue> {
        let config: JobConfig = from_js(config, "JobConfig")?;
        Job::new(config).map(|inner| WasmJob { inner }).map_err(|e| job_error(&e))
    }

    /// Resumes a job saved with `toJson()`.
    #[wasm_bindgen(js_name = fromJson)]
    pub fn from_json(json: &str) -> Result<WasmJob, JsValue> {
        Job::from_json(json).map(|inner| WasmJob { inner }).map_err(|e| job_error(&e))
    }

    /// The whole state as a JSON string (no token inside).
    #[wasm_bindgen(js_name = toJson)]
    pub fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// The next action: `{type: "send", request}`, `{type: "wait", untilMs, delayMs}`,
    /// `{type: "refreshToken"}` or `{type: "done", outcome}`.
    #[wasm_bindgen(js_name = nextAction)]
    pub fn next_action(&mut self, now: f64) -> Result<JsValue, JsValue> {
        match self.job().next_action(ms(now)) {
            Ok(a) => to_js(&a),
            Err(e) => Err(job_error(&e)),
        }
    }

    /// Hands back the response to request `id`. `headers` is flat:
    /// `[name, value, name, value, ...]`; `url` is the final URL when the
    /// platform followed redirects itself (browsers), else `null`.
    #[wasm_bindgen(js_name = handleResponse)]
    pub fn handle_response(
        &mut self,
        request_id: f64,
        status: u16,
        headers: Vec<String>,
        body: Vec<u8>,
        url: Option<String>,
        now: f64,
    ) -> Result<(), JsValue> {
        let response = Response { status, headers: header_pairs(headers), body, url };
        self.job().handle_response(id(request_id), response, ms(now)).map_err(|e| job_error(&e))
    }

    /// Hands back a transport failure: `kind` is `"connect"` (never reached
    /// the server) or `"afterSend"`.
    #[wasm_bindgen(js_name = handleTransportError)]
    pub fn handle_transport_error(
        &mut self,
        request_id: f64,
        kind: &str,
        message: &str,
        now: f64,
    ) -> Result<(), JsValue> {
        let kind = match kind {
            "connect" => TransportErrorKind::Connect,
            "afterSend" => TransportErrorKind::AfterSend,
            other => return Err(usage(&format!("unknown transport error kind {other:?}"))),
        };
        self.job().handle_transport_error(id(request_id), kind, message, ms(now)).map_err(|e| job_error(&e))
    }

    /// The body of the answer to request `id` was longer than its `maxBody`
    /// (protocol K9): the binding stopped reading. The job ends with
    /// `response_too_large` (a manifest refresh's ends only the refresh, K8).
    #[wasm_bindgen(js_name = responseTooLarge)]
    pub fn response_too_large(&mut self, request_id: f64, now: f64) -> Result<(), JsValue> {
        self.job().response_too_large(id(request_id), ms(now)).map_err(|e| job_error(&e))
    }

    /// After `refreshToken`, when no new token can be had (none configured, or
    /// a fixed string): the job ends with `unauthorized` naming `reason`
    /// instead of sending the refused token again.
    #[wasm_bindgen(js_name = tokenUnavailable)]
    pub fn token_unavailable(&mut self, reason: &str) {
        self.job().token_unavailable(reason);
    }

    /// Asks for the job to be cancelled.
    pub fn cancel(&mut self, now: f64) {
        self.job().cancel(ms(now));
    }

    /// Asks for a DELETE of the status URL after the files were downloaded.
    pub fn cleanup(&mut self) -> Result<(), JsValue> {
        self.job().cleanup().map_err(|e| job_error(&e))
    }

    /// Re-fetches the manifest for fresh file URLs (after `refreshManifest` download actions).
    #[wasm_bindgen(js_name = refreshManifest)]
    pub fn refresh_manifest(&mut self, now: f64) -> Result<(), JsValue> {
        self.job().refresh_manifest(ms(now)).map_err(|e| job_error(&e))
    }

    /// Handles a verified callback payload; returns the `CallbackEffect`.
    #[wasm_bindgen(js_name = handleCallback)]
    pub fn handle_callback(&mut self, payload: JsValue, now: f64) -> Result<JsValue, JsValue> {
        let payload: fhir_async::CallbackPayload = from_js(payload, "CallbackPayload")?;
        to_js(&self.job().handle_callback(&payload, ms(now)))
    }

    /// Brings the next poll forward to `now` (overrides Retry-After once);
    /// returns whether anything changed.
    #[wasm_bindgen(js_name = pollNow)]
    pub fn poll_now(&mut self, now: f64) -> bool {
        self.job().poll_now(ms(now))
    }

    /// A progress snapshot.
    pub fn progress(&self, now: f64) -> Result<JsValue, JsValue> {
        to_js(&self.inner.progress(ms(now)))
    }

    /// The download plan (`PlannedFile[]`) of the manifest so far.
    #[wasm_bindgen(js_name = downloadPlan)]
    pub fn download_plan(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.download_plan())
    }

    /// What the cancel achieved, or `null`.
    #[wasm_bindgen(js_name = cancelResult)]
    pub fn cancel_result(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.cancel_result())
    }

    /// What `cleanup()` achieved, or `null`.
    #[wasm_bindgen(js_name = cleanupResult)]
    pub fn cleanup_result(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.cleanup_result())
    }

    /// The outcome, once done, else `null`.
    pub fn outcome(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.outcome())
    }

    /// The error that stopped the job as a JS `Error`, or `null`.
    pub fn error(&self) -> JsValue {
        self.inner.error().map_or(JsValue::NULL, job_error)
    }

    /// Warnings that did not stop the job.
    pub fn warnings(&self) -> Vec<String> {
        self.inner.warnings().to_vec()
    }

    /// `Preference-Applied` tokens the server echoed.
    #[wasm_bindgen(js_name = preferenceApplied)]
    pub fn preference_applied(&self) -> Vec<String> {
        self.inner.preference_applied().to_vec()
    }

    /// The configuration the job was created with.
    pub fn config(&self) -> Result<JsValue, JsValue> {
        to_js(self.inner.config())
    }

    /// The token rule for this job's downloads.
    #[wasm_bindgen(js_name = tokenPolicy)]
    pub fn token_policy(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.token_policy())
    }

    /// The status URL once the kick-off was accepted, else `undefined`.
    #[wasm_bindgen(getter, js_name = statusUrl)]
    pub fn status_url(&self) -> Option<String> {
        self.inner.status_url().map(str::to_owned)
    }

    /// Whether the job is over (done or errored).
    #[wasm_bindgen(getter, js_name = isFinished)]
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

impl WasmJob {
    /// The job, for a call that may change it.
    fn job(&mut self) -> &mut Job {
        &mut self.inner
    }
}
