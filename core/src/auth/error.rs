//! [`AuthError`]: why no token could be had (code `auth`).

use serde::{Deserialize, Serialize};

/// Why no token could be had (code `auth`). Carries the server's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[error("authorization failed: {message}{}{}", error.as_deref().map(|e| format!(" ({e}")).unwrap_or_default(), match (error, error_description) { (Some(_), Some(d)) => format!(": {d})"), (Some(_), None) => ")".to_owned(), _ => String::new() })]
pub struct AuthError {
    /// What happened, and the likely cause.
    pub message: String,
    /// The OAuth `error` (RFC 6749 §5.2), when the server sent one.
    pub error: Option<String>,
    /// The server's `error_description`.
    pub error_description: Option<String>,
    /// The HTTP status of the answer, if any.
    pub http_status: Option<u16>,
}

impl AuthError {
    /// The code, the same in every binding.
    pub fn code(&self) -> &'static str {
        "auth"
    }

    pub(super) fn new(message: impl Into<String>) -> Self {
        AuthError { message: message.into(), error: None, error_description: None, http_status: None }
    }
}
