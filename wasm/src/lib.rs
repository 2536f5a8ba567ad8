//! The wasm-bindgen face of the fhir-async engine: the `Job` state machine,
//! the `Downloads` coordinator of a finished job's files, the `Hydrator` of
//! their attachments, the SMART Backend
//! Services `TokenSession` and the callback helpers, exported to JavaScript
//! with camelCase names. Everything is I/O-free; the npm package (`npm/`)
//! owns `fetch`, timers, streams and WebCrypto signing, and decides nothing.
//!
//! Values cross the boundary as JSON text (`serde_json` here, `JSON.parse` in
//! the glue: see `convert.rs`; one serializer in the `.wasm`, not a second
//! one from `serde-wasm-bindgen`), so JavaScript sees exactly the camelCase
//! shapes the shared scenario vectors (`tests/vectors/`) describe. Errors are
//! real `Error` objects with a stable `name`, the core's `code` and
//! `details`; the npm layer maps every code to its class.
#![cfg(target_family = "wasm")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// SMART Backend Services signs with a private key, which never belongs in a
// browser: the npm package's browser build leaves it out (feature
// `backend-services`, issue 22) and has the stub `TokenSession` of
// `auth_stub.rs` instead, whose constructor says why.
// Attachments (protocol M, issue 24) are the Node build's too: the browser
// build's `Hydrator` (`attachments_stub.rs`) throws a usage error.
#[cfg(feature = "attachments")]
mod attachments;
#[cfg(not(feature = "attachments"))]
#[path = "attachments_stub.rs"]
mod attachments;
#[cfg(feature = "backend-services")]
mod auth;
#[cfg(not(feature = "backend-services"))]
#[path = "auth_stub.rs"]
mod auth;
mod callback;
mod convert;
mod downloads;
mod errors;
mod job;

pub use attachments::WasmHydrator;
pub use auth::WasmTokenSession;
pub use callback::{parse_callback, sign_callback, user_agent, verify_callback};
pub use downloads::WasmDownloads;
pub use job::WasmJob;
