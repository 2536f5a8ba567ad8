//! Where a download's lines go: a [`FileSink`] (a folder, a stream of lines)
//! opens a [`LineWriter`] per request and settles each file; a sink that keeps
//! files across processes (the folder) also offers [`Resume`] (K5).

use fhir_async::coordinator::FileRecord;
use fhir_async::{FileResult, Job};
use std::path::PathBuf;

/// Where one request's lines go (lines of one file arrive in order).
pub(crate) trait LineWriter {
    /// One line, without its newline.
    fn line(&mut self, line: &[u8]) -> std::io::Result<()>;
    /// Bytes of an opaque file (not NDJSON: Parquet, ..., protocol L13), as
    /// the engine hands them out: written as they are. Only a sink whose
    /// [`FileSink::takes_bytes`] is true gets them.
    fn bytes(&mut self, _bytes: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("this sink takes lines, not the bytes of an opaque file"))
    }
    /// The request is over (its lines are delivered).
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    /// The lines written so far end where `record` (the engine's checkpoint
    /// of this file) says the file can continue: a sink that keeps files notes
    /// it, so a process killed later continues from there (K5).
    fn checkpoint(&mut self, _record: FileRecord) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where a download's files go.
pub(crate) trait FileSink: Sync {
    /// A writer for file `file`, for one request (from the thread streaming it).
    /// `keep`: the bytes of the lines the engine handed out so far (each with
    /// its `\n`); a sink that can cut its copy keeps exactly those (after a
    /// change of the file, K7, it is 0: the file starts over).
    fn open(&self, file: usize, keep: u64) -> std::io::Result<Box<dyn LineWriter + '_>>;
    /// The headers of the answer whose body file `file` is about to stream (a sink that
    /// decodes bodies by their `Content-Type`, attachments, protocol M5, keeps them).
    fn headers(&self, _file: usize, _headers: &[(String, String)]) {}
    /// A file completed (its lines are all delivered) or failed.
    fn finished(&self, file: usize, result: &FileResult) -> std::io::Result<Option<PathBuf>>;
    /// The download ended early: forget partial output, except the files in
    /// `keep`, which an earlier-process resume continues (K5).
    fn abandon(&self, keep: &[String]);
    /// Whether this sink takes opaque files (L13) as bytes (a folder); a
    /// sink of lines leaves them out (the core's `opaque_files` option).
    fn takes_bytes(&self) -> bool {
        false
    }
    /// The sink's side of a resume across processes, if it keeps files (a
    /// folder). A sink without one (a stream, whose consumer has the lines)
    /// delivers every file again, and a file that changed on the server after
    /// lines were handed out fails with `file_changed` (K7).
    fn resume(&self) -> Option<&dyn Resume> {
        None
    }
}

/// What a sink that keeps files does for a download to continue across
/// processes (K5, K7): it holds done files and first parts, records progress,
/// and can cut its copy of a file back (so a file that changed starts over).
pub(crate) trait Resume: Sync {
    /// Whether this sink holds the first part of file `name` from an earlier
    /// process, so it can continue from the file's checkpoint (K5).
    fn continues(&self, name: &str) -> bool;
    /// Whether this sink already holds file `name` complete (a folder an
    /// earlier download finished it in), so a recorded done file is left out.
    fn holds(&self, name: &str) -> bool;
    /// Before the download: what this sink recorded of `job` in an earlier
    /// process that did not end cleanly (K5), records it can back (a done file
    /// it holds, a part-way file whose first part it has ready to continue).
    fn restore(&self, job: &Job) -> std::io::Result<Vec<FileRecord>>;
    /// File `file` is complete in this sink (after [`FileSink::finished`]):
    /// the engine's record of it.
    fn done(&self, file: usize, record: FileRecord) -> std::io::Result<()>;
    /// The files of the download, by the index the other methods get: the
    /// selection the sink was made for, less the files `run` left out because
    /// the sink already holds them.
    fn bind(&self, files: &[&str]) -> std::io::Result<()>;
    /// After every worker: the download stopped early with files where
    /// `stopped` says (before [`FileSink::abandon`]), or (`None`) settled every
    /// file, and the job holds their records.
    fn ended(&self, stopped: Option<&[FileRecord]>);
}
