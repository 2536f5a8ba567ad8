//! Lines in, record batches out: each line is checked against the schema
//! while it is parsed ([`crate::tables::fit`]); a line that fits is handed to
//! arrow-json's decoder as is, a line that does not is split into the members
//! that fit and the `_extra` JSON text of the others.

use super::fit::Fits;
use super::schema::EXTRA_COLUMN;
use super::{TableError, TableOptions};
use arrow_array::RecordBatch;
use arrow_json::reader::Decoder;
use arrow_schema::{DataType, Fields, SchemaRef};
use serde::de::DeserializeSeed;
use serde_json::{Map, Value};

/// Input bytes buffered in the decoder before a batch is cut, whatever the rows.
const BATCH_BYTES: usize = 16 << 20;
/// Rows per batch at most (a row group is written from several batches).
const BATCH_ROWS: usize = 8192;

/// Why a line could not be converted.
pub(crate) enum PushError {
    /// Not a JSON object: what the parser said.
    Invalid(String),
    /// Any other failure.
    Table(TableError),
}

impl From<arrow_schema::ArrowError> for PushError {
    fn from(e: arrow_schema::ArrowError) -> Self {
        PushError::Table(e.into())
    }
}

/// The converter of one resource type.
pub(crate) struct Converter {
    /// The row type: the schema's fields but `_extra`.
    row: DataType,
    row_fields: Fields,
    decoder: Decoder,
    batch_rows: usize,
    buffered: usize,
    /// Rows converted, and rows with an `_extra`.
    pub rows: u64,
    pub extra_rows: u64,
}

impl Converter {
    pub fn new(schema: SchemaRef, options: &TableOptions) -> Result<Converter, TableError> {
        let row_fields: Fields = schema.fields().iter().filter(|f| f.name() != EXTRA_COLUMN).cloned().collect();
        let row = DataType::Struct(row_fields.clone());
        let batch_rows = options.row_group_rows.clamp(1, BATCH_ROWS);
        // Strict: a member that is not a field fails instead of being dropped
        // (the fit check should have caught it; this is the safety net).
        let decoder = arrow_json::ReaderBuilder::new(schema.clone())
            .with_batch_size(batch_rows)
            .with_strict_mode(true)
            .build_decoder()?;
        Ok(Converter { row, row_fields, decoder, batch_rows, buffered: 0, rows: 0, extra_rows: 0 })
    }

    /// Converts one line (blank lines are skipped); a batch when one is full.
    pub fn push(&mut self, line: &[u8]) -> Result<Option<RecordBatch>, PushError> {
        let line = line.trim_ascii();
        if line.is_empty() {
            return Ok(None);
        }
        let mut de = serde_json::Deserializer::from_slice(line);
        let fits = Fits { dt: &self.row, item: false }.deserialize(&mut de).and_then(|f| de.end().map(|_| f));
        match fits {
            Ok(true) if line.first() == Some(&b'{') => self.feed(line)?,
            // Not an object (an error below), or a member that does not fit.
            _ => self.split(line)?,
        }
        self.rows += 1;
        self.buffered += line.len();
        if self.decoder.len() >= self.batch_rows || self.buffered >= BATCH_BYTES {
            return self.flush().map_err(PushError::Table);
        }
        Ok(None)
    }

    /// The rows not yet returned, as a batch.
    pub fn flush(&mut self) -> Result<Option<RecordBatch>, TableError> {
        self.buffered = 0;
        Ok(self.decoder.flush()?)
    }

    fn feed(&mut self, json: &[u8]) -> Result<(), PushError> {
        let read = self.decoder.decode(json)?;
        if read != json.len() {
            // The decoder stops at a full batch; `push` flushes before that.
            return Err(PushError::Table(TableError::Arrow("decoder stopped inside a line".into())));
        }
        Ok(())
    }

    /// The slow path: the members that fit, plus `_extra`.
    fn split(&mut self, line: &[u8]) -> Result<(), PushError> {
        let object: Map<String, Value> = serde_json::from_slice(line).map_err(|e| PushError::Invalid(e.to_string()))?;
        let (mut keep, mut extra) = (Map::new(), Map::new());
        for (k, v) in object {
            let fits = self
                .row_fields
                .find(&k)
                .is_some_and(|(_, f)| Fits { dt: f.data_type(), item: false }.deserialize(&v).unwrap_or(false));
            if fits {
                keep.insert(k, v);
            } else {
                extra.insert(k, v);
            }
        }
        if !extra.is_empty() {
            self.extra_rows += 1;
            keep.insert(EXTRA_COLUMN.into(), Value::String(Value::Object(extra).to_string()));
        }
        let bytes = serde_json::to_vec(&keep).map_err(|e| PushError::Table(TableError::Arrow(e.to_string())))?;
        self.feed(&bytes)
    }
}
