//! Reading the log from any offset.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use gatehouse_events::Event;
use tokio::sync::watch;

use crate::log::record::{self, Hash, Invalid, SEGMENT_HEADER_LEN};
use crate::log::segment::list_segments;
use crate::log::writer::Durable;
use crate::log::{LogError, Offset};

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its offset.
    pub offset: Offset,
    /// Hash of the previous record.
    pub prev_hash: Hash,
    /// The native JSON of the event.
    pub payload: Vec<u8>,
}

impl Record {
    /// Decodes the event.
    pub fn event(&self) -> Result<Event, LogError> {
        Event::from_json(&self.payload).map_err(|source| LogError::Decode {
            offset: self.offset,
            source,
        })
    }
}

struct OpenSegment {
    base: Offset,
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    start: usize,
    /// For synced readers: the file length covered by the reader's last fsync (bytes
    /// past it are not read until another fsync covers them).
    synced: Option<u64>,
}

const READ_CHUNK: usize = 256 * 1024;

impl OpenSegment {
    /// Reads more bytes; returns how many.
    fn fill(&mut self) -> Result<usize, LogError> {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut want = READ_CHUNK;
        if let Some(synced) = self.synced {
            let at = self.file_position_of_buf_end();
            let synced = if at >= synced {
                // Everything covered is read: fsync again, reading no further than
                // the length before the fsync (later writes may not be covered).
                let len = self
                    .file
                    .metadata()
                    .map_err(|e| LogError::io(&self.path, e))?
                    .len();
                self.file
                    .sync_data()
                    .map_err(|e| LogError::io(&self.path, e))?;
                self.synced = Some(len);
                len
            } else {
                synced
            };
            want = want.min(usize::try_from(synced.saturating_sub(at)).unwrap_or(READ_CHUNK));
            if want == 0 {
                return Ok(0);
            }
        }
        let old = self.buf.len();
        self.buf.resize(old + want, 0);
        let got = self.file.read(self.buf.get_mut(old..).unwrap_or_default());
        match got {
            Ok(n) => {
                self.buf.truncate(old + n);
                Ok(n)
            }
            Err(e) => {
                self.buf.truncate(old);
                Err(LogError::io(&self.path, e))
            }
        }
    }

    fn position(&self) -> u64 {
        // Position in the file of buf[start].
        let consumed_in_file = self.file_position_of_buf_end();
        consumed_in_file - (self.buf.len() - self.start) as u64
    }

    fn file_position_of_buf_end(&self) -> u64 {
        use std::io::Seek;
        let mut f = &self.file;
        f.stream_position().unwrap_or(0)
    }
}

/// How far a reader of a live log may read.
pub(crate) enum Limit {
    /// Up to the written watermark.
    Written(watch::Receiver<Offset>),
    /// Up to the durable (fsynced) watermark.
    Durable(watch::Receiver<Durable>),
}

impl Limit {
    fn current(&self) -> Offset {
        match self {
            Limit::Written(rx) => *rx.borrow(),
            Limit::Durable(rx) => rx.borrow().offset,
        }
    }

    async fn wait_past(&mut self, next: Offset) -> Result<(), LogError> {
        let waited = match self {
            Limit::Written(rx) => rx.wait_for(|w| *w > next).await.map(|_| ()),
            Limit::Durable(rx) => rx.wait_for(|d| d.offset > next).await.map(|_| ()),
        };
        waited.map_err(|_| LogError::Closed)
    }
}

/// Reads records in offset order, across segments.
///
/// From a live [`EventLog`](crate::log::EventLog) it never reads past the written (or,
/// for [`durable_reader`](crate::log::EventLog::durable_reader), the durable)
/// watermark; opened on a directory it reads to the end of the last valid record
/// ([`open_synced`](Self::open_synced): fsyncing each segment before reading it).
pub struct LogReader {
    dir: PathBuf,
    next: Offset,
    seg: Option<OpenSegment>,
    limit: Option<Limit>,
    /// Opened on a directory another process writes: fsync before reading, so only
    /// durable records are returned.
    sync_first: bool,
}

impl LogReader {
    /// Reads the log in `dir` from `from` (for tools; no writer coordination).
    pub fn open(dir: impl Into<PathBuf>, from: Offset) -> Self {
        Self {
            dir: dir.into(),
            next: from,
            seg: None,
            limit: None,
            sync_first: false,
        }
    }

    /// Reads the log in `dir`, which another process may be writing, from `from`,
    /// returning only records on disk: before reading past what it has read, the
    /// reader fsyncs the segment itself (fsync flushes every process's writes to the
    /// file) and reads no further than the file's length before that fsync.
    pub fn open_synced(dir: impl Into<PathBuf>, from: Offset) -> Self {
        Self {
            sync_first: true,
            ..Self::open(dir, from)
        }
    }

    pub(crate) fn with_limit(dir: PathBuf, from: Offset, limit: Limit) -> Self {
        Self {
            dir,
            next: from,
            seg: None,
            limit: Some(limit),
            sync_first: false,
        }
    }

    /// Offset of the next record this reader returns.
    pub fn next_offset(&self) -> Offset {
        self.next
    }

    /// Waits until the live log has a record at this reader's position (returns at
    /// once for readers opened on a directory).
    pub async fn wait(&mut self) -> Result<(), LogError> {
        let next = self.next;
        match &mut self.limit {
            Some(limit) => limit.wait_past(next).await,
            None => Ok(()),
        }
    }

    /// The next record, or `None` when the reader has caught up.
    pub fn next_record(&mut self) -> Result<Option<Record>, LogError> {
        self.advance(|offset, prev_hash, payload| {
            Ok(Record {
                offset,
                prev_hash,
                payload: payload.to_vec(),
            })
        })
    }

    /// Appends the next record's payload (the event's native JSON) to `buf` and
    /// returns its offset, or `None` when the reader has caught up. For readers that
    /// decode elsewhere (the shippers decode batches on other threads).
    pub fn next_raw(&mut self, buf: &mut Vec<u8>) -> Result<Option<Offset>, LogError> {
        self.advance(|offset, _, payload| {
            buf.extend_from_slice(payload);
            Ok(offset)
        })
    }

    /// Moves past the next record, handing its offset, previous hash and payload
    /// (borrowed from the read buffer, not copied) to `take`.
    fn advance<T>(
        &mut self,
        take: impl FnOnce(Offset, Hash, &[u8]) -> Result<T, LogError>,
    ) -> Result<Option<T>, LogError> {
        if let Some(limit) = &self.limit
            && self.next >= limit.current()
        {
            return Ok(None);
        }
        loop {
            if self.seg.is_none() && !self.open_segment()? {
                return Ok(None);
            }
            let Some(seg) = self.seg.as_mut() else {
                return Ok(None);
            };
            let rest = seg.buf.get(seg.start..).unwrap_or_default();
            match record::decode_record(rest) {
                Ok(rec) => {
                    let len = rec.encoded_len();
                    if rec.offset < self.next {
                        seg.start += len;
                        continue;
                    }
                    if rec.offset > self.next {
                        return Err(LogError::Corrupt {
                            offset: self.next,
                            segment: seg.path.clone(),
                            position: seg.position(),
                            reason: format!(
                                "found offset {} where {} was expected",
                                rec.offset, self.next
                            ),
                        });
                    }
                    let out = take(rec.offset, rec.prev, rec.payload)?;
                    seg.start += len;
                    self.next += 1;
                    return Ok(Some(out));
                }
                Err(Invalid::Short) => {
                    if seg.fill()? > 0 {
                        continue;
                    }
                    let at_boundary = seg.start == seg.buf.len();
                    if self.next_segment_exists()? {
                        if !at_boundary {
                            let seg = self.seg.as_ref();
                            return Err(LogError::Corrupt {
                                offset: self.next,
                                segment: seg.map(|s| s.path.clone()).unwrap_or_default(),
                                position: seg.map(|s| s.position()).unwrap_or(0),
                                reason: "truncated record before a later segment".into(),
                            });
                        }
                        self.seg = None;
                        continue;
                    }
                    return Ok(None);
                }
                Err(Invalid::Bad(reason)) => {
                    return Err(LogError::Corrupt {
                        offset: self.next,
                        segment: seg.path.clone(),
                        position: seg.position(),
                        reason: reason.into(),
                    });
                }
            }
        }
    }

    /// The next decoded event with its offset.
    pub fn next_event(&mut self) -> Result<Option<(Offset, Event)>, LogError> {
        self.advance(|offset, _, payload| {
            Event::from_json(payload)
                .map(|event| (offset, event))
                .map_err(|source| LogError::Decode { offset, source })
        })
    }

    /// True when a later segment starts exactly where the current one ended.
    fn next_segment_exists(&self) -> Result<bool, LogError> {
        let current = self.seg.as_ref().map(|s| s.base);
        Ok(list_segments(&self.dir)?
            .iter()
            .any(|s| s.base == self.next && Some(s.base) != current))
    }

    /// Opens the segment holding `self.next`; false when there is none yet.
    fn open_segment(&mut self) -> Result<bool, LogError> {
        let segments = list_segments(&self.dir)?;
        let Some(seg) = segments.iter().rev().find(|s| s.base <= self.next) else {
            if let Some(first) = segments.first() {
                return Err(LogError::Corrupt {
                    offset: self.next,
                    segment: first.path.clone(),
                    position: 0,
                    reason: format!(
                        "offset {} was removed by retention; the oldest kept is {}",
                        self.next, first.base
                    ),
                });
            }
            return Ok(false);
        };
        let mut file = File::open(&seg.path).map_err(|e| LogError::io(&seg.path, e))?;
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        if let Err(e) = file.read_exact(&mut header) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                return Ok(false);
            }
            return Err(LogError::io(&seg.path, e));
        }
        record::decode_segment_header(&header).map_err(|why| LogError::Corrupt {
            offset: seg.base,
            segment: seg.path.clone(),
            position: 0,
            reason: format!("{why:?}"),
        })?;
        self.seg = Some(OpenSegment {
            base: seg.base,
            path: seg.path.clone(),
            file,
            buf: Vec::new(),
            start: 0,
            synced: self.sync_first.then_some(0),
        });
        Ok(true)
    }
}

impl Iterator for LogReader {
    type Item = Result<Record, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}
