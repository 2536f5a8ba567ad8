//! [`TableWriter`]: NDJSON lines in, one Parquet file out, on every core.
//!
//! ```text
//! push_line ─▶ blocks of lines ─▶ N parse workers ─▶ writer thread ─▶ <path>.tmp ─▶ rename
//!              (~4 MiB, in order)  (a Converter each)  (back in order, encodes + zstd)
//! ```
//! Bounded channels keep memory to the row group being written plus a few
//! blocks per worker, whatever the input's size.

use super::pipeline::{self, spawn, Blocks, InOrder, Stopped, Workers};
use super::schema::infer;
use super::source::Lines;
use super::{TableError, TableOptions, TableReport};
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Streams the NDJSON lines of one resource type into one Parquet file (zstd).
///
/// The schema is inferred from the first [`TableOptions::infer_rows`] lines
/// (kept in memory until then) and is then fixed; a later field that does not
/// fit lands in `_extra` (see [the module docs](super)). Lines are parsed by
/// [`TableOptions::threads`] workers and written in their order. The file is
/// written as `<path>.tmp` and renamed to `path` by [`TableWriter::finish`];
/// dropped unfinished, the writer removes the temporary file.
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
    Writing(Box<Pipeline>),
    Done,
}

struct Pipeline {
    blocks: Blocks,
    workers: Vec<JoinHandle<()>>,
    writer: JoinHandle<Result<(u64, u64, usize), TableError>>,
    columns: usize,
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
    /// an empty path and the number of the line among those pushed (reported
    /// by this call or a later one, at the latest by [`TableWriter::finish`]).
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), TableError> {
        self.lines += 1;
        let at = (Path::new(""), self.lines);
        self.push_at(line, at)
    }

    /// [`TableWriter::push_line`], naming the file and line an error is about.
    pub(crate) fn push_at(&mut self, line: &[u8], at: (&Path, u64)) -> Result<(), TableError> {
        let line = line.trim_ascii();
        if line.is_empty() {
            return Ok(());
        }
        match &mut self.state {
            State::Sampling(sample) => {
                sample.push((line.to_vec(), at.0.to_path_buf(), at.1));
                if sample.len() >= self.options.infer_rows.max(1) {
                    self.start()?;
                }
                Ok(())
            }
            State::Writing(p) => match p.blocks.push(line, at.0, at.1) {
                Ok(()) => Ok(()),
                // The writer stopped (an error): its error is the one to report.
                Err(Stopped) => Err(self.stop()),
            },
            State::Done => Err(TableError::Arrow("the writer failed before".into())),
        }
    }

    /// Every line of `lines`: the sample line by line, then whole blocks
    /// read straight from the files (no copy per line).
    pub(crate) fn push_files(&mut self, lines: &mut Lines) -> Result<(), TableError> {
        while matches!(self.state, State::Sampling(_)) {
            let Some((line, path, line_no)) = lines.next_line()? else { return Ok(()) };
            self.push_at(line, (path, line_no))?;
        }
        let State::Writing(p) = &mut self.state else { return Ok(()) };
        match p.blocks.push_files(lines) {
            Ok(read) => read,
            Err(Stopped) => Err(self.stop()),
        }
    }

    /// Fixes the schema from the sample, starts the workers and the writer, converts the sample.
    fn start(&mut self) -> Result<(), TableError> {
        let State::Sampling(sample) = std::mem::replace(&mut self.state, State::Done) else { return Ok(()) };
        let lines: Vec<&[u8]> = sample.iter().map(|(line, _, _)| line.as_slice()).collect();
        let schema: SchemaRef = Arc::new(infer(&lines));
        let file = File::create(&self.tmp).map_err(|e| TableError::io(&self.tmp, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(self.options.zstd_level)?))
            .set_max_row_group_size(self.options.row_group_rows.max(1))
            // Statistics per column chunk (what pyarrow writes), not per page: less time
            // in the writer, and readers still prune by row group.
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .build();
        let parquet = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
        let Workers { blocks, done, done_tx, handles: workers } = pipeline::start(&schema, &self.options, &self.tmp)?;
        drop(done_tx);
        let row_group_bytes = self.options.row_group_bytes.max(1);
        let writer = spawn("fhir-async-parquet", &self.tmp, move || {
            write_in_order(parquet, InOrder::new(done), row_group_bytes)
        })?;
        let columns = schema.fields().len();
        self.state = State::Writing(Box::new(Pipeline { blocks, workers, writer, columns }));
        for (line, path, line_no) in &sample {
            self.push_at(line, (path, *line_no))?;
        }
        Ok(())
    }

    /// Stops the pipeline and returns the writer's error (or the reason it stopped).
    fn stop(&mut self) -> TableError {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Writing(p) => match p.join() {
                Err(e) => e,
                Ok(_) => TableError::Parquet("the writer stopped".into()),
            },
            _ => TableError::Parquet("the writer stopped".into()),
        }
    }

    /// Converts the last lines, closes the file and renames it to its path.
    pub fn finish(mut self) -> Result<TableReport, TableError> {
        if matches!(self.state, State::Sampling(_)) {
            self.start()?;
        }
        let State::Writing(p) = std::mem::replace(&mut self.state, State::Done) else {
            return Err(TableError::Arrow("the writer failed before".into()));
        };
        let columns = p.columns;
        let (rows, extra_rows, row_groups) = p.join()?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| TableError::io(&self.path, e))?;
        let bytes = std::fs::metadata(&self.path).map_err(|e| TableError::io(&self.path, e))?.len();
        Ok(TableReport { path: self.path.clone(), rows, extra_rows, row_groups, bytes, columns })
    }
}

impl Pipeline {
    /// No more blocks: the workers end, then the writer closes the file.
    fn join(mut self) -> Result<(u64, u64, usize), TableError> {
        // The last lines; if the workers stopped, the writer's error says why.
        let _ = self.blocks.flush();
        drop(self.blocks);
        // Every worker is joined (no short-circuit), then the writer.
        let panicked = self.workers.into_iter().map(|w| w.join().is_err()).filter(|p| *p).count() > 0;
        let written =
            self.writer.join().unwrap_or_else(|_| Err(TableError::Parquet("the writer thread panicked".into())))?;
        if panicked {
            // Its block was never written: the file would miss rows.
            return Err(TableError::Arrow("a parse worker panicked".into()));
        }
        Ok(written)
    }
}

impl Drop for TableWriter {
    fn drop(&mut self) {
        if let State::Writing(p) = std::mem::replace(&mut self.state, State::Done) {
            let _ = p.join();
        }
        // Finished: renamed away already; otherwise a partial file nobody wants.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// The writer: results back in block order, into the Parquet file.
fn write_in_order(
    mut parquet: ArrowWriter<File>,
    mut results: InOrder,
    row_group_bytes: usize,
) -> Result<(u64, u64, usize), TableError> {
    let (mut rows, mut extra_rows) = (0u64, 0u64);
    while let Some(converted) = results.next() {
        let (batches, r, e) = converted?;
        for batch in &batches {
            // Rows bound a row group; so do bytes, for big resources: checked every
            // 1,024 rows (slices share the batch's memory).
            for start in (0..batch.num_rows()).step_by(1024) {
                parquet.write(&batch.slice(start, (batch.num_rows() - start).min(1024)))?;
                if parquet.memory_size() >= row_group_bytes {
                    parquet.flush()?;
                }
            }
        }
        (rows, extra_rows) = (rows + r, extra_rows + e);
    }
    Ok((rows, extra_rows, parquet.close()?.row_groups.len()))
}
