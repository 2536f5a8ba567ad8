//! SMART Backend Services authorization (protocol J1–J6), sans-IO: the
//! client-credentials grant with a signed JWT assertion.
//!
//! A [`TokenSession`] finds the token endpoint (`.well-known/smart-configuration`,
//! else the CapabilityStatement's `oauth-uris` extension, else a configured
//! URL), builds the assertion's header and claims, asks the caller only to
//! *sign* bytes with its key, sends the token request, reads the answer, and
//! says when a new token is due (before it expires, with a margin, and after
//! a 401). The token never enters a saved state, a `Debug` output or an error.
//!
//! A symmetric client ([`BackendServices::client_secret`]) authenticates with
//! `client_secret_basic` instead (J3): no assertion and no `Sign` step; the
//! token request carries `Authorization: Basic base64(urlenc(id):urlenc(secret))`.
//! The secret, like the token, is never serialized, shown or put in an error.
//!
//! ```text
//!   next(now) ─> Send(discovery GET) ─> handle_response ─┐
//!      │                                                  v
//!      ├──────> Sign{signing_input, alg, kid} ─> signed(signature)
//!      │                                                  v
//!      ├──────> Send(token POST) ──────────────> handle_response ─> Ready
//!      │  5xx / transport error: Wait, then again (bounded)
//!      └ Ready while token(now) is valid; invalidate() after a 401
//! ```
//!
//! The module is split by what each part holds: [`BackendServices`] and its
//! key or secret (`config`), [`AuthError`] (`error`), [`AuthStep`] (`step`),
//! the [`TokenSession`] state machine (`session`), finding the token endpoint
//! (`discovery`), and the token request with its JWT assertion and the reading
//! of its answer (`token`).

mod config;
mod discovery;
mod error;
mod session;
mod step;
mod token;

#[cfg(test)]
mod tests;

pub use config::{BackendServices, ClientSecret, SigningAlg};
pub use error::AuthError;
pub use session::TokenSession;
pub use step::AuthStep;
