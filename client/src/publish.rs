//! A folder kept current with a published dataset (`$bulk-publish`, protocol L14): the core's
//! [`PublishReader`] decides what to fetch, in what order, and when to look again; this moves
//! the bytes and keeps the folder.
//!
//! The folder holds one file per published file, in the order of application:
//! `000000-Patient.ndjson`, `000001-Observation.ndjson`, `000002-deleted.ndjson`, ... (the
//! sequence number first, so a plain sort is the order in which to apply them), each written
//! as `.tmp` and renamed once complete and checked against the manifest's `fileSize` and
//! `count`; and the reader's state in `.fhir-async-publish.json`, saved (temp + rename) after
//! every file, so a restarted process fetches nothing twice. A closed or replaced dataset
//! empties the folder of its files before the new one is read.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fhir_async::manifest::FileKind;
use fhir_async::publish::{PublishAction, PublishReader, PublishedFile};
use fhir_async::BodyDecoder;

use crate::drive::Io;
use crate::{now_ms, ClientError};

/// The reader's saved state in a publication folder.
pub const STATE_FILE: &str = ".fhir-async-publish.json";

/// What happened, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishEvent {
    /// A file was fetched, checked and put in place.
    Applied {
        /// The file as the manifest listed it.
        file: Box<PublishedFile>,
        /// Where it is now.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// The dataset was closed or replaced; the folder was emptied of its files.
    Reset {
        /// Why.
        reason: String,
    },
    /// Nothing new until `until_ms` (a pending page, or a committed dataset).
    Waiting {
        /// When the reader looks again (Unix ms).
        until_ms: u64,
        /// Whether every page of the dataset was read and applied.
        committed: bool,
    },
}

/// When [`Publication::run`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishUntil {
    /// At the first wait: everything published so far is in the folder.
    Current,
    /// At the first wait after the dataset is committed (every page read).
    Committed,
    /// Never on its own (a stop ends it).
    Forever,
}

/// A folder kept current with one published dataset.
#[derive(Debug)]
pub struct Publication {
    io: Io,
    reader: PublishReader,
    dir: PathBuf,
}

impl Publication {
    pub(crate) fn open(io: Io, root: &str, policy: fhir_async::RetryPolicy, dir: &Path) -> Result<Self, ClientError> {
        std::fs::create_dir_all(dir).map_err(|e| ClientError::io(dir, e))?;
        let state = dir.join(STATE_FILE);
        let reader = match std::fs::read(&state) {
            Ok(bytes) => {
                let r: PublishReader = serde_json::from_slice(&bytes).map_err(|e| ClientError::Io {
                    path: state.display().to_string(),
                    message: format!("not a saved publication reader: {e}"),
                })?;
                r
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PublishReader::new(root, policy),
            Err(e) => return Err(ClientError::io(&state, e)),
        };
        let mut reader = reader;
        // a file handed out but never put in place (the last process ended or failed on it)
        reader.requeue_outstanding();
        Ok(Publication { io, reader, dir: dir.to_path_buf() })
    }

    /// The dataset's files in the folder, in the order to apply them (output before deleted,
    /// page by page; a later resource of the same type and id wins).
    pub fn files(&self) -> Result<Vec<PathBuf>, ClientError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| ClientError::io(&self.dir, e))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| ClientError::io(&self.dir, e))?.path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| is_dataset_file(n) && n.ends_with(".ndjson")) {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }

    /// Looks for a new publication at once instead of at the end of the current cadence.
    pub fn poll_now(&mut self) {
        self.reader.poll_now();
    }

    /// The core's reader (its warnings, cadence, applied files).
    pub fn reader(&self) -> &PublishReader {
        &self.reader
    }

    /// Runs until `until`, reporting each step to `on_event`.
    pub fn run(&mut self, until: PublishUntil, on_event: &mut dyn FnMut(&PublishEvent)) -> Result<(), ClientError> {
        loop {
            if self.io.stop.is_stopped() {
                return Err(ClientError::Stopped);
            }
            let now = now_ms();
            match self.reader.next_action(now) {
                PublishAction::Send { request } => {
                    let token = self.io.token_for(&request).map_err(|r| match r.auth_error() {
                        Some(a) => ClientError::Auth(a.clone()),
                        None => ClientError::Publish(fhir_async::publish::PublishError::Protocol {
                            url: fhir_async::origin::redact_url(&request.url),
                            message: r.reason(),
                        }),
                    })?;
                    match self.io.transport.send(&request, token.as_deref()) {
                        Ok(resp) => self.reader.handle_response(&resp, now_ms())?,
                        Err(_) => self.reader.handle_transport_error(now_ms()),
                    }
                    self.save()?;
                }
                PublishAction::Apply { file } => {
                    let (path, bytes) = self.fetch(&file)?;
                    self.reader.applied(&file.url)?;
                    self.save()?;
                    on_event(&PublishEvent::Applied { file: Box::new(file), path, bytes });
                }
                PublishAction::Reset { reason } => {
                    self.empty()?;
                    self.save()?;
                    on_event(&PublishEvent::Reset { reason });
                }
                PublishAction::Wait { until_ms } => {
                    let committed = self.reader.is_committed();
                    if until_ms > now {
                        on_event(&PublishEvent::Waiting { until_ms, committed });
                        if until == PublishUntil::Current || (until == PublishUntil::Committed && committed) {
                            return Ok(());
                        }
                    }
                    if self.io.stop.sleep(Duration::from_millis(until_ms.saturating_sub(now).max(1))) {
                        return Err(ClientError::Stopped);
                    }
                }
            }
        }
    }

    /// Downloads one file into place (temp + rename), checked against `fileSize` and `count`.
    fn fetch(&self, file: &PublishedFile) -> Result<(PathBuf, u64), ClientError> {
        let stem = match file.kind {
            FileKind::Deleted => "deleted".to_owned(),
            _ => fhir_async::names::table_name(file.resource_type.as_deref().unwrap_or("")),
        };
        let path = self.dir.join(format!("{:06}-{stem}.ndjson", file.seq));
        let tmp = path.with_extension("ndjson.tmp");
        let shown = fhir_async::origin::redact_url(&file.url);
        let bad = |message: String| {
            ClientError::Publish(fhir_async::publish::PublishError::Protocol { url: shown.clone(), message })
        };
        let mut attempt = 0u32;
        loop {
            let token = self.io.token_for(&file.request).ok().flatten();
            let result = self.io.transport.open(&file.request, token.as_deref());
            let mut s = match result {
                Ok(s) => s,
                Err(_) if attempt < 3 => {
                    attempt += 1;
                    if self.io.stop.sleep(Duration::from_millis(200 << attempt)) {
                        return Err(ClientError::Stopped);
                    }
                    continue;
                }
                Err(f) => return Err(bad(f.message)),
            };
            if s.status >= 500 && attempt < 3 {
                attempt += 1;
                if self.io.stop.sleep(Duration::from_millis(200 << attempt)) {
                    return Err(ClientError::Stopped);
                }
                continue;
            }
            if s.status != 200 {
                let mut body = Vec::new();
                let _ = (&mut s.body).take(fhir_async::limits::MAX_ERROR_BODY as u64).read_to_end(&mut body);
                return Err(bad(format!("HTTP {}: {}", s.status, String::from_utf8_lossy(&body))));
            }
            let encoding = fhir_async::http::header(&s.headers, "content-encoding").map(str::to_owned);
            let mut decoder = BodyDecoder::new(encoding.as_deref()).map_err(|e| bad(e.to_string()))?;
            let mut out = std::fs::File::create(&tmp).map_err(|e| ClientError::io(&tmp, e))?;
            let (mut bytes, mut lines) = (0u64, 0u64);
            let mut buf = vec![0u8; 256 << 10];
            let mut write = |chunk: &[u8]| -> std::io::Result<()> {
                bytes += chunk.len() as u64;
                lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
                out.write_all(chunk)
            };
            let mut broke = None;
            loop {
                match s.body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => match decoder.decode(&buf[..n], &mut write) {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(ClientError::io(&tmp, e)),
                        Err(e) => return Err(bad(e.to_string())),
                    },
                    Err(e) => {
                        broke = Some(e.to_string());
                        break;
                    }
                }
            }
            if let Some(e) = broke {
                drop(out);
                let _ = std::fs::remove_file(&tmp);
                if attempt < 3 {
                    attempt += 1;
                    continue;
                }
                return Err(bad(format!("the body broke after {bytes} bytes: {e}")));
            }
            match decoder.finish(&mut write) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(ClientError::io(&tmp, e)),
                Err(e) => return Err(bad(e.to_string())),
            }
            out.sync_all().map_err(|e| ClientError::io(&tmp, e))?;
            drop(out);
            if let Some(want) = file.file_size.filter(|w| *w != bytes) {
                let _ = std::fs::remove_file(&tmp);
                return Err(bad(format!("{bytes} bytes arrived where the manifest's fileSize says {want}")));
            }
            if let Some(want) = file.count.filter(|w| *w != lines) {
                let _ = std::fs::remove_file(&tmp);
                return Err(bad(format!("{lines} lines arrived where the manifest's count says {want}")));
            }
            std::fs::rename(&tmp, &path).map_err(|e| ClientError::io(&path, e))?;
            return Ok((path, bytes));
        }
    }

    /// Removes the dataset's files (the numbered `.ndjson` files and leftovers).
    fn empty(&self) -> Result<(), ClientError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| ClientError::io(&self.dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| ClientError::io(&self.dir, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let ours = is_dataset_file(name);
            if ours {
                std::fs::remove_file(&path).map_err(|e| ClientError::io(&path, e))?;
            }
        }
        Ok(())
    }

    /// Saves the reader's state (temp + rename): no token is in it.
    fn save(&self) -> Result<(), ClientError> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let json = serde_json::to_vec(&self.reader)
            .map_err(|e| ClientError::Io { path: path.display().to_string(), message: e.to_string() })?;
        std::fs::write(&tmp, json).map_err(|e| ClientError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| ClientError::io(&path, e))
    }
}

/// A file this folder holds for the dataset: `NNNNNN-<stem>.ndjson` (or its `.tmp`).
fn is_dataset_file(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 7
        && b[..6].iter().all(u8::is_ascii_digit)
        && b[6] == b'-'
        && (name.ends_with(".ndjson") || name.ends_with(".ndjson.tmp"))
}
