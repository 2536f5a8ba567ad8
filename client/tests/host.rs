//! What a host language's binding needs (issue 11: Python on the client):
//! adopting a job without a request, a cancel asked without waiting, and a
//! line stream read with a timeout.

use fhir_async::{DownloadOptions, ExportRequest, Job, Operation, OutcomeStatus};
use fhir_async_client::LineEvent;
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
