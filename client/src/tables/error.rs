//! The errors of the tables feature.

/// Why a conversion to Arrow or Parquet failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// Reading an NDJSON file or writing a Parquet file failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        message: String,
    },
    /// A line is not a JSON object (1-based line number; `path` is empty for
    /// lines pushed into a [`crate::tables::TableWriter`]).
    #[error("{path}:{line}: not a JSON object: {message}")]
    InvalidLine {
        /// The file.
        path: String,
        /// The line number, from 1.
        line: u64,
        /// What the JSON parser said.
        message: String,
    },
    /// Arrow refused a schema or a batch (a bug of ours when it happens).
    #[error("arrow: {0}")]
    Arrow(String),
    /// The Parquet writer failed.
    #[error("parquet: {0}")]
    Parquet(String),
}

impl TableError {
    /// A stable machine-readable code: `io`, `invalid_line`, `arrow`, `parquet`.
    pub fn code(&self) -> &'static str {
        match self {
            TableError::Io { .. } => "io",
            TableError::InvalidLine { .. } => "invalid_line",
            TableError::Arrow(_) => "arrow",
            TableError::Parquet(_) => "parquet",
        }
    }

    pub(crate) fn io(path: &std::path::Path, e: std::io::Error) -> Self {
        TableError::Io { path: path.display().to_string(), message: e.to_string() }
    }
}

impl From<arrow_schema::ArrowError> for TableError {
    fn from(e: arrow_schema::ArrowError) -> Self {
        match e {
            // A TableError that went through an Arrow reader comes back as itself.
            arrow_schema::ArrowError::ExternalError(inner) => match inner.downcast::<TableError>() {
                Ok(t) => *t,
                Err(other) => TableError::Arrow(other.to_string()),
            },
            e => TableError::Arrow(e.to_string()),
        }
    }
}

impl From<parquet::errors::ParquetError> for TableError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        TableError::Parquet(e.to_string())
    }
}
