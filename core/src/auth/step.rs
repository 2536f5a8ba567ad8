//! [`AuthStep`]: what the caller does next for the token.

use super::SigningAlg;
use crate::http::Request;
use serde::Serialize;

/// What the caller does next for the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum AuthStep {
    /// Send this request (discovery or the token request; never with a bearer
    /// token) and hand the answer to [`TokenSession::handle_response`](super::TokenSession::handle_response).
    Send {
        /// The request.
        request: Request,
    },
    /// Sign `signing_input` (the JWT's `base64url(header).base64url(claims)`)
    /// with the private key `kid` using `alg`, and hand the raw signature
    /// (PKCS#1 v1.5 bytes for RS384; the 96-byte `r‖s` for ES384) to
    /// [`TokenSession::signed`](super::TokenSession::signed).
    Sign {
        /// The bytes to sign.
        signing_input: String,
        /// The algorithm.
        alg: SigningAlg,
        /// The key id.
        kid: Option<String>,
    },
    /// The token endpoint failed; try again at `until_ms`.
    Wait {
        /// When.
        until_ms: u64,
        /// `until_ms - now`.
        delay_ms: u64,
    },
    /// A valid token is ready: [`TokenSession::token`](super::TokenSession::token).
    Ready,
}
