//! `fhir-async`: bulk `$export` and any FHIR asynchronous operation from the
//! command line, on `fhir-async-client`. The output folder is the job: run
//! the same command again and it resumes. Every decision is the engine's.
//! See `docs/cli.md`; [`main_with_args`] is the whole program.
#![forbid(unsafe_code)]

mod args;
mod auth;
mod folder;
mod parquet;
mod ui;

use args::{Cli, Command, CountCheck, ExportArgs, Format, Level, ServerArgs};
use clap::Parser;
use fhir_async::{
    DownloadOptions, ExportLevel, ExportRequest, FileKind, FileReport, Method, Operation, OperationRequest, Outcome,
    OutcomeStatus, PreferOptions, Validation,
};
use fhir_async_client::{Client, ClientError, DownloadEvent, DownloadSummary, JobRun, Stop};
use folder::{Folder, CANCELLED, CANCEL_ASKED, LAST, SETTINGS, STATE};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use ui::{human_bytes, Ui};

/// Why the command ends early, with its exit code.
#[derive(Debug)]
struct Fail {
    code: i32,
    message: String,
}

fn usage(message: impl Into<String>) -> Fail {
    Fail { code: 2, message: message.into() }
}

fn io(path: &Path, e: std::io::Error) -> Fail {
    Fail { code: 1, message: format!("{}: {e}", path.display()) }
}

impl From<ClientError> for Fail {
    fn from(e: ClientError) -> Self {
        let code = match e.code() {
            "stopped" => 130,
            "unauthorized" | "auth" => 5,
            "usage" => 2,
            _ => 1,
        };
        Fail { code, message: e.to_string() }
    }
}

/// Runs the command line with these arguments (the first is the program
/// name) and returns the exit code: the `fhir-async` binary, and the Python
/// package's `fhir-async` console script, call this (one implementation, two ways in).
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let json = cli.json;
    let result = match cli.command {
        Command::Export(a) => export(*a, json),
        Command::Status(t) => status(t, json),
        Command::Cancel(t) => cancel(t, json),
        Command::Download(d) => download_cmd(d, json),
        Command::Kickoff(k) => kickoff(k, json),
        Command::Parquet(p) => parquet_cmd(p, json),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("fhir-async: {}", f.message);
            f.code
        }
    }
}

/// Ctrl-C: the first press stops cleanly (state saved, no `.tmp` left), a second exits at once.
fn ctrl_c_stop() -> Stop {
    ctrl_c(Stop::default())
}

/// A stop for a process working in a job folder: Ctrl-C, or a `cancel` from another process
/// that finished ([`CANCELLED`] appeared; looked for at most every 200 ms).
fn folder_stop(folder: &Folder) -> Stop {
    if !folder.is_saved() {
        return ctrl_c_stop();
    }
    let marker = folder.path(CANCELLED);
    let last = AtomicU64::new(0);
    ctrl_c(Stop::with_hook(move || {
        let now = fhir_async_client::now_ms();
        if now.saturating_sub(last.load(Ordering::Relaxed)) < 200 {
            return false;
        }
        last.store(now, Ordering::Relaxed);
        marker.is_file()
    }))
}

fn ctrl_c(stop: Stop) -> Stop {
    static PRESSES: AtomicU32 = AtomicU32::new(0);
    let s = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if PRESSES.fetch_add(1, Ordering::SeqCst) > 0 {
            std::process::exit(130);
        }
        s.stop();
    });
    stop
}

fn client(server: &ServerArgs, stop: Stop, prefer: PreferOptions) -> Result<Client, Fail> {
    let base = server.base.clone().ok_or_else(|| usage("--base (or FHIR_ASYNC_BASE) is required"))?;
    let mut b = Client::builder(&base).binding("cli").stop(stop).prefer(prefer);
    if let Some(t) = server.timeout {
        b = b.timeout(t);
    }
    let b = auth::apply(server, &base, b).map_err(|m| Fail { code: 5, message: m })?;
    Ok(b.build()?)
}

fn outcome_code(o: &Outcome, downloaded: Option<&Downloaded>) -> i32 {
    match o.status {
        OutcomeStatus::Completed if downloaded.is_some_and(Downloaded::has_errors) => 3,
        OutcomeStatus::Completed => 0,
        OutcomeStatus::CompletedWithErrors => 3,
        OutcomeStatus::Failed => 1,
        OutcomeStatus::Cancelled => 4,
    }
}

fn outcome_event(o: &Outcome) -> Value {
    json!({"status": o.status, "httpStatus": o.http_status, "message": o.message, "warnings": o.warnings})
}

/// Saves the job, and on a stop tells how to go on.
fn interrupted(folder: &Folder, run: &JobRun, ui: &Ui) -> Fail {
    let _ = folder.write(STATE, &run.to_json());
    folder.event("interrupted", json!({"statusUrl": run.job().status_url()}));
    ui.finish();
    let dir = folder.dir().display();
    // `--base` confirms the folder's server: the credential goes to it (see `folder_server`).
    let base = &run.job().config().base_url;
    eprintln!("fhir-async: interrupted; the job is saved in {dir}");
    eprintln!("  resume: fhir-async export --out {dir} --base {base}");
    eprintln!("  cancel: fhir-async cancel {dir} --base {base}");
    Fail { code: 130, message: "interrupted".into() }
}

/// Polls until the job is over; saves its state when it ends (and on a stop). A job
/// cancelled meanwhile by `fhir-async cancel` from another process ends as cancelled (exit 4).
fn wait(run: &mut JobRun, folder: &Folder, ui: &Ui) -> Result<Outcome, Fail> {
    let mut polls = u32::MAX;
    let mut last_warning: Option<String> = None;
    let r = run.wait_with(|p| {
        ui.job(p);
        if p.polls != polls {
            polls = p.polls;
            folder.event("status", json!({"phase": p.phase, "polls": p.polls, "message": p.message, "percent": p.percent, "nextPollInMs": p.next_poll_in_ms}));
        }
        // Each new warning once (progress repeats the latest one).
        if p.warning.is_some() && p.warning != last_warning {
            last_warning.clone_from(&p.warning);
            let w = p.warning.as_deref().unwrap_or_default();
            ui.say(&format!("warning: {w}"));
            folder.event("warning", json!({"message": w}));
        }
    });
    // The other process's cancel is the job's end, not what this one saw of it (a 404, a stop).
    if !matches!(&r, Ok(o) if o.is_success()) {
        if let Some(f) = cancelled_by_another(folder, ui) {
            return Err(f);
        }
    }
    // A credential refused or missing leaves the saved job as it was: the same command
    // resumes it once a token can be had.
    let auth_failed = matches!(&r, Err(e) if matches!(e.code(), "unauthorized" | "auth"));
    if folder.is_saved() && !auth_failed {
        let _ = folder.write(STATE, &run.to_json());
    }
    match r {
        Ok(o) => {
            folder.event("outcome", outcome_event(&o));
            Ok(o)
        }
        Err(ClientError::Stopped) => Err(interrupted(folder, run, ui)),
        Err(e) => {
            folder.event("error", json!({"code": e.code(), "message": e.to_string()}));
            Err(e.into())
        }
    }
}

/// How long a process waits for another process's cancel it saw asked ([`CANCEL_ASKED`]) to end.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// The job was cancelled by `fhir-async cancel` from another process: its cancelled state becomes
/// the folder's, and the command ends with exit 4. A cancel asked but not ended yet is waited for
/// (bounded); `None` when there is none, or it did not cancel the job.
fn cancelled_by_another(folder: &Folder, ui: &Ui) -> Option<Fail> {
    if !folder.is_saved() {
        return None;
    }
    let until = Instant::now() + CANCEL_WAIT;
    let state = loop {
        if let Some(state) = folder.cancelled_elsewhere() {
            break state;
        }
        if !folder.cancel_asked() || Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = folder.write(STATE, &state);
    folder.remove(CANCELLED);
    folder.remove(CANCEL_ASKED);
    folder.event("cancelled", json!({"by": "fhir-async cancel from another process"}));
    ui.finish();
    Some(Fail {
        code: 4,
        message: format!(
            "the job was cancelled (fhir-async cancel from another process); its state is saved in {}",
            folder.dir().display()
        ),
    })
}

/// Takes the folder's lock for a command that works in it (exit 2 naming the holder's pid when
/// another process has it), and takes in a cancel from another process that ended meanwhile.
fn lock_folder(folder: &Folder) -> Result<folder::Lock, Fail> {
    let dir = folder.dir().display();
    let lock = match folder.lock().map_err(|e| io(folder.dir(), e))? {
        Ok(lock) => lock,
        Err(held) => {
            let who = held.pid.map_or_else(|| "pid unknown".to_owned(), |p| format!("pid {p}"));
            return Err(usage(format!(
                "{dir} is in use by another fhir-async process ({who}); one process works in a job folder at a time. \
                 Wait for it to end (or stop it); `fhir-async status {dir}` and `fhir-async cancel {dir}` run beside it"
            )));
        }
    };
    if let Some(state) = folder.cancelled_elsewhere() {
        let _ = folder.write(STATE, &state);
        folder.event("cancelled", json!({"by": "fhir-async cancel from another process"}));
    }
    folder.remove(CANCELLED);
    folder.remove(CANCEL_ASKED);
    Ok(lock)
}

/// Whether two base URLs name the same server base (a trailing `/` aside).
fn same_base(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The server arguments for a command on an existing job folder. The base URL is the folder's;
/// a credential (a flag, the environment, or the folder's saved authorization) goes with it only
/// when the command line confirmed that base with `--base`: a folder does not say where a
/// credential is sent. Another `--base` than the folder's is a usage error.
fn folder_server(given: &ServerArgs, folder: &Folder) -> Result<ServerArgs, Fail> {
    let settings: Option<Value> = folder.read(SETTINGS).and_then(|t| serde_json::from_str(&t).ok());
    let saved_base = folder
        .read(STATE)
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["config"]["baseUrl"].as_str().map(str::to_owned))
        .or_else(|| settings.as_ref().and_then(|s| s["base"].as_str().map(str::to_owned)));
    let Some(saved_base) = saved_base else { return Ok(given.clone()) };
    let dir = folder.dir().display();
    match &given.base {
        Some(b) if same_base(b, &saved_base) => {
            let mut s = given.clone();
            if let Some(st) = &settings {
                auth::merge_saved(&mut s, st);
            }
            // A token URL the folder saved is the folder's word, not the command line's: it is
            // used only on the confirmed base's origin (else discovery from the base finds one).
            let origin = |u: &str| fhir_async::origin::Origin::parse(u);
            if given.token_url.is_none()
                && s.token_url.as_deref().is_some_and(|u| origin(u).is_none() || origin(u) != origin(&saved_base))
            {
                let why = format!(
                    "the token URL saved in {dir} is not on {saved_base}'s origin: not used (give --token-url to use it)"
                );
                eprintln!("fhir-async: {why}");
                folder.event("warning", json!({"message": why}));
                s.token_url = None;
            }
            s.base = Some(saved_base);
            Ok(s)
        }
        Some(b) => Err(usage(format!(
            "{dir} holds a job on {saved_base}, not {b}: give --base {saved_base} (or no --base) to work on it, \
             or another folder for another server"
        ))),
        None => {
            let saved_auth = settings.as_ref().and_then(|s| s["auth"]["kind"].as_str()).is_some_and(|k| k != "none");
            let mut s = given.clone();
            auth::strip(&mut s);
            s.base = Some(saved_base.clone());
            if auth::offers_credential(given) || saved_auth {
                let why = format!(
                    "no credential is sent to {saved_base}: it is the base URL saved in {dir}, not one given on the \
                     command line (add --base {saved_base} to confirm it)"
                );
                eprintln!("fhir-async: {why}");
                folder.event("warning", json!({"message": why}));
            }
            Ok(s)
        }
    }
}

/// A saved job resumed for this run: its deadline is this run's (`timeout` from now, or the one
/// the job was created with, from now), not one a first run set long ago; a manifest refresh on a
/// re-run is bounded by the re-run's `--timeout` (K8).
fn resume_for_this_run(client: &Client, state: &str, timeout: Option<Duration>) -> Result<JobRun, ClientError> {
    let mut run = client.resume(state)?;
    let timeout = timeout.or_else(|| run.job().config().timeout_ms.map(Duration::from_millis));
    run.set_timeout(timeout);
    Ok(run)
}

/// What a download into the folder did: the client's summary, and the files that could not
/// be compressed (`--format ndjson.gz`).
struct Downloaded {
    summary: DownloadSummary,
    /// (file, why): kept uncompressed; the next run compresses them again.
    gzip_failed: Vec<(String, String)>,
}

impl Downloaded {
    /// Whether any file failed, could not be compressed, or has lines that are not JSON objects.
    fn has_errors(&self) -> bool {
        !self.summary.is_complete()
            || !self.gzip_failed.is_empty()
            || self.summary.files.iter().any(|f| f.result.report.as_ref().is_some_and(|r| r.invalid_lines > 0))
    }
}

/// A file waiting for the compressor: its name, where it is, and its `file.finished` event
/// (`None`: done in an earlier run, only its compression is left).
type GzipJob = (String, PathBuf, Option<Value>);

/// Downloads the job's files into the folder. A file is left out only when the job's records
/// say it is done (and it is in the folder): a file of the same name is not proof.
fn download(
    run: &mut JobRun,
    folder: &Folder,
    ui: &Ui,
    opts: DownloadOptions,
    format: Format,
) -> Result<Downloaded, Fail> {
    if let Some(m) = run.outcome().and_then(Outcome::manifest) {
        folder.event("manifest", json!({"transactionTime": m.transaction_time, "output": m.output.len(), "error": m.error_files().count(), "deleted": m.deleted.len()}));
    }
    let skip = folder.done_files(run.job().file_records());
    if !skip.is_empty() {
        ui.say(&format!(
            "{} file(s) already complete in {} (the job's records): not fetched again",
            skip.len(),
            folder.dir().display()
        ));
    }
    let gzip = format == Format::NdjsonGz;
    // Done in an earlier run but not compressed yet (that run ended first, or compressing failed).
    let left: Vec<GzipJob> = if gzip {
        skip.iter()
            .map(|n| (n.clone(), folder.path(n)))
            .filter(|(n, p)| p.is_file() && !folder.path(&format!("{n}.gz")).is_file())
            .map(|(n, p)| (n, p, None))
            .collect()
    } else {
        Vec::new()
    };
    let opts = DownloadOptions { skip_files: skip, ..opts };
    // Compressing is slow: it runs on a thread of its own, never in the download's callbacks
    // (they run under the client's coordinator lock, and would stall every worker).
    let (tx, rx) = std::sync::mpsc::channel::<GzipJob>();
    let (r, gzip_failed) = std::thread::scope(|scope| {
        let compressor = scope.spawn(|| compress_all(rx, folder, ui));
        for job in left {
            let _ = tx.send(job);
        }
        let r = run.download_events(folder.dir(), opts, |e| match e {
            DownloadEvent::Started { file, attempt, .. } => {
                folder.event(
                    "file.started",
                    json!({"file": file.file_name, "type": file.resource_type, "kind": file.kind, "attempt": attempt}),
                );
            }
            DownloadEvent::Progress { totals, wire_bytes } => ui.download(totals, wire_bytes),
            DownloadEvent::Limit { change } => {
                ui.say(&format!(
                    "{}: {} file(s) at once, was {} ({})",
                    change.origin, change.to, change.from, change.reason
                ));
                folder.event(
                    "limit",
                    json!({"origin": change.origin, "from": change.from, "to": change.to, "reason": change.reason}),
                );
            }
            DownloadEvent::Finished { result, path, elapsed_ms, .. } => match (&result.report, &result.error) {
                (Some(r), _) => {
                    let fields = json!({"file": r.file_name, "type": r.resource_type, "kind": r.kind, "bytes": r.bytes,
                        "resources": valid_resources(r), "invalidLines": r.invalid_lines, "durationMs": elapsed_ms,
                        "warnings": r.warnings, "path": path});
                    match path {
                        // `file.finished` once compressed, with the compressed file's path.
                        Some(p) if gzip => {
                            let _ = tx.send((r.file_name.clone(), p.to_owned(), Some(fields)));
                        }
                        _ => folder.event("file.finished", fields),
                    }
                }
                (None, Some(e)) => {
                    ui.say(&format!("file {} failed: {e}", result.file.file_name));
                    folder.event(
                        "file.failed",
                        json!({"file": result.file.file_name, "type": result.file.resource_type, "kind": result.file.kind,
                        "code": e.code(), "message": e.to_string(), "durationMs": elapsed_ms}),
                    );
                }
                (None, None) => {}
            },
            _ => {}
        });
        drop(tx);
        let failed = compressor.join().unwrap_or_default();
        (r, failed)
    });
    match r {
        Ok(summary) => Ok(Downloaded { summary, gzip_failed }),
        Err(ClientError::Stopped) => {
            Err(cancelled_by_another(folder, ui).unwrap_or_else(|| interrupted(folder, run, ui)))
        }
        Err(e) => Err(e.into()),
    }
}

/// The compressor thread: each finished file in turn; returns the ones that failed (kept
/// uncompressed, each a `file.failed` event with code `gzip`).
fn compress_all(rx: std::sync::mpsc::Receiver<GzipJob>, folder: &Folder, ui: &Ui) -> Vec<(String, String)> {
    let mut failed = Vec::new();
    for (name, path, fields) in rx {
        match gzip_in_place(&path) {
            Ok(gz) => match fields {
                Some(mut f) => {
                    f["path"] = json!(gz);
                    folder.event("file.finished", f);
                }
                None => folder.event("file.compressed", json!({"file": name, "path": gz})),
            },
            Err(e) => {
                let message = format!("could not compress {}: {e}", path.display());
                ui.say(&format!("file {name} failed: {message}"));
                folder.event("file.failed", json!({"file": name, "code": "gzip", "message": message}));
                failed.push((name, message));
            }
        }
    }
    failed
}

/// Resources in a file: its lines that are JSON objects (the engine's `resources` counts
/// only those; the invalid lines it handed out too are `invalid_lines`).
fn valid_resources(r: &FileReport) -> u64 {
    r.resources
}

/// `name.ndjson` → `name.ndjson.gz` (temp + rename), the original removed. On an error
/// nothing is left but the original.
fn gzip_in_place(path: &Path) -> std::io::Result<PathBuf> {
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let tmp = PathBuf::from(format!("{}.gz.tmp", path.display()));
    let written = (|| {
        let mut input = std::fs::File::open(path)?;
        let out = std::fs::File::create(&tmp)?;
        let mut enc = flate2::write::GzEncoder::new(std::io::BufWriter::new(out), flate2::Compression::default());
        std::io::copy(&mut input, &mut enc)?;
        std::io::Write::flush(&mut enc.finish()?)?;
        std::fs::rename(&tmp, &gz)
    })();
    if let Err(e) = written {
        if tmp.is_file() {
            let _ = std::fs::remove_file(&tmp);
        }
        return Err(e);
    }
    std::fs::remove_file(path)?;
    Ok(gz)
}

/// The table at the end: per type, files, resources (lines that are JSON objects), invalid
/// lines and bytes; then what failed, and every file's warnings.
fn summary_table(d: &Downloaded, o: &Outcome) -> String {
    use std::collections::BTreeMap;
    let mut rows: BTreeMap<String, (usize, u64, u64, u64)> = BTreeMap::new();
    let mut failed = Vec::new();
    let mut warnings = Vec::new();
    for f in &d.summary.files {
        let label = match (f.result.file.kind, &f.result.file.resource_type) {
            (FileKind::Output, Some(t)) => t.clone(),
            (FileKind::Output, None) => "(organized)".into(),
            (FileKind::Error, _) => "(error)".into(),
            (FileKind::Deleted, _) => "(deleted)".into(),
        };
        match (&f.result.report, &f.result.error) {
            (Some(r), _) => {
                let e = rows.entry(label).or_default();
                e.0 += 1;
                e.1 += valid_resources(r);
                e.2 += r.invalid_lines;
                e.3 += r.bytes;
                warnings.extend(r.warnings.iter().map(|w| format!("  WARNING {}: {w}", r.file_name)));
            }
            (_, Some(e)) => failed.push(format!("  FAILED {}: {e}", f.result.file.file_name)),
            _ => {}
        }
    }
    failed.extend(d.gzip_failed.iter().map(|(n, e)| format!("  FAILED {n}: gzip: {e}")));
    let mut out = format!("{:<24} {:>6} {:>12} {:>8} {:>10}\n", "type", "files", "resources", "invalid", "written");
    let (mut tf, mut tr, mut ti, mut tb) = (0, 0, 0, 0);
    for (t, (f, r, i, b)) in &rows {
        out.push_str(&format!("{t:<24} {f:>6} {r:>12} {i:>8} {:>10}\n", human_bytes(*b)));
        tf += f;
        tr += r;
        ti += i;
        tb += b;
    }
    out.push_str(&format!("{:<24} {tf:>6} {tr:>12} {ti:>8} {:>10}\n", "total", human_bytes(tb)));
    out.push_str(&format!("received {} over the wire · outcome {:?}", human_bytes(d.summary.wire_bytes), o.status));
    if ti > 0 {
        out.push_str(&format!("\n{ti} line(s) are not JSON objects: not counted as resources (kept in the files)"));
    }
    for line in failed.into_iter().chain(warnings) {
        out.push('\n');
        out.push_str(&line);
    }
    out
}

fn download_options(concurrency: u32, check: CountCheck) -> DownloadOptions {
    DownloadOptions {
        max_per_origin: concurrency.max(1),
        count_check: match check {
            CountCheck::Strict => fhir_async::CountCheck::Strict,
            CountCheck::Lenient => fhir_async::CountCheck::Lenient,
        },
        // A line is a resource only if it parses (`{not json}` passes the structural check).
        validation: Validation::Json,
        ..DownloadOptions::default()
    }
}

fn export_request(a: &ExportArgs, since: Option<String>) -> ExportRequest {
    ExportRequest {
        level: match a.level {
            Level::System => ExportLevel::System,
            Level::Patient => ExportLevel::Patient,
            Level::Group => ExportLevel::Group,
        },
        group_id: a.group.clone(),
        types: a.types.iter().filter(|t| !t.is_empty()).cloned().collect(),
        since,
        until: a.until.clone(),
        type_filters: a.type_filters.clone(),
        elements: a.elements.clone(),
        patients: a.patients.clone(),
        post: a.post,
        ..ExportRequest::default()
    }
}

/// An option the folder's first run saved.
fn saved_opt<T: serde::de::DeserializeOwned>(saved: &Option<Value>, key: &str) -> Option<T> {
    saved.as_ref().and_then(|s| serde_json::from_value(s[key].clone()).ok())
}

/// The request an `export` with no selection options would make (to tell whether any was given).
fn export_request_blank(a: &ExportArgs) -> ExportRequest {
    let blank = ExportArgs {
        level: Level::System,
        group: None,
        types: Vec::new(),
        since: None,
        until: None,
        type_filters: Vec::new(),
        elements: Vec::new(),
        patients: Vec::new(),
        post: false,
        server: a.server.clone(),
        out: a.out.clone(),
        concurrency: None,
        format: None,
        count_check: None,
        new: false,
    };
    export_request(&blank, export_request(a, None).since)
}

/// A request as a person reads it: its parameters that are set.
fn describe_request(r: &ExportRequest) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|_, x| !(x.is_null() || x == &json!(false) || x == &json!([]) || x == &json!({})));
    }
    v.to_string()
}

/// A later `export` in a folder that holds a job: a selection that differs from the saved one
/// is refused (it would be ignored: the folder's job is resumed, not kicked off again).
fn check_selection(a: &ExportArgs, saved: &Option<Value>, folder: &Folder) -> Result<(), Fail> {
    let given = export_request(a, if a.since.as_deref() == Some("auto") { None } else { a.since.clone() });
    if given == export_request_blank(a) {
        return Ok(()); // nothing about what to export was given: the folder's
    }
    let Some(prev) = saved_opt::<ExportRequest>(saved, "request") else { return Ok(()) };
    // `--since auto` computes its own `since`: only the rest is compared then.
    let (g, p) = if a.since.as_deref() == Some("auto") {
        (ExportRequest { since: None, ..given }, ExportRequest { since: None, ..prev })
    } else {
        (given, prev)
    };
    if g == p {
        return Ok(());
    }
    let dir = folder.dir().display();
    Err(usage(format!(
        "{dir} holds another export ({}), not this one ({}); a folder is one export and a re-run resumes it. \
         To start this export, give another folder (--out OTHER), or add --new to move the folder's export aside \
         into {dir}/previous/ and start it here",
        describe_request(&p),
        describe_request(&g)
    )))
}

fn export(a: ExportArgs, json: bool) -> Result<i32, Fail> {
    let folder = Folder::open(&a.out, json).map_err(|e| io(&a.out, e))?;
    let _lock = lock_folder(&folder)?;
    let ui = Ui::new(json);
    if a.new && folder.read(STATE).is_some() {
        let label = format!("export-{}", fhir_async_client::now_ms());
        let to = folder.archive(&label).map_err(|e| io(folder.dir(), e))?;
        folder.remove(SETTINGS);
        // `--since auto` counts from this folder's exports: the old one's is not the new one's.
        if folder.path(LAST).is_file() {
            std::fs::rename(folder.path(LAST), to.join(LAST)).map_err(|e| io(folder.dir(), e))?;
        }
        ui.say(&format!("--new: the folder's export moved to {}", to.display()));
        folder.event("archived", json!({"to": to, "why": "--new"}));
    }
    let saved: Option<Value> = folder.read(SETTINGS).and_then(|t| serde_json::from_str(&t).ok());
    let state = folder.read(STATE);
    if state.is_some() {
        check_selection(&a, &saved, &folder)?;
    }
    let server = folder_server(&a.server, &folder)?;
    let client = client(&server, folder_stop(&folder), PreferOptions::default())?;
    let since_auto = a.since.as_deref() == Some("auto");
    // Options left out on a later run in the same folder are the first run's.
    let format: Format = a.format.or_else(|| saved_opt(&saved, "format")).unwrap_or(Format::Ndjson);
    let count_check: CountCheck =
        a.count_check.or_else(|| saved_opt(&saved, "countCheck")).unwrap_or(CountCheck::Strict);
    let concurrency: u32 = a.concurrency.or_else(|| saved_opt(&saved, "concurrency")).unwrap_or(4);
    let mut resumed = match &state {
        Some(state) => Some(resume_for_this_run(&client, state, a.server.timeout)?),
        None => None,
    };
    // A finished export and `--since auto`: the next incremental export; the previous one moves aside.
    if let (Some(run), true) = (&resumed, since_auto) {
        if run.outcome().is_some_and(Outcome::is_success) {
            let label = run
                .outcome()
                .and_then(Outcome::manifest)
                .and_then(|m| m.transaction_time.clone())
                .unwrap_or_else(|| "export".into());
            let to = folder.archive(&label).map_err(|e| io(folder.dir(), e))?;
            ui.say(&format!("the previous export moved to {}", to.display()));
            resumed = None;
        }
    }
    let mut run = match resumed {
        Some(run) => {
            ui.say(&format!("resuming the job in {} (no second kick-off)", folder.dir().display()));
            folder.event("resumed", json!({"statusUrl": run.job().status_url()}));
            run
        }
        None => {
            let since = if since_auto {
                let last: Option<Value> = folder.read(LAST).and_then(|t| serde_json::from_str(&t).ok());
                let t = last.and_then(|l| l["transactionTime"].as_str().map(str::to_owned));
                if t.is_none() {
                    ui.say("--since auto: no completed export in this folder yet; exporting everything");
                }
                t
            } else {
                a.since.clone()
            };
            let mut request = export_request(&a, since.clone());
            if let (Some(prev), true) =
                (saved_opt::<ExportRequest>(&saved, "request"), request == export_request_blank(&a))
            {
                // Nothing about what to export was given: the folder's first request, with the new `since`.
                request = ExportRequest { since, ..prev };
            }
            let settings = json!({"command": "export", "base": server.base, "auth": auth::describe(&server), "request": request,
                "format": format, "countCheck": count_check, "concurrency": concurrency});
            folder
                .write(SETTINGS, &serde_json::to_string_pretty(&settings).unwrap_or_default())
                .map_err(|e| io(folder.dir(), e))?;
            folder.event("kickoff", json!({"base": server.base, "request": request}));
            let run = match client.export(request) {
                Ok(r) => r,
                Err(ClientError::Stopped) => {
                    ui.finish();
                    return Err(Fail {
                        code: 130,
                        message: "interrupted before the server accepted the export".into(),
                    });
                }
                Err(e) => {
                    folder.event("error", json!({"code": e.code(), "message": e.to_string()}));
                    return Err(e.into());
                }
            };
            folder.write(STATE, &run.to_json()).map_err(|e| io(folder.dir(), e))?;
            folder.event("accepted", json!({"statusUrl": run.job().status_url()}));
            run
        }
    };
    let outcome = wait(&mut run, &folder, &ui)?;
    let summary = if outcome.manifest().is_some() {
        Some(download(&mut run, &folder, &ui, download_options(concurrency, count_check), format)?)
    } else {
        None
    };
    if summary.is_some() && format == Format::Parquet {
        let done = folder.done_files(run.job().file_records());
        let files = parquet::job_files(&run.job().download_plan(), &done, &folder, &ui);
        parquet::convert(&files, folder.dir(), &folder, &ui)?;
    }
    ui.finish();
    if outcome.is_success() {
        let t = outcome.manifest().and_then(|m| m.transaction_time.clone());
        let last = json!({"transactionTime": t, "statusUrl": run.job().status_url(), "completedAtMs": fhir_async_client::now_ms()});
        let _ = folder.write(LAST, &last.to_string());
    }
    let _ = folder.write(STATE, &run.to_json());
    for w in &outcome.warnings {
        ui.say(&format!("warning: {w}"));
    }
    if let Some(m) = &outcome.message {
        ui.say(&format!("the server says: {m}"));
    }
    match &summary {
        Some(s) if !json => println!("{}", summary_table(s, &outcome)),
        _ if !json => println!("outcome: {:?}", outcome.status),
        _ => {}
    }
    Ok(outcome_code(&outcome, summary.as_ref()))
}

/// What a command does to a job folder it works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Works in it (download): takes the lock, or exits 2.
    Work,
    /// Looks, or asks the server a one-off (status, cancel): takes the lock when it is free,
    /// and runs beside the process that holds it otherwise (never writing the job's state then).
    Beside,
}

/// A job opened by `status`, `cancel` or `download`.
struct Target {
    run: JobRun,
    /// The job folder (or [`Folder::none`] for a status URL).
    folder: Folder,
    /// The folder's lock, when this process holds it.
    lock: Option<folder::Lock>,
    /// The pid of the process that holds the folder's lock, when another one does.
    holder: Option<Option<u32>>,
}

/// A job folder, or a status URL: the job, and the folder to save it in (if any).
fn open_target(target: &str, server: &ServerArgs, json: bool, access: Access) -> Result<Target, Fail> {
    let dir = Path::new(target);
    if Folder::is_job(dir) {
        let folder = Folder::open(dir, json).map_err(|e| io(dir, e))?;
        let (lock, holder) = match access {
            Access::Work => (Some(lock_folder(&folder)?), None),
            Access::Beside => match folder.lock().map_err(|e| io(dir, e))? {
                Ok(l) => {
                    drop(l);
                    (Some(lock_folder(&folder)?), None)
                }
                Err(held) => (None, Some(held.pid)),
            },
        };
        let server = folder_server(server, &folder)?;
        let state = folder.read(STATE).unwrap_or_default();
        let stop = if lock.is_some() { folder_stop(&folder) } else { ctrl_c_stop() };
        let run = resume_for_this_run(&client(&server, stop, PreferOptions::default())?, &state, server.timeout)?;
        Ok(Target { run, folder, lock, holder })
    } else if target.starts_with("http://") || target.starts_with("https://") {
        let mut server = server.clone();
        if server.base.is_none() {
            // The status URL's directory stands in for the base (for the token's origin rule).
            server.base = Some(target.rsplit_once('/').map_or(target, |(b, _)| b).to_owned());
        }
        let run = client(&server, ctrl_c_stop(), PreferOptions::default())?
            .attach(target, Operation::Export(ExportRequest::default()))?;
        Ok(Target { run, folder: Folder::none(json), lock: None, holder: None })
    } else {
        Err(usage(format!("{target}: neither a job folder (no {STATE}) nor an http(s) URL")))
    }
}

/// `(pid N)`, or `(pid unknown)`.
fn pid_text(pid: Option<u32>) -> String {
    pid.map_or_else(|| "pid unknown".to_owned(), |p| format!("pid {p}"))
}

fn status(t: args::TargetArgs, json: bool) -> Result<i32, Fail> {
    let Target { mut run, folder, lock, holder } = open_target(&t.target, &t.server, json, Access::Beside)?;
    if run.outcome().is_none() {
        run.poll_now();
        run.step(std::time::Duration::ZERO)?;
    }
    let p = run.progress();
    // Beside a running process the folder's state is that process's to write.
    if folder.is_saved() && lock.is_some() {
        let _ = folder.write(STATE, &run.to_json());
    }
    let v = json!({"statusUrl": run.job().status_url(), "progress": p, "outcome": run.outcome().map(outcome_event),
        "workingPid": holder.flatten()});
    if json {
        println!("{v}");
    } else {
        println!("status URL: {}", run.job().status_url().unwrap_or("(none)"));
        if let Some(pid) = holder {
            println!("a fhir-async process works in this folder ({})", pid_text(pid));
        }
        println!("phase: {:?}, polls: {}", p.phase, p.polls);
        if let Some(m) = &p.message {
            println!("progress: {m}");
        }
        if let Some(o) = run.outcome() {
            println!("outcome: {:?}{}", o.status, o.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default());
        }
    }
    Ok(run.outcome().map_or(0, |o| outcome_code(o, None)))
}

/// Cancels the job. Beside a process working in the folder (an export waiting for the job), the
/// cancel is written to the folder for that process: [`CANCEL_ASKED`] before the request, the
/// cancelled job's state as [`CANCELLED`] once the server cancelled it; that process then ends as
/// cancelled (exit 4) and saves that state.
fn cancel(t: args::TargetArgs, json: bool) -> Result<i32, Fail> {
    let Target { mut run, folder, lock, holder } = open_target(&t.target, &t.server, json, Access::Beside)?;
    let beside = folder.is_saved() && lock.is_none();
    if beside {
        folder
            .write(CANCEL_ASKED, &json!({"pid": std::process::id(), "t": fhir_async_client::now_ms()}).to_string())
            .map_err(|e| io(folder.dir(), e))?;
    }
    let o = match run.cancel() {
        Ok(o) => o,
        Err(e) => {
            if beside {
                folder.remove(CANCEL_ASKED);
            }
            return Err(e.into());
        }
    };
    if folder.is_saved() {
        if beside {
            if o.status == OutcomeStatus::Cancelled {
                folder.write(CANCELLED, &run.to_json()).map_err(|e| io(folder.dir(), e))?;
            }
            folder.remove(CANCEL_ASKED);
        } else {
            let _ = folder.write(STATE, &run.to_json());
        }
        folder.event(
            "cancelled",
            json!({"result": run.job().cancel_result(), "outcome": outcome_event(&o), "besidePid": holder.flatten()}),
        );
    }
    if json {
        println!("{}", json!({"cancelResult": run.job().cancel_result(), "outcome": outcome_event(&o)}));
    } else {
        println!("cancel: {:?}; outcome: {:?}", run.job().cancel_result(), o.status);
        if let (Some(pid), true) = (holder, o.status == OutcomeStatus::Cancelled) {
            println!("the process working in the folder ({}) ends as cancelled", pid_text(pid));
        }
    }
    Ok(if o.status == OutcomeStatus::Cancelled { 0 } else { outcome_code(&o, None) })
}

fn download_cmd(mut d: args::DownloadArgs, json: bool) -> Result<i32, Fail> {
    // A status URL downloaded into a folder before: that folder's job, its records (no file
    // fetched again). The URL on the command line confirms the base the folder saved from it.
    if d.target.starts_with("http://") || d.target.starts_with("https://") {
        let out = d.out.clone().unwrap_or_else(|| PathBuf::from("fhir-async-download"));
        let saved: Option<Value> =
            std::fs::read_to_string(out.join(STATE)).ok().and_then(|t| serde_json::from_str(&t).ok());
        if let Some(v) = saved.filter(|v| v["statusUrl"].as_str() == Some(d.target.as_str())) {
            d.server.base = d.server.base.or_else(|| v["config"]["baseUrl"].as_str().map(str::to_owned));
            d.target = out.display().to_string();
            d.out = None;
        }
    }
    let Target { mut run, folder, lock: _lock, .. } = open_target(&d.target, &d.server, json, Access::Work)?;
    // The options the job folder saved (its export's, or an earlier download's), unless given.
    let saved_in = |f: &Folder| f.read(SETTINGS).and_then(|t| serde_json::from_str::<Value>(&t).ok());
    let mut saved = saved_in(&folder);
    let same = |out: &Path| {
        std::fs::canonicalize(out).ok().is_some_and(|o| std::fs::canonicalize(folder.dir()).ok() == Some(o))
    };
    let out = d.out.as_deref().filter(|o| !(folder.is_saved() && same(o)));
    let (folder, _out_lock) = match (out, !folder.is_saved()) {
        (Some(out), _) => {
            let f = Folder::open(out, json).map_err(|e| io(out, e))?;
            let l = lock_folder(&f)?;
            saved = saved.or_else(|| saved_in(&f));
            (f, Some(l))
        }
        (None, true) => {
            let out = PathBuf::from("fhir-async-download");
            let f = Folder::open(&out, json).map_err(|e| io(&out, e))?;
            let l = lock_folder(&f)?;
            saved = saved_in(&f);
            (f, Some(l))
        }
        (None, false) => (folder, None),
    };
    let format: Format = d.format.or_else(|| saved_opt(&saved, "format")).unwrap_or(Format::Ndjson);
    let count_check: CountCheck =
        d.count_check.or_else(|| saved_opt(&saved, "countCheck")).unwrap_or(CountCheck::Strict);
    let concurrency: u32 = d.concurrency.or_else(|| saved_opt(&saved, "concurrency")).unwrap_or(4);
    if saved.is_none() {
        // A folder a URL was downloaded into keeps the options too, for the next `download` of it.
        let settings = json!({"command": "download", "base": run.job().config().base_url, "format": format,
            "countCheck": count_check, "concurrency": concurrency});
        let _ = folder.write(SETTINGS, &serde_json::to_string_pretty(&settings).unwrap_or_default());
    }
    let ui = Ui::new(json);
    let outcome = wait(&mut run, &folder, &ui)?;
    if outcome.manifest().is_none() {
        ui.finish();
        return Err(Fail { code: 1, message: format!("the job's result has no files ({:?})", outcome.status) });
    }
    let downloaded = download(&mut run, &folder, &ui, download_options(concurrency, count_check), format)?;
    if format == Format::Parquet {
        let done = folder.done_files(run.job().file_records());
        let files = parquet::job_files(&run.job().download_plan(), &done, &folder, &ui);
        parquet::convert(&files, folder.dir(), &folder, &ui)?;
    }
    ui.finish();
    let _ = folder.write(STATE, &run.to_json());
    if !json {
        println!("{}", summary_table(&downloaded, &outcome));
    }
    Ok(outcome_code(&outcome, Some(&downloaded)))
}

fn kickoff(k: args::KickoffArgs, json: bool) -> Result<i32, Fail> {
    let method = match k.method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        m => return Err(usage(format!("--method {m}: GET, POST or DELETE"))),
    };
    let body = match &k.body {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| io(p, e))?),
        None => None,
    };
    let prefer = PreferOptions {
        async_mode: k.async_mode.map(|m| match m {
            args::AsyncMode::Bundle => fhir_async::AsyncMode::Bundle,
            args::AsyncMode::Redirect => fhir_async::AsyncMode::Redirect,
        }),
        ..PreferOptions::default()
    };
    let folder = match &k.out {
        Some(out) => Folder::open(out, json).map_err(|e| io(out, e))?,
        None => Folder::none(json),
    };
    let _lock = if folder.is_saved() { Some(lock_folder(&folder)?) } else { None };
    let client = client(&k.server, folder_stop(&folder), prefer)?;
    let ui = Ui::new(json);
    let op = Operation::Operation(OperationRequest { method, path: k.path.clone(), body });
    folder.event("kickoff", json!({"base": k.server.base, "method": k.method, "path": k.path}));
    let mut run = client.start(op)?;
    let outcome = wait(&mut run, &folder, &ui)?;
    let summary = match (&k.out, outcome.manifest().is_some()) {
        (Some(_), true) => Some(download(&mut run, &folder, &ui, DownloadOptions::default(), Format::Ndjson)?),
        _ => None,
    };
    ui.finish();
    let result = serde_json::to_string_pretty(&outcome).unwrap_or_default();
    match &k.out {
        Some(_) => {
            folder.write("result.json", &result).map_err(|e| io(folder.dir(), e))?;
            folder.write(STATE, &run.to_json()).map_err(|e| io(folder.dir(), e))?;
            if !json {
                println!(
                    "outcome: {:?}; result saved in {}",
                    outcome.status,
                    folder.dir().join("result.json").display()
                );
            }
        }
        None => println!("{result}"),
    }
    Ok(outcome_code(&outcome, summary.as_ref()))
}

fn parquet_cmd(p: args::ParquetArgs, json: bool) -> Result<i32, Fail> {
    let files = parquet::scan(&p.folder)?;
    if files.is_empty() {
        return Err(Fail { code: 1, message: format!("{}: no .ndjson or .ndjson.gz file", p.folder.display()) });
    }
    let out = p.out.unwrap_or_else(|| p.folder.clone());
    // Events go to stdout with --json; a plain folder gets no log.
    let ui = Ui::new(json);
    parquet::convert(&files, &out, &Folder::none(json), &ui)?;
    ui.finish();
    Ok(0)
}
