//! The reference server in-process for the client's tests, on 127.0.0.1
//! port 0, stopped when dropped; and a client of it with short waits.
#![allow(dead_code)] // each test file uses a part

use fhir_async::RetryPolicy;
use fhir_async_client::Client;
use fhir_async_testserver::{serve, Config, ServerHandle};

pub struct Server {
    pub origin: String,
    rt: tokio::runtime::Runtime,
    handle: Option<ServerHandle>,
}

impl Server {
    /// Jobs of 300 ms over 30 patients, unless `f` says otherwise.
    pub fn start(f: impl FnOnce(&mut Config)) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut cfg = Config { job_ms: 300, patients: 30, ..Config::default() };
        f(&mut cfg);
        let (addr, _, handle) = rt.block_on(serve(cfg)).expect("server starts");
        Server { origin: format!("http://{addr}"), rt, handle: Some(handle) }
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

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown());
        }
    }
}

/// Polls and backoffs of tens of milliseconds.
pub fn fast() -> RetryPolicy {
    RetryPolicy { min_wait_ms: 20, initial_backoff_ms: 20, max_backoff_ms: 200, ..RetryPolicy::default() }
}
