//! Finding the token endpoint (J1): `.well-known/smart-configuration`, else
//! the CapabilityStatement's `oauth-uris` extension.

use super::session::Pending;
use super::{AuthError, AuthStep, TokenSession};
use crate::http::{Method, Request, RequestKind, Response};
use crate::outcome::{parse_body, Body};
use crate::retry::RetryPolicy;
use serde_json::Value;

/// The `oauth-uris` extension of a CapabilityStatement (J1 fallback).
pub(super) const OAUTH_URIS: &str = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";

impl TokenSession {
    /// The discovery request: the SMART configuration first, the CapabilityStatement after it had no endpoint.
    pub(super) fn discover(&mut self) -> AuthStep {
        let id = self.id();
        let request = if self.capability_next {
            self.pending = Pending::Capability(id);
            get(id, format!("{}metadata", self.base), "application/fhir+json", &self.retry)
        } else {
            self.pending = Pending::SmartConfig(id);
            get(id, format!("{}.well-known/smart-configuration", self.base), "application/json", &self.retry)
        };
        AuthStep::Send { request }
    }

    pub(super) fn found(&mut self, url: &str) -> Result<(), AuthError> {
        match crate::origin::resolve(&self.base, url) {
            Some(u) if !(self.base.starts_with("https:") && u.starts_with("http:")) => {
                self.token_url = Some(u);
                Ok(())
            }
            _ => Err(self.fail(AuthError::new(format!(
                "unusable token endpoint {url:?} (an absolute https URL is needed under an https base)"
            )))),
        }
    }
}

fn get(id: u64, url: String, accept: &str, retry: &RetryPolicy) -> Request {
    Request {
        id,
        kind: RequestKind::Auth,
        method: Method::Get,
        url,
        headers: vec![("Accept".into(), accept.into())],
        body: None,
        auth: false,
        timeout_ms: retry.request_timeout_ms,
        max_body: Some(retry.max_response_bytes),
    }
}

pub(super) fn json_field(response: &Response, key: &str) -> Option<String> {
    if response.status != 200 {
        return None;
    }
    match parse_body(&response.body) {
        Body::Json(v) => v.get(key).and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// `rest[0].security.extension[oauth-uris].extension[token].valueUri` of a CapabilityStatement.
pub(super) fn capability_token_url(response: &Response) -> Option<String> {
    if response.status != 200 {
        return None;
    }
    let Body::Json(v) = parse_body(&response.body) else { return None };
    v.get("rest")?.as_array()?.iter().find_map(|rest| {
        rest.pointer("/security/extension")?.as_array()?.iter().find_map(|ext| {
            if ext.get("url").and_then(Value::as_str) != Some(OAUTH_URIS) {
                return None;
            }
            ext.get("extension")?.as_array()?.iter().find_map(|e| {
                (e.get("url").and_then(Value::as_str) == Some("token"))
                    .then(|| e.get("valueUri").or_else(|| e.get("valueUrl")).and_then(Value::as_str).map(str::to_owned))
                    .flatten()
            })
        })
    })
}
