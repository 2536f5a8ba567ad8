//! The folder sink: files written as `NAME.tmp`, renamed once complete, kept
//! as `NAME.part` to continue in another process (K5), with the folder's
//! progress journal.

use super::journal;
use super::run::lock;
use super::sink::{FileSink, LineWriter, Resume};
use crate::ClientError;
use fhir_async::coordinator::FileRecord;
use fhir_async::{FileResult, Job};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Files in a folder: `name.tmp` while downloading, renamed to `name` once
/// complete (count checked); removed when the file fails or the download stops,
/// or kept as `name.part` when it can continue (K5). Progress goes to the
/// folder's journal as it happens.
pub(crate) struct FolderSink {
    dir: PathBuf,
    names: Vec<String>,
    open: Vec<Mutex<Option<BufWriter<File>>>>,
    /// This job's journal, once [`Resume::restore`] knew the job (none for a job with no identity).
    journal: OnceLock<journal::Journal>,
    /// The download's file index → index in `names` (see [`Resume::bind`]).
    bound: OnceLock<Vec<usize>>,
}

impl FolderSink {
    fn part(&self, file: usize) -> PathBuf {
        self.dir.join(format!("{}.part", self.names[file]))
    }

    /// A folder for the files `options` selects of `plan`, opaque files
    /// (Parquet, L13) included: a folder takes bytes.
    pub fn for_plan(
        dir: &Path,
        plan: Vec<fhir_async::PlannedFile>,
        options: &fhir_async::DownloadOptions,
    ) -> Result<Self, ClientError> {
        let options = fhir_async::DownloadOptions { opaque_files: true, ..options.clone() };
        let selected = fhir_async::Downloads::new(plan, options, &Default::default());
        FolderSink::new(dir, selected.files().iter().map(|f| f.file_name.clone()).collect())
    }

    pub fn new(dir: &Path, names: Vec<String>) -> Result<Self, ClientError> {
        std::fs::create_dir_all(dir).map_err(|e| ClientError::io(dir, e))?;
        for n in &names {
            safe_name(n).map_err(|m| ClientError::Io { path: n.clone(), message: m })?;
        }
        let open = names.iter().map(|_| Mutex::new(None)).collect();
        Ok(FolderSink { dir: dir.to_owned(), names, open, journal: OnceLock::new(), bound: OnceLock::new() })
    }

    /// Index in `names` of the download's file `file`.
    fn slot(&self, file: usize) -> usize {
        self.bound.get().and_then(|b| b.get(file).copied()).unwrap_or(file)
    }

    fn tmp(&self, file: usize) -> PathBuf {
        self.dir.join(format!("{}.tmp", self.names[file]))
    }

    /// The first `len` bytes of file `file`'s `.tmp` (or `.part`) hold its lines up to a journaled
    /// checkpoint: cut what came after and leave them as the `.part` that continues (K5). False
    /// when neither is that long (the file starts over).
    fn prepare_part(&self, file: usize, len: u64) -> std::io::Result<bool> {
        let part = self.part(file);
        for from in [self.tmp(file), part.clone()] {
            if std::fs::metadata(&from).is_ok_and(|m| m.is_file() && m.len() >= len) {
                std::fs::OpenOptions::new().write(true).open(&from)?.set_len(len)?;
                if from != part {
                    std::fs::rename(&from, &part)?;
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether file `file`'s `.part` holds exactly the lines of `taken` (K7). A checkpoint from
    /// before K7 has no digests: its length was checked, and the engine continues it only by a 206.
    fn part_is(&self, file: usize, taken: &[fhir_async::taken::TakenSegment]) -> std::io::Result<bool> {
        if taken.is_empty() {
            return Ok(true);
        }
        let mut proof = fhir_async::taken::Proof::new(taken.to_vec());
        let mut f = File::open(self.part(file))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if proof.update(&buf[..n]) == fhir_async::taken::Verdict::Changed {
                break;
            }
        }
        Ok(proof.finish() == fhir_async::taken::Verdict::Proven)
    }

    /// The length of a `.tmp` once its writer is flushed.
    fn flushed_len(w: &mut BufWriter<File>) -> std::io::Result<u64> {
        w.flush()?;
        Ok(w.get_ref().metadata()?.len())
    }
}

struct FolderWriter<'a> {
    w: std::sync::MutexGuard<'a, Option<BufWriter<File>>>,
    journal: Option<&'a journal::Journal>,
}

impl LineWriter for FolderWriter<'_> {
    #[inline]
    fn line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let w = self.w.as_mut().ok_or_else(|| std::io::Error::other("closed"))?;
        w.write_all(line)?;
        w.write_all(b"\n")
    }

    fn bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.w.as_mut().ok_or_else(|| std::io::Error::other("closed"))?.write_all(bytes)
    }

    fn checkpoint(&mut self, record: FileRecord) -> std::io::Result<()> {
        let (Some(journal), Some(w)) = (self.journal, self.w.as_mut()) else { return Ok(()) };
        // The `.tmp` up to here holds exactly the lines up to the checkpoint, on disk before the
        // journal says so (a power loss cannot leave a journal ahead of the file; the next
        // process also proves the `.part` against the checkpoint's digest, K7).
        let tmp_bytes = Some(FolderSink::flushed_len(w)?);
        w.get_ref().sync_data()?;
        journal.append(&journal::Entry { record, tmp_bytes })
    }
}

impl FileSink for FolderSink {
    fn open(&self, file: usize, keep: u64) -> std::io::Result<Box<dyn LineWriter + '_>> {
        let file = self.slot(file);
        let mut w = lock(&self.open[file]);
        if w.is_none() {
            // An earlier process's first part continues (K5); otherwise a new file.
            // Lines already handed out before a retry are never repeated: append.
            let f = if self.part(file).is_file() {
                std::fs::rename(self.part(file), self.tmp(file))?;
                std::fs::OpenOptions::new().append(true).open(self.tmp(file))?
            } else {
                File::create(self.tmp(file))?
            };
            *w = Some(BufWriter::with_capacity(256 * 1024, f));
        }
        if let Some(writer) = w.as_mut() {
            // The copy holds exactly the lines the engine handed out: after a change of the
            // file on the server (K7) that is nothing, and the file starts over.
            let len = FolderSink::flushed_len(writer)?;
            if len > keep {
                writer.get_ref().set_len(keep)?;
                writer.seek(std::io::SeekFrom::Start(keep))?;
            } else if len < keep {
                return Err(std::io::Error::other(format!(
                    "{} holds {len} bytes, short of the {keep} the engine handed out",
                    self.names[file]
                )));
            }
        }
        Ok(Box::new(FolderWriter { w, journal: self.journal.get() }))
    }

    fn finished(&self, file: usize, result: &FileResult) -> std::io::Result<Option<PathBuf>> {
        let file = self.slot(file);
        let w = lock(&self.open[file]).take();
        let tmp = self.tmp(file);
        if result.error.is_some() {
            drop(w);
            let _ = std::fs::remove_file(&tmp);
            return Ok(None);
        }
        match w {
            Some(mut w) => w.flush()?,
            None => drop(File::create(&tmp)?), // a file with no lines
        }
        let target = self.dir.join(&self.names[file]);
        std::fs::rename(&tmp, &target)?;
        Ok(Some(target))
    }

    fn abandon(&self, keep: &[String]) {
        for file in 0..self.names.len() {
            if let Some(mut w) = lock(&self.open[file]).take() {
                // A file part-way with a checkpoint stays as `name.part` (its lines up to the
                // checkpoint); anything else is removed: no `.tmp` is left behind.
                if keep.contains(&self.names[file]) && w.flush().is_ok() {
                    drop(w);
                    if std::fs::rename(self.tmp(file), self.part(file)).is_ok() {
                        continue;
                    }
                }
                let _ = std::fs::remove_file(self.tmp(file));
            }
        }
    }

    fn resume(&self) -> Option<&dyn Resume> {
        Some(self)
    }

    fn takes_bytes(&self) -> bool {
        true
    }
}

impl Resume for FolderSink {
    fn continues(&self, name: &str) -> bool {
        self.names.iter().position(|n| n == name).is_some_and(|i| self.part(i).is_file())
    }

    fn holds(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name) && self.dir.join(name).is_file()
    }

    fn restore(&self, job: &Job) -> std::io::Result<Vec<FileRecord>> {
        let Some(key) = journal::JobKey::of(job) else { return Ok(Vec::new()) };
        let journal = self.journal.get_or_init(|| journal::Journal::new(&self.dir, key));
        let entries = journal.read()?;
        let mut backed = Vec::new();
        // Only this download's files: another download into the folder may be writing others.
        for (i, name) in self.names.iter().enumerate() {
            let keep_part = match entries.iter().find(|e| &e.record.file_name == name) {
                Some(e) if e.record.is_done() => {
                    if self.dir.join(name).is_file() {
                        backed.push(e.record.clone());
                    }
                    false
                }
                Some(e) => {
                    let ready = match (e.tmp_bytes, &e.record.checkpoint) {
                        // The first part is trusted only once its bytes are the ones the engine
                        // handed out (K7): its length and digest, not just its length.
                        (Some(len), Some(c)) => self.prepare_part(i, len)? && self.part_is(i, &c.taken)?,
                        _ => false,
                    };
                    if ready {
                        backed.push(e.record.clone());
                    }
                    ready
                }
                // Not journaled: a `.part` the saved job has a checkpoint for (a clean stop).
                None => job.file_records().iter().any(|r| &r.file_name == name && r.checkpoint.is_some()),
            };
            // A `.part` nothing continues would be appended to by a file that starts over.
            if !keep_part {
                match std::fs::remove_file(self.part(i)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(backed)
    }

    fn done(&self, _file: usize, record: FileRecord) -> std::io::Result<()> {
        match self.journal.get() {
            Some(journal) => journal.append(&journal::Entry { record, tmp_bytes: None }),
            None => Ok(()),
        }
    }

    fn bind(&self, files: &[&str]) -> std::io::Result<()> {
        let slots = files
            .iter()
            .map(|f| self.names.iter().position(|n| n == f))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| std::io::Error::other("a file of the download is not in the folder's selection"))?;
        // A second download with the same sink binds its own selection.
        if self.bound.set(slots.clone()).is_err() && self.bound.get() != Some(&slots) {
            return Err(std::io::Error::other("the folder was bound to another selection"));
        }
        Ok(())
    }

    fn ended(&self, stopped: Option<&[FileRecord]>) {
        let Some(journal) = self.journal.get() else { return };
        let Some(records) = stopped else {
            journal.remove();
            return;
        };
        // Stopped: the files that continue are journaled with their flushed length (then
        // `abandon` keeps them as `.part`), so the journal agrees with the folder.
        for r in records.iter().filter(|r| r.checkpoint.is_some()) {
            let Some(file) = self.names.iter().position(|n| n == &r.file_name) else { continue };
            if let Some(w) = lock(&self.open[file]).as_mut() {
                if let Ok(len) = FolderSink::flushed_len(w) {
                    let _ = journal.append(&journal::Entry { record: r.clone(), tmp_bytes: Some(len) });
                }
            }
        }
    }
}

/// A plan's file name must stay inside the folder (the engine's names are
/// already safe; this is the belt to those braces).
fn safe_name(name: &str) -> Result<(), String> {
    let mut comps = Path::new(name).components();
    let ok = matches!(comps.next(), Some(Component::Normal(_)))
        && comps.next().is_none()
        && !name.contains(['/', '\\', '\0']);
    if ok {
        Ok(())
    } else {
        Err(format!("refusing file name {name:?}: it would leave the target folder"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // protocol K5: after a kill, a `.tmp` longer than its journaled checkpoint is cut back to the
    // checkpoint's length and becomes the `.part` that continues; one too short starts over
    #[test]
    fn a_killed_files_tmp_is_cut_back_to_its_checkpoint() {
        let dir = std::env::temp_dir().join(format!("fhir-async-files-part-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sink = FolderSink::new(&dir, vec!["A.ndjson".into(), "B.ndjson".into()]).unwrap();
        std::fs::write(dir.join("A.ndjson.tmp"), b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\":").unwrap();
        std::fs::write(dir.join("A.ndjson.part"), b"{\"id\":\"0\"}\n").unwrap(); // older, replaced
        assert!(sink.prepare_part(0, 22).unwrap());
        assert_eq!(std::fs::read(dir.join("A.ndjson.part")).unwrap(), b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n");
        assert!(!dir.join("A.ndjson.tmp").exists());
        // A `.part` left by a clean stop serves too.
        assert!(sink.prepare_part(0, 11).unwrap());
        assert_eq!(std::fs::read(dir.join("A.ndjson.part")).unwrap(), b"{\"id\":\"1\"}\n");
        std::fs::write(dir.join("B.ndjson.tmp"), b"{\"id\":\"1\"}\n").unwrap();
        assert!(!sink.prepare_part(1, 22).unwrap(), "shorter than its checkpoint: starts over");
        assert!(!dir.join("B.ndjson.part").exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
