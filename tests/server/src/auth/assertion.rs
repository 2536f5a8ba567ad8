//! Checking a `private_key_jwt` client assertion (RFC 7523 §3, SMART backend services) the way
//! a strict server does. Every `Err` is an `error_description` naming what was wrong.

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::clients::Clients;

/// Clock leeway in seconds for "in the future" / "not yet valid" checks.
pub const LEEWAY: i64 = 60;
/// How far ahead an assertion's `exp` may be (SMART: at most five minutes).
pub const MAX_EXP_AHEAD: i64 = 300;

/// `jti`s seen, per client, kept until their assertion's `exp` (plus leeway) has passed.
#[derive(Debug, Default)]
pub struct Jtis(Mutex<HashMap<(String, String), i64>>);

impl Jtis {
    /// Records `jti` for `client`; `false` when it is still remembered (a replay).
    fn record(&self, client: &str, jti: &str, exp: i64, now: i64) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, e| *e + LEEWAY >= now);
        let key = (client.to_string(), jti.to_string());
        if m.contains_key(&key) {
            return false;
        }
        m.insert(key, exp);
        true
    }
}

fn alg_name(a: Algorithm) -> String {
    format!("{a:?}")
}

/// Reads the claims without checking the signature (to learn which client's keys to use).
fn unverified_claims(assertion: &str) -> Result<Value, String> {
    let mut v = Validation::default();
    v.insecure_disable_signature_validation();
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(assertion, &DecodingKey::from_secret(&[]), &v)
        .map(|d| d.claims)
        .map_err(|e| format!("client_assertion is not a JWT with a JSON claims set ({e})"))
}

fn number(c: &Value, name: &str) -> Result<Option<i64>, String> {
    match &c[name] {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| format!("{name} is not a number")),
        _ => Err(format!("assertion {name} must be a NumericDate (seconds since 1970)")),
    }
}

/// Verifies `assertion` posted to the token endpoint `aud` at `now` (Unix seconds), and
/// records its `jti`. Returns the client id.
pub fn verify(clients: &Clients, jtis: &Jtis, assertion: &str, aud: &str, now: i64) -> Result<String, String> {
    let head = jsonwebtoken::decode_header(assertion)
        .map_err(|e| format!("client_assertion is not a JWT (bad header: {e})"))?;
    if !matches!(head.alg, Algorithm::RS384 | Algorithm::ES384) {
        return Err(format!("assertion alg {} is not allowed; use RS384 or ES384", alg_name(head.alg)));
    }
    if let Some(typ) = &head.typ {
        if !typ.eq_ignore_ascii_case("JWT") {
            return Err(format!("assertion typ {typ} must be JWT"));
        }
    }
    let claims = unverified_claims(assertion)?;
    let Some(iss) = claims["iss"].as_str() else {
        return Err("assertion has no iss (it must be the client id)".into());
    };
    match claims["sub"].as_str() {
        Some(sub) if sub == iss => {}
        Some(sub) => return Err(format!("assertion sub {sub} must equal iss {iss} (both the client id)")),
        None => return Err(format!("assertion has no sub (it must equal iss {iss}, the client id)")),
    }
    let Some(client) = clients.get(iss) else {
        return Err(format!("unknown client {iss} (iss/sub of the assertion)"));
    };
    if client.keys.keys.is_empty() {
        return Err(format!("client {iss} has no public keys registered (it uses client_secret_basic)"));
    }
    let kids: Vec<&str> = client.keys.keys.iter().filter_map(|k| k.common.key_id.as_deref()).collect();
    let Some(kid) = head.kid.as_deref() else {
        return Err(format!("assertion header has no kid; client {iss} has keys {}", kids.join(", ")));
    };
    if let Some(jku) = &head.jku {
        if !client.jkus.iter().any(|j| j == jku) {
            return Err(format!("jku {jku} is not on the allowlist of client {iss}"));
        }
    }
    let Some(jwk) = client.keys.keys.iter().find(|k| k.common.key_id.as_deref() == Some(kid)) else {
        return Err(format!("kid {kid} is not a key of client {iss} (its keys: {})", kids.join(", ")));
    };
    if let Some(ka) = jwk.common.key_algorithm {
        let ka = format!("{ka:?}");
        if ka != alg_name(head.alg) {
            return Err(format!("kid {kid} is an {ka} key; the assertion header says alg {}", alg_name(head.alg)));
        }
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("kid {kid} of client {iss} is not a usable key ({e})"))?;
    let mut v = Validation::new(head.alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    if let Err(e) = jsonwebtoken::decode::<Value>(assertion, &key, &v) {
        return Err(match e.kind() {
            ErrorKind::InvalidSignature => {
                format!("assertion signature does not verify with key {kid} of client {iss} (signed with another private key?)")
            }
            ErrorKind::InvalidAlgorithm => format!("key {kid} cannot verify alg {}", alg_name(head.alg)),
            _ => format!("assertion rejected: {e}"),
        });
    }
    let aud_ok = match &claims["aud"] {
        Value::String(s) => s == aud,
        Value::Array(a) => a.iter().any(|x| x.as_str() == Some(aud)),
        _ => false,
    };
    if !aud_ok {
        return Err(format!("aud must be {aud} (the token endpoint URL), got {}", claims["aud"]));
    }
    let Some(exp) = number(&claims, "exp")? else {
        return Err("assertion has no exp".into());
    };
    if exp <= now - LEEWAY {
        return Err(format!("assertion expired {} s ago (check the client clock)", now.saturating_sub(exp)));
    }
    if exp.saturating_sub(now) > MAX_EXP_AHEAD + LEEWAY {
        return Err(format!(
            "assertion exp is {} s in the future; at most {MAX_EXP_AHEAD} s allowed (check the client clock)",
            exp.saturating_sub(now)
        ));
    }
    for name in ["iat", "nbf"] {
        if let Some(t) = number(&claims, name)? {
            if t.saturating_sub(now) > LEEWAY {
                return Err(format!(
                    "assertion {name} is {} s in the future (check the client clock)",
                    t.saturating_sub(now)
                ));
            }
        }
    }
    let jti = match claims["jti"].as_str() {
        Some(j) if !j.is_empty() => j,
        _ => return Err("assertion has no jti (a unique id per assertion)".into()),
    };
    if !jtis.record(iss, jti, exp, now) {
        return Err(format!("jti replayed: client {iss} already used jti {jti} (use a new jti for every assertion)"));
    }
    Ok(iss.to_string())
}
