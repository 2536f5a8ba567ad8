//! A folder's progress journal (protocol K5): `.fhir-async-progress.jsonl`,
//! one JSON line per event of a download into the folder, so a process killed
//! mid-download (SIGKILL, power loss: no chance to save the job) is continued by
//! the next one without fetching a finished file again.
//!
//! A line holds the job's identity (its status URL and the manifest's
//! `transactionTime`: a folder reused for another export never skips a file),
//! the engine's [`FileRecord`] (done with its figures, or part-way with its
//! checkpoint), and for a part-way file how many bytes of `NAME.tmp` hold the
//! lines up to that checkpoint. The client only writes and reads the engine's
//! records; what they mean stays the engine's.
//!
//! Appends are one `write` each with no fsync: a kill loses at most the last
//! line, torn, which a reader skips (as any line it cannot read).

use fhir_async::coordinator::FileRecord;
use fhir_async::Job;
use serde_json::{json, Value};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The journal's file name in the target folder.
pub(crate) const NAME: &str = ".fhir-async-progress.jsonl";

/// Which job a line belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobKey {
    status_url: String,
    transaction_time: String,
}

impl JobKey {
    /// The job's identity, or `None` when it has neither a status URL nor a
    /// `transactionTime` (nothing would tell it from another job: no journal).
    pub fn of(job: &Job) -> Option<JobKey> {
        let manifest = job.outcome().and_then(|o| o.manifest()).or_else(|| job.partial_manifest());
        let transaction_time = manifest.and_then(|m| m.transaction_time.clone()).unwrap_or_default();
        let status_url = job.status_url().unwrap_or_default().to_owned();
        (!status_url.is_empty() || !transaction_time.is_empty()).then_some(JobKey { status_url, transaction_time })
    }

    #[cfg(test)]
    pub fn new(status_url: &str, transaction_time: &str) -> JobKey {
        JobKey { status_url: status_url.into(), transaction_time: transaction_time.into() }
    }
}

/// One line: a file's record and, part-way, the length of `NAME.tmp` that
/// holds its lines up to the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub record: FileRecord,
    pub tmp_bytes: Option<u64>,
}

/// This job's entries in `text`, the latest per file, in order of their last
/// line. Lines of other jobs, torn or unreadable lines are left out.
pub(crate) fn parse(text: &[u8], key: &JobKey) -> Vec<Entry> {
    let mut latest: Vec<Entry> = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let Ok(v) = serde_json::from_slice::<Value>(line) else { continue };
        if v["statusUrl"].as_str() != Some(&key.status_url)
            || v["transactionTime"].as_str() != Some(&key.transaction_time)
        {
            continue;
        }
        let Ok(record) = serde_json::from_value::<FileRecord>(v["record"].clone()) else { continue };
        let tmp_bytes = v["tmpBytes"].as_u64();
        // A part-way record is only usable with its length of `.tmp`.
        if record.checkpoint.is_some() && tmp_bytes.is_none() {
            continue;
        }
        latest.retain(|e| e.record.file_name != record.file_name);
        latest.push(Entry { record, tmp_bytes });
    }
    latest
}

/// The journal of one download: appends lines of one job, opened on the
/// first append (a download that writes nothing leaves no journal).
pub(crate) struct Journal {
    path: PathBuf,
    key: JobKey,
    file: Mutex<Option<File>>,
}

impl Journal {
    /// The journal of `key` in `dir`.
    pub fn new(dir: &Path, key: JobKey) -> Journal {
        Journal { path: dir.join(NAME), key, file: Mutex::new(None) }
    }

    /// This job's entries so far (none when there is no journal).
    pub fn read(&self) -> std::io::Result<Vec<Entry>> {
        match std::fs::read(&self.path) {
            Ok(text) => Ok(parse(&text, &self.key)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Appends one line.
    pub fn append(&self, entry: &Entry) -> std::io::Result<()> {
        let mut line = json!({
            "statusUrl": self.key.status_url,
            "transactionTime": self.key.transaction_time,
            "record": entry.record,
        });
        if let Some(n) = entry.tmp_bytes {
            line["tmpBytes"] = n.into();
        }
        let mut line = line.to_string().into_bytes();
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if file.is_none() {
            let mut f = OpenOptions::new().create(true).read(true).append(true).open(&self.path)?;
            // A killed process may have left a torn last line: end it, so this line stands alone.
            if ends_torn(&mut f)? {
                f.write_all(b"\n")?;
            }
            *file = Some(f);
        }
        // One write per line: lines of parallel workers never interleave.
        let Some(f) = file.as_mut() else { return Ok(()) };
        f.write_all(&line)?;
        // A checkpoint is on disk before the process goes on (its `.tmp` was synced first): a
        // power loss leaves a journal that agrees with the folder. Done lines are not synced one
        // by one (a file each would cost an fsync per file); losing one refetches that file.
        if entry.tmp_bytes.is_some() {
            f.sync_data()?;
        }
        Ok(())
    }

    /// Every file is settled and the job holds the records: the journal goes.
    pub fn remove(&self) {
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the file is not empty and does not end with a newline.
fn ends_torn(f: &mut File) -> std::io::Result<bool> {
    use std::io::{Seek, SeekFrom};
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhir_async::FileCheckpoint;

    fn done(name: &str, resources: u64) -> FileRecord {
        FileRecord { file_name: name.into(), identity: None, resources, bytes: Some(resources * 10), checkpoint: None }
    }

    fn part(name: &str, offset: u64) -> FileRecord {
        let checkpoint =
            FileCheckpoint { offset, validator: "\"v1\"".into(), resources: 3, invalid: 0, taken: Vec::new() };
        FileRecord { file_name: name.into(), identity: None, resources: 3, bytes: None, checkpoint: Some(checkpoint) }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fhir-async-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    // protocol K5: the next process reads this job's lines, the latest per file; another job's
    // lines (same folder, another export), a torn last line and garbage are skipped, never a panic
    #[test]
    fn reads_this_jobs_latest_lines_and_skips_the_rest() {
        let d = dir("read");
        let key = JobKey::new("http://s/status/1", "2026-01-01T00:00:00Z");
        let other = Journal::new(&d, JobKey::new("http://s/status/2", "2026-01-01T00:00:00Z"));
        let same_url_other_export = Journal::new(&d, JobKey::new("http://s/status/1", "2026-02-02T00:00:00Z"));
        let j = Journal::new(&d, key.clone());
        j.append(&Entry { record: part("B.ndjson", 100), tmp_bytes: Some(90) }).unwrap();
        other.append(&Entry { record: done("B.ndjson", 1), tmp_bytes: None }).unwrap();
        same_url_other_export.append(&Entry { record: done("C.ndjson", 1), tmp_bytes: None }).unwrap();
        j.append(&Entry { record: done("A.ndjson", 5), tmp_bytes: None }).unwrap();
        j.append(&Entry { record: part("B.ndjson", 200), tmp_bytes: Some(180) }).unwrap();
        // Garbage, and a torn last line (a kill mid-write).
        let mut f = OpenOptions::new().append(true).open(d.join(NAME)).unwrap();
        f.write_all(b"not json\n{\"statusUrl\":\"http://s/status/1\",\"transactionTime\":\"2026-01-01T00:00:00Z\",\n")
            .unwrap();
        f.write_all(b"\xff\xfe{\"statusUrl\":\"http://s/status/1\",\"transactionTime\":\"2026-01-01T00:00:00Z\",\"rec")
            .unwrap();
        drop(f);
        let got = Journal::new(&d, key.clone()).read().unwrap();
        assert_eq!(
            got,
            vec![
                Entry { record: done("A.ndjson", 5), tmp_bytes: None },
                Entry { record: part("B.ndjson", 200), tmp_bytes: Some(180) },
            ]
        );
        // The next process's first line stands alone after the torn one.
        let next = Journal::new(&d, key.clone());
        next.append(&Entry { record: done("B.ndjson", 7), tmp_bytes: None }).unwrap();
        let got = next.read().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].record, done("B.ndjson", 7));
        next.remove();
        assert!(!d.join(NAME).exists());
        assert_eq!(next.read().unwrap(), Vec::new());
        std::fs::remove_dir_all(&d).ok();
    }

    // protocol K5: a part-way record without its length of `.tmp`, or a record of the wrong
    // shape, is not used
    #[test]
    fn unusable_lines_are_left_out() {
        let key = JobKey::new("u", "t");
        let text = concat!(
            r#"{"statusUrl":"u","transactionTime":"t","record":{"fileName":"A","resources":1,"checkpoint":{"offset":5,"validator":"v","resources":1}}}"#,
            "\n",
            r#"{"statusUrl":"u","transactionTime":"t","record":{"fileName":7}}"#,
            "\n",
            r#"{"statusUrl":"u","transactionTime":"t","record":{"fileName":"B","resources":2,"bytes":9}}"#,
            "\n",
            r#"[1,2]"#,
        );
        let got = parse(text.as_bytes(), &key);
        let b = FileRecord { file_name: "B".into(), identity: None, resources: 2, bytes: Some(9), checkpoint: None };
        assert_eq!(got, vec![Entry { record: b, tmp_bytes: None }]);
    }
}
