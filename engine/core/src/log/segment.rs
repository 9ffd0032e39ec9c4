//! Segment files: naming, listing, and scanning (recovery and verification).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::log::record::{
    self, Hash, Invalid, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, SegmentHeader,
};
use crate::log::{LogError, Offset};

/// A segment file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Offset of its first record (from the file name).
    pub base: Offset,
    /// Path of the file.
    pub path: PathBuf,
}

/// Path of the segment starting at `base`.
pub fn segment_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

/// Segment files in `dir`, sorted by base offset.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>, LogError> {
    let entries = fs::read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".seg") else {
            continue;
        };
        if stem.len() != 20 {
            continue;
        }
        if let Ok(base) = stem.parse::<u64>() {
            out.push(SegmentFile {
                base,
                path: entry.path(),
            });
        }
    }
    out.sort_by_key(|s| s.base);
    Ok(out)
}

/// What is wrong at the end of a scanned segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// Every byte belongs to a valid record.
    Clean,
    /// A torn write: invalid bytes from `position` to the end, and no valid record after.
    Torn {
        /// Byte position of the first invalid byte.
        position: u64,
        /// Why the record there is invalid.
        reason: String,
    },
    /// An invalid record with valid records after it: real corruption, never truncated.
    Corrupt {
        /// Byte position of the invalid record.
        position: u64,
        /// Offset the invalid record should have had.
        offset: Offset,
        /// What is wrong.
        reason: String,
    },
}

/// The result of scanning one segment.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The segment header.
    pub header: SegmentHeader,
    /// Records found valid.
    pub records: u64,
    /// Offset after the last valid record.
    pub next_offset: Offset,
    /// Hash of the last valid record (the header's previous hash when empty).
    pub last_hash: Hash,
    /// Byte length covered by the header and valid records.
    pub valid_len: u64,
    /// State of the bytes after the valid records.
    pub tail: Tail,
}

/// Reads a whole segment file.
pub fn read_segment(path: &Path) -> Result<Vec<u8>, LogError> {
    fs::read(path).map_err(|e| LogError::io(path, e))
}

/// Scans a segment's bytes, checking checksums, offset continuity and the hash chain.
///
/// `visit` is called for every valid record.
pub fn scan(bytes: &[u8], mut visit: impl FnMut(record::RecordRef<'_>)) -> Result<Scan, Invalid> {
    let header = record::decode_segment_header(bytes)?;
    let mut pos = SEGMENT_HEADER_LEN;
    let mut next = header.base;
    let mut prev = header.prev;
    let mut records = 0u64;
    let tail = loop {
        let Some(rest) = bytes.get(pos..) else {
            break Tail::Clean;
        };
        if rest.is_empty() {
            break Tail::Clean;
        }
        let problem = match record::decode_record(rest) {
            Ok(rec) if rec.offset != next => Some(format!(
                "record offset {} where {next} was expected",
                rec.offset
            )),
            Ok(rec) if rec.prev != prev => Some("hash chain broken: previous-hash mismatch".into()),
            Ok(rec) => {
                prev = rec.hash();
                pos += rec.encoded_len();
                next += 1;
                records += 1;
                visit(rec);
                None
            }
            Err(Invalid::Short) => Some("record truncated".into()),
            Err(Invalid::Bad(why)) => Some(why.into()),
        };
        if let Some(reason) = problem {
            break classify(bytes, pos, next, reason);
        }
    };
    Ok(Scan {
        header,
        records,
        next_offset: next,
        last_hash: prev,
        valid_len: pos as u64,
        tail,
    })
}

/// Decides whether the invalid bytes at `pos` are a torn tail or corruption: corruption
/// when any valid record with a later offset starts after `pos`.
fn classify(bytes: &[u8], pos: usize, expected: Offset, reason: String) -> Tail {
    let start = pos + 1;
    let end = bytes.len().saturating_sub(RECORD_HEADER_LEN);
    for q in start..=end {
        let Some(rest) = bytes.get(q..) else { break };
        let Some(off) = record::peek_offset(rest) else {
            break;
        };
        if off > expected && off - expected < (1 << 24) && record::decode_record(rest).is_ok() {
            return Tail::Corrupt {
                position: pos as u64,
                offset: expected,
                reason,
            };
        }
    }
    Tail::Torn {
        position: pos as u64,
        reason,
    }
}

/// Truncates a segment to `len` bytes and makes that durable.
pub fn truncate(path: &Path, len: u64) -> Result<(), LogError> {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| LogError::io(path, e))?;
    file.set_len(len).map_err(|e| LogError::io(path, e))?;
    file.sync_all().map_err(|e| LogError::io(path, e))
}

/// fsyncs a directory, so that created and removed files are durable.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    let d = fs::File::open(dir).map_err(|e| LogError::io(dir, e))?;
    match d.sync_all() {
        Ok(()) => Ok(()),
        // Some file systems do not support fsync on directories.
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        Err(e) => Err(LogError::io(dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::{encode_record, encode_segment_header};

    fn segment(n: u64) -> Vec<u8> {
        let mut buf = encode_segment_header(0, &[0; 32]).to_vec();
        let mut prev = [0u8; 32];
        for i in 0..n {
            prev = encode_record(&mut buf, i, &prev, format!("event {i}").as_bytes());
        }
        buf
    }

    #[test]
    fn clean_segment_scans_fully() {
        let buf = segment(10);
        let s = scan(&buf, |_| {}).unwrap();
        assert_eq!(s.records, 10);
        assert_eq!(s.next_offset, 10);
        assert_eq!(s.tail, Tail::Clean);
        assert_eq!(s.valid_len, buf.len() as u64);
    }

    #[test]
    fn cut_anywhere_in_last_record_is_torn() {
        let full = segment(3);
        let two = scan(&full, |_| {}).unwrap();
        let len_two = {
            let mut b = encode_segment_header(0, &[0; 32]).to_vec();
            let mut p = [0u8; 32];
            for i in 0..2 {
                p = encode_record(&mut b, i, &p, format!("event {i}").as_bytes());
            }
            b.len()
        };
        assert_eq!(two.records, 3);
        for cut in len_two + 1..full.len() {
            let s = scan(&full[..cut], |_| {}).unwrap();
            assert_eq!(s.records, 2, "cut at {cut}");
            assert!(
                matches!(s.tail, Tail::Torn { .. }),
                "cut at {cut}: {:?}",
                s.tail
            );
            assert_eq!(s.valid_len, len_two as u64);
        }
    }

    #[test]
    fn flipped_byte_in_the_middle_is_corruption() {
        let mut buf = segment(5);
        let pos = SEGMENT_HEADER_LEN + RECORD_HEADER_LEN + 2;
        buf[pos] ^= 0x40;
        let s = scan(&buf, |_| {}).unwrap();
        assert!(
            matches!(s.tail, Tail::Corrupt { offset: 0, .. }),
            "{:?}",
            s.tail
        );
    }
}
