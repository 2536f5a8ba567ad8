//! The reference server in-process for the client's tests, on 127.0.0.1
//! port 0, stopped when dropped; and a client of it with short waits.
#![allow(dead_code)] // each test file uses a part

use fhir_async::RetryPolicy;
use fhir_async_client::Client;
use fhir_async_testserver::{Config, Running};

pub struct Server {
    pub origin: String,
    _running: Running,
}

impl Server {
    /// Jobs of 300 ms over 30 patients, unless `f` says otherwise.
    pub fn start(f: impl FnOnce(&mut Config)) -> Server {
        let mut cfg = Config { job_ms: 300, patients: 30, ..Config::default() };
        f(&mut cfg);
        let running = Running::start(cfg).expect("server starts");
        Server { origin: running.origin.clone(), _running: running }
    }

    /// `/_admin/stats`.
    pub fn stats(&self) -> serde_json::Value {
        let text =
            ureq::get(format!("{}/_admin/stats", self.origin)).call().unwrap().into_body().read_to_string().unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// A client of `origin + path`, no token, short waits.
    pub fn client(&self, path: &str) -> Client {
        Client::builder(&format!("{}{path}", self.origin)).retry(fast()).build().unwrap()
    }
}

/// Polls and backoffs of tens of milliseconds.
pub fn fast() -> RetryPolicy {
    RetryPolicy { min_wait_ms: 20, initial_backoff_ms: 20, max_backoff_ms: 200, ..RetryPolicy::default() }
}
