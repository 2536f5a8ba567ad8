//! An incremental NDJSON line splitter (protocol E6): fed byte chunks of any
//! size, it hands out complete lines. LF or CRLF, blank lines skipped, a last
//! line without a newline kept, a maximum line length enforced.

use serde::{Deserialize, Serialize};

/// Why splitting stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case", rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum NdjsonError {
    /// A line grew past the limit (a file that is not NDJSON, or a hostile one).
    #[error("line {line} is longer than the {limit}-byte limit")]
    LineTooLong {
        /// 1-based number of the offending line (blank lines included).
        line: u64,
        /// The limit in bytes.
        limit: usize,
    },
}

/// The default maximum line length: 64 MiB (a single huge Binary resource).
pub const DEFAULT_MAX_LINE: usize = 64 << 20;

/// Splits a byte stream into lines. Memory is bounded by the longest line.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    carry: Vec<u8>,
    max_line: usize,
    physical_lines: u64,
    lines: u64,
    bytes: u64,
    failed: Option<NdjsonError>,
}

impl Default for LineSplitter {
    fn default() -> Self {
        LineSplitter::new(DEFAULT_MAX_LINE)
    }
}

impl LineSplitter {
    /// A splitter that refuses lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            carry: Vec::new(),
            max_line: max_line.max(1),
            physical_lines: 0,
            lines: 0,
            bytes: 0,
            failed: None,
        }
    }

    /// Non-blank lines handed out so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Bytes fed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes of the partial line waiting for its newline.
    pub fn partial_len(&self) -> usize {
        self.carry.len()
    }

    /// Forgets any partial line (for a retried download).
    pub fn reset(&mut self) {
        self.carry.clear();
        self.failed = None;
    }

    /// Feeds a chunk; `on_line` gets each complete non-blank line without its
    /// terminator.
    pub fn feed(&mut self, chunk: &[u8], mut on_line: impl FnMut(&[u8])) -> Result<(), NdjsonError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.bytes += chunk.len() as u64;
        let mut start = 0;
        if !self.carry.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(nl) => {
                    self.check_len(self.carry.len() + nl)?;
                    self.carry.extend_from_slice(&chunk[..nl]);
                    let line = std::mem::take(&mut self.carry);
                    self.emit(&line, &mut on_line);
                    self.carry = line;
                    self.carry.clear();
                    start = nl + 1;
                }
                None => {
                    self.check_len(self.carry.len() + chunk.len())?;
                    self.grow_carry(chunk.len());
                    self.carry.extend_from_slice(chunk);
                    return Ok(());
                }
            }
        }
        let rest = &chunk[start..];
        let mut line_start = 0;
        for nl in memchr::memchr_iter(b'\n', rest) {
            let line = &rest[line_start..nl];
            if line.len() > self.max_line {
                return Err(self.too_long());
            }
            self.emit(line, &mut on_line);
            line_start = nl + 1;
        }
        let tail = &rest[line_start..];
        self.check_len(tail.len())?;
        self.carry.extend_from_slice(tail);
        Ok(())
    }

    /// The last line without its newline that [`LineSplitter::finish`] would
    /// hand out (trimmed), if any.
    pub fn partial_line(&self) -> Option<&[u8]> {
        let t = self.carry.trim_ascii();
        (!t.is_empty()).then_some(t)
    }

    /// Ends the stream: a last line without a newline is handed out.
    pub fn finish(&mut self, mut on_line: impl FnMut(&[u8])) -> Result<(), NdjsonError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if !self.carry.is_empty() {
            let line = std::mem::take(&mut self.carry);
            self.emit(&line, &mut on_line);
        }
        Ok(())
    }

    /// Past 1 MiB a long line grows its buffer by what arrives, not by
    /// doubling: a line near the limit never holds twice the limit (a wasm
    /// memory never gives it back).
    fn grow_carry(&mut self, more: usize) {
        let need = self.carry.len() + more;
        if need > self.carry.capacity() && need > (1 << 20) {
            let target = need.max(self.carry.capacity() + self.carry.capacity() / 4).min(self.max_line + 1);
            self.carry.reserve_exact(target.saturating_sub(self.carry.len()));
        }
    }

    fn check_len(&mut self, len: usize) -> Result<(), NdjsonError> {
        if len > self.max_line {
            Err(self.too_long())
        } else {
            Ok(())
        }
    }

    fn too_long(&mut self) -> NdjsonError {
        let e = NdjsonError::LineTooLong { line: self.physical_lines + 1, limit: self.max_line };
        self.failed = Some(e.clone());
        e
    }

    #[inline]
    fn emit(&mut self, line: &[u8], on_line: &mut impl FnMut(&[u8])) {
        self.physical_lines += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // Blank (whitespace-only) lines carry no resource.
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.lines += 1;
        on_line(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]], max: usize) -> Result<Vec<String>, NdjsonError> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |l| out.push(String::from_utf8_lossy(l).into_owned()))?;
        }
        s.finish(|l| out.push(String::from_utf8_lossy(l).into_owned()))?;
        Ok(out)
    }

    // protocol E6: CRLF, blank lines, no final newline
    #[test]
    fn lines_of_every_shape() {
        let out = split_all(&[b"{\"a\":1}\r\n\n  \r\n{\"b\":2}\n{\"c\":3}"], 1 << 20).unwrap();
        assert_eq!(out, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
    }

    // any chunking gives the same lines
    #[test]
    fn every_chunking_agrees() {
        let data = b"{\"a\":1}\r\n{\"bb\":22}\n\n{\"ccc\":333}\n{\"d\":4}";
        let whole = split_all(&[data], 1 << 20).unwrap();
        for size in 1..data.len() {
            let chunks: Vec<&[u8]> = data.chunks(size).collect();
            assert_eq!(split_all(&chunks, 1 << 20).unwrap(), whole, "chunk size {size}");
        }
        // A CR at the end of one chunk and LF at the start of the next.
        assert_eq!(split_all(&[b"{\"x\":1}\r", b"\n{\"y\":2}\n"], 1 << 20).unwrap(), ["{\"x\":1}", "{\"y\":2}"]);
    }

    // a configurable maximum line length with a clear error
    #[test]
    fn max_line_length() {
        let err = split_all(&[b"{}\n0123456789ABCDEF\n"], 8).unwrap_err();
        assert_eq!(err, NdjsonError::LineTooLong { line: 2, limit: 8 });
        let err = split_all(&[b"0123", b"4567", b"89"], 8).unwrap_err();
        assert_eq!(err, NdjsonError::LineTooLong { line: 1, limit: 8 });
        assert!(split_all(&[b"01234567\n"], 8).is_ok());
    }

    #[test]
    fn counts() {
        let mut s = LineSplitter::default();
        s.feed(b"a\n\nb\n", |_| {}).unwrap();
        s.finish(|_| {}).unwrap();
        assert_eq!(s.lines(), 2);
        assert_eq!(s.bytes(), 5);
    }
}
