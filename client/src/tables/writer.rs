//! [`TableWriter`]: NDJSON lines in, one Parquet file out, on every core.
//!
//! ```text
//! push_line ─▶ blocks of lines ─▶ N parse workers ─▶ writer thread ─▶ <path>.tmp ─▶ rename
//!              (~4 MiB, in order)  (a Converter each)  (back in order, encodes + zstd)
//! ```
//! Bounded channels keep memory to the row group being written plus a few
//! blocks per worker, whatever the input's size.

use super::convert::{Converter, PushError};
use super::schema::infer;
use super::{TableError, TableOptions, TableReport};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Input bytes per block handed to a parse worker.
const BLOCK_BYTES: usize = 4 << 20;

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

/// Lines of one file, in order: `bytes` holds them, each ended by `\n`.
#[derive(Default)]
struct Block {
    seq: u64,
    path: PathBuf,
    bytes: Vec<u8>,
    line_nos: Vec<u64>,
}

/// What a worker made of a block: its batches, rows and rows with `_extra`.
type Converted = Result<(Vec<RecordBatch>, u64, u64), TableError>;

struct Pipeline {
    block: Block,
    work: SyncSender<Block>,
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
            State::Writing(p) => {
                if p.block.path != at.0 && !p.block.bytes.is_empty() {
                    self.send_block()?;
                }
                let State::Writing(p) = &mut self.state else { return Ok(()) };
                if p.block.bytes.is_empty() && p.block.path != at.0 {
                    p.block.path = at.0.to_path_buf();
                }
                p.block.bytes.extend_from_slice(line);
                p.block.bytes.push(b'\n');
                p.block.line_nos.push(at.1);
                if p.block.bytes.len() >= BLOCK_BYTES {
                    self.send_block()?;
                }
                Ok(())
            }
            State::Done => Err(TableError::Arrow("the writer failed before".into())),
        }
    }

    /// Hands the current block to the workers.
    fn send_block(&mut self) -> Result<(), TableError> {
        let State::Writing(p) = &mut self.state else { return Ok(()) };
        let next = Block { seq: p.block.seq + 1, path: p.block.path.clone(), ..Block::default() };
        let block = std::mem::replace(&mut p.block, next);
        if p.work.send(block).is_err() {
            // The writer stopped (an error): its error is the one to report.
            return Err(self.stop());
        }
        Ok(())
    }

    /// Fixes the schema from the sample, starts the workers and the writer, converts the sample.
    fn start(&mut self) -> Result<(), TableError> {
        let State::Sampling(sample) = std::mem::replace(&mut self.state, State::Done) else { return Ok(()) };
        let lines: Vec<&[u8]> = sample.iter().map(|(line, _, _)| line.as_slice()).collect();
        let schema: SchemaRef = Arc::new(infer(&lines));
        let threads = match self.options.threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let file = File::create(&self.tmp).map_err(|e| TableError::io(&self.tmp, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(self.options.zstd_level)?))
            .set_max_row_group_size(self.options.row_group_rows.max(1))
            // Statistics per column chunk (what pyarrow writes), not per page: less time
            // in the writer, and readers still prune by row group.
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .build();
        let parquet = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
        let (done_tx, done_rx) = sync_channel::<(u64, Converted)>(threads * 2);
        let (work, work_rx) = sync_channel::<Block>(threads);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let converter = Converter::new(schema.clone(), &self.options)?;
            let (rx, tx) = (work_rx.clone(), done_tx.clone());
            workers.push(spawn("fhir-async-json", &self.tmp, move || parse_blocks(converter, &rx, &tx))?);
        }
        drop(done_tx);
        let row_group_bytes = self.options.row_group_bytes.max(1);
        let writer = spawn("fhir-async-parquet", &self.tmp, move || write_in_order(parquet, done_rx, row_group_bytes))?;
        let columns = schema.fields().len();
        self.state = State::Writing(Box::new(Pipeline { block: Block::default(), work, workers, writer, columns }));
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
        if let State::Writing(p) = &self.state {
            if !p.block.bytes.is_empty() {
                self.send_block()?;
            }
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
    fn join(self) -> Result<(u64, u64, usize), TableError> {
        drop(self.work);
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

fn spawn<T: Send + 'static>(
    name: &str,
    tmp: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, TableError> {
    std::thread::Builder::new().name(name.into()).spawn(f).map_err(|e| TableError::io(tmp, e))
}

/// A parse worker: blocks in, batches out, until the blocks or the writer stop.
fn parse_blocks(mut converter: Converter, blocks: &Mutex<Receiver<Block>>, done: &SyncSender<(u64, Converted)>) {
    loop {
        let block = match blocks.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(block) = block else { return };
        let converted = convert_block(&mut converter, &block);
        if done.send((block.seq, converted)).is_err() {
            return;
        }
    }
}

fn convert_block(converter: &mut Converter, block: &Block) -> Converted {
    let (rows, extra) = (converter.rows, converter.extra_rows);
    let mut batches = Vec::new();
    let lines = block.bytes.split(|b| *b == b'\n').zip(&block.line_nos);
    for (line, line_no) in lines {
        match converter.push(line) {
            Ok(Some(batch)) => batches.push(batch),
            Ok(None) => {}
            Err(PushError::Invalid(message)) => {
                return Err(TableError::InvalidLine { path: block.path.display().to_string(), line: *line_no, message })
            }
            Err(PushError::Table(e)) => return Err(e),
        }
    }
    batches.extend(converter.flush()?);
    Ok((batches, converter.rows - rows, converter.extra_rows - extra))
}

/// The writer: results back in block order, into the Parquet file.
fn write_in_order(
    mut parquet: ArrowWriter<File>,
    done: Receiver<(u64, Converted)>,
    row_group_bytes: usize,
) -> Result<(u64, u64, usize), TableError> {
    let (mut next, mut rows, mut extra_rows) = (0u64, 0u64, 0u64);
    let mut waiting = BTreeMap::new();
    for (seq, converted) in done {
        waiting.insert(seq, converted);
        while let Some(converted) = waiting.remove(&next) {
            let (batches, r, e) = converted?;
            for batch in &batches {
                parquet.write(batch)?;
                // Rows bound a row group; so do bytes, for big resources.
                if parquet.in_progress_size() >= row_group_bytes {
                    parquet.flush()?;
                }
            }
            (rows, extra_rows, next) = (rows + r, extra_rows + e, next + 1);
        }
    }
    if let Some((_, converted)) = waiting.into_iter().next() {
        // A block is missing: a worker stopped; whatever it said is the error.
        converted?;
        return Err(TableError::Parquet("a parse worker stopped".into()));
    }
    Ok((rows, extra_rows, parquet.close()?.row_groups.len()))
}
