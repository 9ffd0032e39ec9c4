//! Message framing: a tag byte and a length that counts itself.

use bytes::BytesMut;

/// A complete, length-checked message: `tag`, then `len` bytes of body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// The type byte.
    pub tag: u8,
    /// Length of the whole frame on the wire (tag + length field + body).
    pub wire_len: usize,
}

impl Frame {
    /// The body of this frame at the start of `buf`.
    pub fn body<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(5..self.wire_len).unwrap_or_default()
    }
}

/// A protocol violation. The connection is closed after reporting it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length field is below 4 or above the limit.
    #[error("invalid message length {0}")]
    Length(i64),
    /// A message body does not decode.
    #[error("malformed {0} message: {1}")]
    Malformed(&'static str, &'static str),
    /// A message type that is not valid here.
    #[error("unexpected message type `{0}`")]
    UnexpectedTag(char),
}

/// Peeks the frame at the start of `buf`: `Ok(None)` when more bytes are needed.
pub fn peek(buf: &[u8], max_len: usize) -> Result<Option<Frame>, FrameError> {
    let Some(header) = buf.get(..5) else {
        return Ok(None);
    };
    let mut len = [0u8; 4];
    len.copy_from_slice(header.get(1..5).unwrap_or(&[0; 4]));
    let len = i32::from_be_bytes(len);
    let Ok(body_len) = usize::try_from(len) else {
        return Err(FrameError::Length(len.into()));
    };
    if body_len < 4 || body_len > max_len {
        return Err(FrameError::Length(len.into()));
    }
    let wire_len = body_len + 1;
    if buf.len() < wire_len {
        return Ok(None);
    }
    Ok(Some(Frame {
        tag: header.first().copied().unwrap_or(0),
        wire_len,
    }))
}

/// Peeks an untagged startup-phase packet (length, then body): returns its total length.
pub fn peek_startup(buf: &[u8], max_len: usize) -> Result<Option<usize>, FrameError> {
    let Some(header) = buf.get(..4) else {
        return Ok(None);
    };
    let mut len = [0u8; 4];
    len.copy_from_slice(header);
    let len = i32::from_be_bytes(len);
    let Ok(n) = usize::try_from(len) else {
        return Err(FrameError::Length(len.into()));
    };
    if !(8..=max_len).contains(&n) {
        return Err(FrameError::Length(len.into()));
    }
    Ok((buf.len() >= n).then_some(n))
}

/// Appends a message: tag, length, then whatever `body` writes.
pub fn put(out: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.extend_from_slice(&[tag, 0, 0, 0, 0]);
    body(out);
    let len = u32::try_from(out.len() - start - 1).unwrap_or(u32::MAX);
    if let Some(slot) = out.get_mut(start + 1..start + 5) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
}

/// Appends a NUL-terminated string.
pub fn put_cstr(out: &mut BytesMut, s: &[u8]) {
    out.extend_from_slice(s);
    out.extend_from_slice(&[0]);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn lengths_are_checked() {
        assert_eq!(peek(b"Q\0\0", 100), Ok(None));
        assert_eq!(peek(b"Q\0\0\0\x03", 100), Err(FrameError::Length(3)));
        assert_eq!(peek(b"Q\xff\xff\xff\xff", 100), Err(FrameError::Length(-1)));
        assert_eq!(peek(b"Q\0\0\x10\0", 100), Err(FrameError::Length(4096)));
        assert_eq!(peek(b"Q\0\0\0\x05", 100), Ok(None));
        let f = peek(b"Q\0\0\0\x05x", 100).unwrap().unwrap();
        assert_eq!((f.tag, f.wire_len), (b'Q', 6));
        assert_eq!(f.body(b"Q\0\0\0\x05x"), b"x");
    }

    #[test]
    fn put_writes_the_length() {
        let mut b = BytesMut::new();
        put(&mut b, b'Z', |b| b.extend_from_slice(b"I"));
        assert_eq!(&b[..], b"Z\0\0\0\x05I");
    }
}
