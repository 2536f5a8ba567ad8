//! The HTTP shapes the engine speaks: requests it asks the caller to send and
//! responses the caller hands back. No sockets here.

use serde::{Deserialize, Serialize};

/// An HTTP method the engine may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "HttpMethod"))]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `DELETE`
    Delete,
}

impl Method {
    /// The method as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// Why the engine wants a request sent. Bindings use it for logging and for
/// platform quirks (a browser can only follow redirects itself, for example).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum RequestKind {
    /// `GET [base]/metadata` before an export whose `igVersion` is `auto`: the
    /// server's CapabilityStatement decides the kick-off's form (protocol L2).
    Capabilities,
    /// The kick-off request that starts the operation. Never replayed once sent.
    Kickoff,
    /// A poll of the status URL.
    Status,
    /// The GET of a `303 See Other` target: the operation's result.
    Result,
    /// The next page of a paged manifest (`link` with `relation: next`).
    ManifestPage,
    /// A cancel: DELETE on the status URL, or Medplum's `AsyncJob/{id}/$cancel`.
    Cancel,
    /// DELETE on the status URL after the files were downloaded.
    Cleanup,
    /// A file download from a manifest.
    File,
    /// Authorization: SMART discovery or a token request (never with a bearer token).
    Auth,
}

/// A request the caller must send, exactly as described.
///
/// The caller adds `Authorization: Bearer <token>` if and only if [`Request::auth`]
/// is true, and must not follow redirects itself unless it is a platform that
/// cannot do otherwise (browsers), in which case it reports the final URL in
/// [`Response::url`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "EngineRequest"))]
pub struct Request {
    /// Identifies the request; hand it back with the response.
    pub id: u64,
    /// What the request is for.
    pub kind: RequestKind,
    /// The HTTP method.
    pub method: Method,
    /// The absolute URL.
    pub url: String,
    /// Headers to send, in order. `Authorization` is never among them.
    pub headers: Vec<(String, String)>,
    /// The body, if any (FHIR JSON).
    pub body: Option<String>,
    /// Whether to attach the bearer token.
    pub auth: bool,
    /// How long to wait for the response before giving up, in milliseconds.
    /// Larger than a long-polling server's hold time (protocol G4).
    pub timeout_ms: u64,
    /// The most body bytes to read (protocol K9). A body longer than this is
    /// not handed back: the binding stops reading (never buffering more than
    /// the ceiling) and calls [`crate::Job::response_too_large`]. `None`: a
    /// file body, streamed through [`crate::FileDownload::feed`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<u64>,
}

impl Request {
    /// The value of a header of this request (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A response the caller received, handed back to the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// Response headers in arrival order; a repeated header appears repeatedly.
    pub headers: Vec<(String, String)>,
    /// The whole body (status responses are small; files use [`crate::FileDownload`]).
    pub body: Vec<u8>,
    /// The final URL when the platform followed redirects on its own (browsers),
    /// `None` when the response is from the URL that was requested.
    pub url: Option<String>,
}

impl Response {
    /// A response with a status and no headers or body.
    pub fn new(status: u16) -> Self {
        Response { status, ..Response::default() }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body (builder style).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of a header (case-insensitive name), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every value of a header, comma lists split, trimmed, empty items dropped.
    pub fn header_list(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// The first value of a header in a list (case-insensitive name), trimmed.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

/// How a request failed before a complete response arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TransportErrorKind {
    /// The connection was never established (DNS, refused, TLS handshake):
    /// the server cannot have seen the request, so even a kick-off may be retried.
    Connect,
    /// The request may have reached the server (reset, timeout, broken body).
    AfterSend,
}
