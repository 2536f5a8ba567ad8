//! [`TableWriter`]: NDJSON lines in, one Parquet file out. Lines are parsed on
//! the caller's thread and batches are encoded and compressed on a second
//! one, so a conversion keeps two cores busy; a bounded channel between them
//! keeps memory to the row group being written plus two batches.

use super::convert::{Converter, PushError};
use super::schema::infer;
use super::{TableError, TableOptions, TableReport};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Streams the NDJSON lines of one resource type into one Parquet file (zstd).
///
/// The schema is inferred from the first [`TableOptions::infer_rows`] lines
/// (kept in memory until then) and is then fixed; a later field that does not
/// fit lands in `_extra` (see [the module docs](super)). The file is written
/// as `<path>.tmp` and renamed to `path` by [`TableWriter::finish`]; dropped
/// unfinished, the writer removes the temporary file.
pub struct TableWriter {
    path: PathBuf,
    tmp: PathBuf,
    options: TableOptions,
    lines: u64,
    state: State,
}

enum State {
    /// The first lines, with where each came from.
    Sampling(Vec<(Vec<u8>, PathBuf, u64)>),
    Writing {
        converter: Box<Converter>,
        tx: SyncSender<RecordBatch>,
        worker: JoinHandle<Result<usize, TableError>>,
    },
    Done,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter").field("path", &self.path).field("lines", &self.lines).finish_non_exhaustive()
    }
}

impl TableWriter {
    /// A writer of `path` (its folder must exist); nothing is written before
    /// the schema is fixed.
    pub fn create(path: &Path, options: TableOptions) -> Result<TableWriter, TableError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        Ok(TableWriter {
            path: path.to_path_buf(),
            tmp: PathBuf::from(tmp),
            options,
            lines: 0,
            state: State::Sampling(Vec::new()),
        })
    }

    /// Adds one NDJSON line (a trailing newline and blank lines are fine).
    /// A line that is not a JSON object is [`TableError::InvalidLine`] with
    /// an empty path and the number of the line among those pushed.
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), TableError> {
        self.lines += 1;
        let at = (Path::new(""), self.lines);
        self.push_at(line, at)
    }

    /// [`TableWriter::push_line`], naming the file and line an error is about.
    pub(crate) fn push_at(&mut self, line: &[u8], at: (&Path, u64)) -> Result<(), TableError> {
        match &mut self.state {
            State::Sampling(sample) => {
                if line.trim_ascii().is_empty() {
                    return Ok(());
                }
                sample.push((line.to_vec(), at.0.to_path_buf(), at.1));
                if sample.len() >= self.options.infer_rows.max(1) {
                    self.start()?;
                }
                Ok(())
            }
            State::Writing { converter, tx, .. } => match converter.push(line) {
                Ok(None) => Ok(()),
                Ok(Some(batch)) => {
                    if tx.send(batch).is_err() {
                        return Err(self.worker_error());
                    }
                    Ok(())
                }
                Err(PushError::Invalid(message)) => Err(invalid(at, message)),
                Err(PushError::Table(e)) => Err(e),
            },
            State::Done => Err(TableError::Arrow("the writer failed before".into())),
        }
    }

    /// Fixes the schema from the sample, starts the Parquet writer and converts the sample.
    fn start(&mut self) -> Result<(), TableError> {
        let State::Sampling(sample) = std::mem::replace(&mut self.state, State::Done) else { return Ok(()) };
        let lines: Vec<&[u8]> = sample.iter().map(|(line, _, _)| line.as_slice()).collect();
        let schema: SchemaRef = Arc::new(infer(&lines));
        let converter = Box::new(Converter::new(schema.clone(), &self.options)?);
        let file = File::create(&self.tmp).map_err(|e| TableError::io(&self.tmp, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(self.options.zstd_level)?))
            .set_max_row_group_size(self.options.row_group_rows.max(1))
            .build();
        let mut writer = ArrowWriter::try_new(file, schema, Some(props))?;
        let (tx, rx) = sync_channel::<RecordBatch>(2);
        let row_group_bytes = self.options.row_group_bytes.max(1);
        let worker = std::thread::Builder::new()
            .name("fhir-async-parquet".into())
            .spawn(move || {
                for batch in rx {
                    writer.write(&batch)?;
                    // Rows bound a row group; so do bytes, for big resources.
                    if writer.in_progress_size() >= row_group_bytes {
                        writer.flush()?;
                    }
                }
                Ok(writer.close()?.row_groups.len())
            })
            .map_err(|e| TableError::io(&self.tmp, e))?;
        self.state = State::Writing { converter, tx, worker };
        for (line, path, line_no) in &sample {
            self.push_at(line, (path, *line_no))?;
        }
        Ok(())
    }

    /// The worker's error, once it has stopped taking batches.
    fn worker_error(&mut self) -> TableError {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Writing { worker, tx, .. } => {
                drop(tx);
                match worker.join() {
                    Ok(Err(e)) => e,
                    _ => TableError::Parquet("the writer thread stopped".into()),
                }
            }
            _ => TableError::Parquet("the writer thread stopped".into()),
        }
    }

    /// Writes the last rows, closes the file and renames it to its path.
    pub fn finish(mut self) -> Result<TableReport, TableError> {
        if matches!(self.state, State::Sampling(_)) {
            self.start()?;
        }
        let State::Writing { mut converter, tx, worker } = std::mem::replace(&mut self.state, State::Done) else {
            return Err(TableError::Arrow("the writer failed before".into()));
        };
        let last = converter.flush()?;
        let sent = last.map_or(true, |batch| tx.send(batch).is_ok());
        drop(tx);
        let row_groups = match worker.join() {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(TableError::Parquet("the writer thread panicked".into())),
        };
        if !sent {
            return Err(TableError::Parquet("the writer thread stopped".into()));
        }
        std::fs::rename(&self.tmp, &self.path).map_err(|e| TableError::io(&self.path, e))?;
        let bytes = std::fs::metadata(&self.path).map_err(|e| TableError::io(&self.path, e))?.len();
        Ok(TableReport {
            path: self.path.clone(),
            rows: converter.rows,
            extra_rows: converter.extra_rows,
            row_groups,
            bytes,
            columns: converter.schema().fields().len(),
        })
    }
}

impl Drop for TableWriter {
    fn drop(&mut self) {
        if let State::Writing { tx, worker, .. } = std::mem::replace(&mut self.state, State::Done) {
            drop(tx);
            let _ = worker.join();
        }
        // Finished: renamed away already; otherwise a partial file nobody wants.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn invalid(at: (&Path, u64), message: String) -> TableError {
    TableError::InvalidLine { path: at.0.display().to_string(), line: at.1, message }
}
