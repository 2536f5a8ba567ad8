//! The browser build's `TokenSession` (feature `backend-services` off, issue
//! 22): SMART Backend Services signs with a private key or a client secret,
//! and neither belongs in code a browser downloads. The class exists so that
//! the package's JavaScript links the same way in both builds; its
//! constructor throws a usage error that says what to do instead.

use wasm_bindgen::prelude::*;

use crate::errors::usage;

/// SMART Backend Services is not in the browser build (see the module docs).
#[wasm_bindgen(js_name = TokenSession)]
#[derive(Debug)]
pub struct WasmTokenSession {
    _private: (),
}

#[wasm_bindgen(js_class = TokenSession)]
impl WasmTokenSession {
    /// Always throws: use Node (where the package's build has SMART Backend
    /// Services), or keep the key on a server and pass `token: () => ...`.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Result<WasmTokenSession, JsValue> {
        Err(usage(
            "SMART Backend Services (backendServices) is not in the browser build of fhir-async: a private key \
             or client secret never belongs in a browser. Keep it on a server and pass `token: () => ...`, \
             or run this code in Node",
        ))
    }
}
