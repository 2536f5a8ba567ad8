//! Waiting for a job: polling with progress and events, and how a wait ends early (a stop saves the
//! job; a cancel from another process ends it as cancelled).

use crate::folder::{Folder, CANCELLED, CANCEL_ASKED, SETTINGS, STATE};
use crate::ui::Ui;
use crate::{outcome_event, Fail};
use fhir_async::Outcome;
use fhir_async_client::{ClientError, JobRun};
use serde_json::json;
use std::time::{Duration, Instant};

/// Saves the job, and on a stop tells how to go on.
pub(crate) fn interrupted(folder: &Folder, run: &JobRun, ui: &Ui) -> Fail {
    let _ = folder.write(STATE, &run.to_json());
    folder.event("interrupted", json!({"statusUrl": run.job().status_url()}));
    ui.finish();
    let dir = folder.dir().display();
    // `--base` confirms the folder's server: the credential goes to it (see `folder_server`).
    let base = &run.job().config().base_url;
    // The command that made the folder resumes it: `export`, or `kickoff --out` (its settings say).
    let settings: Option<serde_json::Value> = folder.read(SETTINGS).and_then(|t| serde_json::from_str(&t).ok());
    let command = match settings.as_ref().and_then(|s| s["command"].as_str()) {
        Some("kickoff") => "kickoff",
        Some("download") => "download",
        _ => "export",
    };
    eprintln!("fhir-async: interrupted; the job is saved in {dir}");
    match command {
        "download" => eprintln!("  resume: fhir-async download {dir} --base {base}"),
        _ => eprintln!("  resume: fhir-async {command} --out {dir} --base {base}"),
    }
    eprintln!("  cancel: fhir-async cancel {dir} --base {base}");
    Fail { code: 130, message: "interrupted".into() }
}

/// Polls until the job is over; saves its state when it ends (and on a stop). A job
/// cancelled meanwhile by `fhir-async cancel` from another process ends as cancelled (exit 4).
pub(crate) fn wait(run: &mut JobRun, folder: &Folder, ui: &Ui) -> Result<Outcome, Fail> {
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
pub(crate) const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// The job was cancelled by `fhir-async cancel` from another process: its cancelled state becomes
/// the folder's, and the command ends with exit 4. A cancel asked but not ended yet is waited for
/// (bounded); `None` when there is none, or it did not cancel the job.
pub(crate) fn cancelled_by_another(folder: &Folder, ui: &Ui) -> Option<Fail> {
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
