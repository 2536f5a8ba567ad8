//! Where the bearer token comes from. The engine says when a token is
//! needed and when a new one is (a 401); a [`TokenProvider`] answers.

use fhir_async::AuthError;
use std::sync::Mutex;

/// Why no (new) token could be had: a reason (a fixed token cannot be
/// refreshed, a callable failed), or the authorization server's typed
/// refusal ([`AuthError`], code `auth`), which reaches the caller as
/// [`crate::ClientError::Auth`]. Never contains the token or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", match &self.auth { Some(a) => a.to_string(), None => self.reason.clone() })]
pub struct TokenUnavailable {
    reason: String,
    auth: Option<AuthError>,
}

impl TokenUnavailable {
    /// No token, for this reason (it goes into the engine's `unauthorized` error).
    pub fn new(reason: impl Into<String>) -> Self {
        TokenUnavailable { reason: reason.into(), auth: None }
    }

    /// The reason, as text.
    pub fn reason(&self) -> String {
        self.to_string()
    }

    /// The authorization server's refusal, when that is why.
    pub fn auth_error(&self) -> Option<&AuthError> {
        self.auth.as_ref()
    }
}

impl From<AuthError> for TokenUnavailable {
    fn from(e: AuthError) -> Self {
        TokenUnavailable { reason: String::new(), auth: Some(e) }
    }
}

/// A source of bearer tokens, shared by every thread of a client.
pub trait TokenProvider: Send + Sync {
    /// The current token (`None`: send requests without one).
    fn token(&self) -> Result<Option<String>, TokenUnavailable>;
    /// A new token after the server refused the current one. The default:
    /// none can be had (a fixed string, or no token at all).
    fn refresh(&self) -> Result<(), TokenUnavailable> {
        Err(TokenUnavailable::new(self.describe_fixed()))
    }
    /// How a provider that cannot refresh describes itself, for the error.
    fn describe_fixed(&self) -> String {
        "the token cannot be refreshed".into()
    }
}

/// No token at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoToken;

impl TokenProvider for NoToken {
    fn token(&self) -> Result<Option<String>, TokenUnavailable> {
        Ok(None)
    }
    fn describe_fixed(&self) -> String {
        "no token was configured".into()
    }
}

/// A fixed token string: never refreshed, so a refused one is sent once.
pub struct StaticToken(String);

impl StaticToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        StaticToken(token.into())
    }
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(***)")
    }
}

impl TokenProvider for StaticToken {
    fn token(&self) -> Result<Option<String>, TokenUnavailable> {
        Ok(Some(self.0.clone()))
    }
    fn describe_fixed(&self) -> String {
        "the token is a fixed string".into()
    }
}

/// A function asked for a token the first time one is needed and again after
/// each 401 (a SMART backend-services grant, a vault, ...).
pub struct TokenFn<F> {
    fetch: F,
    current: Mutex<Option<String>>,
}

impl<F> TokenFn<F>
where
    F: Fn() -> Result<String, TokenUnavailable> + Send + Sync,
{
    /// Wraps the function.
    pub fn new(fetch: F) -> Self {
        TokenFn { fetch, current: Mutex::new(None) }
    }
}

impl<F> std::fmt::Debug for TokenFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenFn(***)")
    }
}

impl<F> TokenProvider for TokenFn<F>
where
    F: Fn() -> Result<String, TokenUnavailable> + Send + Sync,
{
    fn token(&self) -> Result<Option<String>, TokenUnavailable> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.is_none() {
            *current = Some((self.fetch)()?);
        }
        Ok(current.clone())
    }
    fn refresh(&self) -> Result<(), TokenUnavailable> {
        let fresh = (self.fetch)()?;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(fresh);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    // protocol J6 / I: a token never shows in Debug output
    #[test]
    fn tokens_never_in_debug() {
        assert_eq!(format!("{:?}", StaticToken::new("secret")), "StaticToken(***)");
        let f = TokenFn::new(|| Ok("secret".to_owned()));
        f.token().unwrap();
        assert!(!format!("{f:?}").contains("secret"));
    }

    // issue 12 (J4): a token endpoint's refusal stays typed on its way to the caller
    #[test]
    fn an_auth_refusal_stays_typed() {
        let refusal = AuthError {
            message: "the token endpoint refused the client (401)".into(),
            error: Some("invalid_client".into()),
            error_description: Some("unknown client nobody".into()),
            http_status: Some(401),
        };
        let e = TokenUnavailable::from(refusal.clone());
        assert_eq!(e.auth_error(), Some(&refusal));
        assert_eq!(e.reason(), refusal.to_string());
        assert_eq!(TokenUnavailable::new("no token was configured").auth_error(), None);
    }

    // protocol H5: a fixed token cannot be refreshed; a function is asked again
    #[test]
    fn refresh_rules() {
        assert_eq!(StaticToken::new("t").refresh().unwrap_err().reason(), "the token is a fixed string");
        assert_eq!(NoToken.refresh().unwrap_err().reason(), "no token was configured");
        let calls = AtomicU32::new(0);
        let f = TokenFn::new(|| Ok(format!("t{}", calls.fetch_add(1, Ordering::SeqCst))));
        assert_eq!(f.token().unwrap().as_deref(), Some("t0"));
        assert_eq!(f.token().unwrap().as_deref(), Some("t0"), "cached");
        f.refresh().unwrap();
        assert_eq!(f.token().unwrap().as_deref(), Some("t1"));
    }
}
