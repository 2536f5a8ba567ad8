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
    DownloadOptions, ExportLevel, ExportRequest, FileKind, Method, Operation, OperationRequest, Outcome, OutcomeStatus,
    PreferOptions,
};
use fhir_async_client::{Client, ClientError, DownloadEvent, DownloadSummary, JobRun, Stop};
use folder::{Folder, LAST, SETTINGS, STATE};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
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
    static PRESSES: AtomicU32 = AtomicU32::new(0);
    let stop = Stop::default();
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

fn outcome_code(o: &Outcome, summary: Option<&DownloadSummary>) -> i32 {
    match o.status {
        OutcomeStatus::Completed if summary.is_some_and(|s| !s.is_complete()) => 3,
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
    eprintln!("fhir-async: interrupted; the job is saved in {dir}");
    eprintln!("  resume: fhir-async export --out {dir}");
    eprintln!("  cancel: fhir-async cancel {dir}");
    Fail { code: 130, message: "interrupted".into() }
}

/// Polls until the job is over; saves its state when it ends (and on a stop).
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
    if folder.is_saved() {
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

/// Downloads the job's files into the folder, leaving out the ones already there.
fn download(
    run: &mut JobRun,
    folder: &Folder,
    ui: &Ui,
    opts: DownloadOptions,
    format: Format,
) -> Result<DownloadSummary, Fail> {
    let plan = run.job().download_plan();
    if let Some(m) = run.outcome().and_then(Outcome::manifest) {
        folder.event("manifest", json!({"transactionTime": m.transaction_time, "output": m.output.len(), "error": m.error_files().count(), "deleted": m.deleted.len()}));
    }
    let skip: Vec<String> = plan.iter().map(|f| f.file_name.clone()).filter(|n| folder.has_file(n)).collect();
    if !skip.is_empty() {
        ui.say(&format!("{} file(s) already complete in {}: not fetched again", skip.len(), folder.dir().display()));
    }
    let opts = DownloadOptions { skip_files: skip, ..opts };
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
                let written =
                    path.and_then(
                        |p| if format == Format::NdjsonGz { gzip_in_place(p).ok() } else { Some(p.to_owned()) },
                    );
                folder.event(
                    "file.finished",
                    json!({"file": r.file_name, "type": r.resource_type, "kind": r.kind, "bytes": r.bytes,
                    "resources": r.resources, "durationMs": elapsed_ms, "warnings": r.warnings, "path": written}),
                );
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
    match r {
        Ok(s) => Ok(s),
        Err(ClientError::Stopped) => Err(interrupted(folder, run, ui)),
        Err(e) => Err(e.into()),
    }
}

/// `name.ndjson` → `name.ndjson.gz` (temp + rename), the original removed.
fn gzip_in_place(path: &Path) -> std::io::Result<PathBuf> {
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let tmp = PathBuf::from(format!("{}.gz.tmp", path.display()));
    {
        let mut input = std::fs::File::open(path)?;
        let out = std::fs::File::create(&tmp)?;
        let mut enc = flate2::write::GzEncoder::new(std::io::BufWriter::new(out), flate2::Compression::default());
        std::io::copy(&mut input, &mut enc)?;
        enc.finish()?;
    }
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(path)?;
    Ok(gz)
}

/// The table at the end: per type, files, resources and bytes; then what failed.
fn summary_table(summary: &DownloadSummary, o: &Outcome) -> String {
    use std::collections::BTreeMap;
    let mut rows: BTreeMap<String, (usize, u64, u64)> = BTreeMap::new();
    let mut failed = Vec::new();
    for f in &summary.files {
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
                e.1 += r.resources;
                e.2 += r.bytes;
            }
            (_, Some(e)) => failed.push(format!("  FAILED {}: {e}", f.result.file.file_name)),
            _ => {}
        }
    }
    let mut out = format!("{:<24} {:>6} {:>12} {:>10}\n", "type", "files", "resources", "written");
    let (mut tf, mut tr, mut tb) = (0, 0, 0);
    for (t, (f, r, b)) in &rows {
        out.push_str(&format!("{t:<24} {f:>6} {r:>12} {:>10}\n", human_bytes(*b)));
        tf += f;
        tr += r;
        tb += b;
    }
    out.push_str(&format!("{:<24} {tf:>6} {tr:>12} {:>10}\n", "total", human_bytes(tb)));
    out.push_str(&format!("received {} over the wire · outcome {:?}", human_bytes(summary.wire_bytes), o.status));
    for f in failed {
        out.push('\n');
        out.push_str(&f);
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
    };
    export_request(&blank, export_request(a, None).since)
}

fn export(a: ExportArgs, json: bool) -> Result<i32, Fail> {
    let folder = Folder::open(&a.out, json).map_err(|e| io(&a.out, e))?;
    let saved: Option<Value> = folder.read(SETTINGS).and_then(|t| serde_json::from_str(&t).ok());
    let mut server = a.server.clone();
    if let Some(s) = &saved {
        auth::merge_saved(&mut server, s);
    }
    let client = client(&server, ctrl_c_stop(), PreferOptions::default())?;
    let ui = Ui::new(json);
    let since_auto = a.since.as_deref() == Some("auto");
    // Options left out on a later run in the same folder are the first run's.
    let format: Format = a.format.or_else(|| saved_opt(&saved, "format")).unwrap_or(Format::Ndjson);
    let count_check: CountCheck =
        a.count_check.or_else(|| saved_opt(&saved, "countCheck")).unwrap_or(CountCheck::Strict);
    let concurrency: u32 = a.concurrency.or_else(|| saved_opt(&saved, "concurrency")).unwrap_or(4);
    let mut resumed = match folder.read(STATE) {
        Some(state) => Some(client.resume(&state)?),
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
        let files = parquet::job_files(&run.job().download_plan(), &folder, &ui);
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

/// A job folder, or a status URL: the job, and the folder to save it in (if any).
fn open_target(target: &str, server: &ServerArgs, json: bool, stop: Stop) -> Result<(JobRun, Folder), Fail> {
    let dir = Path::new(target);
    if Folder::is_job(dir) {
        let folder = Folder::open(dir, json).map_err(|e| io(dir, e))?;
        let mut server = server.clone();
        if let Some(s) = folder.read(SETTINGS).and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
            auth::merge_saved(&mut server, &s);
        }
        let state = folder.read(STATE).unwrap_or_default();
        if server.base.is_none() {
            server.base = serde_json::from_str::<Value>(&state)
                .ok()
                .and_then(|v| v["config"]["baseUrl"].as_str().map(str::to_owned));
        }
        let run = client(&server, stop, PreferOptions::default())?.resume(&state)?;
        Ok((run, folder))
    } else if target.starts_with("http://") || target.starts_with("https://") {
        let mut server = server.clone();
        if server.base.is_none() {
            // The status URL's directory stands in for the base (for the token's origin rule).
            server.base = Some(target.rsplit_once('/').map_or(target, |(b, _)| b).to_owned());
        }
        let run = client(&server, stop, PreferOptions::default())?
            .attach(target, Operation::Export(ExportRequest::default()))?;
        Ok((run, Folder::none(json)))
    } else {
        Err(usage(format!("{target}: neither a job folder (no {STATE}) nor an http(s) URL")))
    }
}

fn status(t: args::TargetArgs, json: bool) -> Result<i32, Fail> {
    let (mut run, folder) = open_target(&t.target, &t.server, json, ctrl_c_stop())?;
    if run.outcome().is_none() {
        run.poll_now();
        run.step(std::time::Duration::ZERO)?;
    }
    let p = run.progress();
    if folder.is_saved() {
        let _ = folder.write(STATE, &run.to_json());
    }
    let v = json!({"statusUrl": run.job().status_url(), "progress": p, "outcome": run.outcome().map(outcome_event)});
    if json {
        println!("{v}");
    } else {
        println!("status URL: {}", run.job().status_url().unwrap_or("(none)"));
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

fn cancel(t: args::TargetArgs, json: bool) -> Result<i32, Fail> {
    let (mut run, folder) = open_target(&t.target, &t.server, json, ctrl_c_stop())?;
    let o = run.cancel()?;
    if folder.is_saved() {
        let _ = folder.write(STATE, &run.to_json());
        folder.event("cancelled", json!({"result": run.job().cancel_result(), "outcome": outcome_event(&o)}));
    }
    if json {
        println!("{}", json!({"cancelResult": run.job().cancel_result(), "outcome": outcome_event(&o)}));
    } else {
        println!("cancel: {:?}; outcome: {:?}", run.job().cancel_result(), o.status);
    }
    Ok(if o.status == OutcomeStatus::Cancelled { 0 } else { outcome_code(&o, None) })
}

fn download_cmd(d: args::DownloadArgs, json: bool) -> Result<i32, Fail> {
    let (mut run, folder) = open_target(&d.target, &d.server, json, ctrl_c_stop())?;
    let folder = match (&d.out, !folder.is_saved()) {
        (Some(out), _) => Folder::open(out, json).map_err(|e| io(out, e))?,
        (None, true) => {
            let out = PathBuf::from("fhir-async-download");
            Folder::open(&out, json).map_err(|e| io(&out, e))?
        }
        (None, false) => folder,
    };
    let ui = Ui::new(json);
    let outcome = wait(&mut run, &folder, &ui)?;
    if outcome.manifest().is_none() {
        ui.finish();
        return Err(Fail { code: 1, message: format!("the job's result has no files ({:?})", outcome.status) });
    }
    let summary = download(&mut run, &folder, &ui, download_options(d.concurrency, d.count_check), d.format)?;
    if d.format == Format::Parquet {
        let files = parquet::job_files(&run.job().download_plan(), &folder, &ui);
        parquet::convert(&files, folder.dir(), &folder, &ui)?;
    }
    ui.finish();
    let _ = folder.write(STATE, &run.to_json());
    if !json {
        println!("{}", summary_table(&summary, &outcome));
    }
    Ok(outcome_code(&outcome, Some(&summary)))
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
    let client = client(&k.server, ctrl_c_stop(), prefer)?;
    let folder = match &k.out {
        Some(out) => Folder::open(out, json).map_err(|e| io(out, e))?,
        None => Folder::none(json),
    };
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
