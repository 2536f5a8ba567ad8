//! The job folder's `log.ndjson`, in the SMART bulk-data log format (protocol N; the format of
//! bulk-data-client's `src/loggers/index.ts` and smart-fetch's `BulkExportLogWriter`, which
//! cumulus-etl's `export_log.py` reads).
//!
//! Every line is `{"exportId", "timestamp", "eventId", "eventDetail"}` (N2): `exportId` is the
//! job's status URL (N3; a random UUID until the server accepted the kick-off), `timestamp` the
//! local time with its offset. The commands say what happened in their own words
//! ([`crate::folder::Folder::event`]: `kickoff`, `accepted`, `status`, `outcome`, `manifest`,
//! `file.started`, ...); this module alone turns them into the SMART events, with the fields the
//! two writers give:
//!
//! | what happened | SMART event |
//! |---|---|
//! | `kickoff` + `accepted` (or the outcome / error that ended the kick-off) | `kickoff` (N4) |
//! | `status` (a poll answered "not yet") | `status_progress` (N5) |
//! | `outcome` failed, `error` while waiting | `status_error` (N6) |
//! | `manifest` | `status_complete`, `status_page_complete`, `manifest_complete` (N7) |
//! | `file.started`, `file.finished`, `file.failed` | `download_request`, `download_complete`, `download_error` (N8) |
//! | `export_complete` (the download ended) | `export_complete` (N9) |
//!
//! Fields of our own inside a SMART event's detail carry a `_` prefix (smart-fetch's and
//! cumulus-etl's convention for keys the format does not define: `_client`, `_clientVersion`).
//! The events the format has no name for keep their own `eventId`s: `resumed`, `warning`,
//! `outcome`, `interrupted`, `cancelled`, `archived`, `range_resume` (a file continued by byte
//! range), `concurrency_change` (an origin's limit of files at once), `gzip_complete`, `parquet_complete`, `parquet_error`,
//! `attachment_download_complete`, `attachment_download_error` (protocol M; the first are counted
//! as `export_complete`'s `attachments`).
//!
//! No token is ever logged, and a file URL loses its query string (N10: a signed URL's query is a
//! credential).

use fhir_async::origin::redact_url;
use fhir_async::{ExportRequest, IgVersion, Job, JobConfig, Method, Operation, OperationRequest, Request};
use serde_json::{json, Map, Value};
use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

/// The writer of a folder's log (or of the `--json` events on stdout alone).
#[derive(Debug)]
pub struct Log {
    file: Mutex<Option<File>>,
    echo: bool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    export_id: String,
    /// The kick-off sent and not logged yet: its `kickoff` event waits for the answer.
    pending_kickoff: Option<Map<String, Value>>,
    /// When this process logged its first event (`export_complete`'s `duration`, as smart-fetch).
    started_ms: Option<u64>,
    files: u64,
    resources: u64,
    bytes: u64,
    /// Attachments saved by this run (protocol M; `None` until one is).
    attachments: Option<u64>,
}

impl Log {
    /// A log appended to `file` (`None`: stdout only), its `exportId` the status URL `status_url`
    /// when the folder holds a job already.
    pub fn new(file: Option<File>, echo: bool, status_url: Option<String>) -> Log {
        let state =
            State { export_id: status_url.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()), ..State::default() };
        Log { file: Mutex::new(file), echo, state: Mutex::new(state) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What happened, in the commands' words: logged as the SMART event(s) it is (see the
    /// module's table), or under its own `eventId`.
    pub fn record(&self, what: &str, fields: Value) {
        let f = |k: &str| fields.get(k).cloned().unwrap_or(Value::Null);
        match what {
            "kickoff" => {
                let detail = kickoff_request(&fields);
                self.state().pending_kickoff = Some(detail);
            }
            "accepted" => {
                // The kick-off the engine really sent (for `auto`, the form the server declared).
                if fields.get("request").is_some_and(|r| !r.is_null()) {
                    let detail = kickoff_detail(&fields["request"]);
                    let mut s = self.state();
                    if s.pending_kickoff.is_some() {
                        s.pending_kickoff = Some(detail);
                    }
                }
                if let Some(url) = fields["statusUrl"].as_str() {
                    self.state().export_id = url.to_owned();
                    self.flush_kickoff(Value::Null, Value::Null, None);
                }
                // No status URL: an answer at once (or a refusal); the outcome says which.
            }
            "resumed" => {
                if let Some(url) = fields["statusUrl"].as_str() {
                    self.state().export_id = url.to_owned();
                }
                self.write("resumed", fields);
            }
            "status" => {
                self.flush_kickoff(Value::Null, Value::Null, None);
                let retry_after = fields["nextPollInMs"].as_u64().map(|ms| ms.div_ceil(1000).to_string());
                self.write(
                    "status_progress",
                    json!({"body": null, "xProgress": f("message"), "retryAfter": retry_after, "_polls": f("polls")}),
                );
            }
            "outcome" => {
                let failed = fields["status"] == "failed";
                let (code, body) = if failed { (f("httpStatus"), f("message")) } else { (Value::Null, Value::Null) };
                // A kick-off refused (or answered at once) ends here: its `kickoff` says how.
                if !self.flush_kickoff(code.clone(), body.clone(), None) && failed {
                    self.write(
                        "status_error",
                        json!({"body": body, "code": code, "message": f("message"), "responseHeaders": null}),
                    );
                }
                self.write("outcome", fields);
            }
            "error" => {
                // smart-fetch: a kick-off that failed without an answer has its message as `errorBody`.
                if !self.flush_kickoff(Value::Null, f("message"), Some(f("code"))) {
                    self.write(
                        "status_error",
                        json!({"body": null, "code": null, "message": f("message"), "responseHeaders": null, "_code": f("code")}),
                    );
                }
            }
            "manifest" => self.manifest(&fields),
            "file.started" => self.write(
                "download_request",
                json!({"fileUrl": file_url(&fields), "itemType": f("kind"), "resourceType": f("type"),
                    "_fileName": f("file"), "_attempt": f("attempt")}),
            ),
            "file.finished" => {
                let (resources, bytes) = (fields["resources"].as_u64(), fields["bytes"].as_u64());
                // Continued by byte range after a cut (or started over when the range was refused).
                if fields["rangeResumes"].as_u64() > Some(0) || fields["rangeRestarts"].as_u64() > Some(0) {
                    self.write(
                        "range_resume",
                        json!({"fileUrl": file_url(&fields), "fileName": f("file"), "resumes": f("rangeResumes"),
                            "restarts": f("rangeRestarts")}),
                    );
                }
                {
                    let mut s = self.state();
                    s.files += 1;
                    s.resources += resources.unwrap_or(0);
                    s.bytes += bytes.unwrap_or(0);
                }
                self.write(
                    "download_complete",
                    json!({"fileUrl": file_url(&fields), "resourceCount": resources, "fileSize": bytes,
                        "_fileName": f("file"), "_invalidLines": f("invalidLines"), "_durationMs": f("durationMs"),
                        "_warnings": f("warnings"), "_path": f("path")}),
                );
            }
            "attachment_download_complete" => {
                *self.state().attachments.get_or_insert(0) += 1;
                self.write(what, fields);
            }
            "file.failed" => self.write(
                "download_error",
                json!({"fileUrl": file_url(&fields), "body": null, "code": f("httpStatus"), "message": f("message"),
                    "responseHeaders": null, "_fileName": f("file"), "_code": f("code")}),
            ),
            "export_complete" => {
                let now = fhir_async_client::now_ms();
                let s = self.state();
                let detail = json!({"files": s.files, "resources": s.resources, "bytes": s.bytes, "attachments": s.attachments,
                    "duration": s.started_ms.map_or(0, |t| now.saturating_sub(t))});
                drop(s);
                self.write("export_complete", detail);
            }
            "limit" => self.write("concurrency_change", fields),
            "file.compressed" => self.write("gzip_complete", fields),
            "parquet.finished" => self.write("parquet_complete", fields),
            "parquet.failed" => self.write("parquet_error", fields),
            other => self.write(other, fields),
        }
    }

    /// Logs the kick-off waiting for its answer, if any (`true`): `errorCode`/`errorBody` null
    /// when the server accepted it (N4); `code`: the client's error code, when it failed with one.
    fn flush_kickoff(&self, error_code: Value, error_body: Value, code: Option<Value>) -> bool {
        let Some(mut detail) = self.state().pending_kickoff.take() else { return false };
        detail.insert("errorCode".into(), error_code);
        detail.insert("errorBody".into(), error_body);
        if let Some(code) = code {
            detail.insert("_code".into(), code);
        }
        self.write("kickoff", Value::Object(detail));
        true
    }

    /// N7: one manifest (its pages merged by the engine) is one page and one manifest; STU4
    /// `outcome` files count as error files (the engine's `error_files`).
    fn manifest(&self, m: &Value) {
        if let Some(url) = m["statusUrl"].as_str() {
            self.state().export_id = url.to_owned();
        }
        let t = m.get("transactionTime").cloned().unwrap_or(Value::Null);
        let (output, deleted, error) = (&m["output"], &m["deleted"], &m["error"]);
        self.write("status_complete", json!({"transactionTime": t}));
        self.write(
            "status_page_complete",
            json!({"transactionTime": t, "outputFileCount": output, "deletedFileCount": deleted, "errorFileCount": error}),
        );
        self.write(
            "manifest_complete",
            json!({"transactionTime": t, "totalOutputFileCount": output, "totalDeletedFileCount": deleted,
                "totalErrorFileCount": error, "totalManifests": 1}),
        );
    }

    /// One line: `{"exportId", "timestamp", "eventId", "eventDetail"}`, into the log (one write
    /// of the whole line, so a `cancel` beside the working process never cuts into its lines) and
    /// to stdout with `--json`.
    fn write(&self, event_id: &str, detail: Value) {
        let export_id = {
            let mut s = self.state();
            s.started_ms.get_or_insert_with(fhir_async_client::now_ms);
            s.export_id.clone()
        };
        let timestamp = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        let mut line =
            json!({"exportId": export_id, "timestamp": timestamp, "eventId": event_id, "eventDetail": detail});
        if event_id == "kickoff" {
            // smart-fetch and cumulus-etl name the writer on `kickoff` (N2).
            line["_client"] = json!("fhir-async");
            line["_clientVersion"] = json!(env!("CARGO_PKG_VERSION"));
        }
        let line = format!("{line}\n");
        if let Some(file) = self.file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = file.write_all(line.as_bytes());
        }
        if self.echo {
            // A reader that went away (a closed pipe) is not a reason to stop.
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        }
    }
}

/// A file event's `fileUrl`: the URL without its query string (N10).
fn file_url(fields: &Value) -> Value {
    fields["url"].as_str().map_or(Value::Null, |u| json!(redact_url(u)))
}

/// The kick-off request as the engine sent it ([`fhir_async::Job::kickoff_request`]), for the
/// `accepted` event: method, URL, headers (never `Authorization`; the engine puts no token in
/// them) and body.
pub fn sent_request(request: &Request) -> Value {
    let headers: Map<String, Value> = request
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("authorization"))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({"method": request.method, "url": request.url, "headers": headers, "body": request.body})
}

/// The `kickoff` detail known before the answer (N4), a guess until the `accepted` event hands the
/// request the engine really sent (a kick-off that failed without an answer keeps it): the form a
/// job built from the command's fields would send first (STU3's for `auto`).
fn kickoff_request(fields: &Value) -> Map<String, Value> {
    let base = fields["base"].as_str().unwrap_or_default().to_owned();
    let operation = match serde_json::from_value::<ExportRequest>(fields["request"].clone()) {
        Ok(r) if fields.get("request").is_some() => Operation::Export(ExportRequest {
            ig_version: if r.ig_version == IgVersion::Auto { IgVersion::Stu3 } else { r.ig_version },
            ..r
        }),
        _ => {
            let method = match fields["method"].as_str().map(str::to_ascii_uppercase).as_deref() {
                Some("POST") => Method::Post,
                Some("DELETE") => Method::Delete,
                _ => Method::Get,
            };
            let path = fields["path"].as_str().unwrap_or_default().to_owned();
            Operation::Operation(OperationRequest { method, path, body: None })
        }
    };
    let config = JobConfig {
        base_url: base,
        operation,
        prefer: Default::default(),
        retry: Default::default(),
        timeout_ms: None,
        allowed_origins: Vec::new(),
    };
    match Job::new(config).ok().and_then(|j| j.kickoff_request()) {
        Some(r) => kickoff_detail(&sent_request(&r)),
        None => kickoff_detail(&Value::Null),
    }
}

/// The `kickoff` detail of a request (`sent_request`'s shape): `exportUrl`, the parameters (from
/// the query, or a POST's Parameters body, N4 \[R\]), never `patient`; the server's software is not
/// asked for (no request beyond the protocol's). Ours: `_method`, `_requestHeaders`, and
/// `_requestBody` (the body without its `patient` parameters).
fn kickoff_detail(request: &Value) -> Map<String, Value> {
    let url = request["url"].as_str();
    let mut params = Map::new();
    let mut add = |k: String, v: String| {
        if k == "patient" {
            return;
        }
        match params.get_mut(&k) {
            // smart-fetch joins a repeated parameter's values with commas.
            Some(Value::String(s)) => {
                s.push(',');
                s.push_str(&v);
            }
            _ => {
                params.insert(k, Value::String(v));
            }
        }
    };
    if let Some(u) = url.and_then(|u| url::Url::parse(u).ok()) {
        for (k, v) in u.query_pairs() {
            add(k.into_owned(), v.into_owned());
        }
    }
    let raw_body = request["body"].as_str().filter(|b| !b.is_empty());
    let mut body: Option<Value> = raw_body.and_then(|b| serde_json::from_str(b).ok());
    for p in body.as_ref().and_then(|b| b["parameter"].as_array()).into_iter().flatten() {
        let Some(name) = p["name"].as_str() else { continue };
        let value = p.as_object().and_then(|o| {
            o.iter().find(|(k, _)| k.starts_with("value")).map(|(_, v)| match v {
                Value::String(s) => s.clone(),
                Value::Object(o) if o.contains_key("reference") => {
                    o["reference"].as_str().unwrap_or_default().to_owned()
                }
                other => other.to_string(),
            })
        });
        if let Some(v) = value {
            add(name.to_owned(), v);
        }
    }
    if let Some(ps) = body.as_mut().and_then(|b| b.get_mut("parameter")).and_then(Value::as_array_mut) {
        ps.retain(|p| p["name"] != "patient");
    }
    let mut detail = Map::new();
    detail.insert("exportUrl".into(), json!(url));
    detail.insert("errorCode".into(), Value::Null);
    detail.insert("errorBody".into(), Value::Null);
    for k in ["softwareName", "softwareVersion", "softwareReleaseDate", "fhirVersion"] {
        detail.insert(k.into(), Value::Null);
    }
    detail.insert("requestParameters".into(), Value::Object(params));
    detail.insert("responseHeaders".into(), Value::Null);
    detail.insert("_method".into(), request.get("method").cloned().unwrap_or(Value::Null));
    detail.insert("_requestHeaders".into(), request.get("headers").cloned().unwrap_or(Value::Null));
    // A body that is not JSON is kept as text (an operation's), a Parameters body without `patient`.
    let body = body.or_else(|| raw_body.map(|b| json!(b)));
    detail.insert("_requestBody".into(), body.unwrap_or(Value::Null));
    detail
}
