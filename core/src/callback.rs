//! Callbacks of the unified pattern (seed 003, protocol G): parse the
//! `Parameters` payload and verify its HMAC-SHA256 signature.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

/// The header the reference server signs with: `X-Signature: sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Signature";

/// What a callback says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CallbackPayload {
    /// `completed`, `failed` or `cancelled`.
    pub status: CallbackStatus,
    /// Where the result can be fetched (trusted only on the status URL's origin).
    pub result_url: Option<String>,
    /// The OperationOutcome sent with a failure.
    #[cfg_attr(feature = "ts", ts(type = "FhirResource | null"))]
    pub outcome: Option<Value>,
}

/// The `status` of a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum CallbackStatus {
    /// The job completed.
    Completed,
    /// The job failed.
    Failed,
    /// The job was cancelled.
    Cancelled,
}

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case", rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum CallbackError {
    /// No signature, or one that does not match the body.
    #[error("callback signature missing or invalid")]
    BadSignature,
    /// The body is not a callback `Parameters`.
    #[error("malformed callback: {0}")]
    Malformed(String),
}

impl CallbackError {
    /// A stable machine-readable code, the same in every binding.
    pub fn code(&self) -> &'static str {
        match self {
            CallbackError::BadSignature => "bad_signature",
            CallbackError::Malformed(_) => "malformed",
        }
    }
}

/// Verifies `signature` (`sha256=<hex>` or bare hex) over the exact body bytes
/// with HMAC-SHA256 under `secret` (constant-time), then parses the payload.
pub fn verify_callback(body: &[u8], signature: Option<&str>, secret: &[u8]) -> Result<CallbackPayload, CallbackError> {
    let sig = signature.map(str::trim).ok_or(CallbackError::BadSignature)?;
    let hex_part = sig.strip_prefix("sha256=").unwrap_or(sig);
    let expected = hex::decode(hex_part).map_err(|_| CallbackError::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| CallbackError::BadSignature)?;
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| CallbackError::BadSignature)?;
    parse_callback(body)
}

/// Signs a body the way [`verify_callback`] expects (for servers and tests).
pub fn sign_callback(body: &[u8], secret: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC accepts keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Parses a callback `Parameters` without checking a signature.
pub fn parse_callback(body: &[u8]) -> Result<CallbackPayload, CallbackError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
    if v.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(CallbackError::Malformed("not a Parameters resource".into()));
    }
    let params = v.get("parameter").and_then(Value::as_array).cloned().unwrap_or_default();
    let find = |name: &str| params.iter().find(|p| p.get("name").and_then(Value::as_str) == Some(name));
    let status = match find("status")
        .and_then(|p| p.get("valueCode").or_else(|| p.get("valueString")))
        .and_then(Value::as_str)
    {
        Some("completed") => CallbackStatus::Completed,
        Some("failed") => CallbackStatus::Failed,
        Some("cancelled") => CallbackStatus::Cancelled,
        other => {
            return Err(CallbackError::Malformed(format!("status must be completed|failed|cancelled, got {other:?}")))
        }
    };
    let result_url = find("resultUrl")
        .and_then(|p| p.get("valueUrl").or_else(|| p.get("valueUri")).or_else(|| p.get("valueString")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let outcome = params
        .iter()
        .find(|p| p.pointer("/resource/resourceType").and_then(Value::as_str) == Some("OperationOutcome"))
        .and_then(|p| p.get("resource").cloned());
    Ok(CallbackPayload { status, result_url, outcome })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"resourceType":"Parameters","parameter":[{"name":"status","valueCode":"completed"},{"name":"resultUrl","valueUrl":"https://fhir.example.com/whatever/path/1ab7162f-result"}]}"#;

    // protocol G2, G3: seed 003's example payload, signed and verified
    #[test]
    fn verify_and_parse() {
        let sig = sign_callback(BODY, b"s3cret");
        let p = verify_callback(BODY, Some(&sig), b"s3cret").unwrap();
        assert_eq!(p.status, CallbackStatus::Completed);
        assert_eq!(p.result_url.as_deref(), Some("https://fhir.example.com/whatever/path/1ab7162f-result"));
        let bare = sig.trim_start_matches("sha256=");
        assert!(verify_callback(BODY, Some(bare), b"s3cret").is_ok());
    }

    #[test]
    fn rejects_bad_signatures_and_bodies() {
        let sig = sign_callback(BODY, b"s3cret");
        assert_eq!(verify_callback(BODY, Some(&sig), b"other"), Err(CallbackError::BadSignature));
        assert_eq!(verify_callback(BODY, None, b"s3cret"), Err(CallbackError::BadSignature));
        assert_eq!(verify_callback(BODY, Some("sha256=zz"), b"s3cret"), Err(CallbackError::BadSignature));
        let mut tampered = BODY.to_vec();
        tampered[40] ^= 1;
        assert_eq!(verify_callback(&tampered, Some(&sig), b"s3cret"), Err(CallbackError::BadSignature));
        assert!(matches!(parse_callback(b"{}"), Err(CallbackError::Malformed(_))));
        assert!(matches!(
            parse_callback(br#"{"resourceType":"Parameters","parameter":[{"name":"status","valueCode":"weird"}]}"#),
            Err(CallbackError::Malformed(_))
        ));
    }

    #[test]
    fn failed_with_outcome() {
        let p = parse_callback(br#"{"resourceType":"Parameters","parameter":[{"name":"status","valueCode":"failed"},{"name":"outcome","resource":{"resourceType":"OperationOutcome","issue":[]}}]}"#).unwrap();
        assert_eq!(p.status, CallbackStatus::Failed);
        assert!(p.outcome.is_some());
    }
}
