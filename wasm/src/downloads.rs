//! `Downloads`: the core's coordinator of a finished job's downloads (which
//! file next, how many at once per origin, the one token and manifest refresh,
//! per-file results, the limit's changes). JS moves the bytes and never decides.
//! Lines cross in one string per call (joined with `\n`), as for `FileDownload`.

use fhir_async::coordinator::FileRecord;
use fhir_async::download::line_problem;
use fhir_async::origin::redact_url;
use fhir_async::{
    CountCheck, DownloadError, DownloadOptions, DownloadStep, Downloads, FileKind, HeadDecision, InvalidLines,
    Validation,
};
#[cfg(feature = "attachments")]
use fhir_async::{PlannedFile, RetryPolicy};
use wasm_bindgen::prelude::*;

use crate::convert::{header_pairs, id, ms, to_js};
use crate::errors::{download_error, usage};
use crate::job::WasmJob;

/// A finished job's downloads (the engine's `Downloads`).
#[wasm_bindgen(js_name = Downloads)]
#[derive(Debug)]
pub struct WasmDownloads {
    inner: Downloads,
    lines: Vec<u8>,
    /// The bytes of an opaque file (Parquet, L13) from the last `feed`/`finish` (`takeBytes`).
    bytes: Vec<u8>,
    discarded: bool,
    /// Per file: whether `finished()` already named it.
    announced: Vec<bool>,
    /// The core's records taken by `snapshot`, not yet committed (K5): few,
    /// the parts queued for the consumer.
    snapshots: Vec<(u32, FileRecord)>,
    next_snapshot: u32,
    /// The asked validation, applied to each line as it crosses (`mark_line`).
    validation: Validation,
}

#[wasm_bindgen(js_class = Downloads)]
impl WasmDownloads {
    /// The downloads of `job`'s plan under its retry policy: the files of
    /// `kinds` (`"output"`, `"error"`, `"deleted"`), of `types` (empty: all),
    /// `maxPerOrigin` at once per origin, `countCheck` `"strict"|"lenient"`,
    /// `invalidLines` `"report"|"raise"` (what a line the caller reports as
    /// invalid does to its file), lines up to `maxLine` bytes (0: the
    /// default), without `skipFiles` (plan file names); `expiresAtMs` (0: the
    /// outcome's) makes links about to expire refresh before files start.
    /// `validation` (`"none"|"structural"|"json"`, `undefined`: the core's
    /// default) is the core's rule for a line (`line_problem`): a line that
    /// fails it crosses marked (see `feed`), and the caller reports it with
    /// `reportInvalidLine` (the core counts it once). The plan never
    /// crosses to JS as one array. `gzip` asks for gzip bodies (fetch decodes
    /// them, so they cannot continue by range). For `maxPerOrigin`,
    /// `countCheck`, `invalidLines` and `gzip`, `undefined` is the core's default. With `savedProgress` the files `job` records as done
    /// are left out and part-way ones continue from their checkpoint (K5; the
    /// caller holds what was handed out before).
    /// (Arguments, not an options object: no deserializer for it in the `.wasm`.)
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        job: &WasmJob,
        kinds: Vec<String>,
        types: Vec<String>,
        max_per_origin: Option<u32>,
        count_check: Option<String>,
        invalid_lines: Option<String>,
        max_line: f64,
        mut skip_files: Vec<String>,
        expires_at_ms: f64,
        gzip: Option<bool>,
        saved_progress: bool,
        validation: Option<String>,
        opaque_files: Option<bool>,
    ) -> Result<WasmDownloads, JsValue> {
        let kinds = kinds
            .iter()
            .map(|k| match k.as_str() {
                "output" => Ok(FileKind::Output),
                "error" => Ok(FileKind::Error),
                "deleted" => Ok(FileKind::Deleted),
                other => Err(usage(&format!("unknown file kind {other:?}"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let defaults = DownloadOptions::default();
        let count_check = match count_check.as_deref() {
            None => defaults.count_check,
            Some("strict") => CountCheck::Strict,
            Some("lenient") => CountCheck::Lenient,
            Some(other) => return Err(usage(&format!("countCheck must be \"strict\" or \"lenient\", not {other:?}"))),
        };
        let invalid_lines = match invalid_lines.as_deref() {
            None => defaults.invalid_lines,
            Some("report") => InvalidLines::Report,
            Some("raise") => InvalidLines::Raise,
            Some(other) => {
                return Err(usage(&format!("onInvalidLine must be \"report\", \"raise\" or a function, not {other:?}")))
            }
        };
        let validation = match validation.as_deref() {
            None => defaults.validation,
            Some("none") => Validation::None,
            Some("structural") => Validation::Structural,
            Some("json") => Validation::Json,
            Some(other) => {
                return Err(usage(&format!("validation must be \"none\", \"structural\" or \"json\", not {other}")))
            }
        };
        let job = &job.inner;
        let plan = job.download_plan();
        let mut continue_files = Vec::new();
        if saved_progress {
            // The core's rule (K5, K6); the consumer holds whatever was handed out.
            let resume = fhir_async::resume_decision(&plan, job.file_records(), |_| true, |_| true);
            skip_files.extend(resume.skip_files);
            continue_files = resume.continue_files;
        }
        let options = DownloadOptions {
            kinds,
            types,
            max_per_origin: max_per_origin.unwrap_or(defaults.max_per_origin),
            count_check,
            invalid_lines,
            validation: Validation::None,
            max_line: if max_line >= 1.0 { ms(max_line) } else { defaults.max_line },
            skip_files,
            continue_files,
            gzip: gzip.unwrap_or(defaults.gzip),
            // A stream cannot take lines back: a file that changed after lines
            // were handed out fails with `file_changed` (K7).
            restart_changed: false,
            // Files that are not NDJSON (Parquet, L13), as bytes (`takeBytes`), only when asked.
            opaque_files: opaque_files.unwrap_or(defaults.opaque_files),
            expires_at_ms: if expires_at_ms >= 1.0 {
                Some(ms(expires_at_ms))
            } else {
                job.outcome().and_then(|o| o.expires_at_ms)
            },
            ..defaults
        };
        Ok(WasmDownloads::over(Downloads::new(plan, options, &job.config().retry), validation))
    }

    /// How many files are selected.
    #[wasm_bindgen(getter)]
    pub fn length(&self) -> usize {
        self.inner.files().len()
    }

    /// Selected file `i` (`PlannedFile`; after a refresh, the fresh entry), or `null`.
    pub fn file(&self, i: usize) -> Result<JsValue, JsValue> {
        self.inner.files().get(i).map_or(Ok(JsValue::NULL), to_js)
    }

    /// `{type: "send", file, request}`, `{type: "refreshToken"}`, `{type: "refreshManifest"}`,
    /// `{type: "wait", untilMs, delayMs}`, `{type: "idle"}` or `{type: "done"}`.
    pub fn next(&mut self, now: f64) -> Result<JsValue, JsValue> {
        let step: DownloadStep = self.inner.next(ms(now)).map_err(|e| download_error(&e))?;
        to_js(&step)
    }

    /// The response head of file `file`'s request `id` (headers flat:
    /// `[name, value, ...]`): `"stream"` (feed the body) or `"discard"` (the
    /// request is over; the file may have a result now: read `result(file)`).
    #[wasm_bindgen(js_name = handleHead)]
    pub fn handle_head(
        &mut self,
        file: usize,
        request_id: f64,
        status: u16,
        headers: Vec<String>,
        already_decoded: bool,
        now: f64,
    ) -> Result<String, JsValue> {
        let headers = header_pairs(headers);
        match self.inner.handle_head(file, id(request_id), status, &headers, already_decoded, ms(now)) {
            Ok(HeadDecision::Stream) => Ok("stream".into()),
            Ok(_) => Ok("discard".into()),
            Err(e) => Err(download_error(&e)),
        }
    }

    /// A chunk of file `file`'s body: the new lines joined with `"\n"`; then
    /// `discarded` says whether to stop reading this body. A line that fails
    /// the validation (or is not UTF-8) crosses as a NUL followed by the core's
    /// words for it (no JSON line starts with a NUL).
    /// An opaque file's (`file(i).opaqueFormat`, L13) body gives no lines: its
    /// bytes are read with `takeBytes` after each `feed` and `finish`.
    pub fn feed(&mut self, file: usize, request_id: f64, chunk: &[u8], now: f64) -> Result<String, JsValue> {
        let opaque = self.is_opaque(file);
        let (lines, bytes, validation) = (&mut self.lines, &mut self.bytes, self.validation);
        lines.clear();
        let d =
            self.inner.feed(file, id(request_id), chunk, ms(now), |l| hand_out(opaque, lines, bytes, validation, l));
        self.discarded = d.map_err(|e| download_error(&e))? == HeadDecision::Discard;
        Ok(take_string(&mut self.lines))
    }

    /// The bytes of an opaque file the last `feed` or `finish` handed out (L13), taken.
    #[wasm_bindgen(js_name = takeBytes)]
    pub fn take_bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }

    /// The downloads of a `Hydrator`'s planned attachment files (protocol M):
    /// each as the core planned it, its body as bytes (`takeBytes`).
    #[cfg(feature = "attachments")]
    pub(crate) fn for_attachments(files: Vec<PlannedFile>, retry: &RetryPolicy, max_per_origin: Option<u32>) -> Self {
        let defaults = DownloadOptions::default().for_attachments();
        let options = DownloadOptions { max_per_origin: max_per_origin.unwrap_or(defaults.max_per_origin), ..defaults };
        WasmDownloads::over(Downloads::new(files, options, retry), Validation::None)
    }

    /// File `file`'s attachment id and error, when its result is an error.
    #[cfg(feature = "attachments")]
    pub(crate) fn attachment_failure(&self, file: usize) -> Option<(usize, DownloadError)> {
        let error = self.inner.result(file)?.error.clone()?;
        Some((self.inner.files().get(file)?.index, error))
    }

    fn over(inner: Downloads, validation: Validation) -> WasmDownloads {
        let announced = vec![false; inner.files().len()];
        WasmDownloads {
            inner,
            lines: Vec::new(),
            bytes: Vec::new(),
            discarded: false,
            announced,
            snapshots: Vec::new(),
            next_snapshot: 1,
            validation,
        }
    }

    fn is_opaque(&self, file: usize) -> bool {
        self.inner.files().get(file).is_some_and(|f| f.opaque_format.is_some())
    }

    /// Whether the last `feed` ended the request (stop reading the body).
    #[wasm_bindgen(getter)]
    pub fn discarded(&self) -> bool {
        self.discarded
    }

    /// File `file`'s body ended: the last lines, as `feed` returns them.
    pub fn finish(&mut self, file: usize, request_id: f64, now: f64) -> Result<String, JsValue> {
        let opaque = self.is_opaque(file);
        let (lines, bytes, validation) = (&mut self.lines, &mut self.bytes, self.validation);
        lines.clear();
        let r = self.inner.finish(file, id(request_id), ms(now), |l| hand_out(opaque, lines, bytes, validation, l));
        r.map_err(|e| download_error(&e))?;
        Ok(take_string(&mut self.lines))
    }

    /// File `file`'s request failed before or during the body.
    #[wasm_bindgen(js_name = handleTransportError)]
    pub fn handle_transport_error(
        &mut self,
        file: usize,
        request_id: f64,
        message: &str,
        now: f64,
    ) -> Result<(), JsValue> {
        self.inner.handle_transport_error(file, id(request_id), message, ms(now)).map_err(|e| download_error(&e))
    }

    /// The start (at most 64 KiB) of the error response that failed file
    /// `file`: the server's words go into its error.
    #[wasm_bindgen(js_name = errorBody)]
    pub fn error_body(&mut self, file: usize, body: &[u8]) {
        self.inner.error_body(file, body);
    }

    /// A line (1-based) of file `file` that crossed marked, or that JS could not parse: counted once in
    /// its report. Under `invalidLines: "raise"` the answer is the file's
    /// `invalid_line` error (the file fails with it), else `null`.
    #[wasm_bindgen(js_name = reportInvalidLine)]
    pub fn report_invalid_line(&mut self, file: usize, line: f64, message: &str) -> JsValue {
        self.inner.report_invalid_line(file, id(line), message).map_or(JsValue::NULL, |e| download_error(&e))
    }

    /// The typed `invalid_line` error of that line (returned, not thrown).
    #[wasm_bindgen(js_name = invalidLineError)]
    pub fn invalid_line_error(&self, file: usize, line: f64, message: &str) -> JsValue {
        // Without the URL's query (K10: a signed URL's query is a credential).
        let url = self.inner.files().get(file).map(|f| redact_url(&f.url)).unwrap_or_default();
        download_error(&DownloadError::InvalidLine { url, line: id(line), message: message.to_owned() })
    }

    /// After `refreshToken`: the files that waited go on.
    #[wasm_bindgen(js_name = tokenRefreshed)]
    pub fn token_refreshed(&mut self) {
        self.inner.token_refreshed();
    }

    /// After `refreshToken`, when no token can be had: the waiting files fail naming `reason`.
    #[wasm_bindgen(js_name = tokenUnavailable)]
    pub fn token_unavailable(&mut self, reason: &str) {
        self.inner.token_unavailable(reason);
    }

    /// After `refreshManifest`: `job` after its refresh; its fresh plan
    /// re-binds the waiting files (matched by what they are, K6). When the
    /// refresh failed (the job's `refresh_error`, else `failure`: why the
    /// binding could not run it) the waiting files fail with that cause and the
    /// job keeps its result (K8).
    #[wasm_bindgen(js_name = manifestRefreshed)]
    pub fn manifest_refreshed(&mut self, job: &WasmJob, failure: Option<String>) {
        match (job.inner.refresh_error(), failure) {
            (Some(e), _) => self.inner.manifest_refresh_failed(&e.to_string()),
            (None, Some(why)) => self.inner.manifest_refresh_failed(&why),
            (None, None) => self.inner.manifest_refreshed(job.inner.download_plan()),
        }
    }

    /// Files that got their result since the last call (indices, in order).
    pub fn finished(&mut self) -> Vec<u32> {
        let mut out = Vec::new();
        for (i, seen) in self.announced.iter_mut().enumerate() {
            if !*seen && self.inner.result(i).is_some() {
                *seen = true;
                out.push(i as u32);
            }
        }
        out
    }

    /// File `file`'s result, once it has one: `{file, report?, error?}`,
    /// `error` a real `Error` (name `DownloadError`, the core's `code`).
    pub fn result(&self, file: usize) -> Result<JsValue, JsValue> {
        let Some(r) = self.inner.result(file) else { return Ok(JsValue::NULL) };
        let out = to_js(r)?;
        if let Some(e) = &r.error {
            // Setting a data property on a fresh object cannot fail.
            let _ = js_sys::Reflect::set(&out, &"error".into(), &download_error(e));
        }
        Ok(out)
    }

    /// Totals: `DownloadProgress` (`files`, `filesDone`, `filesFailed`,
    /// `filesActive`, `resources`, `bytes`, `expectedResources`, `originLimits`).
    pub fn progress(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.progress())
    }

    /// Takes the core's record of file `file` now (K5: done with its figures,
    /// or part-way with its checkpoint) and returns a handle to commit once
    /// the consumer holds every line handed out so far; 0 when the core has
    /// no record of it (a gzip body, a server without ranges).
    pub fn snapshot(&mut self, file: usize) -> u32 {
        let Some(record) = self.inner.record(file) else { return 0 };
        let handle = self.next_snapshot;
        self.next_snapshot += 1;
        self.snapshots.push((handle, record));
        handle
    }

    /// Records snapshot `handle` in `job`'s saved state (`job.toJson()`), and
    /// forgets it and the older snapshots of the same file.
    pub fn commit(&mut self, job: &mut WasmJob, handle: u32) {
        let Some(at) = self.snapshots.iter().position(|(h, _)| *h == handle) else { return };
        let (_, record) = self.snapshots.remove(at);
        self.snapshots.retain(|(h, r)| *h > handle || r.file_name != record.file_name);
        job.inner.record_file(record);
    }

    /// The per-origin limit's changes since the last call (`LimitChange[]`:
    /// `{origin, from, to, reason}`), or `null` when there were none.
    #[wasm_bindgen(js_name = takeLimitChanges)]
    pub fn take_limit_changes(&mut self) -> Result<JsValue, JsValue> {
        let changes = self.inner.take_limit_changes();
        if changes.is_empty() {
            Ok(JsValue::NULL)
        } else {
            to_js(&changes)
        }
    }
}

/// `push_line`, with a line that fails `validation` replaced by a NUL and the
/// core's words for it (`line_problem`).
/// One piece of a body the core handed out: an opaque file's bytes as they are, else a line.
fn hand_out(opaque: bool, lines: &mut Vec<u8>, bytes: &mut Vec<u8>, validation: Validation, piece: &[u8]) {
    if opaque {
        bytes.extend_from_slice(piece);
    } else {
        mark_line(lines, validation, piece);
    }
}

fn mark_line(buf: &mut Vec<u8>, validation: Validation, line: &[u8]) {
    match line_problem(validation, line) {
        None => push_line(buf, line),
        Some(problem) => {
            push_line(buf, b"\0");
            buf.extend_from_slice(problem.as_bytes());
        }
    }
}

pub(crate) fn push_line(buf: &mut Vec<u8>, line: &[u8]) {
    if !buf.is_empty() {
        buf.push(b'\n');
    }
    buf.extend_from_slice(line);
}

/// The joined lines as a string. A line that is not UTF-8 crosses as a NUL
/// followed by the core's words for it (`line_problem`: no JSON line starts
/// with a NUL), which JS reports as an invalid line with those words: its
/// bytes never turn into U+FFFD silently.
pub(crate) fn take_string(buf: &mut Vec<u8>) -> String {
    let bytes = std::mem::take(buf);
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let bytes = e.into_bytes();
            let mut out = String::with_capacity(bytes.len());
            for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                match std::str::from_utf8(line) {
                    Ok(text) => out.push_str(text),
                    Err(_) => {
                        out.push('\0');
                        out.push_str(&line_problem(Validation::Json, line).unwrap_or_default());
                    }
                }
            }
            out
        }
    }
}
