//! The `export` command: kick off (or resume the folder's job), wait, download, convert, and say
//! how it ended.

use crate::args::{apply_config, CountCheck, ExportArgs, Format, ServerArgs, DEFAULT_OUT};
use crate::download::{download, download_options};
use crate::folder::{Folder, LAST, SETTINGS, STATE};
use crate::request::{check_selection, export_request, export_request_blank, saved_opt};
use crate::resume::{folder_server, lock_folder, resume_for_this_run};
use crate::stop::folder_stop;
use crate::summary::{outcome_words, say_outcome, summary_table};
use crate::ui::Ui;
use crate::wait::wait;
use crate::{auth, parquet};
use crate::{client, io, outcome_code, usage, Fail};
use fhir_async::{DownloadOptions, ExportRequest, Outcome, PreferOptions};
use fhir_async_client::{ClientError, JobRun};
use serde_json::{json, Value};

pub(crate) fn export(mut a: ExportArgs, json: bool) -> Result<i32, Fail> {
    let ignored = apply_config(&mut a).map_err(usage)?;
    let out = a.out.clone().unwrap_or_else(|| DEFAULT_OUT.into());
    let folder = Folder::open(&out, json).map_err(|e| io(&out, e))?;
    let _lock = lock_folder(&folder)?;
    let ui = Ui::new(json);
    if let (Some(path), false) = (&a.config, ignored.is_empty()) {
        ui.say(&config_ignored(path, &ignored));
    }
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
    let prefer = PreferOptions { lenient: a.lenient, ..PreferOptions::default() };
    let client = client(&server, folder_stop(&folder), prefer)?;
    let since_auto = a.since.as_deref() == Some("auto");
    // Options left out on a later run in the same folder are the first run's.
    let format: Format = a.format.or_else(|| saved_opt(&saved, "format")).unwrap_or(Format::Ndjson);
    let count_check: CountCheck =
        a.count_check.or_else(|| saved_opt(&saved, "countCheck")).unwrap_or(CountCheck::Strict);
    let concurrency: u32 = a
        .max_per_origin
        .or_else(|| saved_opt(&saved, "concurrency"))
        .unwrap_or(DownloadOptions::default().max_per_origin);
    let gzip = !a.no_gzip && saved_opt(&saved, "gzip").unwrap_or(true);
    let attachments = crate::attachments::options(&a.attachments, &saved);
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
                // The last export's `nextSince`: min(its `_until`, its `transactionTime`) (D3, L5;
                // `ExportRequest::next_since`); a folder written before it kept the transactionTime.
                let last: Option<Value> = folder.read(LAST).and_then(|t| serde_json::from_str(&t).ok());
                let t = last.and_then(|l| l["nextSince"].as_str().or(l["transactionTime"].as_str()).map(str::to_owned));
                if t.is_none() {
                    ui.say("--since auto: no completed export in this folder yet; exporting everything");
                }
                t
            } else {
                a.since.clone()
            };
            let mut request = export_request(&a, since.clone());
            // `--since auto` sets `since` itself: nothing else about what to export given is "blank".
            let given = if since_auto { ExportRequest { since: None, ..request.clone() } } else { request.clone() };
            if let (Some(prev), true) =
                (saved_opt::<ExportRequest>(&saved, "request"), given == export_request_blank(&a))
            {
                // Nothing about what to export was given: the folder's first request, with the new `since`;
                // under `--since auto` without its `_until` (the next window is open: since that `_until`).
                let until = if since_auto { None } else { prev.until.clone() };
                request = ExportRequest { since, until, ..prev };
            }
            let settings = json!({"command": "export", "base": server.base, "auth": auth::describe(&server), "request": request,
                "format": format, "countCheck": count_check, "concurrency": concurrency, "gzip": gzip,
                "attachments": crate::attachments::setting(&attachments)});
            folder
                .write(SETTINGS, &serde_json::to_string_pretty(&settings).unwrap_or_default())
                .map_err(|e| io(folder.dir(), e))?;
            folder.event("kickoff", json!({"base": server.base, "request": request}));
            started(client.export(request), &folder, &ui, &server)?
        }
    };
    let outcome = wait(&mut run, &folder, &ui)?;
    let summary = if outcome.manifest().is_some() {
        let options = DownloadOptions { gzip, attachments, ..download_options(concurrency, count_check) };
        Some(download(&mut run, &folder, &ui, options, format)?)
    } else {
        None
    };
    if summary.is_some() && format == Format::Parquet {
        let done = folder.done_files(&run.job().download_plan(), run.job().file_records());
        let files = parquet::job_files(&run.job().download_plan(), &done, &folder, &ui);
        parquet::convert(&files, folder.dir(), &folder, &ui)?;
    }
    ui.finish();
    if outcome.is_success() {
        let t = outcome.manifest().and_then(|m| m.transaction_time.clone());
        // What the next `--since auto` asks from: min(`_until`, `transactionTime`) (L5).
        let next_since = match (&run.job().config().operation, &t) {
            (fhir_async::Operation::Export(r), Some(t)) => Some(r.next_since(t)),
            _ => t.clone(),
        };
        let last = json!({"transactionTime": t, "nextSince": next_since, "statusUrl": run.job().status_url(),
            "completedAtMs": fhir_async_client::now_ms()});
        let _ = folder.write(LAST, &last.to_string());
    }
    let _ = folder.write(STATE, &run.to_json());
    say_outcome(&ui, &outcome, run.job().status_url().is_some(), server.scope());
    match &summary {
        Some(s) if !json => println!("{}", summary_table(s, &outcome)),
        _ if !json => println!("outcome: {}", outcome_words(&outcome)),
        _ => {}
    }
    Ok(outcome_code(&outcome, summary.as_ref()))
}

/// The kick-off's result: the job saved in the folder (when there is one), or why it did not start
/// (a stop before the server accepted it: exit 130, the folder holds no job).
pub(crate) fn started(
    r: Result<JobRun, ClientError>,
    folder: &Folder,
    ui: &Ui,
    server: &ServerArgs,
) -> Result<JobRun, Fail> {
    let run = match r {
        Ok(run) => run,
        Err(ClientError::Stopped) => {
            ui.finish();
            return Err(Fail { code: 130, message: "interrupted before the server accepted the kick-off".into() });
        }
        Err(e) => {
            folder.event("error", json!({"code": e.code(), "message": e.to_string()}));
            return Err(kickoff_failure(e, server));
        }
    };
    if folder.is_saved() {
        folder.write(STATE, &run.to_json()).map_err(|e| io(folder.dir(), e))?;
        let request = run.job().kickoff_request().map(|r| crate::log::sent_request(&r));
        folder.event("accepted", json!({"statusUrl": run.job().status_url(), "request": request}));
    }
    Ok(run)
}

/// A kick-off that failed with an error (not a server's refusal, which is an outcome): the
/// error, and for a 401 with no credential given, how to give one.
pub(crate) fn kickoff_failure(e: ClientError, server: &ServerArgs) -> Fail {
    let unauthorized = e.code() == "unauthorized";
    let mut f = Fail::from(e);
    if unauthorized && !auth::offers_credential(server) {
        f.message.push_str(
            "; give a credential: --token (or FHIR_ASYNC_TOKEN), --client-id with --key or --client-secret, or --auth FILE",
        );
    }
    f
}

/// The `--config` keys this command does not read, named once.
fn config_ignored(path: &std::path::Path, ignored: &[String]) -> String {
    let mut line = format!("--config {}: not read here (ignored): {}", path.display(), ignored.join(", "));
    if ignored.iter().any(|k| k == "requests") {
        line.push_str(
            "; TLS verification is never turned off (requests.https.rejectUnauthorized): give the server's CA with --ca-file",
        );
    }
    line
}
