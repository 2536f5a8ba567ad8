//! Whole bodies of the attachment fetches (protocol M), one per planned file, as a sink's
//! writers collect them: the folder's attachment pass (`attachments.rs`) and a stream's
//! (`crate::lines`) both keep each body with its `Content-Type` for the core's decoder, and
//! write what it decoded atomically.

use super::run::lock;
use super::sink::LineWriter;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Each planned attachment's body so far and the `Content-Type` it came with.
pub(crate) struct Bodies {
    bodies: Vec<Mutex<Vec<u8>>>,
    content_types: Vec<Mutex<Option<String>>>,
}

impl Bodies {
    /// Room for `n` planned attachments.
    pub(crate) fn new(n: usize) -> Bodies {
        Bodies {
            bodies: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
            content_types: (0..n).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// A writer that appends to file `file`'s body, which keeps only its first `keep` bytes:
    /// what the engine handed out (a retry continues it, a restart empties it).
    pub(crate) fn open(&self, file: usize, keep: u64) -> std::io::Result<Box<dyn LineWriter + '_>> {
        let Some(body) = self.bodies.get(file) else {
            return Err(std::io::Error::other(format!("no attachment {file} in this fetch")));
        };
        let mut body = lock(body);
        body.truncate(keep as usize);
        Ok(Box::new(BodyWriter { body }))
    }

    /// The `Content-Type` of file `file`'s answer (the decoder reads a JSON `Binary` by it, M5).
    pub(crate) fn headers(&self, file: usize, headers: &[(String, String)]) {
        if let Some(slot) = self.content_types.get(file) {
            *lock(slot) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.clone());
        }
    }

    /// File `file`'s body and `Content-Type`, taken out (the memory goes with them).
    pub(crate) fn take(&self, file: usize) -> (Vec<u8>, Option<String>) {
        let body = self.bodies.get(file).map(|b| std::mem::take(&mut *lock(b))).unwrap_or_default();
        let content_type = self.content_types.get(file).and_then(|c| lock(c).take());
        (body, content_type)
    }

    /// Every body dropped (a run that ended early).
    pub(crate) fn clear(&self) {
        for b in &self.bodies {
            lock(b).clear();
        }
    }
}

/// Appends an opaque body's bytes (an attachment has no lines).
struct BodyWriter<'a> {
    body: MutexGuard<'a, Vec<u8>>,
}

impl LineWriter for BodyWriter<'_> {
    fn line(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.body.extend_from_slice(line);
        self.body.push(b'\n');
        Ok(())
    }

    fn bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.body.extend_from_slice(bytes);
        Ok(())
    }
}

/// `path` + `.tmp`: where a file is written before it is renamed into place.
pub(crate) fn tmp_of(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// `bytes` into `path` atomically (temp + rename); no `.tmp` is left behind on failure.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = tmp_of(path);
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
