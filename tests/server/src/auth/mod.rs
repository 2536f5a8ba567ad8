//! Bearer tokens: a fixed `--token`, and SMART Backend Services tokens issued at
//! `POST /auth/token` for client assertions signed (RS384/ES384) by a key of `--jwks`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use axum::response::Response;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::app::App;
use crate::data::mix;
use crate::http;

/// Token state.
#[derive(Debug)]
pub struct Auth {
    token: Option<String>,
    jwks: Option<JwkSet>,
    ttl: Duration,
    issued: Mutex<HashMap<String, Instant>>,
    next: AtomicU64,
}

impl Auth {
    /// Builds the token state; reads the JWKS file.
    pub fn new(token: Option<String>, jwks: Option<&std::path::Path>, ttl: u64) -> Result<Auth, String> {
        let jwks = match jwks {
            None => None,
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| format!("cannot read --jwks {}: {e}", p.display()))?;
                Some(serde_json::from_str::<JwkSet>(&text).map_err(|e| format!("bad JWKS: {e}"))?)
            }
        };
        Ok(Auth {
            token,
            jwks,
            ttl: Duration::from_secs(ttl),
            issued: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        })
    }

    /// Whether requests must carry a bearer token.
    pub fn enabled(&self) -> bool {
        self.token.is_some() || self.jwks.is_some()
    }

    /// Checks `Authorization: Bearer ...`; `Err` is the 401 answer.
    pub fn check(&self, h: &HeaderMap) -> Result<(), Response> {
        if !self.enabled() {
            return Ok(());
        }
        let got = h
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let (ok, expired) = match got {
            None => (false, false),
            Some(t) if self.token.as_deref() == Some(t) => (true, false),
            Some(t) => {
                let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
                match issued.get(t) {
                    Some(exp) if *exp > Instant::now() => (true, false),
                    Some(_) => (false, true),
                    None => (false, false),
                }
            }
        };
        if ok {
            return Ok(());
        }
        let (diag, www) = if expired {
            (
                "The access token expired",
                "Bearer error=\"invalid_token\", error_description=\"The access token expired\"",
            )
        } else if got.is_some() {
            ("The access token is not valid", "Bearer error=\"invalid_token\"")
        } else {
            ("Authorization: Bearer token required", "Bearer")
        };
        let mut r = http::oo(401, "login", diag);
        http::set(r.headers_mut(), header::WWW_AUTHENTICATE, www);
        Err(r)
    }

    /// `POST /auth/token` (form-encoded client_credentials with a JWT client assertion).
    pub fn token_endpoint(&self, app: &App, body: &[u8]) -> Response {
        let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
        let err = |status: u16, code: &str, desc: &str| {
            http::json_with(status, "application/json", &json!({"error": code, "error_description": desc}))
        };
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return err(400, "unsupported_grant_type", "grant_type must be client_credentials");
        }
        if form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return err(
                400,
                "invalid_request",
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            );
        }
        let Some(assertion) = form.get("client_assertion") else {
            return err(400, "invalid_request", "client_assertion is required");
        };
        let Some(jwks) = &self.jwks else {
            return err(401, "invalid_client", "this server was started without --jwks");
        };
        if let Err(e) = verify(jwks, assertion) {
            return err(401, "invalid_client", &e);
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let token = format!("tok-{:016x}{:016x}", mix(n ^ crate::time::now_ms() as u64), mix(n.wrapping_mul(31)));
        self.issued.lock().unwrap_or_else(|e| e.into_inner()).insert(token.clone(), Instant::now() + self.ttl);
        let scope = form.get("scope").cloned().unwrap_or_else(|| "system/*.read".into());
        let _ = app;
        http::json_with(
            200,
            "application/json",
            &json!({"access_token": token, "token_type": "bearer", "expires_in": self.ttl.as_secs(), "scope": scope}),
        )
    }
}

fn verify(jwks: &JwkSet, assertion: &str) -> Result<(), String> {
    let head = jsonwebtoken::decode_header(assertion).map_err(|e| format!("bad JWT: {e}"))?;
    if !matches!(head.alg, Algorithm::RS384 | Algorithm::ES384) {
        return Err(format!("alg {:?} not allowed (RS384 or ES384)", head.alg));
    }
    let candidates: Vec<_> = jwks.keys.iter().filter(|k| head.kid.is_none() || k.common.key_id == head.kid).collect();
    if candidates.is_empty() {
        return Err("no key in the JWKS matches the JWT kid".into());
    }
    let mut last = String::from("no usable key");
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        let mut v = Validation::new(head.alg);
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        match jsonwebtoken::decode::<Value>(assertion, &key, &v) {
            Ok(data) => {
                let c = data.claims;
                if c["iss"] != c["sub"] {
                    return Err("iss and sub must both be the client_id".into());
                }
                if let Some(aud) = c["aud"].as_str() {
                    if !aud.ends_with("/auth/token") {
                        return Err("aud must be the token endpoint URL".into());
                    }
                }
                return Ok(());
            }
            Err(e) => last = format!("JWT rejected: {e}"),
        }
    }
    Err(last)
}
