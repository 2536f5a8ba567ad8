//! The bearer token: none, a fixed string, or a Python callable asked again
//! when the engine says `RefreshToken` (a 401).

use pyo3::prelude::*;
use std::sync::Mutex;

#[derive(Debug)]
pub struct Token {
    provider: Option<Py<PyAny>>,
    value: Mutex<Option<String>>,
}

impl Token {
    /// `None`, a `str`, or a callable returning a `str`.
    pub fn new(token: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        match token {
            None => Ok(Token { provider: None, value: Mutex::new(None) }),
            Some(t) if t.is_none() => Ok(Token { provider: None, value: Mutex::new(None) }),
            Some(t) if t.is_callable() => Ok(Token { provider: Some(t.clone().unbind()), value: Mutex::new(None) }),
            Some(t) => Ok(Token { provider: None, value: Mutex::new(Some(t.extract::<String>()?)) }),
        }
    }

    /// The current token, asking the callable the first time. Callable without the GIL.
    pub fn get(&self) -> PyResult<Option<String>> {
        if let Some(v) = self.value.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(Some(v));
        }
        if self.provider.is_some() {
            let _ = self.refresh()?;
        }
        Ok(self.value.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Asks the callable for a fresh token. Without one (no token, or a fixed
    /// string) there is nothing new to send: returns why, for the engine's
    /// `token_unavailable` (issue 10: the refused token is never sent twice).
    /// Callable without the GIL.
    pub fn refresh(&self) -> PyResult<Result<(), &'static str>> {
        let Some(p) = &self.provider else {
            return Ok(Err(if self.value.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                "the token is a fixed string; pass a callable as token= to get a new one after a 401"
            } else {
                "no token was configured"
            }));
        };
        let fresh: String = Python::attach(|py| p.bind(py).call0()?.extract())?;
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(fresh);
        Ok(Ok(()))
    }
}
