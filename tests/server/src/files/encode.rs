//! A file's bytes as sent: identity, or a deterministic gzip stream, plus the index that lets a
//! range start near any offset without generating what comes before it.
//!
//! The gzip stream is the same for every request of a file (so a byte range of it is
//! meaningful): a fixed 10-byte header (no name, mtime 0, OS "unknown"), then each generated
//! chunk compressed on its own (level 1, a fresh compressor) and sync-flushed, so a chunk's
//! compressed bytes depend only on that chunk; then an empty final block and the trailer
//! (CRC-32 and length of the whole input).

use std::io;

use axum::body::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress};

use super::cursor::Cursor;

/// The gzip header: deflate, no flags, mtime 0, no extra flags, OS 255 (unknown).
const GZ_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Compresses `input` as raw deflate blocks ending in a sync flush (byte-aligned, not final).
fn deflate_segment(input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    // A fresh compressor per chunk: its output cannot depend on earlier chunks.
    let mut c = Compress::new(Compression::fast(), false);
    loop {
        out.reserve(input.len() / 2 + 1024);
        let done = c.total_in() as usize;
        c.compress_vec(&input[done..], out, FlushCompress::Sync).map_err(io::Error::other)?;
        // Finished once every input byte is in and the flush left spare room in the output.
        if c.total_in() as usize == input.len() && out.len() < out.capacity() {
            return Ok(());
        }
    }
}

/// Encoded chunks of one file from some offset on.
#[derive(Debug)]
pub struct Source {
    cursor: Cursor,
    gzip: bool,
    /// Offset in the encoded stream of the next byte `next` returns.
    off: u64,
    header_done: bool,
    /// CRC of the input so far, when starting from the beginning.
    crc: Option<Crc>,
    /// The whole file's CRC and length, when resuming from an index.
    trailer: Option<(u32, u32)>,
    done: bool,
}

impl Source {
    /// The encoded file from its first byte.
    pub fn new(cursor: Cursor, gzip: bool) -> Source {
        Source { cursor, gzip, off: 0, header_done: false, crc: Some(Crc::new()), trailer: None, done: false }
    }

    /// Encoded offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.off
    }

    /// The next encoded chunk (None at the end).
    pub fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        if self.done {
            return None;
        }
        let chunk = self.cursor.next_chunk();
        if !self.gzip {
            let c = chunk?;
            self.off += c.len() as u64;
            return Some(Ok(c));
        }
        let mut out = Vec::with_capacity(chunk.as_ref().map_or(32, |c| c.len() / 4 + 64));
        if !self.header_done {
            out.extend_from_slice(&GZ_HEADER);
            self.header_done = true;
        }
        match chunk {
            Some(c) => {
                if let Some(crc) = &mut self.crc {
                    crc.update(&c);
                }
                if let Err(e) = deflate_segment(&c, &mut out) {
                    return Some(Err(e));
                }
            }
            None => {
                self.done = true;
                // An empty final block with fixed codes, then CRC-32 and ISIZE (little-endian).
                out.extend_from_slice(&[0x03, 0x00]);
                let (sum, len) = match (&self.crc, self.trailer) {
                    (_, Some(t)) => t,
                    (Some(c), None) => (c.sum(), c.amount()),
                    (None, None) => (0, 0),
                };
                out.extend_from_slice(&sum.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
            }
        }
        self.off += out.len() as u64;
        Some(Ok(Bytes::from(out)))
    }

    /// Every remaining byte in memory (faults on small files only).
    pub fn collect(mut self) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        while let Some(c) = self.next_chunk() {
            all.extend_from_slice(&c?);
        }
        Ok(all)
    }
}

/// A chunk boundary of the encoded stream: its offset and the cursor state that produces it.
#[derive(Debug, Clone, Copy)]
struct Mark {
    off: u64,
    pos: u64,
    patient: u32,
}

/// The encoded size of a file and where each of its chunks starts: 24 bytes per generated
/// chunk (~64 KB of NDJSON), i.e. about 0.04 % of the file's identity size.
#[derive(Debug)]
pub struct Index {
    marks: Vec<Mark>,
    /// Encoded length in bytes.
    pub total: u64,
    trailer: (u32, u32),
}

impl Index {
    /// Generates (and encodes) the whole file once, keeping only the chunk boundaries.
    pub fn build(cursor: Cursor, gzip: bool) -> io::Result<Index> {
        let mut src = Source::new(cursor, gzip);
        let mut marks = Vec::new();
        loop {
            let (pos, patient) = src.cursor.state();
            let mark = Mark { off: src.off, pos, patient };
            match src.next_chunk() {
                None => break,
                Some(r) => {
                    r?;
                    marks.push(mark);
                }
            }
        }
        let trailer = src.crc.as_ref().map_or((0, 0), |c| (c.sum(), c.amount()));
        Ok(Index { marks, total: src.off, trailer })
    }

    /// A source positioned at the last chunk boundary at or before `offset`, and how many of its
    /// bytes to skip to reach `offset`. `fresh` makes a cursor at a given state of the same file.
    pub fn source_at(
        &self,
        gzip: bool,
        offset: u64,
        fresh: impl FnOnce(Option<(u64, u32)>) -> Cursor,
    ) -> (Source, u64) {
        let i = self.marks.partition_point(|m| m.off <= offset);
        let Some(m) = i.checked_sub(1).map(|i| self.marks[i]) else {
            return (Source::new(fresh(None), gzip), offset);
        };
        let src = Source {
            cursor: fresh(Some((m.pos, m.patient))),
            gzip,
            off: m.off,
            header_done: m.off > 0,
            crc: None,
            trailer: Some(self.trailer),
            done: false,
        };
        (src, offset - m.off)
    }
}
