//! The Rust examples of fhir-async: the terminal demo (`make demo`) and one
//! example per server dialect, all on [`fhir_async_client`]. This library
//! only starts the bundled reference server for them.

mod testserver;

pub use testserver::TestServer;
