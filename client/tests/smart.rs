//! SMART Backend Services end to end: keys from PEM and JWK, RS384 and
//! ES384, a client secret (client_secret_basic), an export that outlives
//! several short-lived tokens (protocol J).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fhir_async::{BackendServices, ExportRequest, OutcomeStatus, RetryPolicy, SigningAlg};
use fhir_async_client::{BackendServicesAuth, Client, ClientError, PrivateKey};
use fhir_async_testserver::{Config, Running};
use serde_json::{json, Value};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/server/tests/fixtures").join(name)
}

fn kid_of(alg: &str) -> String {
    let jwks: Value = serde_json::from_slice(&std::fs::read(fixture("jwks.json")).unwrap()).unwrap();
    jwks["keys"].as_array().unwrap().iter().find(|k| k["alg"] == alg).unwrap()["kid"].as_str().unwrap().to_owned()
}

/// The RS384 fixture as a private JWK (what a JWKS-based client would hold).
fn rsa_jwk() -> Value {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    let pem = std::fs::read_to_string(fixture("rs384-private.pem")).unwrap();
    let k = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap();
    let b = |n: &rsa::BigUint| URL_SAFE_NO_PAD.encode(n.to_bytes_be());
    json!({"kty": "RSA", "alg": "RS384", "kid": kid_of("RS384"), "n": b(k.n()), "e": b(k.e()), "d": b(k.d()),
           "p": b(&k.primes()[0]), "q": b(&k.primes()[1])})
}

fn ec_jwk() -> Value {
    use p384::pkcs8::DecodePrivateKey;
    let pem = std::fs::read_to_string(fixture("es384-private.pem")).unwrap();
    let k = p384::SecretKey::from_pkcs8_pem(&pem).unwrap();
    json!({"kty": "EC", "crv": "P-384", "alg": "ES384", "kid": kid_of("ES384"), "d": URL_SAFE_NO_PAD.encode(k.to_bytes())})
}

// protocol J2: keys from PEM, a private JWK and a JWKS, both algorithms; never shown
#[test]
fn keys_load_and_sign() {
    let rs = PrivateKey::from_file(&fixture("rs384-private.pem"), Some("k")).unwrap();
    assert_eq!((rs.alg(), rs.kid()), (SigningAlg::RS384, Some("k")));
    assert_eq!(rs.sign(b"x").unwrap().len(), 256);
    let es = PrivateKey::from_file(&fixture("es384-private.pem"), None).unwrap();
    assert_eq!(es.alg(), SigningAlg::ES384);
    assert_eq!(es.sign(b"x").unwrap().len(), 96, "r||s");
    assert_eq!(PrivateKey::from_jwk(&rsa_jwk()).unwrap().alg(), SigningAlg::RS384);
    let jwks = json!({"keys": [rsa_jwk(), ec_jwk()]});
    let k = PrivateKey::from_jwks(&jwks, Some(&kid_of("ES384"))).unwrap();
    assert_eq!(k.alg(), SigningAlg::ES384);
    assert!(PrivateKey::from_jwks(&jwks, None).unwrap_err().to_string().contains("kid"));
    let shown = format!("{k:?}");
    assert!(!shown.contains(ec_jwk()["d"].as_str().unwrap()));
    assert!(PrivateKey::from_pem(b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n", None).is_err());
}

fn start(f: impl FnOnce(&mut Config)) -> Running {
    let mut cfg = Config { patients: 10, jwks: Some(fixture("jwks.json")), ..Config::default() };
    f(&mut cfg);
    Running::start(cfg).expect("server starts")
}

fn registration() -> BackendServices {
    BackendServices {
        client_id: "client-1".into(),
        scope: "system/*.read".into(),
        token_url: None,
        alg: SigningAlg::ES384,
        kid: None,
        jku: None,
        client_secret: None,
    }
}

// protocol J1-J5: an export that outlives three short-lived tokens, with RS384 from a JWK and
// ES384 from PEM; discovery finds the token endpoint; the token never enters the saved state
#[test]
fn an_export_outlives_short_lived_tokens() {
    for key in [
        PrivateKey::from_jwk(&rsa_jwk()).unwrap(),
        PrivateKey::from_file(&fixture("es384-private.pem"), Some(&kid_of("ES384"))).unwrap(),
    ] {
        let srv = start(|c| {
            c.token_ttl = 1;
            c.job_ms = 4_500;
        });
        let base = format!("{}/bulk/fhir", srv.origin);
        let auth = BackendServicesAuth::new(&base, registration(), key).unwrap();
        let client = Client::builder(&base)
            .token(auth)
            .retry(RetryPolicy {
                min_wait_ms: 300,
                initial_backoff_ms: 300,
                max_backoff_ms: 400,
                ..RetryPolicy::default()
            })
            .build()
            .unwrap();
        let mut job = client.export(ExportRequest { types: vec!["Patient".into()], ..Default::default() }).unwrap();
        let outcome = job.wait().unwrap();
        assert_eq!(outcome.status, OutcomeStatus::Completed);
        let saved = job.to_json();
        assert!(!saved.contains("Bearer") && !saved.contains("access_token"), "no token in the saved state");
        let stats: Value = serde_json::from_str(
            &ureq::get(format!("{}/_admin/stats", srv.origin)).call().unwrap().into_body().read_to_string().unwrap(),
        )
        .unwrap();
        let tokens = stats["routes"]["auth.token"].as_u64().unwrap_or(0);
        assert!(tokens >= 3, "at least three tokens over a 4.5 s job with 1 s tokens: {stats}");
    }
}

fn client_with(srv: &Running, spec: &str, key: PrivateKey, client_id: &str, clock: Option<fn() -> u64>) -> Client {
    let base = format!("{}{spec}/bulk/fhir", srv.origin);
    let mut reg = registration();
    reg.client_id = client_id.into();
    let mut auth = BackendServicesAuth::new(&base, reg, key).unwrap();
    if let Some(c) = clock {
        auth = auth.with_clock(c);
    }
    Client::builder(&base).token(auth).retry(RetryPolicy { min_wait_ms: 50, ..RetryPolicy::default() }).build().unwrap()
}

fn es_key() -> PrivateKey {
    PrivateKey::from_file(&fixture("es384-private.pem"), Some(&kid_of("ES384"))).unwrap()
}

// protocol J4, J5: refusals are typed auth errors with the server's words and the likely cause
#[test]
fn refusals_name_the_cause() {
    let srv = start(|_| {});
    let export = || ExportRequest { types: vec!["Patient".into()], ..Default::default() };
    // A key the server does not know for this kid.
    let wrong = PrivateKey::from_file(&fixture("other-es384-private.pem"), Some(&kid_of("ES384"))).unwrap();
    let e = client_with(&srv, "", wrong, "client-1", None).export(export()).unwrap_err();
    // issue 12: the typed AuthError reaches the caller (code auth), not a string in `unauthorized`.
    assert_eq!(e.code(), "auth");
    let ClientError::Auth(a) = &e else { panic!("not ClientError::Auth: {e:?}") };
    assert_eq!((a.error.as_deref(), a.http_status), (Some("invalid_client"), Some(401)));
    assert!(e.to_string().contains("invalid_client"), "{e}");
    // An unknown client id.
    let e = client_with(&srv, "", es_key(), "nobody", None).export(export()).unwrap_err();
    assert!(e.to_string().contains("check the client id") && e.to_string().contains("nobody"), "{e}");
    // A clock 10 minutes behind: the assertion looks expired; the error names the clock.
    fn behind() -> u64 {
        fhir_async_client::now_ms() - 600_000
    }
    let e = client_with(&srv, "", es_key(), "client-1", Some(behind)).export(export()).unwrap_err();
    assert!(e.to_string().contains("client clock"), "{e}");
}

// protocol J1, J5: discovery falls back to the CapabilityStatement; a token endpoint that is
// down is retried within the budget; keys from a JWKS file
#[test]
fn fallback_discovery_and_a_token_endpoint_that_is_down() {
    let srv = start(|_| {});
    let key = PrivateKey::from_file(&fixture("jwks-private.json"), Some(&kid_of("RS384"))).unwrap();
    let client = client_with(&srv, "/_f/no-smart-config;token503=2", key, "client-1", None);
    let mut job = client.export(ExportRequest { types: vec!["Patient".into()], ..Default::default() }).unwrap();
    assert_eq!(job.wait().unwrap().status, OutcomeStatus::Completed);
    let stats: Value = serde_json::from_str(
        &ureq::get(format!("{}/_admin/stats", srv.origin)).call().unwrap().into_body().read_to_string().unwrap(),
    )
    .unwrap();
    assert!(stats["tokens"]["unavailable"].as_u64().unwrap_or(0) >= 2, "{}", stats["tokens"]);
    assert!(stats["tokens"]["issued"].as_u64().unwrap_or(0) >= 1);
}

/// A client secret with characters Basic needs form-urlencoded (RFC 6749 §2.3.1).
const SECRET: &str = "s3cr:t/+é";

// protocol J3 (client_secret_basic), J5, J6: a symmetric client exports past three
// short-lived tokens; the secret never enters the saved state, a Debug output or an error
#[test]
fn a_client_secret_exports_and_stays_secret() {
    let srv = start(|c| {
        c.client_secrets = vec![format!("client-s={SECRET}")];
        c.token_ttl = 1;
        c.job_ms = 3_500;
    });
    let base = format!("{}/bulk/fhir", srv.origin);
    let reg = BackendServices { client_id: "client-s".into(), ..registration() };
    let auth = BackendServicesAuth::from_client_secret(&base, reg.clone(), SECRET).unwrap();
    let shown = format!("{auth:?}");
    assert!(!shown.contains("s3cr") && shown.contains("***"), "{shown}");
    let client = Client::builder(&base)
        .token(auth)
        .retry(RetryPolicy { min_wait_ms: 300, initial_backoff_ms: 300, max_backoff_ms: 400, ..RetryPolicy::default() })
        .build()
        .unwrap();
    let mut job = client.export(ExportRequest { types: vec!["Patient".into()], ..Default::default() }).unwrap();
    assert_eq!(job.wait().unwrap().status, OutcomeStatus::Completed);
    let stats: Value = serde_json::from_str(
        &ureq::get(format!("{}/_admin/stats", srv.origin)).call().unwrap().into_body().read_to_string().unwrap(),
    )
    .unwrap();
    assert!(stats["tokens"]["issued"].as_u64().unwrap_or(0) >= 3, "{}", stats["tokens"]);
    let saved = job.to_json();
    assert!(!saved.contains("s3cr") && !saved.contains("Basic") && !saved.contains("Bearer"), "{saved}");

    // A wrong secret: a typed AuthError naming the secret as the cause, never its value.
    let auth = BackendServicesAuth::from_client_secret(&base, reg, "not-the-secret").unwrap();
    let client = Client::builder(&base).token(auth).build().unwrap();
    let e = client.export(ExportRequest { types: vec!["Patient".into()], ..Default::default() }).unwrap_err();
    let ClientError::Auth(a) = &e else { panic!("not ClientError::Auth: {e:?}") };
    assert_eq!((e.code(), a.error.as_deref()), ("auth", Some("invalid_client")));
    let text = format!("{e} {e:?}");
    assert!(text.contains("check the client id and the client secret"), "{text}");
    assert!(!text.contains("not-the-secret") && !text.contains("s3cr"), "{text}");
}
