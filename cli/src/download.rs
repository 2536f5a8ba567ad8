//! Downloading a job's files into its folder: skipping the done ones, events per file, compression
//! on a thread of its own (`--format ndjson.gz`).

use crate::args::{CountCheck, Format};
use crate::folder::Folder;
use crate::ui::Ui;
use crate::wait::{cancelled_by_another, interrupted};
use crate::Fail;
use fhir_async::{DownloadOptions, FileReport, Outcome, Validation};
use fhir_async_client::{ClientError, DownloadEvent, DownloadSummary, JobRun};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// What a download into the folder did: the client's summary, and the files that could not
/// be compressed (`--format ndjson.gz`).
pub(crate) struct Downloaded {
    pub(crate) summary: DownloadSummary,
    /// (file, why): kept uncompressed; the next run compresses them again.
    pub(crate) gzip_failed: Vec<(String, String)>,
}

impl Downloaded {
    /// Whether any file failed, could not be compressed, or has lines that are not JSON objects,
    /// or any attachment could not be fetched.
    pub(crate) fn has_errors(&self) -> bool {
        !self.summary.is_complete()
            || self.summary.failed_attachments().next().is_some()
            || !self.gzip_failed.is_empty()
            || self.summary.files.iter().any(|f| f.result.report.as_ref().is_some_and(|r| r.invalid_lines > 0))
    }
}

/// A file waiting for the compressor: its name, where it is, and its `file.finished` event
/// (`None`: done in an earlier run, only its compression is left).
pub(crate) type GzipJob = (String, PathBuf, Option<Value>);

/// Downloads the job's files into the folder. A file is left out only when the job's records
/// say it is done (and it is in the folder): a file of the same name is not proof.
pub(crate) fn download(
    run: &mut JobRun,
    folder: &Folder,
    ui: &Ui,
    opts: DownloadOptions,
    format: Format,
) -> Result<Downloaded, Fail> {
    if let Some(m) = run.outcome().and_then(Outcome::manifest) {
        folder.event("manifest", json!({"statusUrl": run.job().status_url(), "transactionTime": m.transaction_time, "output": m.output.len(), "error": m.error_files().count(), "deleted": m.deleted.len()}));
    }
    let skip = folder.done_files(&run.job().download_plan(), run.job().file_records());
    if !skip.is_empty() {
        ui.say(&format!(
            "{} file(s) already complete in {} (the job's records): not fetched again",
            skip.len(),
            folder.dir().display()
        ));
    }
    let gzip = format == Format::NdjsonGz;
    // Done in an earlier run but not compressed yet (that run ended first, or compressing failed).
    let left: Vec<GzipJob> = if gzip {
        skip.iter()
            .map(|n| (n.clone(), folder.path(n)))
            .filter(|(n, p)| p.is_file() && !folder.path(&format!("{n}.gz")).is_file())
            .map(|(n, p)| (n, p, None))
            .collect()
    } else {
        Vec::new()
    };
    // The attachment pass reads (and, inline, rewrites) the NDJSON files once they are all in:
    // they are compressed after it.
    let defer_gzip = opts.attachments.mode != fhir_async::attachments::AttachmentMode::Off;
    let deferred = std::sync::Mutex::new(Vec::<GzipJob>::new());
    let opts = DownloadOptions { skip_files: skip, ..opts };
    // Compressing is slow: it runs on a thread of its own, never in the download's callbacks
    // (they run under the client's coordinator lock, and would stall every worker).
    let (tx, rx) = std::sync::mpsc::channel::<GzipJob>();
    let (r, gzip_failed) = std::thread::scope(|scope| {
        let compressor = scope.spawn(|| compress_all(rx, folder, ui));
        for job in left {
            let _ = tx.send(job);
        }
        let r = run.download_events(folder.dir(), opts, |e| match e {
            DownloadEvent::Started { file, attempt, .. } => {
                folder.event(
                    "file.started",
                    json!({"file": file.file_name, "type": file.resource_type, "kind": file.kind, "attempt": attempt, "url": file.url}),
                );
            }
            DownloadEvent::Progress { totals, wire_bytes } => ui.download(totals, wire_bytes),
            DownloadEvent::Limit { change } => {
                ui.say(&format!(
                    "{}: {} file(s) at once, was {} ({})",
                    change.origin, change.to, change.from, change.reason
                ));
                folder.event(
                    "limit",
                    json!({"origin": change.origin, "from": change.from, "to": change.to, "reason": change.reason}),
                );
            }
            DownloadEvent::Finished { result, path, elapsed_ms, .. } => match (&result.report, &result.error) {
                (Some(r), _) => {
                    let fields = json!({"file": r.file_name, "type": r.resource_type, "kind": r.kind, "url": result.file.url, "bytes": r.bytes,
                        "resources": valid_resources(r), "invalidLines": r.invalid_lines, "durationMs": elapsed_ms,
                        "rangeResumes": r.range_resumes, "rangeRestarts": r.range_restarts,
                        "warnings": r.warnings, "path": path});
                    match path {
                        // `file.finished` once compressed, with the compressed file's path.
                        Some(p) if gzip && defer_gzip => {
                            deferred.lock().unwrap_or_else(|e| e.into_inner()).push((
                                r.file_name.clone(),
                                p.to_owned(),
                                Some(fields),
                            ));
                        }
                        Some(p) if gzip => {
                            let _ = tx.send((r.file_name.clone(), p.to_owned(), Some(fields)));
                        }
                        _ => folder.event("file.finished", fields),
                    }
                }
                (None, Some(e)) => {
                    ui.say(&format!("file {} failed: {e}", result.file.file_name));
                    folder.event(
                        "file.failed",
                        json!({"file": result.file.file_name, "type": result.file.resource_type, "kind": result.file.kind,
                        "url": result.file.url, "httpStatus": http_status(e), "code": e.code(), "message": e.to_string(),
                        "durationMs": elapsed_ms}),
                    );
                }
                (None, None) => {}
            },
            DownloadEvent::Attachment { report, elapsed_ms, .. } => {
                crate::attachments::settled(folder, ui, report, elapsed_ms)
            }
            _ => {}
        });
        for job in deferred.into_inner().unwrap_or_else(|e| e.into_inner()) {
            let _ = tx.send(job);
        }
        drop(tx);
        let failed = compressor.join().unwrap_or_default();
        (r, failed)
    });
    match r {
        Ok(summary) => {
            folder.event("export_complete", json!({}));
            Ok(Downloaded { summary, gzip_failed })
        }
        Err(ClientError::Stopped) => {
            Err(cancelled_by_another(folder, ui).unwrap_or_else(|| interrupted(folder, run, ui)))
        }
        Err(e) => Err(e.into()),
    }
}

/// The compressor thread: each finished file in turn; returns the ones that failed (kept
/// uncompressed, each a `file.failed` event with code `gzip`).
pub(crate) fn compress_all(rx: std::sync::mpsc::Receiver<GzipJob>, folder: &Folder, ui: &Ui) -> Vec<(String, String)> {
    let mut failed = Vec::new();
    for (name, path, fields) in rx {
        match gzip_in_place(&path) {
            Ok(gz) => match fields {
                Some(mut f) => {
                    f["path"] = json!(gz);
                    folder.event("file.finished", f);
                }
                None => folder.event("file.compressed", json!({"file": name, "path": gz})),
            },
            Err(e) => {
                let message = format!("could not compress {}: {e}", path.display());
                ui.say(&format!("file {name} failed: {message}"));
                let url = fields.as_ref().map(|f| f["url"].clone());
                folder.event("file.failed", json!({"file": name, "url": url, "code": "gzip", "message": message}));
                failed.push((name, message));
            }
        }
    }
    failed
}

/// The HTTP status a file's failure was, if it was one.
fn http_status(e: &fhir_async::DownloadError) -> Option<u16> {
    match e {
        fhir_async::DownloadError::Http { status, .. } => Some(*status),
        fhir_async::DownloadError::Unauthorized { .. } => Some(401),
        // The engine words the last failure `HTTP 503` (or a transport failure's words).
        fhir_async::DownloadError::RetriesExhausted { last, .. } => {
            last.strip_prefix("HTTP ").and_then(|r| r.get(..3)).and_then(|c| c.parse().ok())
        }
        _ => None,
    }
}

/// Resources in a file: its lines that are JSON objects (the engine's `resources` counts
/// only those; the invalid lines it handed out too are `invalid_lines`).
pub(crate) fn valid_resources(r: &FileReport) -> u64 {
    r.resources
}

/// `name.ndjson` → `name.ndjson.gz` (temp + rename), the original removed. On an error
/// nothing is left but the original.
pub(crate) fn gzip_in_place(path: &Path) -> std::io::Result<PathBuf> {
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let tmp = PathBuf::from(format!("{}.gz.tmp", path.display()));
    let written = (|| {
        let mut input = std::fs::File::open(path)?;
        let out = std::fs::File::create(&tmp)?;
        let mut enc = flate2::write::GzEncoder::new(std::io::BufWriter::new(out), flate2::Compression::default());
        std::io::copy(&mut input, &mut enc)?;
        std::io::Write::flush(&mut enc.finish()?)?;
        std::fs::rename(&tmp, &gz)
    })();
    if let Err(e) = written {
        if tmp.is_file() {
            let _ = std::fs::remove_file(&tmp);
        }
        return Err(e);
    }
    std::fs::remove_file(path)?;
    Ok(gz)
}

pub(crate) fn download_options(concurrency: u32, check: CountCheck) -> DownloadOptions {
    DownloadOptions {
        max_per_origin: concurrency.max(1),
        count_check: match check {
            CountCheck::Strict => fhir_async::CountCheck::Strict,
            CountCheck::Lenient => fhir_async::CountCheck::Lenient,
        },
        // A line is a resource only if it parses (`{not json}` passes the structural check).
        validation: Validation::Json,
        ..DownloadOptions::default()
    }
}
