//! `make demo`: a bulk export with a live progress bar, against the bundled
//! reference server (or any server given with `--server`/`SERVER=`).
use fhir_async::{ExportRequest, Job, JobConfig, Operation, OutcomeStatus, RetryPolicy};
use fhir_async_examples::{Driver, TestServer};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let server_arg = arg("--server").or_else(|| std::env::var("SERVER").ok()).filter(|s| !s.is_empty());
    let token = arg("--token").or_else(|| std::env::var("TOKEN").ok()).filter(|s| !s.is_empty());
    let out = PathBuf::from(arg("--out").unwrap_or_else(|| "demo-output".into()));
    let patients = arg("--patients").unwrap_or_else(|| "2000".into());
    let types: Vec<String> = arg("--types").map(|t| t.split(',').map(str::to_owned).collect()).unwrap_or_default();

    let (_server, base) = match server_arg {
        Some(url) => (None, url),
        None => {
            let s = TestServer::start(&["--patients", &patients, "--job-ms", "4000"])?;
            let base = format!("{}/bulk/fhir", s.url);
            println!("Started the bundled reference server at {}", s.url);
            (Some(s), base)
        }
    };
    println!("Exporting from {base}");
    let mut job = Job::new(JobConfig {
        base_url: base.clone(),
        operation: Operation::Export(ExportRequest { types, ..Default::default() }),
        prefer: Default::default(),
        retry: RetryPolicy { min_wait_ms: 200, ..RetryPolicy::default() },
        timeout_ms: Some(6 * 3_600_000),
        allowed_origins: vec![],
    })?;
    let driver = Driver::new(token);

    let bar = ProgressBar::new(100);
    bar.set_style(ProgressStyle::with_template("{spinner} export [{bar:40}] {pos:>3}%  {msg}")?.progress_chars("=> "));
    bar.enable_steady_tick(Duration::from_millis(120));
    let outcome = driver.run(&mut job, |p| {
        if let Some(pct) = p.percent {
            bar.set_position(pct as u64);
        }
        let next = p.next_poll_in_ms.map(|ms| format!(", next poll in {:.1}s", ms as f64 / 1000.0)).unwrap_or_default();
        bar.set_message(format!("{} (polls: {}{next})", p.message.as_deref().unwrap_or("waiting"), p.polls));
    })?;
    bar.finish_with_message(format!("{:?} after {} polls", outcome.status, job.progress(0).polls));
    if !outcome.is_success() {
        return Err(format!("the export ended {:?}: {}", outcome.status, outcome.message.unwrap_or_default()).into());
    }
    if let Some(url) = job.status_url() {
        println!("Status URL: {url}");
    }

    let bytes = AtomicU64::new(0);
    let resources = AtomicU64::new(0);
    let started = Instant::now();
    let dl = ProgressBar::new_spinner();
    dl.set_style(ProgressStyle::with_template("{spinner} download {msg}")?);
    dl.enable_steady_tick(Duration::from_millis(120));
    let files = std::thread::scope(|s| {
        let h = s.spawn(|| driver.download_all(&mut job, &out, 4, &bytes, &resources));
        while !h.is_finished() {
            let secs = started.elapsed().as_secs_f64().max(0.001);
            let b = bytes.load(Ordering::Relaxed);
            dl.set_message(format!(
                "{:.1} MB, {} resources, {:.0} MB/s",
                b as f64 / 1e6,
                resources.load(Ordering::Relaxed),
                b as f64 / 1e6 / secs
            ));
            std::thread::sleep(Duration::from_millis(100));
        }
        h.join().map_err(|_| "download thread panicked")
    })??;
    dl.finish_with_message(format!(
        "{:.1} MB, {} resources in {:.2}s",
        bytes.load(Ordering::Relaxed) as f64 / 1e6,
        resources.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    ));

    let mut table: BTreeMap<String, (usize, u64, u64)> = BTreeMap::new();
    for (path, r) in &files {
        let key = r.resource_type.clone().unwrap_or_else(|| format!("{:?}", r.kind));
        let e = table.entry(key).or_default();
        e.0 += 1;
        e.1 += r.resources;
        e.2 += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    }
    println!("\n{:<20} {:>6} {:>12} {:>12}", "type", "files", "resources", "bytes");
    for (t, (n, res, b)) in &table {
        println!("{t:<20} {n:>6} {res:>12} {b:>12}");
    }
    println!("\nFiles are in ./{}/ (every count checked against the manifest).", out.display());
    if outcome.status == OutcomeStatus::CompletedWithErrors {
        println!("The server reported errors: see error.*.ndjson.");
    }
    println!("The same export in a browser, with a progress bar and a Cancel button: `make browser-demo`, then open the URL it prints.");
    Ok(())
}
