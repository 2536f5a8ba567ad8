//! `Hydrator`: the core's attachment hydrator (issue 24, protocol M) for a
//! stream of resources. Each line of a downloaded NDJSON file goes through
//! `line`; the core holds the ones with attachments to fetch and plans those
//! fetches (`downloads`: a `Downloads` of them); JS hands each
//! body back (`fetched`) or its failure (`failedIn`) and takes the held lines
//! once they are settled (`release`). Which attachment, where the token goes,
//! the size limit, the decoding of a JSON `Binary` and the hash check are the
//! core's; JS moves bytes.

use fhir_async::attachments::{AttachmentError, AttachmentMode, AttachmentOptions, Hydrate, Hydrator};
use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::convert::{ms, to_js};
use crate::downloads::{push_line, take_string, WasmDownloads};
use crate::errors::{attachment_error, usage};
use crate::job::WasmJob;

/// The attachments of a stream of resources (the engine's `Hydrator`).
#[wasm_bindgen(js_name = Hydrator)]
#[derive(Debug)]
pub struct WasmHydrator {
    inner: Hydrator,
    mode: AttachmentMode,
}

#[wasm_bindgen(js_class = Hydrator)]
impl WasmHydrator {
    /// The hydrator of `job`'s resources (the token rule is the job's: its
    /// base URL and `allowedOrigins`) under the core's `AttachmentOptions`:
    /// `mode` `"off"|"inline"|"files"`, `types` (empty: every type),
    /// `maxSize` bytes, `allElements`; `undefined` (and a `maxSize` of 0):
    /// the core's default. (Arguments, not an options object: no deserializer
    /// for it in the `.wasm`.)
    #[wasm_bindgen(constructor)]
    pub fn new(
        job: &WasmJob,
        mode: Option<String>,
        types: Vec<String>,
        max_size: f64,
        all_elements: Option<bool>,
    ) -> Result<WasmHydrator, JsValue> {
        let defaults = AttachmentOptions::default();
        let mode = match mode.as_deref() {
            None => defaults.mode,
            Some("off") => AttachmentMode::Off,
            Some("inline") => AttachmentMode::Inline,
            Some("files") => AttachmentMode::Files,
            Some(other) => {
                return Err(usage(&format!("attachments must be \"off\", \"inline\" or \"files\", not {other:?}")))
            }
        };
        let options = AttachmentOptions {
            mode,
            types,
            max_size: if max_size >= 1.0 { ms(max_size) } else { defaults.max_size },
            all_elements: all_elements.unwrap_or(defaults.all_elements),
        };
        Ok(WasmHydrator { inner: Hydrator::new(job.inner.token_policy(), options), mode })
    }

    /// The mode the core read from the options: `"off"`, `"inline"` or `"files"`.
    #[wasm_bindgen(getter)]
    pub fn mode(&self) -> String {
        match self.mode {
            AttachmentMode::Off => "off",
            AttachmentMode::Inline => "inline",
            AttachmentMode::Files => "files",
        }
        .into()
    }

    /// One line of a downloaded NDJSON file: `"pass"` (hand it out now, as it
    /// is) or `"held"` (it has attachments to fetch: it comes back from `release`).
    pub fn line(&mut self, line: &str) -> String {
        match self.inner.line(line.as_bytes()) {
            Hydrate::Pass => "pass".into(),
            Hydrate::Held => "held".into(),
        }
    }

    /// The attachment files planned since the last call (`PlannedFile[]`,
    /// kind `"attachment"`, `index` = the attachment's id), taken: to look at
    /// them (`downloads` takes them to fetch them).
    #[wasm_bindgen(js_name = takePending)]
    pub fn take_pending(&mut self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.take_pending())
    }

    /// The attachment files planned since the last call, taken, as a
    /// `Downloads` under `job`'s retry policy, `maxPerOrigin` at once per
    /// origin (`undefined`: the core's default), each body as bytes
    /// (`takeBytes`), each file as the core planned it (token rule, `Accept`,
    /// size limit); `undefined` when none is pending.
    pub fn downloads(&mut self, job: &WasmJob, max_per_origin: Option<u32>) -> Option<WasmDownloads> {
        let files = self.inner.take_pending();
        if files.is_empty() {
            return None;
        }
        Some(WasmDownloads::for_attachments(files, &job.inner.config().retry, max_per_origin))
    }

    /// The body of attachment `id` (its `PlannedFile.index`) with the response's
    /// `Content-Type`: decoded (a JSON `Binary`'s `data`), hash-checked, kept
    /// for its lines. Returns `{contentType, bytes, size, sha1}` (what a
    /// `files` mode binding writes to its `fileName`); throws the typed error
    /// (`attachment_outcome`, `hash_mismatch`, `bad_binary`, ...), which the
    /// core has recorded in the attachment's report.
    pub fn fetched(&mut self, id: usize, body: Vec<u8>, content_type: Option<String>) -> Result<JsValue, JsValue> {
        let fetched = self.inner.fetched(id, body, content_type.as_deref()).map_err(|e| error(&e))?;
        let out = Object::new();
        // Setting data properties on a fresh object cannot fail.
        let ct = fetched.content_type.as_deref().map_or(JsValue::NULL, JsValue::from);
        let _ = Reflect::set(&out, &"contentType".into(), &ct);
        let _ = Reflect::set(&out, &"bytes".into(), &Uint8Array::from(fetched.bytes.as_slice()));
        let _ = Reflect::set(&out, &"size".into(), &(fetched.size as f64).into());
        let _ = Reflect::set(&out, &"sha1".into(), &fetched.sha1.as_str().into());
        Ok(out.into())
    }

    /// File `file` of `downloads` (from `downloads`) has its result: when it
    /// is an error, its attachment failed for good (its lines go out
    /// unchanged, M9) and the answer is `true`; else `false` (hand its bytes
    /// to `fetched`).
    #[wasm_bindgen(js_name = failedIn)]
    pub fn failed_in(&mut self, downloads: &WasmDownloads, file: usize) -> bool {
        let Some((id, error)) = downloads.attachment_failure(file) else { return false };
        self.inner.failed(id, error);
        true
    }

    /// The held lines whose attachments are all settled, in arrival order,
    /// joined with `"\n"` (as `Downloads.feed` gives lines): hydrated
    /// (`inline`) or unchanged (`files`, or a failed attachment).
    pub fn release(&mut self) -> String {
        let mut buf = Vec::new();
        for line in self.inner.release() {
            push_line(&mut buf, &line);
        }
        take_string(&mut buf)
    }

    /// One `AttachmentReport` per planned attachment so far.
    pub fn reports(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.reports())
    }

    /// How many attachments failed.
    pub fn failures(&self) -> usize {
        self.inner.failures()
    }
}

fn error(e: &AttachmentError) -> JsValue {
    match e {
        AttachmentError::Download(d) => crate::errors::download_error(d),
        other => attachment_error(other),
    }
}
