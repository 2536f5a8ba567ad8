//! What tests observe: `GET /_admin/stats`, `POST /_admin/reset`, and the `--log` access log.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{LineWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::{json, Value};

use crate::app::Origin;
use crate::http::{self, Tag};
use crate::jobs::Jobs;

/// How many requests the stats keep.
pub const MAX_LOG: usize = 10_000;

/// Request statistics.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<Inner>,
    /// File download counters (shared with the bodies being written).
    pub files: Arc<FileCounters>,
}

/// File download counters, server-wide (issue 14).
#[derive(Debug, Default)]
pub struct FileCounters {
    /// Body bytes of file responses handed to the connections (cut bodies included).
    pub bytes_sent: AtomicU64,
    /// File downloads in flight now.
    pub in_flight: AtomicU64,
    /// The most file downloads in flight at once.
    pub max_in_flight: AtomicU64,
    /// Complete (200) file responses.
    pub ok: AtomicU64,
    /// 206 responses.
    pub partial: AtomicU64,
    /// 200 responses to a request that carried `Range`.
    pub range_ignored: AtomicU64,
    /// 416 responses.
    pub unsatisfiable: AtomicU64,
    /// 429 responses (fault `conn`).
    pub throttled: AtomicU64,
    /// Bodies aborted on purpose (faults `cut` and `reset`).
    pub cut: AtomicU64,
}

impl FileCounters {
    /// Adds one to a counter.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Value {
        let g = |c: &AtomicU64| c.load(Ordering::SeqCst);
        json!({
            "200": g(&self.ok), "206": g(&self.partial), "200_to_range": g(&self.range_ignored),
            "416": g(&self.unsatisfiable), "429": g(&self.throttled), "cut": g(&self.cut),
            "in_flight": g(&self.in_flight),
        })
    }

    fn reset(&self) {
        for c in [
            &self.bytes_sent,
            &self.ok,
            &self.partial,
            &self.range_ignored,
            &self.unsatisfiable,
            &self.throttled,
            &self.cut,
        ] {
            c.store(0, Ordering::SeqCst);
        }
        self.max_in_flight.store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

#[derive(Debug, Default)]
struct Inner {
    total: u64,
    routes: HashMap<String, u64>,
    requests: VecDeque<Value>,
    storage_auth: u64,
    routes_auth: HashMap<String, u64>,
    bytes: u64,
    route_bytes: HashMap<String, u64>,
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one request.
    pub fn record(
        &self,
        origin: Origin,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        tag: Option<&Tag>,
        status: u16,
    ) {
        let route = tag.map_or_else(|| format!("{}.other", origin.name()), |t| t.route.clone());
        let hdrs: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| {
                // A token request's Authorization is a client secret (client_secret_basic): never kept.
                let v = if route == "auth.token" && k == axum::http::header::AUTHORIZATION {
                    "[redacted]".to_string()
                } else {
                    String::from_utf8_lossy(v.as_bytes()).into_owned()
                };
                (k.as_str().to_string(), Value::from(v))
            })
            .collect();
        let mut g = self.lock();
        g.total += 1;
        *g.routes.entry(route.clone()).or_default() += 1;
        if headers.contains_key(axum::http::header::AUTHORIZATION) {
            if origin == Origin::Storage {
                g.storage_auth += 1;
            }
            *g.routes_auth.entry(route.clone()).or_default() += 1;
        }
        if g.requests.len() == MAX_LOG {
            g.requests.pop_front();
        }
        g.requests.push_back(json!({
            "method": method.as_str(),
            "path": path,
            "origin": origin.name(),
            "route": route,
            "job": tag.and_then(|t| t.job.clone()),
            "status": status,
            "headers": hdrs,
        }));
    }

    /// Counts `n` response body bytes written for `route`.
    pub fn add_bytes(&self, route: &str, n: u64) {
        let mut g = self.lock();
        g.bytes += n;
        match g.route_bytes.get_mut(route) {
            Some(b) => *b += n,
            None => {
                g.route_bytes.insert(route.to_string(), n);
            }
        }
    }

    /// The stats document.
    pub fn snapshot(&self, jobs: &Jobs, tokens: Value) -> Response {
        let g = self.lock();
        let v = json!({
            "total": g.total,
            "routes": g.routes,
            "jobs": jobs.counts(),
            "storage_requests_with_authorization": g.storage_auth,
            "routes_with_authorization": g.routes_auth,
            "bytes": {"total": g.bytes, "routes": g.route_bytes},
            "file_bytes_sent": self.files.bytes_sent.load(Ordering::SeqCst),
            "max_files_in_flight": self.files.max_in_flight.load(Ordering::SeqCst),
            "files": self.files.snapshot(),
            "tokens": tokens,
            "requests": g.requests,
        });
        http::json_with(200, "application/json", &v)
    }

    /// Clears everything.
    pub fn reset(&self) {
        *self.lock() = Inner::default();
        self.files.reset();
    }
}

/// The `--log` access log: `unix_ms origin method path status micros`.
#[derive(Debug)]
pub struct AccessLog(Mutex<LineWriter<File>>);

impl AccessLog {
    /// Opens (appends to) the log file.
    pub fn open(path: &Path) -> std::io::Result<AccessLog> {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AccessLog(Mutex::new(LineWriter::new(f))))
    }

    /// Writes one line (errors are ignored: logging must not fail a request).
    pub fn write(&self, origin: Origin, method: &Method, path: &str, status: u16, took: Duration) {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            w,
            "{} {} {} {} {} {}us",
            crate::time::now_ms(),
            origin.name(),
            method,
            path,
            status,
            took.as_micros()
        );
    }
}
