//! `FileDownload`: one file's download state machine. Lines cross to JS in
//! one string per call (joined with `\n`), so a chunk costs one UTF-8 decode
//! on the JS side instead of one boundary crossing per resource.

use fhir_async::{
    CountCheck, DownloadAction, DownloadError, FileDownload, HeadDecision, PlannedFile, RetryPolicy, Validation,
};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

use crate::convert::{from_js, header_pairs, id, ms, to_js};
use crate::downloads::{push_line, take_string};
use crate::errors::download_error;

/// Options of a download (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Options {
    validation: Option<Validation>,
    max_line: Option<usize>,
    gzip: Option<bool>,
    count_check: Option<CountCheck>,
}

/// One file's download (the engine's `FileDownload`).
#[wasm_bindgen(js_name = FileDownload)]
#[derive(Debug)]
pub struct WasmFileDownload {
    inner: FileDownload,
    lines: Vec<u8>,
    discarded: bool,
    /// The error the last call threw, for `withBody`.
    failed: Option<DownloadError>,
}

#[wasm_bindgen(js_class = FileDownload)]
impl WasmFileDownload {
    /// Starts the download of a `PlannedFile` under a `RetryPolicy` (both plain
    /// objects; `retry` may be `null` for the defaults). `options`:
    /// `{validation?: "none"|"structural"|"json", maxLine?, gzip?, countCheck?: "strict"|"lenient"}`.
    #[wasm_bindgen(constructor)]
    pub fn new(file: JsValue, retry: JsValue, options: JsValue) -> Result<WasmFileDownload, JsValue> {
        let file: PlannedFile = from_js(file, "PlannedFile")?;
        let retry: RetryPolicy = if retry.is_null() || retry.is_undefined() {
            RetryPolicy::default()
        } else {
            from_js(retry, "RetryPolicy")?
        };
        let options: Options = if options.is_null() || options.is_undefined() {
            Options::default()
        } else {
            from_js(options, "download options")?
        };
        let mut inner = FileDownload::new(file, &retry).map_err(|e| download_error(&e))?;
        if let Some(v) = options.validation {
            inner = inner.with_validation(v);
        }
        if let Some(m) = options.max_line {
            inner = inner.with_max_line(m);
        }
        if let Some(g) = options.gzip {
            inner = inner.with_gzip(g);
        }
        if let Some(c) = options.count_check {
            inner = inner.with_count_check(c);
        }
        Ok(WasmFileDownload { inner, lines: Vec::new(), discarded: false, failed: None })
    }

    /// `{type: "send", request}`, `{type: "wait", untilMs, delayMs}`, `{type: "refreshToken"}`,
    /// `{type: "refreshManifest"}` or `{type: "done", report}`.
    #[wasm_bindgen(js_name = nextAction)]
    pub fn next_action(&mut self, now: f64) -> Result<JsValue, JsValue> {
        let action: DownloadAction = self.inner.next_action(ms(now)).map_err(|e| self.fail(e))?;
        to_js(&action)
    }

    /// The status and headers (flat `[name, value, ...]`) of the response to
    /// request `id`. Returns `"stream"` (feed the body) or `"discard"`.
    /// `alreadyDecoded`: the platform removed the Content-Encoding (fetch does).
    #[wasm_bindgen(js_name = handleHead)]
    pub fn handle_head(
        &mut self,
        request_id: f64,
        status: u16,
        headers: Vec<String>,
        already_decoded: bool,
        now: f64,
    ) -> Result<String, JsValue> {
        let headers = header_pairs(headers);
        match self.inner.handle_head(id(request_id), status, &headers, already_decoded, ms(now)) {
            Ok(HeadDecision::Stream) => Ok("stream".into()),
            Ok(_) => Ok("discard".into()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Feeds a chunk of the body. Returns the new resource lines joined with
    /// `"\n"` (`""` when the chunk completed none). Afterwards `discarded`
    /// says whether to stop reading this body (the engine scheduled a retry).
    pub fn feed(&mut self, request_id: f64, chunk: &[u8], now: f64) -> Result<String, JsValue> {
        let lines = &mut self.lines;
        lines.clear();
        let decision = self.inner.feed(id(request_id), chunk, ms(now), |l| push_line(lines, l));
        let decision = decision.map_err(|e| self.fail(e))?;
        self.discarded = decision == HeadDecision::Discard;
        Ok(take_string(&mut self.lines))
    }

    /// Whether the last `feed` found the body unusable: stop reading it and
    /// call `nextAction` (the retry is already scheduled).
    #[wasm_bindgen(getter)]
    pub fn discarded(&self) -> bool {
        self.discarded
    }

    /// The body ended: returns the last lines (as `feed` does) and checks
    /// integrity and the manifest count; then call `nextAction` again.
    pub fn finish(&mut self, request_id: f64, now: f64) -> Result<String, JsValue> {
        let lines = &mut self.lines;
        lines.clear();
        let done = self.inner.finish(id(request_id), ms(now), |l| push_line(lines, l));
        done.map_err(|e| self.fail(e))?;
        Ok(take_string(&mut self.lines))
    }

    /// The request failed before or during the body.
    #[wasm_bindgen(js_name = handleTransportError)]
    pub fn handle_transport_error(&mut self, request_id: f64, message: &str, now: f64) -> Result<(), JsValue> {
        self.inner.handle_transport_error(id(request_id), message, ms(now)).map_err(|e| self.fail(e))
    }

    /// The error the last call threw, with the server's own words from the
    /// start of the error response's body (read at most 64 KiB of it).
    #[wasm_bindgen(js_name = withBody)]
    pub fn with_body(&mut self, body: &[u8]) -> JsValue {
        match self.failed.take() {
            Some(e) => self.fail(e.with_body(body)),
            None => JsValue::NULL,
        }
    }

    /// After `refreshToken`, when no new token can be had (none configured, or
    /// a fixed string): the file ends; returns the error to report (not thrown).
    #[wasm_bindgen(js_name = tokenUnavailable)]
    pub fn token_unavailable(&mut self, reason: &str) -> JsValue {
        let e = self.inner.token_unavailable(reason);
        self.fail(e)
    }

    /// A line (1-based resource line number) the binding could not parse:
    /// counted once in the file report. Run such a download with validation "none".
    #[wasm_bindgen(js_name = reportInvalidLine)]
    pub fn report_invalid_line(&mut self, line: f64, message: &str) {
        self.inner.report_invalid_line(id(line), message);
    }

    /// The typed `invalid_line` error for that line (for callers that asked for
    /// strict lines); returned, not thrown.
    #[wasm_bindgen(js_name = invalidLineError)]
    pub fn invalid_line_error(&self, line: f64, message: &str) -> JsValue {
        let url = self.inner.file().url.clone();
        download_error(&DownloadError::InvalidLine { url, line: id(line), message: message.to_owned() })
    }

    /// After `refreshManifest`: the file's entry in the fresh plan, or `null`.
    #[wasm_bindgen(js_name = replaceFile)]
    pub fn replace_file(&mut self, file: JsValue) -> Result<(), JsValue> {
        let file: Option<PlannedFile> =
            if file.is_null() || file.is_undefined() { None } else { Some(from_js(file, "PlannedFile")?) };
        self.inner.replace_file(file).map_err(|e| download_error(&e))
    }

    /// The planned file.
    pub fn file(&self) -> Result<JsValue, JsValue> {
        to_js(self.inner.file())
    }

    /// Resources handed out so far.
    #[wasm_bindgen(getter)]
    pub fn resources(&self) -> f64 {
        self.inner.resources() as f64
    }
}

impl WasmFileDownload {
    /// Keeps the error for `withBody` and converts it for JS.
    fn fail(&mut self, e: DownloadError) -> JsValue {
        let js = download_error(&e);
        self.failed = Some(e);
        js
    }
}
