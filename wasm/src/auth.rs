//! `TokenSession`: SMART Backend Services (protocol J1–J6) for JavaScript.
//! The core finds the token endpoint, builds the assertion and reads the
//! answer; JS sends the requests and signs with WebCrypto (or, for a client
//! secret, signs nothing). The token and the secret never leave through a
//! `Debug`, an error or a saved state.

use fhir_async::{AuthStep, BackendServices, ClientSecret, Response, SigningAlg, TokenSession};
use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::convert::{header_pairs, id, ms, to_js};
use crate::errors::{auth_error, usage};

/// One backend-services client's token for one FHIR server (the core's `TokenSession`).
#[wasm_bindgen(js_name = TokenSession)]
#[derive(Debug)]
pub struct WasmTokenSession {
    inner: TokenSession,
}

fn set(o: &Object, k: &str, v: &JsValue) {
    // Plain data properties on a fresh object cannot fail.
    let _ = Reflect::set(o, &k.into(), v);
}

#[wasm_bindgen(js_class = TokenSession)]
impl WasmTokenSession {
    /// A session for `baseUrl`: client `clientId` asking for `scope`
    /// (passed through), signing with `alg` (`"RS384"|"ES384"`) under key id
    /// `kid`; `tokenUrl` found by discovery when `null`; `nonce` a random
    /// number (seed of the assertions' `jti`); `clientSecret` (then `alg` is
    /// `null`): `client_secret_basic`, no signing. (Arguments, not an object:
    /// no deserializer for it in the `.wasm`.)
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)] // plain arguments cross to JS without a deserializer
    pub fn new(
        base_url: &str,
        client_id: String,
        scope: String,
        alg: Option<String>,
        token_url: Option<String>,
        kid: Option<String>,
        nonce: f64,
        client_secret: Option<String>,
    ) -> Result<WasmTokenSession, JsValue> {
        let alg = match (alg.as_deref(), &client_secret) {
            (Some("RS384"), _) | (None, Some(_)) => SigningAlg::RS384,
            (Some("ES384"), _) => SigningAlg::ES384,
            (other, _) => return Err(usage(&format!("alg must be \"RS384\" or \"ES384\", not {other:?}"))),
        };
        let client_secret = client_secret.map(ClientSecret::new);
        let config = BackendServices { client_id, scope, token_url, alg, kid, jku: None, client_secret };
        let inner = TokenSession::new(base_url, config, ms(nonce)).map_err(|e| auth_error(&e))?;
        Ok(WasmTokenSession { inner })
    }

    /// `{type: "send", request}`, `{type: "sign", signingInput, alg, kid}`,
    /// `{type: "wait", untilMs, delayMs}` or `{type: "ready"}`; throws the
    /// `auth` error when no token can be had.
    pub fn next(&mut self, now: f64) -> Result<JsValue, JsValue> {
        let step = self.inner.next(ms(now)).map_err(|e| auth_error(&e))?;
        let o = Object::new();
        let kind = match step {
            AuthStep::Send { request } => {
                set(&o, "request", &to_js(&request)?);
                "send"
            }
            AuthStep::Sign { signing_input, alg, kid } => {
                set(&o, "signingInput", &signing_input.into());
                set(&o, "alg", &alg.as_str().into());
                set(&o, "kid", &kid.map_or(JsValue::NULL, JsValue::from));
                "sign"
            }
            AuthStep::Wait { until_ms, delay_ms } => {
                set(&o, "untilMs", &(until_ms as f64).into());
                set(&o, "delayMs", &(delay_ms as f64).into());
                "wait"
            }
            AuthStep::Ready => "ready",
        };
        set(&o, "type", &kind.into());
        Ok(o.into())
    }

    /// The raw signature of the last `sign` step's input (RS384: PKCS#1 v1.5;
    /// ES384: the 96-byte `r‖s` WebCrypto returns).
    pub fn signed(&mut self, signature: &[u8]) -> Result<(), JsValue> {
        self.inner.signed(signature).map_err(|e| auth_error(&e))
    }

    /// The answer to request `id` (headers flat: `[name, value, ...]`).
    #[wasm_bindgen(js_name = handleResponse)]
    pub fn handle_response(
        &mut self,
        request_id: f64,
        status: u16,
        headers: Vec<String>,
        body: Vec<u8>,
        now: f64,
    ) -> Result<(), JsValue> {
        let response = Response { status, headers: header_pairs(headers), body, url: None };
        self.inner.handle_response(id(request_id), &response, ms(now)).map_err(|e| auth_error(&e))
    }

    /// Request `id` failed before an answer (retried within the budget).
    #[wasm_bindgen(js_name = handleTransportError)]
    pub fn handle_transport_error(&mut self, request_id: f64, message: &str, now: f64) -> Result<(), JsValue> {
        self.inner.handle_transport_error(id(request_id), message, ms(now)).map_err(|e| auth_error(&e))
    }

    /// The token, if one is valid at `now` with the refresh margin.
    pub fn token(&self, now: f64) -> Option<String> {
        self.inner.token(ms(now)).map(str::to_owned)
    }

    /// The server refused the token (a 401): the next step fetches a new one.
    pub fn invalidate(&mut self) {
        self.inner.invalidate();
    }
}
