//! On-disk format of segments and records.
//!
//! A segment file starts with a 52-byte header:
//!
//! ```text
//! magic "GHLOG\0v1" (8) | base offset u64 LE (8) | previous hash (32) | crc32c u32 LE (4)
//! ```
//!
//! `previous hash` links the segment to the last record of the previous segment, so the
//! hash chain survives rotation and retention. Then records follow back to back:
//!
//! ```text
//! payload length u32 LE (4) | crc32c u32 LE (4) | offset u64 LE (8) | previous hash (32) | payload
//! ```
//!
//! The crc covers offset, previous hash and payload. A record's hash, which the next
//! record carries as its previous hash, is `blake3(offset LE || previous hash || payload)`.

use crate::log::Offset;

/// Segment file magic.
pub const MAGIC: &[u8; 8] = b"GHLOG\0v1";
/// Segment header length.
pub const SEGMENT_HEADER_LEN: usize = 52;
/// Record header length.
pub const RECORD_HEADER_LEN: usize = 48;
/// Largest payload accepted (an event is far smaller; this bounds recovery reads).
pub const MAX_PAYLOAD: u32 = 16 * 1024 * 1024;

/// A 32-byte chain hash.
pub type Hash = [u8; 32];

/// The hash of a record.
pub fn record_hash(offset: Offset, prev: &Hash, payload: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&offset.to_le_bytes());
    h.update(prev);
    h.update(payload);
    *h.finalize().as_bytes()
}

fn record_crc(offset: Offset, prev: &Hash, payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&offset.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, prev);
    crc32c::crc32c_append(crc, payload)
}

/// Appends one encoded record to `buf`; returns its hash.
pub fn encode_record(buf: &mut Vec<u8>, offset: Offset, prev: &Hash, payload: &[u8]) -> Hash {
    // Payload length is checked by the caller against MAX_PAYLOAD.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&record_crc(offset, prev, payload).to_le_bytes());
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(prev);
    buf.extend_from_slice(payload);
    record_hash(offset, prev, payload)
}

/// Encodes a segment header.
pub fn encode_segment_header(base: Offset, prev: &Hash) -> [u8; SEGMENT_HEADER_LEN] {
    let mut out = [0u8; SEGMENT_HEADER_LEN];
    let mut body = Vec::with_capacity(SEGMENT_HEADER_LEN);
    body.extend_from_slice(MAGIC);
    body.extend_from_slice(&base.to_le_bytes());
    body.extend_from_slice(prev);
    let crc = crc32c::crc32c(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    out.copy_from_slice(&body);
    out
}

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Offset of the first record.
    pub base: Offset,
    /// Hash of the record before the first one (zeros at the start of the log).
    pub prev: Hash,
}

/// Why bytes are not a valid header or record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// Fewer bytes than the structure needs (a torn tail, or end of data).
    Short,
    /// The structure is complete but does not check out.
    Bad(&'static str),
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
}

fn hash_at(b: &[u8], at: usize) -> Option<Hash> {
    b.get(at..at + 32).and_then(|s| s.try_into().ok())
}

/// Decodes a segment header.
pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, Invalid> {
    let (Some(magic), Some(base), Some(prev), Some(crc)) = (
        bytes.get(0..8),
        u64_at(bytes, 8),
        hash_at(bytes, 16),
        u32_at(bytes, 48),
    ) else {
        return Err(Invalid::Short);
    };
    if magic != MAGIC {
        return Err(Invalid::Bad("not a gatehouse log segment (bad magic)"));
    }
    let body = bytes.get(0..48).ok_or(Invalid::Short)?;
    if crc32c::crc32c(body) != crc {
        return Err(Invalid::Bad("segment header checksum mismatch"));
    }
    Ok(SegmentHeader { base, prev })
}

/// A record decoded from a buffer (borrowing its payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Record offset.
    pub offset: Offset,
    /// Hash of the previous record.
    pub prev: Hash,
    /// Payload bytes.
    pub payload: &'a [u8],
}

impl RecordRef<'_> {
    /// Bytes the record occupies on disk.
    pub fn encoded_len(&self) -> usize {
        RECORD_HEADER_LEN + self.payload.len()
    }

    /// This record's hash.
    pub fn hash(&self) -> Hash {
        record_hash(self.offset, &self.prev, self.payload)
    }
}

/// Peeks at the offset field of a would-be record header.
pub fn peek_offset(bytes: &[u8]) -> Option<Offset> {
    u64_at(bytes, 8)
}

/// Decodes the record at the start of `bytes`.
pub fn decode_record(bytes: &[u8]) -> Result<RecordRef<'_>, Invalid> {
    let (Some(len), Some(crc), Some(offset), Some(prev)) = (
        u32_at(bytes, 0),
        u32_at(bytes, 4),
        u64_at(bytes, 8),
        hash_at(bytes, 16),
    ) else {
        return Err(Invalid::Short);
    };
    if len > MAX_PAYLOAD {
        return Err(Invalid::Bad("record length out of range"));
    }
    let end = RECORD_HEADER_LEN + len as usize;
    let payload = bytes.get(RECORD_HEADER_LEN..end).ok_or(Invalid::Short)?;
    if record_crc(offset, &prev, payload) != crc {
        return Err(Invalid::Bad("record checksum mismatch"));
    }
    Ok(RecordRef {
        offset,
        prev,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_detects_flips() {
        let mut buf = Vec::new();
        let prev = [7u8; 32];
        let hash = encode_record(&mut buf, 42, &prev, b"hello");
        let rec = decode_record(&buf).unwrap();
        assert_eq!(rec.offset, 42);
        assert_eq!(rec.payload, b"hello");
        assert_eq!(rec.hash(), hash);
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x01;
            assert!(
                decode_record(&bad).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
        assert_eq!(decode_record(&buf[..buf.len() - 1]), Err(Invalid::Short));
    }

    #[test]
    fn segment_header_round_trips() {
        let h = encode_segment_header(9, &[3u8; 32]);
        let d = decode_segment_header(&h).unwrap();
        assert_eq!(
            d,
            SegmentHeader {
                base: 9,
                prev: [3u8; 32]
            }
        );
        let mut bad = h;
        bad[20] ^= 1;
        assert!(decode_segment_header(&bad).is_err());
    }
}
