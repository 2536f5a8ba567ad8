//! `make demo`: a bulk export with a live progress bar, against the bundled
//! reference server (or any server given with `--server`/`SERVER=`).
//! Ctrl-C stops cleanly and saves the job so `--resume` or `--cancel` can
//! pick it up (issue 10 §2).
use clap::Parser;
use fhir_async::{CountCheck, ExportRequest, Job, JobConfig, Operation, OutcomeStatus, RetryPolicy};
use fhir_async_examples::{interrupt, now_ms, Counters, DownloadOptions, Downloaded, Driver, Interrupt, TestServer};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where an interrupted job's state is saved, inside `--out`.
const STATE_FILE: &str = "fhir-async-job.json";

const EXIT_CODES: &str = "\
Exit status:
  0    the export completed; also when the server reported errors or some files
       failed (the summary says \"completed with errors\" and lists each one)
  1    the export could not be run or ended failed or cancelled by the server
  2    wrong arguments
  130  interrupted by Ctrl-C: the job keeps running on the server, its state is
       saved in OUT/fhir-async-job.json (no token in it), and the commands that
       resume or cancel it are printed. A second Ctrl-C exits at once.";

/// A bulk $export with a live progress bar: kicks off, polls, downloads every
/// NDJSON file (each checked against the manifest) and prints a summary.
#[derive(Debug, Parser)]
#[command(name = "fhir-async-demo", version, after_help = EXIT_CODES)]
struct Args {
    /// FHIR base URL to export from (default: start the bundled reference server)
    #[arg(long, env = "SERVER")]
    server: Option<String>,
    /// Bearer token sent where the manifest allows
    #[arg(long, env = "TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Folder for the NDJSON files (and the saved job after Ctrl-C)
    #[arg(long, default_value = "demo-output")]
    out: PathBuf,
    /// Patients in the bundled server's data set
    #[arg(long, default_value_t = 2000)]
    patients: u32,
    /// Resource types to export, comma-separated (default: all)
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// Files downloaded at once
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// A file whose line count differs from the manifest's: `strict` reports it as
    /// failed (the other files are kept), `lenient` keeps it with a warning
    #[arg(long, value_enum, default_value_t = Counts::Strict)]
    count_check: Counts,
    /// Resume the job saved in OUT after a Ctrl-C: no new kick-off, files already complete are kept
    #[arg(long, conflicts_with = "cancel")]
    resume: bool,
    /// Cancel the job saved in OUT after a Ctrl-C (or release its files if it completed)
    #[arg(long)]
    cancel: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Counts {
    Strict,
    Lenient,
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    args.server = args.server.filter(|s| !s.is_empty());
    args.token = args.token.filter(|s| !s.is_empty());
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handler = ctrlc::set_handler(move || match interrupt(&flag) {
        Interrupt::StopCleanly => eprintln!("\nCtrl-C: stopping cleanly (press Ctrl-C again to exit at once)..."),
        Interrupt::ExitNow => {
            eprintln!("\nSecond Ctrl-C: exiting now.");
            std::process::exit(130);
        }
    });
    if let Err(e) = handler {
        eprintln!("demo: cannot catch Ctrl-C: {e}");
    }
    let driver = Driver::new(args.token.clone()).with_stop(stop);
    let result = if args.cancel { cancel(&args, &driver) } else { export(&args, &driver) };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::from(1)
        }
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn export(args: &Args, driver: &Driver) -> Res<ExitCode> {
    let state = args.out.join(STATE_FILE);
    let (_server, mut job, bundled) = if args.resume {
        let json = std::fs::read_to_string(&state)
            .map_err(|e| format!("no saved job to resume in {} ({e})", state.display()))?;
        let job = Job::from_json(&json)?;
        let status = job.status_url().unwrap_or("not known yet");
        println!("Resuming the export of {} (no new kick-off; status URL {status})", job.config().base_url);
        (None, job, false)
    } else {
        let (server, base) = match &args.server {
            Some(url) => (None, url.clone()),
            None => {
                let patients = args.patients.to_string();
                let s = TestServer::start(&["--patients", &patients, "--job-ms", "4000"])?;
                let base = format!("{}/bulk/fhir", s.url);
                println!("Started the bundled reference server at {}", s.url);
                (Some(s), base)
            }
        };
        println!("Exporting from {base}");
        let job = Job::new(JobConfig {
            base_url: base,
            operation: Operation::Export(ExportRequest { types: args.types.clone(), ..Default::default() }),
            prefer: Default::default(),
            retry: RetryPolicy { min_wait_ms: 200, ..RetryPolicy::default() },
            timeout_ms: Some(6 * 3_600_000),
            allowed_origins: vec![],
        })?;
        let bundled = server.is_some();
        (server, job, bundled)
    };

    let bar = ProgressBar::new(100);
    bar.set_style(ProgressStyle::with_template("{spinner} export [{bar:40}] {pos:>3}%  {msg}")?.progress_chars("=> "));
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut shown_status = job.status_url().is_some();
    // Warnings (a clamped Retry-After, unrequested types...) are shown as they come, once each.
    let mut warned: Vec<String> = Vec::new();
    let polled = driver.run_until_stopped(&mut job, |p| {
        if let Some(w) = p.warning.as_ref().filter(|w| !warned.contains(w)) {
            bar.suspend(|| println!("warning: {w}"));
            warned.push(w.clone());
        }
        if let (false, Some(url)) = (shown_status, &p.status_url) {
            // On stdout, not through the bar (hidden when stderr is not a terminal).
            bar.suspend(|| println!("Kicked off; polling {url}"));
            shown_status = true;
        }
        if let Some(pct) = p.percent {
            bar.set_position(pct as u64);
        }
        let next = p.next_poll_in_ms.map(|ms| format!(", next poll in {:.1}s", ms as f64 / 1000.0)).unwrap_or_default();
        bar.set_message(format!("{} (polls: {}{next})", p.message.as_deref().unwrap_or("waiting"), p.polls));
    })?;
    let Some(outcome) = polled else {
        bar.abandon();
        return interrupted(args, &job, bundled);
    };
    bar.finish_with_message(format!("{:?} after {} polls", outcome.status, job.progress(0).polls));
    if !outcome.is_success() {
        let _ = std::fs::remove_file(&state);
        return Err(format!("the export ended {:?}: {}", outcome.status, outcome.message.unwrap_or_default()).into());
    }
    if let (false, Some(url)) = (shown_status, job.status_url()) {
        println!("Status URL: {url}");
    }

    println!("Downloading {} files into {}", job.download_plan().len(), args.out.display());
    let counters = Counters::default();
    let started = Instant::now();
    let dl = ProgressBar::new_spinner();
    dl.set_style(ProgressStyle::with_template("{spinner} download {msg}")?);
    dl.enable_steady_tick(Duration::from_millis(120));
    let count_check = match args.count_check {
        Counts::Strict => CountCheck::Strict,
        Counts::Lenient => CountCheck::Lenient,
    };
    let opts = DownloadOptions { concurrency: args.concurrency, skip_existing: args.resume, count_check };
    let done = std::thread::scope(|s| {
        let h = s.spawn(|| driver.download(&mut job, &args.out, &opts, &counters));
        while !h.is_finished() {
            dl.set_message(download_line(&counters, started.elapsed(), true));
            std::thread::sleep(Duration::from_millis(100));
        }
        h.join().map_err(|_| "download thread panicked")
    })??;
    dl.finish_and_clear();
    println!("Download: {}", download_line(&counters, started.elapsed(), false));
    if done.interrupted {
        return interrupted(args, &job, bundled);
    }
    print_summary(&args.out, &done);
    let _ = std::fs::remove_file(&state);

    let unseen = outcome.warnings.iter().filter(|w| !warned.contains(w));
    for w in unseen.chain(done.files.iter().flat_map(|(_, r)| r.warnings.iter())) {
        println!("warning: {w}");
    }
    let server_errors = outcome.status == OutcomeStatus::CompletedWithErrors;
    if done.failed.is_empty() && !server_errors {
        println!("\nExport completed: files are in {} (every count checked against the manifest).", folder(&args.out));
    } else {
        println!("\nExport completed with errors: files are in {}; every good file is kept.", folder(&args.out));
        if server_errors {
            println!("The server reported errors: its error files hold OperationOutcomes.");
        }
        for f in &done.failed {
            println!("  failed: {f}");
        }
    }
    if bundled {
        println!("The same export in a browser, with a progress bar and a Cancel button: `make browser-demo`, then open the URL it prints.");
    }
    Ok(ExitCode::SUCCESS)
}

/// The folder as the user gave it, with one trailing slash.
fn folder(p: &Path) -> String {
    let s = p.display().to_string();
    if s.ends_with('/') {
        s
    } else {
        format!("{s}/")
    }
}

/// "149.1 MB received (wire), 1.95 GB written": gzip makes the two differ.
fn download_line(c: &Counters, took: Duration, live: bool) -> String {
    let wire = c.wire_bytes.load(Ordering::Relaxed);
    let written = c.written_bytes.load(Ordering::Relaxed);
    let secs = took.as_secs_f64().max(0.001);
    let rate = if live { format!(", {}/s on the wire", size(wire as f64 / secs)) } else { String::new() };
    format!(
        "{} received over the wire, {} written, {} resources in {:.2}s{rate}",
        size(wire as f64),
        size(written as f64),
        c.resources.load(Ordering::Relaxed),
        secs
    )
}

fn size(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.1} kB", b / 1e3)
    }
}

fn print_summary(out: &Path, done: &Downloaded) {
    let mut table: BTreeMap<String, (usize, u64, u64)> = BTreeMap::new();
    for (path, r) in &done.files {
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
    if !done.skipped.is_empty() {
        println!("{} files were already complete in {} and kept as they were.", done.skipped.len(), out.display());
    }
}

/// Ctrl-C: save the job (no token in it) and say how to resume or cancel it.
fn interrupted(args: &Args, job: &Job, bundled: bool) -> Res<ExitCode> {
    if bundled {
        println!("Interrupted. The bundled reference server stops with the demo: there is nothing to resume.");
        return Ok(ExitCode::from(130));
    }
    std::fs::create_dir_all(&args.out)?;
    let state = args.out.join(STATE_FILE);
    let tmp = args.out.join(format!("{STATE_FILE}.tmp"));
    std::fs::write(&tmp, job.to_json())?;
    std::fs::rename(&tmp, &state)?;
    let me = std::env::args().next().unwrap_or_else(|| "fhir-async-demo".into());
    let out = shell_word(&args.out.display().to_string());
    let token = if args.token.is_some() { " --token ..." } else { "" };
    println!("Interrupted. The export goes on on the server; its state is saved in {}.", state.display());
    println!("  resume: {} --resume --out {out}{token}", shell_word(&me));
    println!("  cancel: {} --cancel --out {out}{token}", shell_word(&me));
    Ok(ExitCode::from(130))
}

/// `--cancel`: cancel the saved job, or release the files of one that completed.
fn cancel(args: &Args, driver: &Driver) -> Res<ExitCode> {
    let state = args.out.join(STATE_FILE);
    let json =
        std::fs::read_to_string(&state).map_err(|e| format!("no saved job to cancel in {} ({e})", state.display()))?;
    let mut job = Job::from_json(&json)?;
    let completed = job.outcome().is_some_and(|o| o.is_success());
    if completed {
        // The export finished before the Ctrl-C: tell the server we are done with its files.
        job.cleanup()?;
    } else {
        job.cancel(now_ms());
    }
    let outcome = driver.run(&mut job, |_| {})?;
    std::fs::remove_file(&state)?;
    if completed {
        let ok = job.cleanup_result().is_some_and(|c| c.ok);
        println!("The export had completed; the server was told to delete its files: {:?}", job.cleanup_result());
        return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    println!("Cancel: {:?} (the export ended {:?})", job.cancel_result(), outcome.status);
    Ok(if outcome.status == OutcomeStatus::Cancelled { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A word a shell reads back as is: quoted only when it has to be.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
