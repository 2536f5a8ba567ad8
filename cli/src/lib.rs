//! `fhir-async`: bulk `$export` and any FHIR asynchronous operation from the
//! command line, on `fhir-async-client`. The output folder is the job: run
//! the same command again and it resumes. Every decision is the engine's.
//! See `docs/cli.md`; [`main_with_args`] is the whole program.
//!
//! The modules, by what they hold: `args` (the command line), `export` and
//! `commands` (status, cancel, download, kickoff, parquet), `target` (the job
//! a command works on), `resume` (a job folder's lock, server and saved job),
//! `wait` and `stop` (polling, Ctrl-C, a cancel from another process),
//! `download` and `summary` (the files into the folder, the closing table),
//! `request` (the export request and the folder's saved options), `folder`,
//! `attachments` (`--attachments`: options, log events, summary lines), `auth`, `parquet`,
//! `publish` (a folder kept current with a published dataset) and `ui`.
#![forbid(unsafe_code)]

mod args;
mod attachments;
mod auth;
mod commands;
mod download;
mod export;
mod folder;
mod log;
mod parquet;
mod publish;
mod request;
mod resume;
mod stop;
mod summary;
mod target;
mod ui;
mod wait;

use args::{Cli, Command, ServerArgs};
use clap::Parser;
use commands::{cancel, download_cmd, kickoff, parquet_cmd, status};
use download::Downloaded;
use export::export;
use fhir_async::{Outcome, OutcomeStatus, PreferOptions};
use fhir_async_client::{Client, ClientError, Stop};
use serde_json::{json, Value};
use std::path::Path;

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
        Command::Publish(p) => publish::publish(p, json),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("fhir-async: {}", f.message);
            f.code
        }
    }
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
