//! [`ndjson_reader`](super::ndjson_reader): NDJSON files as a stream of Arrow
//! record batches, with the same schema rule as the Parquet writer.

use super::convert::{Converter, PushError};
use super::schema::infer;
use super::source::Lines;
use super::{TableError, TableOptions};
use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

/// The batches of NDJSON files of one resource type.
pub(crate) struct NdjsonReader {
    lines: Lines,
    /// The sampled lines, converted first.
    sample: VecDeque<(Vec<u8>, PathBuf, u64)>,
    converter: Converter,
    done: bool,
}

impl std::fmt::Debug for NdjsonReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonReader").field("schema", self.converter.schema()).finish_non_exhaustive()
    }
}

impl NdjsonReader {
    pub fn open(paths: &[PathBuf], options: &TableOptions) -> Result<NdjsonReader, TableError> {
        let mut lines = Lines::new(paths);
        let mut sample = VecDeque::new();
        while sample.len() < options.infer_rows.max(1) {
            let Some((line, path, line_no)) = lines.next_line()? else { break };
            if !line.trim_ascii().is_empty() {
                sample.push_back((line.to_vec(), path.to_path_buf(), line_no));
            }
        }
        let refs: Vec<&[u8]> = sample.iter().map(|(l, _, _)| l.as_slice()).collect();
        let converter = Converter::new(Arc::new(infer(&refs)), options)?;
        Ok(NdjsonReader { lines, sample, converter, done: false })
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, TableError> {
        loop {
            let (pushed, path, line_no) = match self.sample.pop_front() {
                Some((line, path, line_no)) => (self.converter.push(&line), path, line_no),
                None => match self.lines.next_line()? {
                    None => return self.converter.flush(),
                    Some((line, path, line_no)) => match self.converter.push(line) {
                        // The place is only copied for an error.
                        Ok(pushed) => (Ok(pushed), PathBuf::new(), line_no),
                        Err(e) => (Err(e), path.to_path_buf(), line_no),
                    },
                },
            };
            match pushed {
                Ok(None) => {}
                Ok(Some(batch)) => return Ok(Some(batch)),
                Err(PushError::Invalid(message)) => {
                    return Err(TableError::InvalidLine { path: path.display().to_string(), line: line_no, message })
                }
                Err(PushError::Table(e)) => return Err(e),
            }
        }
    }
}

impl Iterator for NdjsonReader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_batch();
        if !matches!(next, Ok(Some(_))) {
            self.done = true;
        }
        // The TableError rides inside the ArrowError; `TableError::from` takes it back out.
        next.map_err(|e| ArrowError::ExternalError(Box::new(e))).transpose()
    }
}

impl RecordBatchReader for NdjsonReader {
    fn schema(&self) -> SchemaRef {
        self.converter.schema().clone()
    }
}
