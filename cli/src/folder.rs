//! The output folder is the job: its settings (never a token), its saved
//! state, an event log, the files, and the last completed export.

use crate::log::Log;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The saved job state.
pub const STATE: &str = "fhir-async-job.json";
/// The command's settings.
pub const SETTINGS: &str = "fhir-async.json";
/// The event log, in the SMART bulk-data log format (see [`crate::log`]).
pub const LOG: &str = "log.ndjson";
/// The last completed export (for `--since auto`).
pub const LAST: &str = "fhir-async-last.json";
/// The folder lock: held (an OS file lock) by the process working in the folder; holds its pid.
pub const LOCK: &str = ".fhir-async.lock";
/// A `cancel` from another process while the folder was locked: asked (holds the pid)...
pub const CANCEL_ASKED: &str = ".fhir-async-cancel-asked";
/// ...and done: the cancelled job's state, for the process working in the folder to take.
pub const CANCELLED: &str = "fhir-async-cancelled.json";

/// The folder's lock, held until dropped (or the process ends, however it ends: the OS releases it).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Another process holds the folder's lock.
#[derive(Debug)]
pub struct Held {
    /// The holder's pid, as it wrote it.
    pub pid: Option<u32>,
}

/// A job folder.
#[derive(Debug)]
pub struct Folder {
    dir: PathBuf,
    log: Log,
}

impl Folder {
    /// Opens (creating) the folder. `echo`: events also go to stdout (`--json`).
    pub fn open(dir: &Path, echo: bool) -> std::io::Result<Folder> {
        std::fs::create_dir_all(dir)?;
        let log = OpenOptions::new().create(true).append(true).open(dir.join(LOG))?;
        // The log's `exportId` is the job's status URL (protocol N3), the saved job's when there is one.
        let status_url = std::fs::read_to_string(dir.join(STATE))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["statusUrl"].as_str().map(str::to_owned));
        Ok(Folder { dir: dir.to_owned(), log: Log::new(Some(log), echo, status_url) })
    }

    /// Events only on stdout (no folder).
    pub fn none(echo: bool) -> Folder {
        Folder { dir: PathBuf::new(), log: Log::new(None, echo, None) }
    }

    /// Whether this is a folder on disk (not [`Folder::none`]: events on stdout only).
    pub fn is_saved(&self) -> bool {
        !self.dir.as_os_str().is_empty()
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether `dir` holds a job.
    pub fn is_job(dir: &Path) -> bool {
        dir.join(STATE).is_file()
    }

    /// What happened, into the log (and stdout with `--json`) as the SMART log event(s) it is:
    /// [`Log::record`].
    pub fn event(&self, name: &str, fields: Value) {
        self.log.record(name, fields);
    }

    /// Reads a JSON file of the folder.
    pub fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(name)).ok()
    }

    /// Writes a file of the folder atomically (temp + rename).
    pub fn write(&self, name: &str, text: &str) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, self.dir.join(name))
    }

    /// Takes the folder's lock (an OS advisory lock on [`LOCK`], so a killed holder releases it),
    /// and writes this process's pid into it. `Err(Held)` when another process holds it.
    pub fn lock(&self) -> std::io::Result<Result<Lock, Held>> {
        let path = self.dir.join(LOCK);
        // Not truncated on open: the holder's pid stays readable until the lock is ours.
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        // fs4's flock / LockFileEx (std's `File::try_lock` is newer than the MSRV).
        if fs4::fs_std::FileExt::try_lock_exclusive(&file)? {
            file.set_len(0)?;
            write!(file, "{}", std::process::id())?;
            file.flush()?;
            Ok(Ok(Lock { _file: file }))
        } else {
            let pid = std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok());
            Ok(Err(Held { pid }))
        }
    }

    /// A file this process may write into: `name` under the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Removes a file of the folder, if it is there.
    pub fn remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.dir.join(name));
    }

    /// A `cancel` from another process finished while the folder was locked: the cancelled
    /// job's state (see [`CANCELLED`]).
    pub fn cancelled_elsewhere(&self) -> Option<String> {
        self.read(CANCELLED).filter(|s| !s.trim().is_empty())
    }

    /// Whether a `cancel` from another process was asked and has not ended yet.
    pub fn cancel_asked(&self) -> bool {
        self.dir.join(CANCEL_ASKED).is_file()
    }

    /// The files the job's records say are done and the folder still holds (renamed into
    /// place, or compressed), by the core's resume decision: a file of the same name that the
    /// records do not vouch for as the same file is fetched again.
    pub fn done_files(
        &self,
        plan: &[fhir_async::PlannedFile],
        records: &[fhir_async::coordinator::FileRecord],
    ) -> Vec<String> {
        // the core's rule (K5, K6): a record counts for the plan file that is the same file
        let holds = |name: &str| self.dir.join(name).is_file() || self.dir.join(format!("{name}.gz")).is_file();
        fhir_async::resume_decision(plan, records, holds, |_| false).skip_files
    }

    /// Moves the data files and state of a finished export into `previous/<label>/`.
    pub fn archive(&self, label: &str) -> std::io::Result<PathBuf> {
        let safe: String = label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let to = self.dir.join("previous").join(safe);
        std::fs::create_dir_all(&to)?;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let data = (name.ends_with(".ndjson")
                || name.ends_with(".ndjson.gz")
                || name.ends_with(".parquet")
                || name == STATE)
                && name != LOG;
            if data && entry.file_type()?.is_file() {
                std::fs::rename(entry.path(), to.join(&name))?;
            }
        }
        Ok(to)
    }
}
