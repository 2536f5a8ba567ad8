//! How the transport classifies real socket failures for the engine (issue 10
//! §3, issue 11, core/src/http.rs `TransportErrorKind`): a body that breaks
//! after the head is an after-send error, not an empty 200; a TLS handshake
//! that fails is a connect error; every request carries the fhir-async
//! User-Agent. (Moved here from the Rust examples' old driver.)

use fhir_async::{Method, Request, RequestKind, TransportErrorKind};
use fhir_async_client::Transport;
use std::io::{Read, Write};
use std::net::TcpListener;

/// A one-connection server on 127.0.0.1 port 0: reads the request head,
/// answers `reply` and closes. Returns the URL (`scheme://127.0.0.1:PORT/`)
/// and a handle that yields the request head it read.
fn one_shot(scheme: &str, reply: &'static [u8]) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("{scheme}://127.0.0.1:{}/status", listener.local_addr().expect("addr").port());
    let h = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut head = Vec::new();
        let mut b = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&b[..n]),
            }
            // A TLS ClientHello never ends in a blank line: answer it once.
            if head.first() == Some(&0x16) {
                break;
            }
        }
        let _ = s.write_all(reply);
        String::from_utf8_lossy(&head).into_owned()
    });
    (url, h)
}

fn status_request(url: &str) -> Request {
    Request {
        id: 1,
        kind: RequestKind::Status,
        method: Method::Get,
        url: url.to_owned(),
        headers: vec![("Accept".into(), "application/json".into())],
        body: None,
        auth: false,
        timeout_ms: 10_000,
        max_body: Some(1 << 20),
    }
}

// issue 11: "A body that breaks mid-read: the Rust example turns it into an empty 200".
#[test]
fn a_body_that_breaks_after_the_head_is_an_after_send_transport_error() {
    let (url, server) = one_shot("http", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"transactionTime\":");
    match Transport::new("rust").send(&status_request(&url), None) {
        Err(f) => {
            assert_eq!(f.kind, TransportErrorKind::AfterSend);
            assert!(f.message.contains("broke"), "{}", f.message);
        }
        Ok(r) => panic!("a broken body became a response: {} {:?}", r.status, r.body),
    }
    // issue 10 §2: the fhir-async User-Agent, not ureq's.
    let head = server.join().expect("server").to_ascii_lowercase();
    let want = format!("user-agent: fhir-async/{} (rust)", env!("CARGO_PKG_VERSION"));
    assert!(head.contains(&want), "{head}");
}

#[test]
fn a_complete_body_is_a_response() {
    let (url, _server) = one_shot("http", b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nX-Progress: 5%\r\n\r\n{}");
    match Transport::new("rust").send(&status_request(&url), None) {
        Ok(r) => assert_eq!((r.status, r.body.as_slice()), (202, b"{}".as_slice())),
        Err(f) => panic!("{}", f.message),
    }
}

// issue 10 §3 / core http.rs: a TLS handshake failure counts as "connect" (the request never left).
#[test]
fn a_failed_tls_handshake_is_a_connect_error() {
    let (url, _server) = one_shot("https", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    match Transport::new("rust").send(&status_request(&url), None) {
        Err(f) => {
            println!("TLS handshake failure: {}", f.message);
            assert_eq!(f.kind, TransportErrorKind::Connect, "{}", f.message);
        }
        Ok(r) => panic!("plain HTTP answered a TLS handshake: {}", r.status),
    }
}

#[test]
fn a_refused_connection_is_a_connect_error() {
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    match Transport::new("rust").send(&status_request(&format!("http://127.0.0.1:{port}/")), None) {
        Err(f) => assert_eq!(f.kind, TransportErrorKind::Connect, "{}", f.message),
        Ok(r) => panic!("{}", r.status),
    }
}
