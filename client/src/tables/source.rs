//! The lines of NDJSON files, read in turn; gzip (any number of members) is
//! recognised by its magic bytes, whatever the file's name.

use super::TableError;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

const BUFFER: usize = 1 << 20;

/// The longest line read (protocol K9: every body has a ceiling; the same as a download's).
pub(crate) const MAX_LINE: usize = fhir_async::ndjson::DEFAULT_MAX_LINE;

fn too_long(path: &Path, line: u64) -> TableError {
    TableError::InvalidLine {
        path: path.display().to_string(),
        line,
        message: format!("longer than the {MAX_LINE}-byte line ceiling (protocol K9); not read further"),
    }
}

/// Opens an NDJSON or NDJSON.gz file (read in big chunks by [`Lines`]).
pub(crate) fn open(path: &Path) -> Result<Box<dyn Read + Send>, TableError> {
    let mut file = File::open(path).map_err(|e| TableError::io(path, e))?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic).map_err(|e| TableError::io(path, e))?;
    let head = std::io::Cursor::new(magic[..n].to_vec()).chain(file);
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(MultiGzDecoder::new(BufReader::with_capacity(BUFFER, head)))
    } else {
        Box::new(head)
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

/// A line (without its newline), its file and its number in it (from 1).
pub(crate) type Line<'a> = (&'a [u8], &'a Path, u64);

/// The lines of several files, one after the other, with where each came
/// from. Lines are slices of one read buffer: nothing is copied per line.
pub(crate) struct Lines {
    paths: Vec<PathBuf>,
    next: usize,
    current: Option<(PathBuf, Box<dyn Read + Send>)>,
    /// The line number in the current file, from 1.
    pub line_no: u64,
    buf: Vec<u8>,
    /// `buf[start..end]` is read and not yet handed out.
    start: usize,
    end: usize,
    eof: bool,
}

impl Lines {
    pub fn new(paths: &[PathBuf]) -> Lines {
        Lines {
            paths: paths.to_vec(),
            next: 0,
            current: None,
            line_no: 0,
            buf: vec![0; BUFFER],
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// Opens the next file (its line count and buffer start afresh); false after the last.
    fn open_next(&mut self) -> Result<bool, TableError> {
        let Some(path) = self.paths.get(self.next).cloned() else { return Ok(false) };
        self.next += 1;
        let reader = open(&path)?;
        self.current = Some((path, reader));
        (self.line_no, self.start, self.end, self.eof) = (0, 0, 0, false);
        Ok(true)
    }

    /// The next line (without its newline) and where it is; None after the last file.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, TableError> {
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(None);
            }
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let (from, to) = (self.start, self.start + i);
                self.start = to + 1;
                return Ok(Some(self.hand_out(from, to)));
            }
            if self.eof {
                if self.start < self.end {
                    let (from, to) = (self.start, self.end);
                    self.start = self.end;
                    return Ok(Some(self.hand_out(from, to)));
                }
                self.current = None;
                continue;
            }
            self.fill()?;
        }
    }

    /// Whole lines, as many as fit about `size` bytes (more for one long
    /// line), appended to `out` (cleared first): the file they are from and
    /// the number of the first. A file's last line may lack its newline; a
    /// chunk never spans two files. None after the last file.
    pub fn next_chunk(&mut self, out: &mut Vec<u8>, size: usize) -> Result<Option<(PathBuf, u64)>, TableError> {
        out.clear();
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(None);
            }
            // What next_line had read ahead, then straight from the file.
            out.extend_from_slice(&self.buf[self.start..self.end]);
            (self.start, self.end) = (0, 0);
            let Some((path, reader)) = self.current.as_mut() else { continue };
            // The end of the last whole line so far: only new bytes are searched (a long line
            // read 64 KiB at a time is not scanned again and again).
            let mut last_end = memchr::memrchr(b'\n', out);
            while !self.eof {
                let want = size.saturating_sub(out.len()).max(64 << 10);
                let before = out.len();
                let n = reader.take(want as u64).read_to_end(out).map_err(|e| TableError::io(path, e))?;
                self.eof = n < want;
                if let Some(i) = memchr::memrchr(b'\n', &out[before..]) {
                    last_end = Some(before + i);
                }
                if out.len() - last_end.map_or(0, |i| i + 1) > MAX_LINE {
                    let line =
                        self.line_no + 1 + last_end.map_or(0, |_| memchr::memchr_iter(b'\n', out).count() as u64);
                    return Err(too_long(path, line));
                }
                if out.len() >= size && last_end.is_some() {
                    break;
                }
            }
            if !self.eof {
                // Keep the unfinished last line for the next chunk.
                let cut = memchr::memrchr(b'\n', out).map_or(out.len(), |i| i + 1);
                let tail = out.len() - cut;
                if self.buf.len() < tail {
                    self.buf.resize(tail, 0);
                }
                self.buf[..tail].copy_from_slice(&out[cut..]);
                self.end = tail;
                out.truncate(cut);
            }
            if out.is_empty() {
                self.current = None;
                continue;
            }
            let first = self.line_no + 1;
            self.line_no += memchr::memchr_iter(b'\n', out).count() as u64 + u64::from(out.last() != Some(&b'\n'));
            return Ok(Some((path.clone(), first)));
        }
    }

    fn hand_out(&mut self, from: usize, to: usize) -> Line<'_> {
        self.line_no += 1;
        let path = self.current.as_ref().map(|(p, _)| p.as_path()).unwrap_or(Path::new(""));
        (&self.buf[from..to], path, self.line_no)
    }

    /// Reads more: the unfinished line moves to the front; a line longer than the buffer grows it.
    fn fill(&mut self) -> Result<(), TableError> {
        self.buf.copy_within(self.start..self.end, 0);
        (self.end, self.start) = (self.end - self.start, 0);
        if self.end == self.buf.len() {
            if self.end >= MAX_LINE {
                let path = self.current.as_ref().map_or(Path::new(""), |(p, _)| p.as_path());
                return Err(too_long(path, self.line_no + 1));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let Some((path, reader)) = self.current.as_mut() else { return Ok(()) };
        match reader.read(&mut self.buf[self.end..]) {
            Ok(0) => self.eof = true,
            Ok(n) => self.end += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(TableError::io(path, e)),
        }
        Ok(())
    }
}

/// The `resourceType` of the first non-blank line of an NDJSON / NDJSON.gz
/// file (None when the file is empty or that line has none).
pub fn resource_type_of(path: &Path) -> Result<Option<String>, TableError> {
    let mut lines = Lines::new(&[path.to_path_buf()]);
    while let Some((line, _, line_no)) = lines.next_line()? {
        if line.trim_ascii().is_empty() {
            continue;
        }
        let head: serde_json::Value = serde_json::from_slice(line).map_err(|e| TableError::InvalidLine {
            path: path.display().to_string(),
            line: line_no,
            message: e.to_string(),
        })?;
        return Ok(head.get("resourceType").and_then(|t| t.as_str()).map(str::to_owned));
    }
    Ok(None)
}
