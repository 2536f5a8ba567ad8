//! Tests of the token session: discovery, the assertion, the client secret,
//! the token answer, retries and what is never shown.

use super::discovery::OAUTH_URIS;
use super::*;
use crate::http::{Method, Request, Response};
use crate::retry::RetryPolicy;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

const NOW: u64 = 1_780_000_000_000;

fn config(token_url: Option<&str>) -> BackendServices {
    BackendServices {
        client_id: "client-1".into(),
        scope: "system/*.rs".into(),
        token_url: token_url.map(str::to_owned),
        alg: SigningAlg::ES384,
        kid: Some("k1".into()),
        jku: None,
        client_secret: None,
    }
}

fn send(s: &mut TokenSession, now: u64) -> Request {
    match s.next(now).unwrap() {
        AuthStep::Send { request } => request,
        other => panic!("expected Send, got {other:?}"),
    }
}

fn decode(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Signs with a fake signature and returns the assertion's (header, claims).
fn sign(s: &mut TokenSession, now: u64) -> (Value, Value) {
    let AuthStep::Sign { signing_input, alg, kid } = s.next(now).unwrap() else { panic!("expected Sign") };
    assert_eq!((alg, kid.as_deref()), (SigningAlg::ES384, Some("k1")));
    let mut parts = signing_input.split('.');
    let (h, c) = (decode(parts.next().unwrap()), decode(parts.next().unwrap()));
    s.signed(&[7u8; 96]).unwrap();
    (h, c)
}

fn token_response(expires_in: u64) -> Response {
    Response::new(200).with_body(
        json!({"access_token": "secret-token", "token_type": "bearer", "expires_in": expires_in, "scope": "system/Patient.rs"})
            .to_string(),
    )
}

// protocol J1: the token endpoint from .well-known/smart-configuration
#[test]
fn discovery_from_smart_configuration() {
    let mut s = TokenSession::new("https://h/fhir", config(None), 1).unwrap();
    let r = send(&mut s, NOW);
    assert_eq!((r.url.as_str(), r.auth), ("https://h/fhir/.well-known/smart-configuration", false));
    let body = json!({"token_endpoint": "https://auth.h/token"}).to_string();
    s.handle_response(r.id, &Response::new(200).with_body(body), NOW).unwrap();
    assert_eq!(s.token_url(), Some("https://auth.h/token"));
    assert!(matches!(s.next(NOW).unwrap(), AuthStep::Sign { .. }));
}

// protocol J1: falling back to the CapabilityStatement's oauth-uris extension
#[test]
fn discovery_falls_back_to_the_capability_statement() {
    let mut s = TokenSession::new("https://h/fhir", config(None), 1).unwrap();
    let r = send(&mut s, NOW);
    s.handle_response(r.id, &Response::new(404), NOW).unwrap();
    let r = send(&mut s, NOW);
    assert_eq!(r.url, "https://h/fhir/metadata");
    let cs = json!({"resourceType": "CapabilityStatement", "rest": [{"security": {"extension": [{
        "url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": "https://h/auth/token"}]}]}}]});
    s.handle_response(r.id, &Response::new(200).with_body(cs.to_string()), NOW).unwrap();
    assert_eq!(s.token_url(), Some("https://h/auth/token"));
    // Neither: a clear error that says what to configure.
    let mut s = TokenSession::new("https://h/fhir", config(None), 1).unwrap();
    let r = send(&mut s, NOW);
    s.handle_response(r.id, &Response::new(404), NOW).unwrap();
    let r = send(&mut s, NOW);
    let e = s.handle_response(r.id, &Response::new(200).with_body("{}"), NOW).unwrap_err();
    assert!(e.message.contains("configure tokenUrl"), "{e}");
}

// protocol J2, J3: the assertion's claims and the token request
#[test]
fn assertion_and_token_request() {
    let mut s = TokenSession::new("https://h/fhir", config(Some("https://h/auth/token")), 42).unwrap();
    let (h, c) = sign(&mut s, NOW);
    assert_eq!(h, json!({"alg": "ES384", "typ": "JWT", "kid": "k1"}));
    assert_eq!((c["iss"].as_str(), c["sub"].as_str()), (Some("client-1"), Some("client-1")));
    assert_eq!(c["aud"], "https://h/auth/token");
    let exp = c["exp"].as_u64().unwrap();
    assert!(exp > NOW / 1000 && exp <= NOW / 1000 + 300, "exp at most 5 minutes ahead");
    let r = send(&mut s, NOW);
    assert_eq!((r.method, r.url.as_str(), r.auth), (Method::Post, "https://h/auth/token", false));
    assert_eq!(r.header("Content-Type"), Some("application/x-www-form-urlencoded"));
    let form: Vec<(String, String)> =
        url::form_urlencoded::parse(r.body.as_deref().unwrap().as_bytes()).into_owned().collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("grant_type"), Some("client_credentials"));
    assert_eq!(get("client_assertion_type"), Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
    assert_eq!(get("scope"), Some("system/*.rs"));
    assert_eq!(get("client_assertion").unwrap().split('.').count(), 3);
    s.handle_response(r.id, &token_response(300), NOW).unwrap();
    assert_eq!(s.next(NOW).unwrap(), AuthStep::Ready);
    assert_eq!(s.token(NOW), Some("secret-token"));
    assert_eq!(s.granted_scope(), Some("system/Patient.rs"), "a narrower scope is surfaced (J4)");
}

// protocol J5: a new token before expiry (with a margin) and after a 401; never the same jti
#[test]
fn renewal_before_expiry_and_after_401() {
    let mut s = TokenSession::new("https://h/fhir", config(Some("https://h/auth/token")), 42).unwrap();
    let (_, first) = sign(&mut s, NOW);
    let r = send(&mut s, NOW);
    s.handle_response(r.id, &token_response(60), NOW).unwrap();
    assert!(s.token(NOW + 53_000).is_some());
    assert!(s.token(NOW + 54_001).is_none(), "10 % margin of a 60 s token");
    let (_, second) = sign(&mut s, NOW + 54_001);
    assert_ne!(first["jti"], second["jti"]);
    let r = send(&mut s, NOW + 54_001);
    s.handle_response(r.id, &token_response(60), NOW + 54_001).unwrap();
    s.invalidate();
    let (_, third) = sign(&mut s, NOW + 55_000);
    assert_ne!(second["jti"], third["jti"]);
}

// protocol J4: errors are typed, with the server's error and description; skew is named
#[test]
fn refusals_carry_the_server_words() {
    let refuse = |body: Value, status: u16| {
        let mut s = TokenSession::new("https://h/fhir", config(Some("https://h/auth/token")), 1).unwrap();
        sign(&mut s, NOW);
        let r = send(&mut s, NOW);
        let e = s.handle_response(r.id, &Response::new(status).with_body(body.to_string()), NOW).unwrap_err();
        assert_eq!(s.next(NOW).unwrap_err(), e, "the session stays failed");
        e
    };
    let e = refuse(json!({"error": "invalid_client", "error_description": "kid k1 is not a key of client-1"}), 401);
    assert_eq!((e.error.as_deref(), e.http_status, e.code()), (Some("invalid_client"), Some(401), "auth"));
    assert!(e.to_string().contains("kid k1 is not a key of client-1") && e.message.contains("check the client id"));
    let e = refuse(json!({"error": "invalid_grant", "error_description": "assertion expired 598 s ago"}), 400);
    assert!(e.message.contains("client clock"), "{e}");
    let e = refuse(json!({"error": "invalid_client", "error_description": "iat is 600 s in the future"}), 401);
    assert!(e.message.contains("client clock"), "{e}");
    // Words, not substrings: nothing here is about time.
    let e = refuse(json!({"error": "invalid_client", "error_description": "unexpected kid k9 associated"}), 401);
    assert!(!e.message.contains("clock") && e.message.contains("check the client id"), "{e}");
}

// protocol J5: a token endpoint that is down is retried within the budget, then fails
#[test]
fn a_failing_token_endpoint_is_retried() {
    let mut s = TokenSession::new("https://h/fhir", config(Some("https://h/auth/token")), 1)
        .unwrap()
        .with_retry(RetryPolicy { max_retries: 2, jitter_percent: 0, ..RetryPolicy::default() });
    let mut now = NOW;
    for attempt in 0..3 {
        sign(&mut s, now);
        let r = send(&mut s, now);
        let res = s.handle_response(r.id, &Response::new(503), now);
        if attempt < 2 {
            res.unwrap();
            let AuthStep::Wait { until_ms, .. } = s.next(now).unwrap() else { panic!() };
            now = until_ms;
        } else {
            assert!(res.unwrap_err().message.contains("503"));
        }
    }
    // protocol J5: an outage is not a refusal: the session fails until the
    // cool-down (the longest backoff), then a long-lived client tries again.
    let e = s.next(now + 59_999).unwrap_err();
    assert!(e.message.contains("503"), "{e}");
    sign(&mut s, now + 60_000);
    let r = send(&mut s, now + 60_000);
    s.handle_response(r.id, &token_response(60), now + 60_000).unwrap();
    assert!(matches!(s.next(now + 60_000), Ok(AuthStep::Ready)));
}

// protocol J4: a refusal (invalid_client) stays failed: trying again cannot help
#[test]
fn a_refusal_is_not_tried_again() {
    let mut s = TokenSession::new("https://h/fhir", config(Some("https://h/auth/token")), 1).unwrap();
    sign(&mut s, NOW);
    let r = send(&mut s, NOW);
    let body = json!({"error": "invalid_client"}).to_string();
    s.handle_response(r.id, &Response::new(401).with_body(body), NOW).unwrap_err();
    assert!(s.next(NOW + 86_400_000).is_err(), "a day later, still failed");
}

// protocol J3 (client_secret_basic): no assertion, no Sign step; Basic of the
// form-urlencoded id and secret; J6: the secret never in Debug, JSON or an error
#[test]
fn client_secret_basic() {
    let mut c = config(Some("https://h/auth/token"));
    c.client_id = "client 1".into();
    c.client_secret = Some(ClientSecret::new("s3cr:t/é"));
    let mut s = TokenSession::new("https://h/fhir", c.clone(), 1).unwrap();
    let r = send(&mut s, NOW);
    assert_eq!((r.method, r.url.as_str(), r.auth), (Method::Post, "https://h/auth/token", false));
    let basic = r.header("Authorization").unwrap().strip_prefix("Basic ").unwrap();
    let decoded = String::from_utf8(STANDARD.decode(basic).unwrap()).unwrap();
    assert_eq!(decoded, "client+1:s3cr%3At%2F%C3%A9", "RFC 6749 §2.3.1: form-urlencoded, then Basic");
    let form: Vec<(String, String)> =
        url::form_urlencoded::parse(r.body.as_deref().unwrap().as_bytes()).into_owned().collect();
    assert_eq!(form, vec![("grant_type".into(), "client_credentials".into()), ("scope".into(), "system/*.rs".into())]);
    let refused = json!({"error": "invalid_client", "error_description": "wrong client secret for client 1"});
    let e = s.handle_response(r.id, &Response::new(401).with_body(refused.to_string()), NOW).unwrap_err();
    assert!(e.message.contains("client secret") && !e.message.contains("clock"), "{e}");
    let shown = format!("{s:?} {c:?} {e} {e:?} {}", serde_json::to_string(&c).unwrap());
    assert!(!shown.contains("s3cr") && !shown.contains(basic), "{shown}");
    // The same JSON shape as a key registration, with clientSecret (read, never written).
    let read: BackendServices =
        serde_json::from_value(json!({"clientId": "c", "scope": "system/*.rs", "clientSecret": "x"})).unwrap();
    assert_eq!(read.client_secret, Some(ClientSecret::new("x")));
    assert!(TokenSession::new(
        "https://h/fhir",
        BackendServices { client_secret: Some(ClientSecret::new("")), ..read },
        1
    )
    .is_err());
}

// protocol J6: the token never shows in Debug output
#[test]
fn the_token_stays_secret() {
    let mut s = TokenSession::new("https://h/fhir", config(Some("https://h/auth/token")), 1).unwrap();
    sign(&mut s, NOW);
    let r = send(&mut s, NOW);
    s.handle_response(r.id, &token_response(300), NOW).unwrap();
    let shown = format!("{s:?}");
    assert!(!shown.contains("secret-token") && !shown.contains("eyJ"), "{shown}");
}
