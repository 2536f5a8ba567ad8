//! The token options: `--token`, `--auth FILE`, `--client-id` with `--key` or
//! `--client-secret` (`FHIR_ASYNC_CLIENT_SECRET`). A secret, like a token or a
//! key, never enters the folder: `describe` keeps that there is one, not it.

use crate::args::{ServerArgs, DEFAULT_SCOPE};
use fhir_async::{BackendServices, SigningAlg};
use fhir_async_client::{BackendServicesAuth, ClientBuilder, Connection, PrivateKey, StaticToken, Transport};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The folder-safe description of the authorization (paths, ids: never a token or a key).
pub fn describe(s: &ServerArgs) -> Value {
    match (&s.token, &s.auth, &s.client_id) {
        (Some(_), _, _) => json!({"kind": "token"}),
        (_, Some(p), _) => json!({"kind": "backendServicesFile", "path": absolute(p)}),
        (_, _, Some(id)) if s.key.is_none() && s.client_secret.is_some() => json!({"kind": "clientSecret",
            "clientId": id, "scope": s.scope(), "tokenUrl": s.token_url}),
        (_, _, Some(id)) => json!({"kind": "backendServices", "clientId": id, "key": s.key.as_deref().map(absolute),
            "kid": s.kid, "scope": s.scope(), "tokenUrl": s.token_url}),
        _ => json!({"kind": "none"}),
    }
}

fn absolute(p: &Path) -> String {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned()).display().to_string()
}

/// Whether the command line (flags or the environment) offers a credential or names one.
pub fn offers_credential(s: &ServerArgs) -> bool {
    s.token.is_some() || s.auth.is_some() || s.client_id.is_some() || s.key.is_some() || s.client_secret.is_some()
}

/// Takes every credential out: nothing is sent but the requests themselves.
pub fn strip(s: &mut ServerArgs) {
    s.token = None;
    s.auth = None;
    s.client_id = None;
    s.key = None;
    s.client_secret = None;
    s.kid = None;
    s.token_url = None;
}

/// Fills in what the command line left out from what the folder saved (only once the
/// command line confirmed the folder's base URL: see `docs/cli.md`, Authorization).
pub fn merge_saved(s: &mut ServerArgs, saved: &Value) {
    if s.base.is_none() {
        s.base = saved["base"].as_str().map(str::to_owned);
    }
    if s.token.is_some() || s.auth.is_some() || s.client_id.is_some() {
        return;
    }
    let a = &saved["auth"];
    match a["kind"].as_str() {
        Some("backendServicesFile") => s.auth = a["path"].as_str().map(PathBuf::from),
        Some(kind @ ("backendServices" | "clientSecret")) => {
            s.client_id = a["clientId"].as_str().map(str::to_owned);
            if kind == "backendServices" {
                s.key = a["key"].as_str().map(PathBuf::from);
            }
            s.kid = a["kid"].as_str().map(str::to_owned);
            if let (None, Some(scope)) = (&s.scope, a["scope"].as_str()) {
                s.scope = Some(scope.to_owned());
            }
            s.token_url = a["tokenUrl"].as_str().map(str::to_owned);
        }
        _ => {}
    }
}

/// The binding the `User-Agent` names, on the FHIR server's requests and the token endpoint's.
pub(crate) const BINDING: &str = "cli";

/// How the command reaches servers: `--ca-file`, the system's trust store, `--proxy` (or the
/// environment's).
pub fn connection(s: &ServerArgs) -> Connection {
    Connection { ca_files: s.ca_files.clone(), system_roots: true, proxy: s.proxy.clone() }
}

/// Adds the connection, the origins allowed the token and the token source to the client. The
/// token endpoint is reached the same way as the server, and told the command's `User-Agent`.
pub fn apply(s: &ServerArgs, base: &str, b: ClientBuilder) -> Result<ClientBuilder, String> {
    let connection = connection(s);
    let b = b.connection(connection.clone()).allowed_origins(s.allowed_origins.clone());
    if let Some(t) = &s.token {
        return Ok(b.token(StaticToken::new(t.clone())));
    }
    let (registration, credential) = if let Some(path) = &s.auth {
        from_file(path)?
    } else if let Some(id) = &s.client_id {
        let credential = match (&s.key, &s.client_secret) {
            (Some(key), _) => Credential::Key(PrivateKey::from_file(key, s.kid.as_deref()).map_err(|e| e.to_string())?),
            (None, Some(secret)) => Credential::Secret(secret.clone()),
            (None, None) => {
                return Err(format!(
                    "--client-id {id} needs --key FILE, or --client-secret (or FHIR_ASYNC_CLIENT_SECRET; a secret is never saved in the folder, give it again to resume)"
                ))
            }
        };
        (registration(id, s.scope(), s.token_url.clone(), s.kid.clone()), credential)
    } else {
        return Ok(b);
    };
    let auth = match credential {
        Credential::Key(key) => BackendServicesAuth::new(base, registration, key),
        Credential::Secret(secret) => BackendServicesAuth::from_client_secret(base, registration, secret),
    }
    .map_err(|e| e.to_string())?;
    let transport = Transport::with_connection(BINDING, &connection).map_err(|e| e.to_string())?;
    Ok(b.token(auth.with_transport(transport)))
}

/// How the client authenticates to the token endpoint.
enum Credential {
    /// A signed assertion (private_key_jwt).
    Key(PrivateKey),
    /// client_secret_basic.
    Secret(String),
}

fn registration(client_id: &str, scope: &str, token_url: Option<String>, kid: Option<String>) -> BackendServices {
    BackendServices {
        client_id: client_id.to_owned(),
        scope: scope.to_owned(),
        token_url,
        alg: SigningAlg::RS384,
        kid,
        jku: None,
        client_secret: None,
    }
}

/// A config file in the shape other bulk-data clients accept: `clientId`, `scope`,
/// `tokenUrl` or `tokenEndpoint`, `privateKey` / `privateJWKorJWKS` / `key` (a path, relative
/// to the file, or the JWK/JWKS object), `kid`; or `clientSecret` instead of a key;
/// bulk-data-client's `privateJWKorSecret` is a JWK (an object) or a secret (a string).
fn from_file(path: &Path) -> Result<(BackendServices, Credential), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    // bulk-data-client writes "" for "not set", and tokenUrl "none" for an open server.
    let field = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty() && *s != "none").map(str::to_owned);
    let client_id = field("clientId").ok_or_else(|| format!("{}: no clientId", path.display()))?;
    let kid = field("kid");
    let key_value = ["privateJWKorJWKS", "privateKey", "key", "jwks"]
        .iter()
        .find_map(|k| v.get(*k))
        .or_else(|| v.get("privateJWKorSecret").filter(|k| k.is_object()));
    let token_url = field("tokenUrl").or_else(|| field("tokenEndpoint"));
    let scope = field("scope").unwrap_or_else(|| DEFAULT_SCOPE.into());
    let secret = field("clientSecret").or_else(|| field("privateJWKorSecret"));
    if let Some(secret) = secret {
        if key_value.is_some() {
            return Err(format!("{}: a key or a clientSecret, not both", path.display()));
        }
        return Ok((registration(&client_id, &scope, token_url, kid), Credential::Secret(secret)));
    }
    let key = match key_value {
        Some(Value::String(p)) => {
            let p = path.parent().unwrap_or(Path::new(".")).join(p);
            PrivateKey::from_file(&p, kid.as_deref())
        }
        Some(obj @ Value::Object(_)) if obj.get("keys").is_some() => PrivateKey::from_jwks(obj, kid.as_deref()),
        Some(obj @ Value::Object(_)) => PrivateKey::from_jwk(obj),
        _ => return Err(format!("{}: no privateJWKorJWKS / privateKey / clientSecret", path.display())),
    }
    .map_err(|e| e.to_string())?;
    Ok((registration(&client_id, &scope, token_url, kid), Credential::Key(key)))
}
