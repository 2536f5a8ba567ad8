//! Registered clients, from `--jwks`, `--client`, `--client-secret`, `--client-scope`, `--client-jku`.

use std::collections::BTreeMap;
use std::path::Path;

use jsonwebtoken::jwk::JwkSet;

use super::scope::Scope;
use crate::config::Config;

/// The client id `--jwks` registers its keys for.
pub const DEFAULT_CLIENT: &str = "client-1";

/// One registered client.
#[derive(Debug)]
pub struct Client {
    /// Public keys (private_key_jwt); empty for a secret-only client.
    pub keys: JwkSet,
    /// Secret (client_secret_basic).
    pub secret: Option<String>,
    /// Scopes it may get (None = whatever it asks).
    pub scopes: Option<Vec<Scope>>,
    /// `jku` values its assertions may carry.
    pub jkus: Vec<String>,
}

impl Default for Client {
    fn default() -> Self {
        Client { keys: JwkSet { keys: Vec::new() }, secret: None, scopes: None, jkus: Vec::new() }
    }
}

/// Clients by id.
#[derive(Debug, Default)]
pub struct Clients(pub BTreeMap<String, Client>);

fn split<'a>(flag: &str, v: &'a str) -> Result<(&'a str, &'a str), String> {
    match v.split_once('=') {
        Some((id, rest)) if !id.is_empty() && !rest.is_empty() => Ok((id, rest)),
        _ => Err(format!("{flag} takes CLIENT_ID=VALUE, got {v:?}")),
    }
}

fn read_jwks(flag: &str, p: &Path) -> Result<JwkSet, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {flag} {}: {e}", p.display()))?;
    serde_json::from_str::<JwkSet>(&text).map_err(|e| format!("{flag} {}: bad JWKS: {e}", p.display()))
}

impl Clients {
    /// Builds the registry from the flags.
    pub fn from_config(cfg: &Config) -> Result<Clients, String> {
        let mut c = Clients::default();
        if let Some(p) = &cfg.jwks {
            let keys = read_jwks("--jwks", p)?;
            c.0.entry(DEFAULT_CLIENT.into()).or_default().keys.keys.extend(keys.keys);
        }
        for v in &cfg.clients {
            let (id, path) = split("--client", v)?;
            let keys = read_jwks("--client", Path::new(path))?;
            c.0.entry(id.into()).or_default().keys.keys.extend(keys.keys);
        }
        for v in &cfg.client_secrets {
            let (id, secret) = split("--client-secret", v)?;
            c.0.entry(id.into()).or_default().secret = Some(secret.into());
        }
        for v in &cfg.client_scopes {
            let (id, scopes) = split("--client-scope", v)?;
            let list = Scope::parse_list(scopes).map_err(|e| format!("--client-scope {id}: {e}"))?;
            let client = c.0.get_mut(id).ok_or_else(|| format!("--client-scope names unknown client {id}"))?;
            client.scopes.get_or_insert_with(Vec::new).extend(list);
        }
        for v in &cfg.client_jkus {
            let (id, url) = split("--client-jku", v)?;
            let client = c.0.get_mut(id).ok_or_else(|| format!("--client-jku names unknown client {id}"))?;
            client.jkus.push(url.into());
        }
        Ok(c)
    }

    /// The client with this id.
    pub fn get(&self, id: &str) -> Option<&Client> {
        self.0.get(id)
    }

    /// Whether no client is registered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
