//! What a host language's binding needs (issue 11: Python on the client):
//! adopting a job without a request, a cancel asked without waiting, and a
//! line stream read with a timeout.

use fhir_async::{DownloadOptions, ExportRequest, Job, Operation, OutcomeStatus, RetryPolicy};
use fhir_async_client::{Client, LineEvent};
use fhir_async_testserver::{serve, Config, ServerHandle};
use std::task::Poll;
use std::time::{Duration, Instant};

struct Server {
    origin: String,
    rt: tokio::runtime::Runtime,
    handle: Option<ServerHandle>,
}

impl Server {
    fn start() -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let cfg = Config { job_ms: 200, patients: 20, ..Config::default() };
        let (addr, _, handle) = rt.block_on(serve(cfg)).expect("server starts");
        Server { origin: format!("http://{addr}"), rt, handle: Some(handle) }
    }

    fn requests(&self) -> usize {
        let text =
            ureq::get(format!("{}/_admin/stats", self.origin)).call().unwrap().into_body().read_to_string().unwrap();
        let stats: serde_json::Value = serde_json::from_str(&text).unwrap();
        stats["requests"].as_array().unwrap().len()
    }

    fn client(&self, path: &str) -> Client {
        let fast =
            RetryPolicy { min_wait_ms: 20, initial_backoff_ms: 20, max_backoff_ms: 200, ..RetryPolicy::default() };
        Client::builder(&format!("{}{path}", self.origin)).retry(fast).build().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown());
        }
    }
}

// issue 11: Client::adopt sends nothing; the first step sends the kick-off
#[test]
fn adopt_sends_nothing_until_the_first_step() {
    let srv = Server::start();
    let client = srv.client("/bulk/fhir");
    let job = Job::new(client.config(Operation::Export(ExportRequest::default()))).unwrap();
    let before = srv.requests();
    let mut run = client.adopt(job);
    assert_eq!(srv.requests(), before, "adopting sends no request");
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
    let srv = Server::start();
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
    let srv = Server::start();
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
