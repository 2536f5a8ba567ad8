//! The browser build's `Hydrator` (feature `attachments` off, issue 24): the
//! attachments of protocol M are fetched by the Node build, where a service
//! pulls notes and reports into its NDJSON. Leaving the core's attachment code
//! out keeps the browser's `.wasm` about 18 KB (gzipped) smaller. The class
//! exists so that the package's JavaScript links the same way in both builds;
//! its constructor throws a usage error that says what to do instead.

use wasm_bindgen::prelude::*;

use crate::errors::usage;

/// Attachments are not in the browser build (see the module docs).
#[wasm_bindgen(js_name = Hydrator)]
#[derive(Debug)]
pub struct WasmHydrator {
    _private: (),
}

#[wasm_bindgen(js_class = Hydrator)]
impl WasmHydrator {
    /// Always throws: fetch attachments (`attachments: "inline" | "files"`)
    /// in Node, or leave the option out (`"off"`) in a browser.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Result<WasmHydrator, JsValue> {
        Err(usage(
            "attachments (protocol M) are not in the browser build of fhir-async: fetch them in Node \
             (the package's Node build has them), or leave the attachments option out",
        ))
    }
}
