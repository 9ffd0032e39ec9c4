//! Masks output text (an SSH `exec` channel, a Kubernetes pod's log) line by line with
//! the value patterns the rules named. PEM blocks (`-----BEGIN ...-----` to `-----END ...-----`) are masked
//! as one value, so a pattern can match a whole private key. Buffers are bounded: a
//! line or block longer than [`MAX_UNIT`] is masked as far as it got and flushed.

use std::borrow::Cow;

/// Longest line or PEM block held back for masking.
pub const MAX_UNIT: usize = 256 * 1024;

/// Streaming masker for one output stream.
#[derive(Debug, Default)]
pub struct LineMasker {
    pending: Vec<u8>,
    /// Where the current (incomplete) line starts in `pending`.
    line_start: usize,
    in_pem: bool,
    /// Values masked so far (lines or blocks that changed).
    pub masked: u64,
}

impl LineMasker {
    /// Feeds bytes; returns what may be sent now (complete lines/blocks, masked).
    pub fn push(&mut self, data: &[u8], mask: &dyn Fn(&str) -> Cow<'_, str>) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(nl + 1);
            rest = tail;
            self.pending.extend_from_slice(line);
            let this = self.pending.get(self.line_start..).unwrap_or(&[]);
            if !self.in_pem && starts_pem(this) && !ends_pem(this) {
                self.in_pem = true;
            } else if self.in_pem && ends_pem(this) {
                self.in_pem = false;
            }
            self.line_start = self.pending.len();
            if !self.in_pem {
                self.flush_into(&mut out, mask);
            } else if self.pending.len() > MAX_UNIT {
                self.in_pem = false;
                self.flush_into(&mut out, mask);
            }
        }
        self.pending.extend_from_slice(rest);
        if self.pending.len() > MAX_UNIT {
            self.in_pem = false;
            self.flush_into(&mut out, mask);
        }
        out
    }

    /// Flushes what is held back (end of stream).
    pub fn finish(&mut self, mask: &dyn Fn(&str) -> Cow<'_, str>) -> Vec<u8> {
        let mut out = Vec::new();
        self.in_pem = false;
        self.flush_into(&mut out, mask);
        out
    }

    fn flush_into(&mut self, out: &mut Vec<u8>, mask: &dyn Fn(&str) -> Cow<'_, str>) {
        if self.pending.is_empty() {
            return;
        }
        match std::str::from_utf8(&self.pending) {
            Ok(text) => match mask(text) {
                Cow::Borrowed(_) => out.extend_from_slice(&self.pending),
                Cow::Owned(masked) => {
                    self.masked += 1;
                    out.extend_from_slice(masked.as_bytes());
                }
            },
            // Not text: masked per valid UTF-8 run, invalid bytes kept.
            Err(_) => {
                let lossy = String::from_utf8_lossy(&self.pending).into_owned();
                match mask(&lossy) {
                    Cow::Borrowed(_) => out.extend_from_slice(&self.pending),
                    Cow::Owned(masked) => {
                        self.masked += 1;
                        out.extend_from_slice(masked.as_bytes());
                    }
                }
            }
        }
        self.pending.clear();
        self.line_start = 0;
    }
}

fn starts_pem(line: &[u8]) -> bool {
    contains(line, b"-----BEGIN ")
}

fn ends_pem(line: &[u8]) -> bool {
    contains(line, b"-----END ")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn mask(s: &str) -> Cow<'_, str> {
        if s.contains("secret") || s.contains("PRIVATE KEY") {
            Cow::Owned(if s.ends_with('\n') {
                "****\n".into()
            } else {
                "****".into()
            })
        } else {
            Cow::Borrowed(s)
        }
    }

    #[test]
    fn lines_and_pem_blocks() {
        let mut m = LineMasker::default();
        let input = b"a\nsecret=1\n-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\nBBBB\n-----END OPENSSH PRIVATE KEY-----\nz";
        let mut out = Vec::new();
        for chunk in input.chunks(3) {
            out.extend(m.push(chunk, &mask));
        }
        out.extend(m.finish(&mask));
        assert_eq!(String::from_utf8(out).unwrap(), "a\n****\n****\nz");
        assert_eq!(m.masked, 2);
    }

    #[test]
    fn buffers_are_bounded() {
        let mut m = LineMasker::default();
        let big = vec![b'x'; MAX_UNIT + 10];
        let out = m.push(&big, &mask);
        assert_eq!(out.len(), big.len());
        let mut m = LineMasker::default();
        let mut pem = b"-----BEGIN X-----\n".to_vec();
        pem.extend(std::iter::repeat_n(b"yyyy\n", MAX_UNIT / 4).flatten());
        let out = m.push(&pem, &mask);
        assert!(m.pending.len() <= MAX_UNIT && !out.is_empty());
    }
}
