//! What a file has already handed out, kept so it can be proven (protocol K7).
//!
//! The lines a download handed to its consumer are remembered as their count,
//! their length and a SHA-256 of their bytes, each line followed by `\n` (so a
//! folder download's file holds exactly those bytes). A continuation that is
//! not a 206 under a matching validator may skip those lines only once the new
//! body is shown to start with the same bytes; otherwise the file changed.
//!
//! A hash state cannot be saved, so what an earlier process took (K5) is kept
//! as sealed [`TakenSegment`]s, and this process hashes its own part as a new
//! segment. A proof checks every segment in turn.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A run of handed-out lines: how many, their bytes (each line plus `\n`) and
/// the SHA-256 of those bytes, in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TakenSegment {
    /// Lines in the segment.
    pub lines: u64,
    /// Bytes in the segment (each line plus its `\n`).
    pub bytes: u64,
    /// SHA-256 of those bytes, lowercase hex.
    pub sha256: String,
}

/// The lines handed out so far, with their digest.
#[derive(Debug, Clone, Default)]
pub(crate) struct Taken {
    sealed: Vec<TakenSegment>,
    open: Sha256,
    open_lines: u64,
    open_bytes: u64,
}

impl Taken {
    /// Continues after an earlier process's segments.
    pub(crate) fn after(sealed: Vec<TakenSegment>) -> Taken {
        Taken { sealed, ..Taken::default() }
    }

    #[inline]
    pub(crate) fn push(&mut self, line: &[u8]) {
        self.open.update(line);
        self.open.update(b"\n");
        self.open_lines += 1;
        self.open_bytes += line.len() as u64 + 1;
    }

    /// Lines taken in all.
    pub(crate) fn lines(&self) -> u64 {
        self.sealed.iter().map(|s| s.lines).sum::<u64>() + self.open_lines
    }

    /// Bytes taken in all (what a folder download's file holds).
    pub(crate) fn bytes(&self) -> u64 {
        self.sealed.iter().map(|s| s.bytes).sum::<u64>() + self.open_bytes
    }

    /// Every segment, this process's included (empty ones left out).
    pub(crate) fn segments(&self) -> Vec<TakenSegment> {
        let mut all = self.sealed.clone();
        if self.open_lines > 0 {
            all.push(TakenSegment {
                lines: self.open_lines,
                bytes: self.open_bytes,
                sha256: hex::encode(self.open.clone().finalize()),
            });
        }
        all
    }

    /// A check of a new body against what was taken.
    pub(crate) fn proof(&self) -> Proof {
        Proof::new(self.segments())
    }
}

/// Where a [`Proof`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not every taken byte was compared yet.
    Pending,
    /// The bytes compared so far are exactly the taken ones, all of them.
    Proven,
    /// The bytes differ (or go on past a segment's end without a match).
    Changed,
}

/// Checks that some bytes are exactly the taken ones, segment by segment: the
/// lines a restarted body repeats, or a `.part` file an earlier process left (K5, K7).
#[derive(Debug, Clone)]
pub struct Proof {
    segments: Vec<TakenSegment>,
    at: usize,
    hasher: Sha256,
    bytes: u64,
    verdict: Verdict,
}

impl Proof {
    /// A proof against `segments` (from a [`crate::FileCheckpoint`]).
    pub fn new(segments: Vec<TakenSegment>) -> Proof {
        let verdict = if segments.iter().all(|s| s.bytes == 0) { Verdict::Proven } else { Verdict::Pending };
        Proof { segments, at: 0, hasher: Sha256::new(), bytes: 0, verdict }
    }

    /// Bytes the proof needs in all.
    pub fn len(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Whether there is nothing to prove.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Feeds the next bytes. More bytes than were taken make it
    /// [`Verdict::Changed`].
    pub fn update(&mut self, mut data: &[u8]) -> Verdict {
        while !data.is_empty() {
            let Some(seg) = self.segments.get(self.at) else {
                self.verdict = Verdict::Changed;
                break;
            };
            if self.verdict == Verdict::Changed {
                break;
            }
            let room = usize::try_from(seg.bytes - self.bytes).unwrap_or(usize::MAX);
            let (now, rest) = data.split_at(room.min(data.len()));
            self.hasher.update(now);
            self.bytes += now.len() as u64;
            data = rest;
            if self.bytes == seg.bytes {
                let digest = hex::encode(std::mem::take(&mut self.hasher).finalize());
                if digest != seg.sha256 {
                    self.verdict = Verdict::Changed;
                    break;
                }
                self.at += 1;
                self.bytes = 0;
                if self.at == self.segments.len() {
                    self.verdict = Verdict::Proven;
                }
            }
        }
        self.verdict
    }

    /// Feeds one line (its bytes, then `\n`).
    pub(crate) fn line(&mut self, line: &[u8]) -> Verdict {
        self.update(line);
        self.update(b"\n")
    }

    /// The verdict once the bytes ended: anything short of all taken bytes is a change.
    pub fn finish(&self) -> Verdict {
        match self.verdict {
            Verdict::Pending => Verdict::Changed,
            v => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(lines: &[&str]) -> Taken {
        let mut t = Taken::default();
        for l in lines {
            t.push(l.as_bytes());
        }
        t
    }

    #[test]
    fn the_same_lines_are_proven_whatever_the_chunks() {
        let t = taken(&["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!((t.lines(), t.bytes()), (2, 16));
        let mut p = t.proof();
        assert_eq!(p.line(b"{\"a\":1}"), Verdict::Pending);
        assert_eq!(p.line(b"{\"b\":2}"), Verdict::Proven);
        let mut p = t.proof();
        for b in b"{\"a\":1}\n{\"b\":2}\n" {
            p.update(&[*b]);
        }
        assert_eq!(p.finish(), Verdict::Proven);
    }

    #[test]
    fn other_bytes_shorter_or_longer_are_a_change() {
        let t = taken(&["{\"a\":1}", "{\"b\":2}"]);
        let mut p = t.proof();
        p.line(b"{\"a\":1}");
        assert_eq!(p.line(b"{\"b\":3}"), Verdict::Changed);
        let mut p = t.proof();
        p.line(b"{\"a\":1}");
        assert_eq!(p.finish(), Verdict::Changed, "a body that ends early is not the same");
        let mut p = t.proof();
        assert_eq!(p.update(b"{\"a\":1}\n{\"b\":2}\n{"), Verdict::Changed, "past the taken bytes");
    }

    #[test]
    fn segments_of_two_processes_are_proven_in_turn() {
        let first = taken(&["{\"a\":1}"]);
        let mut second = Taken::after(first.segments());
        second.push(b"{\"b\":2}");
        assert_eq!(second.segments().len(), 2);
        assert_eq!((second.lines(), second.bytes()), (2, 16));
        let mut p = second.proof();
        assert_eq!(p.update(b"{\"a\":1}\n{\"b\":2}\n"), Verdict::Proven);
        let mut p = second.proof();
        assert_eq!(p.update(b"{\"a\":1}\n{\"b\":9}\n"), Verdict::Changed);
    }

    #[test]
    fn nothing_taken_is_proven_at_once() {
        assert_eq!(Taken::default().proof().finish(), Verdict::Proven);
    }
}
