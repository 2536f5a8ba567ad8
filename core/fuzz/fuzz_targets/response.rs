//! Any sequence of responses leaves the job in a sane state: no panic, no
//! zero-delay wait loop, every action well-formed.
#![no_main]
use fhir_async::{Action, ExportRequest, Job, JobConfig, Operation, PreferOptions, Response, TransportErrorKind};
use libfuzzer_sys::fuzz_target;

const STATUSES: [u16; 16] = [200, 201, 202, 204, 303, 307, 400, 401, 404, 409, 410, 429, 500, 502, 503, 302];
const HEADERS: [&str; 8] = ["Content-Location", "Location", "Retry-After", "X-Progress", "Expires", "Preference-Applied", "X-Export-Status", "Date"];

fuzz_target!(|data: &[u8]| {
    let mut job = match Job::new(JobConfig {
        base_url: "https://fhir.example/r4".into(),
        operation: Operation::Export(ExportRequest { allow_partial_manifests: Some(data.first().is_some_and(|b| b & 1 == 1)), ..Default::default() }),
        prefer: PreferOptions { separate_export_status: data.get(1).is_some_and(|b| b & 1 == 1), ..Default::default() },
        retry: Default::default(),
        timeout_ms: Some(86_400_000),
        allowed_origins: vec![],
    }) {
        Ok(j) => j,
        Err(_) => return,
    };
    let mut now = 1_767_225_600_000u64;
    // Each record: [status idx, header mask, op, body len, body...]
    let mut rest = data;
    let mut steps = 0;
    while steps < 64 {
        steps += 1;
        let action = match job.next_action(now) {
            Ok(a) => a,
            Err(_) => return,
        };
        match action {
            Action::Done { .. } => {
                let _ = job.cleanup();
                let _ = job.refresh_manifest(now);
                if job.next_action(now).is_err() { return; }
                return;
            }
            Action::Wait { until_ms, delay_ms } => {
                assert!(delay_ms > 0 && until_ms > now, "zero-delay wait");
                now = until_ms;
            }
            Action::RefreshToken => {}
            Action::Send { request } => {
                let [s, mask, op, len, tail @ ..] = rest else { return };
                let n = usize::from(*len).min(tail.len());
                let (body, next) = tail.split_at(n);
                rest = next;
                if op % 11 == 0 {
                    job.cancel(now);
                }
                if op % 13 == 1 {
                    let kind = if op & 2 == 0 { TransportErrorKind::Connect } else { TransportErrorKind::AfterSend };
                    let _ = job.handle_transport_error(request.id, kind, "fuzz", now);
                    continue;
                }
                let text = String::from_utf8_lossy(body).into_owned();
                let mut r = Response::new(STATUSES[usize::from(*s) % STATUSES.len()]);
                for (i, h) in HEADERS.iter().enumerate() {
                    if mask & (1 << i) != 0 {
                        r.headers.push(((*h).to_owned(), text.lines().nth(i).unwrap_or("").to_owned()));
                    }
                }
                r.body = body.to_vec();
                if job.handle_response(request.id, r, now).is_err() {
                    return;
                }
                let _ = job.progress(now);
                let _ = job.download_plan();
                if op % 17 == 3 {
                    job = Job::from_json(&job.to_json()).expect("own state always resumes");
                }
            }
        }
    }
});
