//! Free functions: the callback helpers, the User-Agent, the core's ceilings
//! and defaults, and how a URL may be shown.

use wasm_bindgen::prelude::*;

use crate::convert::to_js;
use crate::errors::callback_error;

/// Verifies an `X-Signature` (`sha256=<hex>`) over the exact body bytes and
/// returns the parsed `CallbackPayload`; throws `bad_signature` or `malformed`.
#[wasm_bindgen(js_name = verifyCallback)]
pub fn verify_callback(body: &[u8], signature: Option<String>, secret: &[u8]) -> Result<JsValue, JsValue> {
    match fhir_async::verify_callback(body, signature.as_deref(), secret) {
        Ok(p) => to_js(&p),
        Err(e) => Err(callback_error(&e)),
    }
}

/// Parses a callback `Parameters` without checking a signature.
#[wasm_bindgen(js_name = parseCallback)]
pub fn parse_callback(body: &[u8]) -> Result<JsValue, JsValue> {
    match fhir_async::parse_callback(body) {
        Ok(p) => to_js(&p),
        Err(e) => Err(callback_error(&e)),
    }
}

/// Signs a body the way `verifyCallback` expects (`sha256=<hex>`).
#[wasm_bindgen(js_name = signCallback)]
pub fn sign_callback(body: &[u8], secret: &[u8]) -> String {
    fhir_async::sign_callback(body, secret)
}

/// The `User-Agent` a binding sends where the platform allows:
/// `fhir-async/<version> (<binding>)`, e.g. `userAgent("node")`.
#[wasm_bindgen(js_name = userAgent)]
pub fn user_agent(binding: &str) -> String {
    fhir_async::user_agent(binding)
}

/// The core's ceilings and defaults (`Ceilings`: `maxErrorBody`,
/// `maxInvalidReported`, `defaultMaxPerOrigin`, ...), so that the package
/// copies none of them.
#[wasm_bindgen]
pub fn ceilings() -> Result<JsValue, JsValue> {
    to_js(&fhir_async::Ceilings::default())
}

/// A URL as it may be shown (protocol K10): without its query, fragment and
/// user info (the core's `redact_url`).
#[wasm_bindgen(js_name = redactUrl)]
pub fn redact_url(url: &str) -> String {
    fhir_async::origin::redact_url(url)
}
