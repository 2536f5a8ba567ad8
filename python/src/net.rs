//! The only I/O of the binding: HTTP/1.1 with ureq (rustls), never following
//! redirects and never decompressing (the core decides both).

use fhir_async::{Method, Request, Response, TransportErrorKind};
use std::io::Read;
use std::time::Duration;
use ureq::http;

/// A transport failure: the kind the core needs plus a message for humans.
pub type TransportFailure = (TransportErrorKind, String);

/// A response whose body is still on the wire.
pub struct Streaming {
    /// HTTP status.
    pub status: u16,
    /// Headers in arrival order.
    pub headers: Vec<(String, String)>,
    /// The raw (still encoded) body.
    pub body: Box<dyn Read + Send>,
}

/// One shared agent (connection pool) per client.
#[derive(Debug, Clone)]
pub struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            // The core adds `Accept-Encoding: gzip` where it wants it; ureq must add nothing.
            .accept_encoding("")
            // issue 10: `fhir-async/<version> (python)` on every request.
            .user_agent(fhir_async::user_agent("python"))
            .max_idle_connections(256)
            .max_idle_connections_per_host(64)
            .timeout_connect(Some(Duration::from_secs(30)))
            .build();
        Http { agent: ureq::Agent::new_with_config(config) }
    }

    /// Sends a request and starts reading the response; the body stays unread.
    pub fn open(&self, req: &Request, token: Option<&str>) -> Result<Streaming, TransportFailure> {
        let mut b = http::Request::builder().method(req.method.as_str()).uri(req.url.as_str());
        for (k, v) in &req.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        if req.auth {
            if let Some(t) = token {
                b = b.header("Authorization", format!("Bearer {t}"));
            }
        }
        let timeout = Some(Duration::from_millis(req.timeout_ms.max(1)));
        let result = match (&req.body, req.method) {
            (Some(body), Method::Post) => {
                let r = b.body(body.clone().into_bytes()).map_err(|e| (TransportErrorKind::Connect, e.to_string()))?;
                let r =
                    self.agent.configure_request(r).timeout_recv_response(timeout).timeout_per_read(timeout).build();
                self.agent.run(r)
            }
            _ => {
                let r = b.body(()).map_err(|e| (TransportErrorKind::Connect, e.to_string()))?;
                let r =
                    self.agent.configure_request(r).timeout_recv_response(timeout).timeout_per_read(timeout).build();
                self.agent.run(r)
            }
        };
        let resp = result.map_err(classify)?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = resp.into_body().into_reader();
        Ok(Streaming { status, headers, body: Box::new(body) })
    }

    /// Sends a request and reads the whole body (status polls, manifests, results).
    pub fn send(&self, req: &Request, token: Option<&str>) -> Result<Response, TransportFailure> {
        let mut s = self.open(req, token)?;
        let mut body = Vec::new();
        s.body.read_to_end(&mut body).map_err(|e| (TransportErrorKind::AfterSend, format!("reading the body: {e}")))?;
        Ok(Response { status: s.status, headers: s.headers, body, url: None })
    }
}

/// Whether the server can have seen the request: only failures before the
/// connection existed are `Connect` (a kick-off is retried only then).
fn classify(e: ureq::Error) -> TransportFailure {
    use ureq::Timeout;
    let kind = match &e {
        ureq::Error::ConnectionFailed
        | ureq::Error::HostNotFound
        | ureq::Error::BadUri(_)
        | ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => TransportErrorKind::Connect,
        ureq::Error::Io(io)
            if matches!(io.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable) =>
        {
            TransportErrorKind::Connect
        }
        _ => TransportErrorKind::AfterSend,
    };
    (kind, e.to_string())
}
