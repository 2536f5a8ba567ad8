//! Protocol L14: the published-manifest reader against a fake publisher, on a fake clock.

use super::*;

const ROOT: &str = "https://pub.example/fhir/$bulk-publish";

/// A publisher like the reference server's (docs/testserver.md, `$bulk-publish`): what it
/// publishes is a function of `step`.
struct Publisher {
    step: u32,
    etags: bool,
    gets: Vec<String>,
}

fn file(name: &str) -> Value {
    serde_json::json!({"url": format!("https://pub.example/files/{name}"), "type": "Patient", "count": 1})
}

impl Publisher {
    fn page(&self, url: &str) -> Option<Value> {
        let step = self.step;
        let p = |out: &[&str], del: &[&str], link: Option<String>| {
            let mut v = serde_json::json!({
                "manifestType": "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/BulkPublishManifest",
                "updateCadence": "PT10S", "transactionTime": "2025-06-01T00:00:00Z",
                "output": out.iter().map(|n| file(n)).collect::<Vec<_>>(),
                "deleted": del.iter().map(|n| file(n)).collect::<Vec<_>>(),
            });
            if let Some(l) = link {
                v["link"] = serde_json::json!([{"relation": "next", "url": l}]);
            }
            v
        };
        let page2 = format!("{ROOT}?dataset=1&page=2");
        let page3 = format!("{ROOT}?dataset=1&page=3");
        Some(if url == ROOT && step >= 2 {
            p(&["2a"], &[], None)
        } else if url == ROOT {
            p(&["1a", "1b"], &[], Some(page2))
        } else if url == page2 {
            p(&["1c"], &[], Some(if step >= 1 { page3 } else { PENDING.into() }))
        } else if url == page3 && step >= 1 {
            p(&["1d"], &["1del"], Some(if step >= 2 { CLOSED.into() } else { PENDING.into() }))
        } else {
            return None;
        })
    }

    fn answer(&mut self, req: &Request) -> Response {
        self.gets.push(req.url.clone());
        let Some(v) = self.page(&req.url) else { return Response::new(404).with_body("{}") };
        let body = v.to_string();
        let etag = format!("\"{}\"", body.len() ^ (body.bytes().map(u64::from).sum::<u64>() as usize));
        if self.etags && req.header("If-None-Match") == Some(etag.as_str()) {
            return Response::new(304).with_header("ETag", &etag);
        }
        let r = Response::new(200).with_body(body);
        if self.etags {
            r.with_header("ETag", &etag)
        } else {
            r
        }
    }
}

/// What the caller saw, in order: `apply:<name>`, `reset`.
fn drive(r: &mut PublishReader, srv: &mut Publisher, now: &mut u64, until_waits: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut waits = 0;
    for _ in 0..1000 {
        match r.next_action(*now) {
            PublishAction::Send { request } => {
                let resp = srv.answer(&request);
                r.handle_response(&resp, *now).expect("a usable page");
            }
            PublishAction::Apply { file } => {
                seen.push(format!("apply:{}", file.url.rsplit('/').next().unwrap()));
                r.applied(&file.url).unwrap();
            }
            PublishAction::Reset { .. } => seen.push("reset".into()),
            PublishAction::Wait { until_ms } => {
                assert!(until_ms > *now, "a wait is in the future");
                waits += 1;
                if waits > until_waits {
                    return seen;
                }
                *now = until_ms;
            }
        }
    }
    panic!("the reader did not settle: {seen:?}");
}

// protocol L14: pending, then more files, then closed and a new dataset
#[test]
fn l14_three_publications_pending_more_files_closed_and_restart() {
    for etags in [true, false] {
        let mut srv = Publisher { step: 0, etags, gets: Vec::new() };
        let mut r = PublishReader::new(ROOT, RetryPolicy::default());
        let mut now = 1_000_000;
        let seen = drive(&mut r, &mut srv, &mut now, 2);
        assert_eq!(seen, ["apply:1a", "apply:1b", "apply:1c"], "etags {etags}");
        assert_eq!(r.cadence_ms(), 10_000);
        assert!(!r.is_committed());
        srv.step = 1;
        let seen = drive(&mut r, &mut srv, &mut now, 2);
        // 1c is not applied twice; output before deleted
        assert_eq!(seen, ["apply:1d", "apply:1del"], "etags {etags}");
        srv.step = 2;
        let seen = drive(&mut r, &mut srv, &mut now, 3);
        assert_eq!(seen, ["reset", "apply:2a"], "etags {etags}");
        assert!(r.is_committed());
        assert_eq!(r.applied_urls().collect::<Vec<_>>(), ["https://pub.example/files/2a"]);
        // committed: the root is polled every cadence, and nothing is applied again
        let before = srv.gets.len();
        let seen = drive(&mut r, &mut srv, &mut now, 3);
        assert!(seen.is_empty(), "{seen:?}");
        assert!(srv.gets[before..].iter().all(|g| g == ROOT));
    }
}

// protocol L14 + I2: a file's request carries the token only on the publisher's origin with
// requiresAccessToken; an http file from an https publisher is not fetched
#[test]
fn l14_the_token_goes_only_to_the_publishers_origin() {
    let mut r = PublishReader::new(ROOT, RetryPolicy::default());
    r.next_action(1);
    let page = serde_json::json!({"requiresAccessToken": true, "output": [
        {"url": "https://pub.example/files/a", "type": "Patient"},
        {"url": "https://cdn.example/files/b", "type": "Patient"},
        {"url": "http://pub.example/files/c", "type": "Patient"},
        {"url": "files/d", "type": "Patient"}]});
    r.handle_response(&Response::new(200).with_body(page.to_string()), 1).unwrap();
    let mut got = Vec::new();
    while let PublishAction::Apply { file } = r.next_action(1) {
        got.push((file.request.url.clone(), file.request.auth));
        r.applied(&file.url).unwrap();
    }
    assert_eq!(
        got,
        [
            ("https://pub.example/files/a".to_string(), true),
            ("https://cdn.example/files/b".to_string(), false),
            ("https://pub.example/fhir/files/d".to_string(), true),
        ]
    );
    assert!(r.warnings().iter().any(|w| w.contains("http://pub.example/files/c")));
}

// protocol L14: the reader's state survives a restart (no file applied twice)
#[test]
fn l14_state_serializes_and_resumes() {
    let mut srv = Publisher { step: 0, etags: true, gets: Vec::new() };
    let mut r = PublishReader::new(ROOT, RetryPolicy::default());
    let mut now = 5_000;
    drive(&mut r, &mut srv, &mut now, 1);
    let saved = serde_json::to_string(&r).unwrap();
    let mut back: PublishReader = serde_json::from_str(&saved).unwrap();
    assert_eq!(back, r);
    srv.step = 1;
    let seen = drive(&mut back, &mut srv, &mut now, 2);
    assert_eq!(seen, ["apply:1d", "apply:1del"]);
}

// protocol L14: a 5xx backs off within the cadence; a 4xx is a typed error with the server's words
#[test]
fn l14_errors_back_off_within_the_cadence_or_stop_typed() {
    let mut r = PublishReader::new(ROOT, RetryPolicy::default());
    let now = 1_000;
    assert!(matches!(r.next_action(now), PublishAction::Send { .. }));
    r.handle_response(&Response::new(503), now).unwrap();
    match r.next_action(now) {
        PublishAction::Wait { until_ms } => assert!(until_ms > now && until_ms <= now + DEFAULT_CADENCE_MS),
        a => panic!("{a:?}"),
    }
    let mut r = PublishReader::new(ROOT, RetryPolicy::default());
    r.next_action(now);
    let oo = r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"forbidden","diagnostics":"no publication for you"}]}"#;
    let e = r.handle_response(&Response::new(403).with_body(oo), now).unwrap_err();
    assert_eq!(e.code(), "protocol");
    assert!(e.to_string().contains("no publication for you"), "{e}");
    // not a manifest
    let mut r = PublishReader::new(ROOT, RetryPolicy::default());
    r.next_action(now);
    let e = r.handle_response(&Response::new(200).with_body("[1,2]"), now).unwrap_err();
    assert_eq!(e.code(), "protocol");
    // applied() of a URL never handed out
    assert_eq!(r.applied("https://x/y").unwrap_err().code(), "usage");
}

#[test]
fn l14_update_cadence_is_an_iso_8601_duration() {
    assert_eq!(parse_duration_ms("PT1S"), Some(1_000));
    assert_eq!(parse_duration_ms("PT0.5S"), Some(500));
    assert_eq!(parse_duration_ms("PT30M"), Some(1_800_000));
    assert_eq!(parse_duration_ms("P1DT12H"), Some(129_600_000));
    assert_eq!(parse_duration_ms("P1W"), Some(604_800_000));
    for bad in ["", "P", "PT", "1S", "PTS", "P1X", "PT1S2", "P-1D"] {
        assert_eq!(parse_duration_ms(bad), None, "{bad}");
    }
}

// protocol L14: a file handed out and never applied (the process died) is handed out again
#[test]
fn l14_a_file_not_applied_before_a_restart_is_handed_out_again() {
    let mut srv = Publisher { step: 0, etags: true, gets: Vec::new() };
    let mut r = PublishReader::new(ROOT, RetryPolicy::default());
    let now = 1;
    let first = loop {
        match r.next_action(now) {
            PublishAction::Send { request } => r.handle_response(&srv.answer(&request), now).unwrap(),
            PublishAction::Apply { file } => break file,
            a => panic!("{a:?}"),
        }
    };
    let saved = serde_json::to_string(&r).unwrap();
    let mut back: PublishReader = serde_json::from_str(&saved).unwrap();
    back.requeue_outstanding();
    match back.next_action(now) {
        PublishAction::Apply { file } => assert_eq!(file, first),
        a => panic!("{a:?}"),
    }
}

// protocol L14: poll_now ends a cadence wait
#[test]
fn l14_poll_now_looks_again_at_once() {
    let mut srv = Publisher { step: 0, etags: true, gets: Vec::new() };
    let mut r = PublishReader::new(ROOT, RetryPolicy::default());
    let mut now = 1;
    drive(&mut r, &mut srv, &mut now, 0);
    assert!(matches!(r.next_action(now), PublishAction::Wait { until_ms } if until_ms == now + 10_000));
    r.poll_now();
    assert!(matches!(r.next_action(now), PublishAction::Send { .. }));
}
