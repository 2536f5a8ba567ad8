//! Crossing values: serde shapes to and from JS, clocks, header lists.
//!
//! Values cross as JSON text (`serde_json` on this side, `JSON.parse` /
//! `JSON.stringify` on the other): the engine already links `serde_json`, so
//! this adds no second serializer to the `.wasm` (a `serde-wasm-bindgen`
//! path doubles the serde code and blew the size budget), and JS sees exactly
//! the camelCase JSON shapes of the shared vectors (`null` for `None`).

use serde::{de::DeserializeOwned, Serialize};
use wasm_bindgen::JsValue;

use crate::errors::usage;

/// Serializes for JS: plain objects, `null` for `None`, numbers for `u64`.
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    let text = serde_json::to_string(value).map_err(|e| usage(&format!("cannot convert a value: {e}")))?;
    js_sys::JSON::parse(&text)
}

/// Reads a serde shape from a JS value; a wrong shape is a usage error naming `what`.
/// Through a `serde_json::Value`, as the engine reads everything else, so each
/// type's `Deserialize` is compiled for one deserializer only (`.wasm` size).
pub(crate) fn from_js<T: DeserializeOwned>(value: JsValue, what: &str) -> Result<T, JsValue> {
    let text: String =
        js_sys::JSON::stringify(&value).map_err(|_| usage(&format!("invalid {what}: not JSON-serializable")))?.into();
    serde_json::from_slice::<serde_json::Value>(text.as_bytes())
        .and_then(T::deserialize)
        .map_err(|e| usage(&format!("invalid {what}: {e}")))
}

/// JS clocks are `f64` milliseconds; the engine takes whole `u64` milliseconds.
pub(crate) fn ms(now: f64) -> u64 {
    if now.is_finite() && now > 0.0 {
        now as u64
    } else {
        0
    }
}

/// Request ids are small integers; JS holds them as numbers.
pub(crate) fn id(id: f64) -> u64 {
    ms(id)
}

/// `[name, value, name, value, ...]` (what JS passes, cheaply) into header pairs.
pub(crate) fn header_pairs(flat: Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}
