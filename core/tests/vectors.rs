//! Runs every language-neutral scenario in `tests/vectors/` through the core.
//! The format is documented in `tests/vectors/README.md`; the Node and Python
//! suites run the same files through their bindings.

mod common;

use common::{request_json, subset};
use fhir_async::{Job, JobConfig, Response, TransportErrorKind};
use serde_json::{json, Value};
use std::path::PathBuf;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn response_from(v: &Value) -> Response {
    let mut r = Response::new(v["status"].as_u64().unwrap_or(0) as u16);
    if let Some(h) = v["headers"].as_object() {
        for (k, val) in h {
            match val {
                Value::Array(items) => {
                    for i in items {
                        r.headers.push((k.clone(), i.as_str().unwrap_or_default().to_owned()));
                    }
                }
                other => r.headers.push((k.clone(), other.as_str().unwrap_or_default().to_owned())),
            }
        }
    }
    r.body = match &v["body"] {
        Value::Null => Vec::new(),
        Value::String(s) => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    };
    r.url = v["url"].as_str().map(str::to_owned);
    r
}

fn run(path: &PathBuf) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let config: JobConfig = serde_json::from_value(v["config"].clone()).map_err(|e| format!("config: {e}"))?;
    let mut job = match Job::new(config) {
        Ok(j) => j,
        Err(e) => {
            let expected = &v["newError"];
            return if expected.is_null() {
                Err(format!("Job::new failed: {e}"))
            } else {
                subset(expected, &json!({"code": e.code()}), "newError")
            };
        }
    };
    if !v["newError"].is_null() {
        return Err("expected Job::new to fail".into());
    }
    let mut last_id: Option<u64> = None;
    for (i, step) in v["steps"].as_array().ok_or("no steps")?.iter().enumerate() {
        let now = step["now"].as_u64().ok_or(format!("step {i}: no now"))?;
        let ctx = |m: String| format!("step {i} ({}): {m}", step.get("note").and_then(Value::as_str).unwrap_or(""));
        if let Some(expect) = step.get("expect") {
            let actual = match job.next_action(now) {
                Ok(a) => serde_json::to_value(&a).map_err(|e| e.to_string())?,
                Err(e) => json!({"type": "error", "code": e.code(), "error": e}),
            };
            if let Some(id) = actual.pointer("/request/id").and_then(Value::as_u64) {
                last_id = Some(id);
            }
            subset(expect, &request_json(&actual), "action").map_err(ctx)?;
        } else if let Some(resp) = step.get("respond") {
            let id = last_id.ok_or_else(|| ctx("respond without a sent request".into()))?;
            job.handle_response(id, response_from(resp), now).map_err(|e| ctx(e.to_string()))?;
        } else if let Some(kind) = step.get("transportError") {
            let id = last_id.ok_or_else(|| ctx("transportError without a sent request".into()))?;
            // An unknown value is a broken vector, not "after send" (issue 10 §3).
            let kind = match kind.as_str() {
                Some("connect") => TransportErrorKind::Connect,
                Some("afterSend") => TransportErrorKind::AfterSend,
                other => return Err(ctx(format!("unknown transportError {other:?}: \"connect\" or \"afterSend\""))),
            };
            job.handle_transport_error(id, kind, "scripted failure", now).map_err(|e| ctx(e.to_string()))?;
        } else if step.get("cancel").is_some() {
            job.cancel(now);
        } else if step.get("cleanup").is_some() {
            job.cleanup().map_err(|e| ctx(e.to_string()))?;
        } else if step.get("refreshManifest").is_some() {
            job.refresh_manifest(now).map_err(|e| ctx(e.to_string()))?;
        } else if step.get("resume").is_some() {
            job = Job::from_json(&job.to_json()).map_err(|e| ctx(e.to_string()))?;
        } else if let Some(cb) = step.get("callback") {
            let payload = fhir_async::parse_callback(cb.to_string().as_bytes()).map_err(|e| ctx(e.to_string()))?;
            let effect = serde_json::to_value(job.handle_callback(&payload, now)).map_err(|e| e.to_string())?;
            subset(&step["effect"], &effect, "effect").map_err(ctx)?;
        } else if let Some(p) = step.get("progress") {
            let actual = serde_json::to_value(job.progress(now)).map_err(|e| e.to_string())?;
            subset(p, &actual, "progress").map_err(ctx)?;
        } else if let Some(c) = step.get("cancelResult") {
            let actual = serde_json::to_value(job.cancel_result()).map_err(|e| e.to_string())?;
            subset(c, &actual, "cancelResult").map_err(ctx)?;
        } else if let Some(p) = step.get("downloadPlan") {
            let actual = serde_json::to_value(job.download_plan()).map_err(|e| e.to_string())?;
            subset(p, &actual, "downloadPlan").map_err(ctx)?;
        } else if let Some(w) = step.get("warningsContain") {
            let needle = w.as_str().unwrap_or_default();
            if !job.warnings().iter().any(|x| x.contains(needle)) {
                return Err(ctx(format!("no warning contains {needle:?}: {:?}", job.warnings())));
            }
        } else {
            return Err(ctx("unknown step".into()));
        }
    }
    Ok(())
}

// issue 10 §3: a typo in a vector's transportError fails instead of passing as "afterSend"
#[test]
fn unknown_transport_error_kind_fails_the_vector() {
    let dir = std::env::temp_dir().join(format!("fhir-async-vector-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("typo.json");
    let vector = json!({
        "name": "typo", "protocol": [], "description": "",
        "config": {"baseUrl": "https://h/fhir", "operation": {"type": "export"}},
        "steps": [
            {"now": 0, "expect": {"type": "send", "request": {"kind": "kickoff"}}},
            {"now": 0, "transportError": "conect"}
        ]
    });
    std::fs::write(&path, vector.to_string()).unwrap();
    let err = run(&path).expect_err("a misspelt transportError must fail");
    assert!(err.contains("conect"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_vector_passes() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(vectors_dir())
        .expect("tests/vectors exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "expected at least 30 vectors, found {}", files.len());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| run(f).err().map(|e| format!("{}: {e}", f.file_name().unwrap_or_default().to_string_lossy())))
        .collect();
    assert!(failures.is_empty(), "{} of {} vectors failed:\n{}", failures.len(), files.len(), failures.join("\n"));
}
