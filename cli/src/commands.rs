//! The commands on an existing job or folder: `status`, `cancel`, `download`, `kickoff` and
//! `parquet`.

use crate::args::{self, CountCheck, Format};
use crate::download::{download, download_options};
use crate::export::started;
use crate::folder::{Folder, CANCELLED, CANCEL_ASKED, SETTINGS, STATE};
use crate::request::saved_opt;
use crate::resume::{folder_server, lock_folder, resume_for_this_run};
use crate::stop::folder_stop;
use crate::summary::{cancel_words, outcome_words, say_outcome, summary_table};
use crate::target::{open_target, pid_text, Access, Target};
use crate::ui::Ui;
use crate::wait::wait;
use crate::{auth, parquet};
use crate::{client, io, outcome_code, outcome_event, usage, Fail};
use fhir_async::{DownloadOptions, Method, Operation, OperationRequest, OutcomeStatus, PreferOptions};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub(crate) fn status(t: args::TargetArgs, json: bool) -> Result<i32, Fail> {
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
pub(crate) fn cancel(t: args::TargetArgs, json: bool) -> Result<i32, Fail> {
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
        // "Cancelled: the server accepted the cancel (HTTP 202)": how the job ended, then why.
        let ended = outcome_words(&o);
        let mut first = ended.chars();
        let ended: String = first.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(first).collect();
        println!("{ended}: {}", cancel_words(run.job().cancel_result()));
        if let Some(m) = &o.message {
            println!("the server says: {m}");
        }
        for w in &o.warnings {
            println!("warning: {w}");
        }
        if let (Some(pid), true) = (holder, o.status == OutcomeStatus::Cancelled) {
            println!("the process working in the folder ({}) ends as cancelled", pid_text(pid));
        }
    }
    Ok(if o.status == OutcomeStatus::Cancelled { 0 } else { outcome_code(&o, None) })
}

pub(crate) fn download_cmd(mut d: args::DownloadArgs, json: bool) -> Result<i32, Fail> {
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
    let concurrency: u32 = d
        .max_per_origin
        .or_else(|| saved_opt(&saved, "concurrency"))
        .unwrap_or(DownloadOptions::default().max_per_origin);
    let gzip = !d.no_gzip && saved_opt(&saved, "gzip").unwrap_or(true);
    let attachments = crate::attachments::options(&d.attachments, &saved);
    if saved.is_none() {
        // A folder a URL was downloaded into keeps the options too, for the next `download` of it.
        let settings = json!({"command": "download", "base": run.job().config().base_url, "format": format,
            "countCheck": count_check, "concurrency": concurrency, "gzip": gzip,
            "attachments": crate::attachments::setting(&attachments)});
        let _ = folder.write(SETTINGS, &serde_json::to_string_pretty(&settings).unwrap_or_default());
    }
    let ui = Ui::new(json);
    let outcome = wait(&mut run, &folder, &ui)?;
    if outcome.manifest().is_none() {
        ui.finish();
        return Err(Fail { code: 1, message: format!("the job's result has no files ({:?})", outcome.status) });
    }
    let options = DownloadOptions { gzip, attachments, ..download_options(concurrency, count_check) };
    let downloaded = download(&mut run, &folder, &ui, options, format)?;
    if format == Format::Parquet {
        let done = folder.done_files(&run.job().download_plan(), run.job().file_records());
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

pub(crate) fn kickoff(k: args::KickoffArgs, json: bool) -> Result<i32, Fail> {
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
    let ui = Ui::new(json);
    // A folder that holds the job (a run stopped by Ctrl-C): resumed, no second kick-off.
    let state = folder.read(STATE).filter(|_| folder.is_saved());
    let server = match &state {
        Some(_) => folder_server(&k.server, &folder)?,
        None => k.server.clone(),
    };
    let client = client(&server, folder_stop(&folder), prefer)?;
    let mut run = match &state {
        Some(state) => {
            ui.say(&format!("resuming the job in {} (no second kick-off)", folder.dir().display()));
            let run = resume_for_this_run(&client, state, k.server.timeout)?;
            folder.event("resumed", json!({"statusUrl": run.job().status_url()}));
            run
        }
        None => {
            if folder.is_saved() {
                // What `interrupted` reads to print the command that resumes this folder.
                let settings = json!({"command": "kickoff", "base": server.base, "auth": auth::describe(&server),
                    "method": k.method, "path": k.path});
                folder
                    .write(SETTINGS, &serde_json::to_string_pretty(&settings).unwrap_or_default())
                    .map_err(|e| io(folder.dir(), e))?;
            }
            let op = Operation::Operation(OperationRequest { method, path: k.path.clone(), body });
            folder.event("kickoff", json!({"base": server.base, "method": k.method, "path": k.path}));
            started(client.start(op), &folder, &ui, &server)?
        }
    };
    let outcome = wait(&mut run, &folder, &ui)?;
    let summary = match (&k.out, outcome.manifest().is_some()) {
        (Some(_), true) => Some(download(&mut run, &folder, &ui, DownloadOptions::default(), Format::Ndjson)?),
        _ => None,
    };
    ui.finish();
    // The reason of a failure on the terminal, as `export` shows it (stderr; stdout keeps the result).
    say_outcome(&ui, &outcome, run.job().status_url().is_some(), server.scope());
    let result = serde_json::to_string_pretty(&outcome).unwrap_or_default();
    match &k.out {
        Some(_) => {
            folder.write("result.json", &result).map_err(|e| io(folder.dir(), e))?;
            folder.write(STATE, &run.to_json()).map_err(|e| io(folder.dir(), e))?;
            if !json {
                println!(
                    "outcome: {}; result saved in {}",
                    outcome_words(&outcome),
                    folder.dir().join("result.json").display()
                );
            }
        }
        None => println!("{result}"),
    }
    Ok(outcome_code(&outcome, summary.as_ref()))
}

pub(crate) fn parquet_cmd(p: args::ParquetArgs, json: bool) -> Result<i32, Fail> {
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
