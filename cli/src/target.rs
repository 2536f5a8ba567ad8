//! The job a command works on: a job folder (with its lock, or beside the process holding it) or a
//! status URL.

use crate::args::ServerArgs;
use crate::folder::{self, Folder, STATE};
use crate::resume::{folder_server, lock_folder, resume_for_this_run};
use crate::stop::{ctrl_c_stop, folder_stop};
use crate::{client, io, usage, Fail};
use fhir_async::{ExportRequest, Operation, PreferOptions};
use fhir_async_client::JobRun;
use std::path::Path;

/// What a command does to a job folder it works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Works in it (download): takes the lock, or exits 2.
    Work,
    /// Looks, or asks the server a one-off (status, cancel): takes the lock when it is free,
    /// and runs beside the process that holds it otherwise (never writing the job's state then).
    Beside,
}

/// A job opened by `status`, `cancel` or `download`.
pub(crate) struct Target {
    pub(crate) run: JobRun,
    /// The job folder (or [`Folder::none`] for a status URL).
    pub(crate) folder: Folder,
    /// The folder's lock, when this process holds it.
    pub(crate) lock: Option<folder::Lock>,
    /// The pid of the process that holds the folder's lock, when another one does.
    pub(crate) holder: Option<Option<u32>>,
}

/// A job folder, or a status URL: the job, and the folder to save it in (if any).
pub(crate) fn open_target(target: &str, server: &ServerArgs, json: bool, access: Access) -> Result<Target, Fail> {
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
pub(crate) fn pid_text(pid: Option<u32>) -> String {
    pid.map_or_else(|| "pid unknown".to_owned(), |p| format!("pid {p}"))
}
