//! Engine errors become real JS `Error`s with a stable `name`, `code` and a
//! `details` object (the error's serde form); the npm layer maps `name` + `code`
//! to its subclasses.

use js_sys::{Error as JsErr, Reflect};
use serde::Serialize;
use wasm_bindgen::JsValue;

fn make(name: &str, code: &str, message: &str, detail: JsValue) -> JsValue {
    let e = JsErr::new(message);
    e.set_name(name);
    // Setting plain data properties on a fresh Error object cannot fail.
    let _ = Reflect::set(&e, &"code".into(), &code.into());
    let _ = Reflect::set(&e, &"details".into(), &detail);
    e.into()
}

fn detail<T: Serialize>(value: &T) -> JsValue {
    crate::convert::to_js(value).unwrap_or(JsValue::NULL)
}

/// A job error (`usage`, `protocol`, `deadline_exceeded`, ...).
pub(crate) fn job_error(err: &fhir_async::Error) -> JsValue {
    make("FhirAsyncError", err.code(), &err.to_string(), detail(err))
}

/// A file download error (`blocked`, `http`, `count_mismatch`, ...).
pub(crate) fn download_error(err: &fhir_async::DownloadError) -> JsValue {
    make("DownloadError", err.code(), &err.to_string(), detail(err))
}

/// An attachment's own failure (`attachment_outcome`, `hash_mismatch`, `bad_binary`).
#[cfg(feature = "attachments")]
pub(crate) fn attachment_error(err: &fhir_async::attachments::AttachmentError) -> JsValue {
    make("AttachmentError", err.code(), &err.to_string(), detail(&err.info()))
}

/// A refused callback (`bad_signature`, `malformed`).
pub(crate) fn callback_error(err: &fhir_async::CallbackError) -> JsValue {
    make("CallbackError", err.code(), &err.to_string(), detail(err))
}

/// No token could be had (`auth`): the server's `error` / `error_description` in `details`.
#[cfg(feature = "backend-services")] // the browser build has no TokenSession (auth_stub.rs)
pub(crate) fn auth_error(err: &fhir_async::AuthError) -> JsValue {
    make("FhirAsyncError", err.code(), &err.to_string(), detail(err))
}

/// The binding itself was misused (a value of the wrong shape).
pub(crate) fn usage(message: &str) -> JsValue {
    make("FhirAsyncError", "usage", &format!("invalid use of the API: {message}"), JsValue::NULL)
}
