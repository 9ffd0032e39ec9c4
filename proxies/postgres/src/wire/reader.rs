//! A bounds-checked cursor over a message body.

use super::FrameError;

/// Reads big-endian integers and NUL-terminated strings from a message body; every
/// read is checked, and [`Reader::finish`] refuses trailing bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, naming the message `what` in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    fn short(&self) -> FrameError {
        FrameError::Malformed(self.what, "truncated")
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, FrameError> {
        let (&b, rest) = self.buf.split_first().ok_or_else(|| self.short())?;
        self.buf = rest;
        Ok(b)
    }

    /// A big-endian `i16`.
    pub fn i16(&mut self) -> Result<i16, FrameError> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0),
        ]))
    }

    /// A big-endian `i32`.
    pub fn i32(&mut self) -> Result<i32, FrameError> {
        let b = self.bytes(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(i32::from_be_bytes(a))
    }

    /// A count (`i16`) that must not be negative.
    pub fn count16(&mut self) -> Result<usize, FrameError> {
        let n = self.i16()?;
        usize::try_from(n).map_err(|_| FrameError::Malformed(self.what, "negative count"))
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if n > self.buf.len() {
            return Err(self.short());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// A NUL-terminated string (UTF-8 is not required here; see [`Reader::str`]).
    pub fn cstr_bytes(&mut self) -> Result<&'a [u8], FrameError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or(FrameError::Malformed(
                self.what,
                "string without terminator",
            ))?;
        let (s, rest) = self.buf.split_at(end);
        self.buf = rest.get(1..).unwrap_or_default();
        Ok(s)
    }

    /// A NUL-terminated UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, FrameError> {
        let b = self.cstr_bytes()?;
        std::str::from_utf8(b).map_err(|_| FrameError::Malformed(self.what, "string is not UTF-8"))
    }

    /// A length-prefixed value (`-1` is NULL).
    pub fn value(&mut self) -> Result<Option<&'a [u8]>, FrameError> {
        let n = self.i32()?;
        if n == -1 {
            return Ok(None);
        }
        let n =
            usize::try_from(n).map_err(|_| FrameError::Malformed(self.what, "negative length"))?;
        self.bytes(n).map(Some)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Fails when bytes are left over.
    pub fn finish(self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Malformed(self.what, "trailing bytes"))
        }
    }
}
