//! Issue 21: the reference server holds many jobs at once (Node runs 100,000 against it,
//! `npm/bench/jobs.mjs`): jobs are kept by id, a poll finds its job without looking at the
//! others, and a job costs little memory.
mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use futures_util::future::join_all;

/// Jobs created by the test: enough to see a per-job cost, small enough for a debug build.
const JOBS: usize = 5_000;
/// Jobs created before the memory is measured (a multiple of 250).
const WARM: usize = 1_000;

/// Resident memory of this process (Linux `/proc/self/statm`), in bytes.
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_five_thousand_running_jobs_each_polled_by_id() {
    // Jobs that run for an hour: every one stays in the store, running, for the whole test.
    let s = start(|c| {
        c.job_ms = 3_600_000;
        c.patients = 10;
    })
    .await;
    let app = s.handle.as_ref().unwrap().app.clone();
    // The first fifth warms up (the data set, the connection pool, the allocator's arenas);
    // the memory the other jobs add is their cost.
    let mut locations = Vec::with_capacity(JOBS);
    let mut rss_before = None;
    for chunk in 0..JOBS.div_ceil(250) {
        if chunk * 250 == WARM {
            rss_before = rss();
        }
        let n = 250.min(JOBS - chunk * 250);
        let kicks = (0..n).map(|_| s.kick("/bulk/fhir/Patient/$export"));
        locations.extend(join_all(kicks).await.into_iter().map(|(_, loc)| loc));
    }
    let rss_after = rss();
    assert_eq!(app.jobs.len(), JOBS, "every accepted kick-off is a stored job");
    let distinct: HashSet<&String> = locations.iter().collect();
    assert_eq!(distinct.len(), JOBS, "one status URL per job");

    // The first, a middle and the last job answer their own status: running, with Retry-After.
    for loc in [&locations[0], &locations[JOBS / 2], &locations[JOBS - 1]] {
        let r = s.get(loc).await;
        assert_eq!(r.code(), 202, "{loc}");
        assert_eq!(r.h("retry-after").as_deref(), Some("1"));
        assert!(r.h("x-progress").is_some());
    }
    // Polls are counted on the polled job only.
    let id = |loc: &str| loc.rsplit_once("_jobId=").unwrap().1.to_string();
    let polled = app.jobs.get_any(&id(&locations[JOBS / 2])).unwrap();
    let untouched = app.jobs.get_any(&id(&locations[JOBS / 2 + 1])).unwrap();
    assert_eq!(polled.lock().polls, 1);
    assert_eq!(untouched.lock().polls, 0);

    // Cancelling one job leaves the others running (and found).
    let r = s.req(reqwest::Method::DELETE, &locations[1], &[], None).await;
    assert_eq!(r.code(), 202);
    assert_eq!(s.get(&locations[1]).await.code(), 404);
    assert_eq!(s.get(&locations[2]).await.code(), 202);

    // A job costs little memory: 100,000 of them fit in a few hundred MiB with room to spare.
    if let (Some(a), Some(b)) = (rss_before, rss_after) {
        let per_job = b.saturating_sub(a) / (JOBS - WARM) as u64;
        eprintln!(
            "many_jobs: {} jobs after {WARM}, RSS +{} KiB, {per_job} B per job",
            JOBS - WARM,
            b.saturating_sub(a) / 1024
        );
        assert!(per_job < 8 * 1024, "{per_job} B per job");
    }
    tokio::time::timeout(Duration::from_secs(10), s.handle.unwrap().shutdown()).await.expect("server stops");
}
