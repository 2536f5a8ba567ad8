//! `make demo`: a bulk export with a live progress bar, against the bundled
//! reference server (or any server given with `--server`/`SERVER=`).
//! Ctrl-C stops cleanly and saves the job so `--resume` or `--cancel` can
//! pick it up (issue 10 §2).
use clap::Parser;
use fhir_async::{CountCheck, DownloadOptions, ExportRequest, Job, OutcomeStatus, RetryPolicy};
use fhir_async_client::{failed_files, Client, ClientError, DownloadEvent, DownloadSummary, JobRun, StaticToken, Stop};
use fhir_async_examples::TestServer;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// Files downloaded at once from one origin
    #[arg(long, default_value_t = 4)]
    concurrency: u32,
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
    // The first Ctrl-C stops the client cleanly (no partial file, the job saved); a second exits at once.
    let stop = Stop::default();
    let pressed = AtomicBool::new(false);
    let on_ctrl_c = stop.clone();
    let handler = ctrlc::set_handler(move || {
        if pressed_again(&pressed) {
            eprintln!("\nSecond Ctrl-C: exiting now.");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: stopping cleanly (press Ctrl-C again to exit at once)...");
        on_ctrl_c.stop();
    });
    if let Err(e) = handler {
        eprintln!("demo: cannot catch Ctrl-C: {e}");
    }
    let result = if args.cancel { cancel(&args, &stop) } else { export(&args, &stop) };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// Records a Ctrl-C; whether one came before (then the demo exits at once).
fn pressed_again(pressed: &AtomicBool) -> bool {
    pressed.swap(true, Ordering::SeqCst)
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The client for `base`: the demo's token, polls at least 200 ms apart, a 6 h deadline, `stop`.
fn client(args: &Args, base: &str, stop: &Stop) -> Result<Client, ClientError> {
    let mut b = Client::builder(base)
        .retry(RetryPolicy { min_wait_ms: 200, ..RetryPolicy::default() })
        .timeout(Duration::from_secs(6 * 3600))
        .stop(stop.clone());
    if let Some(t) = &args.token {
        b = b.token(StaticToken::new(t.clone()));
    }
    b.build()
}

/// The job saved in OUT after a Ctrl-C, on a client of its server.
fn saved_job(args: &Args, stop: &Stop, what: &str) -> Res<JobRun> {
    let state = args.out.join(STATE_FILE);
    let json =
        std::fs::read_to_string(&state).map_err(|e| format!("no saved job to {what} in {} ({e})", state.display()))?;
    let base = Job::from_json(&json)?.config().base_url.clone();
    Ok(client(args, &base, stop)?.resume(&json)?)
}

fn export(args: &Args, stop: &Stop) -> Res<ExitCode> {
    let state = args.out.join(STATE_FILE);
    let (_server, mut run, bundled) = if args.resume {
        let run = saved_job(args, stop, "resume")?;
        let status = run.job().status_url().unwrap_or("not known yet");
        println!("Resuming the export of {} (no new kick-off; status URL {status})", run.job().config().base_url);
        (None, run, false)
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
        let request = ExportRequest { types: args.types.clone(), ..Default::default() };
        let run = match client(args, &base, stop)?.export(request) {
            Ok(run) => run,
            Err(ClientError::Stopped) => {
                println!("Interrupted before the server accepted the export: there is nothing to resume.");
                return Ok(ExitCode::from(130));
            }
            Err(e) => return Err(e.into()),
        };
        // On stdout, not through the bar (hidden when stderr is not a terminal).
        println!("Kicked off; polling {}", run.job().status_url().unwrap_or("(answered at once)"));
        let bundled = server.is_some();
        (server, run, bundled)
    };

    let bar = ProgressBar::new(100);
    bar.set_style(ProgressStyle::with_template("{spinner} export [{bar:40}] {pos:>3}%  {msg}")?.progress_chars("=> "));
    bar.enable_steady_tick(Duration::from_millis(120));
    // Warnings (a clamped Retry-After, unrequested types...) are shown as they come, once each.
    let mut warned: Vec<String> = Vec::new();
    let outcome = loop {
        let p = run.progress();
        if let Some(w) = p.warning.as_ref().filter(|w| !warned.contains(w)) {
            bar.suspend(|| println!("warning: {w}"));
            warned.push(w.clone());
        }
        if let Some(pct) = p.percent {
            bar.set_position(pct as u64);
        }
        let next = p.next_poll_in_ms.map(|ms| format!(", next poll in {:.1}s", ms as f64 / 1000.0)).unwrap_or_default();
        bar.set_message(format!("{} (polls: {}{next})", p.message.as_deref().unwrap_or("waiting"), p.polls));
        // A quarter second at most, so the countdown moves.
        match run.step(Duration::from_millis(250)) {
            Ok(Some(outcome)) => break outcome,
            Ok(None) => {}
            Err(ClientError::Stopped) => {
                bar.abandon();
                return interrupted(args, &run, bundled);
            }
            Err(e) => return Err(e.into()),
        }
    };
    bar.finish_with_message(format!("{:?} after {} polls", outcome.status, run.progress().polls));
    if !outcome.is_success() {
        let _ = std::fs::remove_file(&state);
        return Err(format!("the export ended {:?}: {}", outcome.status, outcome.message.unwrap_or_default()).into());
    }

    println!("Downloading {} files into {}", run.job().download_plan().len(), args.out.display());
    // Files an interrupted run already completed (renamed into place) are kept as they are.
    let skipped = if args.resume { run.completed_in(&args.out) } else { Vec::new() };
    let count_check = match args.count_check {
        Counts::Strict => CountCheck::Strict,
        Counts::Lenient => CountCheck::Lenient,
    };
    let options = DownloadOptions {
        max_per_origin: args.concurrency,
        count_check,
        skip_files: skipped.clone(),
        ..Default::default()
    };
    let live = Live::default();
    let started = Instant::now();
    let dl = ProgressBar::new_spinner();
    dl.set_style(ProgressStyle::with_template("{spinner} download {msg}")?);
    dl.enable_steady_tick(Duration::from_millis(120));
    let done = std::thread::scope(|s| {
        let h = s.spawn(|| run.download_events(&args.out, options, |e| live.record(e)));
        while !h.is_finished() {
            dl.set_message(live.line(started.elapsed(), true));
            std::thread::sleep(Duration::from_millis(100));
        }
        h.join().map_err(|_| "download thread panicked")
    })?;
    dl.finish_and_clear();
    println!("Download: {}", live.line(started.elapsed(), false));
    let summary = match done {
        Ok(summary) => summary,
        Err(ClientError::Stopped) => return interrupted(args, &run, bundled),
        Err(e) => return Err(e.into()),
    };
    print_summary(&args.out, &summary, skipped.len());
    let _ = std::fs::remove_file(&state);

    let unseen = outcome.warnings.iter().filter(|w| !warned.contains(w));
    let file_warnings = summary.files.iter().filter_map(|f| f.result.report.as_ref()).flat_map(|r| r.warnings.iter());
    for w in unseen.chain(file_warnings) {
        println!("warning: {w}");
    }
    let server_errors = outcome.status == OutcomeStatus::CompletedWithErrors;
    if summary.is_complete() && !server_errors {
        println!("\nExport completed: files are in {} (every count checked against the manifest).", folder(&args.out));
    } else {
        println!("\nExport completed with errors: files are in {}; every good file is kept.", folder(&args.out));
        if server_errors {
            println!("The server reported errors: its error files hold OperationOutcomes.");
        }
        for f in failed_files(&summary) {
            let error = f.error.as_ref().map(ToString::to_string).unwrap_or_default();
            println!("  failed: {}: {error}", f.file.file_name);
        }
    }
    if bundled {
        println!("The same export in a browser, with a progress bar and a Cancel button: `make browser-demo`, then open the URL it prints.");
    }
    Ok(ExitCode::SUCCESS)
}

/// The download's figures as the client reports them, for the live line.
#[derive(Default)]
struct Live {
    /// Bytes received over the wire (compressed when the server gzips).
    wire: AtomicU64,
    /// Decoded NDJSON bytes written.
    written: AtomicU64,
    /// Resources written.
    resources: AtomicU64,
}

impl Live {
    fn record(&self, e: DownloadEvent<'_>) {
        match e {
            DownloadEvent::Bytes { wire_bytes } => {
                self.wire.fetch_max(wire_bytes, Ordering::Relaxed);
            }
            DownloadEvent::Progress { totals, wire_bytes } => {
                self.wire.fetch_max(wire_bytes, Ordering::Relaxed);
                self.written.fetch_max(totals.bytes, Ordering::Relaxed);
                self.resources.fetch_max(totals.resources, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// "149.1 MB received over the wire, 1.95 GB written, ...": gzip makes the two differ.
    fn line(&self, took: Duration, live: bool) -> String {
        let wire = self.wire.load(Ordering::Relaxed);
        let written = self.written.load(Ordering::Relaxed);
        let secs = took.as_secs_f64().max(0.001);
        let rate = if live { format!(", {}/s on the wire", size(wire as f64 / secs)) } else { String::new() };
        format!(
            "{} received over the wire, {} written, {} resources in {:.2}s{rate}",
            size(wire as f64),
            size(written as f64),
            self.resources.load(Ordering::Relaxed),
            secs
        )
    }
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

fn size(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.1} kB", b / 1e3)
    }
}

fn print_summary(out: &Path, summary: &DownloadSummary, skipped: usize) {
    let mut table: BTreeMap<String, (usize, u64, u64)> = BTreeMap::new();
    for f in &summary.files {
        let (Some(report), Some(path)) = (&f.result.report, &f.path) else { continue };
        let key = report.resource_type.clone().unwrap_or_else(|| format!("{:?}", report.kind));
        let e = table.entry(key).or_default();
        e.0 += 1;
        e.1 += report.resources;
        e.2 += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    }
    println!("\n{:<20} {:>6} {:>12} {:>12}", "type", "files", "resources", "bytes");
    for (t, (n, res, b)) in &table {
        println!("{t:<20} {n:>6} {res:>12} {b:>12}");
    }
    if skipped > 0 {
        println!("{skipped} files were already complete in {} and kept as they were.", out.display());
    }
}

/// Ctrl-C: save the job (no token in it) and say how to resume or cancel it.
fn interrupted(args: &Args, run: &JobRun, bundled: bool) -> Res<ExitCode> {
    if bundled {
        println!("Interrupted. The bundled reference server stops with the demo: there is nothing to resume.");
        return Ok(ExitCode::from(130));
    }
    std::fs::create_dir_all(&args.out)?;
    let state = args.out.join(STATE_FILE);
    let tmp = args.out.join(format!("{STATE_FILE}.tmp"));
    std::fs::write(&tmp, run.to_json())?;
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
fn cancel(args: &Args, stop: &Stop) -> Res<ExitCode> {
    let mut run = saved_job(args, stop, "cancel")?;
    let state = args.out.join(STATE_FILE);
    if run.outcome().is_some_and(|o| o.is_success()) {
        // The export finished before the Ctrl-C: tell the server we are done with its files.
        let cleanup = run.cleanup()?;
        std::fs::remove_file(&state)?;
        println!("The export had completed; the server was told to delete its files: {cleanup:?}");
        return Ok(if cleanup.ok { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    let outcome = run.cancel()?;
    std::fs::remove_file(&state)?;
    println!("Cancel: {:?} (the export ended {:?})", run.job().cancel_result(), outcome.status);
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

#[cfg(test)]
mod tests {
    use super::*;

    // issue 10 §2: the first Ctrl-C stops cleanly, a second exits at once.
    #[test]
    fn a_second_ctrl_c_exits_at_once() {
        let pressed = AtomicBool::new(false);
        assert!(!pressed_again(&pressed), "the first stops the client cleanly");
        assert!(pressed_again(&pressed), "the second exits");
    }
}
