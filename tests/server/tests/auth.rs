//! The SMART Backend Services token endpoint, checked as a strict server checks it (issue 12,
//! protocol J1–J5).
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// (alg, kid, private key file) of the test keys.
type Key = (Algorithm, &'static str, &'static str);
const ES: Key = (Algorithm::ES384, "test-es384", "es384-private.pem");
const RS: Key = (Algorithm::RS384, "test-rs384", "rs384-private.pem");

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn now() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}-{}", now(), N.fetch_add(1, Ordering::Relaxed))
}

/// A server with `client-1` = both test keys (`--jwks`), plus `f`'s changes.
async fn server(f: impl FnOnce(&mut fhir_async_testserver::Config)) -> Srv {
    start(|c| {
        c.jwks = Some(fixture("jwks.json"));
        f(c);
    })
    .await
}

/// Good claims for `client` at the server's token endpoint.
fn claims(s: &Srv, client: &str) -> Value {
    json!({"iss": client, "sub": client, "aud": s.url("/auth/token"), "exp": now() + 240, "jti": unique(), "iat": now()})
}

fn sign_with(key: Key, pem: &str, claims: &Value, edit: impl FnOnce(&mut Header)) -> String {
    let (alg, kid, _) = key;
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    edit(&mut h);
    let bytes = std::fs::read(fixture(pem)).unwrap();
    let k = match alg {
        Algorithm::ES384 => EncodingKey::from_ec_pem(&bytes).unwrap(),
        _ => EncodingKey::from_rsa_pem(&bytes).unwrap(),
    };
    jsonwebtoken::encode(&h, claims, &k).unwrap()
}

fn sign(key: Key, claims: &Value) -> String {
    sign_with(key, key.2, claims, |_| {})
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// POSTs a form to `path` (a token endpoint path) with optional extra headers.
async fn post(s: &Srv, path: &str, body: String, extra: &[(&str, &str)]) -> Resp {
    let mut h = vec![("content-type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(extra);
    s.req(Method::POST, &s.url(path), &h, Some(body)).await
}

/// A token request with this assertion and scope.
async fn request(s: &Srv, jwt: &str, scope: &str) -> Resp {
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("scope", scope),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", jwt),
    ]);
    post(s, "/auth/token", body, &[]).await
}

/// Asserts an RFC 6749 §5.2 error, and that the description contains `desc`.
fn oauth_err(r: &Resp, status: u16, code: &str, desc: &str) {
    assert_eq!(r.code(), status, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.h("content-type").as_deref(), Some("application/json"));
    assert_eq!(r.h("cache-control").as_deref(), Some("no-store"));
    let v = r.json();
    assert_eq!(v["error"], code, "{v}");
    let d = v["error_description"].as_str().unwrap();
    assert!(d.contains(desc), "description {d:?} should contain {desc:?}");
    if status == 401 {
        assert!(r.h("www-authenticate").is_some(), "401 without WWW-Authenticate");
    }
}

/// Asserts a 401 `invalid_client` naming `desc` for these claims signed by `key`.
async fn refused(s: &Srv, key: Key, claims: &Value, desc: &str) {
    oauth_err(&request(s, &sign(key, claims), "system/*.read").await, 401, "invalid_client", desc);
}

async fn export_with(s: &Srv, token: &str) -> Resp {
    let auth = format!("Bearer {token}");
    s.req(Method::GET, &s.url("/bulk/fhir/$export"), &[("prefer", "respond-async"), ("authorization", &auth)], None)
        .await
}

// protocol J1: every dialect base advertises the token endpoint, in smart-configuration and in
// the CapabilityStatement's oauth-uris; `no-smart-config` leaves only the latter.
#[tokio::test]
async fn discovery_smart_configuration_and_oauth_uris() {
    let s = server(|_| {}).await;
    let bases = s.get(&s.url("/")).await.json()["bases"].clone();
    let token = s.url("/auth/token");
    for (name, base) in bases.as_object().unwrap() {
        let base = base.as_str().unwrap();
        let sc = s.get(&format!("{base}/.well-known/smart-configuration")).await;
        assert_eq!(sc.code(), 200, "{name}");
        let sc = sc.json();
        assert_eq!(sc["token_endpoint"], token, "{name}");
        assert_eq!(sc["token_endpoint_auth_methods_supported"], json!(["private_key_jwt", "client_secret_basic"]));
        assert_eq!(sc["token_endpoint_auth_signing_alg_values_supported"], json!(["RS384", "ES384"]));
        assert_eq!(sc["grant_types_supported"], json!(["client_credentials"]));
        assert_eq!(sc["scopes_supported"], json!(["system/*.read", "system/*.rs"]));
        let cs = s.get(&format!("{base}/metadata")).await.json();
        let ext = &cs["rest"][0]["security"]["extension"][0];
        assert_eq!(ext["url"], "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "{name}");
        assert_eq!(ext["extension"][0], json!({"url": "token", "valueUri": token}), "{name}");
    }
    // Under a fault prefix the token endpoint carries the prefix (its faults apply to it).
    let sc = s.get(&s.url("/_f/token503=1/bulk/fhir/.well-known/smart-configuration")).await.json();
    assert_eq!(sc["token_endpoint"], s.url("/_f/token503=1/auth/token"));
    // The fallback is exercised: no smart-configuration, metadata still names the token URL.
    let r = s.get(&s.url("/_f/no-smart-config/bulk/fhir/.well-known/smart-configuration")).await;
    assert_oo(&r, 404, "not-found");
    let cs = s.get(&s.url("/_f/no-smart-config/bulk/fhir/metadata")).await.json();
    assert_eq!(
        cs["rest"][0]["security"]["extension"][0]["extension"][0]["valueUri"],
        s.url("/_f/no-smart-config/auth/token")
    );
    let s2 = server(|c| c.faults = "no-smart-config".into()).await;
    assert_eq!(s2.get(&s2.url("/r5/fhir/.well-known/smart-configuration")).await.code(), 404);
}

// protocol J2, J4: RS384 and ES384 assertions get an opaque random token that works.
#[tokio::test]
async fn rs384_and_es384_assertions_get_tokens() {
    let s = server(|c| c.token_ttl = 120).await;
    let mut seen = Vec::new();
    for key in [ES, RS] {
        let jwt = sign(key, &claims(&s, "client-1"));
        let r = request(&s, &jwt, "system/*.read").await;
        assert_eq!(r.code(), 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.h("cache-control").as_deref(), Some("no-store"));
        let t = r.json();
        assert_eq!(
            (t["token_type"].as_str(), t["expires_in"].as_u64(), t["scope"].as_str()),
            (Some("bearer"), Some(120), Some("system/*.read"))
        );
        let token = t["access_token"].as_str().unwrap().to_string();
        assert_eq!(token.len(), 64, "32 random bytes, hex");
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!jwt.contains(&token) && !token.contains('.'), "not the assertion");
        assert_eq!(export_with(&s, &token).await.code(), 202);
        seen.push(token);
    }
    assert_ne!(seen[0], seen[1]);
    assert_eq!(export_with(&s, "0123").await.code(), 401);
}

// protocol J2: the JOSE header: alg, typ, kid (a key of that client), jku (allowlist).
#[tokio::test]
async fn assertion_header_checks() {
    let s = server(|c| {
        c.clients = vec![format!("rs-only={}", fixture("jwks-rs384.json").display())];
        c.client_jkus = vec!["client-1=https://keys.example/jwks.json".into()];
    })
    .await;
    // alg: HS384 with any secret.
    let c = claims(&s, "client-1");
    let hs = jsonwebtoken::encode(&Header::new(Algorithm::HS384), &c, &EncodingKey::from_secret(b"x")).unwrap();
    oauth_err(
        &request(&s, &hs, "system/*.read").await,
        401,
        "invalid_client",
        "alg HS384 is not allowed; use RS384 or ES384",
    );
    for key in [ES, RS] {
        // typ other than JWT
        let jwt = sign_with(key, key.2, &claims(&s, "client-1"), |h| h.typ = Some("at+jwt".into()));
        oauth_err(&request(&s, &jwt, "system/*.read").await, 401, "invalid_client", "typ at+jwt must be JWT");
        // typ absent is fine
        let jwt = sign_with(key, key.2, &claims(&s, "client-1"), |h| h.typ = None);
        assert_eq!(request(&s, &jwt, "system/*.read").await.code(), 200);
        // no kid
        let jwt = sign_with(key, key.2, &claims(&s, "client-1"), |h| h.kid = None);
        oauth_err(&request(&s, &jwt, "system/*.read").await, 401, "invalid_client", "assertion header has no kid");
        // a kid the client does not have
        let jwt = sign_with(key, key.2, &claims(&s, "client-1"), |h| h.kid = Some("k2".into()));
        oauth_err(
            &request(&s, &jwt, "system/*.read").await,
            401,
            "invalid_client",
            "kid k2 is not a key of client client-1",
        );
        // jku: on the allowlist → accepted (keys still from the registered JWKS); elsewhere → refused
        let jwt =
            sign_with(key, key.2, &claims(&s, "client-1"), |h| h.jku = Some("https://keys.example/jwks.json".into()));
        assert_eq!(request(&s, &jwt, "system/*.read").await.code(), 200);
        let jwt =
            sign_with(key, key.2, &claims(&s, "client-1"), |h| h.jku = Some("https://evil.example/jwks.json".into()));
        oauth_err(
            &request(&s, &jwt, "system/*.read").await,
            401,
            "invalid_client",
            "jku https://evil.example/jwks.json is not on the allowlist of client client-1",
        );
    }
    // the ES key is not a key of rs-only
    refused(&s, ES, &claims(&s, "rs-only"), "kid test-es384 is not a key of client rs-only").await;
    assert_eq!(request(&s, &sign(RS, &claims(&s, "rs-only")), "system/*.rs").await.code(), 200);
    // a kid naming an RS384 key on an ES384 assertion
    let jwt = sign_with(ES, ES.2, &claims(&s, "client-1"), |h| h.kid = Some("test-rs384".into()));
    oauth_err(
        &request(&s, &jwt, "system/*.read").await,
        401,
        "invalid_client",
        "kid test-rs384 is an RS384 key; the assertion header says alg ES384",
    );
    // signed by another private key under the right kid
    let jwt = sign_with(ES, "other-es384-private.pem", &claims(&s, "client-1"), |_| {});
    oauth_err(
        &request(&s, &jwt, "system/*.read").await,
        401,
        "invalid_client",
        "assertion signature does not verify with key test-es384 of client client-1",
    );
    // not a JWT at all
    oauth_err(&request(&s, "not-a-jwt", "system/*.read").await, 401, "invalid_client", "client_assertion is not a JWT");
}

// protocol J2: the claims: iss = sub = a registered client id, aud = the token URL exactly.
#[tokio::test]
async fn assertion_identity_and_audience() {
    let s = server(|_| {}).await;
    for key in [ES, RS] {
        let mut c = claims(&s, "client-1");
        c["sub"] = json!("someone-else");
        refused(&s, key, &c, "assertion sub someone-else must equal iss client-1").await;
        let mut c = claims(&s, "client-1");
        c.as_object_mut().unwrap().remove("iss");
        refused(&s, key, &c, "assertion has no iss").await;
        refused(&s, key, &claims(&s, "client-9"), "unknown client client-9").await;
        let want = format!("aud must be {}", s.url("/auth/token"));
        for aud in [
            json!(s.url("/auth/token/")),
            json!("http://localhost/auth/token"),
            json!(s.url("/bulk/fhir")),
            json!(null),
        ] {
            let mut c = claims(&s, "client-1");
            c["aud"] = aud;
            refused(&s, key, &c, &want).await;
        }
        let mut c = claims(&s, "client-1");
        c["aud"] = json!(["https://other.example", s.url("/auth/token")]);
        assert_eq!(request(&s, &sign(key, &c), "system/*.read").await.code(), 200, "aud as an array holding the URL");
    }
    // Under a fault prefix, aud is the prefixed token URL the client posted to.
    let mut c = claims(&s, "client-1");
    c["aud"] = json!(s.url("/_f/token-ttl=7/auth/token"));
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("scope", "system/*.rs"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &sign(ES, &c)),
    ]);
    let r = post(&s, "/_f/token-ttl=7/auth/token", body, &[]).await;
    assert_eq!((r.code(), r.json()["expires_in"].as_u64()), (200, Some(7)));
}

// protocol J2, J5: exp present, not past (60 s leeway), at most 5 minutes ahead (+ leeway);
// iat/nbf not in the future; a skewed clock is named in the description.
#[tokio::test]
async fn assertion_time_window() {
    let s = server(|_| {}).await;
    for key in [ES, RS] {
        let with = |name: &str, v: Value| {
            let mut c = claims(&s, "client-1");
            c[name] = v;
            c
        };
        let mut c = claims(&s, "client-1");
        c.as_object_mut().unwrap().remove("exp");
        refused(&s, key, &c, "assertion has no exp").await;
        // A clock 10 minutes slow: expired 598 s ago.
        let c = with("exp", json!(now() - 598));
        let r = request(&s, &sign(key, &c), "system/*.read").await;
        oauth_err(&r, 401, "invalid_client", "assertion expired ");
        let d = r.json()["error_description"].as_str().unwrap().to_string();
        assert!(d.contains("s ago (check the client clock)") && (d.contains("598 s") || d.contains("599 s")), "{d}");
        // A clock 10 minutes fast: exp 612 s ahead.
        let r = request(&s, &sign(key, &with("exp", json!(now() + 612))), "system/*.read").await;
        oauth_err(&r, 401, "invalid_client", "s in the future; at most 300 s allowed (check the client clock)");
        let d = r.json()["error_description"].as_str().unwrap().to_string();
        assert!(d.contains("exp is 612 s") || d.contains("exp is 611 s"), "{d}");
        refused(&s, key, &with("exp", json!("tomorrow")), "exp must be a NumericDate").await;
        // Within the leeway both ways: accepted.
        for exp in [now() - 30, now() + 300, now() + 340] {
            assert_eq!(
                request(&s, &sign(key, &with("exp", json!(exp))), "system/*.read").await.code(),
                200,
                "exp {exp}"
            );
        }
        refused(&s, key, &with("exp", json!(now() + 420)), "at most 300 s allowed").await;
        for name in ["iat", "nbf"] {
            let r = request(&s, &sign(key, &with(name, json!(now() + 600))), "system/*.read").await;
            oauth_err(&r, 401, "invalid_client", "s in the future (check the client clock)");
            let d = r.json()["error_description"].as_str().unwrap().to_string();
            assert!(
                d.starts_with(&format!("assertion {name} is 600 s"))
                    || d.starts_with(&format!("assertion {name} is 599 s")),
                "{d}"
            );
        }
        assert_eq!(request(&s, &sign(key, &with("nbf", json!(now() + 30))), "system/*.read").await.code(), 200);
    }
}

// protocol J2, J5: jti present and never reused by a client while its assertion could be valid.
#[tokio::test]
async fn jti_required_and_never_replayed() {
    let s = server(|c| c.clients = vec![format!("other={}", fixture("jwks.json").display())]).await;
    for key in [ES, RS] {
        let mut c = claims(&s, "client-1");
        c.as_object_mut().unwrap().remove("jti");
        refused(&s, key, &c, "assertion has no jti").await;
        let c = claims(&s, "client-1");
        assert_eq!(request(&s, &sign(key, &c), "system/*.read").await.code(), 200);
        let jti = c["jti"].as_str().unwrap().to_string();
        // The same jti again (even in a freshly signed assertion): replayed.
        refused(&s, key, &c, &format!("jti replayed: client client-1 already used jti {jti}")).await;
        // Another client may use the same jti.
        let mut o = claims(&s, "other");
        o["jti"] = json!(jti);
        assert_eq!(request(&s, &sign(key, &o), "system/*.read").await.code(), 200);
    }
}

// protocol J3: the form: content type, grant_type, client_assertion_type, scope, one
// authentication method, no repeated parameters.
#[tokio::test]
async fn token_request_form() {
    let s = server(|c| c.client_secrets = vec!["client-1=s3cret".into()]).await;
    let jwt = sign(ES, &claims(&s, "client-1"));
    let full = |skip: &str, over: &[(&'static str, &str)]| {
        let mut p: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("scope", "system/*.read"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &jwt),
        ];
        p.retain(|(k, _)| *k != skip);
        for (k, v) in over {
            p.retain(|(pk, _)| pk != k);
            p.push((k, v));
        }
        form(&p)
    };
    let r =
        s.req(Method::POST, &s.url("/auth/token"), &[("content-type", "application/json")], Some(full("", &[]))).await;
    oauth_err(&r, 400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded");
    oauth_err(
        &post(&s, "/auth/token", full("grant_type", &[]), &[]).await,
        400,
        "invalid_request",
        "grant_type is required",
    );
    oauth_err(
        &post(&s, "/auth/token", full("", &[("grant_type", "password")]), &[]).await,
        400,
        "unsupported_grant_type",
        "grant_type password is not supported",
    );
    oauth_err(&post(&s, "/auth/token", full("scope", &[]), &[]).await, 400, "invalid_request", "scope is required");
    oauth_err(
        &post(&s, "/auth/token", full("client_assertion_type", &[]), &[]).await,
        400,
        "invalid_request",
        "client_assertion_type is required",
    );
    oauth_err(
        &post(&s, "/auth/token", full("", &[("client_assertion_type", "jwt")]), &[]).await,
        400,
        "invalid_request",
        "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    );
    let r = post(&s, "/auth/token", full("client_assertion", &[]), &[]).await;
    oauth_err(&r, 401, "invalid_client", "no client authentication");
    assert_eq!(r.h("www-authenticate").as_deref(), Some("Bearer realm=\"fhir-async-testserver\""));
    let twice = format!("{}&scope=system%2F*.rs", full("", &[]));
    oauth_err(
        &post(&s, "/auth/token", twice, &[]).await,
        400,
        "invalid_request",
        "parameter scope is given more than once",
    );
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("client-1:s3cret"));
    oauth_err(
        &post(&s, "/auth/token", full("", &[]), &[("authorization", &basic)]).await,
        400,
        "invalid_request",
        "use one client authentication method",
    );
    let post_secret = form(&[
        ("grant_type", "client_credentials"),
        ("scope", "system/*.read"),
        ("client_id", "client-1"),
        ("client_secret", "s3cret"),
    ]);
    oauth_err(
        &post(&s, "/auth/token", post_secret, &[]).await,
        401,
        "invalid_client",
        "client_secret_post is not supported",
    );
    oauth_err(
        &post(&s, "/auth/token", full("", &[("client_id", "client-2")]), &[]).await,
        401,
        "invalid_client",
        "client_id client-2 does not match the assertion iss client-1",
    );
    assert_eq!(s.get(&s.url("/auth/token")).await.code(), 405);
    // A well-formed request works (with a fresh jti: the client_id check above came after the
    // assertion was accepted, so that jti is spent).
    assert_eq!(request(&s, &sign(ES, &claims(&s, "client-1")), "system/*.read").await.code(), 200);
}

// protocol J3, J4: v1 and v2 scopes; a client limited by --client-scope gets the narrower
// scope; anything else is invalid_scope.
#[tokio::test]
async fn scopes_v1_v2_and_narrowing() {
    let s = server(|c| {
        c.clients = vec![format!("narrow={}", fixture("jwks.json").display())];
        c.client_scopes = vec!["narrow=system/Patient.read".into()];
    })
    .await;
    for key in [ES, RS] {
        for scope in [
            "system/*.read",
            "system/Patient.read",
            "system/*.rs",
            "system/Patient.rs",
            "system/Patient.rs system/Observation.rs",
        ] {
            let r = request(&s, &sign(key, &claims(&s, "client-1")), scope).await;
            assert_eq!((r.code(), r.json()["scope"].as_str()), (200, Some(scope)));
        }
        for (scope, desc) in [
            ("system/*.sr", "is neither v1 (read, write, *) nor v2"),
            ("user/*.read", "backend services grant only system/ scopes, not user/"),
            ("launch openid", "scope launch is not a system/ resource scope"),
            ("system/patient.read", "patient is not a resource type or *"),
        ] {
            oauth_err(&request(&s, &sign(key, &claims(&s, "client-1")), scope).await, 400, "invalid_scope", desc);
        }
        for (asked, granted) in [
            ("system/*.read", "system/Patient.read"),
            ("system/*.rs", "system/Patient.rs"),
            ("system/Patient.read system/Observation.read", "system/Patient.read"),
        ] {
            let r = request(&s, &sign(key, &claims(&s, "narrow")), asked).await;
            assert_eq!((r.code(), r.json()["scope"].as_str()), (200, Some(granted)), "{asked}");
        }
        let r = request(&s, &sign(key, &claims(&s, "narrow")), "system/Observation.read").await;
        oauth_err(
            &r,
            400,
            "invalid_scope",
            "client narrow may not have any of the requested scopes (allowed: system/Patient.read)",
        );
    }
}

// protocol J3: client_secret_basic (id and secret form-urlencoded, then base64).
#[tokio::test]
async fn client_secret_basic() {
    let s = server(|c| c.client_secrets = vec!["sym client=p@ss:w/rd".into(), "client-1=s1".into()]).await;
    let enc = |id: &str, secret: &str| {
        let e = |x: &str| form_urlencoded::byte_serialize(x.as_bytes()).collect::<String>();
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", e(id), e(secret))))
    };
    let body = form(&[("grant_type", "client_credentials"), ("scope", "system/*.rs")]);
    let r = post(&s, "/auth/token", body.clone(), &[("authorization", &enc("sym client", "p@ss:w/rd"))]).await;
    assert_eq!(r.code(), 200, "{}", String::from_utf8_lossy(&r.body));
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(export_with(&s, &token).await.code(), 202);
    let r = post(&s, "/auth/token", body.clone(), &[("authorization", &enc("sym client", "wrong"))]).await;
    oauth_err(&r, 401, "invalid_client", "wrong client secret for client sym client");
    assert_eq!(r.h("www-authenticate").as_deref(), Some("Basic realm=\"fhir-async-testserver\""));
    oauth_err(
        &post(&s, "/auth/token", body.clone(), &[("authorization", &enc("nobody", "x"))]).await,
        401,
        "invalid_client",
        "unknown client nobody",
    );
    oauth_err(
        &post(&s, "/auth/token", body.clone(), &[("authorization", "Basic %%%")]).await,
        401,
        "invalid_client",
        "not base64",
    );
    // client-1 has both keys (--jwks) and a secret: either method works.
    assert_eq!(post(&s, "/auth/token", body.clone(), &[("authorization", &enc("client-1", "s1"))]).await.code(), 200);
    assert_eq!(request(&s, &sign(RS, &claims(&s, "client-1")), "system/*.rs").await.code(), 200);
    // A secret-only client cannot sign assertions.
    refused(&s, ES, &claims(&s, "sym client"), "client sym client has no public keys registered").await;
    // The secret is never kept in the stats.
    let st = s.stats().await.to_string();
    let b = enc("client-1", "s1");
    assert!(!st.contains(&b[6..]) && st.contains("[redacted]"), "{st}");
}

// protocol J4, J5: short-lived tokens (--token-ttl 2) expire; the expired token gets 401 with
// the invalid_token challenge and an OperationOutcome saying "token expired".
#[tokio::test]
async fn short_lived_tokens_expire() {
    let s = server(|c| c.token_ttl = 2).await;
    let t = request(&s, &sign(RS, &claims(&s, "client-1")), "system/*.read").await.json();
    assert_eq!(t["expires_in"], 2);
    let token = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(export_with(&s, &token).await.code(), 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = export_with(&s, &token).await;
        if r.code() != 202 {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "token did not expire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let oo = assert_oo(&r, 401, "login");
    assert_eq!(
        r.h("www-authenticate").as_deref(),
        Some("Bearer error=\"invalid_token\", error_description=\"The access token expired\"")
    );
    assert!(oo["issue"][0]["details"]["text"].as_str().unwrap().contains("token expired"), "{oo}");
    // A fresh token (new jti) works again.
    let t = request(&s, &sign(RS, &claims(&s, "client-1")), "system/*.read").await.json();
    assert_eq!(export_with(&s, t["access_token"].as_str().unwrap()).await.code(), 202);
}

// protocol J5: `token503=N`: the token endpoint is down for N requests, then works; counted.
#[tokio::test]
async fn token_endpoint_down_then_up_and_stats() {
    let s = server(|_| {}).await;
    let path = "/_f/token503=2/auth/token";
    let mut c = claims(&s, "client-1");
    c["aud"] = json!(s.url(path));
    let mut codes = Vec::new();
    for _ in 0..3 {
        c["jti"] = json!(unique());
        let body = form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/*.read"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &sign(ES, &c)),
        ]);
        let r = post(&s, path, body, &[]).await;
        if r.code() == 503 {
            assert_eq!(r.h("retry-after").as_deref(), Some("1"));
        }
        codes.push(r.code());
    }
    assert_eq!(codes, [503, 503, 200]);
    refused(&s, ES, &claims(&s, "nobody"), "unknown client nobody").await;
    oauth_err(&request(&s, &sign(ES, &claims(&s, "client-1")), "user/*.read").await, 400, "invalid_scope", "user/");
    let st = s.stats().await;
    assert_eq!(
        st["tokens"],
        json!({"requests": 5, "issued": 1, "unavailable": 2, "refused": {"invalid_client": 1, "invalid_scope": 1}, "issued_by_client": {"client-1": 1}})
    );
    assert_eq!(st["routes"]["auth.token"], 5);
    let text = st.to_string();
    assert!(!text.contains("eyJ"), "no assertion in the stats");
    s.req(Method::POST, &s.url("/_admin/reset"), &[], None).await;
    assert_eq!(s.stats().await["tokens"]["requests"], 0);
    // Server-wide: --faults token503=1.
    let s2 = server(|c| c.faults = "token503=1".into()).await;
    assert_eq!(request(&s2, &sign(RS, &claims(&s2, "client-1")), "system/*.read").await.code(), 503);
    assert_eq!(request(&s2, &sign(RS, &claims(&s2, "client-1")), "system/*.read").await.code(), 200);
}

// The fixed `--token` keeps working beside registered clients; bad registrations stop startup.
#[tokio::test]
async fn fixed_token_and_registration_errors() {
    let s = server(|c| c.token = Some("T".into())).await;
    assert_eq!(export_with(&s, "T").await.code(), 202);
    let t = request(&s, &sign(ES, &claims(&s, "client-1")), "system/*.read").await.json();
    assert_eq!(export_with(&s, t["access_token"].as_str().unwrap()).await.code(), 202);
    use fhir_async_testserver::Config;
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (flag, cfg) in [
        (
            "--client-scope names unknown client x",
            Config { client_scopes: v(&["x=system/*.read"]), ..Config::default() },
        ),
        ("--client takes CLIENT_ID=VALUE", Config { clients: v(&["no-equals"]), ..Config::default() }),
        ("cannot read --client", Config { clients: v(&["a=/nonexistent/jwks.json"]), ..Config::default() }),
        (
            "--client-scope c: scope user/*.read",
            Config { client_secrets: v(&["c=s"]), client_scopes: v(&["c=user/*.read"]), ..Config::default() },
        ),
    ] {
        let e = fhir_async_testserver::serve(cfg).await.expect_err("refused");
        assert!(e.contains(flag), "{e}");
    }
}

// Hostile claims get a description, never a panic (no overflow on extreme times).
#[tokio::test]
async fn hostile_claims_are_refused_cleanly() {
    let s = server(|_| {}).await;
    for (name, v, desc) in [
        ("exp", json!(i64::MIN), "assertion expired"),
        ("exp", json!(i64::MAX), "at most 300 s allowed"),
        ("exp", json!(1e300), "at most 300 s allowed"),
        ("exp", json!(-1e300), "assertion expired"),
        ("iat", json!(i64::MAX), "assertion iat is"),
        ("nbf", json!(u64::MAX), "assertion nbf"),
        ("jti", json!(42), "assertion has no jti"),
        ("jti", json!(""), "assertion has no jti"),
        ("iss", json!(["client-1"]), "assertion has no iss"),
        ("aud", json!(7), "aud must be"),
    ] {
        let mut c = claims(&s, "client-1");
        c[name] = v;
        refused(&s, ES, &c, desc).await;
    }
    assert_eq!(s.get(&s.url("/")).await.json()["token_endpoint"], s.url("/auth/token"));
}
