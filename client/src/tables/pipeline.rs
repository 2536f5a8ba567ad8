//! The parallel part of a conversion, shared by [`super::TableWriter`] and
//! [`super::ndjson_reader`]: lines are gathered into blocks (~4 MiB, in
//! order), parsed by N workers (a [`Converter`] each), and the results are put
//! back in block order by whoever consumes them ([`InOrder`]).

use super::convert::{Converter, PushError};
use super::{TableError, TableOptions};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Input bytes per block handed to a parse worker.
pub(crate) const BLOCK_BYTES: usize = 4 << 20;

/// Consecutive lines of one file, in order, separated by `\n`; the first
/// is line `first_line` of `path`.
#[derive(Default)]
pub(crate) struct Block {
    seq: u64,
    path: PathBuf,
    bytes: Vec<u8>,
    first_line: u64,
    lines: u64,
}

/// What a worker made of a block: its batches, rows and rows with `_extra`.
pub(crate) type Converted = Result<(Vec<RecordBatch>, u64, u64), TableError>;

/// The workers' threads and the two ends of the pipeline.
pub(crate) struct Workers {
    pub blocks: Blocks,
    pub done: Receiver<(u64, Converted)>,
    /// Another sender of results (a feeder's own error goes in order too).
    pub done_tx: SyncSender<(u64, Converted)>,
    pub handles: Vec<JoinHandle<()>>,
}

/// Parse workers for `schema` (`options.threads`, 0 = one per core).
pub(crate) fn start(schema: &SchemaRef, options: &TableOptions, tmp: &Path) -> Result<Workers, TableError> {
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let (done_tx, done) = sync_channel::<(u64, Converted)>(threads * 2);
    let (work, work_rx) = sync_channel::<Block>(threads);
    // Parsed blocks' buffers go back to be filled again: no fresh 4 MiB (page faults) per block.
    let (spare_tx, spare) = sync_channel::<Vec<u8>>(threads * 2);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let mut handles = Vec::with_capacity(threads);
    for _ in 0..threads {
        let converter = Converter::new(schema.clone(), options)?;
        let (rx, tx, spare_tx) = (work_rx.clone(), done_tx.clone(), spare_tx.clone());
        handles.push(spawn("fhir-async-json", tmp, move || parse_blocks(converter, &rx, &tx, &spare_tx))?);
    }
    Ok(Workers { blocks: Blocks { block: Block::default(), work, spare }, done, done_tx, handles })
}

pub(crate) fn spawn<T: Send + 'static>(
    name: &str,
    place: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, TableError> {
    std::thread::Builder::new().name(name.into()).spawn(f).map_err(|e| TableError::io(place, e))
}

/// The workers stopped taking blocks (the consumer went away or failed).
#[derive(Debug)]
pub(crate) struct Stopped;

/// Gathers lines into blocks and hands them to the workers.
pub(crate) struct Blocks {
    block: Block,
    work: SyncSender<Block>,
    spare: Receiver<Vec<u8>>,
}

impl Blocks {
    /// Adds line `line_no` of `path` (lines skipped since the previous one
    /// of the same file count as blank).
    pub fn push(&mut self, line: &[u8], path: &Path, line_no: u64) -> Result<(), Stopped> {
        let next = self.block.first_line + self.block.lines;
        if self.block.lines > 0 && (self.block.path != path || line_no < next || line_no - next > 1024) {
            self.flush()?;
        }
        if self.block.lines == 0 {
            self.block.path.clear();
            self.block.path.push(path);
            self.block.first_line = line_no;
        }
        for _ in self.block.first_line + self.block.lines..line_no {
            self.block.bytes.push(b'\n');
            self.block.lines += 1;
        }
        self.block.bytes.extend_from_slice(line);
        self.block.bytes.push(b'\n');
        self.block.lines += 1;
        if self.block.bytes.len() >= BLOCK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends whole lines read from `lines` as blocks, to the end of the files.
    pub fn push_files(&mut self, lines: &mut super::source::Lines) -> Result<Result<(), TableError>, Stopped> {
        self.flush()?;
        loop {
            let mut bytes = self.spare_buffer();
            match lines.next_chunk(&mut bytes, BLOCK_BYTES) {
                Ok(Some((path, first_line))) => {
                    let seq = self.block.seq;
                    self.block.seq += 1;
                    let block = Block { seq, path, bytes, first_line, lines: 0 };
                    self.work.send(block).map_err(|_| Stopped)?;
                }
                Ok(None) => return Ok(Ok(())),
                Err(e) => return Ok(Err(e)),
            }
        }
    }

    fn spare_buffer(&mut self) -> Vec<u8> {
        self.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(BLOCK_BYTES + (64 << 10)))
    }

    /// The sequence number the next block will have.
    pub fn next_seq(&self) -> u64 {
        self.block.seq
    }

    /// Sends the lines gathered so far (the last ones: the workers end once
    /// they have parsed them and `self` is dropped).
    pub fn flush(&mut self) -> Result<(), Stopped> {
        if self.block.lines == 0 {
            return Ok(());
        }
        let next = Block { seq: self.block.seq + 1, bytes: self.spare_buffer(), ..Block::default() };
        let block = std::mem::replace(&mut self.block, next);
        self.work.send(block).map_err(|_| Stopped)
    }
}

/// A parse worker: blocks in, batches out, until the blocks or the consumer stop.
fn parse_blocks(
    mut converter: Converter,
    blocks: &Mutex<Receiver<Block>>,
    done: &SyncSender<(u64, Converted)>,
    spare: &SyncSender<Vec<u8>>,
) {
    loop {
        let block = match blocks.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(mut block) = block else { return };
        let converted = convert_block(&mut converter, &block);
        if done.send((block.seq, converted)).is_err() {
            return;
        }
        block.bytes.clear();
        let _ = spare.try_send(block.bytes);
    }
}

fn convert_block(converter: &mut Converter, block: &Block) -> Converted {
    let (rows, extra) = (converter.rows, converter.extra_rows);
    let mut batches = Vec::new();
    for (line, line_no) in block.bytes.split(|b| *b == b'\n').zip(block.first_line..) {
        match converter.push(line) {
            Ok(Some(batch)) => batches.push(batch),
            Ok(None) => {}
            Err(PushError::Invalid(message)) => {
                return Err(TableError::InvalidLine { path: block.path.display().to_string(), line: line_no, message })
            }
            Err(PushError::Table(e)) => return Err(e),
        }
    }
    batches.extend(converter.flush()?);
    Ok((batches, converter.rows - rows, converter.extra_rows - extra))
}

/// Results back in block order; the first error in that order is the error.
pub(crate) struct InOrder {
    done: Receiver<(u64, Converted)>,
    next: u64,
    waiting: BTreeMap<u64, Converted>,
}

impl InOrder {
    pub fn new(done: Receiver<(u64, Converted)>) -> InOrder {
        InOrder { done, next: 0, waiting: BTreeMap::new() }
    }

    /// The next block's result, None once every sender is gone and all is handed out.
    pub fn next(&mut self) -> Option<Converted> {
        loop {
            if let Some(converted) = self.waiting.remove(&self.next) {
                self.next += 1;
                return Some(converted);
            }
            match self.done.recv() {
                Ok((seq, converted)) => {
                    self.waiting.insert(seq, converted);
                }
                // A block is missing: a worker stopped; whatever it said is the error.
                Err(_) => {
                    let (_, first) = self.waiting.pop_first()?;
                    return Some(first.and(Err(TableError::Arrow("a parse worker stopped".into()))));
                }
            }
        }
    }
}
