//! A finished job's resources as a stream of raw NDJSON lines, downloaded
//! in parallel on background threads, in batches (one channel message per
//! ~256 KiB) so a consumer in another language pays per batch, not per line.

use crate::drive::Io;
use crate::files::{self, DownloadSummary, FileSink, LineWriter};
use crate::ClientError;
use fhir_async::{DownloadOptions, FileResult, Job};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

const BATCH_BYTES: usize = 256 * 1024;

/// Lines of one file, in order (a file's lines may come in several batches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineBatch {
    /// The file's index in the plan's selection (see [`FileResult`]s of the summary).
    pub file: usize,
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl LineBatch {
    /// The lines, without their newlines.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let l = &self.data[start..end];
            start = end;
            l
        })
    }

    /// How many lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// What the stream yields.
#[derive(Debug)]
pub enum LineEvent {
    /// Lines of a file.
    Lines(LineBatch),
    /// A file is over: complete, or failed (its lines so far were delivered).
    File(Box<FileResult>),
}

/// The stream returned by [`crate::JobRun::lines`]. Dropping it stops the downloads.
#[derive(Debug)]
pub struct Lines {
    rx: Receiver<LineEvent>,
    worker: Option<JoinHandle<Result<DownloadSummary, ClientError>>>,
    summary: Option<DownloadSummary>,
}

impl Lines {
    pub(crate) fn start(io: Io, mut job: Job, options: DownloadOptions) -> Lines {
        let (tx, rx) = mpsc::sync_channel(8);
        let worker = std::thread::spawn(move || {
            let sink = ChannelSink { tx };
            files::run(&io, &mut job, files::Plan::Job, options, &sink, &|_| {})
        });
        Lines { rx, worker: Some(worker), summary: None }
    }

    /// Like [`Iterator::next`], waiting at most `timeout` for the next event:
    /// [`Poll::Pending`] when none came in time, so a caller can check for
    /// a signal (Python's Ctrl-C) between waits.
    pub fn next_timeout(&mut self, timeout: Duration) -> Poll<Option<Result<LineEvent, ClientError>>> {
        match self.rx.recv_timeout(timeout) {
            Ok(ev) => Poll::Ready(Some(Ok(ev))),
            Err(RecvTimeoutError::Timeout) => Poll::Pending,
            Err(RecvTimeoutError::Disconnected) => Poll::Ready(self.next()),
        }
    }

    /// Once the stream is exhausted: what every file did.
    pub fn summary(&self) -> Option<&DownloadSummary> {
        self.summary.as_ref()
    }
}

impl Iterator for Lines {
    type Item = Result<LineEvent, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Ok(ev) = self.rx.recv() {
            return Some(Ok(ev));
        }
        // The sender is gone: the downloads ended.
        let worker = self.worker.take()?;
        match worker.join() {
            Ok(Ok(summary)) => {
                self.summary = Some(summary);
                None
            }
            Ok(Err(e)) => Some(Err(e)),
            Err(_) => Some(Err(ClientError::Io { path: String::new(), message: "a download thread panicked".into() })),
        }
    }
}

struct ChannelSink {
    tx: SyncSender<LineEvent>,
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the line stream was dropped")
}

struct Batcher<'a> {
    tx: &'a SyncSender<LineEvent>,
    file: usize,
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Batcher<'_> {
    fn send(&mut self) -> std::io::Result<()> {
        if self.ends.is_empty() {
            return Ok(());
        }
        let batch = LineBatch {
            file: self.file,
            data: std::mem::replace(&mut self.data, Vec::with_capacity(BATCH_BYTES + 4096)),
            ends: std::mem::take(&mut self.ends),
        };
        self.tx.send(LineEvent::Lines(batch)).map_err(|_| gone())
    }
}

impl LineWriter for Batcher<'_> {
    #[inline]
    fn line(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(line);
        self.ends.push(self.data.len());
        if self.data.len() >= BATCH_BYTES {
            self.send()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl FileSink for ChannelSink {
    fn open(&self, file: usize, _keep: u64) -> std::io::Result<Box<dyn LineWriter + '_>> {
        Ok(Box::new(Batcher { tx: &self.tx, file, data: Vec::with_capacity(BATCH_BYTES + 4096), ends: Vec::new() }))
    }

    fn finished(&self, _file: usize, result: &FileResult) -> std::io::Result<Option<PathBuf>> {
        self.tx.send(LineEvent::File(Box::new(result.clone()))).map_err(|_| gone())?;
        Ok(None)
    }

    fn abandon(&self, _keep: &[String]) {}
}
