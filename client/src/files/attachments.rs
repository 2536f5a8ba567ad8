//! The attachments of a folder download (protocol M), once its NDJSON files are in: the
//! completed files are read line by line for attachments (the core finds, resolves, dedupes
//! and plans them), the planned ones run through the same coordinator as files (per-origin
//! politeness, retries, the token rule and its refresh) into `attachments/<name>` (decoded,
//! hash-checked, temp + rename), the report goes to `attachments.json`, and in `inline` mode
//! each NDJSON file is rewritten with the attachments in it (temp + rename). An attachment an
//! earlier run saved is proven on disk (size + SHA-1 of its report entry) and not fetched again.

use super::bodies::{tmp_of, write_atomic, Bodies};
use super::run::{lock, run, Plan};
use super::sink::{FileSink, LineWriter};
use super::{DownloadEvent, DownloadSummary};
use crate::drive::Io;
use crate::ClientError;
use fhir_async::attachments::{
    decode_attachment, find_in_line, inline_attachments, AttachmentError, AttachmentPlan, AttachmentReport, Fetched,
};
use fhir_async::attachments::{AttachmentMode, AttachmentOptions};
use fhir_async::origin::redact_url;
use fhir_async::{DownloadOptions, Downloads, FileKind, FileResult, Job, PlannedFile};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// The folder's subfolder of saved attachments.
pub const DIR: &str = "attachments";
/// The folder's report of attachments: `{"attachments": [AttachmentReport...]}`.
pub const REPORT: &str = "attachments.json";

/// One attachment once settled: its report entry, and (inline mode) its decoded bytes.
struct Settled {
    report: AttachmentReport,
    fetched: Option<Fetched>,
}

/// The callback of a download's events.
type OnEvent<'a> = &'a (dyn Fn(DownloadEvent<'_>) + Sync);

/// The attachment pass of a folder download into `dir` whose NDJSON files are done (see the
/// module docs): `summary` gets the reports (and the attachments' wire bytes).
pub(crate) fn pass(
    io: &Io,
    job: &mut Job,
    dir: &Path,
    options: &DownloadOptions,
    summary: &mut DownloadSummary,
    on_event: OnEvent<'_>,
) -> Result<(), ClientError> {
    let aopts = options.attachments.clone();
    if aopts.mode == AttachmentMode::Off {
        return Ok(());
    }
    let policy = job.token_policy();
    let base = policy.base_url.clone();
    let ndjson = ndjson_files(job, dir, options);
    // What the resources point at, each URL planned once (M1–M4).
    let mut plan = AttachmentPlan::new(policy, aopts.clone());
    for path in &ndjson {
        for_each_line(path, |line| {
            for r in find_in_line(line, &aopts) {
                plan.add(&r);
            }
            Ok(())
        })
        .map_err(|e| ClientError::io(path, e))?;
    }
    let files = plan.files().to_vec();
    let inline = aopts.mode == AttachmentMode::Inline;
    let adir = dir.join(DIR);
    std::fs::create_dir_all(&adir).map_err(|e| ClientError::io(&adir, e))?;
    // K5: what an earlier run saved, proven on disk, is not fetched again.
    let earlier = read_report(dir);
    let mut settled: Vec<Option<Settled>> = files.iter().map(|f| proven(&adir, f, &earlier, inline)).collect();
    let todo: Vec<usize> = (0..files.len()).filter(|&i| settled[i].is_none()).collect();
    let mut failure = None;
    if !todo.is_empty() {
        let planned: Vec<PlannedFile> = todo.iter().map(|&i| files[i].clone()).collect();
        let hashes = todo.iter().map(|&i| plan.hash(i).map(str::to_owned)).collect();
        let sink = AttachmentSink::new(&adir, &planned, hashes, inline, on_event);
        let options = options.for_attachments();
        let wire_before = summary.wire_bytes;
        let forward = |e: DownloadEvent<'_>| match e {
            DownloadEvent::Started { index, .. } => sink.started(index),
            DownloadEvent::Bytes { wire_bytes } => {
                on_event(DownloadEvent::Bytes { wire_bytes: wire_before + wire_bytes })
            }
            DownloadEvent::Limit { .. } => on_event(e),
            _ => {}
        };
        match run(io, job, Plan::Files(planned), options, &sink, &forward) {
            Ok(s) => summary.wire_bytes += s.wire_bytes,
            Err(e) => failure = Some(e),
        }
        for (k, s) in sink.settled.into_iter().enumerate() {
            settled[todo[k]] = s.into_inner().unwrap_or_else(|p| p.into_inner());
        }
    }
    // The report: every attachment of this run, then what an earlier run reported that this one
    // did not see (its NDJSON file compressed since, ...).
    let mut reports: Vec<AttachmentReport> = settled.iter().flatten().map(|s| s.report.clone()).collect();
    for e in earlier {
        if !reports.iter().any(|r| r.url == e.url) {
            reports.push(e);
        }
    }
    write_report(dir, &reports)?;
    if let Some(e) = failure {
        // Stopped (or a disk error): what settled is reported, for the next run to prove (K5).
        summary.attachments = reports;
        return Err(e);
    }
    if inline {
        // M7: the NDJSON the user gets carries the attachments (a failed one leaves its resource as it was, M9).
        let lookup = |url: &str| plan.id_of(url).and_then(|id| settled.get(id)?.as_ref()?.fetched.as_ref());
        for path in &ndjson {
            inline_file(path, &base, &aopts, &lookup).map_err(|e| ClientError::io(path, e))?;
        }
    }
    summary.attachments = reports;
    Ok(())
}

/// The job's NDJSON output files of this download's selection that are complete in `dir`.
fn ndjson_files(job: &Job, dir: &Path, options: &DownloadOptions) -> Vec<PathBuf> {
    let selection =
        DownloadOptions { opaque_files: false, skip_files: Vec::new(), continue_files: Vec::new(), ..options.clone() };
    let selected = Downloads::new(job.download_plan(), selection, &Default::default());
    selected
        .files()
        .iter()
        .filter(|f| f.kind == FileKind::Output)
        .map(|f| dir.join(&f.file_name))
        .filter(|p| p.is_file())
        .collect()
}

/// Each line of `path` (without its line end).
fn for_each_line(path: &Path, mut f: impl FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<()> {
    let mut r = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(path)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let mut l = line.as_slice();
        l = l.strip_suffix(b"\n").unwrap_or(l);
        l = l.strip_suffix(b"\r").unwrap_or(l);
        f(l)?;
    }
}

/// M7: `path` rewritten with the fetched attachments in its lines (temp + rename), or left as
/// it is when no line changed.
fn inline_file<'f>(
    path: &Path,
    base: &str,
    options: &AttachmentOptions,
    lookup: &dyn Fn(&str) -> Option<&'f Fetched>,
) -> std::io::Result<()> {
    let tmp = tmp_of(path);
    let mut out = BufWriter::with_capacity(256 * 1024, std::fs::File::create(&tmp)?);
    let mut changed = false;
    let written = for_each_line(path, |line| {
        match inline_attachments(line, base, options, lookup) {
            Some(new) => {
                changed = true;
                out.write_all(&new)?;
            }
            None => out.write_all(line)?,
        }
        out.write_all(b"\n")
    })
    .and_then(|()| out.flush());
    drop(out);
    match written {
        Ok(()) if changed => std::fs::rename(&tmp, path),
        Ok(()) => std::fs::remove_file(&tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The report an earlier run left in `dir` (none when absent or unreadable).
fn read_report(dir: &Path) -> Vec<AttachmentReport> {
    let Ok(text) = std::fs::read_to_string(dir.join(REPORT)) else { return Vec::new() };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::from_value(v.get("attachments")?.clone()).ok())
        .unwrap_or_default()
}

fn write_report(dir: &Path, reports: &[AttachmentReport]) -> Result<(), ClientError> {
    let text = serde_json::to_string_pretty(&serde_json::json!({ "attachments": reports }))
        .map_err(|e| ClientError::Io { path: REPORT.into(), message: e.to_string() })?;
    write_atomic(&dir.join(REPORT), text.as_bytes()).map_err(|e| ClientError::io(&dir.join(REPORT), e))
}

/// K5: attachment `f` as an earlier run saved it, when its file is there with the size and
/// SHA-1 its report entry says (read and hashed: proven, not assumed).
fn proven(adir: &Path, f: &PlannedFile, earlier: &[AttachmentReport], keep: bool) -> Option<Settled> {
    let name = format!("{DIR}/{}", f.file_name);
    let e = earlier.iter().find(|r| r.file_name.as_deref() == Some(name.as_str()) && r.error.is_none())?;
    let (size, sha1) = (e.size?, e.sha1.as_deref()?);
    let path = adir.join(&f.file_name);
    if std::fs::metadata(&path).ok()?.len() != size {
        return None;
    }
    let bytes = std::fs::read(&path).ok()?;
    let mut fetched = decode_attachment(&f.url, bytes, Some("application/octet-stream"), Some(sha1)).ok()?;
    if fetched.size != size || fetched.sha1 != sha1 {
        return None;
    }
    fetched.content_type.clone_from(&e.content_type);
    Some(Settled { report: e.clone(), fetched: keep.then_some(fetched) })
}

/// The report entry of an attachment saved as `attachments/<file_name>` (M8).
fn saved_report(f: &PlannedFile, fetched: &Fetched) -> AttachmentReport {
    AttachmentReport {
        url: redact_url(&f.url),
        file_name: Some(format!("{DIR}/{}", f.file_name)),
        content_type: fetched.content_type.clone(),
        size: Some(fetched.size),
        sha1: Some(fetched.sha1.clone()),
        error: None,
    }
}

/// The report entry of an attachment that failed (M9).
fn failed_report(f: &PlannedFile, e: &AttachmentError) -> AttachmentReport {
    AttachmentReport { url: redact_url(&f.url), error: Some(e.info()), ..AttachmentReport::default() }
}

/// Where the planned attachments' bodies go: kept whole in memory (each is capped by the
/// options' `max_size`), decoded (M5) and saved once complete.
struct AttachmentSink<'a> {
    dir: &'a Path,
    files: Vec<PlannedFile>,
    /// The hash each attachment's resource gave (checked after decoding).
    hashes: Vec<Option<String>>,
    /// Keep the decoded bytes (inline mode).
    keep: bool,
    bodies: Bodies,
    started: Vec<Mutex<Option<Instant>>>,
    settled: Vec<Mutex<Option<Settled>>>,
    on_event: OnEvent<'a>,
}

impl<'a> AttachmentSink<'a> {
    fn new(
        dir: &'a Path,
        files: &[PlannedFile],
        hashes: Vec<Option<String>>,
        keep: bool,
        on_event: OnEvent<'a>,
    ) -> Self {
        let n = files.len();
        AttachmentSink {
            dir,
            files: files.to_vec(),
            hashes,
            keep,
            bodies: Bodies::new(n),
            started: (0..n).map(|_| Mutex::new(None)).collect(),
            settled: (0..n).map(|_| Mutex::new(None)).collect(),
            on_event,
        }
    }

    fn started(&self, file: usize) {
        if let Some(s) = self.started.get(file) {
            lock(s).get_or_insert_with(Instant::now);
        }
    }
}

impl FileSink for AttachmentSink<'_> {
    fn open(&self, file: usize, keep: u64) -> std::io::Result<Box<dyn LineWriter + '_>> {
        self.bodies.open(file, keep)
    }

    fn headers(&self, file: usize, headers: &[(String, String)]) {
        self.bodies.headers(file, headers);
    }

    fn finished(&self, file: usize, result: &FileResult) -> std::io::Result<Option<PathBuf>> {
        let f = &self.files[file];
        let (body, content_type) = self.bodies.take(file);
        let decoded = match &result.error {
            Some(e) => Err(AttachmentError::Download(e.clone())),
            None => decode_attachment(&f.url, body, content_type.as_deref(), self.hashes[file].as_deref()),
        };
        let (report, path, fetched) = match decoded {
            Ok(mut fetched) => {
                let path = self.dir.join(&f.file_name);
                write_atomic(&path, &fetched.bytes)?;
                let report = saved_report(f, &fetched);
                if !self.keep {
                    fetched.bytes = Vec::new();
                }
                (report, Some(path), Some(fetched))
            }
            // The server's words of its last answer are in the download's error (M9).
            Err(e) => (failed_report(f, &e), None, None),
        };
        let elapsed_ms = lock(&self.started[file]).map_or(0, |t| t.elapsed().as_millis() as u64);
        (self.on_event)(DownloadEvent::Attachment { index: file, report: &report, elapsed_ms });
        *lock(&self.settled[file]) = Some(Settled { report, fetched });
        Ok(path)
    }

    fn abandon(&self, _keep: &[String]) {
        self.bodies.clear();
    }

    fn takes_bytes(&self) -> bool {
        true
    }
}
