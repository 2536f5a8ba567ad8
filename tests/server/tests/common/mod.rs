//! Shared helpers: start a server in-process, poll with a bound, read NDJSON.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::Read;
use std::time::Duration;

use fhir_async_testserver::{serve, Config, ServerHandle};
use reqwest::header::HeaderMap;
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

/// A running in-process server.
pub struct Srv {
    pub origin: String,
    pub storage: String,
    pub c: Client,
    pub handle: Option<ServerHandle>,
}

pub async fn start(f: impl FnOnce(&mut Config)) -> Srv {
    let mut cfg = Config { job_ms: 0, ..Config::default() };
    f(&mut cfg);
    let (addr, saddr, handle) = serve(cfg).await.expect("server starts");
    Srv { origin: format!("http://{addr}"), storage: format!("http://{saddr}"), c: client(), handle: Some(handle) }
}

pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn h(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }
    pub fn code(&self) -> u16 {
        self.status.as_u16()
    }
}

impl Srv {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.origin, path)
    }

    pub async fn req(&self, method: Method, url: &str, headers: &[(&str, &str)], body: Option<String>) -> Resp {
        let mut r = self.c.request(method, url);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(b) = body {
            r = r.body(b);
        }
        let resp = r.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        Resp { status, headers, body }
    }

    pub async fn get(&self, url: &str) -> Resp {
        self.req(Method::GET, url, &[], None).await
    }

    /// GET kick-off with Prefer: respond-async; returns (response, absolute status URL).
    pub async fn kick(&self, path: &str) -> (Resp, String) {
        let r = self.req(Method::GET, &self.url(path), &[("prefer", "respond-async")], None).await;
        assert_eq!(r.code(), 202, "kick-off {path}: {}", String::from_utf8_lossy(&r.body));
        let loc = r.h("content-location").expect("content-location");
        (r, loc)
    }

    /// Polls until the answer is not 202 (bounded).
    pub async fn poll(&self, url: &str) -> Resp {
        for _ in 0..500 {
            let r = self.get(url).await;
            if r.code() != 202 {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("job at {url} did not finish");
    }

    /// Downloads an NDJSON file (identity or gzip), returning the parsed lines.
    pub async fn ndjson(&self, url: &str, gzip: bool) -> Vec<Value> {
        let h: &[(&str, &str)] = if gzip { &[("accept-encoding", "gzip")] } else { &[] };
        let r = self.req(Method::GET, url, h, None).await;
        assert_eq!(r.code(), 200, "download {url}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.h("content-type").as_deref(), Some("application/fhir+ndjson"));
        let text = if gzip {
            assert_eq!(r.h("content-encoding").as_deref(), Some("gzip"));
            gunzip(&r.body).expect("valid gzip")
        } else {
            assert!(r.h("content-encoding").is_none());
            String::from_utf8(r.body).unwrap()
        };
        text.lines().map(|l| serde_json::from_str(l).expect("NDJSON line")).collect()
    }

    pub async fn stats(&self) -> Value {
        self.get(&self.url("/_admin/stats")).await.json()
    }
}

pub fn gunzip(b: &[u8]) -> std::io::Result<String> {
    let mut s = String::new();
    flate2::read::GzDecoder::new(b).read_to_string(&mut s)?;
    Ok(s)
}

/// Asserts that `lines` hold each id `{ty}-{i}` exactly once (as a set), returning the count.
pub fn unique_ids(lines: &[Value]) -> usize {
    let ids: HashSet<String> = lines.iter().map(|l| l["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), lines.len(), "duplicate ids");
    ids.len()
}

/// Asserts an OperationOutcome with the given issue code.
pub fn assert_oo(r: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(r.code(), status, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
    assert_eq!(v["issue"][0]["code"], code, "{v}");
    v
}

/// One download read as far as it goes: status, headers, body bytes, whether it completed.
pub struct Got {
    pub code: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub complete: bool,
}

impl Got {
    pub fn h(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }
}

pub async fn fetch(s: &Srv, url: &str, headers: &[(&str, &str)]) -> Got {
    let mut r = s.c.get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let mut resp = r.send().await.expect("request sent");
    let (code, headers) = (resp.status().as_u16(), resp.headers().clone());
    let mut body = Vec::new();
    let complete = loop {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    Got { code, headers, body, complete }
}
