//! Bearer tokens: a fixed `--token`, and SMART Backend Services tokens issued at
//! `{P}/auth/token` to registered clients (`--jwks`, `--client`, `--client-secret`), checked the
//! way a strict server checks them (see docs/testserver.md, "Auth").

pub mod assertion;
pub mod clients;
pub mod scope;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};

use crate::app::App;
use crate::config::Config;
use crate::faults::Faults;
use crate::http;
use assertion::Jtis;
use clients::Clients;
use scope::Scope;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const REALM: &str = "realm=\"fhir-async-testserver\"";

/// An issued token.
#[derive(Debug)]
struct Issued {
    expires: Instant,
}

/// Counts of token requests, for `/_admin/stats`.
#[derive(Debug, Default)]
struct Counts {
    requests: u64,
    issued: u64,
    unavailable: u64,
    refused: BTreeMap<String, u64>,
    by_client: BTreeMap<String, u64>,
}

/// Token state.
#[derive(Debug)]
pub struct Auth {
    token: Option<String>,
    clients: Clients,
    ttl: Duration,
    issued: Mutex<HashMap<String, Issued>>,
    jtis: Jtis,
    counts: Mutex<Counts>,
    down: Mutex<HashMap<String, u64>>,
}

/// An OAuth error answer (RFC 6749 §5.2).
struct OAuthError {
    status: u16,
    code: &'static str,
    desc: String,
    challenge: Option<&'static str>,
}

fn bad(code: &'static str, desc: impl Into<String>) -> OAuthError {
    OAuthError { status: 400, code, desc: desc.into(), challenge: None }
}

fn unauthorized(scheme: &'static str, desc: impl Into<String>) -> OAuthError {
    OAuthError { status: 401, code: "invalid_client", desc: desc.into(), challenge: Some(scheme) }
}

fn no_store(mut r: Response) -> Response {
    http::set(r.headers_mut(), header::CACHE_CONTROL, "no-store");
    http::set(r.headers_mut(), header::PRAGMA, "no-cache");
    r
}

/// 32 random bytes, hex: an opaque token unrelated to the assertion.
fn random_token() -> String {
    let mut b = [0u8; 32];
    // getrandom only fails without an OS source; then the token is still unique, not secret.
    if getrandom::getrandom(&mut b).is_err() {
        b[..16].copy_from_slice(&crate::time::now_ms().to_le_bytes().repeat(2));
    }
    hex::encode(b)
}

fn now_secs() -> i64 {
    crate::time::now_ms().div_euclid(1000)
}

impl Auth {
    /// Builds the token state from the flags (reads the JWKS files).
    pub fn new(cfg: &Config) -> Result<Auth, String> {
        Ok(Auth {
            token: cfg.token.clone(),
            clients: Clients::from_config(cfg)?,
            ttl: Duration::from_secs(cfg.token_ttl),
            issued: Mutex::new(HashMap::new()),
            jtis: Jtis::default(),
            counts: Mutex::new(Counts::default()),
            down: Mutex::new(HashMap::new()),
        })
    }

    /// Whether requests must carry a bearer token.
    pub fn enabled(&self) -> bool {
        self.token.is_some() || !self.clients.is_empty()
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
                    Some(i) if i.expires > Instant::now() => (true, false),
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
        let mut v = http::oo_value("error", "login", diag);
        v["issue"][0]["details"] = json!({ "text": diag });
        let mut r = http::fhir(401, &v);
        http::set(r.headers_mut(), header::WWW_AUTHENTICATE, www);
        Err(r)
    }

    /// The `token503=N` fault: the first N token requests with this spec answer 503.
    fn down(&self, app: &App, prefix: &str, f: &Faults) -> Option<Response> {
        if f.token503 == 0 {
            return None;
        }
        let key = format!("{}|{prefix}", app.cfg.faults);
        let mut m = self.down.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key).or_default();
        if *n >= f.token503 {
            return None;
        }
        *n += 1;
        let mut r = http::empty(503);
        *r.body_mut() =
            axum::body::Body::from("<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>\n");
        http::set(r.headers_mut(), header::CONTENT_TYPE, "text/html");
        http::set(r.headers_mut(), header::RETRY_AFTER, &f.retry.unwrap_or(1).to_string());
        Some(r)
    }

    /// `POST {prefix}/auth/token`: client_credentials with a JWT client assertion
    /// (`private_key_jwt`) or HTTP Basic (`client_secret_basic`).
    pub fn token_endpoint(
        &self,
        app: &App,
        prefix: &str,
        faults: &Faults,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        self.lock_counts().requests += 1;
        if let Some(r) = self.down(app, prefix, faults) {
            self.lock_counts().unavailable += 1;
            return r;
        }
        let aud = format!("{}{prefix}/auth/token", app.main_origin);
        match self.grant(&aud, headers, body) {
            Ok((client, scope)) => {
                let ttl = faults.token_ttl.map_or(self.ttl, Duration::from_secs);
                let token = random_token();
                {
                    let now = Instant::now();
                    let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
                    // Expired tokens are kept a while to answer "expired" rather than "not valid".
                    issued.retain(|_, i| i.expires + Duration::from_secs(3600) > now);
                    issued.insert(token.clone(), Issued { expires: now + ttl });
                }
                {
                    let mut c = self.lock_counts();
                    c.issued += 1;
                    *c.by_client.entry(client).or_default() += 1;
                }
                no_store(http::json_with(
                    200,
                    "application/json",
                    &json!({"access_token": token, "token_type": "bearer", "expires_in": ttl.as_secs(), "scope": scope}),
                ))
            }
            Err(e) => {
                *self.lock_counts().refused.entry(e.code.to_string()).or_default() += 1;
                let mut r = http::json_with(
                    e.status,
                    "application/json",
                    &json!({"error": e.code, "error_description": e.desc}),
                );
                if let Some(scheme) = e.challenge {
                    http::set(r.headers_mut(), header::WWW_AUTHENTICATE, &format!("{scheme} {REALM}"));
                }
                no_store(r)
            }
        }
    }

    /// Checks a token request; Ok is (client id, granted scope).
    fn grant(&self, aud: &str, headers: &HeaderMap, body: &[u8]) -> Result<(String, String), OAuthError> {
        let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = ctype.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(bad(
                "invalid_request",
                format!("Content-Type must be application/x-www-form-urlencoded, got {ctype:?}"),
            ));
        }
        let mut form: HashMap<String, String> = HashMap::new();
        for (k, v) in form_urlencoded::parse(body).into_owned() {
            if form.contains_key(&k) {
                return Err(bad("invalid_request", format!("parameter {k} is given more than once")));
            }
            form.insert(k, v);
        }
        match form.get("grant_type").map(String::as_str) {
            None => return Err(bad("invalid_request", "grant_type is required (client_credentials)")),
            Some("client_credentials") => {}
            Some(g) => {
                return Err(bad(
                    "unsupported_grant_type",
                    format!("grant_type {g} is not supported; use client_credentials"),
                ))
            }
        }
        let requested = match form.get("scope").map(|s| s.trim()) {
            None | Some("") => {
                return Err(bad("invalid_request", "scope is required (e.g. system/*.read or system/*.rs)"))
            }
            Some(s) => s.to_string(),
        };
        let client = self.authenticate(aud, headers, &form)?;
        let requested = Scope::parse_list(&requested).map_err(|e| bad("invalid_scope", e))?;
        let allowed = self.clients.get(&client).and_then(|c| c.scopes.as_deref());
        let Some(granted) = scope::grant(&requested, allowed) else {
            let allowed = allowed.unwrap_or_default().iter().map(Scope::render).collect::<Vec<_>>().join(" ");
            return Err(bad(
                "invalid_scope",
                format!("client {client} may not have any of the requested scopes (allowed: {allowed})"),
            ));
        };
        Ok((client, granted))
    }

    /// Client authentication; Ok is the client id.
    fn authenticate(
        &self,
        aud: &str,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Result<String, OAuthError> {
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")));
        let assertion = form.get("client_assertion");
        if form.contains_key("client_secret") {
            return Err(unauthorized(
                "Bearer",
                "client_secret_post is not supported; send the secret with HTTP Basic (client_secret_basic)",
            ));
        }
        if let Some(b) = basic {
            if assertion.is_some() {
                return Err(bad(
                    "invalid_request",
                    "use one client authentication method: client_assertion or Authorization: Basic, not both",
                ));
            }
            let client = self.basic(b)?;
            if let Some(id) = form.get("client_id") {
                if *id != client {
                    return Err(unauthorized(
                        "Basic",
                        format!("client_id {id} does not match the Basic user {client}"),
                    ));
                }
            }
            return Ok(client);
        }
        let Some(assertion) = assertion else {
            return Err(unauthorized(
                "Bearer",
                "no client authentication: send client_assertion (private_key_jwt) or Authorization: Basic (client_secret_basic)",
            ));
        };
        match form.get("client_assertion_type").map(String::as_str) {
            Some(JWT_BEARER) => {}
            None => return Err(bad("invalid_request", format!("client_assertion_type is required ({JWT_BEARER})"))),
            Some(t) => {
                return Err(bad("invalid_request", format!("client_assertion_type must be {JWT_BEARER}, got {t}")))
            }
        }
        let client = assertion::verify(&self.clients, &self.jtis, assertion, aud, now_secs())
            .map_err(|e| unauthorized("Bearer", e))?;
        if let Some(id) = form.get("client_id") {
            if *id != client {
                return Err(unauthorized(
                    "Bearer",
                    format!("client_id {id} does not match the assertion iss {client}"),
                ));
            }
        }
        Ok(client)
    }

    /// `client_secret_basic` (RFC 6749 §2.3.1: id and secret form-urlencoded, then Basic).
    fn basic(&self, b64: &str) -> Result<String, OAuthError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| unauthorized("Basic", "Authorization: Basic is not base64"))?;
        let text = String::from_utf8(bytes).map_err(|_| unauthorized("Basic", "Authorization: Basic is not UTF-8"))?;
        let Some((id, secret)) = text.split_once(':') else {
            return Err(unauthorized("Basic", "Authorization: Basic must be base64 of client_id:client_secret"));
        };
        let decode = |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
        let id = decode(id).unwrap_or_default();
        let secret = decode(secret).unwrap_or_default();
        let Some(client) = self.clients.get(&id) else {
            return Err(unauthorized("Basic", format!("unknown client {id}")));
        };
        match &client.secret {
            None => {
                Err(unauthorized("Basic", format!("client {id} has no secret registered (it uses private_key_jwt)")))
            }
            Some(s) if *s == secret => Ok(id),
            Some(_) => Err(unauthorized("Basic", format!("wrong client secret for client {id}"))),
        }
    }

    fn lock_counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `tokens` part of `/_admin/stats`.
    pub fn stats(&self) -> Value {
        let c = self.lock_counts();
        json!({
            "requests": c.requests,
            "issued": c.issued,
            "unavailable": c.unavailable,
            "refused": c.refused,
            "issued_by_client": c.by_client,
        })
    }

    /// Clears the counts (`POST /_admin/reset`); issued tokens, seen jtis and fault counters stay.
    pub fn reset_stats(&self) {
        *self.lock_counts() = Counts::default();
    }
}
