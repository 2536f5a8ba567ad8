//! Crossing values: serde shapes to and from JS, clocks, header lists.

use serde::{de::DeserializeOwned, Serialize};
use wasm_bindgen::JsValue;

use crate::errors::usage;

/// Serializes for JS: plain objects (not `Map`s), `null` for `None`, numbers for `u64`.
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| usage(&format!("cannot convert a value for JavaScript: {e}")))
}

/// Reads a serde shape from a JS value; a wrong shape is a usage error naming `what`.
pub(crate) fn from_js<T: DeserializeOwned>(value: JsValue, what: &str) -> Result<T, JsValue> {
    serde_wasm_bindgen::from_value(value).map_err(|e| usage(&format!("invalid {what}: {e}")))
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
