//! Walking the hash chain.

use std::path::{Path, PathBuf};

use crate::log::record::Invalid;
use crate::log::segment::{self, Tail, list_segments};
use crate::log::{LogError, Offset};

/// The first problem `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Offset of the first bad record.
    pub offset: Offset,
    /// Segment file.
    pub segment: PathBuf,
    /// Byte position inside the segment.
    pub position: u64,
    /// What is wrong.
    pub reason: String,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segments read.
    pub segments: usize,
    /// Valid records before the first problem.
    pub records: u64,
    /// First offset in the log (after retention).
    pub first_offset: Option<Offset>,
    /// Offset after the last valid record.
    pub next_offset: Offset,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

/// Verifies every segment in `dir`: checksums, offsets and the hash chain across
/// segments. Stops at the first problem.
pub fn verify(dir: &Path) -> Result<VerifyReport, LogError> {
    let segments = list_segments(dir)?;
    let mut report = VerifyReport {
        segments: 0,
        records: 0,
        first_offset: segments.first().map(|s| s.base),
        next_offset: segments.first().map(|s| s.base).unwrap_or(0),
        problem: None,
    };
    let mut prev_hash: Option<[u8; 32]> = None;
    let count = segments.len();
    for (i, seg) in segments.iter().enumerate() {
        report.segments += 1;
        let bytes = segment::read_segment(&seg.path)?;
        let problem = |offset, position, reason: String| Problem {
            offset,
            segment: seg.path.clone(),
            position,
            reason,
        };
        let scan = match segment::scan(&bytes, |_| {}) {
            Ok(s) => s,
            Err(Invalid::Short) if i + 1 == count && bytes.len() < 52 => break,
            Err(Invalid::Short) => {
                report.problem = Some(problem(seg.base, 0, "segment header truncated".into()));
                break;
            }
            Err(Invalid::Bad(why)) => {
                report.problem = Some(problem(seg.base, 0, why.into()));
                break;
            }
        };
        if scan.header.base != seg.base {
            report.problem = Some(problem(
                seg.base,
                0,
                format!("segment header says base {}", scan.header.base),
            ));
            break;
        }
        if i > 0 && scan.header.base != report.next_offset {
            report.problem = Some(problem(
                report.next_offset,
                0,
                format!("gap: segment starts at {}", scan.header.base),
            ));
            break;
        }
        match prev_hash {
            Some(h) if h != scan.header.prev => {
                report.problem = Some(problem(
                    seg.base,
                    0,
                    "hash chain broken across segments".into(),
                ));
                break;
            }
            None if seg.base == 0 && scan.header.prev != [0u8; 32] => {
                report.problem = Some(problem(
                    0,
                    0,
                    "first segment does not start the chain".into(),
                ));
                break;
            }
            _ => {}
        }
        report.records += scan.records;
        report.next_offset = scan.next_offset;
        prev_hash = Some(scan.last_hash);
        match scan.tail {
            Tail::Clean => {}
            Tail::Torn { position, reason } => {
                report.problem = Some(problem(
                    scan.next_offset,
                    position,
                    format!(
                        "{reason} (a torn tail; it is truncated when the gateway reopens the log)"
                    ),
                ));
                break;
            }
            Tail::Corrupt {
                position,
                offset,
                reason,
            } => {
                report.problem = Some(problem(offset, position, reason));
                break;
            }
        }
    }
    Ok(report)
}
