//! Working on an existing job folder: its lock, the server it names (and whether a credential goes
//! there), and the saved job resumed for this run.

use crate::args::ServerArgs;
use crate::auth;
use crate::folder::{self, Folder, CANCELLED, CANCEL_ASKED, SETTINGS, STATE};
use crate::{io, usage, Fail};
use fhir_async_client::{Client, ClientError, JobRun};
use serde_json::{json, Value};
use std::time::Duration;

/// Takes the folder's lock for a command that works in it (exit 2 naming the holder's pid when
/// another process has it), and takes in a cancel from another process that ended meanwhile.
pub(crate) fn lock_folder(folder: &Folder) -> Result<folder::Lock, Fail> {
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
pub(crate) fn same_base(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The server arguments for a command on an existing job folder. The base URL is the folder's;
/// a credential (a flag, the environment, or the folder's saved authorization) goes with it only
/// when the command line confirmed that base with `--base`: a folder does not say where a
/// credential is sent. Another `--base` than the folder's is a usage error.
pub(crate) fn folder_server(given: &ServerArgs, folder: &Folder) -> Result<ServerArgs, Fail> {
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
pub(crate) fn resume_for_this_run(
    client: &Client,
    state: &str,
    timeout: Option<Duration>,
) -> Result<JobRun, ClientError> {
    let mut run = client.resume(state)?;
    let timeout = timeout.or_else(|| run.job().config().timeout_ms.map(Duration::from_millis));
    run.set_timeout(timeout);
    Ok(run)
}
