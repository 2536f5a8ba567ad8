//! Downloading a finished job's files: each one on its own, so a file that
//! fails (its count check, an HTTP error, a refused token, a full disk) is
//! reported on its own and every good file is kept (issue 10 §2).

use crate::{header_pairs, now_ms, DriveError, Driver};
use fhir_async::{
    CountCheck, DownloadAction, FileDownload, FileKind, FileReport, HeadDecision, Job, PlannedFile, RetryPolicy,
};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How much of an error response's body is read for the server's own words.
const MAX_ERROR_BODY: u64 = 64 << 10;

/// Live counters of a download, for a progress line.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes received over the wire (compressed when the server gzips).
    pub wire_bytes: AtomicU64,
    /// Bytes written to the files (decoded NDJSON).
    pub written_bytes: AtomicU64,
    /// Resource lines written.
    pub resources: AtomicU64,
}

/// How to download.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Files downloaded at once.
    pub concurrency: usize,
    /// Leave a file alone when it is already in the folder: files are renamed
    /// into place only once complete and checked, so one that exists is done
    /// (a resumed download).
    pub skip_existing: bool,
    /// What a file whose line count differs from the manifest's does: fail on
    /// its own (strict, the default) or complete with a warning (lenient).
    pub count_check: CountCheck,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions { concurrency: 4, skip_existing: false, count_check: CountCheck::Strict }
    }
}

/// A file that could not be downloaded; the other files are not affected.
#[derive(Debug)]
pub struct FileFailure {
    /// The file name it would have had.
    pub file_name: String,
    /// Which manifest list it is from.
    pub kind: FileKind,
    /// Its resource type, when the manifest says.
    pub resource_type: Option<String>,
    /// What went wrong.
    pub error: DriveError,
}

impl FileFailure {
    /// What the file holds, in words: "Patient output file", "error file
    /// (OperationOutcome)", "deleted file".
    pub fn what(&self) -> String {
        match (self.kind, &self.resource_type) {
            (FileKind::Output, Some(t)) => format!("{t} output file"),
            (FileKind::Output, None) => "output file".into(),
            (FileKind::Error, _) => "error file (OperationOutcome)".into(),
            (FileKind::Deleted, _) => "deleted file".into(),
        }
    }
}

impl std::fmt::Display for FileFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.file_name, self.what(), self.error)
    }
}

/// What a download did, file by file.
#[derive(Debug, Default)]
pub struct Downloaded {
    /// Files downloaded, checked and renamed into place, in name order.
    pub files: Vec<(PathBuf, FileReport)>,
    /// Files already in the folder and left alone ([`DownloadOptions::skip_existing`]).
    pub skipped: Vec<PathBuf>,
    /// Files that failed, each on its own.
    pub failed: Vec<FileFailure>,
    /// The stop flag ended the download: some files were not fetched, and
    /// none is left half-written.
    pub interrupted: bool,
}

enum FileEnd {
    Done(FileReport),
    Failed(DriveError),
    Interrupted,
}

impl Driver {
    /// Downloads every planned file of the finished `job` into `dir`, each to
    /// `name.tmp` renamed into place when complete and checked. A file that
    /// fails is a [`FileFailure`] and its partial data is removed; the others
    /// go on. Errs only when `dir` cannot be created.
    pub fn download(
        &self,
        job: &mut Job,
        dir: &Path,
        opts: &DownloadOptions,
        counters: &Counters,
    ) -> std::io::Result<Downloaded> {
        std::fs::create_dir_all(dir)?;
        let mut done = Downloaded::default();
        let mut todo = Vec::new();
        for file in job.download_plan() {
            let target = dir.join(&file.file_name);
            if opts.skip_existing && target.is_file() {
                done.skipped.push(target);
            } else {
                todo.push(file);
            }
        }
        let policy = job.config().retry.clone();
        let queue = Mutex::new(todo.into_iter());
        let job_lock = Mutex::new(job);
        let results = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..opts.concurrency.max(1) {
                s.spawn(|| loop {
                    if self.stopped() {
                        return;
                    }
                    let Some(file) = queue.lock().ok().and_then(|mut q| q.next()) else {
                        return;
                    };
                    let (name, kind, rtype) = (file.file_name.clone(), file.kind, file.resource_type.clone());
                    let end = self.download_one(file, &policy, opts.count_check, dir, counters, &job_lock);
                    if let Ok(mut v) = results.lock() {
                        v.push((name, kind, rtype, end));
                    }
                });
            }
        });
        for (file_name, kind, resource_type, end) in results.into_inner().unwrap_or_default() {
            match end {
                FileEnd::Done(report) => done.files.push((dir.join(&file_name), report)),
                FileEnd::Failed(error) => done.failed.push(FileFailure { file_name, kind, resource_type, error }),
                FileEnd::Interrupted => done.interrupted = true,
            }
        }
        // Files never started because of the stop flag.
        done.interrupted |= self.stopped() && queue.into_inner().map_or(0, |q| q.len()) > 0;
        done.files.sort_by(|a, b| a.0.cmp(&b.0));
        done.failed.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        Ok(done)
    }

    /// Every file or an error: like [`Driver::download`], then the first
    /// failure, if any, is the error (the good files stay in `dir`).
    /// `bytes` (wire) and `resources` are added to when it ends.
    pub fn download_all(
        &self,
        job: &mut Job,
        dir: &Path,
        concurrency: usize,
        bytes: &AtomicU64,
        resources: &AtomicU64,
    ) -> Result<Vec<(PathBuf, FileReport)>, DriveError> {
        let counters = Counters::default();
        let done = self.download(job, dir, &DownloadOptions { concurrency, ..Default::default() }, &counters)?;
        bytes.fetch_add(counters.wire_bytes.into_inner(), Ordering::Relaxed);
        resources.fetch_add(counters.resources.into_inner(), Ordering::Relaxed);
        match done.failed.into_iter().next() {
            Some(f) => Err(f.error),
            None if done.interrupted => Err(DriveError::Io(std::io::Error::other("interrupted"))),
            None => Ok(done.files),
        }
    }

    fn download_one(
        &self,
        file: PlannedFile,
        policy: &RetryPolicy,
        count_check: CountCheck,
        dir: &Path,
        counters: &Counters,
        job: &Mutex<&mut Job>,
    ) -> FileEnd {
        let target = dir.join(&file.file_name);
        let tmp = dir.join(format!("{}.tmp", file.file_name));
        let end = match std::fs::File::create(&tmp) {
            Ok(f) => {
                let mut out = std::io::BufWriter::with_capacity(1 << 20, f);
                let end = self.fetch_file(file, policy, count_check, &mut out, counters, job);
                match end {
                    FileEnd::Done(report) => match out.flush().and_then(|()| std::fs::rename(&tmp, &target)) {
                        Ok(()) => return FileEnd::Done(report),
                        Err(e) => FileEnd::Failed(e.into()),
                    },
                    other => other,
                }
            }
            Err(e) => FileEnd::Failed(e.into()),
        };
        let _ = std::fs::remove_file(&tmp);
        end
    }

    /// One file through its [`FileDownload`], lines written to `out`.
    fn fetch_file(
        &self,
        file: PlannedFile,
        policy: &RetryPolicy,
        count_check: CountCheck,
        out: &mut impl Write,
        counters: &Counters,
        job: &Mutex<&mut Job>,
    ) -> FileEnd {
        let mut d = match FileDownload::new(file, policy) {
            Ok(d) => d.with_count_check(count_check),
            Err(e) => return FileEnd::Failed(e.into()),
        };
        let write_err: std::cell::RefCell<Option<std::io::Error>> = Default::default();
        let mut on_line = |l: &[u8]| {
            let mut err = write_err.borrow_mut();
            if err.is_none() {
                match out.write_all(l).and_then(|()| out.write_all(b"\n")) {
                    Ok(()) => {
                        counters.resources.fetch_add(1, Ordering::Relaxed);
                        counters.written_bytes.fetch_add(l.len() as u64 + 1, Ordering::Relaxed);
                    }
                    Err(e) => *err = Some(e),
                }
            }
        };
        let mut buf = vec![0u8; 256 << 10];
        loop {
            if self.stopped() {
                return FileEnd::Interrupted;
            }
            let action = match d.next_action(now_ms()) {
                Ok(a) => a,
                Err(e) => return FileEnd::Failed(e.into()),
            };
            let step: Result<(), fhir_async::DownloadError> = match action {
                DownloadAction::Send { request } => {
                    let r = match self.open(&request) {
                        Ok(r) => r,
                        Err((_, msg)) => {
                            if let Err(e) = d.handle_transport_error(request.id, &msg, now_ms()) {
                                return FileEnd::Failed(e.into());
                            }
                            continue;
                        }
                    };
                    let status = r.status().as_u16();
                    let headers = header_pairs(r.headers());
                    let mut reader = r.into_body().into_reader();
                    match d.handle_head(request.id, status, &headers, false, now_ms()) {
                        Ok(HeadDecision::Discard) => continue,
                        Ok(HeadDecision::Stream) => {}
                        Err(e) => {
                            // The server's own words go into the error (read at most 64 KiB).
                            let mut body = Vec::new();
                            let _ = reader.by_ref().take(MAX_ERROR_BODY).read_to_end(&mut body);
                            return FileEnd::Failed(e.with_body(&body).into());
                        }
                    }
                    let broke = loop {
                        if self.stopped() {
                            return FileEnd::Interrupted;
                        }
                        match reader.read(&mut buf) {
                            Ok(0) => break None,
                            Ok(n) => {
                                counters.wire_bytes.fetch_add(n as u64, Ordering::Relaxed);
                                match d.feed(request.id, &buf[..n], now_ms(), &mut on_line) {
                                    Ok(HeadDecision::Stream) => {}
                                    // A corrupt body: the retry is already scheduled.
                                    Ok(HeadDecision::Discard) => break Some(None),
                                    Err(e) => return FileEnd::Failed(e.into()),
                                }
                            }
                            Err(e) => break Some(Some(e.to_string())),
                        }
                    };
                    match broke {
                        None => d.finish(request.id, now_ms(), &mut on_line),
                        Some(Some(msg)) => d.handle_transport_error(request.id, &msg, now_ms()),
                        Some(None) => Ok(()),
                    }
                }
                DownloadAction::Wait { delay_ms, .. } => {
                    // In slices, so a stop is not held up by a long Retry-After.
                    let until = now_ms() + delay_ms;
                    while now_ms() < until && !self.stopped() {
                        std::thread::sleep(Duration::from_millis((until - now_ms()).min(200)));
                    }
                    Ok(())
                }
                DownloadAction::RefreshToken => {
                    return FileEnd::Failed(d.token_unavailable(self.no_refresh_reason()).into())
                }
                DownloadAction::RefreshManifest => {
                    let (kind, index) = (d.file().kind, d.file().index);
                    let fresh = job.lock().ok().and_then(|mut j| {
                        j.refresh_manifest(now_ms()).ok()?;
                        self.run(&mut j, |_| {}).ok()?;
                        j.download_plan().into_iter().find(|f| f.kind == kind && f.index == index)
                    });
                    d.replace_file(fresh)
                }
                DownloadAction::Done { report } => return FileEnd::Done(report),
            };
            if let Some(e) = write_err.borrow_mut().take() {
                return FileEnd::Failed(e.into());
            }
            if let Err(e) = step {
                return FileEnd::Failed(e.into());
            }
        }
    }
}
