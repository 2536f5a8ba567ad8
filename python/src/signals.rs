//! Ctrl-C and Python exceptions across the native client: a [`Stop`] whose
//! hook runs Python's signal handlers on the thread that called in from
//! Python, and a slot for the exception a handler (or a token callable)
//! raised, raised again once the client's call is over.

use crate::errors;
use fhir_async_client::{ClientError, Stop};
use pyo3::prelude::*;
use std::cell::Cell;
use std::sync::{Arc, Mutex};

thread_local! {
    /// Set while this thread runs a client call on behalf of Python code.
    static CALLER: Cell<bool> = const { Cell::new(false) };
}

/// A Python exception raised where it cannot propagate (a signal handler
/// inside a stop hook, a token callable on a download thread).
#[derive(Clone, Default)]
pub struct Pending(Arc<Mutex<Option<PyErr>>>);

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl Pending {
    /// Keeps the first exception.
    pub fn set(&self, e: PyErr) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
    }

    fn take(&self) -> Option<PyErr> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The stop switch and the pending exception of one `_native.Client`.
#[derive(Debug, Clone)]
pub struct Host {
    pub stop: Stop,
    pub pending: Pending,
}

impl Host {
    /// A stop switch that runs Python's signal handlers (on the calling
    /// thread only: a download's worker threads never take the GIL for it).
    pub fn new() -> Host {
        let pending = Pending::default();
        let p = pending.clone();
        let stop = Stop::with_hook(move || {
            if !CALLER.with(Cell::get) {
                return false;
            }
            Python::attach(|py| match py.check_signals() {
                Ok(()) => false,
                Err(e) => {
                    p.set(e);
                    true
                }
            })
        });
        Host { stop, pending }
    }

    /// Runs `f` without the GIL, Ctrl-C watched; its error as the Python exception.
    pub fn run<T: Send>(&self, py: Python<'_>, f: impl FnOnce() -> Result<T, ClientError> + Send) -> PyResult<T> {
        let r = py.detach(|| {
            let _caller = Caller::enter();
            f()
        });
        match r {
            Ok(v) => match self.pending.take() {
                // An exception of Python code (a token callable) that a worker swallowed.
                Some(e) => Err(e),
                None => Ok(v),
            },
            Err(e) => Err(self.error(py, &e)),
        }
    }

    /// The exception for a client error: the pending Python exception first
    /// (KeyboardInterrupt), then the typed one. A stop is over once reported.
    pub fn error(&self, py: Python<'_>, e: &ClientError) -> PyErr {
        if matches!(e, ClientError::Stopped) {
            self.stop.reset();
        }
        match self.pending.take() {
            Some(p) => p,
            None => errors::client_error(py, e),
        }
    }
}

/// Marks the current thread as calling for Python while it lives.
pub struct Caller(bool);

impl Caller {
    pub fn enter() -> Caller {
        Caller(CALLER.with(|c| c.replace(true)))
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        let was = self.0;
        CALLER.with(|c| c.set(was));
    }
}
