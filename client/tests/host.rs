//! What a host language's binding needs (issue 11: Python on the client):
//! adopting a job without a request, a cancel asked without waiting, and a
//! line stream read with a timeout.

use fhir_async::{DownloadOptions, ExportRequest, Job, Operation, OutcomeStatus, RetryPolicy};
use fhir_async_client::{Client, LineEvent};
use std::task::Poll;
use std::time::{Duration, Instant};

mod common;

use common::Server;

/// Requests the server has seen.
fn requests(srv: &Server) -> usize {
    srv.stats()["requests"].as_array().unwrap().len()
}

// issue 11: Client::adopt sends nothing; the first step sends the kick-off
#[test]
fn adopt_sends_nothing_until_the_first_step() {
    let srv = Server::start(|c| {
        c.job_ms = 200;
        c.patients = 20;
    });
    let client = srv.client("/bulk/fhir");
    let job = Job::new(client.config(Operation::Export(ExportRequest::default()))).unwrap();
    let before = requests(&srv);
    let mut run = client.adopt(job);
    assert_eq!(requests(&srv), before, "adopting sends no request");
    assert!(run.job().status_url().is_none());
    let deadline = Instant::now() + Duration::from_secs(10);
    while run.step(Duration::ZERO).unwrap().is_none() {
        assert!(Instant::now() < deadline, "the job ends");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(run.outcome().unwrap().status, OutcomeStatus::Completed);
}

// issue 11: request_cancel does not wait; the next step sends the cancel and ends with it
#[test]
fn request_cancel_is_sent_by_the_next_step() {
    let srv = Server::start(|c| {
        c.job_ms = 200;
        c.patients = 20;
    });
    let mut run = srv.client("/_f/never;retry=30/bulk/fhir").export(ExportRequest::default()).unwrap();
    assert!(run.step(Duration::from_millis(50)).unwrap().is_none(), "the job never ends by itself");
    run.request_cancel();
    let outcome = run.wait().unwrap();
    assert_eq!(outcome.status, OutcomeStatus::Cancelled);
    // A job already over stays as it was.
    run.request_cancel();
    assert_eq!(run.step(Duration::ZERO).unwrap().unwrap().status, OutcomeStatus::Cancelled);
}

// issue 11: a line stream read with a timeout answers Pending, then the lines, then the end
#[test]
fn lines_with_a_timeout() {
    let srv = Server::start(|c| {
        c.job_ms = 200;
        c.patients = 20;
    });
    let mut run =
        srv.client("/bulk/fhir").export(ExportRequest { types: vec!["Patient".into()], ..Default::default() }).unwrap();
    run.wait().unwrap();
    let mut lines = run.lines(DownloadOptions::default());
    let (mut n, mut files) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline);
        match lines.next_timeout(Duration::from_millis(5)) {
            Poll::Pending => continue,
            Poll::Ready(Some(Ok(LineEvent::Lines(b)))) => n += b.len(),
            Poll::Ready(Some(Ok(LineEvent::File(_)))) => files += 1,
            Poll::Ready(Some(Err(e))) => panic!("{e}"),
            Poll::Ready(None) => break,
        }
    }
    assert_eq!((n, files), (20, 1));
    assert!(lines.summary().unwrap().is_complete());
}

/// A tiny export server on 127.0.0.1 port 0: a kick-off, a manifest listing
/// `/files/short` with `count` 5 (and `requiresAccessToken` when `file` is
/// given), and that file: one line, or the raw answer `file`. Serves until
/// the test ends.
fn short_file_server(file: Option<&'static str>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let o = origin.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { return };
            let mut head = Vec::new();
            let mut b = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&b[..n]),
                }
            }
            let path = String::from_utf8_lossy(&head).split_whitespace().nth(1).unwrap_or("").to_owned();
            let (status, extra, body) = if path.contains("$export") {
                ("202 Accepted", format!("Content-Location: {o}/status\r\n"), String::new())
            } else if path == "/status" {
                let m = format!(
                    r#"{{"transactionTime":"2026-01-01T00:00:00Z","request":"{o}/fhir/$export","requiresAccessToken":{},"output":[{{"type":"Patient","url":"{o}/files/short","count":5}}],"error":[]}}"#,
                    file.is_some()
                );
                ("200 OK", "Content-Type: application/json\r\n".to_owned(), m)
            } else if let Some(raw) = file {
                let _ = s.write_all(raw.as_bytes());
                continue;
            } else {
                ("200 OK", "Content-Type: application/fhir+ndjson\r\n".to_owned(), "{\"id\":\"a\"}\n".to_owned())
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    origin
}

// issue 10 §2 / issue 11: a file that fails at its end (count mismatch) still
// delivers the lines the engine handed out, then its failed result
#[test]
fn a_failed_files_lines_are_delivered() {
    let origin = short_file_server(None);
    let fast = RetryPolicy { min_wait_ms: 10, initial_backoff_ms: 10, ..RetryPolicy::default() };
    let client = Client::builder(&format!("{origin}/fhir")).retry(fast).build().unwrap();
    let mut run = client.export(ExportRequest::default()).unwrap();
    run.wait().unwrap();
    let mut lines = run.lines(DownloadOptions { max_per_origin: 1, ..DownloadOptions::default() });
    let mut got = Vec::new();
    let mut failed = None;
    for ev in lines.by_ref() {
        match ev.unwrap() {
            LineEvent::Lines(b) => got.extend(b.lines().map(|l| String::from_utf8_lossy(l).into_owned())),
            LineEvent::File(r) => failed = r.error.map(|e| e.code()),
        }
    }
    assert_eq!(got, ["{\"id\":\"a\"}"], "the line before the failure is delivered");
    assert_eq!(failed, Some("count_mismatch"));
}

// issue 10 / issue 11: a file refused with 401 and a fixed token fails with
// the server's words from that answer (the engine went past it to ask for a token)
#[test]
fn a_refused_files_error_has_the_servers_words() {
    let origin = short_file_server(Some(
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 27\r\nConnection: close\r\n\r\nInvalid token jwt malformed",
    ));
    let fast = RetryPolicy { min_wait_ms: 10, initial_backoff_ms: 10, ..RetryPolicy::default() };
    let client = Client::builder(&format!("{origin}/fhir"))
        .retry(fast)
        .token(fhir_async_client::StaticToken::new("t"))
        .build()
        .unwrap();
    let mut run = client.export(ExportRequest::default()).unwrap();
    run.wait().unwrap();
    let dir = std::env::temp_dir().join(format!("fhir-async-host-{}", std::process::id()));
    let summary = run.download(&dir, DownloadOptions::default()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let error = summary.files[0].result.error.as_ref().expect("the file failed");
    assert_eq!(error.code(), "unauthorized");
    assert!(error.to_string().contains("Invalid token jwt malformed"), "{error}");
}

// issue 14 K5 / issue 11: a file recorded done is left out only where it is
// already complete: a download into another folder, and a line stream after a
// download, get every file again
#[test]
fn recorded_done_files_are_left_out_only_where_they_are() {
    let srv = Server::start(|_| {});
    let mut run = srv
        .client("/bulk/fhir")
        .export(ExportRequest { types: vec!["Patient".into(), "Condition".into()], ..Default::default() })
        .unwrap();
    run.wait().unwrap();
    let base = std::env::temp_dir().join(format!("fhir-async-k5-{}", std::process::id()));
    let written = |s: &fhir_async_client::DownloadSummary| s.files.iter().filter(|f| f.path.is_some()).count();
    let a = run.download(base.join("a"), DownloadOptions::default()).unwrap();
    assert_eq!(written(&a), 2);
    let again = run.download(base.join("a"), DownloadOptions::default()).unwrap();
    assert_eq!(written(&again), 0, "the folder holds them: left out");
    let b = run.download(base.join("b"), DownloadOptions::default()).unwrap();
    assert_eq!(written(&b), 2, "another folder gets every file");
    let lines: usize = run
        .lines(DownloadOptions::default())
        .map(|e| match e.unwrap() {
            LineEvent::Lines(b) => b.len(),
            LineEvent::File(_) => 0,
        })
        .sum();
    assert!(lines > 20, "the stream delivers every file again: {lines}");
    let _ = std::fs::remove_dir_all(&base);
}
