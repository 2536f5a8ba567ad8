//! SMART Backend Services authorization (protocol J1–J6), sans-IO: the
//! client-credentials grant with a signed JWT assertion.
//!
//! A [`TokenSession`] finds the token endpoint (`.well-known/smart-configuration`,
//! else the CapabilityStatement's `oauth-uris` extension, else a configured
//! URL), builds the assertion's header and claims, asks the caller only to
//! *sign* bytes with its key, sends the token request, reads the answer, and
//! says when a new token is due (before it expires, with a margin, and after
//! a 401). The token never enters a saved state, a `Debug` output or an error.
//!
//! A symmetric client ([`BackendServices::client_secret`]) authenticates with
//! `client_secret_basic` instead (J3): no assertion and no `Sign` step; the
//! token request carries `Authorization: Basic base64(urlenc(id):urlenc(secret))`.
//! The secret, like the token, is never serialized, shown or put in an error.
//!
//! ```text
//!   next(now) ─> Send(discovery GET) ─> handle_response ─┐
//!      │                                                  v
//!      ├──────> Sign{signing_input, alg, kid} ─> signed(signature)
//!      │                                                  v
//!      ├──────> Send(token POST) ──────────────> handle_response ─> Ready
//!      │  5xx / transport error: Wait, then again (bounded)
//!      └ Ready while token(now) is valid; invalidate() after a 401
//! ```

use crate::http::{Method, Request, RequestKind, Response};
use crate::outcome::{parse_body, Body};
use crate::retry::{backoff_ms, RetryPolicy};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The signing algorithms SMART 2.x servers SHALL support (J2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-384 (the default: unused by a client-secret registration).
    #[default]
    RS384,
    /// ECDSA on P-384 with SHA-384.
    ES384,
}

impl SigningAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS384 => "RS384",
            SigningAlg::ES384 => "ES384",
        }
    }
}

/// A backend-services client registration (the same JSON shape in every binding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendServices {
    /// The client id: the assertion's `iss` and `sub`.
    pub client_id: String,
    /// Requested scope, passed through: v1 `system/*.read` or v2 `system/*.rs`.
    pub scope: String,
    /// The token endpoint; found by discovery when absent (J1).
    #[serde(default)]
    pub token_url: Option<String>,
    /// The key's algorithm (ignored with a `client_secret`).
    #[serde(default)]
    pub alg: SigningAlg,
    /// The key id (`kid` in the JWT header), as registered with the server.
    #[serde(default)]
    pub kid: Option<String>,
    /// The URL of the client's public JWKS (`jku`), when registered that way.
    #[serde(default)]
    pub jku: Option<String>,
    /// A symmetric client's secret: `client_secret_basic` instead of a signed
    /// assertion (J3). Read from JSON (`clientSecret`), never written back.
    #[serde(default, skip_serializing)]
    pub client_secret: Option<ClientSecret>,
}

/// A client secret (`client_secret_basic`). Never shown (`Debug` prints
/// `ClientSecret(***)`), never serialized (J6).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        ClientSecret(secret.into())
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(***)")
    }
}

/// Why no token could be had (code `auth`). Carries the server's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[error("authorization failed: {message}{}{}", error.as_deref().map(|e| format!(" ({e}")).unwrap_or_default(), match (error, error_description) { (Some(_), Some(d)) => format!(": {d})"), (Some(_), None) => ")".to_owned(), _ => String::new() })]
pub struct AuthError {
    /// What happened, and the likely cause.
    pub message: String,
    /// The OAuth `error` (RFC 6749 §5.2), when the server sent one.
    pub error: Option<String>,
    /// The server's `error_description`.
    pub error_description: Option<String>,
    /// The HTTP status of the answer, if any.
    pub http_status: Option<u16>,
}

impl AuthError {
    /// The code, the same in every binding.
    pub fn code(&self) -> &'static str {
        "auth"
    }

    fn new(message: impl Into<String>) -> Self {
        AuthError { message: message.into(), error: None, error_description: None, http_status: None }
    }
}

/// What the caller does next for the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum AuthStep {
    /// Send this request (discovery or the token request; never with a bearer
    /// token) and hand the answer to [`TokenSession::handle_response`].
    Send {
        /// The request.
        request: Request,
    },
    /// Sign `signing_input` (the JWT's `base64url(header).base64url(claims)`)
    /// with the private key `kid` using `alg`, and hand the raw signature
    /// (PKCS#1 v1.5 bytes for RS384; the 96-byte `r‖s` for ES384) to
    /// [`TokenSession::signed`].
    Sign {
        /// The bytes to sign.
        signing_input: String,
        /// The algorithm.
        alg: SigningAlg,
        /// The key id.
        kid: Option<String>,
    },
    /// The token endpoint failed; try again at `until_ms`.
    Wait {
        /// When.
        until_ms: u64,
        /// `until_ms - now`.
        delay_ms: u64,
    },
    /// A valid token is ready: [`TokenSession::token`].
    Ready,
}

#[derive(Clone, PartialEq, Eq)]
struct Token {
    value: String,
    expires_at_ms: u64,
    margin_ms: u64,
    scope: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    SmartConfig(u64),
    Capability(u64),
    Signing,
    TokenRequest(u64),
}

/// The token of one backend-services client for one FHIR server (see the module docs).
#[derive(Clone)]
pub struct TokenSession {
    config: BackendServices,
    base: String,
    token_url: Option<String>,
    token: Option<Token>,
    pending: Pending,
    assertion: Option<String>,
    signing_input: Option<String>,
    next_id: u64,
    nonce: u64,
    jtis: u64,
    failures: u32,
    retry: RetryPolicy,
    retry_at_ms: u64,
    /// `.well-known/smart-configuration` had no token endpoint: ask the CapabilityStatement.
    capability_next: bool,
    failed: Option<AuthError>,
    /// A failure of the endpoint itself (down past the retries, not a
    /// refusal) is tried again from this instant: a long-lived client
    /// recovers after an outage without being rebuilt (J5).
    failed_until_ms: Option<u64>,
}

impl std::fmt::Debug for TokenSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token, never the assertion (J6).
        f.debug_struct("TokenSession")
            .field("client_id", &self.config.client_id)
            .field("client_secret", &self.config.client_secret.is_some())
            .field("token_url", &self.token_url)
            .field("has_token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

/// The longest an assertion may live (J2: `exp` at most 5 minutes ahead); ours lives 4.
const ASSERTION_LIFETIME_S: u64 = 240;
/// The `oauth-uris` extension of a CapabilityStatement (J1 fallback).
const OAUTH_URIS: &str = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";

impl TokenSession {
    /// A session for the server at `base_url`. `nonce` is the binding's random
    /// seed for `jti`s (the core has no RNG): give a fresh random number each run.
    pub fn new(base_url: &str, config: BackendServices, nonce: u64) -> Result<Self, AuthError> {
        let base = crate::kickoff::normalized_base(base_url).map_err(|e| AuthError::new(e.to_string()))?;
        if config.client_id.trim().is_empty() {
            return Err(AuthError::new("the client id is empty"));
        }
        if config.client_secret.as_ref().is_some_and(|s| s.0.is_empty()) {
            return Err(AuthError::new("the client secret is empty"));
        }
        Ok(TokenSession {
            token_url: config.token_url.clone(),
            config,
            base,
            token: None,
            pending: Pending::None,
            assertion: None,
            signing_input: None,
            next_id: 1,
            nonce,
            jtis: 0,
            failures: 0,
            retry: RetryPolicy { max_retries: 3, ..RetryPolicy::default() },
            retry_at_ms: 0,
            capability_next: false,
            failed: None,
            failed_until_ms: None,
        })
    }

    /// How many times a failing token endpoint (5xx, resets) is retried.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The token endpoint, once known.
    pub fn token_url(&self) -> Option<&str> {
        self.token_url.as_deref()
    }

    /// The scope the server granted (may be narrower than asked: J4).
    pub fn granted_scope(&self) -> Option<&str> {
        self.token.as_ref().and_then(|t| t.scope.as_deref())
    }

    /// The token, if one is valid at `now_ms` with the refresh margin (J5).
    pub fn token(&self, now_ms: u64) -> Option<&str> {
        self.token.as_ref().filter(|t| now_ms.saturating_add(t.margin_ms) < t.expires_at_ms).map(|t| t.value.as_str())
    }

    /// When the current token stops being used (its expiry minus the margin).
    pub fn refresh_at_ms(&self) -> Option<u64> {
        self.token.as_ref().map(|t| t.expires_at_ms.saturating_sub(t.margin_ms))
    }

    /// The server refused the token (a 401): the next step fetches a new one (J5, H5).
    pub fn invalidate(&mut self) {
        self.token = None;
    }

    /// The next step.
    pub fn next(&mut self, now_ms: u64) -> Result<AuthStep, AuthError> {
        if let Some(e) = &self.failed {
            match self.failed_until_ms {
                Some(until) if now_ms >= until => {
                    // A new round of attempts after the outage's cool-down.
                    self.failed = None;
                    self.failed_until_ms = None;
                    self.failures = 0;
                }
                _ => return Err(e.clone()),
            }
        }
        match self.pending {
            Pending::None => {}
            Pending::Signing => {
                return Ok(AuthStep::Sign {
                    signing_input: self.signing_input.clone().unwrap_or_default(),
                    alg: self.config.alg,
                    kid: self.config.kid.clone(),
                })
            }
            Pending::SmartConfig(id) | Pending::Capability(id) | Pending::TokenRequest(id) => {
                return Err(AuthError::new(format!("request {id} is in flight; hand back its answer first")))
            }
        }
        if self.token(now_ms).is_some() {
            return Ok(AuthStep::Ready);
        }
        if now_ms < self.retry_at_ms {
            return Ok(AuthStep::Wait { until_ms: self.retry_at_ms, delay_ms: self.retry_at_ms - now_ms });
        }
        let Some(token_url) = self.token_url.clone() else {
            let id = self.id();
            let request = if self.capability_next {
                self.pending = Pending::Capability(id);
                get(id, format!("{}metadata", self.base), "application/fhir+json", &self.retry)
            } else {
                self.pending = Pending::SmartConfig(id);
                get(id, format!("{}.well-known/smart-configuration", self.base), "application/json", &self.retry)
            };
            return Ok(AuthStep::Send { request });
        };
        if let Some(secret) = &self.config.client_secret {
            // client_secret_basic (J3, RFC 6749 §2.3.1): id and secret form-urlencoded, then Basic.
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = STANDARD.encode(format!("{}:{}", enc(&self.config.client_id), enc(&secret.0)));
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("scope", &self.config.scope)
                .finish();
            return Ok(self.token_request(token_url, body, Some(format!("Basic {basic}"))));
        }
        match self.assertion.take() {
            None => {
                self.signing_input = Some(self.signing_input(&token_url, now_ms));
                self.pending = Pending::Signing;
                self.next(now_ms)
            }
            Some(assertion) => {
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                    .append_pair("client_assertion", &assertion)
                    .append_pair("scope", &self.config.scope)
                    .finish();
                Ok(self.token_request(token_url, body, None))
            }
        }
    }

    /// The token request (J3): a form POST, with `Authorization: Basic` for a client secret.
    fn token_request(&mut self, url: String, body: String, basic: Option<String>) -> AuthStep {
        let id = self.id();
        self.pending = Pending::TokenRequest(id);
        let mut headers = vec![
            ("Content-Type".into(), "application/x-www-form-urlencoded".into()),
            ("Accept".into(), "application/json".into()),
        ];
        headers.extend(basic.map(|b| ("Authorization".to_owned(), b)));
        AuthStep::Send {
            request: Request {
                id,
                kind: RequestKind::Auth,
                method: Method::Post,
                url,
                headers,
                body: Some(body),
                auth: false,
                timeout_ms: self.retry.request_timeout_ms,
                max_body: Some(self.retry.max_response_bytes),
            },
        }
    }

    /// The signature of the last [`AuthStep::Sign`]'s input.
    pub fn signed(&mut self, signature: &[u8]) -> Result<(), AuthError> {
        if self.pending != Pending::Signing {
            return Err(AuthError::new("signed() without a Sign step"));
        }
        let input = self.signing_input.take().unwrap_or_default();
        self.assertion = Some(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)));
        self.pending = Pending::None;
        Ok(())
    }

    /// The answer to request `id`.
    pub fn handle_response(&mut self, id: u64, response: &Response, now_ms: u64) -> Result<(), AuthError> {
        let pending = self.pending;
        self.pending = Pending::None;
        match pending {
            Pending::SmartConfig(i) if i == id => match json_field(response, "token_endpoint") {
                Some(url) => self.found(&url),
                None => {
                    // J1 fallback: the CapabilityStatement's oauth-uris extension.
                    self.capability_next = true;
                    Ok(())
                }
            },
            Pending::Capability(i) if i == id => match capability_token_url(response) {
                Some(url) => self.found(&url),
                None => Err(self.fail(AuthError::new(format!(
                    "no token endpoint: {}.well-known/smart-configuration has no token_endpoint and {}metadata has no oauth-uris extension; configure tokenUrl",
                    self.base, self.base
                )))),
            },
            Pending::TokenRequest(i) if i == id => self.on_token(response, now_ms),
            _ => {
                self.pending = pending;
                Err(AuthError::new(format!("no auth request {id} is in flight")))
            }
        }
    }
}

impl TokenSession {
    /// A transport failure of request `id` (reset, refused, timeout): retried
    /// within the budget, then [`AuthError`].
    pub fn handle_transport_error(&mut self, id: u64, message: &str, now_ms: u64) -> Result<(), AuthError> {
        match self.pending {
            Pending::SmartConfig(i) | Pending::Capability(i) | Pending::TokenRequest(i) if i == id => {
                self.pending = Pending::None;
                self.retry_later(format!("the authorization server could not be reached: {message}"), None, now_ms)
            }
            _ => Err(AuthError::new(format!("no auth request {id} is in flight"))),
        }
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn fail(&mut self, e: AuthError) -> AuthError {
        self.failed = Some(e.clone());
        e
    }

    fn found(&mut self, url: &str) -> Result<(), AuthError> {
        match crate::origin::resolve(&self.base, url) {
            Some(u) if !(self.base.starts_with("https:") && u.starts_with("http:")) => {
                self.token_url = Some(u);
                Ok(())
            }
            _ => Err(self.fail(AuthError::new(format!(
                "unusable token endpoint {url:?} (an absolute https URL is needed under an https base)"
            )))),
        }
    }

    /// `base64url(header) "." base64url(claims)` of a fresh assertion (J2).
    fn signing_input(&mut self, token_url: &str, now_ms: u64) -> String {
        let mut header = json!({"alg": self.config.alg.as_str(), "typ": "JWT"});
        if let Some(kid) = &self.config.kid {
            header["kid"] = json!(kid);
        }
        if let Some(jku) = &self.config.jku {
            header["jku"] = json!(jku);
        }
        let now_s = now_ms / 1000;
        self.jtis += 1;
        // Unique per assertion, never reused (J5): the binding's random nonce, a counter, the time.
        let mut h = Sha256::new();
        h.update(self.nonce.to_le_bytes());
        h.update(self.jtis.to_le_bytes());
        h.update(now_ms.to_le_bytes());
        h.update(self.config.client_id.as_bytes());
        let jti = hex::encode(&h.finalize()[..16]);
        let claims = json!({
            "iss": self.config.client_id,
            "sub": self.config.client_id,
            "aud": token_url,
            "exp": now_s + ASSERTION_LIFETIME_S,
            "iat": now_s,
            "jti": jti,
        });
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    fn on_token(&mut self, response: &Response, now_ms: u64) -> Result<(), AuthError> {
        let status = response.status;
        let body = match parse_body(&response.body) {
            Body::Json(v) => Some(v),
            _ => None,
        };
        let field = |k: &str| body.as_ref().and_then(|b| b.get(k)).and_then(Value::as_str).map(str::to_owned);
        match status {
            200 => {
                let Some(value) = field("access_token").filter(|t| !t.is_empty()) else {
                    return Err(self.fail(AuthError {
                        http_status: Some(status),
                        ..AuthError::new("the token response has no access_token")
                    }));
                };
                if let Some(tt) = field("token_type") {
                    if !tt.eq_ignore_ascii_case("bearer") {
                        return Err(self.fail(AuthError {
                            http_status: Some(status),
                            ..AuthError::new(format!("token_type {tt:?} is not bearer"))
                        }));
                    }
                }
                // expires_in is a number of seconds (J4); absent: assume the SMART default of 5 minutes.
                let lifetime_ms = body
                    .as_ref()
                    .and_then(|b| b.get("expires_in"))
                    .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())))
                    .unwrap_or(300)
                    .saturating_mul(1000);
                // Renew before expiry: 10 % of the lifetime, at most a minute (J5).
                let margin_ms = (lifetime_ms / 10).min(60_000);
                self.token = Some(Token {
                    value,
                    expires_at_ms: now_ms.saturating_add(lifetime_ms),
                    margin_ms,
                    scope: field("scope"),
                });
                self.failures = 0;
                Ok(())
            }
            400 | 401 | 403 => {
                let error = field("error");
                let description = field("error_description");
                let text = format!("{} {}", error.as_deref().unwrap_or(""), description.as_deref().unwrap_or(""))
                    .to_ascii_lowercase();
                // A client secret has no time claims: only an assertion can be refused for skew.
                // Whole words: "unexpected" or "associated" are not about time.
                let skew = self.config.client_secret.is_none()
                    && text
                        .split(|c: char| !c.is_ascii_alphanumeric())
                        .any(|w| ["exp", "iat", "nbf", "expired", "future", "clock"].contains(&w));
                let message = if skew {
                    format!("the token endpoint refused the assertion ({status}); its time claims were rejected: check the client clock (a skewed clock is the usual cause)")
                } else if error.as_deref() == Some("invalid_client") && self.config.client_secret.is_some() {
                    format!(
                        "the token endpoint refused the client ({status}): check the client id and the client secret"
                    )
                } else if error.as_deref() == Some("invalid_client") {
                    format!(
                        "the token endpoint refused the client ({status}): check the client id, the key and its kid"
                    )
                } else {
                    format!("the token endpoint refused the request ({status})")
                };
                Err(self.fail(AuthError { message, error, error_description: description, http_status: Some(status) }))
            }
            429 | 500..=599 => self.retry_later(format!("the token endpoint answered {status}"), Some(status), now_ms),
            _ => Err(self.fail(AuthError {
                http_status: Some(status),
                ..AuthError::new(format!("unexpected token endpoint status {status}"))
            })),
        }
    }

    fn retry_later(&mut self, message: String, http_status: Option<u16>, now_ms: u64) -> Result<(), AuthError> {
        self.failures += 1;
        if self.failures > self.retry.max_retries {
            let e =
                self.fail(AuthError { http_status, ..AuthError::new(format!("{message}, {} times", self.failures)) });
            self.failed_until_ms = Some(now_ms.saturating_add(self.retry.max_backoff_ms));
            return Err(e);
        }
        self.retry_at_ms = now_ms.saturating_add(backoff_ms(&self.retry, self.failures - 1));
        Ok(())
    }
}

fn get(id: u64, url: String, accept: &str, retry: &RetryPolicy) -> Request {
    Request {
        id,
        kind: RequestKind::Auth,
        method: Method::Get,
        url,
        headers: vec![("Accept".into(), accept.into())],
        body: None,
        auth: false,
        timeout_ms: retry.request_timeout_ms,
        max_body: Some(retry.max_response_bytes),
    }
}

fn json_field(response: &Response, key: &str) -> Option<String> {
    if response.status != 200 {
        return None;
    }
    match parse_body(&response.body) {
        Body::Json(v) => v.get(key).and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// `rest[0].security.extension[oauth-uris].extension[token].valueUri` of a CapabilityStatement.
fn capability_token_url(response: &Response) -> Option<String> {
    if response.status != 200 {
        return None;
    }
    let Body::Json(v) = parse_body(&response.body) else { return None };
    v.get("rest")?.as_array()?.iter().find_map(|rest| {
        rest.pointer("/security/extension")?.as_array()?.iter().find_map(|ext| {
            if ext.get("url").and_then(Value::as_str) != Some(OAUTH_URIS) {
                return None;
            }
            ext.get("extension")?.as_array()?.iter().find_map(|e| {
                (e.get("url").and_then(Value::as_str) == Some("token"))
                    .then(|| e.get("valueUri").or_else(|| e.get("valueUrl")).and_then(Value::as_str).map(str::to_owned))
                    .flatten()
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_780_000_000_000;

    fn config(token_url: Option<&str>) -> BackendServices {
        BackendServices {
            client_id: "client-1".into(),
            scope: "system/*.rs".into(),
            token_url: token_url.map(str::to_owned),
            alg: SigningAlg::ES384,
            kid: Some("k1".into()),
            jku: None,
            client_secret: None,
        }
    }

    fn send(s: &mut TokenSession, now: u64) -> Request {
        match s.next(now).unwrap() {
            AuthStep::Send { request } => request,
            other => panic!("expected Send, got {other:?}"),
        }
    }

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    /// Signs with a fake signature and returns the assertion's (header, claims).
    fn sign(s: &mut TokenSession, now: u64) -> (Value, Value) {
        let AuthStep::Sign { signing_input, alg, kid } = s.next(now).unwrap() else { panic!("expected Sign") };
        assert_eq!((alg, kid.as_deref()), (SigningAlg::ES384, Some("k1")));
        let mut parts = signing_input.split('.');
        let (h, c) = (decode(parts.next().unwrap()), decode(parts.next().unwrap()));
        s.signed(&[7u8; 96]).unwrap();
        (h, c)
    }

    fn token_response(expires_in: u64) -> Response {
        Response::new(200).with_body(
            json!({"access_token": "secret-token", "token_type": "bearer", "expires_in": expires_in, "scope": "system/Patient.rs"})
                .to_string(),
        )
    }

    // protocol J1: the token endpoint from .well-known/smart-configuration
    #[test]
    fn discovery_from_smart_configuration() {
        let mut s = TokenSession::new("https://h/fhir", config(None), 1).unwrap();
        let r = send(&mut s, NOW);
        assert_eq!((r.url.as_str(), r.auth), ("https://h/fhir/.well-known/smart-configuration", false));
        let body = json!({"token_endpoint": "https://auth.h/token"}).to_string();
        s.handle_response(r.id, &Response::new(200).with_body(body), NOW).unwrap();
        assert_eq!(s.token_url(), Some("https://auth.h/token"));
        assert!(matches!(s.next(NOW).unwrap(), AuthStep::Sign { .. }));
    }

    // protocol J1: falling back to the CapabilityStatement's oauth-uris extension
    #[test]
    fn discovery_falls_back_to_the_capability_statement() {
        let mut s = TokenSession::new("https://h/fhir", config(None), 1).unwrap();
        let r = send(&mut s, NOW);
        s.handle_response(r.id, &Response::new(404), NOW).unwrap();
        let r = send(&mut s, NOW);
        assert_eq!(r.url, "https://h/fhir/metadata");
        let cs = json!({"resourceType": "CapabilityStatement", "rest": [{"security": {"extension": [{
            "url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": "https://h/auth/token"}]}]}}]});
        s.handle_response(r.id, &Response::new(200).with_body(cs.to_string()), NOW).unwrap();
        assert_eq!(s.token_url(), Some("https://h/auth/token"));
        // Neither: a clear error that says what to configure.
        let mut s = TokenSession::new("https://h/fhir", config(None), 1).unwrap();
        let r = send(&mut s, NOW);
        s.handle_response(r.id, &Response::new(404), NOW).unwrap();
        let r = send(&mut s, NOW);
        let e = s.handle_response(r.id, &Response::new(200).with_body("{}"), NOW).unwrap_err();
        assert!(e.message.contains("configure tokenUrl"), "{e}");
    }

    // protocol J2, J3: the assertion's claims and the token request
    #[test]
    fn assertion_and_token_request() {
        let mut s = TokenSession::new("https://h/fhir", config(Some("https://h/auth/token")), 42).unwrap();
        let (h, c) = sign(&mut s, NOW);
        assert_eq!(h, json!({"alg": "ES384", "typ": "JWT", "kid": "k1"}));
        assert_eq!((c["iss"].as_str(), c["sub"].as_str()), (Some("client-1"), Some("client-1")));
        assert_eq!(c["aud"], "https://h/auth/token");
        let exp = c["exp"].as_u64().unwrap();
        assert!(exp > NOW / 1000 && exp <= NOW / 1000 + 300, "exp at most 5 minutes ahead");
        let r = send(&mut s, NOW);
        assert_eq!((r.method, r.url.as_str(), r.auth), (Method::Post, "https://h/auth/token", false));
        assert_eq!(r.header("Content-Type"), Some("application/x-www-form-urlencoded"));
        let form: Vec<(String, String)> =
            url::form_urlencoded::parse(r.body.as_deref().unwrap().as_bytes()).into_owned().collect();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("grant_type"), Some("client_credentials"));
        assert_eq!(get("client_assertion_type"), Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
        assert_eq!(get("scope"), Some("system/*.rs"));
        assert_eq!(get("client_assertion").unwrap().split('.').count(), 3);
        s.handle_response(r.id, &token_response(300), NOW).unwrap();
        assert_eq!(s.next(NOW).unwrap(), AuthStep::Ready);
        assert_eq!(s.token(NOW), Some("secret-token"));
        assert_eq!(s.granted_scope(), Some("system/Patient.rs"), "a narrower scope is surfaced (J4)");
    }

    // protocol J5: a new token before expiry (with a margin) and after a 401; never the same jti
    #[test]
    fn renewal_before_expiry_and_after_401() {
        let mut s = TokenSession::new("https://h/fhir", config(Some("https://h/auth/token")), 42).unwrap();
        let (_, first) = sign(&mut s, NOW);
        let r = send(&mut s, NOW);
        s.handle_response(r.id, &token_response(60), NOW).unwrap();
        assert!(s.token(NOW + 53_000).is_some());
        assert!(s.token(NOW + 54_001).is_none(), "10 % margin of a 60 s token");
        let (_, second) = sign(&mut s, NOW + 54_001);
        assert_ne!(first["jti"], second["jti"]);
        let r = send(&mut s, NOW + 54_001);
        s.handle_response(r.id, &token_response(60), NOW + 54_001).unwrap();
        s.invalidate();
        let (_, third) = sign(&mut s, NOW + 55_000);
        assert_ne!(second["jti"], third["jti"]);
    }

    // protocol J4: errors are typed, with the server's error and description; skew is named
    #[test]
    fn refusals_carry_the_server_words() {
        let refuse = |body: Value, status: u16| {
            let mut s = TokenSession::new("https://h/fhir", config(Some("https://h/auth/token")), 1).unwrap();
            sign(&mut s, NOW);
            let r = send(&mut s, NOW);
            let e = s.handle_response(r.id, &Response::new(status).with_body(body.to_string()), NOW).unwrap_err();
            assert_eq!(s.next(NOW).unwrap_err(), e, "the session stays failed");
            e
        };
        let e = refuse(json!({"error": "invalid_client", "error_description": "kid k1 is not a key of client-1"}), 401);
        assert_eq!((e.error.as_deref(), e.http_status, e.code()), (Some("invalid_client"), Some(401), "auth"));
        assert!(e.to_string().contains("kid k1 is not a key of client-1") && e.message.contains("check the client id"));
        let e = refuse(json!({"error": "invalid_grant", "error_description": "assertion expired 598 s ago"}), 400);
        assert!(e.message.contains("client clock"), "{e}");
        let e = refuse(json!({"error": "invalid_client", "error_description": "iat is 600 s in the future"}), 401);
        assert!(e.message.contains("client clock"), "{e}");
        // Words, not substrings: nothing here is about time.
        let e = refuse(json!({"error": "invalid_client", "error_description": "unexpected kid k9 associated"}), 401);
        assert!(!e.message.contains("clock") && e.message.contains("check the client id"), "{e}");
    }

    // protocol J5: a token endpoint that is down is retried within the budget, then fails
    #[test]
    fn a_failing_token_endpoint_is_retried() {
        let mut s = TokenSession::new("https://h/fhir", config(Some("https://h/auth/token")), 1)
            .unwrap()
            .with_retry(RetryPolicy { max_retries: 2, jitter_percent: 0, ..RetryPolicy::default() });
        let mut now = NOW;
        for attempt in 0..3 {
            sign(&mut s, now);
            let r = send(&mut s, now);
            let res = s.handle_response(r.id, &Response::new(503), now);
            if attempt < 2 {
                res.unwrap();
                let AuthStep::Wait { until_ms, .. } = s.next(now).unwrap() else { panic!() };
                now = until_ms;
            } else {
                assert!(res.unwrap_err().message.contains("503"));
            }
        }
        // protocol J5: an outage is not a refusal: the session fails until the
        // cool-down (the longest backoff), then a long-lived client tries again.
        let e = s.next(now + 59_999).unwrap_err();
        assert!(e.message.contains("503"), "{e}");
        sign(&mut s, now + 60_000);
        let r = send(&mut s, now + 60_000);
        s.handle_response(r.id, &token_response(60), now + 60_000).unwrap();
        assert!(matches!(s.next(now + 60_000), Ok(AuthStep::Ready)));
    }

    // protocol J4: a refusal (invalid_client) stays failed: trying again cannot help
    #[test]
    fn a_refusal_is_not_tried_again() {
        let mut s = TokenSession::new("https://h/fhir", config(Some("https://h/auth/token")), 1).unwrap();
        sign(&mut s, NOW);
        let r = send(&mut s, NOW);
        let body = json!({"error": "invalid_client"}).to_string();
        s.handle_response(r.id, &Response::new(401).with_body(body), NOW).unwrap_err();
        assert!(s.next(NOW + 86_400_000).is_err(), "a day later, still failed");
    }

    // protocol J3 (client_secret_basic): no assertion, no Sign step; Basic of the
    // form-urlencoded id and secret; J6: the secret never in Debug, JSON or an error
    #[test]
    fn client_secret_basic() {
        let mut c = config(Some("https://h/auth/token"));
        c.client_id = "client 1".into();
        c.client_secret = Some(ClientSecret::new("s3cr:t/é"));
        let mut s = TokenSession::new("https://h/fhir", c.clone(), 1).unwrap();
        let r = send(&mut s, NOW);
        assert_eq!((r.method, r.url.as_str(), r.auth), (Method::Post, "https://h/auth/token", false));
        let basic = r.header("Authorization").unwrap().strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(basic).unwrap()).unwrap();
        assert_eq!(decoded, "client+1:s3cr%3At%2F%C3%A9", "RFC 6749 §2.3.1: form-urlencoded, then Basic");
        let form: Vec<(String, String)> =
            url::form_urlencoded::parse(r.body.as_deref().unwrap().as_bytes()).into_owned().collect();
        assert_eq!(
            form,
            vec![("grant_type".into(), "client_credentials".into()), ("scope".into(), "system/*.rs".into())]
        );
        let refused = json!({"error": "invalid_client", "error_description": "wrong client secret for client 1"});
        let e = s.handle_response(r.id, &Response::new(401).with_body(refused.to_string()), NOW).unwrap_err();
        assert!(e.message.contains("client secret") && !e.message.contains("clock"), "{e}");
        let shown = format!("{s:?} {c:?} {e} {e:?} {}", serde_json::to_string(&c).unwrap());
        assert!(!shown.contains("s3cr") && !shown.contains(basic), "{shown}");
        // The same JSON shape as a key registration, with clientSecret (read, never written).
        let read: BackendServices =
            serde_json::from_value(json!({"clientId": "c", "scope": "system/*.rs", "clientSecret": "x"})).unwrap();
        assert_eq!(read.client_secret, Some(ClientSecret::new("x")));
        assert!(TokenSession::new(
            "https://h/fhir",
            BackendServices { client_secret: Some(ClientSecret::new("")), ..read },
            1
        )
        .is_err());
    }

    // protocol J6: the token never shows in Debug output
    #[test]
    fn the_token_stays_secret() {
        let mut s = TokenSession::new("https://h/fhir", config(Some("https://h/auth/token")), 1).unwrap();
        sign(&mut s, NOW);
        let r = send(&mut s, NOW);
        s.handle_response(r.id, &token_response(300), NOW).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("secret-token") && !shown.contains("eyJ"), "{shown}");
    }
}
