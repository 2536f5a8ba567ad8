//! [`TokenSession`]: the state of one client's token for one server, and
//! the steps that drive it (which request is in flight, retries, failures).

use super::discovery::{capability_token_url, json_field};
use super::{AuthError, AuthStep, BackendServices};
use crate::http::Response;
use crate::retry::{backoff_ms, RetryPolicy};

#[derive(Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub(super) value: String,
    pub(super) expires_at_ms: u64,
    pub(super) margin_ms: u64,
    pub(super) scope: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pending {
    None,
    SmartConfig(u64),
    Capability(u64),
    Signing,
    TokenRequest(u64),
}

/// The token of one backend-services client for one FHIR server (see the module docs).
#[derive(Clone)]
pub struct TokenSession {
    pub(super) config: BackendServices,
    pub(super) base: String,
    pub(super) token_url: Option<String>,
    pub(super) token: Option<Token>,
    pub(super) pending: Pending,
    pub(super) assertion: Option<String>,
    pub(super) signing_input: Option<String>,
    pub(super) next_id: u64,
    pub(super) nonce: u64,
    pub(super) jtis: u64,
    pub(super) failures: u32,
    pub(super) retry: RetryPolicy,
    pub(super) retry_at_ms: u64,
    /// `.well-known/smart-configuration` had no token endpoint: ask the CapabilityStatement.
    pub(super) capability_next: bool,
    pub(super) failed: Option<AuthError>,
    /// A failure of the endpoint itself (down past the retries, not a
    /// refusal) is tried again from this instant: a long-lived client
    /// recovers after an outage without being rebuilt (J5).
    pub(super) failed_until_ms: Option<u64>,
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
            return Ok(self.discover());
        };
        self.request_token(token_url, now_ms)
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

    pub(super) fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(super) fn fail(&mut self, e: AuthError) -> AuthError {
        self.failed = Some(e.clone());
        e
    }

    pub(super) fn retry_later(
        &mut self,
        message: String,
        http_status: Option<u16>,
        now_ms: u64,
    ) -> Result<(), AuthError> {
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
