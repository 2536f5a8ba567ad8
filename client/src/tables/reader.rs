//! [`ndjson_reader`](super::ndjson_reader): NDJSON files as a stream of Arrow
//! record batches, with the same schema rule and the same parallel parse as
//! the Parquet writer: a feeder thread reads the files into blocks, N workers
//! parse them, and the iterator hands the batches out in file order.

use super::pipeline::{self, spawn, InOrder, Workers};
use super::schema::infer;
use super::source::Lines;
use super::{TableError, TableOptions};
use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The batches of NDJSON files of one resource type. Dropped early, its
/// threads stop on their own (every channel they use is closed).
pub(crate) struct NdjsonReader {
    schema: SchemaRef,
    results: InOrder,
    pending: VecDeque<RecordBatch>,
    done: bool,
}

impl std::fmt::Debug for NdjsonReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonReader").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl NdjsonReader {
    pub fn open(paths: &[PathBuf], options: &TableOptions) -> Result<NdjsonReader, TableError> {
        let mut lines = Lines::new(paths);
        let mut sample = Vec::new();
        while sample.len() < options.infer_rows.max(1) {
            let Some((line, path, line_no)) = lines.next_line()? else { break };
            let line = line.trim_ascii();
            if !line.is_empty() {
                sample.push((line.to_vec(), path.to_path_buf(), line_no));
            }
        }
        let refs: Vec<&[u8]> = sample.iter().map(|(l, _, _)| l.as_slice()).collect();
        let schema = Arc::new(infer(&refs));
        let place = paths.first().map_or(Path::new(""), |p| p.as_path());
        let Workers { mut blocks, done, done_tx, handles: _ } = pipeline::start(&schema, options, place)?;
        spawn("fhir-async-ndjson", place, move || {
            for (line, path, line_no) in sample {
                if blocks.push(&line, &path, line_no).is_err() {
                    return;
                }
            }
            match blocks.push_files(&mut lines) {
                Ok(Ok(())) => {}
                // After the lines before it, in order.
                Ok(Err(e)) => {
                    let _ = done_tx.send((blocks.next_seq(), Err(e)));
                }
                Err(_stopped) => {}
            }
        })?;
        Ok(NdjsonReader { schema, results: InOrder::new(done), pending: VecDeque::new(), done: false })
    }
}

impl Iterator for NdjsonReader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(batch) = self.pending.pop_front() {
                return Some(Ok(batch));
            }
            if self.done {
                return None;
            }
            match self.results.next() {
                None => self.done = true,
                Some(Ok((batches, _, _))) => self.pending.extend(batches),
                Some(Err(e)) => {
                    self.done = true;
                    // The TableError rides inside the ArrowError; `TableError::from` takes it back out.
                    return Some(Err(ArrowError::ExternalError(Box::new(e))));
                }
            }
        }
    }
}

impl RecordBatchReader for NdjsonReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
