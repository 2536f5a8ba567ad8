//! The bearer token of a `_native.Client`: none, a fixed string, a Python
//! callable (asked with the GIL, again after a 401), or SMART Backend
//! Services (a private key, or a client secret). The refresh rules are the
//! client's ([`fhir_async_client::TokenProvider`]).

use crate::errors::{auth_error, client_error, usage};
use crate::signals::Pending;
use fhir_async::BackendServices;
use fhir_async_client::{
    now_ms, BackendServicesAuth, NoToken, PrivateKey, StaticToken, TokenFn, TokenProvider, TokenUnavailable, Transport,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

/// The provider for `token` (None, a str, or a callable returning a str).
/// An exception of the callable is kept in `pending` and raised by the call.
pub fn provider(token: Option<&Bound<'_, PyAny>>, pending: &Pending) -> PyResult<Box<dyn TokenProvider>> {
    let Some(t) = token.filter(|t| !t.is_none()) else {
        return Ok(Box::new(NoToken));
    };
    if t.is_callable() {
        let f = t.clone().unbind();
        let pending = pending.clone();
        return Ok(Box::new(TokenFn::new(move || {
            Python::attach(|py| f.bind(py).call0().and_then(|v| v.extract::<String>())).map_err(|e| {
                pending.set(e);
                TokenUnavailable::new("the token callable raised an exception")
            })
        })));
    }
    Ok(Box::new(StaticToken::new(t.extract::<String>()?)))
}

/// SMART Backend Services from the dict `fhir_async.BackendServices` hands
/// over: `client_id`, `scope`, `token_url`, `kid`, and `key_path`,
/// `key_jwk` (JSON text) or `key_pem` (PEM text), or `client_secret`
/// (`client_secret_basic`). `transport`: the one discovery and token requests
/// go through (the client's `User-Agent`, trusted CAs and proxy).
pub fn backend_services(
    py: Python<'_>,
    base_url: &str,
    auth_dict: &Bound<'_, PyDict>,
    pending: &Pending,
    transport: Transport,
) -> PyResult<Box<dyn TokenProvider>> {
    let get = |k: &str| -> PyResult<Option<String>> {
        match auth_dict.get_item(k)? {
            Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
            _ => Ok(None),
        }
    };
    let client_id = get("client_id")?.ok_or_else(|| usage(py, "BackendServices needs a client_id"))?;
    let scope = get("scope")?.unwrap_or_default();
    let kid = get("kid")?;
    let config = BackendServices {
        client_id,
        scope,
        token_url: get("token_url")?,
        alg: Default::default(),
        kid: kid.clone(),
        jku: None,
        client_secret: None,
    };
    let keys = (get("key_path")?, get("key_jwk")?, get("key_pem")?);
    let auth = match (keys, get("client_secret")?) {
        ((None, None, None), Some(secret)) => BackendServicesAuth::from_client_secret(base_url, config, secret),
        ((Some(path), None, None), None) => PrivateKey::from_file(&PathBuf::from(path), kid.as_deref())
            .and_then(|key| BackendServicesAuth::new(base_url, config, key)),
        ((None, Some(text), None), None) => {
            let jwk: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| usage(py, &format!("the key is not JSON: {e}")))?;
            let key = if jwk.get("keys").is_some() {
                PrivateKey::from_jwks(&jwk, kid.as_deref())
            } else {
                PrivateKey::from_jwk(&jwk)
            };
            key.and_then(|key| BackendServicesAuth::new(base_url, config, key))
        }
        ((None, None, Some(pem)), None) => PrivateKey::from_pem(pem.as_bytes(), kid.as_deref())
            .and_then(|key| BackendServicesAuth::new(base_url, config, key)),
        ((None, None, None), None) => {
            return Err(usage(
                py,
                "BackendServices needs a key (a PEM or JWK file path, a JWK dict, PEM text) or a client_secret",
            ))
        }
        _ => return Err(usage(py, "BackendServices takes one key or a client_secret, not two")),
    }
    .map_err(|e| client_error(py, &e))?;
    // A test hook (`BackendServices._clock_offset_ms`): a skewed client clock (J5).
    let offset: i64 = match auth_dict.get_item("clock_offset_ms")? {
        Some(v) if !v.is_none() => v.extract()?,
        _ => 0,
    };
    let auth = if offset == 0 { auth } else { auth.with_clock(move || now_ms().saturating_add_signed(offset)) };
    // Discovery and token requests name this binding in their User-Agent, as the FHIR requests do,
    // and go through the client's trusted CAs and proxy.
    let auth = auth.with_transport(transport);
    Ok(Box::new(Smart { auth, pending: pending.clone() }))
}

/// SMART Backend Services whose refusal is also kept as the pending
/// `AuthError` (code `auth`, the server's `error`/`error_description` in its
/// details), so a download that swallowed it (its files fail) still raises it.
struct Smart {
    auth: BackendServicesAuth,
    pending: Pending,
}

impl std::fmt::Debug for Smart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.auth.fmt(f)
    }
}

impl Smart {
    fn typed(&self, e: TokenUnavailable) -> TokenUnavailable {
        if let Some(a) = e.auth_error() {
            self.pending.set(Python::attach(|py| auth_error(py, a)));
        }
        e
    }
}

impl TokenProvider for Smart {
    fn token(&self) -> Result<Option<String>, TokenUnavailable> {
        self.auth.token().map_err(|e| self.typed(e))
    }
    fn refresh(&self) -> Result<(), TokenUnavailable> {
        self.auth.refresh().map_err(|e| self.typed(e))
    }
}

/// A boxed provider is a provider.
pub struct Boxed(pub Box<dyn TokenProvider>);

impl std::fmt::Debug for Boxed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl TokenProvider for Boxed {
    fn token(&self) -> Result<Option<String>, TokenUnavailable> {
        self.0.token()
    }
    fn refresh(&self) -> Result<(), TokenUnavailable> {
        self.0.refresh()
    }
    fn describe_fixed(&self) -> String {
        self.0.describe_fixed()
    }
}
