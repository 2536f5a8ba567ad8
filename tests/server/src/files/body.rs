//! The body of one file response: a window of the encoded stream, optionally cut (faults
//! `cut`, `reset`) or throttled (`slow`), counted into the stats while it is written, and
//! holding the job's in-flight slot (fault `conn`) until its last byte is handed over.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use futures_util::stream;

use super::encode::Source;
use crate::admin::FileCounters;
use crate::jobs::Job;

/// A file download counted as in flight (server-wide and per job) until released or dropped.
#[derive(Debug)]
pub struct InFlight {
    files: Arc<FileCounters>,
    job: Arc<Job>,
    held: bool,
}

impl InFlight {
    /// Takes a slot, or `None` when the job already has `limit` downloads in flight (0 = no limit).
    pub fn admit(files: &Arc<FileCounters>, job: &Arc<Job>, limit: u64) -> Option<InFlight> {
        {
            let mut st = job.lock();
            if limit > 0 && st.files_in_flight >= limit {
                return None;
            }
            st.files_in_flight += 1;
            st.max_files_in_flight = st.max_files_in_flight.max(st.files_in_flight);
        }
        let now = files.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        files.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Some(InFlight { files: files.clone(), job: job.clone(), held: true })
    }

    /// Gives the slot back (idempotent).
    pub fn release(&mut self) {
        if std::mem::take(&mut self.held) {
            self.job.lock().files_in_flight -= 1;
            self.files.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.release();
    }
}

/// Where a body's bytes come from.
#[derive(Debug)]
pub enum Src {
    /// Generated (and encoded) on the fly.
    Gen(Source),
    /// Fixed bytes (faults on small files).
    Fixed(Option<Bytes>),
}

/// What to send of a source.
#[derive(Debug)]
pub struct Window {
    /// Bytes of the source to drop first.
    pub skip: u64,
    /// Encoded offset of the first byte sent.
    pub start: u64,
    /// How many bytes to send at most (`None`: until the source ends).
    pub len: Option<u64>,
    /// Abort the connection instead of sending the byte at this encoded offset.
    pub cut_at: Option<u64>,
    /// Record a cut in the job (fault `cut`; `reset` does not): the key of the file's counter.
    pub cut_key: Option<(String, bool)>,
    /// Throttle to this many bytes per second (0 = off).
    pub slow: u64,
}

enum Item {
    Data(Bytes),
    Cut,
    End,
    Fail(io::Error),
}

struct St {
    src: Src,
    w: Window,
    /// Encoded offset of the next byte to send.
    off: u64,
    leftover: Bytes,
    cut_now: bool,
    ahead: Option<Item>,
    slot: InFlight,
}

impl St {
    fn pull(&mut self) -> Option<io::Result<Bytes>> {
        match &mut self.src {
            Src::Gen(s) => s.next_chunk(),
            Src::Fixed(b) => b.take().map(Ok),
        }
    }

    fn produce(&mut self) -> Item {
        loop {
            if self.leftover.is_empty() && self.cut_now {
                return Item::Cut;
            }
            if self.w.len == Some(0) {
                return Item::End;
            }
            let mut b = if self.leftover.is_empty() {
                match self.pull() {
                    None => return Item::End,
                    Some(Err(e)) => return Item::Fail(e),
                    Some(Ok(b)) => b,
                }
            } else {
                std::mem::take(&mut self.leftover)
            };
            if self.w.skip > 0 {
                let k = usize::try_from(self.w.skip).unwrap_or(usize::MAX).min(b.len());
                b = b.slice(k..);
                self.w.skip -= k as u64;
            }
            if b.is_empty() {
                continue;
            }
            if let Some(rem) = self.w.len {
                b.truncate(usize::try_from(rem).unwrap_or(usize::MAX).min(b.len()));
            }
            if let Some(p) = self.w.cut_at {
                if p < self.off + b.len() as u64 {
                    b.truncate((p.saturating_sub(self.off)) as usize);
                    self.cut_now = true;
                    self.cut_at_fired(p);
                    if b.is_empty() {
                        return Item::Cut;
                    }
                }
            }
            if self.w.slow > 0 {
                // Pieces of a tenth of a second each, so the throttle is smooth.
                let piece = usize::try_from(self.w.slow / 10).unwrap_or(usize::MAX).max(1);
                if b.len() > piece {
                    self.leftover = b.slice(piece..);
                    b.truncate(piece);
                }
            }
            self.off += b.len() as u64;
            if let Some(rem) = &mut self.w.len {
                *rem -= b.len() as u64;
            }
            return Item::Data(b);
        }
    }

    fn cut_at_fired(&mut self, p: u64) {
        self.w.cut_at = None;
        if let Some(key) = self.w.cut_key.take() {
            let mut st = self.slot.job.lock();
            let done = st.cut_done.entry(key).or_default();
            *done = (*done).max(p);
        }
    }
}

/// A body sending `w` of `src`, holding `slot` until its last byte is handed to the connection.
pub fn stream_body(src: Src, w: Window, slot: InFlight) -> Body {
    let off = w.start;
    let st = St { src, w, off, leftover: Bytes::new(), cut_now: false, ahead: None, slot };
    let s = stream::unfold(st, |mut st| async move {
        let cur = match st.ahead.take() {
            Some(i) => i,
            None => st.produce(),
        };
        match cur {
            Item::Data(b) => {
                // Look one chunk ahead: the slot is free before the client can see the end.
                let next = st.produce();
                if !matches!(next, Item::Data(_)) {
                    st.slot.release();
                }
                st.ahead = Some(next);
                st.slot.files.bytes_sent.fetch_add(b.len() as u64, Ordering::Relaxed);
                st.slot.job.lock().file_bytes_sent += b.len() as u64;
                if st.w.slow > 0 {
                    let ms = b.len() as u64 * 1000 / st.w.slow.max(1);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Some((Ok(b), st))
            }
            Item::Cut => {
                st.slot.release();
                st.slot.files.cut.fetch_add(1, Ordering::Relaxed);
                // Let the connection flush what was sent before the abort.
                tokio::time::sleep(Duration::from_millis(50)).await;
                st.ahead = Some(Item::End);
                let e = io::Error::new(io::ErrorKind::ConnectionReset, "file body cut (fault 'cut' or 'reset')");
                Some((Err(e), st))
            }
            Item::Fail(e) => {
                st.slot.release();
                st.ahead = Some(Item::End);
                Some((Err(e), st))
            }
            Item::End => {
                st.slot.release();
                None
            }
        }
    });
    Body::from_stream(s)
}
