//! A backend-services client registration: the client id, scope, the key's
//! algorithm and id, or a client secret (J2, J3, J6).

use serde::{Deserialize, Serialize};

/// The signing algorithms SMART 2.x servers SHALL support (J2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-384 (the default: unused by a client-secret registration).
    #[default]
    RS384,
    /// ECDSA on P-384 with SHA-384.
    ES384,
}

impl SigningAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS384 => "RS384",
            SigningAlg::ES384 => "ES384",
        }
    }
}

/// A backend-services client registration (the same JSON shape in every binding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendServices {
    /// The client id: the assertion's `iss` and `sub`.
    pub client_id: String,
    /// Requested scope, passed through: v1 `system/*.read` or v2 `system/*.rs`.
    pub scope: String,
    /// The token endpoint; found by discovery when absent (J1).
    #[serde(default)]
    pub token_url: Option<String>,
    /// The key's algorithm (ignored with a `client_secret`).
    #[serde(default)]
    pub alg: SigningAlg,
    /// The key id (`kid` in the JWT header), as registered with the server.
    #[serde(default)]
    pub kid: Option<String>,
    /// The URL of the client's public JWKS (`jku`), when registered that way.
    #[serde(default)]
    pub jku: Option<String>,
    /// A symmetric client's secret: `client_secret_basic` instead of a signed
    /// assertion (J3). Read from JSON (`clientSecret`), never written back.
    #[serde(default, skip_serializing)]
    pub client_secret: Option<ClientSecret>,
}

/// A client secret (`client_secret_basic`). Never shown (`Debug` prints
/// `ClientSecret(***)`), never serialized (J6).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ClientSecret(pub(super) String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        ClientSecret(secret.into())
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(***)")
    }
}
