//! The local, segmented, append-only event log: the embedded default source of truth.
//!
//! - Records carry a crc32c and the hash of the previous record (a blake3 hash chain),
//!   so `verify` can prove the log was not altered and name the first bad offset.
//! - [`Durability::Strict`] fsyncs before an append returns (group commit: concurrent
//!   appenders share one fsync); [`Durability::Batch`] (the default) writes to the OS
//!   before an append returns and fsyncs every interval. A process crash loses nothing
//!   in either mode; a machine crash can lose up to one interval in `batch` mode.
//! - On open, a torn tail (a partial last write) is truncated; corruption followed by
//!   valid records is an error, never silently cut.
//! - A failed write (a full disk) or fsync makes the log refuse appends
//!   ([`EventLog::failure`]); [`EventLog::recover`] repairs it in place and records the
//!   outage, so a gateway resumes without a restart once the cause is gone.
//! - Shippers read only durable records ([`EventLog::durable_reader`],
//!   [`LogReader::open_synced`]), so no sink holds a record a power loss can take.
//! - Segments rotate by size; retention removes whole segments that every shipper has
//!   passed and that are older or larger than the limits.

mod reader;
pub mod record;
mod segment;
mod verify;
mod writer;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use reader::{LogReader, Record};
pub use segment::{SegmentFile, list_segments};
pub use verify::{Problem, VerifyReport, verify};
pub use writer::{EventLog, Failure, LogStats, RECOVERY_HEADROOM};

/// The offset after the last valid record of the log in `dir` (0 for an empty or
/// absent log), read from its last segment: where a reader that is not the writer
/// sees the log end.
pub fn end_offset(dir: &Path) -> Result<Offset, LogError> {
    let segments = list_segments(dir)?;
    let Some(last) = segments.last() else {
        return Ok(0);
    };
    let bytes = segment::read_segment(&last.path)?;
    match segment::scan(&bytes, |_| {}) {
        Ok(scan) => Ok(scan.next_offset),
        Err(record::Invalid::Short) => Ok(last.base),
        Err(record::Invalid::Bad(reason)) => Err(LogError::Corrupt {
            offset: last.base,
            segment: last.path.clone(),
            position: 0,
            reason: reason.into(),
        }),
    }
}

/// Position of a record in the log: 0 for the first record ever, then +1 per record.
pub type Offset = u64;

/// When an append counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Durability {
    /// fsync before the append returns; concurrent appends share one fsync.
    Strict,
    /// written to the OS before the append returns; fsync every `interval_ms`.
    Batch {
        /// fsync interval in milliseconds.
        interval_ms: u64,
    },
}

impl Default for Durability {
    fn default() -> Self {
        Durability::Batch { interval_ms: 10 }
    }
}

impl Durability {
    /// Parses `strict`, `batch`, or `batch:MS`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "strict" => Some(Durability::Strict),
            "batch" => Some(Durability::default()),
            other => {
                let ms = other.strip_prefix("batch:")?.parse().ok()?;
                Some(Durability::Batch { interval_ms: ms })
            }
        }
    }
}

/// How long closed segments are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Remove segments whose newest record is older than this (None: keep).
    pub max_age: Option<Duration>,
    /// Remove the oldest segments while the log is larger than this (None: keep).
    pub max_bytes: Option<u64>,
}

/// Event log settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Directory of the segment files.
    pub dir: PathBuf,
    /// When an append counts as done.
    pub durability: Durability,
    /// Rotate to a new segment past this size.
    pub segment_bytes: u64,
    /// Retention of closed segments.
    pub retention: Retention,
}

impl LogConfig {
    /// Defaults (batch durability, 64 MiB segments, keep everything) for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            durability: Durability::default(),
            segment_bytes: 64 * 1024 * 1024,
            retention: Retention::default(),
        }
    }
}

/// Event log failures. Any of them refuses the command that needed the append.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An I/O error on a log file.
    #[error("event log i/o error on `{path}`: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The log holds a bad record that is not a torn tail.
    #[error("event log corrupt at offset {offset} (`{segment}` byte {position}): {reason}")]
    Corrupt {
        /// Offset the bad record should have.
        offset: Offset,
        /// Segment file.
        segment: PathBuf,
        /// Byte position inside the segment.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// Another process holds the log.
    #[error("event log `{0}` is locked by another process")]
    Locked(PathBuf),
    /// An event could not be encoded or decoded.
    #[error("event at offset {offset} cannot be decoded: {source}")]
    Decode {
        /// Offset of the record.
        offset: Offset,
        /// The error.
        source: serde_json::Error,
    },
    /// An event could not be encoded.
    #[error("event cannot be encoded: {0}")]
    Encode(serde_json::Error),
    /// An event is larger than a record may be.
    #[error("event of {0} bytes exceeds the record size limit")]
    TooLarge(usize),
    /// An earlier write or fsync failed; the log refuses appends until reopened.
    #[error("event log is failed after an earlier error: {0}")]
    Failed(String),
    /// The log was closed.
    #[error("event log is closed")]
    Closed,
}

impl LogError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        LogError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
