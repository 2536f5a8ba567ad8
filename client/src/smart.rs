//! SMART Backend Services for the native client (protocol J): private keys
//! (RS384 or ES384, from PEM, a private JWK or a JWKS), signing with
//! `jsonwebtoken` (ring), and a [`TokenProvider`] that drives the core's
//! [`TokenSession`] over HTTP; or a client secret (`client_secret_basic`).

use crate::token::{TokenProvider, TokenUnavailable};
use crate::transport::Transport;
use crate::{now_ms, ClientError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fhir_async::{AuthError, AuthStep, BackendServices, ClientSecret, SigningAlg, TokenSession};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::Value;
use std::path::Path;
use std::sync::Mutex;

/// A private signing key. Never shown: `Debug` prints the algorithm and `kid` only.
pub struct PrivateKey {
    key: EncodingKey,
    alg: SigningAlg,
    kid: Option<String>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

fn bad(message: impl Into<String>) -> ClientError {
    ClientError::Auth(AuthError { message: message.into(), error: None, error_description: None, http_status: None })
}

fn b64(v: &Value, field: &str) -> Result<Vec<u8>, ClientError> {
    let s = v.get(field).and_then(Value::as_str).ok_or_else(|| bad(format!("the JWK has no {field:?}")))?;
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| bad(format!("the JWK's {field:?} is not base64url: {e}")))
}

impl PrivateKey {
    /// The algorithm.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// A PEM private key (PKCS#8 `PRIVATE KEY`, or PKCS#1 `RSA PRIVATE KEY`).
    /// The algorithm follows the key type; `kid` is what the server registered.
    pub fn from_pem(pem: &[u8], kid: Option<&str>) -> Result<Self, ClientError> {
        let text = String::from_utf8_lossy(pem);
        // PKCS#8 says its key type inside; try RSA, then EC.
        let (key, alg) = if let Ok(k) = EncodingKey::from_rsa_pem(pem) {
            (k, SigningAlg::RS384)
        } else if let Ok(k) = EncodingKey::from_ec_pem(pem) {
            (k, SigningAlg::ES384)
        } else {
            let kind = text.lines().find(|l| l.starts_with("-----BEGIN")).unwrap_or("no PEM header");
            return Err(bad(format!("not an RSA or P-384 private key in PEM ({kind})")));
        };
        let key = PrivateKey { key, alg, kid: kid.map(str::to_owned) };
        key.check()?;
        Ok(key)
    }

    /// A private JWK (`kty` RSA with `d`, `p`, `q`...; or EC P-384 with `d`).
    pub fn from_jwk(jwk: &Value) -> Result<Self, ClientError> {
        let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
        let key = match jwk.get("kty").and_then(Value::as_str) {
            Some("RSA") => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                use rsa::BigUint;
                let n = |f: &str| b64(jwk, f).map(|b| BigUint::from_bytes_be(&b));
                let k = rsa::RsaPrivateKey::from_components(n("n")?, n("e")?, n("d")?, vec![n("p")?, n("q")?])
                    .map_err(|e| bad(format!("the RSA JWK is not a valid private key: {e}")))?;
                let der = k.to_pkcs1_der().map_err(|e| bad(e.to_string()))?;
                PrivateKey { key: EncodingKey::from_rsa_der(der.as_bytes()), alg: SigningAlg::RS384, kid }
            }
            Some("EC") => {
                use p384::pkcs8::EncodePrivateKey;
                if jwk.get("crv").and_then(Value::as_str) != Some("P-384") {
                    return Err(bad("an EC JWK must be on curve P-384 (ES384)"));
                }
                let k = p384::SecretKey::from_slice(&b64(jwk, "d")?)
                    .map_err(|e| bad(format!("the EC JWK is not a valid P-384 private key: {e}")))?;
                let der = k.to_pkcs8_der().map_err(|e| bad(e.to_string()))?;
                PrivateKey { key: EncodingKey::from_ec_der(der.as_bytes()), alg: SigningAlg::ES384, kid }
            }
            Some(other) => return Err(bad(format!("unsupported JWK kty {other:?} (RSA or EC P-384)"))),
            None => return Err(bad("the JWK has no kty (is it a JWKS? use from_jwks)")),
        };
        if let Some(alg) = jwk.get("alg").and_then(Value::as_str) {
            if alg != key.alg.as_str() {
                return Err(bad(format!("the JWK says alg {alg}, but its key is for {}", key.alg.as_str())));
            }
        }
        key.check()?;
        Ok(key)
    }

    /// The private key of a JWKS: the one with `kid`, or the only signing key.
    pub fn from_jwks(jwks: &Value, kid: Option<&str>) -> Result<Self, ClientError> {
        let keys = jwks.get("keys").and_then(Value::as_array).ok_or_else(|| bad("not a JWKS: no \"keys\" array"))?;
        let private: Vec<&Value> = keys.iter().filter(|k| k.get("d").is_some()).collect();
        let chosen = match kid {
            Some(kid) => private.iter().find(|k| k.get("kid").and_then(Value::as_str) == Some(kid)),
            None if private.len() == 1 => private.first(),
            None => None,
        };
        match chosen {
            Some(k) => PrivateKey::from_jwk(k),
            None => Err(bad(format!(
                "the JWKS has {} private keys; none matches kid {kid:?} (name one with kid)",
                private.len()
            ))),
        }
    }

    /// A key file: PEM, a private JWK or a JWKS (JSON).
    pub fn from_file(path: &Path, kid: Option<&str>) -> Result<Self, ClientError> {
        let bytes = std::fs::read(path).map_err(|e| ClientError::io(path, e))?;
        if bytes.trim_ascii_start().starts_with(b"{") {
            let v: Value =
                serde_json::from_slice(&bytes).map_err(|e| bad(format!("{}: not JSON: {e}", path.display())))?;
            if v.get("keys").is_some() {
                PrivateKey::from_jwks(&v, kid)
            } else {
                let mut k = PrivateKey::from_jwk(&v)?;
                if kid.is_some() {
                    k.kid = kid.map(str::to_owned);
                }
                Ok(k)
            }
        } else {
            PrivateKey::from_pem(&bytes, kid)
        }
    }

    /// Signs `input`; the raw signature (PKCS#1 v1.5 for RS384, `r‖s` for ES384).
    pub fn sign(&self, input: &[u8]) -> Result<Vec<u8>, ClientError> {
        let alg = match self.alg {
            SigningAlg::RS384 => Algorithm::RS384,
            SigningAlg::ES384 => Algorithm::ES384,
        };
        let b64sig =
            jsonwebtoken::crypto::sign(input, &self.key, alg).map_err(|e| bad(format!("signing failed: {e}")))?;
        URL_SAFE_NO_PAD.decode(b64sig).map_err(|e| bad(e.to_string()))
    }

    fn check(&self) -> Result<(), ClientError> {
        self.sign(b"check").map(|_| ())
    }
}

/// A [`TokenProvider`] for SMART Backend Services: discovery, signed
/// assertions (or a client secret), short-lived tokens renewed before they
/// expire and after a 401. A refusal is [`ClientError::Auth`] (code `auth`).
pub struct BackendServicesAuth {
    session: Mutex<TokenSession>,
    /// None: a client secret (`client_secret_basic`), no signing.
    key: Option<PrivateKey>,
    transport: Transport,
    clock: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for BackendServicesAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key shows its alg and kid only; a secret shows as *** (J6).
        let mut d = f.debug_struct("BackendServicesAuth");
        match &self.key {
            Some(k) => d.field("key", k),
            None => d.field("client_secret", &"***"),
        };
        d.finish_non_exhaustive()
    }
}

impl BackendServicesAuth {
    /// A provider for the FHIR server at `base_url`. The key's algorithm and
    /// `kid` fill in the registration's when it leaves them out.
    pub fn new(base_url: &str, mut config: BackendServices, key: PrivateKey) -> Result<Self, ClientError> {
        config.alg = key.alg;
        if config.kid.is_none() {
            config.kid = key.kid.clone();
        }
        config.client_secret = None;
        Self::session(base_url, config, Some(key))
    }

    /// A provider for a symmetric client: `client_secret_basic` (the id and
    /// `secret` in `Authorization: Basic` of the token request, protocol J3)
    /// instead of a signed assertion. The secret is never shown or saved.
    pub fn from_client_secret(
        base_url: &str,
        mut config: BackendServices,
        secret: impl Into<String>,
    ) -> Result<Self, ClientError> {
        config.client_secret = Some(ClientSecret::new(secret));
        Self::session(base_url, config, None)
    }

    fn session(base_url: &str, config: BackendServices, key: Option<PrivateKey>) -> Result<Self, ClientError> {
        let session = TokenSession::new(base_url, config, random_nonce()).map_err(ClientError::Auth)?;
        Ok(BackendServicesAuth {
            session: Mutex::new(session),
            key,
            transport: Transport::new("rust"),
            clock: Box::new(now_ms),
        })
    }

    /// The transport discovery and token requests go through (default: `Transport::new("rust")`):
    /// give the one of the binding, so its `User-Agent` names it and its [`crate::Connection`]
    /// (trusted CAs, proxy) applies to the token endpoint too.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The clock (Unix ms) the assertions' `iat`/`exp` and the token's
    /// expiry come from (default: the system clock). The engine never reads
    /// a clock itself; tests skew this one (protocol J5).
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// The scope the server granted, once a token was issued.
    pub fn granted_scope(&self) -> Option<String> {
        self.lock().granted_scope().map(str::to_owned)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TokenSession> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drives the session until a token is ready (or it fails).
    fn ensure(&self) -> Result<String, AuthError> {
        let mut s = self.lock();
        loop {
            let now = (self.clock)();
            match s.next(now)? {
                AuthStep::Ready => return Ok(s.token(now).unwrap_or_default().to_owned()),
                AuthStep::Sign { signing_input, .. } => {
                    let Some(key) = &self.key else { return Err(no_key()) };
                    let sig = key.sign(signing_input.as_bytes()).map_err(|e| match e {
                        ClientError::Auth(a) => a,
                        other => AuthError {
                            message: other.to_string(),
                            error: None,
                            error_description: None,
                            http_status: None,
                        },
                    })?;
                    s.signed(&sig)?;
                }
                AuthStep::Send { request } => match self.transport.send(&request, None) {
                    Ok(response) => s.handle_response(request.id, &response, (self.clock)())?,
                    Err(f) => s.handle_transport_error(request.id, &f.message, (self.clock)())?,
                },
                AuthStep::Wait { delay_ms, .. } => std::thread::sleep(std::time::Duration::from_millis(delay_ms)),
            }
        }
    }
}

fn no_key() -> AuthError {
    AuthError {
        message: "the engine asked for a signature but this client has a secret, not a key".into(),
        error: None,
        error_description: None,
        http_status: None,
    }
}

impl TokenProvider for BackendServicesAuth {
    fn token(&self) -> Result<Option<String>, TokenUnavailable> {
        self.ensure().map(Some).map_err(TokenUnavailable::from)
    }

    fn refresh(&self) -> Result<(), TokenUnavailable> {
        self.lock().invalidate();
        self.ensure().map(|_| ()).map_err(TokenUnavailable::from)
    }
}

/// A `jti` seed that differs between runs: the core has no RNG (J5).
fn random_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    h.write_u32(std::process::id());
    h.finish()
}
