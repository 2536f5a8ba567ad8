//! The lines of NDJSON files, read in turn; gzip (any number of members) is
//! recognised by its magic bytes, whatever the file's name.

use super::TableError;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

const BUFFER: usize = 1 << 20;

/// Opens an NDJSON or NDJSON.gz file for reading lines.
pub(crate) fn open(path: &Path) -> Result<Box<dyn BufRead + Send>, TableError> {
    let mut file = File::open(path).map_err(|e| TableError::io(path, e))?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic).map_err(|e| TableError::io(path, e))?;
    let head = std::io::Cursor::new(magic[..n].to_vec()).chain(file);
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(BufReader::with_capacity(BUFFER, MultiGzDecoder::new(BufReader::with_capacity(BUFFER, head))))
    } else {
        Box::new(BufReader::with_capacity(BUFFER, head))
    })
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The lines of several files, one after the other, with where each came from.
pub(crate) struct Lines {
    paths: Vec<PathBuf>,
    next: usize,
    current: Option<(PathBuf, Box<dyn BufRead + Send>)>,
    /// The line number in the current file, from 1.
    pub line_no: u64,
}

impl Lines {
    pub fn new(paths: &[PathBuf]) -> Lines {
        Lines { paths: paths.to_vec(), next: 0, current: None, line_no: 0 }
    }

    /// The file the last line came from.
    pub fn path(&self) -> &Path {
        self.current.as_ref().map(|(p, _)| p.as_path()).unwrap_or(Path::new(""))
    }

    /// Reads the next line into `buf` (cleared first); false at the end of the last file.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<bool, TableError> {
        buf.clear();
        loop {
            if self.current.is_none() {
                let Some(path) = self.paths.get(self.next).cloned() else { return Ok(false) };
                self.next += 1;
                let reader = open(&path)?;
                self.current = Some((path, reader));
                self.line_no = 0;
            }
            if let Some((path, reader)) = self.current.as_mut() {
                let n = reader.read_until(b'\n', buf).map_err(|e| TableError::io(path, e))?;
                if n > 0 {
                    self.line_no += 1;
                    return Ok(true);
                }
            }
            self.current = None;
        }
    }
}

/// The `resourceType` of the first non-blank line of an NDJSON / NDJSON.gz
/// file (None when the file is empty or that line has none).
pub fn resource_type_of(path: &Path) -> Result<Option<String>, TableError> {
    let mut lines = Lines::new(&[path.to_path_buf()]);
    let mut buf = Vec::new();
    while lines.next_into(&mut buf)? {
        if buf.trim_ascii().is_empty() {
            continue;
        }
        let head: serde_json::Value = serde_json::from_slice(&buf).map_err(|e| TableError::InvalidLine {
            path: path.display().to_string(),
            line: lines.line_no,
            message: e.to_string(),
        })?;
        return Ok(head.get("resourceType").and_then(|t| t.as_str()).map(str::to_owned));
    }
    Ok(None)
}
