//! Runs every authorization scenario in `tests/vectors/auth/` through the
//! core's `TokenSession` (SMART Backend Services, protocol J). The Node suite
//! runs the same files through the wasm binding.

mod common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::{request_json, subset};
use fhir_async::{BackendServices, Response, TokenSession};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/auth")
}

fn part(signing_input: &str, i: usize) -> Result<Value, String> {
    let p = signing_input.split('.').nth(i).ok_or("no such part")?;
    let bytes = URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

fn run(path: &Path) -> Result<(), String> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let config: BackendServices = serde_json::from_value(v["config"].clone()).map_err(|e| format!("config: {e}"))?;
    let mut s = TokenSession::new(v["baseUrl"].as_str().unwrap_or_default(), config, v["nonce"].as_u64().unwrap_or(0))
        .map_err(|e| e.to_string())?;
    let mut last_id = None;
    let mut last_body = String::new();
    let mut signing_inputs: Vec<String> = Vec::new();
    let mut last_error: Option<String> = None;
    for (i, step) in v["steps"].as_array().ok_or("no steps")?.iter().enumerate() {
        let now = step["now"].as_u64().ok_or(format!("step {i}: no now"))?;
        let ctx = |m: String| format!("step {i}: {m}");
        if let Some(expect) = step.get("expect") {
            let actual = match s.next(now) {
                Ok(a) => serde_json::to_value(&a).map_err(|e| e.to_string())?,
                Err(e) => {
                    last_error = Some(e.to_string());
                    json!({"type": "error", "code": e.code(), "error": e})
                }
            };
            if let Some(id) = actual.pointer("/request/id").and_then(Value::as_u64) {
                last_id = Some(id);
                last_body = actual.pointer("/request/body").and_then(Value::as_str).unwrap_or_default().to_owned();
            }
            if let Some(si) = actual["signingInput"].as_str() {
                signing_inputs.push(si.to_owned());
            }
            subset(expect, &request_json(&actual), "step").map_err(ctx)?;
        } else if let Some(r) = step.get("respond") {
            let body = match &r["body"] {
                Value::String(t) => t.clone().into_bytes(),
                Value::Null => Vec::new(),
                other => other.to_string().into_bytes(),
            };
            let resp = Response::new(r["status"].as_u64().unwrap_or(0) as u16).with_body(body);
            let id = last_id.ok_or_else(|| ctx("respond without a request".into()))?;
            if let Err(e) = s.handle_response(id, &resp, now) {
                last_error = Some(e.to_string());
            }
        } else if let Some(m) = step.get("transportError") {
            let id = last_id.ok_or_else(|| ctx("transportError without a request".into()))?;
            if let Err(e) = s.handle_transport_error(id, m.as_str().unwrap_or("scripted"), now) {
                last_error = Some(e.to_string());
            }
        } else if let Some(sig) = step.get("signed") {
            let bytes = STANDARD.decode(sig.as_str().unwrap_or_default()).map_err(|e| ctx(e.to_string()))?;
            s.signed(&bytes).map_err(|e| ctx(e.to_string()))?;
        } else if step.get("invalidate").is_some() {
            s.invalidate();
        } else if let Some(want) = step.get("token") {
            let got = s.token(now).map_or(Value::Null, |t| json!(t));
            if &got != want {
                return Err(ctx(format!("token {got}, expected {want}")));
            }
        } else if let Some(want) = step.get("grantedScope") {
            subset(want, &json!(s.granted_scope()), "grantedScope").map_err(ctx)?;
        } else if let Some(want) = step.get("header") {
            subset(want, &part(signing_inputs.last().ok_or("no assertion yet")?, 0)?, "header").map_err(ctx)?;
        } else if let Some(want) = step.get("claims") {
            subset(want, &part(signing_inputs.last().ok_or("no assertion yet")?, 1)?, "claims").map_err(ctx)?;
        } else if let Some(claim) = step.get("claimsDifferFromFirst") {
            let k = claim.as_str().unwrap_or("jti");
            let (first, last) = (part(&signing_inputs[0], 1)?, part(signing_inputs.last().ok_or("no assertion")?, 1)?);
            if first[k] == last[k] {
                return Err(ctx(format!("{k} was reused: {}", first[k])));
            }
        } else if let Some(want) = step.get("form") {
            let form: serde_json::Map<String, Value> =
                url::form_urlencoded::parse(last_body.as_bytes()).map(|(k, v)| (k.into_owned(), json!(v))).collect();
            subset(want, &Value::Object(form), "form").map_err(ctx)?;
        } else if let Some(needle) = step.get("errorMessageContains") {
            let e = last_error.clone().unwrap_or_default();
            if !e.contains(needle.as_str().unwrap_or_default()) {
                return Err(ctx(format!("the error {e:?} does not contain {needle}")));
            }
        } else {
            return Err(ctx(format!("unknown step {step}")));
        }
    }
    Ok(())
}

#[test]
fn every_auth_vector_passes() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/vectors/auth exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "expected the auth vectors, found {}", files.len());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| run(f).err().map(|e| format!("{}: {e}", f.file_name().unwrap_or_default().to_string_lossy())))
        .collect();
    assert!(failures.is_empty(), "{} of {} auth vectors failed:\n{}", failures.len(), files.len(), failures.join("\n"));
}
