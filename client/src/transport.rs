//! The one native transport: HTTP/1.1 with ureq (rustls), never following
//! redirects and never decompressing (the engine decides both). This is the
//! one place where a native transport failure is classified, and where a
//! request's `timeout_ms` means what `fhir_async::http` says: the time to the
//! response head, then the idle time allowed for each read of the body.
//!
//! [`Connection`] says how to reach servers: which certificate authorities to
//! trust (the bundled Mozilla roots, the system's trust store, a private CA's
//! PEM file) and which proxy to go through (`--proxy`, or `HTTPS_PROXY` /
//! `HTTP_PROXY` / `ALL_PROXY` with `NO_PROXY`).

use crate::ClientError;
use fhir_async::{Method, Request, Response, TransportErrorKind};
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;
use ureq::http;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// How the client reaches servers: trust and proxy. The default trusts the
/// bundled Mozilla roots and takes the proxy from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// PEM files of certificate authorities to trust besides the others (a
    /// hospital's private CA). A file with no certificate is an error.
    pub ca_files: Vec<PathBuf>,
    /// Trust the operating system's trust store too (where a private CA
    /// installed on the machine lives), besides the bundled roots.
    pub system_roots: bool,
    /// The proxy every request goes through (`http://host:port`, `https://`,
    /// `socks5://`; user and password in the URL). `None`: the environment's
    /// (`ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY`, with `NO_PROXY`), if any.
    pub proxy: Option<String>,
}

impl Connection {
    /// The trusted roots: the bundled ones, the system's (when asked) and the CA files.
    /// `None`: the bundled ones only (ureq's default, nothing to load).
    fn roots(&self) -> Result<Option<RootCerts>, ClientError> {
        if self.ca_files.is_empty() && !self.system_roots {
            return Ok(None);
        }
        let mut certs: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        if self.system_roots {
            // Certificates the system store holds but cannot parse are skipped (rustls-native-certs
            // reports them); a machine without a store still has the bundled roots.
            let found = rustls_native_certs::load_native_certs();
            certs.extend(found.certs.iter().map(|c| Certificate::from_der(c.as_ref()).to_owned()));
        }
        for path in &self.ca_files {
            certs.extend(ca_file(path)?);
        }
        Ok(Some(RootCerts::new_with_certs(&certs)))
    }

    fn proxy(&self) -> Result<Option<ureq::Proxy>, ClientError> {
        match &self.proxy {
            None => Ok(ureq::Proxy::try_from_env()),
            Some(url) => ureq::Proxy::new(url).map(Some).map_err(|e| ClientError::Io {
                path: fhir_async::origin::redact_url(url),
                message: format!("not a proxy URL ({e}): http://host:port, https://, socks5://"),
            }),
        }
    }
}

/// The certificates of a PEM file; none, or a broken file, is an error naming it.
fn ca_file(path: &std::path::Path) -> Result<Vec<Certificate<'static>>, ClientError> {
    let bytes = std::fs::read(path).map_err(|e| ClientError::io(path, e))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&bytes) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(ClientError::Io {
                    path: path.display().to_string(),
                    message: format!("not a PEM certificate file: {e}"),
                })
            }
        }
    }
    if certs.is_empty() {
        return Err(ClientError::Io {
            path: path.display().to_string(),
            message: "no certificate in it (a CA file holds PEM `-----BEGIN CERTIFICATE-----` blocks)".into(),
        });
    }
    Ok(certs)
}

/// A transport failure: the kind the engine needs, and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportFailure {
    /// Whether the server can have seen the request.
    pub kind: TransportErrorKind,
    /// What happened.
    pub message: String,
    /// The body was longer than the request's `max_body` (K9): reading stopped there.
    pub too_large: bool,
}

/// A response whose body is still on the wire.
pub struct Streaming {
    /// HTTP status.
    pub status: u16,
    /// Headers in arrival order.
    pub headers: Vec<(String, String)>,
    /// The raw (still encoded) body.
    pub body: Box<dyn Read + Send>,
}

impl std::fmt::Debug for Streaming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming").field("status", &self.status).field("headers", &self.headers).finish()
    }
}

/// A connection pool. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Transport {
    agent: ureq::Agent,
}

impl Transport {
    /// A pool that announces `fhir-async/<version> (<binding>)` (see [`fhir_async::user_agent`]),
    /// with the default [`Connection`].
    pub fn new(binding: &str) -> Self {
        Self::build(binding, None, ureq::Proxy::try_from_env())
    }

    /// A pool that announces `binding` and reaches servers as `connection` says. Fails on a CA
    /// file that cannot be read or holds no certificate, and on a proxy URL ureq refuses.
    pub fn with_connection(binding: &str, connection: &Connection) -> Result<Self, ClientError> {
        Ok(Self::build(binding, connection.roots()?, connection.proxy()?))
    }

    fn build(binding: &str, roots: Option<RootCerts>, proxy: Option<ureq::Proxy>) -> Self {
        let mut config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            // The engine adds `Accept-Encoding: gzip` where it wants it; ureq must add nothing.
            .accept_encoding("")
            .user_agent(fhir_async::user_agent(binding))
            .max_idle_connections(256)
            .max_idle_connections_per_host(64)
            .timeout_connect(Some(Duration::from_secs(30)))
            .proxy(proxy);
        if let Some(roots) = roots {
            config = config.tls_config(TlsConfig::builder().root_certs(roots).build());
        }
        let config = config.build();
        Transport { agent: ureq::Agent::new_with_config(config) }
    }

    /// Sends a request and reads the response head; the body stays unread.
    /// The token is attached if and only if `request.auth` and one is given.
    pub fn open(&self, request: &Request, token: Option<&str>) -> Result<Streaming, TransportFailure> {
        let mut b = http::Request::builder().method(request.method.as_str()).uri(request.url.as_str());
        for (k, v) in &request.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        if let (true, Some(t)) = (request.auth, token) {
            b = b.header("Authorization", format!("Bearer {t}"));
        }
        let timeout = Some(Duration::from_millis(request.timeout_ms.max(1)));
        let body = match (&request.body, request.method) {
            (Some(body), Method::Post) => body.clone().into_bytes(),
            _ => Vec::new(),
        };
        let req = b.body(body).map_err(|e| TransportFailure {
            kind: TransportErrorKind::Connect,
            message: e.to_string(),
            too_large: false,
        })?;
        let req = self.agent.configure_request(req).timeout_recv_response(timeout).timeout_per_read(timeout).build();
        let resp = self.agent.run(req).map_err(|e| TransportFailure {
            kind: classify(&e),
            message: e.to_string(),
            too_large: false,
        })?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = resp.into_body().into_reader();
        Ok(Streaming { status, headers, body: Box::new(body) })
    }

    /// Sends a request and reads the whole body (kick-off, status polls,
    /// manifests, results). A body that breaks mid-read is a failure after
    /// sending, never an empty answer.
    ///
    /// At most the request's `max_body` bytes are read (protocol K9): a longer
    /// body is a failure with `too_large`, and memory stays bounded by the ceiling.
    pub fn send(&self, request: &Request, token: Option<&str>) -> Result<Response, TransportFailure> {
        let mut s = self.open(request, token)?;
        let mut body = Vec::new();
        let limit = request.max_body.unwrap_or(u64::MAX);
        let shown = fhir_async::origin::redact_url(&request.url);
        (&mut s.body).take(limit.saturating_add(1)).read_to_end(&mut body).map_err(|e| TransportFailure {
            kind: TransportErrorKind::AfterSend,
            message: format!("the body of {shown} broke after {} bytes: {e}", body.len()),
            too_large: false,
        })?;
        if body.len() as u64 > limit {
            return Err(TransportFailure {
                kind: TransportErrorKind::AfterSend,
                message: format!("the body of {shown} is over the {limit}-byte ceiling"),
                too_large: true,
            });
        }
        Ok(Response { status: s.status, headers: s.headers, body, url: None })
    }
}

/// Whether a failed request can have reached the server: `Connect` only when
/// the connection never opened (DNS, refused, connect timeout, and a TLS
/// handshake that failed, which rustls reports inside an `io::Error`).
pub fn classify(e: &ureq::Error) -> TransportErrorKind {
    use ureq::Error as E;
    match e {
        E::ConnectionFailed
        | E::HostNotFound
        | E::BadUri(_)
        | E::Tls(_)
        | E::Rustls(_)
        | E::Pem(_)
        | E::TlsRequired
        | E::RequireHttpsOnly(_)
        | E::InvalidProxyUrl
        | E::ConnectProxyFailed(_)
        | E::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => TransportErrorKind::Connect,
        E::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::HostUnreachable
            ) || io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) =>
        {
            TransportErrorKind::Connect
        }
        _ => TransportErrorKind::AfterSend,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 23: a CA file is loaded (a private CA's PEM); one with no certificate, or none at all,
    // is an error naming the file; a proxy URL ureq cannot use is an error that hides its password
    #[test]
    fn connection_errors_name_what_is_wrong() {
        let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/tests/tls/ca.pem");
        let good = Connection { ca_files: vec![ca], system_roots: true, proxy: None };
        assert!(Transport::with_connection("rust", &good).is_ok());
        let dir = std::env::temp_dir().join(format!("fhir-async-transport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("text.pem");
        std::fs::write(&text, "hello\n").unwrap();
        for (file, words) in [(text, "no certificate"), (dir.join("missing.pem"), "missing.pem")] {
            let c = Connection { ca_files: vec![file.clone()], ..Connection::default() };
            let e = Transport::with_connection("rust", &c).unwrap_err();
            assert_eq!(e.code(), "io");
            assert!(e.to_string().contains(&*file.display().to_string()) && e.to_string().contains(words), "{e}");
        }
        let bad = Connection { proxy: Some("ftp://u:pw-SECRET@127.0.0.1:1".into()), ..Connection::default() };
        let e = Transport::with_connection("rust", &bad).unwrap_err().to_string();
        assert!(e.contains("proxy") && !e.contains("pw-SECRET"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    // protocol H6: only a failure before the connection existed may replay a kick-off
    #[test]
    fn classification() {
        assert_eq!(classify(&ureq::Error::ConnectionFailed), TransportErrorKind::Connect);
        assert_eq!(classify(&ureq::Error::HostNotFound), TransportErrorKind::Connect);
        assert_eq!(classify(&ureq::Error::Timeout(ureq::Timeout::Connect)), TransportErrorKind::Connect);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&ureq::Error::Io(refused)), TransportErrorKind::Connect);
        let tls = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert_eq!(classify(&ureq::Error::Io(tls)), TransportErrorKind::Connect, "a TLS handshake failure");
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify(&ureq::Error::Io(reset)), TransportErrorKind::AfterSend);
        assert_eq!(classify(&ureq::Error::Timeout(ureq::Timeout::RecvResponse)), TransportErrorKind::AfterSend);
    }
}
