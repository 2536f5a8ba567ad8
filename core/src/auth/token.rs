//! The token request (J2, J3): the signed JWT assertion or the client
//! secret, the form POST, and the reading of the token endpoint's answer (J4, J5).

use super::session::{Pending, Token};
use super::{AuthError, AuthStep, TokenSession};
use crate::http::{Method, Request, RequestKind, Response};
use crate::outcome::{parse_body, Body};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The longest an assertion may live (J2: `exp` at most 5 minutes ahead); ours lives 4.
const ASSERTION_LIFETIME_S: u64 = 240;

impl TokenSession {
    /// The next step towards a token once the endpoint is known: sign an
    /// assertion, or send the token request.
    pub(super) fn request_token(&mut self, token_url: String, now_ms: u64) -> Result<AuthStep, AuthError> {
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

    pub(super) fn on_token(&mut self, response: &Response, now_ms: u64) -> Result<(), AuthError> {
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
}
