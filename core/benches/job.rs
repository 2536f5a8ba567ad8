//! Engine cost per step: creating a job, the kick-off, a 202, a poll. This is
//! what one poll costs a process holding a thousand jobs.
use criterion::{criterion_group, criterion_main, Criterion};
use fhir_async::{Action, ExportRequest, Job, JobConfig, Operation, Response};
use std::hint::black_box;

fn config() -> JobConfig {
    JobConfig {
        base_url: "http://127.0.0.1:1234/bulk/fhir".into(),
        operation: Operation::Export(ExportRequest { types: vec!["Patient".into()], ..Default::default() }),
        prefer: Default::default(),
        retry: Default::default(),
        timeout_ms: None,
        allowed_origins: vec![],
    }
}

fn accepted() -> Response {
    Response::new(202)
        .with_header("Content-Location", "http://127.0.0.1:1234/bulk/status/abc")
        .with_header("Retry-After", "1")
        .with_header("X-Progress", "45% done")
}

fn send_id(a: Action) -> u64 {
    match a {
        Action::Send { request } => request.id,
        other => panic!("{other:?}"),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("job");
    g.bench_function("new", |b| b.iter(|| black_box(Job::new(config()).unwrap())));
    g.bench_function("kickoff_action", |b| {
        b.iter_batched(
            || Job::new(config()).unwrap(),
            |mut j| black_box(j.next_action(0)),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("accepted_202", |b| {
        b.iter_batched(
            || {
                let mut j = Job::new(config()).unwrap();
                let id = send_id(j.next_action(0).unwrap());
                (j, id)
            },
            |(mut j, id)| {
                j.handle_response(id, accepted(), 0).unwrap();
                black_box(j)
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("poll_cycle", |b| {
        // one poll: the Send, its 202, and the Wait that follows
        let mut j = Job::new(config()).unwrap();
        let id = send_id(j.next_action(0).unwrap());
        j.handle_response(id, accepted(), 0).unwrap();
        let mut now = 0;
        b.iter(|| {
            now += 1_000;
            let id = send_id(j.next_action(now).unwrap());
            j.handle_response(id, accepted(), now).unwrap();
            black_box(j.next_action(now).unwrap());
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
