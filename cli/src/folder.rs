//! The output folder is the job: its settings (never a token), its saved
//! state, an event log, the files, and the last completed export.

use serde_json::{json, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The saved job state.
pub const STATE: &str = "fhir-async-job.json";
/// The command's settings.
pub const SETTINGS: &str = "fhir-async.json";
/// The event log.
pub const LOG: &str = "log.ndjson";
/// The last completed export (for `--since auto`).
pub const LAST: &str = "fhir-async-last.json";

/// A job folder.
#[derive(Debug)]
pub struct Folder {
    dir: PathBuf,
    log: Mutex<Option<File>>,
    echo: bool,
}

impl Folder {
    /// Opens (creating) the folder. `echo`: events also go to stdout (`--json`).
    pub fn open(dir: &Path, echo: bool) -> std::io::Result<Folder> {
        std::fs::create_dir_all(dir)?;
        let log = OpenOptions::new().create(true).append(true).open(dir.join(LOG))?;
        Ok(Folder { dir: dir.to_owned(), log: Mutex::new(Some(log)), echo })
    }

    /// Events only on stdout (no folder).
    pub fn none(echo: bool) -> Folder {
        Folder { dir: PathBuf::new(), log: Mutex::new(None), echo }
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

    /// One event: `{"t": unix_ms, "event": name, ...fields}` into the log (and stdout with `--json`).
    pub fn event(&self, name: &str, fields: Value) {
        let mut v = json!({"t": fhir_async_client::now_ms(), "event": name});
        if let (Some(obj), Value::Object(f)) = (v.as_object_mut(), fields) {
            obj.extend(f);
        }
        let line = v.to_string();
        if let Some(log) = self.log.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = writeln!(log, "{line}");
        }
        if self.echo {
            // A reader that went away (a closed pipe) is not a reason to stop.
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
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

    /// Whether a data file is complete in the folder (renamed into place, maybe compressed).
    pub fn has_file(&self, name: &str) -> bool {
        self.dir.join(name).is_file() || self.dir.join(format!("{name}.gz")).is_file()
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
