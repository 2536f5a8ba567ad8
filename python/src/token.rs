//! The bearer token of a `_native.Client`: none, a fixed string, a Python
//! callable (asked with the GIL, again after a 401), or SMART Backend
//! Services. The refresh rules are the client's ([`fhir_async_client::TokenProvider`]).

use crate::signals::Pending;
use fhir_async_client::{NoToken, StaticToken, TokenFn, TokenProvider, TokenUnavailable};
use pyo3::prelude::*;

/// The provider for `token` (None, a str, or a callable returning a str).
/// An exception of the callable is kept in `pending` and raised by the call.
pub fn provider(token: Option<&Bound<'_, PyAny>>, pending: &Pending) -> PyResult<Box<dyn TokenProvider>> {
    let Some(t) = token.filter(|t| !t.is_none()) else {
        return Ok(Box::new(NoToken));
    };
    if t.is_callable() {
        let f = t.clone().unbind();
        let pending = pending.clone();
        return Ok(Box::new(TokenFn::new(move || {
            Python::attach(|py| f.bind(py).call0().and_then(|v| v.extract::<String>())).map_err(|e| {
                pending.set(e);
                TokenUnavailable("the token callable raised an exception".into())
            })
        })));
    }
    Ok(Box::new(StaticToken::new(t.extract::<String>()?)))
}

/// A boxed provider is a provider.
pub struct Boxed(pub Box<dyn TokenProvider>);

impl std::fmt::Debug for Boxed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl TokenProvider for Boxed {
    fn token(&self) -> Result<Option<String>, TokenUnavailable> {
        self.0.token()
    }
    fn refresh(&self) -> Result<(), TokenUnavailable> {
        self.0.refresh()
    }
    fn describe_fixed(&self) -> String {
        self.0.describe_fixed()
    }
}
