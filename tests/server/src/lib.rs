//! `fhir-async-testserver`: a reference HTTP server speaking every dialect of the FHIR
//! asynchronous pattern (Bulk Data STU2/3, HealthConnect, Oracle, Medplum AsyncJob, the Aidbox
//! unified pattern, R5 async-bundle), with deterministic faults. See `docs/testserver.md`.
//!
//! ```no_run
//! # async fn demo() {
//! let cfg = fhir_async_testserver::Config::default();
//! let (addr, storage, handle) = fhir_async_testserver::serve(cfg).await.unwrap();
//! println!("http://{addr}/bulk/fhir (files may live on http://{storage})");
//! handle.shutdown().await;
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Handlers return `Err(Response)` for the answer to send instead; boxing it buys nothing here.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod callback;
pub mod config;
pub mod data;
pub mod dialects;
pub mod export;
pub mod facade;
pub mod faults;
pub mod files;
pub mod http;
pub mod jobs;
pub mod time;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::Config;

/// A running server: stop it with [`ServerHandle::shutdown`] (dropping it leaves it running).
#[derive(Debug)]
pub struct ServerHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Shared state (jobs, stats), for in-process inspection.
    pub app: Arc<app::App>,
}

impl ServerHandle {
    /// Stops accepting connections and waits for both origins to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// A server on its own runtime, for blocking code (tests of the native client and the
/// command line): started by [`Running::start`], stopped when dropped.
#[derive(Debug)]
pub struct Running {
    /// `http://127.0.0.1:PORT` of the FHIR endpoints.
    pub origin: String,
    /// `http://127.0.0.1:PORT` of the file storage (another origin).
    pub storage_origin: String,
    rt: tokio::runtime::Runtime,
    handle: Option<ServerHandle>,
}

impl Running {
    /// Starts the server of `cfg` on a two-thread runtime of its own.
    pub fn start(cfg: Config) -> Result<Running, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        let (addr, saddr, handle) = rt.block_on(serve(cfg))?;
        Ok(Running {
            origin: format!("http://{addr}"),
            storage_origin: format!("http://{saddr}"),
            rt,
            handle: Some(handle),
        })
    }

    /// The server's shared state (jobs, stats).
    pub fn app(&self) -> Option<&Arc<app::App>> {
        self.handle.as_ref().map(|h| &h.app)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown());
        }
    }
}

/// Binds both origins and starts serving: (main address, storage address, handle).
pub async fn serve(cfg: Config) -> Result<(SocketAddr, SocketAddr, ServerHandle), String> {
    for a in [cfg.addr, cfg.storage_addr] {
        if !a.ip().is_loopback() {
            return Err(format!("refusing to bind {a}: loopback only"));
        }
    }
    let default_faults = faults::Faults::parse(&cfg.faults).map_err(|e| format!("--faults: {e}"))?;
    let main = TcpListener::bind(cfg.addr).await.map_err(|e| format!("bind {}: {e}", cfg.addr))?;
    let storage = TcpListener::bind(cfg.storage_addr).await.map_err(|e| format!("bind {}: {e}", cfg.storage_addr))?;
    let addr = main.local_addr().map_err(|e| e.to_string())?;
    let saddr = storage.local_addr().map_err(|e| e.to_string())?;
    let auth = auth::Auth::new(&cfg)?;
    let log = match &cfg.log {
        Some(p) => Some(admin::AccessLog::open(p).map_err(|e| format!("--log {}: {e}", p.display()))?),
        None => None,
    };
    let app = Arc::new(app::App {
        ds: Arc::new(data::Dataset::new(cfg.patients, cfg.seed)),
        cfg,
        default_faults,
        jobs: jobs::Jobs::default(),
        main_origin: format!("http://{addr}"),
        storage_origin: format!("http://{saddr}"),
        stats: admin::Stats::default(),
        auth,
        kick_counts: Mutex::new(HashMap::new()),
        log,
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?,
        publication: dialects::publish::Publication::default(),
    });
    let (stop, rx) = watch::channel(false);
    let main_router = Router::new().fallback(app::main_entry).with_state(app.clone());
    let storage_router = Router::new().fallback(app::storage_entry).with_state(app.clone());
    let mut tasks = Vec::new();
    for (listener, router) in [(main, main_router), (storage, storage_router)] {
        let mut rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|v| *v).await;
                })
                .await;
        }));
    }
    Ok((addr, saddr, ServerHandle { stop, tasks, app }))
}
