//! Runs every download scenario in `tests/vectors/downloads/` through the
//! core's coordinator (`Downloads`). The format is in `tests/vectors/README.md`;
//! the Node suite runs the same files through the wasm binding.

mod common;

use base64::Engine as _;
use common::{request_json, subset};
use fhir_async::{Action, DownloadOptions, Downloads, HeadDecision, Job, JobConfig, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/downloads")
}

fn headers(v: &Value) -> Vec<(String, String)> {
    v.as_object().into_iter().flatten().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect()
}

fn decision(d: HeadDecision) -> &'static str {
    match d {
        HeadDecision::Stream => "stream",
        HeadDecision::Discard => "discard",
    }
}

/// Answers the job's next status poll with `manifest` (the kick-off first, if not yet sent).
fn deliver(job: &mut Job, manifest: &Value) -> Result<(), String> {
    loop {
        match job.next_action(u64::MAX / 2).map_err(|e| e.to_string())? {
            Action::Send { request } if request.kind == fhir_async::RequestKind::Kickoff => {
                let accepted = Response::new(202).with_header("Content-Location", "https://fhir.example/r4/status/1");
                job.handle_response(request.id, accepted, 0).map_err(|e| e.to_string())?;
            }
            Action::Send { request } => {
                let r = Response::new(200).with_body(manifest.to_string());
                return job.handle_response(request.id, r, 0).map_err(|e| e.to_string());
            }
            other => return Err(format!("expected a status poll, got {other:?}")),
        }
    }
}

fn run(path: &Path) -> Result<(), String> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let config: JobConfig = serde_json::from_value(v["config"].clone()).map_err(|e| format!("config: {e}"))?;
    let options: DownloadOptions = serde_json::from_value(v["options"].clone()).map_err(|e| format!("options: {e}"))?;
    let mut job = Job::new(config).map_err(|e| e.to_string())?;
    deliver(&mut job, &v["manifest"])?;
    let mut d = Downloads::new(job.download_plan(), options, &job.config().retry);
    let mut ids: BTreeMap<usize, u64> = BTreeMap::new();
    let mut lines: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (i, step) in v["steps"].as_array().ok_or("no steps")?.iter().enumerate() {
        let now = step["now"].as_u64().ok_or(format!("step {i}: no now"))?;
        let ctx = |m: String| format!("step {i}: {m}");
        let file = |k: &str| step[k]["file"].as_u64().map(|f| f as usize).ok_or_else(|| ctx(format!("{k}: no file")));
        let id_of = |f: usize, ids: &BTreeMap<usize, u64>| {
            ids.get(&f).copied().ok_or_else(|| ctx(format!("no request sent for file {f}")))
        };
        if let Some(expect) = step.get("expect") {
            let actual = match d.next(now) {
                Ok(s) => serde_json::to_value(&s).map_err(|e| e.to_string())?,
                Err(e) => json!({"type": "error", "code": e.code()}),
            };
            if let (Some(f), Some(id)) =
                (actual["file"].as_u64(), actual.pointer("/request/id").and_then(Value::as_u64))
            {
                ids.insert(f as usize, id);
                // A copy that can be cut (a folder, `restartChanged`) keeps what the engine says it holds (K7).
                if d.taken_bytes(f as usize) == 0 {
                    lines.remove(&(f as usize));
                }
            }
            subset(expect, &request_json(&actual), "step").map_err(ctx)?;
        } else if step.get("head").is_some() {
            let f = file("head")?;
            let h = &step["head"];
            let got = d
                .handle_head(
                    f,
                    id_of(f, &ids)?,
                    h["status"].as_u64().unwrap_or(0) as u16,
                    &headers(&h["headers"]),
                    false,
                    now,
                )
                .map_err(|e| ctx(e.to_string()))?;
            if let Some(want) = step["decision"].as_str() {
                if want != decision(got) {
                    return Err(ctx(format!("decision {} , expected {want}", decision(got))));
                }
            }
        } else if step.get("body").is_some() {
            let f = file("body")?;
            let b = &step["body"];
            let bytes = match (b["text"].as_str(), b["base64"].as_str()) {
                (Some(t), _) => t.as_bytes().to_vec(),
                (_, Some(b64)) => {
                    base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| ctx(e.to_string()))?
                }
                _ => return Err(ctx("body: text or base64".into())),
            };
            let out = lines.entry(f).or_default();
            d.feed(f, id_of(f, &ids)?, &bytes, now, |l| out.push(String::from_utf8_lossy(l).into_owned()))
                .map_err(|e| ctx(e.to_string()))?;
        } else if step.get("end").is_some() {
            let f = file("end")?;
            let out = lines.entry(f).or_default();
            d.finish(f, id_of(f, &ids)?, now, |l| out.push(String::from_utf8_lossy(l).into_owned()))
                .map_err(|e| ctx(e.to_string()))?;
        } else if step.get("transportError").is_some() {
            let f = file("transportError")?;
            let msg = step["transportError"]["message"].as_str().unwrap_or("scripted");
            d.handle_transport_error(f, id_of(f, &ids)?, msg, now).map_err(|e| ctx(e.to_string()))?;
        } else if let Some(m) = step.get("manifestRefreshed") {
            job.refresh_manifest(now).map_err(|e| ctx(e.to_string()))?;
            deliver(&mut job, m).map_err(ctx)?;
            d.manifest_refreshed(job.download_plan());
        } else if let Some(cause) = step.get("manifestRefreshFailed") {
            d.manifest_refresh_failed(cause.as_str().unwrap_or("scripted"));
        } else if step.get("tokenRefreshed").is_some() {
            d.token_refreshed();
        } else if let Some(r) = step.get("tokenUnavailable") {
            d.token_unavailable(r.as_str().unwrap_or("scripted"));
        } else if let Some(want) = step.get("lines") {
            let got = json!(lines.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>());
            subset(want, &got, "lines").map_err(ctx)?;
        } else if let Some(want) = step.get("lineCounts") {
            let got =
                json!(lines.iter().map(|(k, v)| (k.to_string(), json!(v.len()))).collect::<serde_json::Map<_, _>>());
            subset(want, &got, "lineCounts").map_err(ctx)?;
        } else if let Some(want) = step.get("results") {
            let got = serde_json::to_value(d.results()).map_err(|e| e.to_string())?;
            subset(want, &got, "results").map_err(ctx)?;
        } else if let Some(want) = step.get("progress") {
            let got = serde_json::to_value(d.progress()).map_err(|e| e.to_string())?;
            subset(want, &got, "progress").map_err(ctx)?;
        } else {
            return Err(ctx(format!("unknown step {step}")));
        }
    }
    Ok(())
}

#[test]
fn every_download_vector_passes() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/vectors/downloads exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "expected the download vectors, found {}", files.len());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| run(f).err().map(|e| format!("{}: {e}", f.file_name().unwrap_or_default().to_string_lossy())))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} download vectors failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
