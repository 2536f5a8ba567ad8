//! The wasm-bindgen face of the fhir-async engine: the low-level `Job` and
//! `FileDownload` state machines, the `Downloads` coordinator and the callback helpers, exported to
//! JavaScript with camelCase names. Everything is I/O-free; the npm package
//! (`npm/`) owns `fetch`, timers and streams.
//!
//! Values cross the boundary with `serde-wasm-bindgen` in its JSON-compatible
//! mode, so JavaScript sees exactly the camelCase shapes the shared scenario
//! vectors (`tests/vectors/`) describe. Errors are real `Error` objects with
//! a stable `name` and `code`; the npm layer maps them to subclasses.
#![cfg(target_family = "wasm")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auth;
mod callback;
mod convert;
mod downloads;
mod errors;
mod job;

pub use auth::WasmTokenSession;
pub use callback::{parse_callback, sign_callback, user_agent, verify_callback};
pub use downloads::WasmDownloads;
pub use job::WasmJob;
